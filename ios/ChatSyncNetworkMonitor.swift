// Feeds the host's reachability hint from NWPathMonitor. Only a hint: the core's probe decides
// whether the server answers, but a lost path stops requests at once and a regained one triggers
// an immediate probe. Apple-only (Network): compiled by Xcode, not by the Linux check.

#if canImport(Network)
import Foundation
import Network

/// One NWPathMonitor per process.
final class ChatSyncNetworkMonitor: @unchecked Sendable {
    static let shared = ChatSyncNetworkMonitor()

    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "dev.chatsync.network")
    private let lock = NSLock()
    private var started = false

    /// Starts monitoring for `host` (idempotent); the first update reports the current path.
    func start(_ host: ChatHost) {
        lock.lock()
        defer { lock.unlock() }
        guard !started else { return }
        started = true
        monitor.pathUpdateHandler = { path in host.setNetworkReachable(reachable: path.status == .satisfied) }
        monitor.start(queue: queue)
    }
}
#endif
