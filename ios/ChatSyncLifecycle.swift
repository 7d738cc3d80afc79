// Forwards the app's foreground and background changes to the host: no JS needed.
// Apple-only (UIKit): compiled by Xcode, not by the Linux check.

#if canImport(UIKit)
import Foundation
import UIKit

/// UIApplication's lifecycle notifications, as the host's app state.
final class ChatSyncLifecycle {
    private var observers: [NSObjectProtocol] = []

    init(_ host: ChatHost) {
        let center = NotificationCenter.default
        let forward: [(Notification.Name, AppState)] = [
            (UIApplication.didBecomeActiveNotification, .active),
            (UIApplication.willResignActiveNotification, .inactive),
            (UIApplication.didEnterBackgroundNotification, .background),
        ]
        for (name, state) in forward {
            observers.append(center.addObserver(forName: name, object: nil, queue: nil) { _ in host.setAppState(state: state) })
        }
        DispatchQueue.main.async {
            host.setAppState(state: UIApplication.shared.applicationState == .active ? .active : .background)
        }
    }

    deinit { observers.forEach(NotificationCenter.default.removeObserver) }
}
#endif
