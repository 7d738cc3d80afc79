//! A timeline: what one open screen of a room shows, and the diffs that keep the app's copy
//! equal to it. It owns its window: every message from its anchor (the oldest it shows) up to
//! the newest, contiguous, oldest first, with the room's queued echoes in place. It shows what
//! the store holds at once (offline too), pages backwards from its own anchor (the store first,
//! then the server), and after every change to its room re-reads its window and emits the
//! difference: new messages, echoes turning sent or failed, messages the server changed. Two
//! timelines of one room never disturb each other: each has its own anchor.
//!
//! A listener gets a `Reset` with the current items first, then lists of diffs, in order.

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::changes::{Change, Changes};
use crate::diff::diff;
use crate::error::{ChatError, Error, Result};
use crate::fanout::{Fanout, Subscription};
use crate::model::*;
use crate::reads::{check_limit, check_room_id, Reads};
use crate::shutdown::Shutdown;
use crate::sync::SyncService;

/// Implemented by the app (in Kotlin or Swift through the bindings) to hear a timeline.
pub trait TimelineListener: Send + Sync {
    /// Called on a thread of the listener's own, in order: first a `Reset` with the current
    /// items, then the diffs of every change (a list per change).
    fn on_update(&self, diffs: Vec<TimelineDiff>);
}

/// The window and what was last sent to listeners.
struct State {
    items: Vec<ChatMessage>,
    anchor: Option<u64>,
}

struct Inner {
    room_id: String,
    reads: Reads,
    sync: Arc<SyncService>,
    shutdown: Shutdown,
    /// Messages a new timeline shows before any pagination.
    initial: u32,
    state: Mutex<State>,
    fanout: Fanout<Vec<TimelineDiff>>,
    /// One pagination at a time (a second waits, then continues from where the first ended).
    paginating: tokio::sync::Mutex<()>,
}

/// One room's timeline. Dropping it stops it.
pub struct Timeline {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
    /// The client's runtime: pagination runs there, whatever executor awaits it.
    runtime: tokio::runtime::Handle,
}

impl Timeline {
    /// Opens the timeline of `room_id` showing the newest `initial` messages held.
    pub(crate) fn open(
        room_id: &str,
        reads: Reads,
        sync: Arc<SyncService>,
        changes: &Changes,
        shutdown: Shutdown,
        initial: u32,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Timeline> {
        check_room_id(room_id)?;
        shutdown.check()?;
        // Listening before the first read: no change can fall between the two.
        let mut rx = changes.subscribe();
        let window = reads.window(room_id, None, initial)?;
        let inner = Arc::new(Inner {
            room_id: room_id.to_owned(),
            reads,
            sync,
            shutdown: shutdown.clone(),
            initial,
            state: Mutex::new(State {
                items: window.items,
                anchor: window.anchor,
            }),
            fanout: Fanout::default(),
            paginating: tokio::sync::Mutex::new(()),
        });
        let task_inner = inner.clone();
        let task = runtime.spawn(async move {
            loop {
                let relevant = tokio::select! {
                    _ = task_inner.shutdown.triggered() => break,
                    change = rx.recv() => match change {
                        Ok(Change::Room(room)) => room == task_inner.room_id,
                        Ok(Change::Profiles) | Err(RecvError::Lagged(_)) => true,
                        Err(RecvError::Closed) => break,
                    },
                };
                if relevant {
                    if let Err(e) = task_inner.refresh() {
                        tracing::debug!("timeline of {} not refreshed: {e}", task_inner.room_id);
                    }
                }
            }
        });
        Ok(Timeline {
            inner,
            task,
            runtime: runtime.clone(),
        })
    }

    /// The room it shows.
    pub fn room_id(&self) -> String {
        self.inner.room_id.clone()
    }

    /// What it shows now, oldest first.
    pub fn items(&self) -> Vec<ChatMessage> {
        self.inner.lock().items.clone()
    }

    /// Registers `listener`: a `Reset` with the current items first, then the diffs of every
    /// change, until the subscription is cancelled or dropped.
    pub fn subscribe(&self, listener: Arc<dyn TimelineListener>) -> Subscription {
        let state = self.inner.lock();
        // Under the state lock: no refresh can slip in between the reset and the diffs.
        self.inner.fanout.subscribe(
            || {
                vec![vec![ListDiff::Reset {
                    items: state.items.clone(),
                }]]
            },
            move |diffs| listener.on_update(diffs),
        )
    }

    /// Shows up to `count` older messages: from the store while it holds them contiguously
    /// below the oldest shown, else one page from the server. Listeners get the new items as
    /// diffs; the outcome says how many were added and whether older ones exist still.
    pub async fn paginate_backwards(&self, count: u32) -> Result<PaginationOutcome, ChatError> {
        let inner = self.inner.clone();
        let shutdown = inner.shutdown.clone();
        let work = async move { shutdown.race(inner.paginate_backwards(count)).await };
        // Aborted when the caller stops waiting (a cancelled coroutine or Task).
        match crate::client::AbortOnDrop(self.runtime.spawn(work)).await {
            Ok(result) => result.map_err(ChatError::from),
            Err(e) if e.is_panic() => Err(Error::from_panic(e.into_panic()).into()),
            Err(_) => Err(ChatError::ShutDown),
        }
    }
}

impl Inner {
    async fn paginate_backwards(&self, count: u32) -> Result<PaginationOutcome> {
        let count = check_limit(count)?;
        let _one = self.paginating.lock().await;
        // The oldest item shown now: what the page adds is what comes before it afterwards
        // (new messages arriving meanwhile at the other end do not count).
        let first = self.lock().items.first().map(|m| m.id.clone());
        let anchor = self.lock().anchor;
        let mut has_more_on_server = None;
        let mut new_anchor = self.older_anchor(anchor, count)?;
        if new_anchor.is_none() {
            // Nothing held below the window (or a gap there): ask the server for a page.
            has_more_on_server = Some(self.sync.page_older(&self.room_id, anchor, count).await?);
            new_anchor = self.older_anchor(anchor, count)?;
        }
        if let Some(a) = new_anchor {
            self.lock().anchor = Some(a);
        }
        self.refresh()?;
        let after = self.lock();
        let has_more = match after.anchor {
            Some(a) => self.reads.has_older(&self.room_id, a)?,
            None => has_more_on_server.unwrap_or(false),
        };
        let added = match &first {
            Some(id) => after.items.iter().position(|m| &m.id == id).unwrap_or(0),
            None => after.items.len(),
        };
        Ok(PaginationOutcome {
            added: added as u32,
            has_more,
        })
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the window's anchor moves when it grows by up to `count` stored messages below
    /// `anchor` (the newest `count` when there is none); `None` when the store holds none there
    /// that can be shown (nothing below, or a gap).
    fn older_anchor(&self, anchor: Option<u64>, count: u32) -> Result<Option<u64>> {
        let store = self.reads.store()?;
        let page = self
            .reads
            .store_page(&store, &self.room_id, count, anchor)?;
        Ok(page.messages.last().map(|m| m.message.id))
    }

    /// Re-reads the window and sends listeners the difference.
    fn refresh(&self) -> Result<()> {
        if self.shutdown.is_triggered() {
            return Err(Error::ShutDown);
        }
        let mut state = self.lock();
        let window = self
            .reads
            .window(&self.room_id, state.anchor, self.initial)?;
        let diffs = diff(&state.items, &window.items, |m| m.id.clone());
        state.items = window.items;
        state.anchor = window.anchor;
        if !diffs.is_empty() {
            // Under the state lock: listeners get the diffs in the order the states changed.
            self.fanout.send(diffs);
        }
        Ok(())
    }
}

impl Drop for Timeline {
    fn drop(&mut self) {
        self.task.abort();
        self.inner.fanout.close_with(None);
    }
}

#[cfg(test)]
#[path = "timeline_model_tests.rs"]
mod model_tests;
