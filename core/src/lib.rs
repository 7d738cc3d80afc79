//! chatsync-core: the engine that runs inside the apps.
//!
//! The app reads from the store, never from the network; the network only fills the store. So
//! every screen is the same online and offline, and "what is shown" is always "what is saved".
//! Data flows one way: server, sync service, store, views (timelines, room list) and events,
//! app; and back: app, send queue, server.
//!
//! Modules, one concern each:
//! - [`client`]: [`ChatClient`], the thin facade an app holds: it builds the services and runs
//!   each call on its runtime, raced against the shutdown.
//! - `sync`: the sync service: the token, applying answers atomically, gaps, history pages.
//! - `send_queue`: the durable send queue, its order per room, its one backoff, its flushes.
//! - `lifecycle`: network status, app state, the scheduler, the one sync-status state machine.
//! - [`timeline`], [`room_list`]: the views a screen renders from: a window over the store
//!   and the diffs of every change.
//! - `reads`: pure store reads for rendering (no cursor, no hidden state).
//! - `api`: the protocol over reqwest; classifies failures as transient or permanent.
//! - `store`: sled trees with their own types, explicit key encodings, a format version, a
//!   crash-safe open; `recovery` rebuilds a damaged one.
//! - `network`: reachability hint + probe -> Online / Offline / Unknown.
//! - `scheduler`: (app state x network status) -> what runs now.
//! - [`events`], `fanout`, `changes`, `diff`, `shutdown`: delivery to listeners, change
//!   notices for the views, list diffs, the shutdown signal.
//! - [`config`]: settings and their mobile defaults.
//! - [`model`]: what a chat is, as the API shows it.
//! - [`error`]: the internal error and the one public error, mapped once.

#![warn(missing_docs)]

mod api;
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals;
mod changes;
pub mod client;
pub mod config;
mod diff;
pub mod error;
pub mod events;
mod fanout;
mod lifecycle;
pub mod model;
mod network;
mod reads;
mod recovery;
pub mod room_list;
mod scheduler;
mod send_queue;
mod shutdown;
mod store;
mod sync;
pub mod timeline;

pub use client::ChatClient;
pub use config::{ClientConfig, ProbeConfig, ProbeMethod, TokenProvider, TokenSource};
pub use diff::apply as apply_diffs;
pub use error::{ChatError, TokenError};
pub use events::{ClientEvent, ClientListener};
pub use fanout::Subscription;
pub use lifecycle::background_sync_at;
pub use model::*;
pub use recovery::{RecoveryMethod, RecoveryReport};
pub use room_list::{RoomList, RoomListListener};
pub use timeline::{Timeline, TimelineListener};
