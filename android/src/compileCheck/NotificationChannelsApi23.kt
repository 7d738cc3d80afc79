// Stand-in for src/main/.../NotificationChannels.kt in the compile check of scripts/test-rn.sh,
// which compiles against android.jar of API 23 (no NotificationChannel, no
// Notification.Builder(Context, String)). Same signature, API-23 body. Never shipped.
package dev.chatsync.reactnative

import android.app.Notification
import android.content.Context

object NotificationChannels {
    const val NEW_MESSAGES = "chatsync.new_messages"

    @Suppress("DEPRECATION")
    fun builder(context: Context): Notification.Builder = Notification.Builder(context)
}
