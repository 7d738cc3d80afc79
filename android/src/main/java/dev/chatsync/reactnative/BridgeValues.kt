// The shapes that cross the bridge to JS: the bindings' records and events as plain maps and
// lists (what `Arguments.makeNativeMap` / `makeNativeArray` take), in exactly the shapes
// src/types.ts declares: the core's shapes (GiftedChat's is made in JS, src/convert.ts). Plain
// Kotlin, so the JVM tests check them without a device.
package dev.chatsync.reactnative

import dev.chatsync.BackgroundSyncReport
import dev.chatsync.ChatMessage
import dev.chatsync.ChatUser
import dev.chatsync.ClientEvent
import dev.chatsync.LoadOlderResult
import dev.chatsync.MessageState
import dev.chatsync.NetworkStatus
import dev.chatsync.OutboxEntry
import dev.chatsync.RoomSummary
import dev.chatsync.Session
import dev.chatsync.SyncReport
import dev.chatsync.SyncState

/** Names of the events sent to JS; src/convert.ts's `NativeEventNames` must match. */
object EventNames {
    const val MESSAGES_CHANGED = "ChatSyncMessagesChanged"
    const val NETWORK_STATUS = "ChatSyncNetworkStatus"
    const val SYNC_STATE = "ChatSyncSyncState"
    const val OUTBOX = "ChatSyncOutbox"
    const val UNAUTHORIZED = "ChatSyncUnauthorized"

    /** Every name, for `supportedEvents`-style checks. */
    val all = listOf(MESSAGES_CHANGED, NETWORK_STATUS, SYNC_STATE, OUTBOX, UNAUTHORIZED)
}

/** The latest status the listener saw, answered by `getStatus()`. */
data class ClientStatus(
    val networkStatus: NetworkStatus = NetworkStatus.UNKNOWN,
    val syncState: SyncState = SyncState.IDLE,
    val pending: UInt = 0u,
    val failed: UInt = 0u,
) {
    /** The status after [event]; message changes and a refused token leave it as it is. */
    fun apply(event: ClientEvent): ClientStatus = when (event) {
        is ClientEvent.NetworkStatusChanged -> copy(networkStatus = event.status)
        is ClientEvent.SyncStateChanged -> copy(syncState = event.state)
        is ClientEvent.OutboxChanged -> copy(pending = event.pending, failed = event.failed)
        is ClientEvent.MessagesChanged, is ClientEvent.Unauthorized -> this
    }
}

/** Conversions of the bindings' types to bridge values. */
object BridgeValues {
    /** JS numbers are doubles; ids stay exact up to 2^53, far beyond any server sequence. */
    private fun number(value: ULong): Double = value.toDouble()
    private fun number(value: UInt): Double = value.toDouble()

    fun user(u: ChatUser): Map<String, Any?> = buildMap {
        put("id", u.id)
        put("name", u.name)
        if (u.avatarUrl != null) put("avatarUrl", u.avatarUrl)
    }

    fun state(s: MessageState): String = when (s) {
        MessageState.SENT -> "sent"
        MessageState.PENDING -> "pending"
        MessageState.FAILED -> "failed"
    }

    /** A message in the core's shape; src/convert.ts makes GiftedChat's (and the `Date`). */
    fun message(m: ChatMessage): Map<String, Any?> = mapOf(
        "id" to m.id,
        "serverId" to m.serverId?.let(::number),
        "localId" to m.localId,
        "roomId" to m.roomId,
        "sender" to user(m.sender),
        "text" to m.text,
        "createdAt" to m.createdAt,
        "state" to state(m.state),
        "failureReason" to m.failureReason,
        "parts" to m.parts.map { p ->
            buildMap<String, Any?> {
                put("type", p.mimeType)
                if (p.content != null) put("content", p.content)
                if (p.extraJson != null) put("extraJson", p.extraJson)
            }
        },
    )

    fun messages(list: List<ChatMessage>): List<Any?> = list.map(::message)

    fun session(s: Session): Map<String, Any?> = mapOf("user" to user(s.user))

    fun room(r: RoomSummary): Map<String, Any?> = mapOf(
        "id" to r.id,
        "name" to r.name,
        "memberIds" to r.memberIds,
        "lastMessage" to r.lastMessage?.let(::message),
    )

    fun loadOlder(r: LoadOlderResult): Map<String, Any?> = mapOf(
        "messages" to messages(r.messages),
        "hasMore" to r.hasMore,
    )

    fun syncReport(r: SyncReport): Map<String, Any?> = mapOf(
        "online" to r.online,
        "newMessages" to r.newMessages.mapValues { number(it.value) },
        "sent" to number(r.sent),
        "pending" to number(r.pending),
        "failed" to number(r.failed),
    )

    fun outboxEntry(e: OutboxEntry): Map<String, Any?> = mapOf(
        "localId" to e.localId,
        "roomId" to e.roomId,
        "text" to e.text,
        "createdAt" to e.createdAt,
        "state" to state(e.state),
        "attempts" to number(e.attempts),
        "failureReason" to e.failureReason,
    )

    fun networkStatus(s: NetworkStatus): String = when (s) {
        NetworkStatus.UNKNOWN -> "unknown"
        NetworkStatus.ONLINE -> "online"
        NetworkStatus.OFFLINE -> "offline"
    }

    fun syncState(s: SyncState): String = when (s) {
        SyncState.IDLE -> "idle"
        SyncState.SYNCING -> "syncing"
        SyncState.LIVE -> "live"
        SyncState.BACKING_OFF -> "backing_off"
        SyncState.STOPPED -> "stopped"
    }

    fun status(s: ClientStatus): Map<String, Any?> = mapOf(
        "networkStatus" to networkStatus(s.networkStatus),
        "syncState" to syncState(s.syncState),
        "pending" to number(s.pending),
        "failed" to number(s.failed),
    )

    /** The event's JS name and payload. */
    fun event(e: ClientEvent): Pair<String, Map<String, Any?>> = when (e) {
        is ClientEvent.MessagesChanged -> EventNames.MESSAGES_CHANGED to mapOf("roomId" to e.roomId, "ids" to e.ids)
        is ClientEvent.NetworkStatusChanged -> EventNames.NETWORK_STATUS to mapOf("status" to networkStatus(e.status))
        is ClientEvent.SyncStateChanged -> EventNames.SYNC_STATE to mapOf("state" to syncState(e.state))
        is ClientEvent.OutboxChanged -> EventNames.OUTBOX to mapOf("pending" to number(e.pending), "failed" to number(e.failed))
        is ClientEvent.Unauthorized -> EventNames.UNAUTHORIZED to mapOf("reason" to e.reason)
    }

    /** A background run, for logs and the debug API. */
    fun backgroundReport(r: BackgroundSyncReport): Map<String, Any?> = mapOf(
        "outcome" to r.outcome.name.lowercase(),
        "retryLater" to r.retryLater,
        "online" to r.online,
        "newMessages" to number(r.newMessages.size.toUInt()),
        "sent" to number(r.sent),
        "pending" to number(r.pending),
        "failed" to number(r.failed),
        "error" to r.error,
    )
}
