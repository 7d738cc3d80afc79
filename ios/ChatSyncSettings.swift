// The configure() options and the logged-in user, persisted so the background task can open
// the store when iOS launches the app for a refresh, without any JS running. Plain settings go to
// UserDefaults; tokens go to the Keychain (where the Security framework exists: Apple platforms).

import Foundation
#if canImport(Security)
import Security
#endif

/// Where tokens are kept.
protocol ChatSyncSecretStore: AnyObject {
    func secret(_ key: String) -> String?
    func setSecret(_ value: String?, for key: String)
}

#if canImport(Security)
/// Tokens in the Keychain, readable after the first unlock (background launches happen then).
final class KeychainSecretStore: ChatSyncSecretStore {
    private let service = "dev.chatsync.reactnative"

    private func query(_ key: String) -> [String: Any] {
        [kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service, kSecAttrAccount as String: key]
    }

    func secret(_ key: String) -> String? {
        var q = query(key)
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        guard SecItemCopyMatching(q as CFDictionary, &item) == errSecSuccess, let data = item as? Data else { return nil }
        return String(data: data, encoding: .utf8)
    }

    func setSecret(_ value: String?, for key: String) {
        SecItemDelete(query(key) as CFDictionary)
        guard let value else { return }
        var q = query(key)
        q[kSecValueData as String] = Data(value.utf8)
        q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        SecItemAdd(q as CFDictionary, nil)
    }
}
#endif

/// Secrets in memory only: for platforms without a Keychain (the Linux tests).
final class InMemorySecretStore: ChatSyncSecretStore {
    private var values: [String: String] = [:]
    func secret(_ key: String) -> String? { values[key] }
    func setSecret(_ value: String?, for key: String) { values[key] = value }
}

/// Persistent settings of the module.
final class ChatSyncSettings {
    private static let optionPrefix = "dev.chatsync.option."
    private static let userIdKey = "dev.chatsync.user.id"
    private static let secretKeys: Set<String> = ["authToken"]

    private let defaults: UserDefaults
    private let secrets: ChatSyncSecretStore

    init(defaults: UserDefaults = .standard, secrets: ChatSyncSecretStore? = nil) {
        self.defaults = defaults
        #if canImport(Security)
        self.secrets = secrets ?? KeychainSecretStore()
        #else
        self.secrets = secrets ?? InMemorySecretStore()
        #endif
    }

    /// The last configure() options, or nil before the first configure().
    func options() -> ChatSyncOptions? {
        var stored: [String: String] = [:]
        for (key, value) in defaults.dictionaryRepresentation() where key.hasPrefix(Self.optionPrefix) {
            if let s = value as? String { stored[String(key.dropFirst(Self.optionPrefix.count))] = s }
        }
        for key in Self.secretKeys { stored[key] = secrets.secret(Self.optionPrefix + key) }
        return ChatSyncOptions.fromStored(stored)
    }

    /// Replaces the stored options.
    func saveOptions(_ options: ChatSyncOptions) {
        for key in defaults.dictionaryRepresentation().keys where key.hasPrefix(Self.optionPrefix) {
            defaults.removeObject(forKey: key)
        }
        let stored = options.toStored()
        for (key, value) in stored where !Self.secretKeys.contains(key) {
            defaults.set(value, forKey: Self.optionPrefix + key)
        }
        for key in Self.secretKeys { secrets.setSecret(stored[key], for: Self.optionPrefix + key) }
    }

    /// The logged-in user, or nil.
    func user() -> StoredUser? {
        guard let id = defaults.string(forKey: Self.userIdKey) else { return nil }
        return StoredUser(id: id, token: secrets.secret("dev.chatsync.user.token"))
    }

    /// Remembers the logged-in user (the token in the secret store).
    func saveUser(_ user: StoredUser) {
        defaults.set(user.id, forKey: Self.userIdKey)
        secrets.setSecret(user.token, for: "dev.chatsync.user.token")
    }

    /// Forgets the logged-in user (logout). The user's store stays on disk.
    func clearUser() {
        defaults.removeObject(forKey: Self.userIdKey)
        secrets.setSecret(nil, for: "dev.chatsync.user.token")
    }
}
