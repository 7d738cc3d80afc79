// The bindings scenario in Swift: the generated API and its AsyncStream wrappers, against the
// real reference server on loopback, which this program starts, SIGKILLs and restarts itself.
// The same scenario runs in Kotlin (tests/kotlin/Scenario.kt).
//
// Environment: CHATSYNC_SERVER_BIN (path of chatsync-server), CHATSYNC_TEST_PORT (a free port).
// Prints one line per test, then `swift: N passed, N failed`; exits 1 on any failure.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

let deadlineSeconds = 20.0

struct TestFailure: Error, CustomStringConvertible {
    let description: String
}

func expect(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw TestFailure(description: message()) }
}

/// Runs `body`, which must throw a ChatError that `matches` accepts; returns it.
@MainActor
func expectChatError(_ what: String, _ matches: (ChatError) -> Bool, _ body: () async throws -> Void) async throws -> ChatError {
    do {
        try await body()
    } catch let error as ChatError {
        if matches(error) { return error }
        throw TestFailure(description: "\(what): unexpected \(error)")
    }
    throw TestFailure(description: "\(what): nothing thrown")
}

func now() -> Double { Date().timeIntervalSince1970 }

/// Repeats `step` until `done` holds, within a deadline (a bounded wait on a real condition).
@MainActor
func until<T: Sendable>(_ what: String, timeout: Double = deadlineSeconds, _ step: () async throws -> T, _ done: (T) -> Bool) async throws -> T {
    let deadline = now() + timeout
    while true {
        let value = try await step()
        if done(value) { return value }
        if now() > deadline { throw TestFailure(description: "not reached within \(timeout) s: \(what) (last: \(value))") }
        try await Task.sleep(nanoseconds: 50_000_000) // poll interval of the bounded wait above
    }
}

func portAccepts(_ port: UInt16) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
        }
    }
}

/// The reference server as a child process: started, SIGKILLed and restarted on one port and db.
final class Server {
    let bin: String, port: UInt16, db: String, log: String
    var process: Process?
    var url: String { "http://127.0.0.1:\(port)" }

    init(bin: String, port: UInt16, work: String) {
        self.bin = bin; self.port = port; db = work + "/server.db"; log = work + "/server.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
    }

    func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["--addr", "127.0.0.1:\(port)", "--db", db]
        let out = FileHandle(forWritingAtPath: log)!
        out.seekToEndOfFile()
        p.standardOutput = out
        p.standardError = out
        try p.run()
        process = p
        let deadline = now() + 15
        while !portAccepts(port) {
            guard p.isRunning else {
                throw TestFailure(description: "server exited: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
            }
            guard now() < deadline else { throw TestFailure(description: "server did not listen on \(port) within 15 s") }
            usleep(20_000) // poll interval of the bounded wait above
        }
    }

    /// SIGKILL: the server gets no chance to say goodbye, as when a network drops.
    func kill() {
        guard let p = process else { return }
        Glibc.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }
}

/// Every event of a client through the AsyncStream wrapper, kept for the test to wait on.
final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ClientEvent] = []
    private var consumed = 0
    private var task: Task<Void, Never>?

    init(_ client: ChatClient) throws {
        let stream = try client.events()
        task = Task { [weak self] in
            for await event in stream {
                guard let self else { return }
                self.append(event)
            }
        }
    }

    /// Waits (bounded) for the next event that `matches`, consuming the ones before it.
    @MainActor
    func await(_ what: String, timeout: Double = deadlineSeconds, _ matches: (ClientEvent) -> Bool = { _ in true }) async throws -> ClientEvent {
        let deadline = now() + timeout
        while true {
            if let event = take(matches) { return event }
            if now() > deadline { throw TestFailure(description: "no event '\(what)' within \(timeout) s") }
            try await Task.sleep(nanoseconds: 20_000_000) // poll interval of the bounded wait above
        }
    }

    func stop() { task?.cancel() }

    /// Consumes every event delivered so far.
    func skipAll() {
        lock.lock(); defer { lock.unlock() }
        consumed = events.count
    }

    private func append(_ event: ClientEvent) {
        lock.lock(); defer { lock.unlock() }
        events.append(event)
    }

    /// The next unconsumed event that `matches`, consuming the ones before it.
    private func take(_ matches: (ClientEvent) -> Bool) -> ClientEvent? {
        lock.lock(); defer { lock.unlock() }
        while consumed < events.count {
            let event = events[consumed]
            consumed += 1
            if matches(event) { return event }
        }
        return nil
    }
}

/// Ids collected from a stream, read from the test.
final class Collected: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: Set<String> = []
    func add(_ more: [String]) { lock.lock(); ids.formUnion(more); lock.unlock() }
    func contains(_ id: String) -> Bool { lock.lock(); defer { lock.unlock() }; return ids.contains(id) }
}

/// A listener that records what it gets, for the direct subscribe/cancel test.
final class RecordingListener: ClientListener, @unchecked Sendable {
    private let lock = NSLock()
    private var events: [ClientEvent] = []
    func onEvent(event: ClientEvent) { lock.lock(); events.append(event); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return events.count }
}

/// A token provider implemented in Swift: asks the dev route itself.
final class DevRouteTokenProvider: TokenProvider, @unchecked Sendable {
    let server: String
    private(set) var calls = 0
    init(server: String) { self.server = server }

    func fetchToken(userId: String) throws -> String {
        calls += 1
        var request = URLRequest(url: URL(string: server + "/v1/token")!)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = try JSONSerialization.data(withJSONObject: ["user_id": userId])
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var body: Data?
        URLSession.shared.dataTask(with: request) { data, _, _ in body = data; done.signal() }.resume()
        done.wait()
        guard let data = body,
              let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let token = json["access_token"] as? String
        else { throw TokenProviderError.Failed(reason: "no access_token from \(server)") }
        return token
    }
}

final class RefusingTokenProvider: TokenProvider, @unchecked Sendable {
    func fetchToken(userId: String) throws -> String { throw TokenProviderError.Failed(reason: "signed out") }
}

func config(_ server: String, _ dir: String, _ user: String, _ token: TokenSource = .devTokenRoute) -> ClientConfig {
    ClientConfig(serverUrl: server, dataDir: dir, userId: user, token: token,
                 probe: ProbeConfig(timeoutMs: 500, intervalMs: 200))
}

func withText(_ messages: [ChatMessage], _ text: String) -> [ChatMessage] { messages.filter { $0.text == text } }

var passed = 0, failed = 0
@MainActor
func test(_ name: String, _ body: () async throws -> Void) async {
    do {
        try await body()
        passed += 1
        print("ok   \(name)")
    } catch {
        failed += 1
        print("FAIL \(name): \(error)")
    }
}

let env = ProcessInfo.processInfo.environment
guard let bin = env["CHATSYNC_SERVER_BIN"], let port = env["CHATSYNC_TEST_PORT"].flatMap(UInt16.init) else {
    print("CHATSYNC_SERVER_BIN and CHATSYNC_TEST_PORT must be set")
    exit(2)
}
let work = NSTemporaryDirectory() + "chatsync-swift-" + UUID().uuidString
try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
let server = Server(bin: bin, port: port, work: work)
try server.start()

var alice: ChatClient!
var bob: ChatClient!
var bobEvents: EventLog!
var roomId = ""

await test("configure two clients in temp dirs") {
    alice = try ChatClient(config: config(server.url, work + "/alice", "alice"))
    bob = try ChatClient(config: config(server.url, work + "/bob", "bob"))
    try expect(try alice.session() == nil, "a fresh store has no session")
}
await test("log in") {
    let session = try await alice.login(name: "Alice", avatarUrl: nil)
    try expect(session.user.id == "alice" && session.user.name == "Alice", "session: \(session)")
    try expect(try alice.session()?.user.id == "alice", "the session is stored")
    _ = try await bob.login(name: "Bob", avatarUrl: "https://example.invalid/bob.png")
}
await test("open the direct room") {
    let room = try await alice.openDirectRoom(userId: "bob")
    let same = try await bob.openDirectRoom(userId: "alice")
    try expect(room.id == same.id, "both sides get one direct room: \(room.id) vs \(same.id)")
    try expect(Set(room.memberIds) == ["alice", "bob"], "members: \(room.memberIds)")
    try expect(try alice.rooms().contains { $0.id == room.id }, "the room is stored")
    roomId = room.id
}
await test("a listener gets the current state first") {
    bobEvents = try EventLog(bob)
    var first: [ClientEvent] = []
    for _ in 0..<3 { first.append(try await bobEvents.await("current state")) }
    try expect(first.contains { if case .networkStatusChanged = $0 { return true }; return false }, "network status first: \(first)")
    try expect(first.contains { if case .syncStateChanged = $0 { return true }; return false }, "sync state first: \(first)")
    try expect(first.contains { if case .outboxChanged = $0 { return true }; return false }, "outbox counts first: \(first)")
}
await test("send, and a second client receives it through the listener") {
    let echo = try await alice.sendText(roomId: roomId, text: "hello from swift")
    try expect(echo.text == "hello from swift" && echo.localId != nil, "echo: \(echo)")
    _ = try await until("alice's outbox is flushed", { _ = try await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    _ = try await bob.syncOnce()
    _ = try await bobEvents.await("bob: messages changed in the room") {
        if case let .messagesChanged(room, _) = $0 { return room == roomId }
        return false
    }
    let got = withText(try bob.messages(roomId: roomId, limit: 50, before: nil), "hello from swift")
    try expect(got.count == 1 && got[0].sent && got[0].user.id == "alice", "bob has it once, sent: \(got)")
}
await test("offline: the server is killed, a send still gives a pending echo") {
    server.kill()
    let echo = try await alice.sendText(roomId: roomId, text: "sent while offline")
    try expect(echo.pending && echo.state == .pending && !echo.sent, "pending echo: \(echo)")
    do {
        let report = try await alice.syncOnce()
        try expect(!report.online && report.pending == 1, "offline report: \(report)")
    } catch let error as ChatError {
        guard case .Offline = error else { throw error }
        try expect(error.message.hasPrefix("offline"), "readable message: \(error.message)")
    }
    let outbox = try alice.outbox()
    try expect(outbox.count == 1 && outbox[0].state == .pending, "still queued: \(outbox)")
    let shown = withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline")
    try expect(shown.count == 1 && shown[0].pending, "the echo is shown: \(shown)")
}
await test("back online: sync delivers exactly one copy") {
    try server.start()
    _ = try await until("alice's outbox is flushed", { _ = try? await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    let mine = withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline")
    try expect(mine.count == 1 && mine[0].sent && mine[0].serverId != nil, "alice: one sent copy: \(mine)")
    let theirs = try await until("bob has the offline message", {
        _ = try await bob.syncOnce(); return try bob.messages(roomId: roomId, limit: 50, before: nil)
    }) { !withText($0, "sent while offline").isEmpty }
    try expect(withText(theirs, "sent while offline").count == 1, "bob: exactly one copy: \(theirs)")
    try expect(withText(theirs, "hello from swift").count == 1, "and the first one still once: \(theirs)")
}
await test("a bad server URL is a typed error with a readable message, and creates no store") {
    let dir = work + "/bad-url"
    let bad = try await expectChatError("bad URL", { if case .InvalidInput = $0 { return true }; return false }) {
        _ = try ChatClient(config: config("not a url", dir, "alice"))
    }
    try expect(bad.message.hasPrefix("invalid input") && bad.message.contains("not a url"), "message: \(bad.message)")
    try expect(!FileManager.default.fileExists(atPath: dir), "no store was created for a bad URL")
    _ = try await expectChatError("plain http to a remote host", { if case .InvalidInput = $0 { return true }; return false }) {
        _ = try ChatClient(config: config("http://chat.example.com", work + "/insecure", "alice"))
    }
    let offline = try await expectChatError("nothing listens", { if case .Offline = $0 { return true }; return false }) {
        let c = try ChatClient(config: config("http://127.0.0.1:1", work + "/dead", "alice"))
        _ = try await c.openDirectRoom(userId: "bob")
    }
    try expect(offline.message.hasPrefix("offline"), "message: \(offline.message)")
}
await test("an oversized text (over 16 KiB) is a typed error and queues nothing") {
    let before = try alice.outbox()
    let e = try await expectChatError("17 KiB text", { if case .InvalidInput = $0 { return true }; return false }) {
        _ = try await alice.sendText(roomId: roomId, text: String(repeating: "x", count: 17 * 1024))
    }
    try expect(e.message.contains("limit"), "readable: \(e.message)")
    try expect(try alice.outbox() == before, "nothing queued")
}
await test("a message the server rejects ends failed with its reason, store intact") {
    let echo = try await alice.sendText(roomId: "no-such-room", text: "to nowhere")
    try expect(echo.pending, "queued first: \(echo)")
    let outbox = try await until("the server rejects it", { _ = try await alice.syncOnce(); return try alice.outbox() }) { (entries: [OutboxEntry]) in
        entries.contains { $0.localId == echo.localId && $0.state == .failed }
    }
    let entry = outbox.first { $0.localId == echo.localId }!
    try expect(!(entry.failureReason ?? "").isEmpty, "a reason: \(entry)")
    let shown = try alice.messages(roomId: "no-such-room", limit: 50, before: nil).first { $0.localId == echo.localId }
    try expect(shown?.failed == true && shown?.state == .failed && shown?.failureReason != nil, "shown as failed: \(String(describing: shown))")
    try await alice.discard(localId: echo.localId!)
    try expect(try alice.outbox().isEmpty, "nothing left queued")
    try expect(withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline").count == 1, "earlier messages intact")
}
await test("token providers implemented in Swift: a working one, and a refusal as Unauthorized") {
    let provider = DevRouteTokenProvider(server: server.url)
    let carol = try ChatClient(config: config(server.url, work + "/carol", "carol", .provider(provider: provider)))
    let room = try await carol.openDirectRoom(userId: "alice")
    try expect(room.memberIds.contains("carol"), "room: \(room)")
    try expect(provider.calls >= 1, "the provider was asked")
    let refused = try await expectChatError("refusing provider", { if case .Unauthorized = $0 { return true }; return false }) {
        let dave = try ChatClient(config: config(server.url, work + "/dave", "dave", .provider(provider: RefusingTokenProvider())))
        _ = try await dave.openDirectRoom(userId: "alice")
    }
    try expect(refused.message.contains("signed out"), "the provider's reason: \(refused.message)")
}
await test("background_sync with a budget returns a report") {
    _ = try await bob.sendText(roomId: roomId, text: "ping for the background")
    _ = try await until("bob's outbox is flushed", { _ = try await bob.syncOnce(); return try bob.outbox() }) { $0.isEmpty }
    let started = now()
    let report = try await alice.backgroundSync(budgetMs: 5_000)
    let took = now() - started
    try expect(took < 6, "within the budget: \(took) s")
    try expect(report.finished && report.online && report.error == nil, "report: \(report)")
    try expect(report.newMessages.contains { $0.senderId == "bob" && $0.preview.contains("ping") }, "previews: \(report.newMessages)")
}
await test("started: a message arrives live through the listener, without a sync call") {
    bobEvents.skipAll() // only events from here on
    try bob.setAppState(state: .active)
    try bob.start()
    _ = try await alice.sendText(roomId: roomId, text: "live from swift")
    _ = try await until("alice's outbox is flushed", { _ = try await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    let live = try await until("bob's scheduler stores it", { try bob.messages(roomId: roomId, limit: 50, before: nil) }) {
        !withText($0, "live from swift").isEmpty
    }
    try expect(withText(live, "live from swift").count == 1, "once: \(live)")
    let id = withText(live, "live from swift")[0].id
    _ = try await bobEvents.await("bob's listener hears of it") {
        if case let .messagesChanged(room, ids) = $0 { return room == roomId && ids.contains(id) }
        return false
    }
}
await test("typed streams: the current status first, then a room's message changes") {
    var statuses = try alice.networkStatusUpdates().makeAsyncIterator()
    let status = await statuses.next()
    try expect(status == (try alice.networkStatus()), "first value is the current status: \(String(describing: status))")
    var states = try alice.syncStateUpdates().makeAsyncIterator()
    try expect(await states.next() != nil, "a current sync state")
    let changes = try alice.messageChanges(roomId: roomId)
    let collected = Collected()
    let task = Task { for await ids in changes { collected.add(ids) } }
    _ = try await bob.sendText(roomId: roomId, text: "for the flow")
    _ = try await until("bob's outbox is flushed", { _ = try await bob.syncOnce(); return try bob.outbox() }) { $0.isEmpty }
    let stored = try await until("alice has it", { _ = try await alice.syncOnce(); return try alice.messages(roomId: roomId, limit: 50, before: nil) }) {
        !withText($0, "for the flow").isEmpty
    }
    let id = withText(stored, "for the flow")[0].id
    _ = try await until("the room's stream names it", { collected.contains(id) }) { $0 }
    task.cancel()
}
await test("cancelled and released subscriptions get no more events") {
    let cancelled = RecordingListener()
    let dropped = RecordingListener()
    let cancelledSub = try alice.subscribe(listener: cancelled)
    var droppedSub: Subscription? = try alice.subscribe(listener: dropped)
    let open = try EventLog(alice)
    _ = try await open.await("current state")
    _ = try await until("both got the current state", { cancelled.count > 0 && dropped.count > 0 }) { $0 }
    cancelledSub.cancel() // explicitly
    droppedSub = nil // the last reference: the Rust side drops the handle, which cancels
    try expect(droppedSub == nil, "released")
    let before = [cancelled.count, dropped.count]
    _ = try await alice.sendText(roomId: roomId, text: "after cancel")
    _ = try await until("flushed", { _ = try await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    let id = withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "after cancel")[0].id
    _ = try await open.await("the open listener sees it stored") {
        if case let .messagesChanged(_, ids) = $0 { return ids.contains(id) }
        return false
    }
    let after = [cancelled.count, dropped.count]
    try expect(after == before, "no events after cancel/release: before \(before), after \(after)")
    open.stop()
}
await test("a panic inside the library becomes ChatError.Internal") {
    let e = try await expectChatError("sync panic", { if case .Internal = $0 { return true }; return false }) {
        try selftestPanic(message: "boom from swift")
    }
    try expect(e.message.contains("boom from swift"), "message: \(e.message)")
    let a = try await expectChatError("async panic", { if case .Internal = $0 { return true }; return false }) {
        try await selftestPanicAsync(message: "async boom")
    }
    try expect(a.message.contains("async boom"), "message: \(a.message)")
}
await test("recoverStore: a healthy store is left alone, a damaged one is rebuilt with its queue") {
    let dir = work + "/dave"
    let cfg = config("http://127.0.0.1:1", dir, "dave")
    var queued: [String] = []
    do {
        let dave = try ChatClient(config: cfg)
        _ = try await dave.login(name: "Dave", avatarUrl: nil)
        for text in ["kept 1", "kept 2"] {
            queued.append(try await dave.sendText(roomId: "r1", text: text).localId!)
        }
        try dave.shutdown()
    }
    let healthy = try recoverStore(config: cfg)
    try expect(!healthy.recovered, "healthy: \(healthy)")
    // The disk garbles the start of the log: the store no longer opens.
    let db = URL(fileURLWithPath: dir + "/db")
    var bytes = [UInt8](try Data(contentsOf: db))
    for i in 0..<min(4096, bytes.count) { bytes[i] = ~bytes[i] }
    try Data(bytes).write(to: db)
    _ = try await expectChatError("damaged store", { if case .Storage = $0 { return true }; return false }) {
        _ = try ChatClient(config: cfg)
    }
    let report = try recoverStore(config: cfg)
    try expect(report.recovered && report.requeued == 2 && report.sessionRestored, "rebuilt: \(report)")
    try expect(report.damagedDir.map { FileManager.default.fileExists(atPath: $0) } == true, "kept aside: \(report)")
    let again = try ChatClient(config: cfg)
    let ids = try again.outbox().map { $0.localId }
    try expect(ids == queued, "same txn ids: \(ids)")
    try again.shutdown()
}
await test("shutdown: later calls fail with ShutDown") {
    bobEvents?.stop()
    try alice.shutdown()
    _ = try await expectChatError("after shutdown", { if case .ShutDown = $0 { return true }; return false }) {
        _ = try await alice.syncOnce()
    }
    try bob.shutdown()
}

server.kill()
if failed == 0 { try? FileManager.default.removeItem(atPath: work) } else { print("kept \(work) for inspection") }
print("swift: \(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
