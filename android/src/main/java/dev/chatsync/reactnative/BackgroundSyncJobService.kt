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
            // helps when the store was busy for a moment.
            jobFinished(params, outcome == BackgroundSyncRunner.Outcome.RETRY)
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

/** The job's work, separate from the service so the module could trigger it too. */
object BackgroundSyncRunner {
    /** How the run ended, for the job's reschedule decision. */
    enum class Outcome { DONE, NOBODY_LOGGED_IN, RETRY }

    /**
     * Time budget of one run. JobScheduler allows minutes, but a phone's battery does not:
     * the same ~25 s as iOS's app-refresh task keeps both platforms alike.
     */
    const val BUDGET_MS = 25_000L

    private const val TAG = "ChatSync"

    /** Opens the store of the logged-in user, syncs within budget, notifies. Never throws. */
    suspend fun run(context: Context): Outcome {
        val client = try {
            ChatSyncRuntime.restore(context)
        } catch (t: Throwable) {
            Log.w(TAG, "background sync: cannot open the store: ${ErrorCodes.of(t).second}")
            return Outcome.RETRY
        }
        if (client == null) {
            // Logged out (or never logged in) while the job survived, e.g. app data restored.
            BackgroundSyncScheduler.cancel(context)
            return Outcome.NOBODY_LOGGED_IN
        }
        val report = try {
            client.backgroundSync(BUDGET_MS.toULong())
        } catch (t: Throwable) {
            Log.w(TAG, "background sync failed: ${ErrorCodes.of(t).second}")
            return Outcome.RETRY
        }
        Log.i(TAG, "background sync: ${BridgeValues.backgroundReport(report)}")
        val notify = SettingsStore(context).options()?.notifications ?: true
        if (notify && !ChatSyncRuntime.isForeground && report.newMessages.isNotEmpty()) {
            NewMessageNotifier.post(context, NotificationContent.forPreviews(report.newMessages))
        }
        return Outcome.DONE
    }
}
