// JVM tests of what the Android module ships without Android types: the token encryption
// (TokenCipher, EncryptedFileSecretStore) with a software AES key standing in for the Keystore
// key, and the Rust host (ChatHost) exactly as the TurboModule and the JobService call it,
// through the generated Kotlin bindings, the real core and the real reference server on loopback
// (started and SIGKILLed here). The timeline updates the host sends are recorded for the JS
// tests (src/__tests__/views.test.ts replays them). JUnit is not reachable here, so `main` runs
// each named test and prints "android: N passed, N failed".
//
// Arguments: RECORD_DIR. Environment: CHATSYNC_SERVER_BIN. libchatsync comes from -Djna.library.path.
package dev.chatsync.reactnative

import dev.chatsync.AppState
import dev.chatsync.BackgroundAction
import dev.chatsync.ChatClient
import dev.chatsync.ChatHost
import dev.chatsync.ClientConfig
import dev.chatsync.HostListener
import dev.chatsync.SecretStoreException
import dev.chatsync.TokenSource
import java.io.File
import java.io.IOException
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking

private class Failure(message: String) : AssertionError(message)

private fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw Failure(message())
}

private fun <T> eq(actual: T, expected: T, what: String) = check(actual == expected) { "$what: expected <$expected>, got <$actual>" }

private const val DEADLINE_MS = 20_000L

private fun softwareKey(): SecretKey = KeyGenerator.getInstance("AES").apply { init(256) }.generateKey()

private val work: File = Files.createTempDirectory("chatsync-rn-android").toFile()

private val secretTests: List<Pair<String, () -> Unit>> = listOf(
    "secrets: a sealed token opens with the same key and slot, and only then" to {
        val key = softwareKey()
        val cipher = TokenCipher { key }
        val sealed = cipher.seal("chatsync.login-token", "bearer-t0ken".toByteArray())
        eq(String(cipher.open("chatsync.login-token", sealed)), "bearer-t0ken", "round trip")
        check(!String(sealed, Charsets.ISO_8859_1).contains("bearer-t0ken")) { "plaintext in the sealed bytes" }
        check(!sealed.contentEquals(cipher.seal("chatsync.login-token", "bearer-t0ken".toByteArray()))) { "a fresh IV per value" }
        fun refused(what: String, open: () -> Unit) = check(runCatching(open).exceptionOrNull() is java.security.GeneralSecurityException) { what }
        refused("another slot") { cipher.open("chatsync.auth-token", sealed) }
        refused("another key (another device)") { TokenCipher { softwareKey() }.open("chatsync.login-token", sealed) }
        val altered = sealed.copyOf().also { it[it.size - 1] = (it[it.size - 1].toInt() xor 1).toByte() }
        refused("an altered byte") { cipher.open("chatsync.login-token", altered) }
        refused("not ours") { cipher.open("chatsync.login-token", byteArrayOf(9, 9, 9)) }
    },
    "secrets: the store keeps values encrypted at rest, replaces, removes, and forgets what it cannot open" to {
        val dir = File(work, "secrets")
        val key = softwareKey()
        val store = EncryptedFileSecretStore(dir, TokenCipher { key })
        eq(store.get("chatsync.auth-token"), null, "nothing yet")
        store.set("chatsync.auth-token", "first")
        store.set("chatsync.auth-token", "s3cret-value")
        eq(store.get("chatsync.auth-token"), "s3cret-value", "replaced")
        val files = dir.listFiles()!!.toList()
        eq(files.map { it.name }, listOf("chatsync.auth-token.sealed"), "one file, no leftovers")
        check(!String(files[0].readBytes(), Charsets.ISO_8859_1).contains("s3cret")) { "the token is in the file in clear" }
        // A restore onto another device: the Keystore key is not there, the value is unreadable.
        eq(EncryptedFileSecretStore(dir, TokenCipher { softwareKey() }).get("chatsync.auth-token"), null, "another key")
        eq(dir.listFiles()!!.size, 0, "an unreadable value is forgotten")
        store.set("chatsync.login-token", "t")
        store.remove("chatsync.login-token")
        store.remove("chatsync.login-token")
        eq(store.get("chatsync.login-token"), null, "removed")
        check(runCatching { store.get("../escape") }.exceptionOrNull() is SecretStoreException.Unavailable) { "keys are names, not paths" }
    },
)

/** The reference server as a child process on a free loopback port. */
private class ServerProcess(private val bin: String) {
    val port: Int = ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
    val url = "http://127.0.0.1:$port"
    private var process: Process? = null

    fun start() {
        val p = ProcessBuilder(bin, "--addr", "127.0.0.1:$port", "--db", File(work, "server.db").path)
            .redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(File(work, "server.log")))
            .start()
        process = p
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15)
        while (true) {
            check(p.isAlive) { "server exited" }
            try {
                Socket().use { it.connect(InetSocketAddress("127.0.0.1", port), 200) }
                return
            } catch (_: IOException) {
            }
            check(System.nanoTime() < deadline) { "server did not listen on $port within 15 s" }
            Thread.sleep(20) // poll interval of the bounded wait for the port above
        }
    }

    fun kill() {
        process?.let { it.destroyForcibly(); it.waitFor(10, TimeUnit.SECONDS) }
        process = null
    }
}

/** What the host sent, as the TurboModule would emit it. */
private class Recorder : HostListener {
    val events = LinkedBlockingQueue<String>()
    val views = LinkedBlockingQueue<Pair<UInt, String>>()
    override fun onClientEvent(eventJson: String) { events.add(eventJson) }
    override fun onViewUpdate(viewId: UInt, diffsJson: String) { views.add(viewId to diffsJson) }

    fun awaitView(view: UInt, what: String, matches: (String) -> Boolean): String {
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
        while (true) {
            val left = deadline - System.nanoTime()
            check(left > 0) { "no update '$what' of view $view within $DEADLINE_MS ms" }
            val (id, diffs) = views.poll(left, TimeUnit.NANOSECONDS) ?: continue
            if (id == view) {
                recorded.add(diffs)
                if (matches(diffs)) return diffs
            }
        }
    }

    fun awaitEvent(what: String, matches: (String) -> Boolean): String {
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
        while (true) {
            val left = deadline - System.nanoTime()
            check(left > 0) { "no client event '$what' within $DEADLINE_MS ms" }
            val event = events.poll(left, TimeUnit.NANOSECONDS) ?: continue
            if (matches(event)) return event
        }
    }

    /** Every update of the timeline under test, in order, for the JS replay. */
    val recorded = mutableListOf<String>()
}

private fun ok(reply: String): String {
    check(reply.startsWith("{\"ok\":")) { "expected ok, got $reply" }
    return reply.removePrefix("{\"ok\":").removeSuffix("}")
}

private fun code(reply: String): String = Regex("\"code\":\"(E_[A-Z_]+)\"").find(reply)?.groupValues?.get(1) ?: "<ok: $reply>"

/** The host scenario: one ChatHost (one per process, as on a phone) through the app's life. */
private class HostScenario(serverBin: String?, private val recordDir: File) {
    private val server by lazy { ServerProcess(serverBin ?: error("CHATSYNC_SERVER_BIN is not set")) }
    private val files = File(work, "no_backup")
    private val secrets by lazy { EncryptedFileSecretStore(File(files, "chatsync-secrets"), TokenCipher { key }) }
    private val key = softwareKey()
    private val host by lazy { ChatHost.shared(files.path, secrets) }
    private val recorder = Recorder()
    private lateinit var bob: ChatClient
    private lateinit var roomId: String
    private val timelineView = 1u

    private fun bobSays(text: String) {
        runBlocking { bob.sendText(roomId, text) }
        val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
        while (runBlocking { bob.syncOnce() }.pending != 0u) {
            check(System.nanoTime() < deadline) { "bob's '$text' not accepted" }
        }
    }

    val tests: List<Pair<String, () -> Unit>> = listOf(
        "host: configure validates in Rust; a fixed token goes to the encrypted store, not the settings file" to {
            server.start()
            host.setListener(recorder)
            host.setAppState(AppState.ACTIVE)
            eq(code(host.configure("""{"serverUrl":"${server.url}","pageSize":2.5}""")), "E_INVALID_INPUT", "a fractional page size")
            eq(ok(host.configure("""{"serverUrl":"${server.url}","auth":{"kind":"fixed","token":"fixed-s3cret"}}""")), "null", "nobody logged in yet")
            val settings = File(files, "chatsync/settings.json").readText()
            check(!settings.contains("fixed-s3cret")) { "the token is in settings.json: $settings" }
            eq(secrets.get("chatsync.auth-token"), "fixed-s3cret", "the token, encrypted at rest")
            // Back to the dev route for the scenario; the stored token is dropped.
            ok(host.configure("""{"serverUrl":"${server.url}","probe":{"timeoutMs":500,"intervalMs":200}}"""))
            eq(secrets.get("chatsync.auth-token"), null, "dropped")
            eq(code(host.rooms()), "E_NOT_LOGGED_IN", "before login")
        },
        "host: login opens the one client; the timeline's reset, an echo and its turn to sent arrive as diffs" to {
            val session = ok(runBlocking { host.login("""{"id":"alice","name":"Alice"}""") })
            check(session.contains("\"name\":\"Alice\"")) { session }
            check(host.isLoggedIn()) { "logged in" }
            check(File(files, "chatsync/616c696365").isDirectory) { "the store is under no_backup/chatsync/<hex id>" }
            bob = ChatClient(ClientConfig(serverUrl = server.url, dataDir = File(work, "bob").path, userId = "bob", token = TokenSource.DevTokenRoute))
            runBlocking { bob.login("Bob", null) }
            roomId = runBlocking { bob.openDirectRoom("alice") }.id
            val room = ok(runBlocking { host.openDirectRoom("bob") })
            check(room.contains("\"id\":\"$roomId\"")) { "one direct room: $room" }
            bobSays("first from bob")
            bobSays("second from bob")
            ok(runBlocking { host.syncNow() })
            ok(host.openTimeline(timelineView, roomId))
            recorder.awaitView(timelineView, "reset with bob's messages") { it.contains("\"kind\":\"reset\"") && it.contains("second from bob") }
            val echo = ok(runBlocking { host.sendText(roomId, "hi bob") })
            check(echo.contains("\"state\":\"pending\"")) { echo }
            recorder.awaitView(timelineView, "the echo") { it.contains("pushBack") && it.contains("hi bob") }
            recorder.awaitView(timelineView, "the echo turned sent") { it.contains("\"kind\":\"set\"") && it.contains("hi bob") && it.contains("\"state\":\"sent\"") }
            bobSays("third from bob")
            recorder.awaitView(timelineView, "bob's new message") { it.contains("third from bob") }
        },
        "host: the status snapshot comes from the core; paging back adds older messages as diffs" to {
            val status = ok(host.status())
            check(status.contains("\"networkStatus\":\"online\"") && status.contains("\"pending\":0")) { status }
            repeat(3) { bobSays("old-ish $it") }
            recorder.awaitView(timelineView, "bob's last message") { it.contains("old-ish 2") }
            // A second view pages back from what it shows.
            val small = 2u
            ok(host.openTimeline(small, roomId))
            val page = ok(runBlocking { host.paginateBackwards(small, 2u) })
            check(page.contains("\"added\":")) { page }
            eq(code(runBlocking { host.paginateBackwards(99u, 0u) }), "E_VIEW_CLOSED", "an unknown view")
            host.closeView(small)
        },
        "host: the recorded timeline updates end equal to a fresh view (written for the JS replay)" to {
            val fresh = 3u
            ok(host.openTimeline(fresh, roomId))
            val deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(DEADLINE_MS)
            var final: String? = null
            while (final == null) {
                check(System.nanoTime() < deadline) { "no reset for the fresh view" }
                val (id, diffs) = recorder.views.poll(100, TimeUnit.MILLISECONDS) ?: continue
                if (id == fresh) final = diffs else if (id == timelineView) recorder.recorded.add(diffs)
            }
            host.closeView(fresh)
            recordDir.mkdirs()
            val steps = recorder.recorded.joinToString(",\n    ") { quote(it) }
            File(recordDir, "timeline.android-jvm.json").writeText(
                "{\n  \"source\": \"android/src/test/.../HostTests.kt: ChatHost through the generated Kotlin bindings, the real core and server\",\n" +
                    "  \"steps\": [\n    $steps\n  ],\n  \"final\": ${quote(final!!)}\n}\n",
            )
            check(recorder.recorded.size >= 4) { "only ${recorder.recorded.size} updates" }
        },
        "host: the chat model: an edit, a reaction, a deletion and a read receipt, as diffs, counts and events" to {
            val sent = ok(runBlocking { host.sendText(roomId, "typo in here") })
            val id = Regex("\"id\":\"([^\"]+)\"").find(sent)!!.groupValues[1]
            recorder.awaitView(timelineView, "the message sent") { it.contains("typo in here") && it.contains("\"state\":\"sent\"") }
            eq(ok(runBlocking { host.editMessage(roomId, id, "fixed text") }), "null", "edit reply")
            recorder.awaitView(timelineView, "the edit") { it.contains("\"kind\":\"set\"") && it.contains("fixed text") }
            eq(ok(runBlocking { host.toggleReaction(roomId, id, "👍") }), "true", "reacting now")
            recorder.awaitView(timelineView, "the reaction") { it.contains("\"key\":\"👍\",\"count\":1,\"me\":true") }
            eq(ok(runBlocking { host.syncNow() }).contains("\"pending\":0"), true, "the changes reached the server")
            val bobView = runBlocking { bob.syncOnce(); bob.messages(roomId, 1u, null) }.single()
            eq(bobView.text to bobView.reactions.map { it.key to it.count }, "fixed text" to listOf("👍" to 1u), "bob sees the edit and the reaction")
            val bobsOwn = runBlocking { bob.messages(roomId, 50u, null) }.last { it.sender.id == "bob" }
            eq(code(runBlocking { host.editMessage(roomId, bobsOwn.serverId!!.toString(), "not mine") }), "E_INVALID_INPUT", "editing bob's message")
            ok(runBlocking { host.deleteMessage(roomId, id) })
            recorder.awaitView(timelineView, "the tombstone") { it.contains("\"deleted\":true") }
            val before = ok(host.unreadTotal()).toInt()
            bobSays("unread by alice")
            ok(runBlocking { host.syncNow() })
            check(ok(host.rooms()).contains("\"unread\":${before + 1}")) { "one more unread: ${host.rooms()}" }
            eq(ok(host.unreadTotal()), "${before + 1}", "the badge")
            ok(runBlocking { host.markRead(roomId) })
            recorder.awaitEvent("the badge cleared") { it == "{\"type\":\"unreadChanged\",\"total\":0}" }
            check(ok(host.status()).contains("\"unread\":0")) { host.status() }
            eq(ok(host.typing(roomId)), "[]", "nobody typing")
            ok(runBlocking { host.setTyping(roomId, true) })
        },
        "host: the background run of a process the OS started plans one notification per room, none in the foreground" to {
            host.closeView(timelineView)
            host.setAppState(AppState.BACKGROUND)
            bobSays("ping for the background")
            val run = runBlocking { host.backgroundRun(10_000uL) }
            eq(run.action, BackgroundAction.DONE, "action (${run.summary})")
            eq(run.rescheduleEarly, false, "not early")
            eq(run.notifications.map { it.roomId }, listOf(roomId), "one per room")
            eq(run.notifications[0].title, "Bob", "title")
            eq(run.notifications[0].body, "ping for the background", "body")
            eq(run.notifications[0].key, "chatsync.room.$roomId", "stable key")
            host.setAppState(AppState.ACTIVE)
            bobSays("seen in the app")
            val seen = runBlocking { host.backgroundRun(10_000uL) }
            eq(seen.notifications.size, 0, "nothing posted while the app is in the foreground")
        },
        "host: offline the background run asks for an early retry; the core's error codes reach JS" to {
            server.kill()
            host.setNetworkReachable(false)
            val echo = ok(runBlocking { host.sendText(roomId, "sent while offline") })
            check(echo.contains("\"serverId\":null")) { echo }
            host.setAppState(AppState.BACKGROUND)
            val run = runBlocking { host.backgroundRun(5_000uL) }
            eq(run.action, BackgroundAction.RETRY, "action (${run.summary})")
            eq(run.rescheduleEarly to run.keepScheduled, true to true, "early, still scheduled")
            eq(code(runBlocking { host.sendText(roomId, "") }), "E_INVALID_INPUT", "empty text")
            eq(code(runBlocking { host.openDirectRoom("carol") }), "E_OFFLINE", "offline")
        },
        "host: logout forgets the user and the token; the next background run cancels the job" to {
            ok(host.logout())
            check(!host.isLoggedIn()) { "logged out" }
            eq(secrets.get("chatsync.login-token"), null, "token gone")
            val run = runBlocking { host.backgroundRun(1_000uL) }
            eq(run.action, BackgroundAction.NOBODY_LOGGED_IN, "action")
            eq(run.keepScheduled, false, "cancel the job")
            check(File(files, "chatsync/616c696365").isDirectory) { "the store stays on the device" }
        },
    )

    fun close() {
        runCatching { host.setListener(null) }
        runCatching { host.logout() }
        if (this::bob.isInitialized) runCatching { bob.shutdown(); bob.destroy() }
        runCatching { server.kill() }
    }
}

/** A JSON string literal. */
private fun quote(s: String): String = buildString {
    append('"')
    for (c in s) when (c) {
        '"' -> append("\\\"")
        '\\' -> append("\\\\")
        '\n' -> append("\\n")
        else -> if (c < ' ') append("\\u%04x".format(c.code)) else append(c)
    }
    append('"')
}

fun main(args: Array<String>) {
    val scenario = HostScenario(System.getenv("CHATSYNC_SERVER_BIN"), File(args.getOrElse(0) { "recorded" }))
    var passed = 0
    var failed = 0
    for ((name, test) in secretTests + scenario.tests) {
        try {
            test()
            passed += 1
            println("ok - $name")
        } catch (e: Throwable) {
            failed += 1
            println("FAIL - $name: ${e.message ?: e}")
            if (e !is Failure) e.printStackTrace(System.out)
        }
    }
    scenario.close()
    work.deleteRecursively()
    println("android: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
