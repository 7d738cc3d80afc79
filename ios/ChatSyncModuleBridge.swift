// What ChatSyncModule.mm (the TurboModule, Objective-C++) calls: each method hands the Rust
// host's JSON reply to a block, and the host's events to two blocks the module turns into its
// codegen-typed emitters. Only the wiring of iOS concerns is here: the Keychain, reachability,
// lifecycle, and keeping the background refresh in line with the session.
// Apple-only (@objc): compiled by Xcode, not by the Linux check (ChatSyncHostAccess.swift, which
// it uses, is).

#if canImport(UIKit)
import Foundation

@objc(ChatSyncModuleBridge)
public final class ChatSyncModuleBridge: NSObject {
    private let host: ChatHost
    private let lifecycle: ChatSyncLifecycle

    /// Wires the host to this module instance: its events go to the two blocks.
    @objc public init(onClientEvent: @escaping @Sendable (String) -> Void, onViewUpdate: @escaping @Sendable (Int, String) -> Void) {
        host = ChatSyncHostAccess.host(baseDir: ChatSyncHostAccess.baseDirectory(), secrets: KeychainSecretStore())
        host.setListener(listener: HostEvents(clientEvent: onClientEvent, viewUpdate: { id, json in onViewUpdate(Int(id), json) }))
        ChatSyncNetworkMonitor.shared.start(host)
        lifecycle = ChatSyncLifecycle(host)
        super.init()
    }

    /// The module is going away (reload): its blocks must not be called any more.
    @objc public func invalidate() { host.setListener(listener: nil) }

    private func call(_ body: @escaping @Sendable (ChatHost) async -> String, _ done: @escaping @Sendable (String) -> Void) {
        let host = self.host
        reply({ await body(host) }, completion: done)
    }

    /// Like `call`, then brings the background refresh in line with the session.
    private func callThenSchedule(_ body: @escaping @Sendable (ChatHost) async -> String, _ done: @escaping @Sendable (String) -> Void) {
        let host = self.host
        reply({
            let answer = await body(host)
            ChatSyncBackgroundTasks.follow(loggedIn: host.isLoggedIn())
            return answer
        }, completion: done)
    }

    @objc public func configure(_ json: String, done: @escaping @Sendable (String) -> Void) { callThenSchedule({ $0.configure(optionsJson: json) }, done) }
    @objc public func login(_ json: String, done: @escaping @Sendable (String) -> Void) { callThenSchedule({ await $0.login(userJson: json) }, done) }
    @objc public func logout(_ done: @escaping @Sendable (String) -> Void) { callThenSchedule({ $0.logout() }, done) }
    @objc public func getSession(_ done: @escaping @Sendable (String) -> Void) { call({ $0.session() }, done) }
    @objc public func openDirectRoom(_ userId: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.openDirectRoom(userId: userId) }, done) }
    @objc public func getRooms(_ done: @escaping @Sendable (String) -> Void) { call({ $0.rooms() }, done) }
    @objc public func sendMessage(_ roomId: String, text: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.sendText(roomId: roomId, text: text) }, done) }
    @objc public func retry(_ localId: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.retry(localId: localId) }, done) }
    @objc public func discard(_ localId: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.discard(localId: localId) }, done) }
    @objc public func editMessage(_ roomId: String, messageId: String, text: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.editMessage(roomId: roomId, messageId: messageId, text: text) }, done) }
    @objc public func deleteMessage(_ roomId: String, messageId: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.deleteMessage(roomId: roomId, messageId: messageId) }, done) }
    @objc public func toggleReaction(_ roomId: String, messageId: String, key: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.toggleReaction(roomId: roomId, messageId: messageId, key: key) }, done) }
    @objc public func markRead(_ roomId: String, done: @escaping @Sendable (String) -> Void) { call({ await $0.markRead(roomId: roomId) }, done) }
    @objc public func setTyping(_ roomId: String, typing: Bool, done: @escaping @Sendable (String) -> Void) { call({ await $0.setTyping(roomId: roomId, typing: typing) }, done) }
    @objc public func getTyping(_ roomId: String, done: @escaping @Sendable (String) -> Void) { call({ $0.typing(roomId: roomId) }, done) }
    @objc public func getUnreadTotal(_ done: @escaping @Sendable (String) -> Void) { call({ $0.unreadTotal() }, done) }
    @objc public func syncNow(_ done: @escaping @Sendable (String) -> Void) { call({ await $0.syncNow() }, done) }
    @objc public func getOutbox(_ done: @escaping @Sendable (String) -> Void) { call({ $0.outbox() }, done) }
    @objc public func getStatus(_ done: @escaping @Sendable (String) -> Void) { call({ $0.status() }, done) }
    @objc public func openTimeline(_ viewId: Int, roomId: String, done: @escaping @Sendable (String) -> Void) { call({ $0.openTimeline(viewId: UInt32(viewId), roomId: roomId) }, done) }
    @objc public func openRoomList(_ viewId: Int, done: @escaping @Sendable (String) -> Void) { call({ $0.openRoomList(viewId: UInt32(viewId)) }, done) }
    @objc public func paginateBackwards(_ viewId: Int, count: Int, done: @escaping @Sendable (String) -> Void) { call({ await $0.paginateBackwards(viewId: UInt32(viewId), count: UInt32(count)) }, done) }
    @objc public func closeView(_ viewId: Int) { host.closeView(viewId: UInt32(viewId)) }
}
#endif
