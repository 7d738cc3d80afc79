// The secret store of the Rust host on iOS: the Keychain, readable after the first unlock (a
// background refresh happens then), this device only (not in backups, not migrated).
// Apple-only (Security): compiled by Xcode, not by the Linux check.

#if canImport(Security)
import Foundation
import Security

/// Tokens in the Keychain (the `SecretStore` contract of the bindings).
public final class KeychainSecretStore: SecretStore, @unchecked Sendable {
    private let service = "dev.chatsync.reactnative"

    public init() {}

    private func query(_ key: String) -> [String: Any] {
        [kSecClass as String: kSecClassGenericPassword, kSecAttrService as String: service, kSecAttrAccount as String: key]
    }

    private func failure(_ status: OSStatus, _ what: String) -> SecretStoreError {
        .Unavailable(reason: "Keychain \(what) failed with status \(status)")
    }

    public func get(key: String) throws -> String? {
        var q = query(key)
        q[kSecReturnData as String] = true
        q[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(q as CFDictionary, &item)
        if status == errSecItemNotFound { return nil }
        guard status == errSecSuccess, let data = item as? Data else { throw failure(status, "read") }
        return String(data: data, encoding: .utf8)
    }

    public func set(key: String, value: String) throws {
        try remove(key: key)
        var q = query(key)
        q[kSecValueData as String] = Data(value.utf8)
        q[kSecAttrAccessible as String] = kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly
        let status = SecItemAdd(q as CFDictionary, nil)
        guard status == errSecSuccess else { throw failure(status, "write") }
    }

    public func remove(key: String) throws {
        let status = SecItemDelete(query(key) as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else { throw failure(status, "delete") }
    }
}
#endif
