// Idiomatic Kotlin over the generated bindings (chatsync.kt, same package): the listener
// callbacks as cold Flows, and the few lines that apply a view's diffs to a list. Ship this file
// next to the generated one.
package dev.chatsync

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.flow.map

/**
 * Subscribes with [subscribe] for as long as the flow is collected: a cold [Flow] of what the
 * listener gets, unsubscribed (and its native handle freed) when collection ends, cancellation
 * included. Buffered without bound so the core's listener thread never blocks on a slow
 * collector; updates are small and collectors are expected to keep up.
 */
private fun <T> listenerFlow(subscribe: ((T) -> Unit) -> Subscription): Flow<T> = callbackFlow {
    val subscription = subscribe { trySend(it) }
    awaitClose {
        subscription.cancel()
        subscription.close() // frees the native handle now, not at garbage collection
    }
}.buffer(Channel.UNLIMITED)

/**
 * Every [ClientEvent] of this client: the current state first (network, sync, outbox), then
 * every change. After `shutdown()` the last one is `SyncStateChanged(STOPPED)`.
 */
fun ChatClient.events(): Flow<ClientEvent> = listenerFlow { send ->
    subscribe(object : ClientListener {
        override fun onEvent(event: ClientEvent) = send(event)
    })
}

/** The network status, current value first. */
fun ChatClient.networkStatusFlow(): Flow<NetworkStatus> =
    events().filterIsInstance<ClientEvent.NetworkStatusChanged>().map { it.status }

/** The sync engine's state, current value first. */
fun ChatClient.syncStateFlow(): Flow<SyncState> =
    events().filterIsInstance<ClientEvent.SyncStateChanged>().map { it.state }

/** Changes to the messages of one room (ids of the added, replaced or removed messages). */
fun ChatClient.messageChanges(roomId: String): Flow<List<String>> =
    events().filterIsInstance<ClientEvent.MessagesChanged>().filter { it.roomId == roomId }.map { it.ids }

/** The timeline's updates as they come: `[Reset]` first, then the diffs of each change. */
fun Timeline.diffs(): Flow<List<TimelineDiff>> = listenerFlow { send ->
    subscribe(object : TimelineListener {
        override fun onUpdate(diffs: List<TimelineDiff>) = send(diffs)
    })
}

/**
 * What the timeline shows (oldest first) after each update: the current items first, then the
 * list again after every change. Each value is a new list; render it.
 */
fun Timeline.itemsFlow(): Flow<List<ChatMessage>> = diffs().applied { list, diffs -> list.applyTimelineDiffs(diffs) }

/**
 * Opens the timeline of [roomId] for as long as the flow is collected (closed when collection
 * ends) and emits what it shows: the way to render a room when the screen does not paginate.
 */
fun ChatClient.timelineItems(roomId: String): Flow<List<ChatMessage>> = flow {
    timeline(roomId).use { emitAll(it.itemsFlow()) }
}

/** The room list's updates as they come: `[Reset]` first, then the diffs of each change. */
fun RoomList.diffs(): Flow<List<RoomListDiff>> = listenerFlow { send ->
    subscribe(object : RoomListListener {
        override fun onUpdate(diffs: List<RoomListDiff>) = send(diffs)
    })
}

/** The rooms (most recently active first) after each update, current list first. */
fun RoomList.roomsFlow(): Flow<List<RoomSummary>> = diffs().applied { list, diffs -> list.applyRoomListDiffs(diffs) }

/** Applies a timeline's diffs in order: afterwards the list equals `Timeline.items()`. */
fun MutableList<ChatMessage>.applyTimelineDiffs(diffs: List<TimelineDiff>) {
    for (d in diffs) when (d) {
        is TimelineDiff.Reset -> { clear(); addAll(d.items) }
        is TimelineDiff.PushBack -> add(d.item)
        is TimelineDiff.PushFront -> add(0, d.item)
        is TimelineDiff.Insert -> add(d.index.toInt(), d.item)
        is TimelineDiff.Set -> set(d.index.toInt(), d.item)
        is TimelineDiff.Remove -> removeAt(d.index.toInt())
    }
}

/** Applies the room list's diffs in order: afterwards the list equals `RoomList.rooms()`. */
fun MutableList<RoomSummary>.applyRoomListDiffs(diffs: List<RoomListDiff>) {
    for (d in diffs) when (d) {
        is RoomListDiff.Reset -> { clear(); addAll(d.items) }
        is RoomListDiff.PushBack -> add(d.item)
        is RoomListDiff.PushFront -> add(0, d.item)
        is RoomListDiff.Insert -> add(d.index.toInt(), d.item)
        is RoomListDiff.Set -> set(d.index.toInt(), d.item)
        is RoomListDiff.Remove -> removeAt(d.index.toInt())
    }
}

/** Folds updates into a list, emitting a snapshot after each. */
private fun <T, D> Flow<List<D>>.applied(apply: (MutableList<T>, List<D>) -> Unit): Flow<List<T>> = flow {
    val list = ArrayList<T>()
    collect { diffs ->
        apply(list, diffs)
        emit(list.toList())
    }
}
