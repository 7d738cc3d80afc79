// Schedules the periodic background sync with JobScheduler: every 15 minutes (the shortest period
// Android allows), only with a network, persisted across reboots (RECEIVE_BOOT_COMPLETED is in the
// library manifest), scheduled once, cancelled on logout.
package dev.chatsync.reactnative

import android.app.job.JobInfo
import android.app.job.JobScheduler
import android.content.ComponentName
import android.content.Context

/** Scheduling of [BackgroundSyncJobService]. */
object BackgroundSyncScheduler {
    /** The job id; apps using JobScheduler themselves must not reuse it. */
    const val JOB_ID = 0x43535952 // "CSYR"

    /** Android's minimum period for periodic jobs. */
    const val PERIOD_MS = 15L * 60L * 1000L

    private fun scheduler(context: Context): JobScheduler =
        context.applicationContext.getSystemService(Context.JOB_SCHEDULER_SERVICE) as JobScheduler

    /** Whether the job is scheduled (`getPendingJob` is API 24; this works from 21). */
    fun isScheduled(context: Context): Boolean = scheduler(context).allPendingJobs.any { it.id == JOB_ID }

    /**
     * Schedules the job unless it already is (rescheduling would reset its period, so a user
     * opening the app every 10 minutes would never get a background run). Returns true when it
     * scheduled now.
     */
    fun ensureScheduled(context: Context): Boolean {
        if (isScheduled(context)) return false
        val job = JobInfo.Builder(JOB_ID, ComponentName(context.applicationContext, BackgroundSyncJobService::class.java))
            .setPeriodic(PERIOD_MS)
            .setRequiredNetworkType(JobInfo.NETWORK_TYPE_ANY)
            .setPersisted(true)
            .build()
        return scheduler(context).schedule(job) == JobScheduler.RESULT_SUCCESS
    }

    /** Schedules the job while someone is logged in, cancels it otherwise. */
    fun follow(context: Context, loggedIn: Boolean) {
        if (loggedIn) ensureScheduled(context) else cancel(context)
    }

    /** Cancels the job (logout). */
    fun cancel(context: Context) {
        scheduler(context).cancel(JOB_ID)
    }
}
