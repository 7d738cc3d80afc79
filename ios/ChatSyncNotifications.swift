// Posts the notifications the Rust host planned for a background run (which rooms, what text:
// decided in bindings/src/notifications.rs), one per room, replacing the room's previous one.
// Apple-only (UserNotifications): compiled by Xcode, not by the Linux check.

#if canImport(UserNotifications)
import Foundation
import UserNotifications

enum ChatSyncNotifications {
    /// Posts `notifications` if the user allowed notifications; a tap carries `chatsyncRoomId`.
    static func post(_ notifications: [RoomNotification]) async {
        guard !notifications.isEmpty else { return }
        let center = UNUserNotificationCenter.current()
        let settings = await center.notificationSettings()
        guard settings.authorizationStatus == .authorized || settings.authorizationStatus == .provisional else { return }
        for n in notifications {
            let content = UNMutableNotificationContent()
            content.title = n.title
            content.body = n.body
            content.threadIdentifier = n.roomId
            content.userInfo = ["chatsyncRoomId": n.roomId]
            try? await center.add(UNNotificationRequest(identifier: n.key, content: content, trigger: nil))
        }
    }
}
#endif
