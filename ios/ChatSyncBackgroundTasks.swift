// The iOS background refresh: a BGTaskScheduler app-refresh task that runs the core's
// time-boxed background sync (about 25 s of the ~30 s iOS grants), completes or is cancelled
// cleanly on expiration, reschedules itself, and posts a local notification per room with new
// messages while the app is not in the foreground.
// Apple-only (BackgroundTasks, UserNotifications, UIKit): compiled by Xcode, not by the Linux check.

#if canImport(BackgroundTasks) && canImport(UserNotifications) && canImport(UIKit)
import BackgroundTasks
import Foundation
import UIKit
import UserNotifications

/// Register once in `application(_:didFinishLaunchingWithOptions:)`, before it returns:
/// `[ChatSyncBackgroundTasks registerTasks];` (Objective-C) or `ChatSyncBackgroundTasks.registerTasks()`.
/// The identifier must be listed under `BGTaskSchedulerPermittedIdentifiers` in Info.plist.
@objc(ChatSyncBackgroundTasks)
public final class ChatSyncBackgroundTasks: NSObject {
    /// The task identifier to list in Info.plist.
    @objc public static let identifier = "dev.chatsync.refresh"

    /// iOS runs app refresh at its own discretion; this is only the earliest time.
    static let earliestInterval: TimeInterval = 15 * 60

    /// Registers the handler. Call before the end of app launch (iOS requires it).
    @objc public static func registerTasks() {
        BGTaskScheduler.shared.register(forTaskWithIdentifier: identifier, using: nil) { task in
            guard let refresh = task as? BGAppRefreshTask else {
                task.setTaskCompleted(success: false)
                return
            }
            handle(refresh)
        }
    }

    /// Submits the next refresh (login, app launch, and each run reschedule it). Submitting
    /// again replaces the pending request, so there is never more than one.
    @objc public static func schedule() {
        let request = BGAppRefreshTaskRequest(identifier: identifier)
        request.earliestBeginDate = Date(timeIntervalSinceNow: earliestInterval)
        do {
            try BGTaskScheduler.shared.submit(request)
        } catch {
            NSLog("ChatSync: cannot schedule the background refresh: \(error)")
        }
    }

    /// Cancels the pending refresh (logout).
    @objc public static func cancel() {
        BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: identifier)
    }

    /// Completes a task exactly once, whichever of the work or the expiration comes first.
    private final class Completion: @unchecked Sendable {
        private let lock = NSLock()
        private var done = false
        private let task: BGTask
        init(_ task: BGTask) { self.task = task }

        func complete(success: Bool) {
            lock.lock()
            let first = !done
            done = true
            lock.unlock()
            if first { task.setTaskCompleted(success: success) }
        }
    }

    private static func handle(_ task: BGAppRefreshTask) {
        let settings = ChatSyncSettings()
        guard settings.user() != nil else {
            // Logged out: no next run.
            task.setTaskCompleted(success: true)
            return
        }
        schedule() // the next one first, so an expiration cannot lose it
        let completion = Completion(task)
        let work = Task.detached(priority: .utility) {
            let options = settings.options()
            let baseDir = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
            let run = await BackgroundSync.run(
                open: { try ChatSyncRuntime.shared.restore(baseDir: baseDir, options: options, user: settings.user()) },
                notificationsEnabled: options?.notifications ?? true,
                isForeground: { await MainActor.run { UIApplication.shared.applicationState == .active } }
            )
            if let error = run.error { NSLog("ChatSync: background sync: \(error)") }
            if !Task.isCancelled { await post(run.notifications) }
            completion.complete(success: run.outcome == .done)
        }
        task.expirationHandler = {
            // Out of time: stop the work (the core's own budget ends the sync too) and tell iOS now.
            work.cancel()
            completion.complete(success: false)
        }
    }

    /// Posts one notification per room, replacing the room's previous one.
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
            try? await center.add(UNNotificationRequest(identifier: n.identifier, content: content, trigger: nil))
        }
    }
}
#endif
