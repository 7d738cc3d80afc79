//! The secret-store contract: where the host keeps bearer tokens. One foreign trait, implemented
//! by each OS with what it has for secrets (Android: a value encrypted with a key of the Android
//! Keystore, in an app-private file excluded from backup; iOS: the Keychain, this device only),
//! so the host logic that decides *what* is secret ([`crate::host`]) is written once and the
//! tokens never reach the plain settings file.

use std::sync::Arc;

/// Why a secret store failed. The host treats a store it cannot read as "nothing stored" for the
/// background task (which then does not run) and reports it to JS as `E_STORAGE` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SecretStoreError {
    /// The store cannot be used now (Keychain locked before the first unlock, Keystore key
    /// invalidated, I/O).
    #[error("secret store unavailable: {reason}")]
    Unavailable {
        /// What happened, in words.
        reason: String,
    },
}

/// An exception of another type thrown by the foreign store: `Unavailable` with its first line
/// (no stack trace in an app's error text).
impl From<uniffi::UnexpectedUniFFICallbackError> for SecretStoreError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SecretStoreError::Unavailable {
            reason: error.reason.lines().next().unwrap_or("").trim().to_owned(),
        }
    }
}

/// Implemented by the app's platform code to keep secrets (tokens) at rest. Called on a
/// background thread; it may block on disk or on the OS's key store.
#[uniffi::export(foreign)]
pub trait SecretStore: Send + Sync {
    /// The value stored under `key`, or `None`.
    fn get(&self, key: String) -> Result<Option<String>, SecretStoreError>;
    /// Stores `value` under `key`, replacing any older value.
    fn set(&self, key: String, value: String) -> Result<(), SecretStoreError>;
    /// Removes `key` (no error when absent).
    fn remove(&self, key: String) -> Result<(), SecretStoreError>;
}

/// A secret store in memory, for tests and for hosts that must not persist tokens.
#[derive(Default)]
pub struct MemorySecretStore {
    values: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl SecretStore for MemorySecretStore {
    fn get(&self, key: String) -> Result<Option<String>, SecretStoreError> {
        Ok(self.values.lock().unwrap().get(&key).cloned())
    }
    fn set(&self, key: String, value: String) -> Result<(), SecretStoreError> {
        self.values.lock().unwrap().insert(key, value);
        Ok(())
    }
    fn remove(&self, key: String) -> Result<(), SecretStoreError> {
        self.values.lock().unwrap().remove(&key);
        Ok(())
    }
}

/// Writes `value` under `key`, or removes the key when `value` is `None`.
pub(crate) fn put(
    store: &Arc<dyn SecretStore>,
    key: &str,
    value: Option<&str>,
) -> Result<(), SecretStoreError> {
    match value {
        Some(v) => store.set(key.to_owned(), v.to_owned()),
        None => store.remove(key.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_exception_is_unavailable_with_its_first_line() {
        let error = SecretStoreError::from(uniffi::UnexpectedUniFFICallbackError {
            reason: "java.security.KeyStoreException: key invalidated\n\tat x.y(Z.kt:1)".into(),
        });
        assert_eq!(
            error.to_string(),
            "secret store unavailable: java.security.KeyStoreException: key invalidated"
        );
    }

    #[test]
    fn put_sets_and_removes() {
        let store: Arc<dyn SecretStore> = Arc::new(MemorySecretStore::default());
        put(&store, "k", Some("v")).unwrap();
        assert_eq!(store.get("k".into()).unwrap().as_deref(), Some("v"));
        put(&store, "k", None).unwrap();
        assert_eq!(store.get("k".into()).unwrap(), None);
    }
}
