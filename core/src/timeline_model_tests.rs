//! The model test of the timeline (issue 13): random syncs, sends (online, offline, refused),
//! paginations, messages from others and reopens, against the real server on loopback. After
//! every step, once the listener has caught up, the list built by applying every diff it was
//! sent equals a fresh read of the timeline's window from the store.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatsync_server::ServerConfig;

use super::*;
use crate::config::{ClientConfig, TokenSource};
use crate::diff::apply;
use crate::ChatClient;

/// An app's copy of a timeline: every diff applied as it arrives.
#[derive(Default)]
struct Applied(Mutex<Vec<ChatMessage>>);

impl TimelineListener for Applied {
    fn on_update(&self, diffs: Vec<TimelineDiff>) {
        apply(&mut self.0.lock().unwrap(), &diffs);
    }
}

struct Screen {
    timeline: Timeline,
    applied: Arc<Applied>,
    _sub: Subscription,
}

fn open_screen(client: &ChatClient, room: &str) -> Screen {
    let timeline = Arc::try_unwrap(client.timeline(room.to_owned()).unwrap())
        .unwrap_or_else(|_| panic!("the only handle"));
    let applied = Arc::new(Applied::default());
    let _sub = timeline.subscribe(applied.clone());
    Screen {
        timeline,
        applied,
        _sub,
    }
}

/// Waits until the app's copy, the timeline's items and a fresh read of its window agree;
/// panics with the three when they do not within the deadline.
async fn settled(screen: &Screen, step: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inner = &screen.timeline.inner;
        let anchor = inner.lock().anchor;
        let fresh = inner
            .reads
            .window(&inner.room_id, anchor, inner.initial)
            .unwrap()
            .items;
        let applied = screen.applied.0.lock().unwrap().clone();
        let items = screen.timeline.items();
        if applied == fresh && items == fresh {
            return;
        }
        if std::time::Instant::now() > deadline {
            let texts = |v: &[ChatMessage]| {
                v.iter()
                    .map(|m| format!("{}:{:?}", m.text, m.state))
                    .collect::<Vec<_>>()
            };
            panic!(
                "{step}: not settled\n applied {:?}\n items   {:?}\n fresh   {:?}",
                texts(&applied),
                texts(&items),
                texts(&fresh)
            );
        }
        // Waiting for the listener thread and the timeline task to catch up (a condition).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn client(url: &str, dir: &std::path::Path, user: &str, page_size: u32) -> Arc<ChatClient> {
    let mut c = ClientConfig::new(url, dir.join(user), user, TokenSource::DevTokenRoute);
    c.page_size = page_size;
    c.cache_capacity_bytes = 1 << 20;
    ChatClient::new(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applying_the_diffs_always_equals_a_fresh_read_of_the_window() {
    let seed = std::env::var("CHATSYNC_TIMELINE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13u64);
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("server.db");
    let mut server = chatsync_server::start(ServerConfig::for_tests(&db))
        .await
        .unwrap();
    let addr = server.addr();
    let url = server.url();
    // Small pages: limited syncs, gaps and server pagination happen often.
    let page_size = 6;
    let bob = client(&url, dir.path(), "bob", page_size);
    bob.login("Bob".into(), None).await.unwrap();
    let mut alice = client(&url, dir.path(), "alice", page_size);
    alice.login("Alice".into(), None).await.unwrap();
    let room = alice.open_direct_room("bob".into()).await.unwrap().id;
    bob.sync_once().await.unwrap();
    let mut screen = open_screen(&alice, &room);
    // A room the server does not know: what is sent there ends failed.
    let mut refused = open_screen(&alice, "no-such-room");
    let mut sent = 0u32;
    for step in 0..120 {
        let what = match rng.u32(0..10) {
            0..=1 => {
                for _ in 0..rng.u32(1..15) {
                    sent += 1;
                    bob.send_text(room.clone(), format!("b{sent}"))
                        .await
                        .unwrap();
                }
                bob.sync_once().await.unwrap();
                "bob sends"
            }
            2 => {
                sent += 1;
                alice
                    .send_text(room.clone(), format!("a{sent}"))
                    .await
                    .unwrap();
                "alice queues"
            }
            3 => {
                server.kill().await;
                for _ in 0..2 {
                    sent += 1;
                    alice
                        .send_text(room.clone(), format!("a{sent}"))
                        .await
                        .unwrap();
                }
                assert!(!alice.sync_once().await.unwrap().online);
                let mut c = ServerConfig::for_tests(&db);
                c.addr = addr;
                server = chatsync_server::start(c).await.unwrap();
                "alice sends offline"
            }
            4..=5 => {
                alice.sync_once().await.unwrap();
                "alice syncs"
            }
            6..=7 => {
                screen
                    .timeline
                    .paginate_backwards(rng.u32(1..20))
                    .await
                    .unwrap();
                "alice scrolls back"
            }
            8 => {
                sent += 1;
                alice
                    .send_text("no-such-room".into(), format!("x{sent}"))
                    .await
                    .unwrap();
                alice.sync_once().await.unwrap();
                "alice sends where she cannot"
            }
            _ => {
                drop(screen);
                drop(refused);
                alice.shutdown();
                drop(alice);
                alice = client(&url, dir.path(), "alice", page_size);
                screen = open_screen(&alice, &room);
                refused = open_screen(&alice, "no-such-room");
                "alice reopens"
            }
        };
        let label = format!("step {step} ({what}, seed {seed})");
        settled(&screen, &label).await;
        settled(&refused, &label).await;
    }
    // The walk covered what it claims.
    let items = screen.timeline.items();
    assert!(items.iter().any(|m| m.sender.id == "bob"));
    assert!(items.iter().any(|m| m.sender.id == "alice"));
    assert!(refused
        .timeline
        .items()
        .iter()
        .any(|m| m.state == MessageState::Failed));
}
