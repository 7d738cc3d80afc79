//! Delivery to the app's listeners, shared by the client's events, timelines and room lists.
//! A slow or panicking listener never blocks or breaks the core: each listener is fed from its
//! own unbounded queue by its own small thread (listeners are foreign code, often blocking; a
//! tokio worker must never wait on them), and a panic inside a listener is caught and logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};

/// Stack of a listener thread: it only forwards values into foreign code.
const LISTENER_STACK_BYTES: usize = 256 * 1024;

struct State<E> {
    listeners: Vec<(u64, mpsc::Sender<E>)>,
    next_id: u64,
    /// Closed: nothing more is delivered, new listeners get only their first values.
    closed: bool,
}

/// The core's side of a fan-out: `send` never blocks on a listener.
pub(crate) struct Fanout<E> {
    state: Arc<Mutex<State<E>>>,
}

impl<E> Clone for Fanout<E> {
    fn clone(&self) -> Self {
        Fanout {
            state: self.state.clone(),
        }
    }
}

impl<E: Clone + Send + 'static> Default for Fanout<E> {
    fn default() -> Self {
        Fanout {
            state: Arc::new(Mutex::new(State {
                listeners: Vec::new(),
                next_id: 0,
                closed: false,
            })),
        }
    }
}

impl<E: Clone + Send + 'static> Fanout<E> {
    /// Queues `value` for every listener (nothing once closed).
    pub fn send(&self, value: E) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return;
        }
        // A send fails only when the listener's thread has ended: forget that listener.
        state
            .listeners
            .retain(|(_, tx)| tx.send(value.clone()).is_ok());
    }

    /// Delivers `last` to everyone, then closes: nothing after it, ever.
    pub fn close_with(&self, last: Option<E>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.closed {
            return;
        }
        if let Some(value) = last {
            state
                .listeners
                .retain(|(_, tx)| tx.send(value.clone()).is_ok());
        }
        state.closed = true;
        // Dropping the senders ends each listener thread once its queue is drained.
        state.listeners.clear();
    }

    /// Registers a listener: `first()` runs under the fan-out's lock, so what it returns is
    /// queued before any later value (the current state first, then every change). `deliver`
    /// runs on the listener's own thread, one value at a time, in order.
    pub fn subscribe(
        &self,
        first: impl FnOnce() -> Vec<E>,
        deliver: impl Fn(E) + Send + 'static,
    ) -> Subscription
    where
        E: 'static,
    {
        let (tx, rx) = mpsc::channel();
        let cancelled = Arc::new(AtomicBool::new(false));
        let id = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for value in first() {
                let _ = tx.send(value);
            }
            let id = state.next_id;
            state.next_id += 1;
            if !state.closed {
                state.listeners.push((id, tx));
            }
            id
        };
        let flag = cancelled.clone();
        let spawned = std::thread::Builder::new()
            .name("chatsync-listener".into())
            .stack_size(LISTENER_STACK_BYTES)
            .spawn(move || {
                while let Ok(value) = rx.recv() {
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(value)));
                    if result.is_err() {
                        tracing::warn!("a chatsync listener panicked; it keeps receiving updates");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start a listener thread: {e}");
        }
        let weak: Weak<Mutex<State<E>>> = Arc::downgrade(&self.state);
        Subscription {
            cancelled,
            remove: Box::new(move || {
                if let Some(state) = weak.upgrade() {
                    state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .listeners
                        .retain(|(i, _)| *i != id);
                }
            }),
        }
    }

    /// Listeners registered now (tests).
    #[cfg(test)]
    pub fn listener_count(&self) -> usize {
        self.state.lock().unwrap().listeners.len()
    }
}

/// Keeps a listener subscribed; `cancel()` or dropping it ends the subscription.
pub struct Subscription {
    cancelled: Arc<AtomicBool>,
    remove: Box<dyn Fn() + Send + Sync>,
}

impl Subscription {
    /// Stops delivery: after it returns, the listener gets nothing that was not already being
    /// delivered. Idempotent.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        (self.remove)();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel();
    }
}
