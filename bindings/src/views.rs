//! The views a screen renders from: [`Timeline`] (one open room) and [`RoomList`], each a thin
//! wrapper of its core twin, with the foreign listener traits the app implements and the diff
//! enums they receive.
//!
//! A listener gets a `Reset` with the current items first, then a list of diffs per change;
//! applying them in order keeps the app's copy equal to the view's `items()` / `rooms()`. UniFFI
//! has no generics, so the core's `ListDiff<T>` is two enums here, [`TimelineDiff`] and
//! [`RoomListDiff`], made by one macro. Applying diffs is left to Kotlin and Swift
//! (`ChatClientFlows.kt`, `ChatsyncExtensions.swift`, a few lines each): an exported "apply"
//! would copy the whole list across the FFI twice per update (docs/adr/0013).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::{guard, guard_async, guard_infallible, ChatError};
use crate::events::Subscription;
use crate::model::{convert_all, ChatMessage, PaginationOutcome, RoomSummary};

/// Defines a UniFFI enum of list diffs over `$item` and its conversion from the core's
/// `ListDiff<$core>`.
macro_rules! list_diff {
    ($(#[$doc:meta])* $name:ident, $item:ty, $core:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, uniffi::Enum)]
        pub enum $name {
            /// Replace everything with `items` (the first update a listener gets, and after a
            /// jump).
            Reset {
                /// The whole list.
                items: Vec<$item>,
            },
            /// Add at the end.
            PushBack {
                /// The new item.
                item: $item,
            },
            /// Add at the start.
            PushFront {
                /// The new item.
                item: $item,
            },
            /// Add at `index`, shifting the rest back.
            Insert {
                /// Where (a position in the list as it is when this diff applies).
                index: u32,
                /// The new item.
                item: $item,
            },
            /// Replace the item at `index` (same identity, new content: an echo turned sent).
            Set {
                /// Where.
                index: u32,
                /// The new content.
                item: $item,
            },
            /// Remove the item at `index`.
            Remove {
                /// Where.
                index: u32,
            },
        }

        impl From<chatsync_core::ListDiff<$core>> for $name {
            fn from(d: chatsync_core::ListDiff<$core>) -> Self {
                use chatsync_core::ListDiff as D;
                match d {
                    D::Reset { items } => $name::Reset {
                        items: convert_all(items),
                    },
                    D::PushBack { item } => $name::PushBack { item: item.into() },
                    D::PushFront { item } => $name::PushFront { item: item.into() },
                    D::Insert { index, item } => $name::Insert {
                        index,
                        item: item.into(),
                    },
                    D::Set { index, item } => $name::Set {
                        index,
                        item: item.into(),
                    },
                    D::Remove { index } => $name::Remove { index },
                }
            }
        }
    };
}

list_diff!(
    /// A change to a timeline's items (oldest first). Applied in order to the app's copy, the
    /// diffs keep it equal to `Timeline.items()`.
    TimelineDiff,
    ChatMessage,
    chatsync_core::ChatMessage
);

list_diff!(
    /// A change to the room list (most recently active first). Applied in order to the app's
    /// copy, the diffs keep it equal to `RoomList.rooms()`.
    RoomListDiff,
    RoomSummary,
    chatsync_core::RoomSummary
);

/// Implemented by the app to hear a timeline. Called on a background thread of its own, one
/// update at a time, in order: first `[Reset]` with the current items, then the diffs of every
/// change. Return quickly (hand the diffs to the UI thread).
#[uniffi::export(foreign)]
pub trait TimelineListener: Send + Sync {
    /// One change: the diffs to apply, in order.
    fn on_update(&self, diffs: Vec<TimelineDiff>);
}

/// Implemented by the app to hear the room list; called like [`TimelineListener`].
#[uniffi::export(foreign)]
pub trait RoomListListener: Send + Sync {
    /// One change: the diffs to apply, in order.
    fn on_update(&self, diffs: Vec<RoomListDiff>);
}

struct TimelineListenerAdapter(Arc<dyn TimelineListener>);

impl chatsync_core::TimelineListener for TimelineListenerAdapter {
    fn on_update(&self, diffs: Vec<chatsync_core::TimelineDiff>) {
        // A foreign listener that throws surfaces as a panic in the generated callback code;
        // keep it out of the core's listener thread.
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.on_update(convert_all(diffs))));
    }
}

struct RoomListListenerAdapter(Arc<dyn RoomListListener>);

impl chatsync_core::RoomListListener for RoomListListenerAdapter {
    fn on_update(&self, diffs: Vec<chatsync_core::RoomListDiff>) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.on_update(convert_all(diffs))));
    }
}

/// What one open screen of a room shows: the newest messages held at first (offline too),
/// oldest first, with the diffs of every change (new messages, echoes turning sent or failed)
/// and pagination backwards from what it shows. The way to render a room. Each screen opens its
/// own; closing (Kotlin `close()`, Swift: the last reference) stops it.
#[derive(uniffi::Object)]
pub struct Timeline {
    inner: Arc<chatsync_core::Timeline>,
}

impl Timeline {
    pub(crate) fn new(inner: Arc<chatsync_core::Timeline>) -> Self {
        Timeline { inner }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Timeline {
    /// The room it shows.
    pub fn room_id(&self) -> Result<String, ChatError> {
        guard_infallible(|| self.inner.room_id())
    }

    /// What it shows now, oldest first.
    pub fn items(&self) -> Result<Vec<ChatMessage>, ChatError> {
        guard_infallible(|| self.inner.items()).map(convert_all)
    }

    /// Subscribes `listener`: `[Reset]` with the current items first, then the diffs of every
    /// change, until the returned handle is cancelled or dropped.
    pub fn subscribe(
        &self,
        listener: Arc<dyn TimelineListener>,
    ) -> Result<Arc<Subscription>, ChatError> {
        let adapter: Arc<dyn chatsync_core::TimelineListener> =
            Arc::new(TimelineListenerAdapter(listener));
        guard(|| Ok(self.inner.subscribe(adapter)))
            .map(|s| Arc::new(Subscription::new(Arc::new(s))))
    }

    /// Shows up to `count` older messages: from the store while it holds them, else one page
    /// from the server. Listeners get them as diffs; the outcome says how many were added and
    /// whether older ones exist still. Pages continue from what the timeline shows, so they
    /// never repeat.
    pub async fn paginate_backwards(&self, count: u32) -> Result<PaginationOutcome, ChatError> {
        guard_async(self.inner.paginate_backwards(count))
            .await
            .map(Into::into)
    }
}

/// The rooms held on the device with their last message, most recently active first, and the
/// diffs of every change (a room moves to the top when a message arrives).
#[derive(uniffi::Object)]
pub struct RoomList {
    inner: Arc<chatsync_core::RoomList>,
}

impl RoomList {
    pub(crate) fn new(inner: Arc<chatsync_core::RoomList>) -> Self {
        RoomList { inner }
    }
}

#[uniffi::export]
impl RoomList {
    /// The rooms now, most recently active first.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        guard_infallible(|| self.inner.rooms()).map(convert_all)
    }

    /// Subscribes `listener`: `[Reset]` with the current rooms first, then the diffs of every
    /// change, until the returned handle is cancelled or dropped.
    pub fn subscribe(
        &self,
        listener: Arc<dyn RoomListListener>,
    ) -> Result<Arc<Subscription>, ChatError> {
        let adapter: Arc<dyn chatsync_core::RoomListListener> =
            Arc::new(RoomListListenerAdapter(listener));
        guard(|| Ok(self.inner.subscribe(adapter)))
            .map(|s| Arc::new(Subscription::new(Arc::new(s))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> chatsync_core::ChatMessage {
        chatsync_core::ChatMessage {
            id: id.into(),
            server_id: id.parse().ok(),
            local_id: None,
            room_id: "r1".into(),
            sender: chatsync_core::ChatUser {
                id: "alice".into(),
                name: "Alice".into(),
                avatar_url: None,
            },
            text: format!("text {id}"),
            parts: vec![],
            created_at: "2026-12-02T10:00:00.000Z".into(),
            state: chatsync_core::MessageState::Sent,
            failure_reason: None,
            edited_at: None,
            deleted: false,
            reactions: vec![],
            read_by: vec![],
            pending_change: false,
        }
    }

    #[test]
    fn every_diff_converts_to_its_case_with_its_index_and_item() {
        use chatsync_core::ListDiff as D;
        let m = message("7");
        let ffi = ChatMessage::from(m.clone());
        let cases = [
            (
                D::Reset {
                    items: vec![m.clone()],
                },
                TimelineDiff::Reset {
                    items: vec![ffi.clone()],
                },
            ),
            (
                D::PushBack { item: m.clone() },
                TimelineDiff::PushBack { item: ffi.clone() },
            ),
            (
                D::PushFront { item: m.clone() },
                TimelineDiff::PushFront { item: ffi.clone() },
            ),
            (
                D::Insert {
                    index: 3,
                    item: m.clone(),
                },
                TimelineDiff::Insert {
                    index: 3,
                    item: ffi.clone(),
                },
            ),
            (
                D::Set {
                    index: 2,
                    item: m.clone(),
                },
                TimelineDiff::Set {
                    index: 2,
                    item: ffi.clone(),
                },
            ),
            (D::Remove { index: 5 }, TimelineDiff::Remove { index: 5 }),
        ];
        for (core, expected) in cases {
            assert_eq!(TimelineDiff::from(core), expected);
        }
    }

    struct Throwing;
    impl TimelineListener for Throwing {
        fn on_update(&self, _diffs: Vec<TimelineDiff>) {
            panic!("listener threw");
        }
    }

    #[test]
    fn a_throwing_timeline_listener_does_not_unwind_into_the_core() {
        use chatsync_core::TimelineListener as _;
        TimelineListenerAdapter(Arc::new(Throwing))
            .on_update(vec![chatsync_core::ListDiff::Remove { index: 0 }]);
    }
}
