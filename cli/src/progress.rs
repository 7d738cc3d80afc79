//! Progress of a long sync (a first sync of a large room) on a terminal, silent when stderr is
//! piped. It listens to the core's change events, so it shows what was really stored, and it
//! redraws at most a few times a second so a fast sync does not spend its time printing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{ChatClient, ClientEvent, ClientListener, Subscription};

/// Minimum time between two redraws.
const REDRAW_EVERY: Duration = Duration::from_millis(200);

/// Counts the messages stored while a sync runs and draws `syncing: N messages stored`.
struct SyncProgress {
    stored: AtomicU64,
    /// When the line was last drawn (`None`: never), behind a lock so two events never interleave.
    last_draw: Mutex<Option<Instant>>,
}

impl ClientListener for SyncProgress {
    fn on_event(&self, event: ClientEvent) {
        if let ClientEvent::MessagesChanged { ids, .. } = event {
            let stored =
                self.stored.fetch_add(ids.len() as u64, Ordering::Relaxed) + ids.len() as u64;
            let mut last = self.last_draw.lock().unwrap_or_else(|p| p.into_inner());
            let due = match *last {
                None => true,
                Some(t) => t.elapsed() >= REDRAW_EVERY,
            };
            if due {
                *last = Some(Instant::now());
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\rsyncing: {stored} messages stored");
                let _ = err.flush();
            }
        }
    }
}

/// A progress display; [`ProgressGuard::finish`] (or drop) clears the line.
pub struct ProgressGuard {
    subscription: Option<Arc<Subscription>>,
    progress: Option<Arc<SyncProgress>>,
}

impl ProgressGuard {
    /// Starts showing progress for `client` when stderr is a terminal; otherwise does nothing.
    pub fn start(client: &ChatClient) -> ProgressGuard {
        if !std::io::stderr().is_terminal() {
            return ProgressGuard {
                subscription: None,
                progress: None,
            };
        }
        // Say at once that something is happening: events reach the listener asynchronously,
        // so a short sync may be over before its first event is drawn.
        {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\rsyncing…");
            let _ = err.flush();
        }
        let progress = Arc::new(SyncProgress {
            stored: AtomicU64::new(0),
            last_draw: Mutex::new(Some(Instant::now())),
        });
        let subscription = client.subscribe(progress.clone());
        ProgressGuard {
            subscription: Some(subscription),
            progress: Some(progress),
        }
    }

    /// Stops listening and clears the progress line if one was drawn.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(subscription) = self.subscription.take() {
            subscription.cancel();
        }
        if let Some(progress) = self.progress.take() {
            let drawn = progress
                .last_draw
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            if drawn {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K");
                let _ = err.flush();
            }
        }
    }
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.stop();
    }
}
