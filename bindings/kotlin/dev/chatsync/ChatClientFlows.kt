// Idiomatic Kotlin over the generated bindings (chatsync.kt, same package): the listener
// callbacks of ChatClient as cold Flows. Ship this file next to the generated one.
package dev.chatsync

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.filter
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.map

/**
 * Every [ClientEvent] of this client as a cold [Flow]: each collector subscribes its own
 * listener, gets the current state first (network, sync, outbox), then every change, and
 * unsubscribes when its collection ends (cancellation included).
 *
 * Events are buffered without bound so the core's listener task never blocks on a slow
 * collector; events are small and collectors are expected to keep up.
 */
fun ChatClient.events(): Flow<ClientEvent> = callbackFlow {
    val subscription = subscribe(object : ClientListener {
        override fun onEvent(event: ClientEvent) {
            trySend(event)
        }
    })
    awaitClose {
        subscription.cancel()
        subscription.close() // frees the native handle now, not at garbage collection
    }
}.buffer(Channel.UNLIMITED)

/** The network status, current value first. */
fun ChatClient.networkStatusFlow(): Flow<NetworkStatus> =
    events().filterIsInstance<ClientEvent.NetworkStatusChanged>().map { it.status }

/** The sync engine's state, current value first. */
fun ChatClient.syncStateFlow(): Flow<SyncState> =
    events().filterIsInstance<ClientEvent.SyncStateChanged>().map { it.state }

/** Changes to the messages of one room (ids of the added, replaced or removed messages). */
fun ChatClient.messageChanges(roomId: String): Flow<List<String>> =
    events().filterIsInstance<ClientEvent.MessagesChanged>().filter { it.roomId == roomId }.map { it.ids }
