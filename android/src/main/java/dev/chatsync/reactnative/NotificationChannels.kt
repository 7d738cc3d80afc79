// The notification channel (Android 8+). The only file using API 26 classes: the compile check
// here runs against android.jar of API 23, which lacks them, so it compiles a stand-in with the
// same signature (scripts/rn/NotificationChannelsApi23.kt) and names this file as not compiled.
package dev.chatsync.reactnative

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.content.Context
import android.os.Build

/** The channel "New messages" and notification builders bound to it. */
object NotificationChannels {
    /** Channel id of new-message notifications. */
    const val NEW_MESSAGES = "chatsync.new_messages"

    /** A builder on the new-messages channel (creating it on first use, Android 8+). */
    fun builder(context: Context): Notification.Builder {
        if (Build.VERSION.SDK_INT < 26) {
            @Suppress("DEPRECATION")
            return Notification.Builder(context)
        }
        val manager = context.getSystemService(NotificationManager::class.java)
        if (manager.getNotificationChannel(NEW_MESSAGES) == null) {
            manager.createNotificationChannel(
                NotificationChannel(NEW_MESSAGES, "New messages", NotificationManager.IMPORTANCE_DEFAULT),
            )
        }
        return Notification.Builder(context, NEW_MESSAGES)
    }
}
