//! The client's events: status changes and message changes, fanned out to the app's listeners
//! (see [`crate::fanout`]: a slow or panicking listener blocks nobody). A new listener gets the
//! current state first (network, sync, outbox), then every change; repeated states are sent
//! once; after `Stopped` nothing more is sent to anyone.

use std::sync::{Arc, Mutex};

use crate::fanout::{Fanout, Subscription};
use crate::model::{NetworkStatus, SyncState};

/// A change the app may want to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Messages of a room were added, replaced (echo -> sent) or removed. `ids` are message ids
    /// (server ids as strings, local ids for messages sent from this device). A screen renders
    /// from a [`crate::Timeline`]; this event is for everything else (a badge, a log).
    MessagesChanged {
        /// The room.
        room_id: String,
        /// The ids that changed; an echo replaced by its sent message lists both.
        ids: Vec<String>,
    },
    /// The network monitor's status changed (sent once per real change).
    NetworkStatusChanged {
        /// The new status.
        status: NetworkStatus,
    },
    /// The sync state changed (sent once per real change; `Stopped` is the last event).
    SyncStateChanged {
        /// The new state.
        state: SyncState,
    },
    /// The number of pending or failed outbox entries changed.
    OutboxChanged {
        /// Entries waiting to be sent.
        pending: u32,
        /// Entries rejected for good, waiting for retry or discard.
        failed: u32,
    },
    /// Who is typing in a room changed (the user excluded). Ephemeral: not stored.
    TypingChanged {
        /// The room.
        room_id: String,
        /// Members typing now.
        user_ids: Vec<String>,
    },
    /// The user's total of unread messages over all rooms changed (the app badge).
    UnreadChanged {
        /// Unread messages in all rooms.
        total: u32,
    },
    /// The server refused the token and the token source had no better one: the app should sign
    /// the user in again. Sent once per streak of refusals (again after a request succeeded).
    Unauthorized {
        /// The server's (or the provider's) reason.
        reason: String,
    },
}

/// Implemented by the app (in Kotlin or Swift through the bindings).
pub trait ClientListener: Send + Sync {
    /// Called on a thread of the listener's own, one event at a time, in order.
    fn on_event(&self, event: ClientEvent);
}

/// The state a new listener starts from.
struct Snapshot {
    network: NetworkStatus,
    sync: SyncState,
    outbox: (u32, u32),
    /// Inside a streak of refused tokens.
    unauthorized: bool,
    /// The last unread total sent.
    unread: u32,
}

/// The core's side of the events: `emit` never blocks on a listener.
#[derive(Clone)]
pub(crate) struct EventHub {
    fanout: Fanout<ClientEvent>,
    snapshot: Arc<Mutex<Snapshot>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            fanout: Fanout::default(),
            snapshot: Arc::new(Mutex::new(Snapshot {
                network: NetworkStatus::Unknown,
                sync: SyncState::Idle,
                outbox: (0, 0),
                unauthorized: false,
                unread: 0,
            })),
        }
    }
}

impl EventHub {
    /// Queues `event` for every listener. A status equal to the last one sent is dropped, so
    /// listeners see each real change once. After `Stopped` nothing is sent.
    pub fn emit(&self, event: ClientEvent) {
        let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if snap.sync == SyncState::Stopped {
            return;
        }
        match &event {
            ClientEvent::NetworkStatusChanged { status } => {
                if snap.network == *status {
                    return;
                }
                snap.network = *status;
            }
            ClientEvent::SyncStateChanged { state } => {
                if snap.sync == *state {
                    return;
                }
                snap.sync = *state;
                if *state == SyncState::Stopped {
                    self.fanout.close_with(Some(event));
                    return;
                }
            }
            ClientEvent::OutboxChanged { pending, failed } => {
                if snap.outbox == (*pending, *failed) {
                    return;
                }
                snap.outbox = (*pending, *failed);
            }
            ClientEvent::Unauthorized { .. } => {
                if snap.unauthorized {
                    return;
                }
                snap.unauthorized = true;
            }
            ClientEvent::UnreadChanged { total } => {
                if snap.unread == *total {
                    return;
                }
                snap.unread = *total;
            }
            ClientEvent::MessagesChanged { ids, .. } if ids.is_empty() => return,
            ClientEvent::MessagesChanged { .. } | ClientEvent::TypingChanged { .. } => {}
        }
        self.fanout.send(event);
    }

    /// A request succeeded: the next refused token starts a new streak (and a new event).
    pub fn note_authorized(&self) {
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unauthorized = false;
    }

    /// The current sync state.
    pub fn sync_state(&self) -> SyncState {
        self.snapshot.lock().unwrap_or_else(|p| p.into_inner()).sync
    }

    /// Registers `listener`: it first receives the current network, sync and outbox state, then
    /// every change, until the returned subscription is cancelled or dropped. After `Stopped`
    /// it receives `Stopped` only.
    pub fn subscribe(&self, listener: Arc<dyn ClientListener>) -> Subscription {
        let snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        let first = || {
            if snap.sync == SyncState::Stopped {
                return vec![ClientEvent::SyncStateChanged {
                    state: SyncState::Stopped,
                }];
            }
            vec![
                ClientEvent::NetworkStatusChanged {
                    status: snap.network,
                },
                ClientEvent::SyncStateChanged { state: snap.sync },
                ClientEvent::OutboxChanged {
                    pending: snap.outbox.0,
                    failed: snap.outbox.1,
                },
                ClientEvent::UnreadChanged { total: snap.unread },
            ]
        };
        // Under the snapshot lock: no change can slip in between the state and the changes.
        self.fanout
            .subscribe(first, move |event| listener.on_event(event))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use std::sync::mpsc;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        events: Mutex<Vec<ClientEvent>>,
    }

    impl ClientListener for Recorder {
        fn on_event(&self, event: ClientEvent) {
            self.events.lock().unwrap().push(event);
        }
    }

    fn wait_until(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::yield_now();
        }
        cond()
    }

    fn changed(id: &str) -> ClientEvent {
        ClientEvent::MessagesChanged {
            room_id: "r".into(),
            ids: vec![id.into()],
        }
    }

    #[test]
    fn current_state_comes_first_then_changes_in_order() {
        let hub = EventHub::default();
        hub.emit(ClientEvent::NetworkStatusChanged {
            status: NetworkStatus::Online,
        });
        let rec = Arc::new(Recorder::default());
        let _sub = hub.subscribe(rec.clone());
        hub.emit(changed("1"));
        hub.emit(changed("2"));
        assert!(wait_until(Duration::from_secs(5), || rec
            .events
            .lock()
            .unwrap()
            .len()
            == 6));
        let events = rec.events.lock().unwrap().clone();
        assert_eq!(
            events[0],
            ClientEvent::NetworkStatusChanged {
                status: NetworkStatus::Online
            }
        );
        assert_eq!(
            events[1],
            ClientEvent::SyncStateChanged {
                state: SyncState::Idle
            }
        );
        assert_eq!(
            events[2],
            ClientEvent::OutboxChanged {
                pending: 0,
                failed: 0
            }
        );
        assert_eq!(events[3], ClientEvent::UnreadChanged { total: 0 });
        assert_eq!(&events[4..], &[changed("1"), changed("2")]);
    }

    #[test]
    fn repeated_status_is_sent_once() {
        let hub = EventHub::default();
        let rec = Arc::new(Recorder::default());
        let _sub = hub.subscribe(rec.clone());
        for _ in 0..3 {
            hub.emit(ClientEvent::NetworkStatusChanged {
                status: NetworkStatus::Offline,
            });
        }
        hub.emit(changed("end"));
        assert!(wait_until(Duration::from_secs(5), || rec
            .events
            .lock()
            .unwrap()
            .last()
            == Some(&changed("end"))));
        let offline = rec
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                **e == ClientEvent::NetworkStatusChanged {
                    status: NetworkStatus::Offline,
                }
            })
            .count();
        assert_eq!(offline, 1);
    }

    struct Blocking {
        gate: Mutex<mpsc::Receiver<()>>,
    }

    impl ClientListener for Blocking {
        fn on_event(&self, _: ClientEvent) {
            let _ = self.gate.lock().unwrap().recv();
        }
    }

    struct Panicking;

    impl ClientListener for Panicking {
        fn on_event(&self, _: ClientEvent) {
            panic!("listener bug");
        }
    }

    #[test]
    fn a_stuck_or_panicking_listener_blocks_nobody() {
        let hub = EventHub::default();
        let (open_gate, gate) = mpsc::channel();
        let _stuck = hub.subscribe(Arc::new(Blocking {
            gate: Mutex::new(gate),
        }));
        let _panics = hub.subscribe(Arc::new(Panicking));
        let rec = Arc::new(Recorder::default());
        let _ok = hub.subscribe(rec.clone());
        // emit returns at once even though one listener never returns.
        for i in 0..1000 {
            hub.emit(changed(&i.to_string()));
        }
        assert!(wait_until(Duration::from_secs(5), || rec
            .events
            .lock()
            .unwrap()
            .len()
            == 1004));
        drop(open_gate);
    }

    #[test]
    fn cancel_and_drop_stop_delivery() {
        let hub = EventHub::default();
        let rec = Arc::new(Recorder::default());
        let sub = hub.subscribe(rec.clone());
        assert!(wait_until(Duration::from_secs(5), || rec
            .events
            .lock()
            .unwrap()
            .len()
            == 4));
        sub.cancel();
        hub.emit(changed("after cancel"));
        let rec2 = Arc::new(Recorder::default());
        drop(hub.subscribe(rec2.clone()));
        hub.emit(changed("after drop"));
        assert_eq!(hub.fanout.listener_count(), 0);
        assert!(!rec
            .events
            .lock()
            .unwrap()
            .contains(&changed("after cancel")));
        assert!(!rec2.events.lock().unwrap().contains(&changed("after drop")));
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<ClientEvent>>);

    impl ClientListener for Recorder {
        fn on_event(&self, event: ClientEvent) {
            self.0.lock().unwrap().push(event);
        }
    }

    #[test]
    fn stopped_is_the_last_event_and_a_new_listener_hears_only_stopped() {
        let hub = EventHub::default();
        let rec = Arc::new(Recorder::default());
        let _sub = hub.subscribe(rec.clone());
        hub.emit(ClientEvent::SyncStateChanged {
            state: SyncState::Stopped,
        });
        for state in [SyncState::Syncing, SyncState::Idle] {
            hub.emit(ClientEvent::SyncStateChanged { state });
        }
        hub.emit(ClientEvent::OutboxChanged {
            pending: 1,
            failed: 0,
        });
        let late = Arc::new(Recorder::default());
        let _late = hub.subscribe(late.clone());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while (rec.0.lock().unwrap().len() < 5 || late.0.lock().unwrap().is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        let stopped = ClientEvent::SyncStateChanged {
            state: SyncState::Stopped,
        };
        assert_eq!(rec.0.lock().unwrap().last(), Some(&stopped));
        assert_eq!(
            rec.0.lock().unwrap().len(),
            5,
            "4 current states, then Stopped, nothing after"
        );
        assert_eq!(*late.0.lock().unwrap(), vec![stopped]);
    }
}
