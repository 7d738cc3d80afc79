# The iOS side of react-native-chatsync, found by React Native's autolinking (pod install): the
# TurboModule (Objective-C++, conforming to the protocol codegen generates from
# src/NativeChatSync.ts per package.json's codegenConfig), the Swift shells it calls, and the Rust
# core. Before `pod install`, build the core into ios/generated (a Mac with Xcode and the Rust
# iOS targets): `bindings/build-ios.sh ios/generated` (see docs/react-native.md).
require "json"

package = JSON.parse(File.read(File.join(__dir__, "package.json")))

Pod::Spec.new do |s|
  s.name         = "react-native-chatsync"
  s.version      = package["version"]
  s.summary      = package["description"]
  s.homepage     = "https://github.com/chatsync/chatsync"
  s.license      = package["license"]
  s.authors      = "chatsync"
  # BGTaskScheduler and NWPathMonitor need iOS 13; React Native 0.76+ needs 15.1.
  s.platforms    = { :ios => "15.1" }
  s.source       = { :git => "https://github.com/chatsync/chatsync.git", :tag => s.version.to_s }
  s.swift_version = "5.0"

  # The TurboModule (.h/.mm), the Swift shells, and the UniFFI-generated Swift plus the bindings'
  # wrappers that bindings/build-ios.sh writes to ios/generated/Sources.
  s.source_files = "ios/*.{h,mm,swift}", "ios/generated/Sources/*.swift"
  s.exclude_files = "ios/Tests/**/*"
  # The Rust core: static libchatsync.a for device and simulator, with the chatsyncFFI module map.
  s.vendored_frameworks = "ios/generated/Chatsync.xcframework"
  s.frameworks = "BackgroundTasks", "UserNotifications", "Network", "Security"
  s.pod_target_xcconfig = { "DEFINES_MODULE" => "YES" }

  # React Native's helper: React-Core, the codegen'd spec (ChatSyncSpec), the TurboModule and
  # JSI headers, and the New Architecture's compiler flags.
  install_modules_dependencies(s)
end
