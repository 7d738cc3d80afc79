// JVM tests of the module's plain-Kotlin logic (options, bridge shapes, error codes,
// notification content), compiled with the generated bindings as they ship and run by
// scripts/test-rn.sh, followed by ModuleScenario (the runtime and the background run against the
// real server). JUnit is not reachable here, so `main` runs each named test and prints
// "N passed, N failed". Pass the repository root as the first argument: the names shared with
// the TypeScript side are checked against src/.
package dev.chatsync.reactnative

import dev.chatsync.BackgroundOutcome
import dev.chatsync.BackgroundSyncReport
import dev.chatsync.ChatException
import dev.chatsync.ChatMessage
import dev.chatsync.ChatUser
import dev.chatsync.ClientEvent
import dev.chatsync.MessagePart
import dev.chatsync.MessageState
import dev.chatsync.NetworkStatus
import dev.chatsync.NewMessagePreview
import dev.chatsync.ProbeMethod
import dev.chatsync.SyncReport
import dev.chatsync.SyncState
import dev.chatsync.TokenSource
import java.io.File
import kotlin.system.exitProcess

internal class Failure(message: String) : AssertionError(message)

internal fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw Failure(message())
}

internal fun <T> eq(actual: T, expected: T, what: String = "value") =
    check(actual == expected) { "$what: expected <$expected>, got <$actual>" }

internal inline fun <reified E : Throwable> throws(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw Failure("expected ${E::class.simpleName}, got $e")
    }
    throw Failure("expected ${E::class.simpleName}, nothing was thrown")
}

private var repoRoot = File(".")

private fun message(id: ULong?, localId: String? = null, state: MessageState = MessageState.SENT) = ChatMessage(
    id = id?.toString() ?: localId!!,
    serverId = id,
    localId = localId,
    roomId = "r1",
    sender = ChatUser(id = "alice", name = "Alice", avatarUrl = null),
    text = "hello",
    parts = listOf(MessagePart(mimeType = "text/plain", content = "hello", extraJson = null)),
    createdAt = "2026-11-25T06:00:00.000Z",
    state = state,
    failureReason = if (state == MessageState.FAILED) "rejected by server (forbidden): no" else null,
)

/** Every leaf must be a type Arguments.makeNativeMap accepts as JS would read it. */
internal fun assertBridgeSafe(value: Any?, path: String = "$") {
    when (value) {
        null, is Boolean, is Double, is String -> Unit
        is Map<*, *> -> value.forEach { (k, v) ->
            check(k is String) { "$path: key $k is not a String" }
            assertBridgeSafe(v, "$path.$k")
        }
        is List<*> -> value.forEachIndexed { i, v -> assertBridgeSafe(v, "$path[$i]") }
        else -> throw Failure("$path: ${value.javaClass.name} does not cross the bridge as JS expects")
    }
}

/** The string values of a TS `const` object (`KEY: 'value',`) in a file under src/. */
private fun tsConstValues(file: String, objectName: String): Set<String> {
    val text = File(repoRoot, file).readText()
    val start = text.indexOf("export const $objectName = {")
    check(start >= 0) { "$objectName not found in $file" }
    val body = text.substring(start, text.indexOf("} as const", start))
    return Regex("""^\s*\w+: '([^']+)',""", RegexOption.MULTILINE).findAll(body).map { it.groupValues[1] }.toSet()
}

private val logicTests: List<Pair<String, () -> Unit>> = listOf(
    "options: a full configure() map parses" to {
        val o = ChatSyncOptions.fromJs(
            mapOf(
                "serverUrl" to "https://chat.example.com",
                "auth" to mapOf("kind" to "fixed", "token" to "t0k"),
                "pageSize" to 30.0,
                "cacheCapacityBytes" to 2097152.0,
                "allowInsecureHttp" to false,
                "probe" to mapOf("method" to "GET", "timeoutMs" to 2500.0, "url" to "https://chat.example.com/up"),
                "backgroundIntervalMs" to 120000.0,
                "notifications" to false,
            ),
        )
        eq(o.auth, AuthOption.Fixed("t0k"), "auth")
        eq(o.pageSize, 30, "pageSize")
        eq(o.cacheCapacityBytes, 2097152L, "cache")
        eq(o.probe?.method, "GET", "probe.method")
        eq(o.notifications, false, "notifications")
    },
    "options: only serverUrl is required and the rest stay null (core defaults)" to {
        val o = ChatSyncOptions.fromJs(mapOf("serverUrl" to "http://127.0.0.1:5000"))
        eq(o, ChatSyncOptions(serverUrl = "http://127.0.0.1:5000"), "options")
        eq(o.effectivePageSize, 50, "page size")
        val config = o.toClientConfig(StoredUser("alice"), "/data/chatsync/616c696365")
        eq(config.cacheCapacityBytes, null, "cache left to the core")
        eq(config.probe, null, "probe left to the core")
        eq(config.token, TokenSource.DevTokenRoute, "token")
    },
    "options: bad input is refused with a message naming the field" to {
        eq(throws<InvalidOptionsException> { ChatSyncOptions.fromJs(mapOf()) }.message, "serverUrl must be a non-empty string")
        check(throws<InvalidOptionsException> { ChatSyncOptions.fromJs(mapOf("serverUrl" to "ftp://x")) }.message!!.contains("https://")) { "scheme" }
        check(throws<InvalidOptionsException> {
            ChatSyncOptions.fromJs(mapOf("serverUrl" to "https://x", "pageSize" to 2.5))
        }.message!!.contains("pageSize")) { "fractional pageSize" }
        check(throws<InvalidOptionsException> {
            ChatSyncOptions.fromJs(mapOf("serverUrl" to "https://x", "pageSize" to -1.0))
        }.message!!.contains("pageSize")) { "negative pageSize" }
        check(throws<InvalidOptionsException> {
            ChatSyncOptions.fromJs(mapOf("serverUrl" to "https://x", "auth" to mapOf("kind" to "fixed")))
        }.message!!.contains("auth.token")) { "fixed without token" }
        check(throws<InvalidOptionsException> {
            ChatSyncOptions.fromJs(mapOf("serverUrl" to "https://x", "probe" to mapOf("method" to "POST")))
        }.message!!.contains("probe.method")) { "probe method" }
        check(throws<InvalidOptionsException> {
            ChatSyncOptions.fromJs(mapOf("serverUrl" to 42.0))
        }.message!!.contains("serverUrl")) { "serverUrl type" }
    },
    "options: what is stored reads back the same (cold start of the background job)" to {
        val full = ChatSyncOptions(
            serverUrl = "https://chat.example.com",
            auth = AuthOption.Fixed("secret"),
            pageSize = 20,
            maxMessagesPerRoom = 5000,
            cacheCapacityBytes = 1L shl 22,
            allowInsecureHttp = true,
            probe = ProbeOptions(url = "https://x/h", method = "HEAD", timeoutMs = 100, intervalMs = 2000, onlyWhileOffline = false, inBackground = true),
            backgroundIntervalMs = 90_000,
            notifications = false,
        )
        eq(ChatSyncOptions.fromStored(full.toStored()), full, "full")
        val minimal = ChatSyncOptions(serverUrl = "http://127.0.0.1:5000")
        eq(ChatSyncOptions.fromStored(minimal.toStored()), minimal, "minimal")
        eq(ChatSyncOptions.fromStored(emptyMap()), null, "nothing stored")
        eq(ChatSyncOptions.fromStored(mapOf("serverUrl" to "https://x", "auth" to "fixed")), null, "fixed auth without token is unreadable")
    },
    "options: the core config carries every set field, converted" to {
        val o = ChatSyncOptions(
            serverUrl = "https://chat.example.com",
            auth = AuthOption.Fixed("configured"),
            pageSize = 25,
            maxMessagesPerRoom = 1000,
            cacheCapacityBytes = 3_000_000,
            probe = ProbeOptions(method = "GET", intervalMs = 500),
            backgroundIntervalMs = 30_000,
        )
        val c = o.toClientConfig(StoredUser("bob"), "/d")
        eq(c.userId, "bob", "user")
        eq(c.dataDir, "/d", "dir")
        eq(c.pageSize, 25u, "page")
        eq(c.maxMessagesPerRoom, 1000u, "max")
        eq(c.cacheCapacityBytes, 3_000_000uL, "cache")
        eq(c.probe?.method, ProbeMethod.GET, "method")
        eq(c.probe?.intervalMs, 500uL, "interval")
        eq(c.probe?.timeoutMs, null, "timeout left to the core")
        eq(c.backgroundIntervalMs, 30_000uL, "background")
        eq(c.token, TokenSource.Fixed("configured"), "configured token")
        eq(o.toClientConfig(StoredUser("bob", token = "from-login"), "/d").token, TokenSource.Fixed("from-login"), "login token wins")
    },
    "user: store folder names cannot escape or clash" to {
        eq(StoredUser("alice").directoryName, "616c696365", "hex")
        eq(StoredUser("..").directoryName, "2e2e", "dot dot")
        check(!StoredUser("a/b").directoryName.contains("/")) { "slash" }
        check(StoredUser("Alice").directoryName != StoredUser("alice").directoryName) { "case" }
        val (user, profile) = StoredUser.fromJs(mapOf("id" to "alice", "name" to "Alice", "avatar" to "", "token" to "t"))
        eq(user, StoredUser("alice", "t"), "user")
        eq(profile, Profile("Alice", null), "empty avatar means none")
        throws<InvalidOptionsException> { StoredUser.fromJs(mapOf("id" to "", "name" to "A")) }
        throws<InvalidOptionsException> { StoredUser.fromJs(mapOf("id" to "a")) }
    },
    "errors: every ChatException variant maps to its code, keeping the core's message" to {
        val cases = listOf(
            ChatException.Offline("offline: connection refused", null) to ErrorCodes.OFFLINE,
            ChatException.Unauthorized("unauthorized: expired") to ErrorCodes.UNAUTHORIZED,
            ChatException.NotFound("not found: room r9") to ErrorCodes.NOT_FOUND,
            ChatException.Rejected("forbidden", "rejected by server (forbidden): no") to ErrorCodes.REJECTED,
            ChatException.Protocol("protocol error: ids went backwards") to ErrorCodes.PROTOCOL,
            ChatException.Storage("storage error: disk full") to ErrorCodes.STORAGE,
            ChatException.InvalidInput("invalid input: empty text") to ErrorCodes.INVALID_INPUT,
            ChatException.Busy("busy: held by pid 42") to ErrorCodes.BUSY,
            ChatException.ShutDown("client is shut down") to ErrorCodes.SHUT_DOWN,
            ChatException.Internal("panic: boom") to ErrorCodes.INTERNAL,
        )
        for ((error, code) in cases) eq(ErrorCodes.of(error), code to error.message, error.javaClass.simpleName)
        eq(ErrorCodes.of(ChatException.Rejected("forbidden", "rejected by server (forbidden): no")).second, "rejected by server (forbidden): no", "the readable text, not a field list")
        eq(ErrorCodes.of(InvalidOptionsException("pageSize bad")), ErrorCodes.INVALID_INPUT to "pageSize bad", "options")
        eq(ErrorCodes.of(ModuleStateException(ErrorCodes.NOT_LOGGED_IN, "login first")).first, ErrorCodes.NOT_LOGGED_IN, "state")
        eq(ErrorCodes.of(IllegalStateException()), ErrorCodes.INTERNAL to "IllegalStateException", "no message")
    },
    "errors: every Kotlin code is one JS knows (src/errors.ts)" to {
        val js = tsConstValues("src/errors.ts", "ErrorCodes")
        val kotlinCodes = ErrorCodes::class.java.declaredFields
            .filter { java.lang.reflect.Modifier.isStatic(it.modifiers) && it.type == String::class.java }
            .map { it.get(null) as String }
        check(kotlinCodes.size >= 12) { "found only $kotlinCodes" }
        for (code in kotlinCodes) check(code in js) { "$code is not in src/errors.ts ($js)" }
    },
    "bridge: a sent message has the core's shape (JS makes GiftedChat's) and only bridge-safe values" to {
        val m = BridgeValues.message(message(42uL))
        eq(m.keys, setOf("id", "serverId", "localId", "roomId", "sender", "text", "createdAt", "state", "failureReason", "parts"), "keys")
        eq(m["id"], "42", "id")
        eq(m["serverId"], 42.0, "serverId is a JS number")
        eq(m["state"], "sent", "state")
        eq(m["sender"], mapOf("id" to "alice", "name" to "Alice"), "sender without avatar")
        eq(m["parts"], listOf(mapOf("type" to "text/plain", "content" to "hello")), "parts")
        assertBridgeSafe(m)
    },
    "bridge: a failed echo keeps its local id and reason" to {
        val m = BridgeValues.message(message(null, localId = "txn-1", state = MessageState.FAILED))
        eq(m["id"], "txn-1", "id")
        eq(m["serverId"], null, "serverId")
        eq(m["state"], "failed", "state")
        eq(m["failureReason"], "rejected by server (forbidden): no", "reason")
        assertBridgeSafe(m)
    },
    "bridge: reports, status and events are bridge-safe with JS's names" to {
        val report = BridgeValues.syncReport(SyncReport(online = true, newMessages = mapOf("r1" to 3u), sent = 1u, pending = 0u, failed = 2u))
        eq(report["newMessages"], mapOf("r1" to 3.0), "per room")
        assertBridgeSafe(report)
        val events = listOf(
            ClientEvent.MessagesChanged("r1", listOf("7", "txn-2")),
            ClientEvent.NetworkStatusChanged(NetworkStatus.OFFLINE),
            ClientEvent.SyncStateChanged(SyncState.BACKING_OFF),
            ClientEvent.OutboxChanged(2u, 1u),
            ClientEvent.Unauthorized("token expired"),
        )
        val converted = events.map(BridgeValues::event)
        converted.forEach { assertBridgeSafe(it.second) }
        eq(converted.map { it.first }, EventNames.all, "one name per kind")
        eq(converted[1].second, mapOf("status" to "offline"), "network")
        eq(converted[2].second, mapOf("state" to "backing_off"), "sync state in snake_case like src/types.ts")
        eq(converted[3].second, mapOf("pending" to 2.0, "failed" to 1.0), "outbox")
        eq(converted[4].second, mapOf("reason" to "token expired"), "unauthorized")
        val js = tsConstValues("src/convert.ts", "NativeEventNames")
        eq(js, EventNames.all.toSet(), "event names shared with src/convert.ts")
    },
    "status: follows events, ignoring message changes" to {
        var s = ClientStatus()
        s = s.apply(ClientEvent.NetworkStatusChanged(NetworkStatus.ONLINE))
        s = s.apply(ClientEvent.SyncStateChanged(SyncState.LIVE))
        s = s.apply(ClientEvent.OutboxChanged(3u, 0u))
        eq(s.apply(ClientEvent.MessagesChanged("r1", listOf("1"))), s, "message changes")
        eq(s.apply(ClientEvent.Unauthorized("expired")), s, "a refused token")
        eq(BridgeValues.status(s), mapOf("networkStatus" to "online", "syncState" to "live", "pending" to 3.0, "failed" to 0.0), "status")
    },
    "background: the job reschedules early only when the core says so; Busy and Unauthorized are not DONE" to {
        fun report(outcome: BackgroundOutcome, retryLater: Boolean) = BackgroundSyncReport(
            outcome = outcome, retryLater = retryLater, online = false, newMessages = emptyList(),
            sent = 0u, pending = 0u, failed = 0u, error = null,
        )
        val expected = mapOf(
            report(BackgroundOutcome.COMPLETED, false) to BackgroundSync.Outcome.DONE,
            report(BackgroundOutcome.TIMED_OUT, true) to BackgroundSync.Outcome.RETRY,
            report(BackgroundOutcome.OFFLINE, true) to BackgroundSync.Outcome.RETRY,
            report(BackgroundOutcome.BUSY, true) to BackgroundSync.Outcome.RETRY,
            report(BackgroundOutcome.UNAUTHORIZED, false) to BackgroundSync.Outcome.UNAUTHORIZED,
            report(BackgroundOutcome.FAILED, false) to BackgroundSync.Outcome.FAILED,
        )
        for ((r, outcome) in expected) eq(BackgroundSync.outcomeOf(r), outcome, r.outcome.name)
        eq(BridgeValues.backgroundReport(report(BackgroundOutcome.TIMED_OUT, true))["outcome"], "timed_out", "report for logs")
    },
    "notifications: one per room, newest room first, replacing by a stable id" to {
        fun p(room: String, id: ULong, sender: String, text: String) = NewMessagePreview(room, id, sender.lowercase(), sender, text)
        val out = NotificationContent.forPreviews(
            listOf(p("r1", 10u, "Bob", "hi"), p("r2", 12u, "Carol", "lunch?"), p("r1", 11u, "Bob", "are you there?"), p("r1", 13u, "Dan", "hey")),
        )
        eq(out.map { it.roomId }, listOf("r1", "r2"), "rooms, newest first")
        eq(out[0].title, "Bob, Dan", "senders")
        eq(out[0].text, "3 new messages: hey", "count and newest text")
        eq(out[1].title, "Carol", "single sender")
        eq(out[1].text, "lunch?", "single message")
        eq(out[0].id, NotificationContent.idFor("r1"), "stable id")
        check(out[0].id != out[1].id) { "distinct rooms, distinct ids" }
        eq(NotificationContent.forPreviews(emptyList()), emptyList<RoomNotification>(), "nothing new")
    },
)

fun main(args: Array<String>) {
    if (args.isNotEmpty()) repoRoot = File(args[0])
    var passed = 0
    var failed = 0
    val scenario = ModuleScenario.fromEnvironment()
    val tests = logicTests + scenario.tests
    for ((name, test) in tests) {
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
    println("android: $passed passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
