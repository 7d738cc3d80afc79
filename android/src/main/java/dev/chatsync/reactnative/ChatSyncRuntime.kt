// The process-wide owner of the core client. It outlives React (the background job opens it in a
// process the OS cold-started without any UI) and there is one per process, because the sled
// store can be held by one client only. No Android types: the JVM scenario drives it against the
// real server.
package dev.chatsync.reactnative

import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import dev.chatsync.AppState
import dev.chatsync.ChatClient
import dev.chatsync.ClientEvent
import dev.chatsync.ClientListener
import dev.chatsync.Subscription

/** Holds the one [ChatClient] of the process and fans its events out to the React module. */
object ChatSyncRuntime {
    /**
     * Serializes open/start/close, which may take a while (disk I/O, waiting for a store). The
     * lifecycle and network hints never take it: they run on the UI thread and read [client].
     */
    private val lock = Any()

    @Volatile private var client: ChatClient? = null
    private var clientUser: StoredUser? = null
    private var clientOptions: ChatSyncOptions? = null
    private var subscription: Subscription? = null
    private var started = false

    /** Last reachability hint from [NetworkMonitor], replayed to a newly opened client. */
    @Volatile private var reachable: Boolean? = null

    /** Last app state from the React module, replayed to a newly opened client. */
    @Volatile private var appState: AppState = AppState.BACKGROUND

    /** The latest status the listener saw (`getStatus()`). */
    @Volatile var status: ClientStatus = ClientStatus()
        private set

    private val sinks = CopyOnWriteArrayList<(ClientEvent) -> Unit>()

    // Events arrive on a core thread, one at a time; sinks must return quickly.
    private val listener = object : ClientListener {
        override fun onEvent(event: ClientEvent) {
            status = status.apply(event)
            for (sink in sinks) {
                try {
                    sink(event)
                } catch (_: Throwable) {
                    // A failing sink (React torn down mid-emit) must not starve the others.
                }
            }
        }
    }

    /** Whether an activity of the app is in the foreground (no notification then). */
    val isForeground: Boolean get() = appState == AppState.ACTIVE

    /** Adds a receiver of every event of the current and future clients. */
    fun addSink(sink: (ClientEvent) -> Unit) { sinks.add(sink) }

    /** Removes a receiver added with [addSink]. */
    fun removeSink(sink: (ClientEvent) -> Unit) { sinks.remove(sink) }

    /** The open client, or null when nobody is logged in in this process yet. */
    fun current(): ChatClient? = client

    /** The store folder of [user] under the app's files folder [filesDir]. */
    fun dataDir(filesDir: File, user: StoredUser): File = File(filesDir, "chatsync/${user.directoryName}")

    /**
     * The client for [user], opened on first use (disk I/O: never call on the UI thread). A
     * client of another user, or of the same user with other options, is shut down first.
     */
    fun open(filesDir: File, options: ChatSyncOptions, user: StoredUser): ChatClient = synchronized(lock) {
        client?.let { existing -> if (clientUser == user && clientOptions == options) return existing }
        closeLocked()
        val dir = dataDir(filesDir, user)
        val opened = ChatClient(options.toClientConfig(user, dir.absolutePath))
        status = ClientStatus()
        subscription = opened.subscribe(listener)
        client = opened
        clientUser = user
        clientOptions = options
        // Replayed after publishing the client, so a hint arriving meanwhile is not lost (a
        // hint applied twice is harmless).
        reachable?.let { opened.setNetworkReachable(it) }
        opened.setAppState(appState)
        opened
    }

    /**
     * The client of the stored user, opened from the stored settings: how the background job
     * gets one when the OS started the process for it. Null when nobody is logged in.
     */
    fun restore(filesDir: File, options: ChatSyncOptions?, user: StoredUser?): ChatClient? {
        if (options == null || user == null) return null
        return open(filesDir, options, user)
    }

    /** Starts the foreground scheduler (long-poll, probe). The background job never calls it. */
    fun start() = synchronized(lock) {
        val c = client ?: return@synchronized
        if (!started) {
            c.start()
            started = true
        }
    }

    /** Shuts the client down (logout); the store stays on disk. */
    fun close() = synchronized(lock) { closeLocked() }

    private fun closeLocked() {
        // Unpublish first, so no new call reaches a client being shut down.
        val closing = client
        val closingSubscription = subscription
        client = null
        subscription = null
        clientUser = null
        clientOptions = null
        started = false
        closingSubscription?.let { s -> runCatching { s.close() } }
        closing?.let { c ->
            runCatching { c.shutdown() }
            runCatching { c.destroy() }
        }
        status = ClientStatus()
    }

    /** The platform's reachability hint, forwarded to the core (and to the next client). */
    fun setReachable(value: Boolean) {
        reachable = value
        current()?.let { runCatching { it.setNetworkReachable(value) } }
    }

    /** The app's lifecycle state, forwarded to the core (and to the next client). */
    fun setAppState(state: AppState) {
        appState = state
        current()?.let { runCatching { it.setAppState(state) } }
    }
}
