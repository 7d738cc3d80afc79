//! chatsync-core: the engine that runs inside the apps.
//!
//! The app reads from the store, never from the network; the network only fills the store. So
//! every screen is the same online and offline, and "what is shown" is always "what is saved".
//!
//! Modules, one concern each:
//! - [`client`]: [`ChatClient`], the facade an app holds; owns the tokio runtime, store, engine.
//! - `engine`: the shared state behind the facade and the store-only reads the app renders.
//! - [`config`]: settings and their mobile defaults (small sled cache, probe timeouts, intervals).
//! - [`model`]: app-facing types (GiftedChat-shaped messages, rooms, reports).
//! - `api`: protocol v1 over reqwest; classifies failures as transient or permanent.
//! - `store`: sled trees with explicit key encodings and a format version.
//! - `sync`: applies `/v1/sync` batches atomically, fills gaps, pages older history.
//! - `outbox`: the durable send queue, its order, its backoff.
//! - `recovery`: rebuilding a damaged store, the outbox kept under its txn ids.
//! - `network`: reachability hint + probe -> Online / Offline / Unknown.
//! - `scheduler`: (app state x network status) -> what runs now.
//! - [`events`]: fan-out to listeners, never blocking the engine.
//! - [`error`]: the public error the app sees.

#![warn(missing_docs)]

mod api;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
pub mod client;
pub mod config;
mod engine;
pub mod error;
pub mod events;
mod lifecycle;
pub mod model;
mod network;
mod outbox;
mod recovery;
mod scheduler;
mod store;
mod sync;

pub use client::ChatClient;
pub use config::{ClientConfig, ProbeConfig, ProbeMethod, TokenProvider, TokenSource};
pub use error::ChatError;
pub use events::{ClientEvent, ClientListener, Subscription};
pub use lifecycle::background_sync_at;
pub use model::*;
pub use recovery::{RecoveryMethod, RecoveryReport};
