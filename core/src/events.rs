//! Fan-out of changes to the app's listeners. A slow or panicking listener never blocks or
//! breaks the engine: each listener is fed from its own unbounded queue by its own small thread
//! (listeners are foreign code, often blocking; a tokio worker must never wait on them), and a
//! panic inside `on_event` is caught and logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use crate::model::{NetworkStatus, SyncState};

/// A change the app may want to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Messages of a room were added, replaced (echo -> sent) or removed. `ids` are GiftedChat
    /// `_id`s (server ids as strings, local ids for echoes).
    MessagesChanged {
        /// The room.
        room_id: String,
        /// The `_id`s that changed; an echo replaced by its sent message lists both.
        ids: Vec<String>,
    },
    /// The network monitor's status changed (sent once per real change).
    NetworkStatusChanged {
        /// The new status.
        status: NetworkStatus,
    },
    /// The sync engine's state changed (sent once per real change).
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
}

/// Implemented by the app (in Kotlin or Swift through the bindings).
pub trait ClientListener: Send + Sync {
    /// Called on a thread of the listener's own, one event at a time, in order.
    fn on_event(&self, event: ClientEvent);
}

/// Stack of a listener thread: it only forwards events into foreign code.
const LISTENER_STACK_BYTES: usize = 256 * 1024;

struct HubState {
    listeners: Vec<(u64, mpsc::Sender<ClientEvent>)>,
    next_id: u64,
    network: NetworkStatus,
    sync: SyncState,
    outbox: (u32, u32),
}

/// The engine's side of the fan-out: `emit` never blocks on a listener.
#[derive(Clone)]
pub(crate) struct EventHub {
    state: Arc<Mutex<HubState>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            state: Arc::new(Mutex::new(HubState {
                listeners: Vec::new(),
                next_id: 0,
                network: NetworkStatus::Unknown,
                sync: SyncState::Idle,
                outbox: (0, 0),
            })),
        }
    }
}

impl EventHub {
    /// Queues `event` for every listener. Status events equal to the last one sent are dropped,
    /// so listeners see each real change once.
    pub fn emit(&self, event: ClientEvent) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &event {
            ClientEvent::NetworkStatusChanged { status } => {
                if state.network == *status {
                    return;
                }
                state.network = *status;
            }
            ClientEvent::SyncStateChanged { state: s } => {
                if state.sync == *s {
                    return;
                }
                state.sync = *s;
            }
            ClientEvent::OutboxChanged { pending, failed } => {
                if state.outbox == (*pending, *failed) {
                    return;
                }
                state.outbox = (*pending, *failed);
            }
            ClientEvent::MessagesChanged { ids, .. } if ids.is_empty() => return,
            ClientEvent::MessagesChanged { .. } => {}
        }
        // A send fails only when the listener's thread has ended: forget that listener.
        state
            .listeners
            .retain(|(_, tx)| tx.send(event.clone()).is_ok());
    }

    /// Registers `listener`: it first receives the current network, sync and outbox state, then
    /// every change, until the returned subscription is cancelled or dropped.
    pub fn subscribe(&self, listener: Arc<dyn ClientListener>) -> Subscription {
        let (tx, rx) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let id = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            // Current state first, queued under the lock so no change can slip in before it.
            let _ = tx.send(ClientEvent::NetworkStatusChanged {
                status: state.network,
            });
            let _ = tx.send(ClientEvent::SyncStateChanged { state: state.sync });
            let _ = tx.send(ClientEvent::OutboxChanged {
                pending: state.outbox.0,
                failed: state.outbox.1,
            });
            let id = state.next_id;
            state.next_id += 1;
            state.listeners.push((id, tx));
            id
        };
        let flag = cancelled.clone();
        let spawned = std::thread::Builder::new()
            .name("chatsync-listener".into())
            .stack_size(LISTENER_STACK_BYTES)
            .spawn(move || {
                while let Ok(event) = rx.recv() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let listener = listener.clone();
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                            listener.on_event(event)
                        }));
                    if result.is_err() {
                        tracing::warn!("a chatsync listener panicked; it keeps receiving events");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a listener thread: {e}");
        }
        Subscription {
            id,
            hub: Arc::downgrade(&self.state),
            cancelled,
        }
    }
}

/// Keeps a listener subscribed; `cancel()` or dropping it ends the subscription.
pub struct Subscription {
    id: u64,
    hub: Weak<Mutex<HubState>>,
    cancelled: Arc<AtomicBool>,
}

impl Subscription {
    /// Stops delivery: after it returns, the listener gets no event that was not already being
    /// delivered. Idempotent.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some(hub) = self.hub.upgrade() {
            // Dropping the sender ends the listener's thread once its queue is drained.
            hub.lock()
                .unwrap_or_else(|p| p.into_inner())
                .listeners
                .retain(|(id, _)| *id != self.id);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

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
            == 5));
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
        assert_eq!(&events[3..], &[changed("1"), changed("2")]);
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
            == 1003));
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
            == 3));
        sub.cancel();
        hub.emit(changed("after cancel"));
        let rec2 = Arc::new(Recorder::default());
        drop(hub.subscribe(rec2.clone()));
        hub.emit(changed("after drop"));
        assert_eq!(hub.state.lock().unwrap().listeners.len(), 0);
        assert!(!rec
            .events
            .lock()
            .unwrap()
            .contains(&changed("after cancel")));
        assert!(!rec2.events.lock().unwrap().contains(&changed("after drop")));
    }
}
