// The iOS background refresh: a BGTaskScheduler app-refresh task that asks the Rust host for
// one background run (it decides the outcome and the notifications), posts them, and completes
// the task exactly once, also when iOS expires it first. Apple-only (BackgroundTasks, UIKit):
// compiled by Xcode, not by the Linux check.

#if canImport(BackgroundTasks) && canImport(UIKit)
import BackgroundTasks
import Foundation
import UIKit

/// Register once in `application(_:didFinishLaunchingWithOptions:)`, before it returns:
/// `[ChatSyncBackgroundTasks registerTasks];` (Objective-C) or `ChatSyncBackgroundTasks.registerTasks()`.
/// The Expo config plugin lists the identifier under `BGTaskSchedulerPermittedIdentifiers`.
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

    /// Submits the next refresh (replaces a pending one) while someone is logged in, cancels it otherwise.
    @objc public static func follow(loggedIn: Bool) {
        guard loggedIn else {
            BGTaskScheduler.shared.cancel(taskRequestWithIdentifier: identifier)
            return
        }
        let request = BGAppRefreshTaskRequest(identifier: identifier)
        request.earliestBeginDate = Date(timeIntervalSinceNow: earliestInterval)
        do {
            try BGTaskScheduler.shared.submit(request)
        } catch {
            NSLog("ChatSync: cannot schedule the background refresh: \(error)")
        }
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
        let host = ChatSyncHostAccess.host(baseDir: ChatSyncHostAccess.baseDirectory(), secrets: KeychainSecretStore())
        follow(loggedIn: host.isLoggedIn()) // the next one first, so an expiration cannot lose it
        let completion = Completion(task)
        let work = Task.detached(priority: .utility) {
            let run = await host.backgroundRun(budgetMs: backgroundBudgetMs())
            NSLog("ChatSync: background sync \(run.action): \(run.summary)")
            if !Task.isCancelled { await ChatSyncNotifications.post(run.notifications) }
            if !run.keepScheduled { follow(loggedIn: false) }
            completion.complete(success: !run.rescheduleEarly)
        }
        task.expirationHandler = {
            // Out of time: stop the work (the host's own budget ends the sync too) and tell iOS now.
            work.cancel()
            completion.complete(success: false)
        }
    }
}
#endif
