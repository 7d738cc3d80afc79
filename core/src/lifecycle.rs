//! The lifecycle half of [`ChatClient`]: network status, app state, the scheduler that decides
//! what runs now, and the time-boxed one-shot sync for OS background tasks. Kept in its own
//! module (a second `impl ChatClient` block) so the engine (store, sync, outbox) and the
//! scheduling policy evolve separately.

use std::sync::Arc;

use crate::client::ChatClient;
use crate::model::*;

/// Scheduler and network-monitor state held by every [`ChatClient`].
pub(crate) struct Lifecycle {
    // filled in by the implementation
}

impl ChatClient {
    /// Starts the scheduler (probe, live long-poll, background timer). Idempotent.
    pub fn start(self: &Arc<Self>) { todo!() }
    /// The platform's reachability hint (Android ConnectivityManager, iOS NWPathMonitor).
    pub fn set_network_reachable(&self, reachable: bool) { let _ = reachable; todo!() }
    /// The app's lifecycle state; the scheduler adapts at once.
    pub fn set_app_state(&self, state: AppState) { let _ = state; todo!() }
    pub fn network_status(&self) -> NetworkStatus { todo!() }
    /// Stops everything; after it returns no task runs and no request is made.
    pub fn shutdown(&self) { todo!() }
    /// Time-boxed sync + flush for OS background tasks; always returns within `budget_ms`.
    pub async fn background_sync(&self, budget_ms: u64) -> BackgroundSyncReport { let _ = budget_ms; todo!() }
}
