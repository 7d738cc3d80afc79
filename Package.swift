// swift-tools-version:5.9
// The Swift half of react-native-chatsync as a Swift package: the Rust core (an XCFramework)
// with its generated Swift bindings, and the iOS shells of ios/ (Keychain, NWPathMonitor,
// BGTaskScheduler, notifications, lifecycle, the bridge the TurboModule calls). The TurboModule
// itself (ios/ChatSyncModule.mm, which needs React Native's headers and codegen output) builds
// through the podspec. Before use, on a Mac with Xcode: `bindings/build-ios.sh ios/generated`.
import PackageDescription

let package = Package(
    name: "ChatSync",
    platforms: [.iOS(.v15)],
    products: [
        .library(name: "ChatSync", targets: ["ChatSync"]),
    ],
    targets: [
        // libchatsync.a for devices and simulators, with the chatsyncFFI module map.
        .binaryTarget(name: "Chatsync", path: "ios/generated/Chatsync.xcframework"),
        .target(
            name: "ChatSync",
            dependencies: ["Chatsync"],
            path: "ios",
            exclude: ["Tests", "ChatSyncModule.mm", "ChatSyncModule.h", "generated/Chatsync.xcframework"],
            sources: [
                "generated/Sources",
                "ChatSyncHostAccess.swift",
                "ChatSyncKeychain.swift",
                "ChatSyncNetworkMonitor.swift",
                "ChatSyncLifecycle.swift",
                "ChatSyncNotifications.swift",
                "ChatSyncBackgroundTasks.swift",
                "ChatSyncModuleBridge.swift",
            ]
        ),
    ]
)
