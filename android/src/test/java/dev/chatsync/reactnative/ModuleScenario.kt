// The module's own code path against real parts: ChatSyncRuntime and BackgroundSync (exactly as
// the React module and the JobScheduler job call them) over the generated bindings, the real core
// and the real reference server on loopback, which this file starts and SIGKILLs itself. Only
// the Android shell around them (Context, SharedPreferences, NotificationManager) is not here.
//
// Environment: CHATSYNC_SERVER_BIN (path of chatsync-server). The libchatsync it loads comes
// from -Djna.library.path.
package dev.chatsync.reactnative

import dev.chatsync.AppState
import dev.chatsync.BackgroundOutcome
import dev.chatsync.ChatClient
import dev.chatsync.ChatException
import dev.chatsync.ClientConfig
import dev.chatsync.ClientEvent
import dev.chatsync.MessageState
import dev.chatsync.NetworkStatus
import dev.chatsync.TokenSource
import java.io.File
import java.io.IOException
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.runBlocking

private const val DEADLINE_MS = 20_000L

/** The reference server as a child process on a free loopback port. */
private class ServerProcess(private val bin: String, private val db: File, private val log: File) {
    val port: Int = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
    val url = "http://127.0.0.1:$port"
    private var process: Process? = null

    fun start() {
        val p = ProcessBuilder(bin, "--addr", "127.0.0.1:$port", "--db", db.path)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log))
            .start()
        process = p
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15)
        while (true) {
            check(p.isAlive) { "server exited: ${log.readText().takeLast(2000)}" }
            try {
                Socket().use { it.connect(InetSocketAddress("127.0.0.1", port), 200) }
                return
            } catch (_: IOException) {
            }
            check(System.nanoTime() < deadline) { "server did not listen on $port within 15 s" }
            Thread.sleep(20) // poll interval of the bounded wait above
        }
    }

    /** SIGKILL, as when the network drops: no goodbye. */
    fun kill() {
        process?.let { it.destroyForcibly(); check(it.waitFor(10, TimeUnit.SECONDS)) { "server did not die" } }
        process = null
    }
}

/** Polls [step] until [done] holds, within a deadline: a bounded wait on a real condition. */
private fun <T> until(what: String, step: () -> T, done: (T) -> Boolean): T {
    val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
    while (true) {
        val value = step()
        if (done(value)) return value
        check(System.nanoTime() < deadline) { "not reached within $DEADLINE_MS ms: $what (last: $value)" }
        Thread.sleep(50) // poll interval of the bounded wait above
    }
}

/** The scenario's tests, in order (each builds on the previous one's state). */
class ModuleScenario private constructor(private val serverBin: String?) {
    private val work: File = Files.createTempDirectory("chatsync-rn-android").toFile()
    private val filesDir = File(work, "files") // the app's Context.getFilesDir()
    private val server by lazy {
        ServerProcess(serverBin ?: error("CHATSYNC_SERVER_BIN is not set"), File(work, "server.db"), File(work, "server.log"))
    }
    private val events = LinkedBlockingQueue<ClientEvent>()
    private val sink: (ClientEvent) -> Unit = { events.add(it) }
    private lateinit var options: ChatSyncOptions
    private lateinit var bob: ChatClient
    private lateinit var roomId: String
    private val alice = StoredUser("alice")

    private fun aliceClient(): ChatClient = ChatSyncRuntime.current() ?: error("alice's client is not open")

    /** Bob's phone sends: queued, then flushed by a sync (bob's scheduler is not started). */
    private fun bobSays(text: String) {
        runBlocking { bob.sendText(roomId, text) }
        until("bob's '$text' accepted by the server", { runBlocking { bob.syncOnce() } }) { it.pending == 0u && it.failed == 0u }
    }

    private fun awaitEvent(what: String, matches: (ClientEvent) -> Boolean): ClientEvent {
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
        while (true) {
            val left = deadline - System.nanoTime()
            check(left > 0) { "no event '$what' within $DEADLINE_MS ms" }
            val event = events.poll(left, TimeUnit.NANOSECONDS) ?: continue
            if (matches(event)) return event
        }
    }

    val tests: List<Pair<String, () -> Unit>> = listOf(
        "scenario: login through the module's options opens a started client that goes online" to {
            server.start()
            options = ChatSyncOptions.fromJs(
                mapOf("serverUrl" to server.url, "probe" to mapOf("timeoutMs" to 500.0, "intervalMs" to 200.0)),
            )
            ChatSyncRuntime.addSink(sink)
            ChatSyncRuntime.setAppState(AppState.ACTIVE)
            val client = ChatSyncRuntime.open(filesDir, options, alice)
            ChatSyncRuntime.start()
            val session = BridgeValues.session(runBlocking { client.login("Alice", null) })
            eq(session["user"], mapOf("id" to "alice", "name" to "Alice"), "session user")
            check(File(filesDir, "chatsync/616c696365").isDirectory) { "store not in files/chatsync/<hex user id>" }
            awaitEvent("online") { it == ClientEvent.NetworkStatusChanged(NetworkStatus.ONLINE) }
            eq(ChatSyncRuntime.status.networkStatus, NetworkStatus.ONLINE, "getStatus() follows the events")
            eq(ChatSyncRuntime.isForeground, true, "foreground")
        },
        "scenario: the same user and options keep the client; other options reopen it" to {
            val first = aliceClient()
            eq(ChatSyncRuntime.open(filesDir, options, alice) === first, true, "same client")
            val changed = options.copy(pageSize = 20)
            val reopened = ChatSyncRuntime.open(filesDir, changed, alice)
            check(reopened !== first) { "changed options must reopen" }
            // The old client is shut down: the store is free again for the new one.
            eq(runBlocking { reopened.session() }?.user?.id, "alice", "session survives the reopen")
            ChatSyncRuntime.open(filesDir, options, alice)
            ChatSyncRuntime.start()
        },
        "scenario: a message from another phone arrives as an event and reads back in the core's shape" to {
            bob = ChatClient(
                ClientConfig(serverUrl = server.url, dataDir = File(work, "bob").path, userId = "bob", token = TokenSource.DevTokenRoute),
            )
            runBlocking { bob.login("Bob", null) }
            roomId = runBlocking { bob.openDirectRoom("alice") }.id
            val room = BridgeValues.room(runBlocking { aliceClient().openDirectRoom("bob") })
            eq(room["id"], roomId, "one direct room for both")
            events.clear()
            bobSays("hi alice")
            awaitEvent("messagesChanged in the room") { it is ClientEvent.MessagesChanged && it.roomId == roomId }
            val messages = until("bob's message stored", { BridgeValues.messages(aliceClient().messages(roomId, 50u, null)) }) { list ->
                list.any { (it as Map<*, *>)["text"] == "hi alice" }
            }
            assertBridgeSafe(messages)
            @Suppress("UNCHECKED_CAST")
            val m = messages.first { (it as Map<*, *>)["text"] == "hi alice" } as Map<String, Any?>
            eq(m["state"], "sent", "sent")
            eq((m["sender"] as Map<*, *>)["name"], "Bob", "sender name")
            check(m["serverId"] is Double && m["id"] == (m["serverId"] as Double).toLong().toString()) { "ids: $m" }
        },
        "scenario: a full page (50) reads from the store and converts for the bridge (measured)" to {
            runBlocking { repeat(59) { i -> bob.sendText(roomId, "filler $i") } }
            until("bob's fillers accepted", { runBlocking { bob.syncOnce() } }) { it.pending == 0u && it.failed == 0u }
            until("alice holds a full page", { runBlocking { aliceClient().syncOnce() }; aliceClient().messages(roomId, 50u, null) }) { it.size == 50 }
            val reads = 200
            val t0 = System.nanoTime()
            var page: List<Any?> = emptyList()
            repeat(reads) { page = BridgeValues.messages(aliceClient().messages(roomId, 50u, null)) }
            val perRead = (System.nanoTime() - t0) / reads / 1000
            eq(page.size, 50, "page")
            eq((page.first() as Map<*, *>)["text"], "filler 58", "newest first")
            println("measure: getMessages(50) = store read + bridge conversion: $perRead us per call (JVM, debug build of the core)")
        },
        "scenario: a send while the server is down is a pending echo on the bridge, sent after restart" to {
            server.kill()
            ChatSyncRuntime.setReachable(false)
            val echo = BridgeValues.message(runBlocking { aliceClient().sendText(roomId, "sent while offline") })
            eq(echo["state"], "pending", "pending")
            eq(echo["serverId"], null, "no server id yet")
            val localId = echo["localId"] as String
            eq(echo["id"], localId, "echo keyed by its local id")
            server.start()
            ChatSyncRuntime.setReachable(true)
            val sent = until("the echo is sent", {
                runCatching { runBlocking { aliceClient().syncOnce() } }
                aliceClient().messages(roomId, 50u, null).firstOrNull { it.localId == localId }
            }) { it != null && it.state == MessageState.SENT }!!
            eq(sent.text, "sent while offline", "text")
            check(until("bob receives it", { runBlocking { bob.syncOnce() }; bob.messages(roomId, 50u, null) }) { l -> l.any { it.text == "sent while offline" } }.isNotEmpty()) { "bob" }
        },
        "scenario: the background job's cold start restores the stored user and lists a notification" to {
            // The process the OS starts for the job has no client yet and the app is not visible.
            ChatSyncRuntime.setAppState(AppState.BACKGROUND)
            ChatSyncRuntime.close()
            eq(ChatSyncRuntime.current(), null, "closed")
            bobSays("ping for the background")
            val stored = ChatSyncOptions.fromStored(options.toStored())
            val t0 = System.nanoTime()
            val run = runBlocking {
                BackgroundSync.run(
                    open = { ChatSyncRuntime.restore(filesDir, stored, alice) },
                    budgetMs = 10_000,
                    notificationsEnabled = true,
                    isForeground = { ChatSyncRuntime.isForeground },
                )
            }
            println("measure: background run from a cold runtime (open store + sync + previews) took ${(System.nanoTime() - t0) / 1_000_000} ms")
            eq(run.outcome, BackgroundSync.Outcome.DONE, "outcome (${run.error})")
            eq(run.report?.outcome, BackgroundOutcome.COMPLETED, "completed within budget")
            eq(run.notifications.size, 1, "one notification")
            eq(run.notifications[0].roomId, roomId, "room")
            eq(run.notifications[0].title, "Bob", "title")
            eq(run.notifications[0].text, "ping for the background", "text")
            check(ChatSyncRuntime.current() != null) { "the job's client stays for the process" }
        },
        "scenario: no notification while the app is in the foreground, or when disabled" to {
            bobSays("seen in the app")
            val run = runBlocking {
                BackgroundSync.run(open = { ChatSyncRuntime.current() }, budgetMs = 10_000, notificationsEnabled = true, isForeground = { true })
            }
            eq(run.outcome, BackgroundSync.Outcome.DONE, "outcome (${run.error})")
            eq(run.report?.newMessages?.map { it.preview }, listOf("seen in the app"), "the core saw it")
            eq(run.notifications, emptyList<RoomNotification>(), "but nothing is posted")
            bobSays("muted")
            val muted = runBlocking {
                BackgroundSync.run(open = { ChatSyncRuntime.current() }, budgetMs = 10_000, notificationsEnabled = false, isForeground = { false })
            }
            eq(muted.notifications, emptyList<RoomNotification>(), "notifications off")
        },
        "scenario: the job reports nobody logged in, and a store it cannot open as retry" to {
            val nobody = runBlocking { BackgroundSync.run(open = { ChatSyncRuntime.restore(filesDir, options, null) }, notificationsEnabled = true, isForeground = { false }) }
            eq(nobody.outcome, BackgroundSync.Outcome.NOBODY_LOGGED_IN, "no user")
            // Another process holds the store: the core answers Busy and the job retries later.
            val held = ChatClient(options.toClientConfig(StoredUser("carol"), ChatSyncRuntime.dataDir(filesDir, StoredUser("carol")).path))
            try {
                val busy = runBlocking {
                    BackgroundSync.run(open = { ChatSyncRuntime.open(filesDir, options, StoredUser("carol")) }, notificationsEnabled = true, isForeground = { false })
                }
                eq(busy.outcome, BackgroundSync.Outcome.RETRY, "retry")
                check(busy.error?.contains("cannot open the store") == true) { "error: ${busy.error}" }
            } finally {
                held.shutdown()
                held.destroy()
            }
        },
        "scenario: a refused token ends the job as UNAUTHORIZED, not DONE, and not rescheduled early" to {
            val refusedOptions = options.copy(auth = AuthOption.Fixed("not-a-token"))
            val dave = StoredUser("dave")
            val client = ChatClient(refusedOptions.toClientConfig(dave, ChatSyncRuntime.dataDir(filesDir, dave).path))
            try {
                val run = runBlocking {
                    BackgroundSync.run(open = { client }, budgetMs = 10_000, notificationsEnabled = true, isForeground = { false })
                }
                eq(run.outcome, BackgroundSync.Outcome.UNAUTHORIZED, "outcome (${run.error})")
                eq(run.report?.retryLater, false, "retrying will not help")
                check(run.error?.startsWith("unauthorized: ") == true) { "error: ${run.error}" }
            } finally {
                client.shutdown()
                client.destroy()
            }
        },
        "scenario: the core's typed errors reach JS as codes with its message" to {
            val client = ChatSyncRuntime.restore(filesDir, options, alice)!!
            val empty = throws<ChatException> { runBlocking { client.sendText(roomId, "") } }
            eq(ErrorCodes.of(empty).first, ErrorCodes.INVALID_INPUT, "empty text")
            val busy = throws<ChatException> {
                ChatClient(options.toClientConfig(alice, ChatSyncRuntime.dataDir(filesDir, alice).path)).destroy()
            }
            eq(ErrorCodes.of(busy).first, ErrorCodes.BUSY, "store held by the runtime (${busy.message})")
            check(ErrorCodes.of(busy).second.isNotBlank()) { "message" }
            // Logout: the store stays, the client is gone.
            ChatSyncRuntime.close()
            eq(ChatSyncRuntime.current(), null, "logged out")
            check(File(filesDir, "chatsync/616c696365").isDirectory) { "the store stays on the device" }
        },
    )

    /** Stops the server and the clients, removes the temp folder. */
    fun close() {
        runCatching { ChatSyncRuntime.removeSink(sink) }
        runCatching { ChatSyncRuntime.close() }
        if (this::bob.isInitialized) runCatching { bob.shutdown(); bob.destroy() }
        runCatching { server.kill() }
        work.deleteRecursively()
    }

    companion object {
        /** The scenario with the server binary named by CHATSYNC_SERVER_BIN. */
        fun fromEnvironment() = ModuleScenario(System.getenv("CHATSYNC_SERVER_BIN"))
    }
}
