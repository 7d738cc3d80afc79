//! Network status, app lifecycle and scheduling against the real reference server on loopback.
//!
//! Tests that count requests run on tokio's paused clock (`start_paused`): the server, a counting
//! proxy and the client all live on the test's runtime, so a 60-second interval takes
//! milliseconds and request counts and times are exact. Tests about wall-clock promises (a message
//! within a second, a budget kept) run in real time with bounded waits on real conditions.

mod lifecycle_support;

use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{
    AppState, BackgroundOutcome, ChatClient, ClientConfig, ClientEvent, NetworkStatus, TokenSource,
};
use lifecycle_support::{silent_server, wait_until, CountingProxy, RawUser, Recorder};
use tempfile::TempDir;
use tokio::runtime::Handle;
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

async fn start_server(db_dir: &TempDir) -> chatsync_server::RunningServer {
    chatsync_server::start(chatsync_server::ServerConfig::for_tests(
        db_dir.path().join("server.db"),
    ))
    .await
    .expect("server starts")
}

fn config(server_url: &str, dir: &TempDir, user: &str) -> ClientConfig {
    ClientConfig::new(
        server_url,
        dir.path().join(user),
        user,
        TokenSource::DevTokenRoute,
    )
}

/// A client on the test's runtime (so it shares the paused clock when there is one).
fn client(config: ClientConfig) -> Arc<ChatClient> {
    ChatClient::with_runtime(config, Handle::current()).expect("client opens")
}

/// A logged-in client with the direct room to `friend` open; returns the room id.
async fn logged_in(config: ClientConfig, friend: &str) -> (Arc<ChatClient>, String) {
    let name = config.user_id.to_uppercase();
    let c = client(config);
    c.login(name, None).await.expect("login");
    let room = c
        .open_direct_room(friend.to_owned())
        .await
        .expect("direct room");
    (c, room.id)
}

/// Waits (real time, bounded) for something that happens outside the runtime, e.g. on a listener's
/// thread, without letting a paused clock run ahead: each check yields to the runtime only.
async fn wait_real_time(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    while !condition() {
        if std::time::Instant::now() >= end {
            return false;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn holds_text(c: &ChatClient, room: &str, text: &str) -> bool {
    c.messages(room.to_owned(), 50, None)
        .unwrap()
        .iter()
        .any(|m| m.text == text && m.server_id.is_some())
}

#[tokio::test]
async fn foreground_message_from_another_user_reaches_the_listener_within_a_second() {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let (alice, room) = logged_in(config(&server.url(), &dir, "alice"), "bob").await;
    let bob = RawUser::login(&server.url(), "bob").await;

    let recorder = Arc::new(Recorder::default());
    let _subscription = alice.subscribe(recorder.clone());
    alice.set_app_state(AppState::Active);
    alice.start();
    assert!(
        wait_until(Duration::from_secs(5), || alice.network_status()
            == NetworkStatus::Online)
        .await
    );

    for n in 0..3 {
        let text = format!("live {n}");
        bob.send(&room, &text).await;
        let stored_at = Instant::now();
        let arrived = wait_until(Duration::from_secs(1), || {
            recorder.events().iter().any(
                |e| matches!(e, ClientEvent::MessagesChanged { room_id, .. } if room_id == &room),
            ) && holds_text(&alice, &room, &text)
        })
        .await;
        assert!(arrived, "message {n} did not reach alice within a second");
        eprintln!(
            "live delivery {n}: {:?} from stored to alice's listener",
            stored_at.elapsed()
        );
    }

    // And the other way: a message alice queues while live goes out at once, without a timer.
    let queued_at = Instant::now();
    alice
        .send_text(room.clone(), "from alice, live".into())
        .await
        .unwrap();
    let mut on_server = false;
    while !on_server && queued_at.elapsed() < Duration::from_secs(1) {
        on_server = bob
            .history(&room)
            .await
            .iter()
            .any(|m| m.text() == Some("from alice, live"));
    }
    assert!(
        on_server,
        "alice's message did not reach the server within a second"
    );
    eprintln!(
        "live send: {:?} from queued to stored on the server",
        queued_at.elapsed()
    );
    alice.shutdown();
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn background_makes_exactly_one_sync_per_interval_and_none_while_offline() {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let proxy = CountingProxy::start(server.addr()).await;
    let (alice, _room) = logged_in(config(&proxy.url(), &dir, "alice"), "bob").await;

    alice.set_app_state(AppState::Background);
    let before = proxy.requests().len();
    let started = Instant::now();
    alice.start();
    assert!(
        wait_until(10 * MINUTE, || proxy.requests_to("/v2/sync").len() >= 6).await,
        "{:?}",
        proxy.requests()
    );
    let syncs: Vec<Instant> = proxy.requests_to("/v2/sync").iter().map(|r| r.at).collect();
    assert!(
        syncs[0] - started < Duration::from_secs(1),
        "first sync (catch-up) at once"
    );
    for pair in syncs.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= MINUTE && gap < MINUTE + Duration::from_secs(1),
            "gap between syncs {gap:?}"
        );
    }
    // Nothing else was requested: no probe while online, no flush with an empty outbox.
    let all: Vec<_> = proxy.requests()[before..].to_vec();
    assert!(
        all.iter().all(|r| r.path == "/v2/sync"),
        "unexpected requests: {all:?}"
    );

    // Offline (the platform says no network): not a single request, not even a probe.
    alice.set_network_reachable(false);
    assert_eq!(alice.network_status(), NetworkStatus::Offline);
    let count = proxy.requests().len();
    tokio::time::sleep(10 * MINUTE).await;
    assert_eq!(
        proxy.requests().len(),
        count,
        "requests while offline: {:?}",
        &proxy.requests()[count..]
    );

    // Reachable again: one probe, Online, and a catch-up sync at once.
    alice.set_network_reachable(true);
    let back = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || proxy
            .requests_to("/v2/sync")
            .len()
            > syncs.len())
        .await
    );
    assert!(
        back.elapsed() < Duration::from_secs(1),
        "catch-up took {:?}",
        back.elapsed()
    );
    assert_eq!(alice.network_status(), NetworkStatus::Online);
    assert_eq!(
        proxy.requests_to("/health").len(),
        1,
        "one probe for one real change"
    );

    alice.shutdown();
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn background_ends_the_long_poll_and_shutdown_stops_every_request() {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let proxy = CountingProxy::start(server.addr()).await;
    let (alice, room) = logged_in(config(&proxy.url(), &dir, "alice"), "bob").await;
    let bob = RawUser::login(&server.url(), "bob").await;

    alice.set_app_state(AppState::Active);
    alice.start();
    assert!(wait_until(MINUTE, || alice.network_status() == NetworkStatus::Online).await);
    // Live: a message arrives through the long-poll without any timer.
    bob.send(&room, "while live").await;
    assert!(
        wait_until(Duration::from_secs(1), || holds_text(
            &alice,
            &room,
            "while live"
        ))
        .await
    );
    assert!(
        wait_until(Duration::from_secs(10), || server.parked_long_polls() == 1).await,
        "the next long-poll is parked"
    );

    // Background: the long-poll ends, so a new message waits for the next interval sync.
    alice.set_app_state(AppState::Background);
    let backgrounded = Instant::now();
    // The long-poll's connection is closed at once, and the server lets go of it.
    assert!(
        wait_real_time(Duration::from_secs(2), || server.parked_long_polls() == 0).await,
        "the long-poll is still parked"
    );
    eprintln!(
        "long-poll released {:?} (virtual) after going to the background",
        backgrounded.elapsed()
    );
    let log = |proxy: &CountingProxy| {
        proxy
            .requests()
            .iter()
            .map(|r| (r.at.checked_duration_since(backgrounded), r.path.clone()))
            .collect::<Vec<_>>()
    };
    bob.send(&room, "while away").await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !holds_text(&alice, &room, "while away"),
        "a long-poll was still running in the background: {:?}",
        log(&proxy)
    );
    assert!(wait_until(2 * MINUTE, || holds_text(&alice, &room, "while away")).await);
    let took = backgrounded.elapsed();
    assert!(
        took >= MINUTE && took < MINUTE + Duration::from_secs(1),
        "delivered after {took:?}: {:?}",
        log(&proxy)
    );

    // Shutdown: nothing runs and nothing is requested any more, whatever happens next.
    alice.shutdown();
    let count = proxy.requests().len();
    alice.set_app_state(AppState::Active);
    alice.set_network_reachable(false);
    alice.set_network_reachable(true);
    alice.start();
    tokio::time::sleep(30 * MINUTE).await;
    let report = alice.background_sync(10_000).await;
    assert_eq!(report.outcome, BackgroundOutcome::Failed, "{report:?}");
    assert_eq!(report.error.as_deref(), Some("client is shut down"));
    assert_eq!(
        proxy.requests().len(),
        count,
        "requests after shutdown: {:?}",
        &proxy.requests()[count..]
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn server_killed_goes_offline_at_once_and_back_online_within_one_probe_interval_flushing_the_queue(
) {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let addr = server.addr();
    let probe_interval = Duration::from_secs(1); // the defaults: interval 1 s, timeout 5 s
    let (alice, room) = logged_in(config(&server.url(), &dir, "alice"), "bob").await;
    let recorder = Arc::new(Recorder::default());
    let _subscription = alice.subscribe(recorder.clone());
    alice.set_app_state(AppState::Active);
    alice.start();
    assert!(wait_until(MINUTE, || server.parked_long_polls() == 1).await);
    assert_eq!(alice.network_status(), NetworkStatus::Online);

    // The parked long-poll's connection dies with the server: Offline without waiting for a probe.
    let killed = Instant::now();
    server.kill().await;
    assert!(
        wait_until(Duration::from_secs(5), || alice.network_status()
            == NetworkStatus::Offline)
        .await
    );
    assert!(
        killed.elapsed() < Duration::from_millis(100),
        "offline after {:?}",
        killed.elapsed()
    );

    // Queued while the server is down, and probed for every second meanwhile.
    let echo = alice
        .send_text(room.clone(), "sent while down".into())
        .await
        .expect("queued offline");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(alice.outbox().unwrap().len(), 1);
    assert_eq!(alice.network_status(), NetworkStatus::Offline);

    let server = chatsync_server::start(chatsync_server::ServerConfig {
        addr,
        ..chatsync_server::ServerConfig::for_tests(dir.path().join("server.db"))
    })
    .await
    .expect("server restarts on the same address");
    let restarted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || alice.network_status()
            == NetworkStatus::Online)
        .await
    );
    assert!(
        restarted.elapsed() <= probe_interval + Duration::from_millis(10),
        "online {:?} after the server came back",
        restarted.elapsed()
    );
    // The queue is flushed at once.
    assert!(
        wait_until(Duration::from_secs(5), || alice
            .outbox()
            .unwrap()
            .is_empty())
        .await,
        "outbox not flushed"
    );
    assert!(
        restarted.elapsed() <= probe_interval + Duration::from_millis(100),
        "flushed after {:?}",
        restarted.elapsed()
    );
    let bob = RawUser::login(&server.url(), "bob").await;
    let seen = bob.history(&room).await;
    let delivered: Vec<_> = seen
        .iter()
        .filter(|m| m.text() == Some("sent while down"))
        .collect();
    assert_eq!(delivered.len(), 1, "delivered exactly once");
    assert_eq!(delivered[0].user_id, "alice");
    assert!(
        holds_text(&alice, &room, "sent while down"),
        "the echo became the server's message"
    );
    assert!(alice
        .messages(room.clone(), 50, None)
        .unwrap()
        .iter()
        .all(|m| m.id != echo.id || m.server_id.is_some()));

    // Each change was reported once (listeners run on their own threads: wait for delivery).
    let expected = vec![
        NetworkStatus::Online,
        NetworkStatus::Offline,
        NetworkStatus::Online,
    ];
    assert!(
        wait_real_time(Duration::from_secs(5), || recorder.statuses().len()
            >= expected.len())
        .await
    );
    assert_eq!(recorder.statuses(), expected);
    alice.shutdown();
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn probe_reports_a_silent_server_offline_within_the_timeout_and_online_within_an_interval() {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let proxy = CountingProxy::start(server.addr()).await;
    let mut alice_config = config(&proxy.url(), &dir, "alice");
    alice_config.probe.only_while_offline = false;
    alice_config.probe.in_background = true;
    let (timeout, interval) = (Duration::from_secs(5), Duration::from_secs(1));
    let (alice, _room) = logged_in(alice_config, "bob").await;
    // In the background nothing but the probe talks to the server between intervals.
    alice.set_app_state(AppState::Background);
    alice.start();
    assert!(wait_until(MINUTE, || alice.network_status() == NetworkStatus::Online).await);
    assert!(
        wait_until(MINUTE, || proxy.requests_to("/health").len() >= 3).await,
        "probing always"
    );
    let probes = proxy.requests_to("/health");
    assert!(
        gaps(&probes)
            .iter()
            .all(|g| *g >= interval && *g < interval + Duration::from_millis(50)),
        "{:?}",
        gaps(&probes)
    );

    // The server stops answering (accepts, never replies).
    proxy.stall(true);
    let stalled = Instant::now();
    assert!(wait_until(MINUTE, || alice.network_status() == NetworkStatus::Offline).await);
    let took = stalled.elapsed();
    assert!(
        took >= timeout && took <= interval + timeout + Duration::from_millis(50),
        "offline after {took:?}"
    );

    // Answers again: Online within one probe interval (and the probe's round trip).
    proxy.stall(false);
    let resumed = Instant::now();
    assert!(wait_until(MINUTE, || alice.network_status() == NetworkStatus::Online).await);
    assert!(
        resumed.elapsed() <= interval + Duration::from_millis(50),
        "online after {:?}",
        resumed.elapsed()
    );
    alice.shutdown();
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_that_never_answers_cannot_make_background_sync_overrun_its_budget() {
    let dir = TempDir::new().unwrap();
    let addr = silent_server().await;
    let url = format!("http://{addr}");
    let mut cfg = config(&url, &dir, "alice");
    cfg.token = TokenSource::Fixed("token".into());
    let alice = client(cfg);
    // The session is stored at once; its upload hangs on the silent server, so do not wait.
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        alice.login("Alice".into(), None),
    )
    .await;

    for budget_ms in [1_000u64, 2_000] {
        let started = std::time::Instant::now();
        let report = alice.background_sync(budget_ms).await;
        let took = started.elapsed();
        eprintln!("silent server: budget {budget_ms} ms, returned after {took:?}");
        assert!(
            took < Duration::from_millis(budget_ms),
            "budget {budget_ms} ms, took {took:?}"
        );
        assert_eq!(report.outcome, BackgroundOutcome::TimedOut, "{report:?}");
        assert!(report.retry_later, "{report:?}");
        assert!(
            report
                .error
                .as_deref()
                .unwrap_or("")
                .contains("ran out of time"),
            "{report:?}"
        );
    }
    alice.shutdown();
}

#[tokio::test]
async fn flapping_reachability_hints_produce_one_event_per_real_change() {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let (alice, _room) = logged_in(config(&server.url(), &dir, "alice"), "bob").await;
    alice.set_app_state(AppState::Active);
    alice.start();
    assert!(
        wait_until(Duration::from_secs(5), || alice.network_status()
            == NetworkStatus::Online)
        .await
    );
    let recorder = Arc::new(Recorder::default());
    let _subscription = alice.subscribe(recorder.clone());

    for _ in 0..3 {
        for _ in 0..4 {
            alice.set_network_reachable(false);
        }
        assert_eq!(alice.network_status(), NetworkStatus::Offline);
        for _ in 0..4 {
            alice.set_network_reachable(true);
        }
        assert!(
            wait_until(Duration::from_secs(3), || alice.network_status()
                == NetworkStatus::Online)
            .await
        );
    }
    // A burst that settles on "no network" and one that settles on "reachable".
    for reachable in [false, true, false, true, false] {
        alice.set_network_reachable(reachable);
    }
    assert_eq!(alice.network_status(), NetworkStatus::Offline);
    alice.set_network_reachable(true);
    assert!(
        wait_until(Duration::from_secs(3), || alice.network_status()
            == NetworkStatus::Online)
        .await
    );

    use NetworkStatus::*;
    // The subscription starts with the current status, then exactly one event per real change:
    // three rounds of (Offline, Online), then the burst (it ended unreachable before anything
    // could be probed: one Offline) and the final Online. Repeated hints added nothing.
    let expected = vec![
        Online, Offline, Online, Offline, Online, Offline, Online, Offline, Online,
    ];
    // Listeners run on their own threads: wait until everything was delivered.
    assert!(
        wait_until(Duration::from_secs(5), || recorder.statuses().len()
            >= expected.len())
        .await,
        "{:?}",
        recorder.statuses()
    );
    assert_eq!(recorder.statuses(), expected);
    alice.shutdown();
    server.shutdown().await;
}

/// Times between consecutive requests in `requests`.
fn gaps(requests: &[lifecycle_support::SeenRequest]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn server_backoff_hints_are_honoured_failures_back_off_with_jitter_and_a_state_change_resets()
{
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let proxy = CountingProxy::start(server.addr()).await;
    let (alice, _room) = logged_in(config(&proxy.url(), &dir, "alice"), "bob").await;
    let recorder = Arc::new(Recorder::default());
    let _subscription = alice.subscribe(recorder.clone());
    alice.set_app_state(AppState::Active);
    alice.start();
    assert!(wait_until(MINUTE, || server.parked_long_polls() == 1).await);
    let syncs = || proxy.requests_to("/v2/sync");
    // Index of the first sync request after the faults below are armed.
    let mut first = syncs().len();

    // 503 with Retry-After: 30 -> the next attempt exactly 30 s later, and still Online.
    proxy.fail_next("/v2/sync", 1, 503, Some(30));
    assert!(wait_until(2 * MINUTE, || syncs().len() >= first + 2).await);
    let s = syncs();
    assert!(s[first].faulted && !s[first + 1].faulted);
    let gap = s[first + 1].at - s[first].at;
    assert!(
        gap >= Duration::from_secs(30) && gap < Duration::from_secs(31),
        "after 503 Retry-After 30: {gap:?}"
    );
    assert_eq!(
        alice.network_status(),
        NetworkStatus::Online,
        "a busy server is not offline"
    );

    // 429 without Retry-After -> the default pause (5 s).
    first = syncs().len();
    proxy.fail_next("/v2/sync", 1, 429, None);
    assert!(wait_until(2 * MINUTE, || syncs().len() >= first + 2).await);
    let gap = syncs()[first + 1].at - syncs()[first].at;
    assert!(
        gap >= Duration::from_secs(5) && gap < Duration::from_secs(6),
        "after 429: {gap:?}"
    );

    // Five 500s: each wait doubles, jittered within [d/2, d], d = 1, 2, 4, 8, 16 s.
    first = syncs().len();
    proxy.fail_next("/v2/sync", 5, 500, None);
    assert!(wait_until(5 * MINUTE, || syncs().len() >= first + 6).await);
    let s = syncs();
    assert!(s[first..first + 5].iter().all(|r| r.faulted) && !s[first + 5].faulted);
    for (n, gap) in gaps(&s[first..first + 6]).into_iter().enumerate() {
        let full = Duration::from_secs(1 << n);
        assert!(
            gap >= full / 2 && gap <= full + Duration::from_millis(50),
            "wait {n}: {gap:?} not in [{:?}, {full:?}]",
            full / 2
        );
    }

    // Four 500s, then a trip to the background and back: the backoff starts over.
    first = syncs().len();
    proxy.fail_next("/v2/sync", 6, 500, None);
    assert!(wait_until(5 * MINUTE, || syncs().len() >= first + 4).await);
    alice.set_app_state(AppState::Background);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let back = Instant::now();
    alice.set_app_state(AppState::Active);
    assert!(wait_until(MINUTE, || syncs().len() >= first + 6).await);
    let s = syncs();
    assert_eq!(
        s.len(),
        first + 6,
        "nothing requested in the background within a second"
    );
    assert!(
        s[first + 4].at - back < Duration::from_millis(50),
        "active again: at once"
    );
    let gap = s[first + 5].at - s[first + 4].at;
    assert!(
        gap >= Duration::from_millis(500) && gap <= Duration::from_secs(1),
        "backoff reset: {gap:?}"
    );

    assert!(
        !recorder.statuses().contains(&NetworkStatus::Offline),
        "server errors never meant offline"
    );
    alice.shutdown();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_at_works_from_a_cold_start_and_reports_busy_while_another_client_holds_the_store(
) {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let alice_config = config(&server.url(), &dir, "alice");
    let (alice, room) = logged_in(alice_config.clone(), "bob").await;
    alice
        .send_text(room.clone(), "queued by the app".into())
        .await
        .unwrap();
    // The app's process goes away with one message still queued.
    alice.shutdown();
    drop(alice);

    let bob = RawUser::login(&server.url(), "bob").await;
    bob.send(&room, "are you there?").await;
    bob.send(&room, &format!("a long one: {}", "x".repeat(500)))
        .await;

    // The OS starts a task: nothing is open, no runtime of the client's yet.
    let started = std::time::Instant::now();
    let report = chatsync_core::background_sync_at(alice_config.clone(), 10_000).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        report.outcome == BackgroundOutcome::Completed && report.online,
        "{report:?}"
    );
    assert_eq!(report.sent, 1, "the queued message went out: {report:?}");
    assert_eq!((report.pending, report.failed), (0, 0));
    let previews: Vec<_> = report
        .new_messages
        .iter()
        .map(|p| (p.sender_id.as_str(), p.preview.as_str()))
        .collect();
    assert_eq!(previews.len(), 2, "{report:?}");
    assert_eq!(previews[0], ("bob", "are you there?"));
    assert!(
        previews[1].1.starts_with("a long one: ") && previews[1].1.chars().count() <= 100,
        "cut to a preview"
    );
    assert!(report
        .new_messages
        .iter()
        .all(|p| p.room_id == room && p.message_id > 0));

    // The app is running and holds the store: the task reports busy within its budget.
    let app = ChatClient::with_runtime(alice_config.clone(), Handle::current()).unwrap();
    let started = std::time::Instant::now();
    let report = chatsync_core::background_sync_at(alice_config.clone(), 1_000).await;
    assert!(
        started.elapsed() < Duration::from_millis(1_000),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(report.outcome, BackgroundOutcome::Busy, "{report:?}");
    assert!(report.retry_later);
    assert!(
        report.error.as_deref().unwrap_or("").contains("busy"),
        "{report:?}"
    );
    // The store is intact and still the app's.
    assert!(holds_text(&app, &room, "are you there?"));
    app.shutdown();
    drop(app);
    server.shutdown().await;
}

/// A minimal executor that is not tokio: polls on this thread, parks until woken.
fn block_on_plain_thread<F: std::future::Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl std::task::Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

#[test]
fn background_sync_works_on_the_clients_own_runtime_awaited_from_a_foreign_executor() {
    // The server runs on a runtime of its own, as it would in another process.
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = TempDir::new().unwrap();
    let server = server_runtime.block_on(start_server(&dir));
    let url = server.url();
    let bob = server_runtime.block_on(RawUser::login(&url, "bob"));

    // As in a process the OS started cold: the client owns its runtime, the caller is no tokio.
    let alice = ChatClient::new(config(&url, &dir, "alice")).unwrap();
    block_on_plain_thread(alice.login("Alice".into(), None)).unwrap();
    let room = block_on_plain_thread(alice.open_direct_room("bob".into()))
        .unwrap()
        .id;
    server_runtime.block_on(bob.send(&room, "wake up"));

    let started = std::time::Instant::now();
    let report = block_on_plain_thread(alice.background_sync(5_000));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(report.outcome, BackgroundOutcome::Completed, "{report:?}");
    assert_eq!(report.new_messages.len(), 1, "{report:?}");
    assert_eq!(report.new_messages[0].preview, "wake up");
    alice.shutdown();
    drop(alice);
    server_runtime.block_on(server.shutdown());
}

/// Environment variable naming the store a child process of this test binary should hold.
const HOLD_STORE_ENV: &str = "CHATSYNC_TEST_HOLD_STORE";

/// Not a test: the body of the child process `background_sync_at_while_another_process_holds_the_store`
/// starts (this binary, run with `--ignored --exact`). It opens the store as the app's process
/// would, says so, and holds it until it is killed.
#[test]
#[ignore = "helper run as a child process by another test"]
fn store_holding_child_process() {
    let Ok(data_dir) = std::env::var(HOLD_STORE_ENV) else {
        return;
    };
    let config = ClientConfig::new(
        "http://127.0.0.1:9",
        data_dir,
        "alice",
        TokenSource::DevTokenRoute,
    );
    let _client = ChatClient::new(config).expect("the child opens the store");
    println!("holding");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // Until SIGKILL: reading stdin blocks (the parent never writes).
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_sync_at_reports_busy_while_another_process_holds_the_store_and_works_after_it_is_killed(
) {
    let dir = TempDir::new().unwrap();
    let server = start_server(&dir).await;
    let alice_config = config(&server.url(), &dir, "alice");
    let (alice, room) = logged_in(alice_config.clone(), "bob").await;
    alice
        .send_text(room.clone(), "queued before the crash".into())
        .await
        .unwrap();
    alice.shutdown();
    drop(alice);
    RawUser::login(&server.url(), "bob")
        .await
        .send(&room, "ping")
        .await;

    // The app's process opens the store and holds it.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "store_holding_child_process",
            "--nocapture",
        ])
        .env(HOLD_STORE_ENV, &alice_config.data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            if line.map(|l| l.contains("holding")).unwrap_or(false) {
                let _ = ready_tx.send(());
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the child holds the store");

    let started = std::time::Instant::now();
    let report = chatsync_core::background_sync_at(alice_config.clone(), 1_500).await;
    assert!(
        started.elapsed() < Duration::from_millis(1_500),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        report.outcome == BackgroundOutcome::Busy
            && report.error.as_deref().unwrap_or("").contains("busy"),
        "{report:?}"
    );

    // The holder dies hard; the next background task gets the store, intact.
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let report = chatsync_core::background_sync_at(alice_config.clone(), 10_000).await;
    assert_eq!(report.outcome, BackgroundOutcome::Completed, "{report:?}");
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(
        report
            .new_messages
            .iter()
            .map(|p| p.preview.as_str())
            .collect::<Vec<_>>(),
        vec!["ping"]
    );
    server.shutdown().await;
}
