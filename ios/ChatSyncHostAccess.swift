// The process's Rust host on iOS, and the two small adapters the module needs around it:
// HostEvents (the host's listener, handing its JSON to closures) and `reply` (an async host
// call completed on a callback). No host logic here: options, status, views, background
// decisions, notification plans and error codes are in the Rust host (bindings/src/host.rs).
// Foundation only: compiled and run on Linux by scripts/test-rn.sh.

import Foundation

/// Access to the process's `ChatHost`.
public enum ChatSyncHostAccess {
    /// The folder of the stores and `chatsync/settings.json`: Application Support, which iOS
    /// keeps out of iCloud backup only when told, so it is marked excluded on first use.
    public static func baseDirectory() -> URL {
        let support = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        try? FileManager.default.createDirectory(at: support, withIntermediateDirectories: true)
        var values = URLResourceValues()
        values.isExcludedFromBackup = true
        var url = support.appendingPathComponent("chatsync-host", isDirectory: true)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try? url.setResourceValues(values)
        return url
    }

    /// The host over `baseDir`, keeping tokens in `secrets` (the Keychain in the app). The first
    /// call creates it; later calls return the same host.
    public static func host(baseDir: URL, secrets: SecretStore) -> ChatHost {
        ChatHost.shared(filesDir: baseDir.path, secrets: secrets)
    }
}

/// The host's listener: client events and view updates, as JSON, to two closures.
public final class HostEvents: HostListener, @unchecked Sendable {
    private let clientEvent: @Sendable (String) -> Void
    private let viewUpdate: @Sendable (UInt32, String) -> Void

    public init(clientEvent: @escaping @Sendable (String) -> Void, viewUpdate: @escaping @Sendable (UInt32, String) -> Void) {
        self.clientEvent = clientEvent
        self.viewUpdate = viewUpdate
    }

    public func onClientEvent(eventJson: String) { clientEvent(eventJson) }

    public func onViewUpdate(viewId: UInt32, diffsJson: String) { viewUpdate(viewId, diffsJson) }
}

/// Runs an async host call off the main thread and hands its reply (JSON, never an error) to
/// `completion`.
public func reply(_ call: @escaping @Sendable () async -> String, completion: @escaping @Sendable (String) -> Void) {
    Task.detached(priority: .userInitiated) { completion(await call()) }
}
