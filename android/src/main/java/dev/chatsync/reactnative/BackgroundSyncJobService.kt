// The periodic background job: asks the Rust host for one background run (it opens the
// logged-in user's store from the stored settings when the OS started the process only for
// this job), posts the notifications it planned, and tells JobScheduler what the host decided.
package dev.chatsync.reactnative

import android.app.job.JobParameters
import android.app.job.JobService
import android.util.Log
import dev.chatsync.BackgroundAction
import dev.chatsync.backgroundBudgetMs
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
            val run = ChatSyncHost.get(applicationContext).backgroundRun(backgroundBudgetMs())
            when (run.action) {
                BackgroundAction.DONE -> Log.i(TAG, "background sync: ${run.summary}")
                BackgroundAction.FAILED -> Log.e(TAG, "background sync failed: ${run.summary}")
                else -> Log.w(TAG, "background sync: ${run.action}: ${run.summary}")
            }
            NewMessageNotifier.post(applicationContext, run.notifications)
            if (!run.keepScheduled) BackgroundSyncScheduler.cancel(applicationContext)
            jobFinished(params, run.rescheduleEarly)
        }
        return true // the work goes on in the coroutine
    }

    override fun onStopJob(params: JobParameters): Boolean {
        // The OS revoked the job (constraints lost, time up): stop now, retry later.
        running?.cancel()
        return true
    }

    override fun onDestroy() {
        scope.cancel()
        super.onDestroy()
    }

    private companion object {
        const val TAG = "ChatSync"
    }
}
