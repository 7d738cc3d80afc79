// One background run, as the OS's periodic job does it: open the logged-in user's store, run the
// core's time-boxed `backgroundSync`, and decide which notifications to show. No Android types:
// the JVM scenario runs it against the real server; BackgroundSyncJobService adds the platform.
package dev.chatsync.reactnative

import dev.chatsync.BackgroundOutcome
import dev.chatsync.BackgroundSyncReport
import dev.chatsync.ChatClient
import dev.chatsync.ChatException

/** What one background run did. */
data class BackgroundRun(
    val outcome: BackgroundSync.Outcome,
    /** The core's report, when the sync ran. */
    val report: BackgroundSyncReport? = null,
    /** The notifications to post (none while the app is in the foreground or when disabled). */
    val notifications: List<RoomNotification> = emptyList(),
    /** Why it could not run, when it could not. */
    val error: String? = null,
)

/** The background run, independent of the OS scheduler that triggers it. */
object BackgroundSync {
    /**
     * How a run ended, for the job's reschedule decision: the core's typed outcome and its
     * `retryLater` advice, plus what only the job knows (nobody logged in).
     */
    enum class Outcome {
        /** Synced and flushed; the next period comes anyway. */
        DONE,

        /** Nobody is logged in: the job should be cancelled. */
        NOBODY_LOGGED_IN,

        /** Worth trying again soon (the core says `retryLater`: out of time, offline or busy server, store held): reschedule with backoff. */
        RETRY,

        /** The token was refused: the user must sign in again; retrying will not help. */
        UNAUTHORIZED,

        /** Anything else (a damaged store, a bug): retrying will not help; see `error`. */
        FAILED,
    }

    /** The job's outcome for the core's report. */
    fun outcomeOf(report: BackgroundSyncReport): Outcome = when {
        report.retryLater -> Outcome.RETRY
        report.outcome == BackgroundOutcome.COMPLETED -> Outcome.DONE
        report.outcome == BackgroundOutcome.UNAUTHORIZED -> Outcome.UNAUTHORIZED
        else -> Outcome.FAILED
    }

    /**
     * Time budget of one run. JobScheduler allows minutes, but a phone's battery does not: the
     * same ~25 s as iOS's app-refresh task keeps both platforms alike.
     */
    const val BUDGET_MS = 25_000L

    /**
     * Opens the client with [open] (null: nobody logged in), syncs within [budgetMs], and lists
     * the notifications to post unless [notificationsEnabled] is off or [isForeground] says the
     * user is looking at the app. Never throws.
     */
    suspend fun run(
        open: () -> ChatClient?,
        budgetMs: Long = BUDGET_MS,
        notificationsEnabled: Boolean,
        isForeground: () -> Boolean,
    ): BackgroundRun {
        val client = try {
            open() ?: return BackgroundRun(Outcome.NOBODY_LOGGED_IN)
        } catch (t: Throwable) {
            // Held by another process (the app itself): free again soon. Anything else (a
            // damaged store) needs more than a retry.
            val outcome = if (t is ChatException.Busy) Outcome.RETRY else Outcome.FAILED
            return BackgroundRun(outcome, error = "cannot open the store: ${ErrorCodes.of(t).second}")
        }
        val report = try {
            client.backgroundSync(budgetMs.toULong())
        } catch (t: Throwable) {
            return BackgroundRun(Outcome.FAILED, error = ErrorCodes.of(t).second)
        }
        val notify = notificationsEnabled && !isForeground() && report.newMessages.isNotEmpty()
        return BackgroundRun(
            outcomeOf(report),
            report = report,
            error = report.error,
            notifications = if (notify) NotificationContent.forPreviews(report.newMessages) else emptyList(),
        )
    }
}
