//! Hooks for the cross-language tests only (cargo feature `selftest`, never in an app build):
//! they prove at the Kotlin and Swift level what the Rust unit tests prove in Rust.

use crate::error::{guard, guard_async, ChatError};

/// Panics inside the library; returns `ChatError.Internal` carrying `message`.
#[uniffi::export]
pub fn selftest_panic(message: String) -> Result<(), ChatError> {
    guard(|| panic!("{message}"))
}

/// Panics inside an async call after its first poll; returns `ChatError.Internal`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn selftest_panic_async(message: String) -> Result<(), ChatError> {
    guard_async(async move {
        tokio::task::yield_now().await;
        panic!("{message}")
    })
    .await
}
