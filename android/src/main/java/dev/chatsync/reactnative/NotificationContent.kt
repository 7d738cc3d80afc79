// What the background job shows for new messages: one notification per room, saying who wrote
// and what (or how many). Plain Kotlin, so the JVM tests check the wording and grouping.
package dev.chatsync.reactnative

import dev.chatsync.NewMessagePreview

/** One local notification to post. */
data class RoomNotification(
    /** Stable per room, so a newer batch replaces the room's notification instead of stacking. */
    val id: Int,
    val roomId: String,
    val title: String,
    val text: String,
    /** Server id of the newest message, to order and deduplicate. */
    val newestMessageId: ULong,
)

/** Builds notifications from a background sync's previews. */
object NotificationContent {
    /** Notifications per room, the room with the newest message first. */
    fun forPreviews(previews: List<NewMessagePreview>): List<RoomNotification> =
        previews.groupBy { it.roomId }
            .map { (roomId, inRoom) ->
                val newest = inRoom.maxByOrNull { it.messageId }!!
                val senders = inRoom.map { it.senderName }.distinct()
                val title = if (senders.size == 1) senders[0] else senders.joinToString(", ")
                val text = if (inRoom.size == 1) newest.preview else "${inRoom.size} new messages: ${newest.preview}"
                RoomNotification(idFor(roomId), roomId, title, text, newest.messageId)
            }
            .sortedByDescending { it.newestMessageId }

    /** A notification id for a room, stable across processes (String.hashCode is specified). */
    fun idFor(roomId: String): Int = ("chatsync:$roomId").hashCode()
}
