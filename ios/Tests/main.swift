// Linux tests of the iOS module's portable Swift (ios/ChatSyncHostAccess.swift), compiled in one
// module with the generated Swift bindings and run by scripts/test-rn.sh in the Swift toolchain's
// chroot: the Rust host exactly as ChatSyncModuleBridge and the BGTask handler call it, with an
// in-memory secret store standing in for the Keychain, against the real core and the real
// reference server on loopback (started and SIGKILLed here). Prints "ios: N passed, N failed".
//
// Environment: CHATSYNC_SERVER_BIN, CHATSYNC_TEST_PORT (a free port).

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

/// The Keychain's stand-in: the same contract, in memory.
final class MemorySecrets: SecretStore, @unchecked Sendable {
    private let lock = NSLock()
    private var values: [String: String] = [:]
    func get(key: String) throws -> String? { lock.lock(); defer { lock.unlock() }; return values[key] }
    func set(key: String, value: String) throws { lock.lock(); defer { lock.unlock() }; values[key] = value }
    func remove(key: String) throws { lock.lock(); defer { lock.unlock() }; values[key] = nil }
}

/// What the host sent, as the module would emit it; waits are bounded and on real events.
final class Heard: @unchecked Sendable {
    private let condition = NSCondition()
    private var views: [(UInt32, String)] = []
    private(set) var events: [String] = []

    lazy var listener = HostEvents(
        clientEvent: { [unowned self] json in condition.lock(); events.append(json); condition.broadcast(); condition.unlock() },
        viewUpdate: { [unowned self] id, json in condition.lock(); views.append((id, json)); condition.broadcast(); condition.unlock() }
    )

    func awaitView(_ view: UInt32, _ what: String, _ matches: (String) -> Bool) throws -> String {
        let end = Date().addingTimeInterval(20)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let i = views.firstIndex(where: { $0.0 == view && matches($0.1) }) {
                let found = views[i].1
                views.removeSubrange(0...i)
                return found
            }
            guard condition.wait(until: end) else { throw Failure(description: "no update '\(what)' of view \(view) within 20 s") }
        }
    }
}

func ok(_ reply: String) throws -> String {
    try check(reply.hasPrefix("{\"ok\":"), "expected ok, got \(reply)")
    return String(reply.dropFirst(6).dropLast())
}

func code(_ reply: String) -> String {
    guard let r = reply.range(of: "\"code\":\"") else { return "<ok: \(reply)>" }
    return String(reply[r.upperBound...].prefix { $0 != "\"" })
}

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

let env = ProcessInfo.processInfo.environment
guard let serverBin = env["CHATSYNC_SERVER_BIN"] else {
    print("CHATSYNC_SERVER_BIN is not set")
    exit(2)
}
let work = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("chatsync-rn-ios-\(getpid())")
try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
let server = ServerProcess(bin: serverBin, db: work.appendingPathComponent("server.db").path)
let secrets = MemorySecrets()
let host = ChatSyncHostAccess.host(baseDir: work.appendingPathComponent("support"), secrets: secrets)
let heard = Heard()
nonisolated(unsafe) var roomId = ""
nonisolated(unsafe) var bob: ChatClient? = nil

func bobSays(_ text: String) async throws {
    guard let bob else { throw Failure(description: "no bob") }
    _ = try await bob.sendText(roomId: roomId, text: text)
    let end = Date().addingTimeInterval(20)
    while try await bob.syncOnce().pending != 0 {
        try check(Date() < end, "bob's '\(text)' not accepted")
    }
}

/// A host call completed through `reply`, as ChatSyncModuleBridge does it.
func viaReply(_ call: @escaping @Sendable () async -> String) async -> String {
    await withCheckedContinuation { continuation in reply(call, completion: { continuation.resume(returning: $0) }) }
}

let tests: [(String, () async throws -> Void)] = [
    ("host: configure and login through the reply helper; the fixed token stays out of the settings file", {
        try server.start()
        host.setListener(listener: heard.listener)
        host.setAppState(state: .active)
        try eq(code(host.configure(optionsJson: "{\"serverUrl\":\"ftp://x\"}")), "E_INVALID_INPUT", "a bad URL")
        _ = try ok(host.configure(optionsJson: "{\"serverUrl\":\"\(server.url)\",\"auth\":{\"kind\":\"fixed\",\"token\":\"fixed-s3cret\"}}"))
        let settings = try String(contentsOf: work.appendingPathComponent("support/chatsync/settings.json"), encoding: .utf8)
        try check(!settings.contains("fixed-s3cret"), "token in settings.json")
        try eq(try secrets.get(key: "chatsync.auth-token"), "fixed-s3cret", "token in the secret store")
        _ = try ok(host.configure(optionsJson: "{\"serverUrl\":\"\(server.url)\",\"probe\":{\"timeoutMs\":500,\"intervalMs\":200}}"))
        let session = try ok(await viaReply { await host.login(userJson: "{\"id\":\"alice\",\"name\":\"Alice\"}") })
        try check(session.contains("\"name\":\"Alice\""), session)
        try check(host.isLoggedIn(), "logged in")
    }),
    ("host: a timeline's reset, an echo and its turn to sent arrive through HostEvents", {
        let b = try ChatClient(config: ClientConfig(serverUrl: server.url, dataDir: work.appendingPathComponent("bob").path, userId: "bob", token: .devTokenRoute))
        bob = b
        _ = try await b.login(name: "Bob", avatarUrl: nil)
        roomId = try await b.openDirectRoom(userId: "alice").id
        _ = try ok(await host.openDirectRoom(userId: "bob"))
        try await bobSays("hello from bob")
        _ = try ok(await host.syncNow())
        _ = try ok(host.openTimeline(viewId: 1, roomId: roomId))
        _ = try heard.awaitView(1, "reset") { $0.contains("\"kind\":\"reset\"") && $0.contains("hello from bob") }
        let echo = try ok(await host.sendText(roomId: roomId, text: "hi bob"))
        try check(echo.contains("\"state\":\"pending\""), echo)
        _ = try heard.awaitView(1, "echo") { $0.contains("pushBack") && $0.contains("hi bob") }
        _ = try heard.awaitView(1, "sent") { $0.contains("\"kind\":\"set\"") && $0.contains("\"state\":\"sent\"") }
        try check(heard.events.contains { $0.contains("networkStatusChanged") }, "client events: \(heard.events)")
        host.closeView(viewId: 1)
    }),
    ("host: the chat model: an edit, a reaction and a read receipt through the host", {
        _ = try ok(host.openTimeline(viewId: 2, roomId: roomId))
        let sent = try ok(await host.sendText(roomId: roomId, text: "swift typo"))
        guard let range = sent.range(of: #""id":"([^"]+)""#, options: .regularExpression) else { throw Failure(description: sent) }
        let id = String(sent[range].dropFirst(6).dropLast())
        _ = try heard.awaitView(2, "sent") { $0.contains("swift typo") && $0.contains("\"state\":\"sent\"") }
        try eq(try ok(await host.editMessage(roomId: roomId, messageId: id, text: "swift fixed")), "null", "edit")
        _ = try heard.awaitView(2, "the edit") { $0.contains("\"kind\":\"set\"") && $0.contains("swift fixed") }
        try eq(try ok(await host.toggleReaction(roomId: roomId, messageId: id, key: "🎉")), "true", "reacting")
        _ = try heard.awaitView(2, "the reaction") { $0.contains("\"key\":\"🎉\",\"count\":1,\"me\":true") }
        let before = Int(try ok(host.unreadTotal())) ?? -1
        try await bobSays("unread by alice")
        _ = try ok(await host.syncNow())
        try eq(try ok(host.unreadTotal()), "\(before + 1)", "one more unread")
        _ = try ok(await host.markRead(roomId: roomId))
        try eq(try ok(host.unreadTotal()), "0", "read at once")
        try check(try ok(host.rooms()).contains("\"unread\":0"), "rooms: \(host.rooms())")
        host.closeView(viewId: 2)
    }),
    ("host: the BGTask's background run plans the notification and its completion", {
        host.setAppState(state: .background)
        try await bobSays("ping for the background")
        let run = await host.backgroundRun(budgetMs: 10_000)
        try eq(run.action, .done, "action (\(run.summary))")
        try eq(run.notifications.map(\.title), ["Bob"], "one notification, from Bob")
        try eq(run.notifications.first?.key, "chatsync.room.\(roomId)", "the room's key")
        try eq(run.rescheduleEarly, false, "setTaskCompleted(success: true)")
        try eq(backgroundBudgetMs(), 25_000, "within the ~30 s iOS grants")
    }),
    ("host: offline asks for an early retry; logout cancels the task", {
        server.kill()
        host.setNetworkReachable(reachable: false)
        let run = await host.backgroundRun(budgetMs: 3_000)
        try eq(run.action, .retry, "action (\(run.summary))")
        try eq(code(await host.openDirectRoom(userId: "carol")), "E_OFFLINE", "offline code")
        _ = try ok(host.logout())
        try eq(try secrets.get(key: "chatsync.login-token"), nil, "token gone")
        let after = await host.backgroundRun(budgetMs: 1_000)
        try eq(after.keepScheduled, false, "cancel the task")
    }),
]

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
server.kill()
if let bob { try? bob.shutdown() }
try? FileManager.default.removeItem(at: work)
print("ios: \(passed) passed, \(failed) failed")
exit(failed == 0 ? 0 : 1)
