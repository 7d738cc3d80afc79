# The iOS side of react-native-chatsync, found by React Native's autolinking (pod install).
# Before `pod install`, build the Rust core into ios/generated (a Mac with Xcode and the Rust iOS
# targets): `bindings/build-ios.sh ios/generated` (see docs/react-native.md).
require "json"

package = JSON.parse(File.read(File.join(__dir__, "package.json")))

Pod::Spec.new do |s|
  s.name         = "react-native-chatsync"
  s.version      = package["version"]
  s.summary      = package["description"]
  s.homepage     = "https://github.com/chatsync/chatsync"
  s.license      = package["license"]
  s.authors      = "chatsync"
  # BGTaskScheduler and NWPathMonitor need iOS 13.
  s.platforms    = { :ios => "13.0" }
  s.source       = { :git => "https://github.com/chatsync/chatsync.git", :tag => s.version.to_s }
  s.swift_version = "5.0"

  # The module (Swift + the Objective-C export), plus the UniFFI-generated Swift and the
  # bindings' wrappers that bindings/build-ios.sh writes to ios/generated/Sources.
  s.source_files = "ios/*.{swift,m}", "ios/generated/Sources/*.swift"
  s.exclude_files = "ios/Tests/**/*"
  # The Rust core: static libchatsync.a for device and simulator, with the chatsyncFFI module map.
  s.vendored_frameworks = "ios/generated/Chatsync.xcframework"
  s.frameworks = "BackgroundTasks", "UserNotifications", "Network", "Security"
  s.pod_target_xcconfig = { "DEFINES_MODULE" => "YES" }

  s.dependency "React-Core"
end
