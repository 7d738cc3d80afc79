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
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.URI
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.async
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

/**
 * A server that accepts connections, reads each request and never answers: a call to it ends
 * only when the client gives up. It reports what it observes: a request arrived, and the client
 * closed the connection.
 */
class SilentServer : AutoCloseable {
    private val socket = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    val url = "http://127.0.0.1:${socket.localPort}"
    val requestSeen = CompletableDeferred<Unit>()
    val closedByClient = CompletableDeferred<Unit>()

    init {
        Thread {
            try {
                while (true) {
                    val connection = socket.accept()
                    Thread { serve(connection) }.apply { isDaemon = true }.start()
                }
            } catch (_: IOException) {
                // closed
            }
        }.apply { isDaemon = true }.start()
    }

    private fun serve(connection: Socket) = connection.use { c ->
        val input = c.getInputStream()
        val head = StringBuilder()
        while (!head.endsWith("\r\n\r\n")) {
            val b = input.read()
            if (b < 0) break
            head.append(b.toChar())
        }
        requestSeen.complete(Unit)
        // Never answer; a read returns -1 (or fails) once the client closes its end.
        try {
            while (input.read() >= 0) { }
        } catch (_: IOException) {
        }
        closedByClient.complete(Unit)
    }

    override fun close() = socket.close()
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

    /** Every event up to and including `SyncStateChanged(STOPPED)`. */
    suspend fun untilStopped(): List<ClientEvent> = withTimeoutOrNull(DEADLINE_MS) {
        val seen = mutableListOf<ClientEvent>()
        while (seen.lastOrNull().let { !(it is ClientEvent.SyncStateChanged && it.state == SyncState.STOPPED) }) {
            seen += channel.receive()
        }
        seen
    } ?: error("no Stopped event within $DEADLINE_MS ms")
}

/** A timeline's updates through the Flow wrapper, applied to a list as an app would. */
class TimelineLog(private val timeline: Timeline, scope: CoroutineScope) {
    private val updates = Channel<List<TimelineDiff>>(Channel.UNLIMITED)
    // Unconfined + undispatched: subscribed before the constructor returns.
    val job: Job = scope.launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
        timeline.diffs().collect { updates.send(it) }
    }
    val shown = mutableListOf<ChatMessage>()

    /** Applies updates until one satisfies [matches]; returns that one. */
    suspend fun await(what: String, matches: (List<TimelineDiff>) -> Boolean): List<TimelineDiff> =
        withTimeoutOrNull(DEADLINE_MS) {
            var found: List<TimelineDiff>? = null
            while (found == null) updates.receive().let { shown.applyTimelineDiffs(it); if (matches(it)) found = it }
            found
        } ?: error("no timeline update '$what' within $DEADLINE_MS ms; shown: ${shown.map { it.text }}")
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

/** The same scenario's numbers: the newest page a fresh device holds, and the room's history. */
const val PAGE = 50
const val HISTORY = 120

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
            ?: throw TokenProviderException.Other("no access_token in $body")
    }
}

/** Signed out: the app must sign the user in again. */
class RefusingTokenProvider : TokenProvider {
    override fun fetchToken(userId: String): String = throw TokenProviderException.Unauthorized("signed out")
}

/** In a tunnel: the token service cannot be reached, the user stays signed in. */
class OfflineTokenProvider : TokenProvider {
    override fun fetchToken(userId: String): String = throw TokenProviderException.Offline("no network for the token service")
}

/** A provider with a bug: it throws something that is not a TokenProviderException. */
class BrokenTokenProvider : TokenProvider {
    override fun fetchToken(userId: String): String = throw IllegalStateException("keychain locked")
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
        expect(got.size == 1 && got[0].state == MessageState.SENT && got[0].sender.id == "alice") { "bob has it once, sent: $got" }
    }
    r.test("offline: the server is killed, a send still gives a pending echo") {
        server.kill()
        val echo = alice.sendText(roomId, "sent while offline")
        expect(echo.state == MessageState.PENDING && echo.serverId == null && echo.id == echo.localId) { "pending echo: $echo" }
        try {
            val report = alice.syncOnce()
            expect(!report.online && report.pending == 1u) { "offline report: $report" }
        } catch (e: ChatException.Offline) {
            expect(e.message!!.startsWith("offline: ")) { "readable message: ${e.message}" }
        }
        val outbox = alice.outbox()
        expect(outbox.size == 1 && outbox[0].state == MessageState.PENDING) { "still queued: $outbox" }
        val shown = alice.messages(roomId, 50u, null).withText("sent while offline")
        expect(shown.size == 1 && shown[0].state == MessageState.PENDING) { "the echo is shown: $shown" }
    }
    r.test("back online: sync delivers exactly one copy") {
        server.start()
        until("alice's outbox is flushed", step = { runCatching { alice.syncOnce() }; alice.outbox() }) { it.isEmpty() }
        val mine = alice.messages(roomId, 50u, null).withText("sent while offline")
        expect(mine.size == 1 && mine[0].state == MessageState.SENT && mine[0].serverId != null) { "alice: one sent copy: $mine" }
        val theirs = until("bob has the offline message", step = { bob.syncOnce(); bob.messages(roomId, 50u, null) }) {
            it.withText("sent while offline").isNotEmpty()
        }
        expect(theirs.withText("sent while offline").size == 1) { "bob: exactly one copy: $theirs" }
        expect(theirs.withText("hello from kotlin").size == 1) { "and the first one still once: $theirs" }
    }
    r.test("a bad server URL is a typed error with a readable message, and creates no store") {
        val dir = File(work, "bad-url")
        val e = expectThrows<ChatException.InvalidInput>("bad URL") { ChatClient(config("not a url", dir, "alice")) }
        expect(e.message!!.startsWith("invalid input: ") && e.message!!.contains("not a url")) { "message: ${e.message}" }
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
        expect(e.message!!.startsWith("invalid input: ") && e.message!!.contains("at most")) { "readable: ${e.message}" }
        expect(alice.outbox() == before) { "nothing queued: ${alice.outbox()}" }
    }
    r.test("a message the server rejects ends failed with its reason, store intact") {
        val echo = alice.sendText("no-such-room", "to nowhere")
        expect(echo.state == MessageState.PENDING) { "queued first: $echo" }
        val failed = until("the server rejects it", step = { alice.syncOnce(); alice.outbox() }) {
            it.any { e -> e.localId == echo.localId && e.state == MessageState.FAILED }
        }.first { it.localId == echo.localId }
        expect(!failed.failureReason.isNullOrBlank()) { "a reason: $failed" }
        val shown = alice.messages("no-such-room", 50u, null).first { it.localId == echo.localId }
        expect(shown.state == MessageState.FAILED && shown.failureReason != null) { "shown as failed: $shown" }
        alice.discard(echo.localId!!)
        expect(alice.outbox().isEmpty()) { "nothing left queued: ${alice.outbox()}" }
        expect(alice.messages(roomId, 50u, null).withText("sent while offline").size == 1) { "earlier messages intact" }
    }
    r.test("token providers implemented in Kotlin: a working one, and a refusal as Unauthorized with its event") {
        val provider = DevRouteTokenProvider(server.url)
        ChatClient(config(server.url, File(work, "carol"), "carol", TokenSource.Provider(provider))).use { carol ->
            val room = carol.openDirectRoom("alice")
            expect(room.memberIds.contains("carol")) { "room: $room" }
            expect(provider.calls >= 1) { "the provider was asked" }
        }
        ChatClient(config(server.url, File(work, "dave-refused"), "dave", TokenSource.Provider(RefusingTokenProvider()))).use { dave ->
            val events = EventLog(dave, scope)
            val e = expectThrows<ChatException.Unauthorized>("refusing provider") { runBlocking { dave.openDirectRoom("alice") } }
            expect(e.message == "unauthorized: token provider: signed out") { "the provider's reason, said once: ${e.message}" }
            val event = events.await("the Unauthorized event") { it is ClientEvent.Unauthorized } as ClientEvent.Unauthorized
            expect(event.reason.contains("signed out")) { "event: $event" }
            events.job.cancelAndJoin()
        }
    }
    r.test("a token provider that is offline keeps the client offline, never Unauthorized") {
        val gina = ChatClient(config(server.url, File(work, "gina"), "gina", TokenSource.Provider(OfflineTokenProvider())))
        val events = EventLog(gina, scope)
        val e = expectThrows<ChatException.Offline>("offline provider") { runBlocking { gina.openDirectRoom("alice") } }
        expect(e.message == "offline: token provider: no network for the token service") { "message: ${e.message}" }
        val report = gina.syncOnce()
        expect(!report.online) { "offline is a report: $report" }
        gina.shutdown()
        val seen = events.untilStopped()
        expect(seen.none { it is ClientEvent.Unauthorized }) { "no Unauthorized event: $seen" }
        events.job.cancelAndJoin()
        gina.close()
    }
    r.test("a provider that throws something else is Offline (retried, still signed in) with its message only, no stack trace") {
        ChatClient(config(server.url, File(work, "hugo"), "hugo", TokenSource.Provider(BrokenTokenProvider()))).use { hugo ->
            val e = expectThrows<ChatException.Offline>("broken provider") { runBlocking { hugo.openDirectRoom("alice") } }
            expect(e.message == "offline: token provider failed: keychain locked") { "message: ${e.message}" }
        }
    }
    r.test("a bad token on a started client is announced with the Unauthorized event") {
        ChatClient(config(server.url, File(work, "ivan"), "ivan", TokenSource.Fixed("not-a-token"))).use { ivan ->
            val events = EventLog(ivan, scope)
            ivan.setAppState(AppState.ACTIVE)
            ivan.start()
            val event = events.await("the Unauthorized event") { it is ClientEvent.Unauthorized } as ClientEvent.Unauthorized
            expect(event.reason.isNotBlank()) { "a reason: $event" }
            ivan.shutdown()
            events.job.cancelAndJoin()
        }
    }
    r.test("Rejected carries the server's code, and its message says it once") {
        val e = expectThrows<ChatException.Rejected>("a direct room with oneself") { runBlocking { alice.openDirectRoom("alice") } }
        expect(e.code == "bad_request") { "code: ${e.code}" }
        expect(e.message == "rejected by server (bad_request): a direct room needs another user") { "message: ${e.message}" }
        expect(e.detail == e.message) { "detail is the message" }
    }
    r.test("error messages read once: no field dump, no doubled prefix, no stack trace") {
        val offline = expectThrows<ChatException.Offline>("nothing listens") {
            runBlocking { ChatClient(config("http://127.0.0.1:1", File(work, "dead-2"), "alice")).use { it.openDirectRoom("bob") } }
        }
        val text = offline.message!!
        expect(text.startsWith("offline: ") && !text.contains("detail=") && !text.contains("offline: offline")) { "message: $text" }
        expect(offline.retryAfterSecs == null) { "no Retry-After from a server that is not there" }
        val panic = expectThrows<ChatException.Internal>("panic") { selftestPanic("said once") }
        expect(panic.message == "internal error: chatsync panicked: said once") { "message: ${panic.message}" }
        expect(!panic.toString().contains("\tat ")) { "no stack trace in the text: $panic" }
    }
    r.test("background_sync with a budget returns a report") {
        bob.sendText(roomId, "ping for the background")
        until("bob's outbox is flushed", step = { bob.syncOnce(); bob.outbox() }) { it.isEmpty() }
        val started = System.nanoTime()
        val report = alice.backgroundSync(5_000uL)
        val tookMs = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started)
        expect(tookMs < 6_000) { "within the budget: $tookMs ms" }
        expect(report.outcome == BackgroundOutcome.COMPLETED && !report.retryLater && report.online && report.error == null) { "report: $report" }
        expect(report.newMessages.any { it.senderId == "bob" && it.preview.contains("ping") }) { "previews: ${report.newMessages}" }
    }
    r.test("background_sync says how it ended: a refused token is not retried, no server is") {
        ChatClient(config(server.url, File(work, "bg-refused"), "jane", TokenSource.Fixed("not-a-token"))).use { jane ->
            val refused = jane.backgroundSync(5_000uL)
            expect(refused.outcome == BackgroundOutcome.UNAUTHORIZED && !refused.retryLater && refused.error != null) { "report: $refused" }
        }
        ChatClient(config("http://127.0.0.1:1", File(work, "bg-offline"), "jane")).use { jane ->
            val offline = jane.backgroundSync(5_000uL)
            expect(offline.outcome == BackgroundOutcome.OFFLINE && offline.retryLater && !offline.online) { "report: $offline" }
        }
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
    r.test("a timeline: Reset first, then diffs as a message arrives and an echo turns sent") {
        alice.timeline(roomId).use { timeline ->
            val log = TimelineLog(timeline, scope)
            val first = log.await("the first update") { true }
            expect(first.size == 1 && first[0] is TimelineDiff.Reset) { "a Reset first: $first" }
            expect(log.shown == timeline.items()) { "the Reset is what the timeline shows" }
            val echo = alice.sendText(roomId, "through the timeline")
            val pushed = log.await("the echo is shown") { u -> u.any { it is TimelineDiff.PushBack && it.item.id == echo.id } }
            val shownEcho = (pushed.first { it is TimelineDiff.PushBack && it.item.id == echo.id } as TimelineDiff.PushBack).item
            expect(shownEcho.state == MessageState.PENDING) { "pending first: $shownEcho" }
            alice.syncOnce()
            val set = log.await("the echo turns sent") { u -> u.any { it is TimelineDiff.Set && it.item.id == echo.id } }
                .first { it is TimelineDiff.Set && it.item.id == echo.id } as TimelineDiff.Set
            expect(set.item.state == MessageState.SENT && set.item.serverId != null) { "sent in place, same id: ${set.item}" }
            expect(log.shown[set.index.toInt()].id == echo.id) { "at the echo's index" }
            bob.sendText(roomId, "arrives in the timeline")
            until("bob's outbox is flushed", step = { bob.syncOnce(); bob.outbox() }) { it.isEmpty() }
            alice.syncOnce()
            log.await("bob's message arrives") { u -> u.any { it is TimelineDiff.PushBack && it.item.text == "arrives in the timeline" } }
            expect(log.shown.last().sender.id == "bob") { "the newest at the end: ${log.shown.last()}" }
            expect(log.shown == timeline.items()) { "the applied diffs equal the timeline" }
            log.job.cancelAndJoin()
        }
    }
    r.test("load earlier after a refresh, through a timeline: no page repeats, a re-read changes nothing") {
        ChatClient(config(server.url, File(work, "frank"), "frank")).use { frank ->
            frank.login("Frank", null)
            val room = frank.openDirectRoom("erin").id
            for (i in 1..HISTORY) frank.sendText(room, "history $i")
            until("frank's history is on the server", step = { frank.syncOnce(); frank.outbox() }) { it.isEmpty() }
        }
        val erin = ChatClient(config(server.url, File(work, "erin"), "erin"))
        erin.login("Erin", null)
        erin.syncOnce()
        val room = erin.rooms().first { it.memberIds.contains("frank") }.id
        val firstRead = erin.messages(room, PAGE.toUInt(), null)
        expect(firstRead.size == PAGE && firstRead.first().text == "history $HISTORY") { "the newest page: ${firstRead.map { it.text }}" }
        erin.timeline(room).use { timeline ->
            expect(timeline.items().map { it.id } == firstRead.reversed().map { it.id }) { "the timeline shows the newest page, oldest first" }
            val earlier = timeline.paginateBackwards(PAGE.toUInt())
            expect(earlier.added == PAGE.toUInt() && earlier.hasMore) { "one page earlier: $earlier" }
            val afterEarlier = timeline.items()
            val again = erin.messages(room, PAGE.toUInt(), null)
            expect(again == firstRead) { "reading the newest page again returns the same" }
            expect(timeline.items() == afterEarlier) { "the re-read moved nothing" }
            val earliest = timeline.paginateBackwards(PAGE.toUInt())
            expect(earliest.added == (HISTORY - 2 * PAGE).toUInt() && !earliest.hasMore) { "the rest, no more: $earliest" }
            val texts = timeline.items().map { it.text }
            expect(texts == (1..HISTORY).map { "history $it" }) { "every message once, in order: $texts" }
        }
        val anchor = firstRead.last().serverId
        val below = erin.loadOlder(room, anchor, PAGE.toUInt())
        expect(below == erin.loadOlder(room, anchor, PAGE.toUInt())) { "an explicit anchor gives the same page twice" }
        expect(below.messages.first().text == "history ${HISTORY - PAGE}") { "the page below the anchor: ${below.messages.map { it.text }}" }
        erin.shutdown()
        erin.close()
    }
    r.test("the room list: the current rooms first, then a room with a new message moves to the top") {
        alice.syncOnce()
        alice.roomList().use { list ->
            val updates = Channel<List<RoomSummary>>(Channel.UNLIMITED)
            val job = scope.launch(Dispatchers.Unconfined, start = CoroutineStart.UNDISPATCHED) {
                list.roomsFlow().collect { updates.send(it) }
            }
            val first = withTimeout(DEADLINE_MS) { updates.receive() }
            expect(first == list.rooms() && first.size >= 2) { "the current rooms first (with bob and carol): $first" }
            val target = first.last()
            alice.sendText(target.id, "to the top")
            val moved = withTimeout(DEADLINE_MS) {
                var rooms = updates.receive()
                while (rooms.firstOrNull()?.id != target.id) rooms = updates.receive()
                rooms
            }
            expect(moved.first().lastMessage?.text == "to the top") { "with its last message: ${moved.first()}" }
            expect(moved.map { it.id }.sorted() == first.map { it.id }.sorted()) { "the same rooms: $moved" }
            until("alice's outbox is flushed", step = { alice.syncOnce(); alice.outbox() }) { it.isEmpty() }
            job.cancelAndJoin()
        }
    }
    r.test("the chat model: an edit, a reaction, a read receipt and a deletion reach the other side") {
        val echo = alice.sendText(roomId, "typo hre")
        until("alice's outbox is flushed", step = { alice.syncOnce(); alice.outbox() }) { it.isEmpty() }
        val unread = until("bob has it, unread", step = { bob.syncOnce(); bob.rooms().first { it.id == roomId } }) { it.unread >= 1u }
        expect(bob.unreadTotal() >= unread.unread) { "the badge counts the room: ${bob.unreadTotal()} vs ${unread.unread}" }
        val bobsId = bob.messages(roomId, 50u, null).withText("typo hre").single().id

        alice.editMessage(roomId, echo.id, "typo here")
        val edited = alice.message(echo.id)
        expect(edited?.text == "typo here" && edited.pendingChange && edited.editedAt != null) { "the edit shows at once: $edited" }
        expect(alice.outbox().map { it.kind } == listOf(ChangeKind.EDIT)) { "one queued edit: ${alice.outbox()}" }
        expect(bob.toggleReaction(roomId, bobsId, "\uD83D\uDC4D")) { "bob now reacts" }
        bob.markRead(roomId)
        expect(bob.rooms().first { it.id == roomId }.unread == 0u) { "read at once on bob's device" }

        val seen = until("alice sees the edit sent, bob's reaction and his receipt", step = { alice.syncOnce(); alice.message(echo.id)!! }) {
            it.reactions.any { r -> r.key == "\uD83D\uDC4D" && r.count == 1u && !r.me } && "bob" in it.readBy && !it.pendingChange
        }
        expect(seen.text == "typo here" && seen.editedAt != null) { "edited: $seen" }
        val onBob = until("bob sees the edit", step = { bob.syncOnce(); bob.message(bobsId)!! }) { it.text == "typo here" }
        expect(onBob.editedAt != null && onBob.reactions.single().me) { "with his own reaction: $onBob" }

        alice.deleteMessage(roomId, echo.id)
        val tombstone = until("bob sees a tombstone in its place", step = { alice.syncOnce(); bob.syncOnce(); bob.message(bobsId)!! }) { it.deleted }
        expect(tombstone.text == "" && tombstone.parts.isEmpty() && tombstone.reactions.isEmpty()) { "nothing left of it: $tombstone" }
        expectThrows<ChatException.InvalidInput>("editing someone else's message") { runBlocking { bob.editMessage(roomId, bobsId, "mine now") } }
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
        expect(e.message == "internal error: chatsync panicked: boom from kotlin") { "message: ${e.message}" }
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
    r.test("a cancelled coroutine ends its call, and the request with it") {
        SilentServer().use { silent ->
            ChatClient(config(silent.url, File(work, "cancelled"), "alice", TokenSource.Fixed("t"))).use { c ->
                val outcome = CompletableDeferred<String>()
                val job = scope.launch {
                    try {
                        c.syncOnce()
                        outcome.complete("finished")
                    } catch (e: CancellationException) {
                        outcome.complete("cancelled")
                        throw e
                    } catch (t: Throwable) {
                        outcome.complete("failed: $t")
                    }
                }
                withTimeout(DEADLINE_MS) { silent.requestSeen.await() }
                job.cancel()
                // Bounded waits on what can be observed: the call ended, the server saw the close.
                val result = withTimeoutOrNull(5_000) { outcome.await() } ?: "still running 5 s after cancel"
                expect(result == "cancelled") { "the call: $result" }
                expect(withTimeoutOrNull(5_000) { silent.closedByClient.await() } != null) { "the server saw the request end" }
            }
        }
    }
    r.test("shutdown ends a call in flight with ShutDown; later calls fail; Stopped is the last event") {
        SilentServer().use { silent ->
            val c = ChatClient(config(silent.url, File(work, "shut"), "alice", TokenSource.Fixed("t")))
            val events = EventLog(c, scope)
            val call = scope.async { runCatching { c.syncOnce() } }
            withTimeout(DEADLINE_MS) { silent.requestSeen.await() }
            c.shutdown()
            val result = withTimeoutOrNull(5_000) { call.await() }
            expect(result?.exceptionOrNull() is ChatException.ShutDown) { "the call in flight: $result" }
            expect(withTimeoutOrNull(5_000) { silent.closedByClient.await() } != null) { "its request ended" }
            expect(c.syncState() == SyncState.STOPPED) { "state: ${c.syncState()}" }
            expectThrows<ChatException.ShutDown>("a call after shutdown") { runBlocking { c.sendText("r1", "too late") } }
            expectThrows<ChatException.ShutDown>("a read after shutdown") { c.outbox() }
            expectThrows<ChatException.ShutDown>("a timeline after shutdown") { c.timeline("r1") }
            val seen = events.untilStopped()
            c.setNetworkReachable(false) // would be news on a live client
            val late = EventLog(c, scope)
            expect(late.next() == ClientEvent.SyncStateChanged(SyncState.STOPPED)) { "a late listener hears Stopped" }
            expect(events.drain().isEmpty()) { "nothing after Stopped: ${events.drain()}" }
            expect(seen.last() == ClientEvent.SyncStateChanged(SyncState.STOPPED)) { "Stopped last: $seen" }
            events.job.cancelAndJoin()
            late.job.cancelAndJoin()
            c.close()
        }
    }
    r.test("a closed Kotlin object throws ChatException.ShutDown, not IllegalStateException") {
        val c = ChatClient(config("http://127.0.0.1:1", File(work, "closed"), "alice"))
        val timeline = c.timeline("r1")
        timeline.close()
        c.close()
        val read = expectThrows<ChatException.ShutDown>("a read on a closed client") { c.outbox() }
        expect(read.message == "ChatClient is closed: close() or destroy() was called on it") { "message: ${read.message}" }
        expectThrows<ChatException.ShutDown>("a call on a closed client") { runBlocking { c.syncOnce() } }
        expectThrows<ChatException.ShutDown>("a closed timeline") { timeline.items() }
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
