//! The clock of the connection guards: the header, body and idle timeouts and the accept
//! back-off. They defend against real clients in real time, so which clock drives them is a
//! choice of the embedder ([`GuardClock`]), apart from the clock of request timing (a long-poll's
//! hold), which is always the runtime's.
//!
//! Why the choice exists: the core's tests run the real server on tokio's paused clock, which
//! jumps to the next timer whenever the runtime idles. That is what they want for long-polls (a
//! 25-second hold takes no real time) but a guard on that clock would close every idle
//! connection at each jump, racing the client's own timers. [`GuardClock::Wall`] takes the guards
//! off that clock; the binary uses [`GuardClock::Runtime`], which is the wall clock there.

use std::sync::OnceLock;

use tokio::time::{Instant, Sleep};

/// Which clock the connection guards run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuardClock {
    /// The timers of the runtime the server runs on: the wall clock in a normal runtime, virtual
    /// time under `tokio::time::pause` (the server's own timeout tests use that to be exact and
    /// instant). What the binary uses.
    #[default]
    Runtime,
    /// The wall clock, from one timer thread shared by every server of the process, whatever the
    /// clock of the runtime the server runs on does. For embedding the server in a runtime whose
    /// clock is paused and auto-advances (tests that fast-forward a client's timers).
    Wall,
}

/// A source of deadlines and sleeps on the chosen clock.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    /// The guard-timer runtime's handle for [`GuardClock::Wall`]; `None`: the current runtime.
    wall: Option<tokio::runtime::Handle>,
}

impl Clock {
    pub(crate) fn new(kind: GuardClock) -> Clock {
        Clock {
            wall: (kind == GuardClock::Wall).then(wall_timer),
        }
    }

    /// Now, on this clock.
    pub(crate) fn now(&self) -> Instant {
        match self.wall {
            // The timer thread's runtime is never paused: its clock is the std clock.
            Some(_) => Instant::from_std(std::time::Instant::now()),
            None => Instant::now(),
        }
    }

    /// A sleep until `deadline` on this clock. It can be polled from any runtime; resetting it
    /// with [`Sleep::reset`] keeps its clock.
    pub(crate) fn sleep_until(&self, deadline: Instant) -> Sleep {
        match &self.wall {
            Some(handle) => {
                let _timer_runtime = handle.enter();
                tokio::time::sleep_until(deadline)
            }
            None => tokio::time::sleep_until(deadline),
        }
    }
}

/// The wall-clock timer: a current-thread runtime with only its time driver, on a thread of its
/// own for the life of the process, started on first use. Its thread only parks until the next
/// deadline; the tasks a deadline wakes run on their own runtime.
fn wall_timer() -> tokio::runtime::Handle {
    static HANDLE: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("the guard timer's runtime starts");
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("chatsync-guard-timer".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .expect("the guard timer's thread starts");
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_wall_clock_ignores_a_paused_runtime_and_the_runtime_clock_follows_it() {
        let wall = Clock::new(GuardClock::Wall);
        let runtime = Clock::new(GuardClock::Runtime);
        let real_start = std::time::Instant::now();
        // A long wall sleep and a short runtime sleep: the paused runtime jumps over its own
        // timer at once, while the wall sleep keeps real time.
        let mut long_wall =
            std::pin::pin!(wall.sleep_until(wall.now() + Duration::from_secs(3600)));
        runtime
            .sleep_until(runtime.now() + Duration::from_secs(7200))
            .await;
        assert!(real_start.elapsed() < Duration::from_secs(5));
        assert!(
            futures_poll_once(long_wall.as_mut()).is_pending(),
            "virtual time did not fire the wall sleep"
        );
        // A short wall sleep fires after its real time.
        let started = std::time::Instant::now();
        wall.sleep_until(wall.now() + Duration::from_millis(30))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    fn futures_poll_once<F: std::future::Future>(
        f: std::pin::Pin<&mut F>,
    ) -> std::task::Poll<F::Output> {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: std::sync::Arc<Self>) {}
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Noop));
        f.poll(&mut std::task::Context::from_waker(&waker))
    }
}
