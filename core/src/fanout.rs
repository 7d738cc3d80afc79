//! Delivery to the app's listeners, shared by the client's events, timelines and room lists.
//! A slow or panicking listener never blocks or breaks the core: each listener is fed from its
//! own unbounded queue by its own small thread (listeners are foreign code, often blocking; a
//! tokio worker must never wait on them), and a panic inside a listener is caught and logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::ThreadId;

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
        let gate = Arc::new(Gate::default());
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
        let listener_gate = gate.clone();
        let spawned = std::thread::Builder::new()
            .name("chatsync-listener".into())
            .stack_size(LISTENER_STACK_BYTES)
            .spawn(move || {
                while let Ok(value) = rx.recv() {
                    // Held through the delivery, so that `cancel` can wait for it to end.
                    let _delivering = listener_gate
                        .delivering
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if listener_gate.cancelled.load(Ordering::Acquire) {
                        break;
                    }
                    let result =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deliver(value)));
                    if result.is_err() {
                        tracing::warn!("a chatsync listener panicked; it keeps receiving updates");
                    }
                }
            });
        let listener_thread = match spawned {
            Ok(handle) => Some(handle.thread().id()),
            Err(e) => {
                tracing::error!("cannot start a listener thread: {e}");
                None
            }
        };
        let weak: Weak<Mutex<State<E>>> = Arc::downgrade(&self.state);
        Subscription {
            gate,
            listener_thread,
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

/// What a subscription and its listener thread share.
#[derive(Default)]
struct Gate {
    cancelled: AtomicBool,
    /// Locked by the listener thread for each delivery: `cancel` takes it once to wait out a
    /// delivery already under way.
    delivering: Mutex<()>,
}

/// Keeps a listener subscribed; `cancel()` or dropping it ends the subscription.
pub struct Subscription {
    gate: Arc<Gate>,
    /// The thread that calls the listener: a cancel from inside the listener must not wait for
    /// its own delivery to end.
    listener_thread: Option<ThreadId>,
    remove: Box<dyn Fn() + Send + Sync>,
}

impl Subscription {
    /// Stops delivery: once it returns, the listener is not running and is never called again.
    /// A delivery under way on another thread is waited for (an app that frees what its
    /// listener uses right after `cancel` must not race it); called from inside the listener it
    /// returns at once, and that delivery is the last. The caller must not hold anything the
    /// listener waits for, or both wait for ever. Idempotent.
    pub fn cancel(&self) {
        self.gate.cancelled.store(true, Ordering::Release);
        (self.remove)();
        if self.listener_thread != Some(std::thread::current().id()) {
            drop(
                self.gate
                    .delivering
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
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
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Found by the Kotlin scenario on CI: a delivery under way when `cancel` was called could
    /// still run (or start) after `cancel` returned.
    #[test]
    fn cancel_returns_only_after_a_delivery_under_way_has_ended() {
        let fanout = Fanout::<u32>::default();
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let order = Arc::new(AtomicUsize::new(0));
        let delivery_ended_at = Arc::new(AtomicUsize::new(usize::MAX));
        let (order_in, ended_in) = (order.clone(), delivery_ended_at.clone());
        let sub = Arc::new(fanout.subscribe(Vec::new, move |_| {
            entered_tx.send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
            ended_in.store(order_in.fetch_add(1, Ordering::SeqCst), Ordering::SeqCst);
        }));
        fanout.send(1);
        entered_rx.recv().unwrap();

        let canceller = {
            let (sub, order) = (sub.clone(), order.clone());
            std::thread::spawn(move || {
                sub.cancel();
                order.fetch_add(1, Ordering::SeqCst)
            })
        };
        // Release the listener only once the cancel has begun.
        while !sub.gate.cancelled.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        release_tx.send(()).unwrap();
        let cancel_returned_at = canceller.join().unwrap();
        assert!(
            delivery_ended_at.load(Ordering::SeqCst) < cancel_returned_at,
            "cancel returned while the listener was still running"
        );
    }

    #[test]
    fn a_listener_may_cancel_its_own_subscription() {
        let fanout = Fanout::<u32>::default();
        let slot: Arc<Mutex<Option<Subscription>>> = Arc::default();
        let (done_tx, done_rx) = mpsc::channel();
        let (slot_in, calls) = (slot.clone(), Arc::new(AtomicUsize::new(0)));
        let calls_in = calls.clone();
        let sub = fanout.subscribe(Vec::new, move |_| {
            calls_in.fetch_add(1, Ordering::SeqCst);
            if let Some(sub) = slot_in.lock().unwrap().as_ref() {
                sub.cancel(); // would deadlock if it waited for this very delivery
            }
            done_tx.send(()).unwrap();
        });
        *slot.lock().unwrap() = Some(sub);
        fanout.send(1);
        done_rx.recv().unwrap();
        fanout.send(2);
        slot.lock().unwrap().take(); // drop: cancels again, idempotent
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "nothing after the listener's own cancel"
        );
    }
}
