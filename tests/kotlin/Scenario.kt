// The bindings scenario in Kotlin: the generated API (dev.chatsync) and its Flow wrappers,
// against the real reference server on loopback, which this program starts, SIGKILLs and
// restarts itself. The same scenario runs in Swift (tests/swift/main.swift).
//
// Environment: CHATSYNC_SERVER_BIN (path of chatsync-server), CHATSYNC_TEST_PORT (a free port).
// Prints one line per test, then `kotlin: N passed, N failed`; exits 1 on any failure.

import dev.chatsync.*
import java.io.File
import java.io.IOException
import java.net.HttpURLConnection
import java.net.InetSocketAddress
import java.net.Socket
import java.net.URI
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull

const val DEADLINE_MS = 20_000L

/** The reference server as a child process: started, SIGKILLed and restarted on one port and db. */
class Server(private val bin: String, val port: Int, private val db: File, private val log: File) {
    private var process: Process? = null
    val url = "http://127.0.0.1:$port"

    fun start() {
        val p = ProcessBuilder(bin, "--addr", "127.0.0.1:$port", "--db", db.path)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log))
            .start()
        process = p
        // Bounded wait on a real condition: the port accepts connections.
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

    /** SIGKILL: the server gets no chance to say goodbye, as when a network drops. */
    fun kill() {
        process?.let { it.destroyForcibly(); check(it.waitFor(10, TimeUnit.SECONDS)) { "server did not die" } }
        process = null
    }
}

/** Every event of a client, through the Flow wrapper, into a channel the test waits on. */
class EventLog(client: ChatClient, scope: CoroutineScope) {
    private val channel = Channel<ClientEvent>(Channel.UNLIMITED)
    val job: Job = scope.launch { client.events().collect { channel.send(it) } }

    suspend fun next(timeoutMs: Long = DEADLINE_MS): ClientEvent =
        withTimeoutOrNull(timeoutMs) { channel.receive() } ?: error("no event within $timeoutMs ms")

    suspend fun await(what: String, timeoutMs: Long = DEADLINE_MS, matches: (ClientEvent) -> Boolean): ClientEvent =
        withTimeoutOrNull(timeoutMs) {
            var found: ClientEvent? = null
            while (found == null) channel.receive().let { if (matches(it)) found = it }
            found
        } ?: error("no event '$what' within $timeoutMs ms")

    /** Events already delivered and not yet consumed. */
    fun drain(): List<ClientEvent> = generateSequence { channel.tryReceive().getOrNull() }.toList()
}

class Runner {
    var passed = 0
    var failed = 0

    fun test(name: String, body: suspend () -> Unit) {
        try {
            runBlocking { withTimeout(60_000) { body() } }
            passed++
            println("ok   $name")
        } catch (t: Throwable) {
            failed++
            println("FAIL $name: $t")
            t.printStackTrace(System.out)
        }
    }
}

fun expect(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

inline fun <reified E : Throwable> expectThrows(what: String, body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("$what: expected ${E::class.simpleName}, got $e", e)
    }
    throw AssertionError("$what: expected ${E::class.simpleName}, nothing thrown")
}

/** Repeats `step` until `done` holds, within a deadline (a bounded wait on a real condition). */
suspend fun <T> until(what: String, timeoutMs: Long = DEADLINE_MS, step: suspend () -> T, done: (T) -> Boolean): T {
    val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs)
    while (true) {
        val value = step()
        if (done(value)) return value
        check(System.nanoTime() < deadline) { "not reached within $timeoutMs ms: $what (last: $value)" }
        delay(50) // poll interval of the bounded wait above
    }
}

fun config(server: String, dir: File, user: String, token: TokenSource = TokenSource.DevTokenRoute) =
    ClientConfig(serverUrl = server, dataDir = dir.path, userId = user, token = token,
        probe = ProbeConfig(timeoutMs = 500uL, intervalMs = 200uL))

/** A token provider implemented in Kotlin: asks the dev route itself. */
class DevRouteTokenProvider(private val server: String) : TokenProvider {
    @Volatile var calls = 0
    override fun fetchToken(userId: String): String {
        calls++
        val conn = URI("$server/v1/token").toURL().openConnection() as HttpURLConnection
        conn.requestMethod = "POST"
        conn.doOutput = true
        conn.setRequestProperty("content-type", "application/json")
        conn.outputStream.use { it.write("{\"user_id\":\"$userId\"}".toByteArray()) }
        val body = conn.inputStream.use { it.readBytes().decodeToString() }
        return Regex("\"access_token\"\\s*:\\s*\"([^\"]+)\"").find(body)?.groupValues?.get(1)
            ?: throw TokenProviderException.Failed("no access_token in $body")
    }
}

class RefusingTokenProvider : TokenProvider {
    override fun fetchToken(userId: String): String = throw TokenProviderException.Failed("signed out")
}

/** Counts the events it gets; subscribed directly, without the Flow wrapper. */
class RecordingListener : ClientListener {
    val count = java.util.concurrent.atomic.AtomicInteger()
    override fun onEvent(event: ClientEvent) {
        count.incrementAndGet()
    }
}

fun List<ChatMessage>.withText(text: String) = filter { it.text == text }

fun main() {
    val bin = System.getenv("CHATSYNC_SERVER_BIN") ?: error("CHATSYNC_SERVER_BIN is not set")
    val port = System.getenv("CHATSYNC_TEST_PORT")?.toInt() ?: error("CHATSYNC_TEST_PORT is not set")
    val work = Files.createTempDirectory("chatsync-kotlin").toFile()
    val server = Server(bin, port, File(work, "server.db"), File(work, "server.log"))
    val scope = CoroutineScope(Dispatchers.Default + SupervisorJob())
    val r = Runner()
    server.start()

    lateinit var alice: ChatClient
    lateinit var bob: ChatClient
    lateinit var bobEvents: EventLog
    var roomId = ""

    r.test("configure two clients in temp dirs") {
        alice = ChatClient(config(server.url, File(work, "alice"), "alice"))
        bob = ChatClient(config(server.url, File(work, "bob"), "bob"))
        expect(alice.session() == null) { "a fresh store has no session" }
    }
    r.test("log in") {
        val session = alice.login("Alice", null)
        expect(session.user.id == "alice" && session.user.name == "Alice") { "session: $session" }
        expect(alice.session()?.user?.id == "alice") { "the session is stored" }
        bob.login("Bob", "https://example.invalid/bob.png")
    }
    r.test("open the direct room") {
        val room = alice.openDirectRoom("bob")
        val same = bob.openDirectRoom("alice")
        expect(room.id == same.id) { "both sides get one direct room: ${room.id} vs ${same.id}" }
        expect(room.memberIds.toSet() == setOf("alice", "bob")) { "members: ${room.memberIds}" }
        expect(alice.rooms().any { it.id == room.id }) { "the room is stored" }
        roomId = room.id
    }
    r.test("a listener gets the current state first") {
        bobEvents = EventLog(bob, scope)
        val first = List(3) { bobEvents.next() }
        expect(first.any { it is ClientEvent.NetworkStatusChanged }) { "network status first: $first" }
        expect(first.any { it is ClientEvent.SyncStateChanged }) { "sync state first: $first" }
        expect(first.any { it is ClientEvent.OutboxChanged }) { "outbox counts first: $first" }
    }
    r.test("send, and a second client receives it through the listener") {
        val echo = alice.sendText(roomId, "hello from kotlin")
        expect(echo.text == "hello from kotlin" && echo.localId != null) { "echo: $echo" }
        until("alice's outbox is flushed", step = { alice.syncOnce(); alice.outbox() }) { it.isEmpty() }
        bob.syncOnce()
        bobEvents.await("bob: messages changed in the room") { it is ClientEvent.MessagesChanged && it.roomId == roomId }
        val got = bob.messages(roomId, 50u, null).withText("hello from kotlin")
        expect(got.size == 1 && got[0].sent && got[0].user.id == "alice") { "bob has it once, sent: $got" }
    }
    r.test("offline: the server is killed, a send still gives a pending echo") {
        server.kill()
        val echo = alice.sendText(roomId, "sent while offline")
        expect(echo.pending && echo.state == MessageState.PENDING && !echo.sent) { "pending echo: $echo" }
        try {
            val report = alice.syncOnce()
            expect(!report.online && report.pending == 1u) { "offline report: $report" }
        } catch (e: ChatException.Offline) {
            expect(e.message!!.startsWith("offline")) { "readable message: ${e.message}" }
        }
        val outbox = alice.outbox()
        expect(outbox.size == 1 && outbox[0].state == MessageState.PENDING) { "still queued: $outbox" }
        val shown = alice.messages(roomId, 50u, null).withText("sent while offline")
        expect(shown.size == 1 && shown[0].pending) { "the echo is shown: $shown" }
    }
    r.test("back online: sync delivers exactly one copy") {
        server.start()
        until("alice's outbox is flushed", step = { runCatching { alice.syncOnce() }; alice.outbox() }) { it.isEmpty() }
        val mine = alice.messages(roomId, 50u, null).withText("sent while offline")
        expect(mine.size == 1 && mine[0].sent && mine[0].serverId != null) { "alice: one sent copy: $mine" }
        val theirs = until("bob has the offline message", step = { bob.syncOnce(); bob.messages(roomId, 50u, null) }) {
            it.withText("sent while offline").isNotEmpty()
        }
        expect(theirs.withText("sent while offline").size == 1) { "bob: exactly one copy: $theirs" }
        expect(theirs.withText("hello from kotlin").size == 1) { "and the first one still once: $theirs" }
    }
    r.test("a bad server URL is a typed error with a readable message, and creates no store") {
        val dir = File(work, "bad-url")
        val e = expectThrows<ChatException.InvalidInput>("bad URL") { ChatClient(config("not a url", dir, "alice")) }
        expect(e.message!!.startsWith("invalid input") && e.message!!.contains("not a url")) { "message: ${e.message}" }
        expect(!dir.exists()) { "no store was created for a bad URL" }
        expectThrows<ChatException.InvalidInput>("plain http to a remote host") {
            ChatClient(config("http://chat.example.com", File(work, "insecure"), "alice"))
        }
        val offline = expectThrows<ChatException.Offline>("nothing listens") {
            runBlocking { ChatClient(config("http://127.0.0.1:1", File(work, "dead"), "alice")).use { it.openDirectRoom("bob") } }
        }
        expect(offline.message!!.startsWith("offline")) { "message: ${offline.message}" }
    }
    r.test("an oversized text (over 16 KiB) is a typed error and queues nothing") {
        val before = alice.outbox()
        val e = expectThrows<ChatException.InvalidInput>("17 KiB text") {
            runBlocking { alice.sendText(roomId, "x".repeat(17 * 1024)) }
        }
        expect(e.message!!.contains("limit")) { "readable: ${e.message}" }
        expect(alice.outbox() == before) { "nothing queued: ${alice.outbox()}" }
    }
    r.test("a message the server rejects ends failed with its reason, store intact") {
        val echo = alice.sendText("no-such-room", "to nowhere")
        expect(echo.pending) { "queued first: $echo" }
        val failed = until("the server rejects it", step = { alice.syncOnce(); alice.outbox() }) {
            it.any { e -> e.localId == echo.localId && e.state == MessageState.FAILED }
        }.first { it.localId == echo.localId }
        expect(!failed.failureReason.isNullOrBlank()) { "a reason: $failed" }
        val shown = alice.messages("no-such-room", 50u, null).first { it.localId == echo.localId }
        expect(shown.failed && shown.state == MessageState.FAILED && shown.failureReason != null) { "shown as failed: $shown" }
        alice.discard(echo.localId!!)
        expect(alice.outbox().isEmpty()) { "nothing left queued: ${alice.outbox()}" }
        expect(alice.messages(roomId, 50u, null).withText("sent while offline").size == 1) { "earlier messages intact" }
    }
    r.test("token providers implemented in Kotlin: a working one, and a refusal as Unauthorized") {
        val provider = DevRouteTokenProvider(server.url)
        ChatClient(config(server.url, File(work, "carol"), "carol", TokenSource.Provider(provider))).use { carol ->
            val room = carol.openDirectRoom("alice")
            expect(room.memberIds.contains("carol")) { "room: $room" }
            expect(provider.calls >= 1) { "the provider was asked" }
        }
        val e = expectThrows<ChatException.Unauthorized>("refusing provider") {
            runBlocking {
                ChatClient(config(server.url, File(work, "dave"), "dave", TokenSource.Provider(RefusingTokenProvider()))).use {
                    it.openDirectRoom("alice")
                }
            }
        }
        expect(e.message!!.contains("signed out")) { "the provider's reason: ${e.message}" }
    }
    r.test("background_sync with a budget returns a report") {
        bob.sendText(roomId, "ping for the background")
        until("bob's outbox is flushed", step = { bob.syncOnce(); bob.outbox() }) { it.isEmpty() }
        val started = System.nanoTime()
        val report = alice.backgroundSync(5_000uL)
        val tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started)
        expect(tookMs < 6_000) { "within the budget: $tookMs ms" }
        expect(report.finished && report.online && report.error == null) { "report: $report" }
        expect(report.newMessages.any { it.senderId == "bob" && it.preview.contains("ping") }) { "previews: ${report.newMessages}" }
    }
    r.test("started: a message arrives live through the listener, without a sync call") {
        bobEvents.drain() // only events from here on
        bob.setAppState(AppState.ACTIVE)
        bob.start()
        alice.sendText(roomId, "live from kotlin")
        until("alice's outbox is flushed", step = { alice.syncOnce(); alice.outbox() }) { it.isEmpty() }
        val live = until("bob's scheduler stores it", step = { bob.messages(roomId, 50u, null) }) {
            it.withText("live from kotlin").isNotEmpty()
        }
        expect(live.withText("live from kotlin").size == 1) { "once: $live" }
        val id = live.withText("live from kotlin")[0].id
        bobEvents.await("bob's listener hears of it") { it is ClientEvent.MessagesChanged && it.roomId == roomId && id in it.ids }
    }
    r.test("typed flows: the current status first, then a room's message changes") {
        val status = withTimeout(DEADLINE_MS) { alice.networkStatusFlow().first() }
        expect(status == alice.networkStatus()) { "first value is the current status: $status vs ${alice.networkStatus()}" }
        withTimeout(DEADLINE_MS) { alice.syncStateFlow().first() }
        val changes = Channel<List<String>>(Channel.UNLIMITED)
        // Unconfined + undispatched: the flow subscribes before launch returns, so no change is missed.
        val job = scope.launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
            alice.messageChanges(roomId).collect { changes.send(it) }
        }
        val sent = bob.sendText(roomId, "for the flow")
        until("bob's outbox is flushed", step = { bob.syncOnce(); bob.outbox() }) { it.isEmpty() }
        val stored = until("alice has it", step = { alice.syncOnce(); alice.messages(roomId, 50u, null) }) {
            it.withText("for the flow").isNotEmpty()
        }.withText("for the flow")[0]
        withTimeout(DEADLINE_MS) { while (stored.id !in changes.receive()) { } }
        expect(sent.text == stored.text) { "same message" }
        job.cancelAndJoin()
    }
    r.test("cancelled and closed subscriptions get no more events") {
        val cancelled = RecordingListener()
        val dropped = RecordingListener()
        val cancelledSub = alice.subscribe(cancelled)
        val droppedSub = alice.subscribe(dropped)
        val open = EventLog(alice, scope)
        open.next()
        until("both got the current state", step = { cancelled.count.get() to dropped.count.get() }) {
            it.first > 0 && it.second > 0
        }
        cancelledSub.cancel() // explicitly
        droppedSub.close() // frees the handle; dropping it on the Rust side cancels
        val before = cancelled.count.get() to dropped.count.get()
        alice.sendText(roomId, "after cancel")
        until("flushed", step = { alice.syncOnce(); alice.outbox() }) { it.isEmpty() }
        val id = alice.messages(roomId, 50u, null).withText("after cancel")[0].id
        open.await("the open listener sees it stored") { it is ClientEvent.MessagesChanged && id in it.ids }
        val after = cancelled.count.get() to dropped.count.get()
        expect(after == before) { "no events after cancel/close: before $before, after $after" }
        open.job.cancelAndJoin()
    }
    r.test("a panic inside the library becomes ChatException.Internal") {
        val e = expectThrows<ChatException.Internal>("sync panic") { selftestPanic("boom from kotlin") }
        expect(e.message!!.contains("boom from kotlin")) { "message: ${e.message}" }
        val a = expectThrows<ChatException.Internal>("async panic") { runBlocking { selftestPanicAsync("async boom") } }
        expect(a.message!!.contains("async boom")) { "message: ${a.message}" }
    }
    r.test("recoverStore: a healthy store is left alone, a damaged one is rebuilt with its queue") {
        val dir = File(work, "dave")
        val cfg = config("http://127.0.0.1:1", dir, "dave")
        val queued = ChatClient(cfg).use { dave ->
            dave.login("Dave", null)
            listOf("kept 1", "kept 2").map { dave.sendText("r1", it).localId!! }
        }
        val healthy = recoverStore(cfg)
        expect(!healthy.recovered) { "healthy: $healthy" }
        // The disk garbles the start of the log: the store no longer opens.
        val db = File(dir, "db")
        val bytes = db.readBytes()
        for (i in 0 until minOf(4096, bytes.size)) bytes[i] = bytes[i].toInt().inv().toByte()
        db.writeBytes(bytes)
        expectThrows<ChatException.Storage>("damaged store") { ChatClient(cfg).close() }
        val report = recoverStore(cfg)
        expect(report.recovered && report.requeued == 2u && report.sessionRestored) { "rebuilt: $report" }
        expect(report.damagedDir != null && File(report.damagedDir!!).isDirectory) { "kept aside: $report" }
        ChatClient(cfg).use { dave ->
            expect(dave.outbox().map { it.localId } == queued) { "same txn ids: ${dave.outbox()}" }
        }
    }
    r.test("shutdown: later calls fail with ShutDown") {
        bobEvents.job.cancelAndJoin()
        alice.shutdown()
        expectThrows<ChatException.ShutDown>("after shutdown") { runBlocking { alice.syncOnce() } }
        bob.shutdown()
        alice.close()
        bob.close()
    }

    scope.coroutineContext[Job]?.cancel()
    server.kill()
    if (r.failed == 0) work.deleteRecursively() else println("kept $work for inspection")
    println("kotlin: ${r.passed} passed, ${r.failed} failed")
    exitProcess(if (r.failed == 0) 0 else 1)
}
