//! The client's shutdown signal: one flag every service and every call in flight watches, so
//! `shutdown()` is an end, not a suggestion. A call in flight is raced against it and returns
//! `ShutDown` at once (its HTTP request is dropped, not left to time out); a new call is refused
//! before it starts.

use std::future::Future;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// Cloneable handle on the signal.
#[derive(Clone)]
pub(crate) struct Shutdown {
    tx: std::sync::Arc<watch::Sender<bool>>,
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        Shutdown {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }

    /// Signals everyone. Idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// `Err(ShutDown)` once triggered: the guard at the top of every call.
    pub fn check(&self) -> Result<()> {
        if self.is_triggered() {
            Err(Error::ShutDown)
        } else {
            Ok(())
        }
    }

    /// Resolves once triggered.
    pub async fn triggered(&self) {
        let mut rx = self.rx.clone();
        let _ = rx.wait_for(|t| *t).await;
    }

    /// Runs `work` unless and until the shutdown comes first: then `work` is dropped (cancelling
    /// whatever it was waiting for) and the result is `ShutDown`.
    pub async fn race<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        self.check()?;
        tokio::select! {
            biased;
            _ = self.triggered() => Err(Error::ShutDown),
            result = work => result,
        }
    }
}
