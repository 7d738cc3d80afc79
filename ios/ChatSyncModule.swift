// The React Native module `ChatSync` on iOS: the JS API's methods, each run off the main thread
// and settled as a promise; the core's events sent through RCTEventEmitter; the app's
// foreground/background changes forwarded to the core with no JS code needed.
// Apple-only (React, UIKit): compiled by Xcode, not by the Linux check.

#if canImport(React) && canImport(UIKit)
import Foundation
import React
import UIKit

@objc(ChatSync)
final class ChatSyncModule: RCTEventEmitter {
    private let settings = ChatSyncSettings()
    private var sinkKey: UUID?
    private var hasListeners = false
    private var observers: [NSObjectProtocol] = []
    /// Promise work runs here, never on the main queue.
    private let work = DispatchQueue(label: "dev.chatsync.module", qos: .userInitiated, attributes: .concurrent)

    override init() {
        super.init()
        sinkKey = ChatSyncRuntime.shared.addSink { [weak self] event in self?.emit(event) }
        #if canImport(Network)
        ChatSyncNetworkMonitor.shared.start()
        #endif
        let center = NotificationCenter.default
        let forward: [(Notification.Name, AppState)] = [
            (UIApplication.didBecomeActiveNotification, .active),
            (UIApplication.willResignActiveNotification, .inactive),
            (UIApplication.didEnterBackgroundNotification, .background),
        ]
        for (name, state) in forward {
            observers.append(center.addObserver(forName: name, object: nil, queue: nil) { _ in
                ChatSyncRuntime.shared.setAppState(state)
            })
        }
        DispatchQueue.main.async {
            ChatSyncRuntime.shared.setAppState(UIApplication.shared.applicationState == .active ? .active : .background)
        }
    }

    deinit {
        if let sinkKey { ChatSyncRuntime.shared.removeSink(sinkKey) }
        observers.forEach(NotificationCenter.default.removeObserver)
    }

    override static func requiresMainQueueSetup() -> Bool { false }

    override func supportedEvents() -> [String]! { ChatSyncEventName.all }

    override func startObserving() { hasListeners = true }

    override func stopObserving() { hasListeners = false }

    private func emit(_ event: ClientEvent) {
        guard hasListeners, bridge != nil else { return }
        let (name, body) = BridgeValues.event(event)
        sendEvent(withName: name, body: body)
    }

    // MARK: promises

    /// Runs `body` off the main thread and settles the promise with its value or error.
    private func settle(_ resolve: @escaping RCTPromiseResolveBlock, _ reject: @escaping RCTPromiseRejectBlock,
                        _ body: @escaping () async throws -> Any?) {
        Task.detached(priority: .userInitiated) {
            do {
                resolve(try await body() ?? NSNull())
            } catch {
                let (code, message) = chatSyncRejection(for: error)
                reject(code, message, error)
            }
        }
    }

    private func client() throws -> ChatClient {
        guard let c = ChatSyncRuntime.shared.current else {
            throw ChatSyncModuleError(code: ChatSyncErrorCode.notLoggedIn, message: "nobody is logged in: call login() first")
        }
        return c
    }

    private func requireOptions() throws -> ChatSyncOptions {
        guard let o = settings.options() else {
            throw ChatSyncModuleError(code: ChatSyncErrorCode.notConfigured, message: "call configure() before anything else")
        }
        return o
    }

    private static var baseDir: URL {
        FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
    }

    private func openAndStart(_ options: ChatSyncOptions, _ user: StoredUser) throws -> ChatClient {
        let client = try ChatSyncRuntime.shared.open(baseDir: Self.baseDir, options: options, user: user)
        ChatSyncRuntime.shared.start()
        #if canImport(BackgroundTasks)
        ChatSyncBackgroundTasks.schedule()
        #endif
        return client
    }

    @objc(configure:resolver:rejecter:)
    func configure(_ options: NSDictionary, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in
            let parsed = try ChatSyncOptions.fromJs(options as? [String: Any] ?? [:])
            settings.saveOptions(parsed)
            guard let user = settings.user() else { return nil }
            return try openAndStart(parsed, user).session().map(BridgeValues.session)
        }
    }

    @objc(login:resolver:rejecter:)
    func login(_ user: NSDictionary, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in
            let options = try requireOptions()
            let parsed = try StoredUser.fromJs(user as? [String: Any] ?? [:])
            let session = try await openAndStart(options, parsed.user).login(name: parsed.name, avatarUrl: parsed.avatar)
            settings.saveUser(parsed.user)
            return BridgeValues.session(session)
        }
    }

    @objc(logout:rejecter:)
    func logout(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in
            #if canImport(BackgroundTasks)
            ChatSyncBackgroundTasks.cancel()
            #endif
            settings.clearUser()
            ChatSyncRuntime.shared.close()
            return nil
        }
    }

    @objc(getSession:rejecter:)
    func getSession(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { try ChatSyncRuntime.shared.current?.session().map(BridgeValues.session) }
    }

    @objc(openDirectRoom:resolver:rejecter:)
    func openDirectRoom(_ userId: String, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in BridgeValues.room(try await client().openDirectRoom(userId: userId)) }
    }

    @objc(getRooms:rejecter:)
    func getRooms(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in try client().rooms().map(BridgeValues.room) }
    }

    @objc(getMessages:options:resolver:rejecter:)
    func getMessages(_ roomId: String, options: NSDictionary, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in
            let limit = (options["limit"] as? NSNumber)?.doubleValue ?? 0
            let before = (options["before"] as? NSNumber)?.doubleValue
            guard limit >= 0, (before ?? 0) >= 0 else { throw ChatSyncModuleError.invalidInput("limit and before must not be negative") }
            let pageSize = limit >= 1 ? UInt32(min(limit, Double(UInt32.max))) : try requireOptions().effectivePageSize
            return BridgeValues.messages(try client().messages(roomId: roomId, limit: pageSize, before: before.map { UInt64($0) }))
        }
    }

    @objc(loadEarlier:options:resolver:rejecter:)
    func loadEarlier(_ roomId: String, options: NSDictionary, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in
            let limit = (options["limit"] as? NSNumber)?.doubleValue ?? 0
            let before = (options["before"] as? NSNumber)?.doubleValue
            guard limit >= 0, (before ?? 0) >= 0 else { throw ChatSyncModuleError.invalidInput("limit and before must not be negative") }
            let pageSize = limit >= 1 ? UInt32(min(limit, Double(UInt32.max))) : try requireOptions().effectivePageSize
            // The anchor is explicit (the oldest server id the screen holds): a page never repeats.
            return BridgeValues.loadOlder(try await client().loadOlder(roomId: roomId, before: before.map { UInt64($0) }, limit: pageSize))
        }
    }

    @objc(sendMessage:text:resolver:rejecter:)
    func sendMessage(_ roomId: String, text: String, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in BridgeValues.message(try await client().sendText(roomId: roomId, text: text)) }
    }

    @objc(retry:resolver:rejecter:)
    func retry(_ localId: String, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in try await client().retry(localId: localId); return nil }
    }

    @objc(discard:resolver:rejecter:)
    func discard(_ localId: String, resolver resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in try await client().discard(localId: localId); return nil }
    }

    @objc(syncNow:rejecter:)
    func syncNow(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in BridgeValues.syncReport(try await client().syncOnce()) }
    }

    @objc(getOutbox:rejecter:)
    func getOutbox(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { [self] in try client().outbox().map(BridgeValues.outboxEntry) }
    }

    @objc(getStatus:rejecter:)
    func getStatus(_ resolve: @escaping RCTPromiseResolveBlock, rejecter reject: @escaping RCTPromiseRejectBlock) {
        settle(resolve, reject) { BridgeValues.status(ChatSyncRuntime.shared.status) }
    }
}
#endif
