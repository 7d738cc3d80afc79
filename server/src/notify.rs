//! Wakes parked `/v1/sync` long-polls. Each user with at least one parked request has one
//! `tokio::sync::watch` channel; a send (or a room creation) bumps the channels of the room's
//! members only, so a message wakes exactly the requests that can return it. A parked request is a
//! suspended future holding a receiver (no thread, no timer thread), which is why thousands fit.
//! Shutdown is a separate watch flag that answers every parked request at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The registry of parked long-polls, shared by the routes.
#[derive(Debug)]
pub struct Notifier {
    /// user id → change counter. A std Mutex: held only for a map lookup, never across `.await`.
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Becomes true once the server starts shutting down.
    shutdown: watch::Sender<bool>,
    /// Live subscriptions (parked or about to park), for tests and metrics.
    subscriptions: AtomicUsize,
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed for the user: query again.
    Changed,
    /// The server is shutting down: answer now.
    Shutdown,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            users: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
            subscriptions: AtomicUsize::new(0),
        }
    }
}

impl Notifier {
    /// A new registry with nobody waiting.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers interest in `user_id`'s changes. Subscribe *before* querying the store, so a change
    /// that lands between the query and the wait is not missed.
    pub fn subscribe(self: &Arc<Self>, user_id: &str) -> Subscription {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let rx = users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        self.subscriptions.fetch_add(1, Ordering::Relaxed);
        Subscription {
            notifier: Arc::clone(self),
            user_id: user_id.to_owned(),
            changes: Some(rx),
            shutdown: self.shutdown.subscribe(),
        }
    }

    /// Wakes every parked request of these users.
    pub fn notify<'a>(&self, user_ids: impl IntoIterator<Item = &'a str>) {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        for user_id in user_ids {
            if let Some(tx) = users.get(user_id) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }

    /// Answers every parked request now, and every later one at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// How many long-poll requests are registered (for tests and metrics).
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// How many users have at least one parked request (for tests and metrics).
    pub fn waiting_users(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One parked request's interest in a user's changes. Dropping it unregisters it.
#[derive(Debug)]
pub struct Subscription {
    notifier: Arc<Notifier>,
    user_id: String,
    /// Always `Some` until drop, which takes it out to count the remaining receivers.
    changes: Option<watch::Receiver<u64>>,
    shutdown: watch::Receiver<bool>,
}

impl Subscription {
    /// Waits until the user's data changed since the last call (or since subscribing), or until
    /// shutdown. Returns at once if either already happened.
    pub async fn wait(&mut self) -> Wake {
        let changes = self.changes.as_mut().expect("present until drop");
        if *self.shutdown.borrow() {
            return Wake::Shutdown;
        }
        tokio::select! {
            biased;
            _ = self.shutdown.wait_for(|down| *down) => Wake::Shutdown,
            changed = changes.changed() => match changed {
                Ok(()) => Wake::Changed,
                // The sender lives in the map while we hold a receiver; treat loss as shutdown.
                Err(_) => Wake::Shutdown,
            },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self
            .notifier
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        drop(self.changes.take());
        self.notifier.subscriptions.fetch_sub(1, Ordering::Relaxed);
        if users
            .get(&self.user_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            users.remove(&self.user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_only_the_notified_user() {
        let n = Notifier::new();
        let mut alice = n.subscribe("alice");
        let mut bob = n.subscribe("bob");
        n.notify(["alice"]);
        assert_eq!(alice.wait().await, Wake::Changed);
        let bob_woke = tokio::time::timeout(std::time::Duration::from_millis(20), bob.wait()).await;
        assert!(bob_woke.is_err(), "bob was not notified");
    }

    #[tokio::test]
    async fn a_change_before_waiting_is_not_lost() {
        let n = Notifier::new();
        let mut s = n.subscribe("alice");
        n.notify(["alice"]);
        assert_eq!(s.wait().await, Wake::Changed);
    }

    #[tokio::test]
    async fn shutdown_answers_everyone() {
        let n = Notifier::new();
        let mut a = n.subscribe("alice");
        let mut b = n.subscribe("alice");
        n.begin_shutdown();
        assert_eq!(a.wait().await, Wake::Shutdown);
        assert_eq!(b.wait().await, Wake::Shutdown);
    }

    #[test]
    fn dropping_the_last_subscription_unregisters_the_user() {
        let n = Notifier::new();
        let a = n.subscribe("alice");
        let b = n.subscribe("alice");
        assert_eq!((n.waiting_users(), n.subscriptions()), (1, 2));
        drop(a);
        assert_eq!(n.waiting_users(), 1);
        drop(b);
        assert_eq!((n.waiting_users(), n.subscriptions()), (0, 0));
    }
}
