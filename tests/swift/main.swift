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

/// A server that accepts connections, reads each request and never answers: a call to it ends
/// only when the client gives up. It counts what it observes: requests that arrived, and
/// connections the client closed.
final class SilentServer: @unchecked Sendable {
    private let lock = NSLock()
    private var requests = 0
    private var closes = 0
    private let fd: Int32
    let port: UInt16
    var url: String { "http://127.0.0.1:\(port)" }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
                bind(fd, a, len) == 0 && listen(fd, 16) == 0 && getsockname(fd, a, &len) == 0
            }
        }
        guard fd >= 0, bound else { throw TestFailure(description: "cannot listen on loopback") }
        port = UInt16(bigEndian: addr.sin_port)
        let listener = fd
        Thread { [self] in
            while true {
                let connection = accept(listener, nil, nil)
                if connection < 0 { return } // stopped
                Thread { [self] in serve(connection) }.start()
            }
        }.start()
    }

    private func serve(_ connection: Int32) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var head: [UInt8] = []
        while !head.suffix(4).elementsEqual([13, 10, 13, 10]) {
            let n = Glibc.read(connection, &buffer, buffer.count)
            if n <= 0 { break }
            head += buffer[0..<n]
        }
        lock.lock(); requests += 1; lock.unlock()
        // Never answer; a read returns 0 (or fails) once the client closes its end.
        while Glibc.read(connection, &buffer, buffer.count) > 0 {}
        Glibc.close(connection)
        lock.lock(); closes += 1; lock.unlock()
    }

    var requestsSeen: Int { lock.lock(); defer { lock.unlock() }; return requests }
    var closedByClient: Int { lock.lock(); defer { lock.unlock() }; return closes }

    func stop() {
        Glibc.shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
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

    /// Every event delivered so far, consumed or not.
    func all() -> [ClientEvent] {
        lock.lock(); defer { lock.unlock() }
        return events
    }

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

/// A timeline's updates through the AsyncStream wrapper, applied to an array as an app would.
final class TimelineLog: @unchecked Sendable {
    private let lock = NSLock()
    private var updates: [[TimelineDiff]] = []
    private var consumed = 0
    private var task: Task<Void, Never>?
    /// What the applied updates show; touched by the test only.
    var shown: [ChatMessage] = []

    init(_ timeline: Timeline) throws {
        let stream = try timeline.diffs() // subscribed before this returns
        task = Task { [weak self] in
            for await update in stream {
                guard let self else { return }
                self.append(update)
            }
        }
    }

    private func append(_ update: [TimelineDiff]) {
        lock.lock(); defer { lock.unlock() }
        updates.append(update)
    }

    /// Applies updates until one satisfies `matches` (bounded); returns that one.
    @MainActor
    func await(_ what: String, _ matches: ([TimelineDiff]) -> Bool) async throws -> [TimelineDiff] {
        let deadline = now() + deadlineSeconds
        while true {
            while let update = take() {
                shown.apply(update)
                if matches(update) { return update }
            }
            if now() > deadline { throw TestFailure(description: "no timeline update '\(what)' within \(deadlineSeconds) s; shown: \(shown.map(\.text))") }
            try await Task.sleep(nanoseconds: 20_000_000) // poll interval of the bounded wait above
        }
    }

    func stop() { task?.cancel() }

    private func take() -> [TimelineDiff]? {
        lock.lock(); defer { lock.unlock() }
        guard consumed < updates.count else { return nil }
        consumed += 1
        return updates[consumed - 1]
    }
}

/// Rooms lists collected from a stream, read from the test.
final class RoomsLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lists: [[RoomSummary]] = []
    func add(_ rooms: [RoomSummary]) { lock.lock(); lists.append(rooms); lock.unlock() }
    var all: [[RoomSummary]] { lock.lock(); defer { lock.unlock() }; return lists }
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

/// The same scenario's numbers: the newest page a fresh device holds, and the room's history.
let page = 50
let history = 120

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
        else { throw TokenProviderError.Other(reason: "no access_token from \(server)") }
        return token
    }
}

/// Signed out: the app must sign the user in again.
final class RefusingTokenProvider: TokenProvider, @unchecked Sendable {
    func fetchToken(userId: String) throws -> String { throw TokenProviderError.Unauthorized(reason: "signed out") }
}

/// In a tunnel: the token service cannot be reached, the user stays signed in.
final class OfflineTokenProvider: TokenProvider, @unchecked Sendable {
    func fetchToken(userId: String) throws -> String { throw TokenProviderError.Offline(reason: "no network for the token service") }
}

/// A provider with a bug: it throws something that is not a TokenProviderError.
struct KeychainLocked: Error, CustomStringConvertible {
    var description: String { "keychain locked" }
}

final class BrokenTokenProvider: TokenProvider, @unchecked Sendable {
    func fetchToken(userId: String) throws -> String { throw KeychainLocked() }
}

func isStopped(_ event: ClientEvent) -> Bool { event == .syncStateChanged(state: .stopped) }
func isUnauthorized(_ event: ClientEvent) -> Bool { if case .unauthorized = event { return true }; return false }

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
    try expect(got.count == 1 && got[0].state == .sent && got[0].sender.id == "alice", "bob has it once, sent: \(got)")
}
await test("offline: the server is killed, a send still gives a pending echo") {
    server.kill()
    let echo = try await alice.sendText(roomId: roomId, text: "sent while offline")
    try expect(echo.state == .pending && echo.serverId == nil && echo.id == echo.localId, "pending echo: \(echo)")
    do {
        let report = try await alice.syncOnce()
        try expect(!report.online && report.pending == 1, "offline report: \(report)")
    } catch let error as ChatError {
        guard case .Offline = error else { throw error }
        try expect(error.message.hasPrefix("offline: "), "readable message: \(error.message)")
    }
    let outbox = try alice.outbox()
    try expect(outbox.count == 1 && outbox[0].state == .pending, "still queued: \(outbox)")
    let shown = withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline")
    try expect(shown.count == 1 && shown[0].state == .pending, "the echo is shown: \(shown)")
}
await test("back online: sync delivers exactly one copy") {
    try server.start()
    _ = try await until("alice's outbox is flushed", { _ = try? await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    let mine = withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline")
    try expect(mine.count == 1 && mine[0].state == .sent && mine[0].serverId != nil, "alice: one sent copy: \(mine)")
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
    try expect(bad.message.hasPrefix("invalid input: ") && bad.message.contains("not a url"), "message: \(bad.message)")
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
    try expect(e.message.hasPrefix("invalid input: ") && e.message.contains("at most"), "readable: \(e.message)")
    try expect(try alice.outbox() == before, "nothing queued")
}
await test("a message the server rejects ends failed with its reason, store intact") {
    let echo = try await alice.sendText(roomId: "no-such-room", text: "to nowhere")
    try expect(echo.state == .pending, "queued first: \(echo)")
    let outbox = try await until("the server rejects it", { _ = try await alice.syncOnce(); return try alice.outbox() }) { (entries: [OutboxEntry]) in
        entries.contains { $0.localId == echo.localId && $0.state == .failed }
    }
    let entry = outbox.first { $0.localId == echo.localId }!
    try expect(!(entry.failureReason ?? "").isEmpty, "a reason: \(entry)")
    let shown = try alice.messages(roomId: "no-such-room", limit: 50, before: nil).first { $0.localId == echo.localId }
    try expect(shown?.state == .failed && shown?.failureReason != nil, "shown as failed: \(String(describing: shown))")
    try await alice.discard(localId: echo.localId!)
    try expect(try alice.outbox().isEmpty, "nothing left queued")
    try expect(withText(try alice.messages(roomId: roomId, limit: 50, before: nil), "sent while offline").count == 1, "earlier messages intact")
}
await test("token providers implemented in Swift: a working one, and a refusal as Unauthorized with its event") {
    let provider = DevRouteTokenProvider(server: server.url)
    let carol = try ChatClient(config: config(server.url, work + "/carol", "carol", .provider(provider: provider)))
    let room = try await carol.openDirectRoom(userId: "alice")
    try expect(room.memberIds.contains("carol"), "room: \(room)")
    try expect(provider.calls >= 1, "the provider was asked")
    try carol.shutdown()
    let dave = try ChatClient(config: config(server.url, work + "/dave-refused", "dave", .provider(provider: RefusingTokenProvider())))
    let events = try EventLog(dave)
    let refused = try await expectChatError("refusing provider", { if case .Unauthorized = $0 { return true }; return false }) {
        _ = try await dave.openDirectRoom(userId: "alice")
    }
    try expect(refused.message == "unauthorized: token provider: signed out", "the provider's reason, said once: \(refused.message)")
    let event = try await events.await("the Unauthorized event", isUnauthorized)
    if case let .unauthorized(reason) = event { try expect(reason.contains("signed out"), "event: \(event)") }
    events.stop()
    try dave.shutdown()
}
await test("a token provider that is offline keeps the client offline, never Unauthorized") {
    let gina = try ChatClient(config: config(server.url, work + "/gina", "gina", .provider(provider: OfflineTokenProvider())))
    let events = try EventLog(gina)
    let e = try await expectChatError("offline provider", { if case .Offline = $0 { return true }; return false }) {
        _ = try await gina.openDirectRoom(userId: "alice")
    }
    try expect(e.message == "offline: token provider: no network for the token service", "message: \(e.message)")
    let report = try await gina.syncOnce()
    try expect(!report.online, "offline is a report: \(report)")
    try gina.shutdown()
    _ = try await events.await("Stopped", isStopped)
    try expect(!events.all().contains(where: isUnauthorized), "no Unauthorized event: \(events.all())")
    events.stop()
}
await test("a provider that throws something else is Offline (retried, still signed in) with its message only") {
    let hugo = try ChatClient(config: config(server.url, work + "/hugo", "hugo", .provider(provider: BrokenTokenProvider())))
    let e = try await expectChatError("broken provider", { if case .Offline = $0 { return true }; return false }) {
        _ = try await hugo.openDirectRoom(userId: "alice")
    }
    try expect(e.message == "offline: token provider failed: keychain locked", "message: \(e.message)")
    try hugo.shutdown()
}
await test("a bad token on a started client is announced with the Unauthorized event") {
    let ivan = try ChatClient(config: config(server.url, work + "/ivan", "ivan", .fixed(token: "not-a-token")))
    let events = try EventLog(ivan)
    try ivan.setAppState(state: .active)
    try ivan.start()
    let event = try await events.await("the Unauthorized event", isUnauthorized)
    if case let .unauthorized(reason) = event { try expect(!reason.isEmpty, "a reason: \(event)") }
    events.stop()
    try ivan.shutdown()
}
await test("Rejected carries the server's code, and its message says it once") {
    let e = try await expectChatError("a direct room with oneself", { if case .Rejected = $0 { return true }; return false }) {
        _ = try await alice.openDirectRoom(userId: "alice")
    }
    guard case let .Rejected(code, detail) = e else { throw TestFailure(description: "\(e)") }
    try expect(code == "bad_request", "code: \(code)")
    try expect(detail == "rejected by server (bad_request): a direct room needs another user", "detail: \(detail)")
    try expect(e.localizedDescription == detail, "localizedDescription is the text: \(e.localizedDescription)")
}
await test("error messages read once: no field dump, no doubled prefix") {
    let offline = try await expectChatError("nothing listens", { if case .Offline = $0 { return true }; return false }) {
        let c = try ChatClient(config: config("http://127.0.0.1:1", work + "/dead-2", "alice"))
        defer { try? c.shutdown() }
        _ = try await c.openDirectRoom(userId: "bob")
    }
    let text = offline.message
    try expect(text.hasPrefix("offline: ") && !text.contains("detail") && !text.contains("offline: offline"), "message: \(text)")
    if case let .Offline(_, retryAfterSecs) = offline { try expect(retryAfterSecs == nil, "no Retry-After from a server that is not there") }
    let panic = try await expectChatError("panic", { if case .Internal = $0 { return true }; return false }) {
        try selftestPanic(message: "said once")
    }
    try expect(panic.message == "internal error: chatsync panicked: said once", "message: \(panic.message)")
}
await test("background_sync with a budget returns a report") {
    _ = try await bob.sendText(roomId: roomId, text: "ping for the background")
    _ = try await until("bob's outbox is flushed", { _ = try await bob.syncOnce(); return try bob.outbox() }) { $0.isEmpty }
    let started = now()
    let report = try await alice.backgroundSync(budgetMs: 5_000)
    let took = now() - started
    try expect(took < 6, "within the budget: \(took) s")
    try expect(report.outcome == .completed && !report.retryLater && report.online && report.error == nil, "report: \(report)")
    try expect(report.newMessages.contains { $0.senderId == "bob" && $0.preview.contains("ping") }, "previews: \(report.newMessages)")
}
await test("background_sync says how it ended: a refused token is not retried, no server is") {
    let refusedClient = try ChatClient(config: config(server.url, work + "/bg-refused", "jane", .fixed(token: "not-a-token")))
    let refused = try await refusedClient.backgroundSync(budgetMs: 5_000)
    try expect(refused.outcome == .unauthorized && !refused.retryLater && refused.error != nil, "report: \(refused)")
    try refusedClient.shutdown()
    let offlineClient = try ChatClient(config: config("http://127.0.0.1:1", work + "/bg-offline", "jane"))
    let offline = try await offlineClient.backgroundSync(budgetMs: 5_000)
    try expect(offline.outcome == .offline && offline.retryLater && !offline.online, "report: \(offline)")
    try offlineClient.shutdown()
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
await test("a timeline: Reset first, then diffs as a message arrives and an echo turns sent") {
    let timeline = try alice.timeline(roomId: roomId)
    let log = try TimelineLog(timeline)
    let first = try await log.await("the first update") { _ in true }
    if first.count != 1 { throw TestFailure(description: "one Reset first: \(first)") }
    guard case .reset = first[0] else { throw TestFailure(description: "a Reset first: \(first)") }
    try expect(log.shown == (try timeline.items()), "the Reset is what the timeline shows")
    let echo = try await alice.sendText(roomId: roomId, text: "through the timeline")
    let pushed = try await log.await("the echo is shown") { update in
        update.contains { if case let .pushBack(item) = $0 { return item.id == echo.id }; return false }
    }
    for case let .pushBack(item) in pushed where item.id == echo.id {
        try expect(item.state == .pending, "pending first: \(item)")
    }
    _ = try await alice.syncOnce()
    let turned = try await log.await("the echo turns sent") { update in
        update.contains { if case let .set(_, item) = $0 { return item.id == echo.id }; return false }
    }
    for case let .set(index, item) in turned where item.id == echo.id {
        try expect(item.state == .sent && item.serverId != nil, "sent in place, same id: \(item)")
        try expect(log.shown[Int(index)].id == echo.id, "at the echo's index")
    }
    _ = try await bob.sendText(roomId: roomId, text: "arrives in the timeline")
    _ = try await until("bob's outbox is flushed", { _ = try await bob.syncOnce(); return try bob.outbox() }) { $0.isEmpty }
    _ = try await alice.syncOnce()
    _ = try await log.await("bob's message arrives") { update in
        update.contains { if case let .pushBack(item) = $0 { return item.text == "arrives in the timeline" }; return false }
    }
    try expect(log.shown.last?.sender.id == "bob", "the newest at the end: \(String(describing: log.shown.last))")
    try expect(log.shown == (try timeline.items()), "the applied diffs equal the timeline")
    log.stop()
}
await test("load earlier after a refresh, through a timeline: no page repeats, a re-read changes nothing") {
    let frank = try ChatClient(config: config(server.url, work + "/frank", "frank"))
    _ = try await frank.login(name: "Frank", avatarUrl: nil)
    let frankRoom = try await frank.openDirectRoom(userId: "erin").id
    for i in 1...history { _ = try await frank.sendText(roomId: frankRoom, text: "history \(i)") }
    _ = try await until("frank's history is on the server", { _ = try await frank.syncOnce(); return try frank.outbox() }) { $0.isEmpty }
    try frank.shutdown()
    let erin = try ChatClient(config: config(server.url, work + "/erin", "erin"))
    _ = try await erin.login(name: "Erin", avatarUrl: nil)
    _ = try await erin.syncOnce()
    guard let room = try erin.rooms().first(where: { $0.memberIds.contains("frank") })?.id else {
        throw TestFailure(description: "erin does not know the room")
    }
    let firstRead = try erin.messages(roomId: room, limit: UInt32(page), before: nil)
    try expect(firstRead.count == page && firstRead.first?.text == "history \(history)", "the newest page: \(firstRead.map(\.text))")
    let timeline = try erin.timeline(roomId: room)
    try expect(try timeline.items().map(\.id) == firstRead.reversed().map(\.id), "the timeline shows the newest page, oldest first")
    let earlier = try await timeline.paginateBackwards(count: UInt32(page))
    try expect(earlier.added == UInt32(page) && earlier.hasMore, "one page earlier: \(earlier)")
    let afterEarlier = try timeline.items()
    let again = try erin.messages(roomId: room, limit: UInt32(page), before: nil)
    try expect(again == firstRead, "reading the newest page again returns the same")
    try expect(try timeline.items() == afterEarlier, "the re-read moved nothing")
    let earliest = try await timeline.paginateBackwards(count: UInt32(page))
    try expect(earliest.added == UInt32(history - 2 * page) && !earliest.hasMore, "the rest, no more: \(earliest)")
    let texts = try timeline.items().map(\.text)
    try expect(texts == (1...history).map { "history \($0)" }, "every message once, in order: \(texts)")
    let anchor = firstRead.last?.serverId
    let below = try await erin.loadOlder(roomId: room, before: anchor, limit: UInt32(page))
    let same = try await erin.loadOlder(roomId: room, before: anchor, limit: UInt32(page))
    try expect(below == same, "an explicit anchor gives the same page twice")
    try expect(below.messages.first?.text == "history \(history - page)", "the page below the anchor: \(below.messages.map(\.text))")
    try erin.shutdown()
}
await test("the room list: the current rooms first, then a room with a new message moves to the top") {
    _ = try await alice.syncOnce()
    let list = try alice.roomList()
    let log = RoomsLog()
    let stream = try list.roomsUpdates()
    let task = Task { for await rooms in stream { log.add(rooms) } }
    let first = try await until("the current rooms", { log.all.first }) { $0 != nil }!
    try expect(first == (try list.rooms()) && first.count >= 2, "the current rooms first (with bob and carol): \(first)")
    let target = first.last!
    _ = try await alice.sendText(roomId: target.id, text: "to the top")
    let moved = try await until("the room moves to the top", { log.all.last }) { $0?.first?.id == target.id }!
    try expect(moved.first?.lastMessage?.text == "to the top", "with its last message: \(String(describing: moved.first))")
    try expect(moved.map(\.id).sorted() == first.map(\.id).sorted(), "the same rooms: \(moved)")
    _ = try await until("alice's outbox is flushed", { _ = try await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    task.cancel()
}
await test("the chat model: an edit, a reaction, a read receipt and a deletion reach the other side") {
    let echo = try await alice.sendText(roomId: roomId, text: "typo hre")
    _ = try await until("alice's outbox is flushed", { _ = try await alice.syncOnce(); return try alice.outbox() }) { $0.isEmpty }
    let unread = try await until("bob has it, unread", { _ = try await bob.syncOnce(); return try bob.rooms().first { $0.id == roomId }!.unread }) { $0 >= 1 }
    try expect(try bob.unreadTotal() >= unread, "the badge counts the room")
    let bobsId = withText(try bob.messages(roomId: roomId, limit: 50, before: nil), "typo hre")[0].id

    try await alice.editMessage(roomId: roomId, messageId: echo.id, text: "typo here")
    let edited = try alice.message(messageId: echo.id)
    try expect(edited?.text == "typo here" && edited?.pendingChange == true && edited?.editedAt != nil, "the edit shows at once: \(String(describing: edited))")
    try expect(try alice.outbox().map(\.kind) == [.edit], "one queued edit")
    try expect(try await bob.toggleReaction(roomId: roomId, messageId: bobsId, key: "👍"), "bob now reacts")
    try await bob.markRead(roomId: roomId)
    try expect(try bob.rooms().first { $0.id == roomId }!.unread == 0, "read at once on bob's device")

    let seen = try await until("alice sees the edit sent, bob's reaction and his receipt", { _ = try await alice.syncOnce(); return try alice.message(messageId: echo.id)! }) {
        $0.reactions.contains { $0.key == "👍" && $0.count == 1 && !$0.me } && $0.readBy.contains("bob") && !$0.pendingChange
    }
    try expect(seen.text == "typo here" && seen.editedAt != nil, "edited: \(seen)")
    let onBob = try await until("bob sees the edit", { _ = try await bob.syncOnce(); return try bob.message(messageId: bobsId)! }) { $0.text == "typo here" }
    try expect(onBob.editedAt != nil && onBob.reactions.count == 1 && onBob.reactions[0].me, "with his own reaction: \(onBob)")

    try await alice.deleteMessage(roomId: roomId, messageId: echo.id)
    let tombstone = try await until("bob sees a tombstone in its place", { _ = try await alice.syncOnce(); _ = try await bob.syncOnce(); return try bob.message(messageId: bobsId)! }) { $0.deleted }
    try expect(tombstone.text == "" && tombstone.parts.isEmpty && tombstone.reactions.isEmpty, "nothing left of it: \(tombstone)")
    _ = try await expectChatError("editing someone else's message", { if case .InvalidInput = $0 { return true }; return false }) {
        try await bob.editMessage(roomId: roomId, messageId: bobsId, text: "mine now")
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
await test("streams ended while the core delivers to them end, and nothing waits for ever") {
    // CI once hung here: ending a stream (cancelling the Task that consumes it) ran the
    // subscription's cancel inside Swift's termination handler, under the task's lock, which the
    // core's listener thread needed to hand the stream an event, while cancel waited for that
    // delivery. Deliveries keep coming here (each sync changes the sync state) as streams end.
    let syncing = Task { while !Task.isCancelled { _ = try? await alice.syncOnce() } }
    for _ in 0..<100 {
        let stream = try alice.events()
        let task = Task { for await _ in stream {} }
        await Task.yield()
        task.cancel()
        await task.value
    }
    syncing.cancel()
    _ = await syncing.value
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
    try expect(e.message == "internal error: chatsync panicked: boom from swift", "message: \(e.message)")
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
await test("a cancelled Task ends its call with CancellationError, and the request with it") {
    let silent = try SilentServer()
    defer { silent.stop() }
    let c = try ChatClient(config: config(silent.url, work + "/cancelled", "alice", .fixed(token: "t")))
    let call = Task.detached { () -> String in
        do {
            _ = try await c.syncOnce()
            return "finished"
        } catch is CancellationError {
            return "cancelled"
        } catch {
            return "failed: \(error)"
        }
    }
    _ = try await until("the request reached the server", { silent.requestsSeen }) { $0 >= 1 }
    let cancelledAt = now()
    call.cancel()
    let result = await call.value
    let took = now() - cancelledAt
    try expect(result == "cancelled", "the call: \(result)")
    try expect(took < 5, "ended \(took) s after the cancel")
    _ = try await until("the server sees the request end", { silent.closedByClient }) { $0 >= 1 }
    try c.shutdown()
}
await test("shutdown ends a call in flight with ShutDown; later calls fail; Stopped is the last event") {
    let silent = try SilentServer()
    defer { silent.stop() }
    let c = try ChatClient(config: config(silent.url, work + "/shut", "alice", .fixed(token: "t")))
    let events = try EventLog(c)
    let call = Task.detached { () -> String in
        do {
            _ = try await c.syncOnce()
            return "finished"
        } catch let error as ChatError {
            if case .ShutDown = error { return "shut down" }
            return "failed: \(error)"
        } catch {
            return "failed: \(error)"
        }
    }
    _ = try await until("the request reached the server", { silent.requestsSeen }) { $0 >= 1 }
    try c.shutdown()
    let result = await call.value
    try expect(result == "shut down", "the call in flight: \(result)")
    _ = try await until("its request ended", { silent.closedByClient }) { $0 >= 1 }
    try expect(try c.syncState() == .stopped, "state")
    _ = try await expectChatError("a call after shutdown", { if case .ShutDown = $0 { return true }; return false }) {
        _ = try await c.sendText(roomId: "r1", text: "too late")
    }
    _ = try await expectChatError("a read after shutdown", { if case .ShutDown = $0 { return true }; return false }) {
        _ = try c.outbox()
    }
    _ = try await expectChatError("a timeline after shutdown", { if case .ShutDown = $0 { return true }; return false }) {
        _ = try c.timeline(roomId: "r1")
    }
    _ = try await events.await("Stopped", isStopped)
    try c.setNetworkReachable(reachable: false) // would be news on a live client
    let late = try EventLog(c)
    let heard = try await late.await("a late listener hears Stopped")
    try expect(isStopped(heard), "a late listener hears Stopped: \(heard)")
    try expect(isStopped(events.all().last!), "nothing after Stopped: \(events.all())")
    events.stop()
    late.stop()
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
