//! The room list: the app's rooms with their last message, most recently active first, and the
//! diffs that keep the app's copy equal to it. Like a [`crate::Timeline`], it re-reads after every
//! change to the store and emits the difference (a room moves to the top when a message arrives).

use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::changes::Changes;
use crate::diff::diff;
use crate::error::Result;
use crate::fanout::{Fanout, Subscription};
use crate::model::*;
use crate::reads::Reads;
use crate::shutdown::Shutdown;

/// Implemented by the app (in Kotlin or Swift through the bindings) to hear the room list.
pub trait RoomListListener: Send + Sync {
    /// Called on a thread of the listener's own, in order: first a `Reset` with the current
    /// rooms, then the diffs of every change.
    fn on_update(&self, diffs: Vec<RoomListDiff>);
}

struct Inner {
    reads: Reads,
    rooms: Mutex<Vec<RoomSummary>>,
    fanout: Fanout<Vec<RoomListDiff>>,
}

/// The room list. Dropping it stops it.
pub struct RoomList {
    inner: Arc<Inner>,
    task: JoinHandle<()>,
}

impl RoomList {
    pub(crate) fn open(
        reads: Reads,
        changes: &Changes,
        shutdown: Shutdown,
        runtime: &tokio::runtime::Handle,
    ) -> Result<RoomList> {
        shutdown.check()?;
        let mut rx = changes.subscribe();
        let inner = Arc::new(Inner {
            rooms: Mutex::new(reads.rooms()?),
            reads,
            fanout: Fanout::default(),
        });
        let task_inner = inner.clone();
        let task = runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.triggered() => break,
                    change = rx.recv() => match change {
                        Ok(_) | Err(RecvError::Lagged(_)) => {
                            if let Err(e) = task_inner.refresh() {
                                tracing::debug!("room list not refreshed: {e}");
                            }
                        }
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
        Ok(RoomList { inner, task })
    }

    /// The rooms now, most recently active first.
    pub fn rooms(&self) -> Vec<RoomSummary> {
        self.inner.lock().clone()
    }

    /// Registers `listener`: a `Reset` with the current rooms first, then the diffs of every
    /// change, until the subscription is cancelled or dropped.
    pub fn subscribe(&self, listener: Arc<dyn RoomListListener>) -> Subscription {
        let rooms = self.inner.lock();
        self.inner.fanout.subscribe(
            || {
                vec![vec![ListDiff::Reset {
                    items: rooms.clone(),
                }]]
            },
            move |diffs| listener.on_update(diffs),
        )
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RoomSummary>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refresh(&self) -> Result<()> {
        let mut rooms = self.lock();
        let now = self.reads.rooms()?;
        let diffs = diff(&rooms, &now, |r| r.id.clone());
        *rooms = now;
        if !diffs.is_empty() {
            self.fanout.send(diffs);
        }
        Ok(())
    }
}

impl Drop for RoomList {
    fn drop(&mut self) {
        self.task.abort();
        self.inner.fanout.close_with(None);
    }
}
