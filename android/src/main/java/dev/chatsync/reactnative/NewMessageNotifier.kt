// Posts the local notifications the Rust host planned for a background run (which rooms, what
// text: decided in bindings/src/notifications.rs). Tapping one opens the app's launcher activity
// with the room id as an extra (`chatsyncRoomId`).
package dev.chatsync.reactnative

import android.app.NotificationManager
import android.app.PendingIntent
import android.content.Context
import android.content.Intent
import android.content.pm.PackageManager
import android.os.Build
import dev.chatsync.RoomNotification

/** Posts [RoomNotification]s. */
object NewMessageNotifier {
    /** Intent extra carrying the room of a tapped notification. */
    const val EXTRA_ROOM_ID = "chatsyncRoomId"

    private const val POST_NOTIFICATIONS = "android.permission.POST_NOTIFICATIONS"

    /** With the room's key as the tag, one id for all: the tag tells rooms apart. */
    private const val NOTIFICATION_ID = 1

    /** Whether the app may post (Android 13 asks the user for POST_NOTIFICATIONS). */
    fun canPost(context: Context): Boolean =
        Build.VERSION.SDK_INT < 33 || context.checkSelfPermission(POST_NOTIFICATIONS) == PackageManager.PERMISSION_GRANTED

    /** Posts one notification per room, replacing an older one of the same room (same tag). */
    fun post(context: Context, notifications: List<RoomNotification>) {
        if (notifications.isEmpty() || !canPost(context)) return
        val manager = context.getSystemService(Context.NOTIFICATION_SERVICE) as NotificationManager
        for (n in notifications) {
            val builder = NotificationChannels.builder(context)
                .setSmallIcon(context.applicationInfo.icon)
                .setContentTitle(n.title)
                .setContentText(n.body)
                .setAutoCancel(true)
            openAppIntent(context, n)?.let { builder.setContentIntent(it) }
            manager.notify(n.key, NOTIFICATION_ID, builder.build())
        }
    }

    private fun openAppIntent(context: Context, n: RoomNotification): PendingIntent? {
        val launch: Intent = context.packageManager.getLaunchIntentForPackage(context.packageName) ?: return null
        launch.putExtra(EXTRA_ROOM_ID, n.roomId)
        launch.addFlags(Intent.FLAG_ACTIVITY_NEW_TASK or Intent.FLAG_ACTIVITY_SINGLE_TOP)
        return PendingIntent.getActivity(
            context, n.key.hashCode(), launch, PendingIntent.FLAG_UPDATE_CURRENT or PendingIntent.FLAG_IMMUTABLE,
        )
    }
}
