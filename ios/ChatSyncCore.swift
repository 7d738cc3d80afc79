// The platform-independent half of the iOS module: options, bridge shapes, error codes,
// notification content, the process-wide client holder and the background run. Foundation only,
// so it compiles (and its tests run) with the Linux Swift toolchain against the generated
// bindings; the Apple-only files (React module, BGTaskScheduler, NWPathMonitor, notifications)
// call into it. Mirrors android/src/main/java/dev/chatsync/reactnative/ file by file.

import Foundation

// MARK: - Errors

/// Rejection codes; the same strings as `ErrorCodes` in src/errors.ts.
enum ChatSyncErrorCode {
    static let offline = "E_OFFLINE"
    static let unauthorized = "E_UNAUTHORIZED"
    static let notFound = "E_NOT_FOUND"
    static let rejected = "E_REJECTED"
    static let protocolError = "E_PROTOCOL"
    static let storage = "E_STORAGE"
    static let invalidInput = "E_INVALID_INPUT"
    static let busy = "E_BUSY"
    static let shutDown = "E_SHUT_DOWN"
    static let notConfigured = "E_NOT_CONFIGURED"
    static let notLoggedIn = "E_NOT_LOGGED_IN"
    static let `internal` = "E_INTERNAL"

    /// Every code, for the cross-check with src/errors.ts.
    static let all = [offline, unauthorized, notFound, rejected, protocolError, storage, invalidInput, busy,
                      shutDown, notConfigured, notLoggedIn, `internal`]
}

/// A failure of the module itself (bad options, not configured, nobody logged in).
struct ChatSyncModuleError: Error, Equatable {
    let code: String
    let message: String

    static func invalidInput(_ message: String) -> ChatSyncModuleError {
        ChatSyncModuleError(code: ChatSyncErrorCode.invalidInput, message: message)
    }
}

/// The code and message a promise rejects with for `error`.
func chatSyncRejection(for error: Error) -> (code: String, message: String) {
    switch error {
    case let e as ChatError:
        switch e {
        case .Offline: return (ChatSyncErrorCode.offline, e.message)
        case .Unauthorized: return (ChatSyncErrorCode.unauthorized, e.message)
        case .NotFound: return (ChatSyncErrorCode.notFound, e.message)
        case .Rejected: return (ChatSyncErrorCode.rejected, e.message)
        case .Protocol: return (ChatSyncErrorCode.protocolError, e.message)
        case .Storage: return (ChatSyncErrorCode.storage, e.message)
        case .InvalidInput: return (ChatSyncErrorCode.invalidInput, e.message)
        case .Busy: return (ChatSyncErrorCode.busy, e.message)
        case .ShutDown: return (ChatSyncErrorCode.shutDown, e.message)
        case .Internal: return (ChatSyncErrorCode.internal, e.message)
        }
    case let e as ChatSyncModuleError:
        return (e.code, e.message)
    default:
        return (ChatSyncErrorCode.internal, String(describing: error))
    }
}

// MARK: - Options

/// How the client gets its bearer token (`ConfigureOptions.auth` in JS).
enum AuthOption: Equatable {
    case devTokenRoute
    case fixed(token: String)
}

/// `ConfigureOptions.probe`; nil fields keep the core's defaults.
struct ProbeOptions: Equatable {
    var url: String?
    var method: String?
    var timeoutMs: UInt64?
    var intervalMs: UInt64?
    var onlyWhileOffline: Bool?
    var inBackground: Bool?
}

/// `ConfigureOptions` from JS, validated. Nil fields keep the core's mobile defaults.
struct ChatSyncOptions: Equatable {
    /// The core's default page size, used when JS passes none.
    static let defaultPageSize: UInt32 = 50

    var serverUrl: String
    var auth: AuthOption = .devTokenRoute
    var pageSize: UInt32?
    var maxMessagesPerRoom: UInt32?
    var cacheCapacityBytes: UInt64?
    var allowInsecureHttp: Bool?
    var probe: ProbeOptions?
    var backgroundIntervalMs: UInt64?
    /// Post local notifications for new messages found by background sync.
    var notifications: Bool = true

    var effectivePageSize: UInt32 { pageSize ?? Self.defaultPageSize }

    /// Parses `ConfigureOptions` as React Native hands them over (an NSDictionary).
    static func fromJs(_ map: [String: Any]) throws -> ChatSyncOptions {
        guard let serverUrl = try map.string("serverUrl"), !serverUrl.isEmpty else {
            throw ChatSyncModuleError.invalidInput("serverUrl must be a non-empty string")
        }
        guard serverUrl.hasPrefix("https://") || serverUrl.hasPrefix("http://") else {
            throw ChatSyncModuleError.invalidInput("serverUrl must start with https:// or http://, got '\(serverUrl)'")
        }
        var options = ChatSyncOptions(serverUrl: serverUrl)
        if let auth = map["auth"] as? [String: Any] {
            switch try auth.string("kind") {
            case nil, "devTokenRoute"?: options.auth = .devTokenRoute
            case "fixed"?:
                guard let token = try auth.string("token"), !token.isEmpty else {
                    throw ChatSyncModuleError.invalidInput("auth.token must be a non-empty string")
                }
                options.auth = .fixed(token: token)
            case let other?:
                throw ChatSyncModuleError.invalidInput("auth.kind must be 'devTokenRoute' or 'fixed', got '\(other)'")
            }
        }
        options.pageSize = try map.positive("pageSize").map { try checkedUInt32($0, "pageSize") }
        options.maxMessagesPerRoom = try map.positive("maxMessagesPerRoom").map { try checkedUInt32($0, "maxMessagesPerRoom") }
        options.cacheCapacityBytes = try map.positive("cacheCapacityBytes")
        options.allowInsecureHttp = map["allowInsecureHttp"] as? Bool
        options.backgroundIntervalMs = try map.positive("backgroundIntervalMs")
        options.notifications = map["notifications"] as? Bool ?? true
        if let probe = map["probe"] as? [String: Any] {
            let method = try probe.string("method")
            if let method, method != "HEAD", method != "GET" {
                throw ChatSyncModuleError.invalidInput("probe.method must be 'HEAD' or 'GET', got '\(method)'")
            }
            options.probe = ProbeOptions(
                url: try probe.string("url"),
                method: method,
                timeoutMs: try probe.positive("timeoutMs", prefix: "probe."),
                intervalMs: try probe.positive("intervalMs", prefix: "probe."),
                onlyWhileOffline: probe["onlyWhileOffline"] as? Bool,
                inBackground: probe["inBackground"] as? Bool
            )
        }
        return options
    }

    private static func checkedUInt32(_ value: UInt64, _ name: String) throws -> UInt32 {
        guard value <= UInt64(UInt32.max) else { throw ChatSyncModuleError.invalidInput("\(name) is too large: \(value)") }
        return UInt32(value)
    }

    /// The core's config for `user`, storing in `dataDir`. A token given at login wins.
    func clientConfig(user: StoredUser, dataDir: String) -> ClientConfig {
        let token: TokenSource
        if let loginToken = user.token {
            token = .fixed(token: loginToken)
        } else if case .fixed(let configured) = auth {
            token = .fixed(token: configured)
        } else {
            token = .devTokenRoute
        }
        return ClientConfig(
            serverUrl: serverUrl,
            dataDir: dataDir,
            userId: user.id,
            token: token,
            cacheCapacityBytes: cacheCapacityBytes,
            pageSize: pageSize,
            maxMessagesPerRoom: maxMessagesPerRoom,
            probe: probe.map {
                ProbeConfig(
                    url: $0.url,
                    method: $0.method.map { $0 == "GET" ? ProbeMethod.get : ProbeMethod.head },
                    timeoutMs: $0.timeoutMs,
                    intervalMs: $0.intervalMs,
                    onlyWhileOffline: $0.onlyWhileOffline,
                    inBackground: $0.inBackground
                )
            },
            backgroundIntervalMs: backgroundIntervalMs,
            longPollTimeoutMs: nil,
            allowInsecureHttp: allowInsecureHttp
        )
    }

    /// Flat string entries for persistence; `fromStored` reads them back. `authToken` is a
    /// secret: ChatSyncSettings keeps it in the Keychain, not in UserDefaults.
    func toStored() -> [String: String] {
        var out: [String: String] = ["serverUrl": serverUrl, "notifications": String(notifications)]
        switch auth {
        case .devTokenRoute: out["auth"] = "devTokenRoute"
        case .fixed(let token): out["auth"] = "fixed"; out["authToken"] = token
        }
        out["pageSize"] = pageSize.map { String($0) }
        out["maxMessagesPerRoom"] = maxMessagesPerRoom.map { String($0) }
        out["cacheCapacityBytes"] = cacheCapacityBytes.map { String($0) }
        out["allowInsecureHttp"] = allowInsecureHttp.map { String($0) }
        out["backgroundIntervalMs"] = backgroundIntervalMs.map { String($0) }
        if let probe {
            out["probe.url"] = probe.url
            out["probe.method"] = probe.method
            out["probe.timeoutMs"] = probe.timeoutMs.map { String($0) }
            out["probe.intervalMs"] = probe.intervalMs.map { String($0) }
            out["probe.onlyWhileOffline"] = probe.onlyWhileOffline.map { String($0) }
            out["probe.inBackground"] = probe.inBackground.map { String($0) }
            out["probe"] = "set"
        }
        return out
    }

    /// Reads what `toStored` wrote; nil when nothing (or something unreadable) is stored.
    static func fromStored(_ stored: [String: String]) -> ChatSyncOptions? {
        guard let serverUrl = stored["serverUrl"] else { return nil }
        var options = ChatSyncOptions(serverUrl: serverUrl)
        if stored["auth"] == "fixed" {
            guard let token = stored["authToken"] else { return nil }
            options.auth = .fixed(token: token)
        }
        options.pageSize = stored["pageSize"].flatMap { UInt32($0) }
        options.maxMessagesPerRoom = stored["maxMessagesPerRoom"].flatMap { UInt32($0) }
        options.cacheCapacityBytes = stored["cacheCapacityBytes"].flatMap { UInt64($0) }
        options.allowInsecureHttp = stored["allowInsecureHttp"].flatMap { Bool($0) }
        options.backgroundIntervalMs = stored["backgroundIntervalMs"].flatMap { UInt64($0) }
        options.notifications = stored["notifications"].flatMap { Bool($0) } ?? true
        if stored["probe"] == "set" {
            options.probe = ProbeOptions(
                url: stored["probe.url"],
                method: stored["probe.method"],
                timeoutMs: stored["probe.timeoutMs"].flatMap { UInt64($0) },
                intervalMs: stored["probe.intervalMs"].flatMap { UInt64($0) },
                onlyWhileOffline: stored["probe.onlyWhileOffline"].flatMap { Bool($0) },
                inBackground: stored["probe.inBackground"].flatMap { Bool($0) }
            )
        }
        return options
    }
}

/// The logged-in user as stored between launches.
struct StoredUser: Equatable {
    var id: String
    /// A token given at login (wins over the configured auth).
    var token: String?

    /// The store's folder name: the id's UTF-8 bytes in hex, so no id can escape or clash.
    var directoryName: String { id.utf8.map { String(format: "%02x", $0) }.joined() }

    /// Parses `login()`'s user from JS: `{id, name, avatar?, token?}`.
    static func fromJs(_ map: [String: Any]) throws -> (user: StoredUser, name: String, avatar: String?) {
        guard let id = try map.string("id"), !id.isEmpty else { throw ChatSyncModuleError.invalidInput("user.id must be a non-empty string") }
        guard let name = try map.string("name"), !name.isEmpty else { throw ChatSyncModuleError.invalidInput("user.name must be a non-empty string") }
        let token = try map.string("token").flatMap { $0.isEmpty ? nil : $0 }
        let avatar = try map.string("avatar").flatMap { $0.isEmpty ? nil : $0 }
        return (StoredUser(id: id, token: token), name, avatar)
    }
}

private extension Dictionary where Key == String, Value == Any {
    func string(_ key: String) throws -> String? {
        guard let value = self[key], !(value is NSNull) else { return nil }
        guard let s = value as? String else { throw ChatSyncModuleError.invalidInput("\(key) must be a string") }
        return s
    }

    /// JS numbers arrive as doubles (NSNumber); accept whole positive numbers only.
    func positive(_ key: String, prefix: String = "") throws -> UInt64? {
        guard let value = self[key], !(value is NSNull) else { return nil }
        guard !(value is Bool), let d = (value as? Double) ?? (value as? Int).map(Double.init) else {
            throw ChatSyncModuleError.invalidInput("\(prefix)\(key) must be a number")
        }
        guard d > 0, d.rounded() == d, d < 1.8e19 else {
            throw ChatSyncModuleError.invalidInput("\(prefix)\(key) must be a positive whole number, got \(value)")
        }
        return UInt64(d)
    }
}

// MARK: - Bridge values

/// Names of the events sent to JS; src/convert.ts's `NativeEventNames` must match.
enum ChatSyncEventName {
    static let messagesChanged = "ChatSyncMessagesChanged"
    static let networkStatus = "ChatSyncNetworkStatus"
    static let syncState = "ChatSyncSyncState"
    static let outbox = "ChatSyncOutbox"
    static let unauthorized = "ChatSyncUnauthorized"
    static let all = [messagesChanged, networkStatus, syncState, outbox, unauthorized]
}

/// The latest status the listener saw, answered by `getStatus()`.
struct ClientStatus: Equatable {
    var networkStatus: NetworkStatus = .unknown
    var syncState: SyncState = .idle
    var pending: UInt32 = 0
    var failed: UInt32 = 0

    /// The status after `event`; message changes and a refused token leave it as it is.
    func applying(_ event: ClientEvent) -> ClientStatus {
        var next = self
        switch event {
        case .networkStatusChanged(let status): next.networkStatus = status
        case .syncStateChanged(let state): next.syncState = state
        case .outboxChanged(let pending, let failed): next.pending = pending; next.failed = failed
        case .messagesChanged, .unauthorized: break
        }
        return next
    }
}

/// The bindings' records as the dictionaries and arrays the bridge sends (null is NSNull), in
/// exactly the shapes src/types.ts declares: the core's shapes (GiftedChat's is made in JS,
/// src/convert.ts).
enum BridgeValues {
    private static func orNull(_ value: Any?) -> Any { value ?? NSNull() }

    static func user(_ u: ChatUser) -> [String: Any] {
        var out: [String: Any] = ["id": u.id, "name": u.name]
        if let avatarUrl = u.avatarUrl { out["avatarUrl"] = avatarUrl }
        return out
    }

    static func state(_ s: MessageState) -> String {
        switch s {
        case .sent: return "sent"
        case .pending: return "pending"
        case .failed: return "failed"
        }
    }

    /// A message in the core's shape; src/convert.ts makes GiftedChat's (and the `Date`).
    static func message(_ m: ChatMessage) -> [String: Any] {
        [
            "id": m.id,
            "serverId": orNull(m.serverId.map { Double($0) }),
            "localId": orNull(m.localId),
            "roomId": m.roomId,
            "sender": user(m.sender),
            "text": m.text,
            "createdAt": m.createdAt,
            "state": state(m.state),
            "failureReason": orNull(m.failureReason),
            "parts": m.parts.map { p -> [String: Any] in
                var part: [String: Any] = ["type": p.mimeType]
                if let content = p.content { part["content"] = content }
                if let extra = p.extraJson { part["extraJson"] = extra }
                return part
            },
        ]
    }

    static func messages(_ list: [ChatMessage]) -> [[String: Any]] { list.map(message) }

    static func session(_ s: Session) -> [String: Any] {
        ["user": user(s.user)]
    }

    static func room(_ r: RoomSummary) -> [String: Any] {
        ["id": r.id, "name": orNull(r.name), "memberIds": r.memberIds, "lastMessage": orNull(r.lastMessage.map(message))]
    }

    static func loadOlder(_ r: LoadOlderResult) -> [String: Any] {
        ["messages": messages(r.messages), "hasMore": r.hasMore]
    }

    static func syncReport(_ r: SyncReport) -> [String: Any] {
        [
            "online": r.online,
            "newMessages": r.newMessages.mapValues { Double($0) },
            "sent": Double(r.sent),
            "pending": Double(r.pending),
            "failed": Double(r.failed),
        ]
    }

    static func outboxEntry(_ e: OutboxEntry) -> [String: Any] {
        [
            "localId": e.localId,
            "roomId": e.roomId,
            "text": e.text,
            "createdAt": e.createdAt,
            "state": state(e.state),
            "attempts": Double(e.attempts),
            "failureReason": orNull(e.failureReason),
        ]
    }

    static func networkStatus(_ s: NetworkStatus) -> String {
        switch s {
        case .unknown: return "unknown"
        case .online: return "online"
        case .offline: return "offline"
        }
    }

    static func syncState(_ s: SyncState) -> String {
        switch s {
        case .idle: return "idle"
        case .syncing: return "syncing"
        case .live: return "live"
        case .backingOff: return "backing_off"
        case .stopped: return "stopped"
        }
    }

    static func status(_ s: ClientStatus) -> [String: Any] {
        [
            "networkStatus": networkStatus(s.networkStatus),
            "syncState": syncState(s.syncState),
            "pending": Double(s.pending),
            "failed": Double(s.failed),
        ]
    }

    /// The event's JS name and payload.
    static func event(_ e: ClientEvent) -> (name: String, body: [String: Any]) {
        switch e {
        case .messagesChanged(let roomId, let ids):
            return (ChatSyncEventName.messagesChanged, ["roomId": roomId, "ids": ids])
        case .networkStatusChanged(let status):
            return (ChatSyncEventName.networkStatus, ["status": networkStatus(status)])
        case .syncStateChanged(let state):
            return (ChatSyncEventName.syncState, ["state": syncState(state)])
        case .outboxChanged(let pending, let failed):
            return (ChatSyncEventName.outbox, ["pending": Double(pending), "failed": Double(failed)])
        case .unauthorized(let reason):
            return (ChatSyncEventName.unauthorized, ["reason": reason])
        }
    }
}

// MARK: - Notifications

/// One local notification to post.
struct RoomNotification: Equatable {
    /// Stable per room, so a newer batch replaces the room's notification instead of stacking.
    var identifier: String
    var roomId: String
    var title: String
    var body: String
    var newestMessageId: UInt64
}

/// Builds notifications from a background sync's previews: one per room, newest room first.
enum NotificationContent {
    static func forPreviews(_ previews: [NewMessagePreview]) -> [RoomNotification] {
        var order: [String] = []
        var byRoom: [String: [NewMessagePreview]] = [:]
        for p in previews {
            if byRoom[p.roomId] == nil { order.append(p.roomId) }
            byRoom[p.roomId, default: []].append(p)
        }
        return order.compactMap { roomId -> RoomNotification? in
            guard let inRoom = byRoom[roomId], let newest = inRoom.max(by: { $0.messageId < $1.messageId }) else { return nil }
            var senders: [String] = []
            for p in inRoom where !senders.contains(p.senderName) { senders.append(p.senderName) }
            let body = inRoom.count == 1 ? newest.preview : "\(inRoom.count) new messages: \(newest.preview)"
            return RoomNotification(identifier: identifier(for: roomId), roomId: roomId, title: senders.joined(separator: ", "),
                                    body: body, newestMessageId: newest.messageId)
        }
        .sorted { $0.newestMessageId > $1.newestMessageId }
    }

    static func identifier(for roomId: String) -> String { "chatsync.room.\(roomId)" }
}

// MARK: - Runtime

/// Holds the one ChatClient of the process (the sled store can be held by one client only) and
/// fans its events out to the React module. Outlives React: the BGTaskScheduler handler opens it
/// when iOS launched the app in the background for a refresh.
final class ChatSyncRuntime: @unchecked Sendable {
    /// The process-wide instance.
    static let shared = ChatSyncRuntime()

    /// Guards the fields below; held only for short reads and writes, so the UI thread's
    /// lifecycle and network hints never wait behind a slow open.
    private let lock = NSLock()
    /// Serializes open/start/close, which may take a while (disk I/O, waiting for a store).
    private let openLock = NSLock()
    private var client: ChatClient?
    private var clientUser: StoredUser?
    private var clientOptions: ChatSyncOptions?
    private var subscription: Subscription?
    private var started = false
    private var reachable: Bool?
    private var appState: AppState = .background
    private var sinks: [UUID: (ClientEvent) -> Void] = [:]
    private var statusValue = ClientStatus()

    private final class Listener: ClientListener, @unchecked Sendable {
        weak var runtime: ChatSyncRuntime?
        func onEvent(event: ClientEvent) { runtime?.deliver(event) }
    }

    private let listener = Listener()

    init() { listener.runtime = self }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private func deliver(_ event: ClientEvent) {
        let receivers: [(ClientEvent) -> Void] = locked {
            statusValue = statusValue.applying(event)
            return Array(sinks.values)
        }
        for sink in receivers { sink(event) }
    }

    /// The latest status the listener saw (`getStatus()`).
    var status: ClientStatus { locked { statusValue } }

    /// Whether the app is in the foreground (no notification then).
    var isForeground: Bool { locked { appState == .active } }

    /// Adds a receiver of every event of the current and future clients; returns its key.
    @discardableResult
    func addSink(_ sink: @escaping (ClientEvent) -> Void) -> UUID {
        let key = UUID()
        locked { sinks[key] = sink }
        return key
    }

    func removeSink(_ key: UUID) { _ = locked { sinks.removeValue(forKey: key) } }

    /// The open client, or nil.
    var current: ChatClient? { locked { client } }

    /// The store folder of `user` under `baseDir` (Application Support on iOS).
    static func dataDir(baseDir: URL, user: StoredUser) -> URL {
        baseDir.appendingPathComponent("chatsync", isDirectory: true).appendingPathComponent(user.directoryName, isDirectory: true)
    }

    /// The client for `user` (disk I/O: not on the main thread). Another user's client, or one
    /// opened with other options, is shut down first.
    func open(baseDir: URL, options: ChatSyncOptions, user: StoredUser) throws -> ChatClient {
        openLock.lock()
        defer { openLock.unlock() }
        if let existing = locked({ client }), locked({ clientUser == user && clientOptions == options }) { return existing }
        closeSerialized()
        let dir = Self.dataDir(baseDir: baseDir, user: user)
        let opened = try ChatClient(config: options.clientConfig(user: user, dataDir: dir.path))
        locked { statusValue = ClientStatus() }
        let openedSubscription = try opened.subscribe(listener: listener)
        let (hint, state): (Bool?, AppState) = locked {
            client = opened
            subscription = openedSubscription
            clientUser = user
            clientOptions = options
            return (reachable, appState)
        }
        // Replayed after publishing the client, so a hint arriving meanwhile is not lost.
        if let hint { try? opened.setNetworkReachable(reachable: hint) }
        try? opened.setAppState(state: state)
        return opened
    }

    /// The stored user's client, opened from stored settings (the background launch). Nil when
    /// nobody is logged in.
    func restore(baseDir: URL, options: ChatSyncOptions?, user: StoredUser?) throws -> ChatClient? {
        guard let options, let user else { return nil }
        return try open(baseDir: baseDir, options: options, user: user)
    }

    /// Starts the foreground scheduler. The background task never calls it.
    func start() {
        openLock.lock()
        defer { openLock.unlock() }
        let toStart: ChatClient? = locked {
            guard let client, !started else { return nil }
            started = true
            return client
        }
        try? toStart?.start()
    }

    /// Shuts the client down (logout); the store stays on disk.
    func close() {
        openLock.lock()
        defer { openLock.unlock() }
        closeSerialized()
    }

    /// Unpublishes the client first, so no new call reaches a client being shut down.
    private func closeSerialized() {
        let (closing, closingSubscription): (ChatClient?, Subscription?) = locked {
            defer {
                client = nil
                subscription = nil
                clientUser = nil
                clientOptions = nil
                started = false
                statusValue = ClientStatus()
            }
            return (client, subscription)
        }
        closingSubscription?.cancel()
        try? closing?.shutdown()
    }

    /// The platform's reachability hint, forwarded to the core (and to the next client).
    func setReachable(_ value: Bool) {
        let c: ChatClient? = locked { reachable = value; return client }
        try? c?.setNetworkReachable(reachable: value)
    }

    /// The app's lifecycle state, forwarded to the core (and to the next client).
    func setAppState(_ state: AppState) {
        let c: ChatClient? = locked { appState = state; return client }
        try? c?.setAppState(state: state)
    }
}

// MARK: - Background run

/// What one background run did.
struct BackgroundRun {
    /// The core's typed outcome and its `retryLater` advice, plus what only the task knows.
    enum Outcome: Equatable {
        /// Synced and flushed.
        case done
        /// Nobody is logged in: the task should not be rescheduled.
        case nobodyLoggedIn
        /// Worth trying again soon (out of time, offline or busy server, store held elsewhere).
        case retry
        /// The token was refused: the user must sign in again; retrying will not help.
        case unauthorized
        /// Anything else (a damaged store, a bug): retrying will not help; see `error`.
        case failed

        /// The task's outcome for the core's report.
        static func of(_ report: BackgroundSyncReport) -> Outcome {
            if report.retryLater { return .retry }
            switch report.outcome {
            case .completed: return .done
            case .unauthorized: return .unauthorized
            default: return .failed
            }
        }
    }

    var outcome: Outcome
    var report: BackgroundSyncReport?
    var notifications: [RoomNotification] = []
    var error: String?
}

/// One background run, independent of the OS scheduler that triggers it.
enum BackgroundSync {
    /// iOS gives an app-refresh task about 30 s; keep a margin for notifications and completion.
    static let budgetMs: UInt64 = 25_000

    /// Opens the client with `open` (nil: nobody logged in), syncs within `budgetMs`, and lists
    /// the notifications to post unless disabled or the app is in the foreground. Never throws.
    static func run(
        open: () throws -> ChatClient?,
        budgetMs: UInt64 = budgetMs,
        notificationsEnabled: Bool,
        isForeground: () async -> Bool
    ) async -> BackgroundRun {
        let client: ChatClient
        do {
            guard let opened = try open() else { return BackgroundRun(outcome: .nobodyLoggedIn) }
            client = opened
        } catch {
            // Held by another process (the app itself): free again soon. Anything else (a
            // damaged store) needs more than a retry.
            var busy = false
            if let e = error as? ChatError, case .Busy = e { busy = true }
            return BackgroundRun(outcome: busy ? .retry : .failed, error: "cannot open the store: \(chatSyncRejection(for: error).message)")
        }
        let report: BackgroundSyncReport
        do {
            report = try await client.backgroundSync(budgetMs: budgetMs)
        } catch {
            return BackgroundRun(outcome: .failed, error: chatSyncRejection(for: error).message)
        }
        let notify = notificationsEnabled && !report.newMessages.isEmpty
        let foreground = notify ? await isForeground() : true
        return BackgroundRun(
            outcome: .of(report),
            report: report,
            notifications: notify && !foreground ? NotificationContent.forPreviews(report.newMessages) : [],
            error: report.error
        )
    }
}
