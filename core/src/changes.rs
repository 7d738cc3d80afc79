//! What changed in the store, for the views that render it (timelines, room lists). Services
//! announce a change after it is written; each view listens and re-reads what it shows. Internal
//! only: the app hears diffs from its views, and `ClientEvent`s from the client.

use tokio::sync::broadcast;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Messages, echoes or the record of a room changed.
    Room(String),
    /// Names or avatars changed (any room may show them).
    Profiles,
}

/// Changes waiting per listener before it has to catch up with a full re-read (see
/// [`broadcast`]'s lag): views re-read everything when they lag, so this only bounds memory.
const CAPACITY: usize = 256;

/// The sending side, shared by the services.
#[derive(Clone)]
pub(crate) struct Changes {
    tx: broadcast::Sender<Change>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes {
            tx: broadcast::channel(CAPACITY).0,
        }
    }

    /// Announces `change` (nobody listening is fine).
    pub fn send(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    /// Announces a change of each room in `rooms`.
    pub fn rooms<'a>(&self, rooms: impl IntoIterator<Item = &'a String>) {
        for room in rooms {
            self.send(Change::Room(room.clone()));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }
}
