// Linux tests of the iOS module's platform-independent half (ios/ChatSyncCore.swift,
// ios/ChatSyncSettings.swift), compiled in one module with the generated Swift bindings and run
// by scripts/test-rn.sh in the Swift toolchain's chroot: the logic first, then the runtime and the
// background run against the real core and the real reference server on loopback (started and
// SIGKILLed here). Prints "ios: N passed, N failed".
//
// Environment: CHATSYNC_SERVER_BIN, CHATSYNC_TEST_PORT (a free port), CHATSYNC_REPO (to read
// src/errors.ts and src/convert.ts).

import Foundation
#if canImport(Glibc)
import Glibc
#endif

struct Failure: Error, CustomStringConvertible {
    let description: String
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw Failure(description: message()) }
}

func eq<T: Equatable>(_ actual: T, _ expected: T, _ what: String) throws {
    try check(actual == expected, "\(what): expected <\(expected)>, got <\(actual)>")
}

func throwsError<T>(_ what: String, _ body: () async throws -> T) async throws -> Error {
    do {
        _ = try await body()
    } catch {
        return error
    }
    throw Failure(description: "\(what): nothing was thrown")
}

let deadline: TimeInterval = 20

/// Polls `step` until `done` holds, within a deadline: a bounded wait on a real condition.
func until<T>(_ what: String, _ step: () async throws -> T, _ done: (T) -> Bool) async throws -> T {
    let end = Date().addingTimeInterval(deadline)
    while true {
        let value = try await step()
        if done(value) { return value }
        try check(Date() < end, "not reached within \(deadline) s: \(what) (last: \(value))")
        try await Task.sleep(nanoseconds: 50_000_000) // poll interval of the bounded wait above
    }
}

/// The string values of a TS `const` object in a file under src/.
func tsConstValues(_ file: String, _ object: String) throws -> Set<String> {
    let repo = ProcessInfo.processInfo.environment["CHATSYNC_REPO"] ?? "."
    let text = try String(contentsOfFile: repo + "/" + file, encoding: .utf8)
    guard let start = text.range(of: "export const \(object) = {"),
          let end = text.range(of: "} as const", range: start.upperBound..<text.endIndex) else {
        throw Failure(description: "\(object) not found in \(file)")
    }
    var values = Set<String>()
    for line in text[start.upperBound..<end.lowerBound].split(separator: "\n") {
        let parts = line.split(separator: "'")
        if parts.count >= 2, line.contains(":") { values.insert(String(parts[1])) }
    }
    return values
}

/// Every leaf must be what RCTConvert hands to JS as src/types.ts expects.
func checkBridgeSafe(_ value: Any, _ path: String = "$") throws {
    switch value {
    case is NSNull, is Bool, is Double, is String: return
    case let map as [String: Any]: for (k, v) in map { try checkBridgeSafe(v, "\(path).\(k)") }
    case let list as [Any]: for (i, v) in list.enumerated() { try checkBridgeSafe(v, "\(path)[\(i)]") }
    default: throw Failure(description: "\(path): \(type(of: value)) does not cross the bridge as JS expects")
    }
}

func message(_ id: UInt64?, localId: String? = nil, state: MessageState = .sent) -> ChatMessage {
    ChatMessage(
        id: id.map { String($0) } ?? localId!, serverId: id, localId: localId, roomId: "r1",
        sender: ChatUser(id: "alice", name: "Alice", avatarUrl: nil), text: "hello",
        parts: [MessagePart(mimeType: "text/plain", content: "hello", extraJson: nil)],
        createdAt: "2026-11-25T06:00:00.000Z", state: state,
        failureReason: state == .failed ? "rejected by server (forbidden): no" : nil
    )
}

// MARK: - The reference server as a child process

final class ServerProcess {
    let port: Int
    let url: String
    private let bin: String
    private let db: String
    private var process: Process?

    init(bin: String, db: String) {
        self.bin = bin
        self.db = db
        port = ProcessInfo.processInfo.environment["CHATSYNC_TEST_PORT"].flatMap { Int($0) } ?? 20000 + Int.random(in: 0..<20000)
        url = "http://127.0.0.1:\(port)"
    }

    private func listening() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["--addr", "127.0.0.1:\(port)", "--db", db]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let end = Date().addingTimeInterval(15)
        while !listening() {
            try check(p.isRunning, "server exited")
            try check(Date() < end, "server did not listen on \(port) within 15 s")
            usleep(20_000) // poll interval of the bounded wait above
        }
    }

    /// SIGKILL, as when the network drops.
    func kill() {
        guard let p = process else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }
}

// MARK: - Tests

var tests: [(String, () async throws -> Void)] = []

tests.append(("options: a full configure() map parses, only serverUrl is required", {
    let o = try ChatSyncOptions.fromJs([
        "serverUrl": "https://chat.example.com", "auth": ["kind": "fixed", "token": "t0k"], "pageSize": 30.0,
        "probe": ["method": "GET", "timeoutMs": 2500.0], "notifications": false,
    ])
    try eq(o.auth, .fixed(token: "t0k"), "auth")
    try eq(o.pageSize, 30, "pageSize")
    try eq(o.probe?.timeoutMs, 2500, "probe.timeoutMs")
    try eq(o.notifications, false, "notifications")
    try eq(try ChatSyncOptions.fromJs(["serverUrl": "http://127.0.0.1:5000"]), ChatSyncOptions(serverUrl: "http://127.0.0.1:5000"), "minimal")
}))

tests.append(("options: bad input is refused with a message naming the field", {
    for (map, field) in [([:], "serverUrl"), (["serverUrl": "ftp://x"], "https://"), (["serverUrl": "https://x", "pageSize": 2.5], "pageSize"),
                         (["serverUrl": "https://x", "pageSize": -1.0], "pageSize"), (["serverUrl": "https://x", "auth": ["kind": "fixed"]], "auth.token"),
                         (["serverUrl": "https://x", "probe": ["method": "POST"]], "probe.method")] as [([String: Any], String)] {
        let error = try await throwsError(field) { try ChatSyncOptions.fromJs(map) }
        let (code, text) = chatSyncRejection(for: error)
        try eq(code, ChatSyncErrorCode.invalidInput, "code for \(field)")
        try check(text.contains(field), "'\(text)' should name \(field)")
    }
}))

tests.append(("options: what is stored reads back the same, the token kept as a secret", {
    let full = ChatSyncOptions(serverUrl: "https://chat.example.com", auth: .fixed(token: "secret"), pageSize: 20, maxMessagesPerRoom: 5000,
                               cacheCapacityBytes: 1 << 22, allowInsecureHttp: true,
                               probe: ProbeOptions(url: "https://x/h", method: "HEAD", timeoutMs: 100, intervalMs: 2000, onlyWhileOffline: false, inBackground: true),
                               backgroundIntervalMs: 90_000, notifications: false)
    try eq(ChatSyncOptions.fromStored(full.toStored()), full, "round trip")
    let suite = "chatsync-test-\(getpid())"
    let defaults = UserDefaults(suiteName: suite)!
    defer { defaults.removePersistentDomain(forName: suite) }
    let secrets = InMemorySecretStore()
    let settings = ChatSyncSettings(defaults: defaults, secrets: secrets)
    try eq(settings.options(), nil, "nothing stored")
    settings.saveOptions(full)
    try eq(settings.options(), full, "through UserDefaults")
    try check(!defaults.dictionaryRepresentation().values.contains { ($0 as? String) == "secret" }, "the token must not be in UserDefaults")
    settings.saveUser(StoredUser(id: "alice", token: "login-token"))
    try eq(settings.user(), StoredUser(id: "alice", token: "login-token"), "user")
    settings.clearUser()
    try eq(settings.user(), nil, "logged out")
}))

tests.append(("options: the core config carries every set field; a login token wins", {
    let o = ChatSyncOptions(serverUrl: "https://c", auth: .fixed(token: "configured"), pageSize: 25, probe: ProbeOptions(method: "GET", intervalMs: 500))
    let c = o.clientConfig(user: StoredUser(id: "bob"), dataDir: "/d")
    try eq(c.userId, "bob", "user")
    try eq(c.pageSize, 25, "page")
    try eq(c.probe?.method, .get, "method")
    try eq(c.probe?.timeoutMs, nil, "timeout left to the core")
    if case .fixed(let t) = c.token { try eq(t, "configured", "configured token") } else { throw Failure(description: "token") }
    if case .fixed(let t) = o.clientConfig(user: StoredUser(id: "bob", token: "login"), dataDir: "/d").token { try eq(t, "login", "login token") } else { throw Failure(description: "token") }
    try eq(StoredUser(id: "..").directoryName, "2e2e", "folder name")
}))

tests.append(("errors: every ChatError maps to a code JS knows, keeping the message", {
    let js = try tsConstValues("src/errors.ts", "ErrorCodes")
    for code in ChatSyncErrorCode.all { try check(js.contains(code), "\(code) is not in src/errors.ts") }
    let cases: [(ChatError, String)] = [(.Offline(detail: "offline: x", retryAfterSecs: nil), "E_OFFLINE"), (.Unauthorized(detail: "u"), "E_UNAUTHORIZED"),
                                        (.NotFound(detail: "n"), "E_NOT_FOUND"), (.Rejected(code: "forbidden", detail: "r"), "E_REJECTED"),
                                        (.Protocol(detail: "p"), "E_PROTOCOL"), (.Storage(detail: "s"), "E_STORAGE"),
                                        (.InvalidInput(detail: "i"), "E_INVALID_INPUT"), (.Busy(detail: "b"), "E_BUSY"),
                                        (.ShutDown(detail: "d"), "E_SHUT_DOWN"), (.Internal(detail: "boom"), "E_INTERNAL")]
    for (error, code) in cases { try eq(chatSyncRejection(for: error).code, code, "\(error)") }
    try eq(chatSyncRejection(for: ChatError.Offline(detail: "offline: refused", retryAfterSecs: 5)).message, "offline: refused", "message")
    try eq(chatSyncRejection(for: ChatError.Rejected(code: "forbidden", detail: "rejected by server (forbidden): no")).message,
           "rejected by server (forbidden): no", "the readable text, not a dump of the case")
}))

tests.append(("bridge: messages (the core's shape; JS makes GiftedChat's), events and status have JS's shapes and names", {
    let m = BridgeValues.message(message(42))
    try eq(Set(m.keys), ["id", "serverId", "localId", "roomId", "sender", "text", "createdAt", "state", "failureReason", "parts"], "keys")
    try eq(m["sender"] as? [String: String], ["id": "alice", "name": "Alice"], "sender without avatar")
    try eq(m["serverId"] as? Double, 42, "serverId is a JS number")
    try check(m["localId"] is NSNull, "null localId")
    try checkBridgeSafe(m)
    let echo = BridgeValues.message(message(nil, localId: "txn-1", state: .failed))
    try check(echo["serverId"] is NSNull, "echo has no server id")
    try eq(echo["failureReason"] as? String, "rejected by server (forbidden): no", "reason")
    let events: [ClientEvent] = [.messagesChanged(roomId: "r1", ids: ["1"]), .networkStatusChanged(status: .offline),
                                 .syncStateChanged(state: .backingOff), .outboxChanged(pending: 2, failed: 1),
                                 .unauthorized(reason: "token expired")]
    let converted = events.map(BridgeValues.event)
    for c in converted { try checkBridgeSafe(c.body) }
    try eq(converted.map(\.name), ChatSyncEventName.all, "names")
    try eq(converted[2].body["state"] as? String, "backing_off", "snake_case state")
    try eq(converted[4].body["reason"] as? String, "token expired", "unauthorized")
    try eq(Set(ChatSyncEventName.all), try tsConstValues("src/convert.ts", "NativeEventNames"), "names shared with src/convert.ts")
    let status = ClientStatus().applying(.networkStatusChanged(status: .online)).applying(.outboxChanged(pending: 3, failed: 0))
    try eq(BridgeValues.status(status)["networkStatus"] as? String, "online", "status")
    try eq(status.applying(.messagesChanged(roomId: "r1", ids: [])), status, "message changes leave the status")
    try eq(status.applying(.unauthorized(reason: "expired")), status, "a refused token leaves the status")
}))

tests.append(("background: the task reschedules only when the core says so; Busy and Unauthorized are not done", {
    func report(_ outcome: BackgroundOutcome, _ retryLater: Bool) -> BackgroundSyncReport {
        BackgroundSyncReport(outcome: outcome, retryLater: retryLater, online: false, newMessages: [], sent: 0, pending: 0, failed: 0, error: nil)
    }
    let expected: [(BackgroundSyncReport, BackgroundRun.Outcome)] = [
        (report(.completed, false), .done), (report(.timedOut, true), .retry), (report(.offline, true), .retry),
        (report(.busy, true), .retry), (report(.unauthorized, false), .unauthorized), (report(.failed, false), .failed),
    ]
    for (r, outcome) in expected { try eq(BackgroundRun.Outcome.of(r), outcome, "\(r.outcome)") }
}))

tests.append(("notifications: one per room, newest room first, stable identifiers", {
    func p(_ room: String, _ id: UInt64, _ sender: String, _ text: String) -> NewMessagePreview {
        NewMessagePreview(roomId: room, messageId: id, senderId: sender.lowercased(), senderName: sender, preview: text)
    }
    let out = NotificationContent.forPreviews([p("r1", 10, "Bob", "hi"), p("r2", 12, "Carol", "lunch?"), p("r1", 11, "Bob", "there?"), p("r1", 13, "Dan", "hey")])
    try eq(out.map(\.roomId), ["r1", "r2"], "order")
    try eq(out[0].title, "Bob, Dan", "senders")
    try eq(out[0].body, "3 new messages: hey", "body")
    try eq(out[1].body, "lunch?", "single")
    try eq(out[0].identifier, NotificationContent.identifier(for: "r1"), "identifier")
}))

// The scenario: the runtime and the background run against the real server.
let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("chatsync-rn-ios-\(getpid())")
let baseDir = work.appendingPathComponent("ApplicationSupport")
let serverBin = ProcessInfo.processInfo.environment["CHATSYNC_SERVER_BIN"] ?? ""
let server = ServerProcess(bin: serverBin, db: work.appendingPathComponent("server.db").path)
let runtime = ChatSyncRuntime.shared
let alice = StoredUser(id: "alice")
var options = ChatSyncOptions(serverUrl: "")
var bob: ChatClient?
var roomId = ""
final class EventBox: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ClientEvent] = []
    func add(_ e: ClientEvent) { lock.lock(); events.append(e); lock.unlock() }
    func all() -> [ClientEvent] { lock.lock(); defer { lock.unlock() }; return events }
    func clear() { lock.lock(); events.removeAll(); lock.unlock() }
}
let seen = EventBox()

func bobSays(_ text: String) async throws {
    _ = try await bob!.sendText(roomId: roomId, text: text)
    _ = try await until("bob's '\(text)' accepted", { try await bob!.syncOnce() }) { $0.pending == 0 && $0.failed == 0 }
}

tests.append(("scenario: login through the module's options opens a started client that goes online", {
    try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    try server.start()
    options = try ChatSyncOptions.fromJs(["serverUrl": server.url, "probe": ["timeoutMs": 500.0, "intervalMs": 200.0]])
    runtime.addSink { seen.add($0) }
    runtime.setAppState(.active)
    let client = try runtime.open(baseDir: baseDir, options: options, user: alice)
    runtime.start()
    let session = BridgeValues.session(try await client.login(name: "Alice", avatarUrl: nil))
    try eq((session["user"] as? [String: Any])?["name"] as? String, "Alice", "session")
    var isDir: ObjCBool = false
    try check(FileManager.default.fileExists(atPath: baseDir.appendingPathComponent("chatsync/616c696365").path, isDirectory: &isDir) && isDir.boolValue, "store folder")
    _ = try await until("online", { runtime.status.networkStatus }) { $0 == .online }
    try check(runtime.isForeground, "foreground")
}))

tests.append(("scenario: a message from another phone arrives as an event and reads back in the core's shape", {
    bob = try ChatClient(config: ClientConfig(serverUrl: server.url, dataDir: work.appendingPathComponent("bob").path, userId: "bob", token: .devTokenRoute))
    _ = try await bob!.login(name: "Bob", avatarUrl: nil)
    roomId = try await bob!.openDirectRoom(userId: "alice").id
    try eq(BridgeValues.room(try await runtime.current!.openDirectRoom(userId: "bob"))["id"] as? String, roomId, "same room")
    seen.clear()
    try await bobSays("hi alice")
    _ = try await until("messagesChanged", { seen.all() }) { $0.contains { if case .messagesChanged(let r, _) = $0 { return r == roomId } else { return false } } }
    let list = try await until("stored", { BridgeValues.messages(try runtime.current!.messages(roomId: roomId, limit: 50, before: nil)) }) {
        $0.contains { $0["text"] as? String == "hi alice" }
    }
    try checkBridgeSafe(list)
    let m = list.first { $0["text"] as? String == "hi alice" }!
    try eq(m["state"] as? String, "sent", "sent")
    try eq((m["sender"] as? [String: Any])?["name"] as? String, "Bob", "sender")
}))

tests.append(("scenario: a send while the server is down is a pending echo, sent after restart", {
    server.kill()
    runtime.setReachable(false)
    let echo = BridgeValues.message(try await runtime.current!.sendText(roomId: roomId, text: "sent while offline"))
    try eq(echo["state"] as? String, "pending", "pending")
    try check(echo["serverId"] is NSNull, "no server id")
    let localId = echo["localId"] as! String
    try server.start()
    runtime.setReachable(true)
    let sent = try await until("sent", {
        _ = try? await runtime.current!.syncOnce()
        return try runtime.current!.messages(roomId: roomId, limit: 50, before: nil).first { $0.localId == localId }
    }) { (m: ChatMessage?) in m?.state == MessageState.sent }
    try eq(sent?.text, "sent while offline", "text")
}))

tests.append(("scenario: the background task's launch restores the stored user and lists a notification", {
    runtime.setAppState(.background)
    runtime.close()
    try check(runtime.current == nil, "closed")
    try await bobSays("ping for the background")
    let stored = ChatSyncOptions.fromStored(options.toStored())
    let run = await BackgroundSync.run(open: { try runtime.restore(baseDir: baseDir, options: stored, user: alice) }, budgetMs: 10_000,
                                       notificationsEnabled: true, isForeground: { runtime.isForeground })
    try eq(run.outcome, .done, "outcome (\(run.error ?? ""))")
    try eq(run.report?.outcome, .completed, "completed")
    try eq(run.notifications.map(\.body), ["ping for the background"], "notification")
    try eq(run.notifications.first?.title, "Bob", "title")
    try await bobSays("seen in the app")
    let foreground = await BackgroundSync.run(open: { runtime.current }, budgetMs: 10_000, notificationsEnabled: true, isForeground: { true })
    try eq(foreground.report?.newMessages.map(\.preview), ["seen in the app"], "the core saw it")
    try eq(foreground.notifications, [], "no notification in the foreground")
    let nobody = await BackgroundSync.run(open: { try runtime.restore(baseDir: baseDir, options: stored, user: nil) }, notificationsEnabled: true, isForeground: { false })
    try eq(nobody.outcome, .nobodyLoggedIn, "logged out")
}))

tests.append(("scenario: a refused token ends the task as unauthorized, not done, and not retried", {
    let dave = StoredUser(id: "dave")
    var refused = options
    refused.auth = .fixed(token: "not-a-token")
    let client = try ChatClient(config: refused.clientConfig(user: dave, dataDir: ChatSyncRuntime.dataDir(baseDir: baseDir, user: dave).path))
    defer { try? client.shutdown() }
    let run = await BackgroundSync.run(open: { client }, budgetMs: 10_000, notificationsEnabled: true, isForeground: { false })
    try eq(run.outcome, .unauthorized, "outcome (\(run.error ?? ""))")
    try eq(run.report?.retryLater, false, "retrying will not help")
    try check(run.error?.hasPrefix("unauthorized: ") == true, "error: \(run.error ?? "none")")
}))

tests.append(("scenario: a store held elsewhere is Busy (retry), empty text is invalid input", {
    let client = try runtime.restore(baseDir: baseDir, options: options, user: alice)!
    let empty = try await throwsError("empty text") { try await client.sendText(roomId: roomId, text: "") }
    try eq(chatSyncRejection(for: empty).code, ChatSyncErrorCode.invalidInput, "empty text")
    let dir = ChatSyncRuntime.dataDir(baseDir: baseDir, user: alice).path
    let busy = try await throwsError("second client") { try ChatClient(config: options.clientConfig(user: alice, dataDir: dir)) }
    try eq(chatSyncRejection(for: busy).code, ChatSyncErrorCode.busy, "busy")
    runtime.close()
    try check(runtime.current == nil, "logged out")
}))

var passed = 0
var failed = 0
for (name, test) in tests {
    do {
        try await test()
        passed += 1
        print("ok - \(name)")
    } catch {
        failed += 1
        print("FAIL - \(name): \(error)")
    }
}
runtime.close()
if let b = bob { try? b.shutdown() }
server.kill()
try? FileManager.default.removeItem(at: work)
print("ios: \(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
