// The periodic background job: opens the store (also when the OS started the process only for
// this job, with no React running), runs the core's time-boxed `backgroundSync`, and posts a local
// notification for new messages while the app is not in the foreground.
package dev.chatsync.reactnative

import android.app.job.JobParameters
import android.app.job.JobService
import android.content.Context
import android.util.Log
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/** Runs one background sync per invocation of the periodic job. */
class BackgroundSyncJobService : JobService() {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private var running: Job? = null

    override fun onStartJob(params: JobParameters): Boolean {
        running = scope.launch {
            val outcome = BackgroundSyncRunner.run(applicationContext)
            // A periodic job comes back next period anyway; rescheduling early (backoff) only
            // helps when the core says a retry may succeed (out of time, offline, busy).
            jobFinished(params, outcome == BackgroundSync.Outcome.RETRY)
        }
        return true // work continues on the coroutine
    }

    override fun onStopJob(params: JobParameters): Boolean {
        // The OS revoked the job (constraints lost, budget exhausted): stop now, retry later.
        running?.cancel()
        return true
    }

    override fun onDestroy() {
        scope.cancel()
        super.onDestroy()
    }
}

/** The job's work with the platform around it: stored settings, log, notifications. */
object BackgroundSyncRunner {
    private const val TAG = "ChatSync"

    /** One run; cancels the job when nobody is logged in. Never throws. */
    suspend fun run(context: Context): BackgroundSync.Outcome {
        val settings = SettingsStore(context)
        val options = settings.options()
        val run = BackgroundSync.run(
            open = { ChatSyncRuntime.restore(context.filesDir, options, settings.user()) },
            notificationsEnabled = options?.notifications ?: true,
            isForeground = { ChatSyncRuntime.isForeground },
        )
        when (run.outcome) {
            // Logged out (or never logged in) while the job survived, e.g. app data restored.
            BackgroundSync.Outcome.NOBODY_LOGGED_IN -> BackgroundSyncScheduler.cancel(context)
            BackgroundSync.Outcome.RETRY -> Log.w(TAG, "background sync will retry: ${run.error}")
            BackgroundSync.Outcome.UNAUTHORIZED -> Log.w(TAG, "background sync: the token was refused, sign in again: ${run.error}")
            BackgroundSync.Outcome.FAILED -> Log.e(TAG, "background sync failed: ${run.error}")
            BackgroundSync.Outcome.DONE -> Log.i(TAG, "background sync: ${run.report?.let(BridgeValues::backgroundReport)}")
        }
        NewMessageNotifier.post(context, run.notifications)
        return run.outcome
    }
}
