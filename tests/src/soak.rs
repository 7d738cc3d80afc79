//! The convergence soak: K devices (child processes running `chatsync-soak-client`, built on
//! chatsync-core) in several shared rooms send, change messages (edit and delete their own,
//! toggle reactions on others', mark rooms read: about a quarter of their iterations) and sync
//! through the chaos proxy for a bounded time, while the server is killed and restarted and
//! devices are SIGKILLed and restarted. Then the faults stop, every store is drained against
//! the real server, and the promise is checked:
//! - every device's store holds exactly the server's messages of its rooms, in order, no gaps,
//!   each in the server's current state as that device's user gets it: content (edited text),
//!   tombstones, edit times, reactions per key (count and `me`), who has read it (`read_by`);
//!   and each room's unread count is the server's for that user;
//! - every message a device reported as queued is on the server exactly once (in its room, from
//!   its sender, under its txn id, whatever edits did to its text), and no text is on the
//!   server twice;
//! - no device shows a message the server never accepted (nothing left pending, nothing extra).
//!
//! The server's truth is read over HTTP (v2 history per member, v2 initial sync per user), not
//! through the core.
//!
//! The schedule of faults is drawn from one seed, so a failing run can be repeated.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{ChatClient, ClientConfig, MessageState, TokenSource};
use chatsync_server::{RunningServer, ServerConfig};

use crate::http::Harness;
use crate::proxy::{ChaosProxy, FaultRates, ProxyStats};

/// What to run.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    /// The `chatsync-soak-client` binary.
    pub client_bin: PathBuf,
    /// Devices (one user each).
    pub clients: usize,
    /// Shared rooms; each device is in all but one of them (all of them when there is one).
    pub rooms: usize,
    /// How long the faults go on.
    pub duration: Duration,
    /// Messages each device incarnation queues.
    pub sends_per_client: u32,
    /// Server kills (each followed by a restart on the same port and database).
    pub server_kills: u32,
    /// Device SIGKILLs (each followed by a restart on the same store).
    pub client_kills: u32,
    /// Windows during which the proxy refuses connections.
    pub refusal_windows: u32,
    /// Random faults of the proxy, per connection.
    pub rates: FaultRates,
    /// Seed of everything random.
    pub seed: u64,
    /// Pause between a device's iterations, at most (pacing).
    pub pause_ms: u64,
    /// Every n-th device (u0, u{n}, ...) runs live on the core's scheduler; the others loop
    /// over `sync_once`. 0: none live.
    pub live_every: usize,
    /// The server's database: `None`, a SQLite file in the work directory; or a `postgres://`
    /// URL (an empty schema), with `instances` servers on it behind the proxy, which hands each
    /// new connection to the next instance. Each server kill kills one instance (the next in
    /// turn) and restarts it on its port.
    pub postgres: Option<String>,
    /// Server instances (more than one needs `postgres`).
    pub instances: usize,
}

impl SoakConfig {
    /// The soak at a given size: size 1 is the short run of the test suite (about 20 s of
    /// faults); each unit adds the same again (longer, more sends, more kills).
    pub fn sized(client_bin: PathBuf, size: u32, seed: u64) -> SoakConfig {
        let size = size.max(1);
        SoakConfig {
            client_bin,
            clients: 8,
            rooms: 3,
            duration: Duration::from_secs(20 * u64::from(size)),
            sends_per_client: 15 * size,
            server_kills: 2 * size,
            client_kills: 6 * size,
            refusal_windows: 2 * size,
            rates: FaultRates {
                drop: 0.05,
                cut: 0.08,
                delay: 0.2,
                max_delay: Duration::from_millis(40),
                max_cut_after_bytes: 4_000,
                cut_chunk: 0.01,
            },
            seed,
            pause_ms: 150,
            live_every: 2,
            postgres: None,
            instances: 1,
        }
    }
}

/// What the soak did and found.
#[derive(Clone, Debug, Default)]
pub struct SoakReport {
    /// Messages devices reported as durably queued.
    pub queued: usize,
    /// Messages the server holds at the end.
    pub delivered: usize,
    /// Device syncs that ended online / offline, and sync calls that returned an error.
    pub syncs_online: usize,
    /// Device syncs that found the server unreachable (each one a retry later).
    pub syncs_offline: usize,
    /// Syncs whose outbox flush was stopped with messages still pending (a retry later).
    pub flushes_interrupted: usize,
    /// Errors from `sync_once` by kind (`protocol`, `storage`, ...): should stay empty.
    pub sync_errors: BTreeMap<String, usize>,
    /// Errors from `send_text` (should be none).
    pub send_errors: Vec<String>,
    /// Chat-model changes devices made, by operation (`edit`, `delete`, `react`, `read`).
    pub changes: BTreeMap<String, usize>,
    /// Changes the core refused, by operation and error kind (`react invalid_input`: the
    /// message was deleted meanwhile); `storage`, `protocol` or `internal` would be a bug.
    pub change_errors: BTreeMap<String, usize>,
    /// Proxy counters (faults by kind).
    pub proxy: ProxyStats,
    /// Server kills and restarts.
    pub server_restarts: u32,
    /// Device SIGKILLs and restarts.
    pub client_restarts: u32,
    /// Devices that ran live on the core's scheduler.
    pub live_devices: usize,
    /// Drain rounds needed at the end before every store converged.
    pub drain_rounds: u32,
    /// Wall time.
    pub elapsed: Duration,
    /// Broken promises; empty when the soak passed.
    pub violations: Vec<String>,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.proxy;
        writeln!(f, "soak finished in {:.1} s", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "  messages: {} queued by devices, {} held by the server",
            self.queued, self.delivered
        )?;
        writeln!(
            f,
            "  changes made: {:?}; refused by the core: {:?}",
            self.changes, self.change_errors
        )?;
        writeln!(
            f,
            "  device syncs: {} online, {} offline (retried), {} flushes interrupted (retried), errors {:?}",
            self.syncs_online, self.syncs_offline, self.flushes_interrupted, self.sync_errors
        )?;
        writeln!(
            f,
            "  faults: {} connections, {} dropped, {} cut mid-stream, {} delayed, {} cut on command, {} refusal windows, {} upstream down",
            p.connections, p.dropped, p.cut, p.delayed, p.cut_on_command, p.refusal_windows, p.upstream_unreachable
        )?;
        writeln!(
            f,
            "  restarts: {} server kills, {} device SIGKILLs; {} devices live on the scheduler; {} drain rounds to converge",
            self.server_restarts, self.client_restarts, self.live_devices, self.drain_rounds
        )?;
        if self.violations.is_empty() {
            write!(f, "  result: converged, nothing lost, nothing duplicated")
        } else {
            writeln!(f, "  result: {} violations:", self.violations.len())?;
            for v in self.violations.iter().take(20) {
                writeln!(f, "    - {v}")?;
            }
            Ok(())
        }
    }
}

/// The soak could not run (a setup step failed), as opposed to running and finding violations.
#[derive(Debug, thiserror::Error)]
#[error("soak setup: {0}")]
pub struct SoakError(pub String);

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> SoakError + '_ {
    move |e| SoakError(format!("{what}: {e}"))
}

/// One event of the fault schedule.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillServer { down: Duration },
    KillClient(usize),
    Refuse { window: Duration },
    CutAll,
}

/// What the children printed, shared with their reader threads.
#[derive(Default)]
struct Tally {
    /// Every message reported queued.
    queued: Vec<Queued>,
    online: usize,
    offline: usize,
    interrupted: usize,
    errors: BTreeMap<String, usize>,
    send_errors: Vec<String>,
    changes: BTreeMap<String, usize>,
    change_errors: BTreeMap<String, usize>,
}

/// A device's store, as the checks see it.
#[derive(Clone, Debug)]
pub struct DeviceStore {
    /// The user of the device.
    pub user: String,
    /// Its data directory.
    pub data: PathBuf,
    /// The rooms it is a member of.
    pub rooms: Vec<String>,
}

/// A message a device reported as durably queued (`send_text` returned).
#[derive(Clone, Debug)]
pub struct Queued {
    /// The sender.
    pub user: String,
    /// The room.
    pub room: String,
    /// Its local (txn) id: how the server's answers to its sender name it.
    pub local_id: String,
    /// Its text as queued (unique across the run; an edit may replace it).
    pub text: String,
}

/// A device process and what it needs to be restarted.
struct Device {
    store: DeviceStore,
    child: Child,
    incarnation: u32,
    /// Runs the core's scheduler (`--live`).
    live: bool,
}

impl Drop for Device {
    /// A soak that stops early (a setup error, a panic) leaves no device running.
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Starts the server on `addr` (a port a kill just released: retried for a while).
pub(crate) async fn start_server(addr: SocketAddr, db: &Path) -> Result<RunningServer, SoakError> {
    let mut config = ServerConfig::for_tests(db);
    config.addr = addr;
    // The port was just released by a kill; allow a bounded number of tries.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match chatsync_server::start(config.clone()).await {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::task::yield_now().await;
            }
            Err(e) => return Err(SoakError(format!("restart server: {e}"))),
        }
    }
}

fn spawn_device(
    config: &SoakConfig,
    proxy_url: &str,
    device: &Device,
    tally: &Arc<Mutex<Tally>>,
) -> Result<Child, SoakError> {
    let seed = config
        .seed
        .wrapping_mul(1_000_003)
        .wrapping_add(u64::from(device.incarnation) * 7919)
        .wrapping_add(device.store.user.len() as u64);
    let mut child = Command::new(&config.client_bin)
        .arg("--server")
        .arg(proxy_url)
        .arg("--data")
        .arg(&device.store.data)
        .arg("--user")
        .arg(&device.store.user)
        .arg("--rooms")
        .arg(device.store.rooms.join(","))
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--tag")
        .arg(device.incarnation.to_string())
        .arg("--sends")
        .arg(config.sends_per_client.to_string())
        .arg("--pause-ms")
        .arg(config.pause_ms.to_string())
        .args(device.live.then_some("--live"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(setup("spawn chatsync-soak-client"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let tally = tally.clone();
    let user = device.store.user.clone();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(rest) = line.strip_prefix("queued ") {
                let mut words = rest.splitn(3, ' ');
                if let (Some(room), Some(local_id), Some(text)) =
                    (words.next(), words.next(), words.next())
                {
                    t.queued.push(Queued {
                        user: user.clone(),
                        room: room.to_owned(),
                        local_id: local_id.to_owned(),
                        text: text.to_owned(),
                    });
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("change ") {
                let words: Vec<&str> = rest.splitn(4, ' ').collect();
                match words.as_slice() {
                    [op, "ok"] => *t.changes.entry((*op).to_owned()).or_default() += 1,
                    [op, "error", kind, ..] => {
                        *t.change_errors.entry(format!("{op} {kind}")).or_default() += 1
                    }
                    _ => {}
                }
                continue;
            }
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("sync"), Some("online"), Some(rest)) => {
                    t.online += 1;
                    let pending = rest.split(' ').nth(1).unwrap_or("0");
                    if pending != "0" {
                        t.interrupted += 1;
                    }
                }
                (Some("sync"), Some("offline"), _) => t.offline += 1,
                (Some("sync-error"), Some(kind), _) => {
                    *t.errors.entry(kind.to_owned()).or_default() += 1
                }
                (Some("send-error" | "open-error" | "login-error"), _, _) => {
                    t.send_errors.push(format!("{user}: {line}"))
                }
                _ => {}
            }
        }
    });
    Ok(child)
}

fn kill(child: &mut Child) {
    // std's kill is SIGKILL on unix: no chance to flush or clean up.
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs the soak in `work_dir` (server database and device stores go there).
pub async fn run(config: &SoakConfig, work_dir: &Path) -> Result<SoakReport, SoakError> {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let db = match &config.postgres {
        Some(url) => PathBuf::from(url),
        None => work_dir.join("server.db"),
    };
    let mut servers = Vec::new();
    for _ in 0..config.instances.max(1) {
        servers.push(start_server(SocketAddr::from(([127, 0, 0, 1], 0)), &db).await?);
    }
    let server_addrs: Vec<SocketAddr> = servers.iter().map(RunningServer::addr).collect();
    let harness = Harness::new(servers[0].url());
    let proxy = ChaosProxy::start_spread(server_addrs.clone(), config.seed)
        .await
        .map_err(setup("proxy"))?;
    let mut next_kill = 0;

    // The scene: users u0..uK, rooms each shared by most of them, made straight on the server.
    let users: Vec<String> = (0..config.clients).map(|i| format!("u{i}")).collect();
    let admin = harness.token("soak-admin").await.map_err(setup("token"))?;
    let mut room_members: Vec<(String, Vec<String>)> = Vec::new();
    for r in 0..config.rooms.max(1) {
        let members: Vec<String> = users
            .iter()
            .enumerate()
            .filter(|(i, _)| config.rooms <= 1 || i % config.rooms != r)
            .map(|(_, u)| u.clone())
            .collect();
        let room = harness
            .create_room(&admin, &format!("soak {r}"), &members)
            .await
            .map_err(setup("create room"))?;
        room_members.push((room.id, members));
    }
    let rooms_of = |user: &str| -> Vec<String> {
        room_members
            .iter()
            .filter(|(_, m)| m.iter().any(|u| u == user))
            .map(|(id, _)| id.clone())
            .collect()
    };

    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut devices = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let mut device = Device {
            store: DeviceStore {
                user: user.clone(),
                data: work_dir.join(format!("device-{user}")),
                rooms: rooms_of(user),
            },
            child: Command::new("true").spawn().map_err(setup("spawn true"))?,
            incarnation: 0,
            live: config.live_every > 0 && i % config.live_every == 0,
        };
        let _ = device.child.wait();
        device.child = spawn_device(config, &proxy.url(), &device, &tally)?;
        devices.push(device);
    }
    proxy.set_rates(config.rates);
    let live_devices = devices.iter().filter(|d| d.live).count();

    // The fault schedule, drawn from the seed: times in the first 90% of the run.
    let mut schedule: Vec<(Duration, Fault)> = Vec::new();
    let span = config.duration.mul_f64(0.9);
    let at = |rng: &mut fastrand::Rng| span.mul_f64(0.05 + 0.95 * rng.f64());
    for _ in 0..config.server_kills {
        let down = Duration::from_millis(rng.u64(200..=1_500));
        schedule.push((at(&mut rng), Fault::KillServer { down }));
    }
    for _ in 0..config.client_kills {
        let who = rng.usize(..devices.len());
        schedule.push((at(&mut rng), Fault::KillClient(who)));
    }
    for _ in 0..config.refusal_windows {
        let window = Duration::from_millis(rng.u64(300..=1_500));
        schedule.push((at(&mut rng), Fault::Refuse { window }));
        schedule.push((at(&mut rng), Fault::CutAll));
    }
    schedule.sort_by_key(|(t, _)| *t);

    let mut report = SoakReport {
        live_devices,
        ..SoakReport::default()
    };
    let chaos_start = tokio::time::Instant::now();
    for (t, fault) in schedule {
        // The schedule's own clock: waiting for the next planned fault, not for a condition.
        tokio::time::sleep_until(chaos_start + t).await;
        match fault {
            Fault::KillServer { down } => {
                let i = next_kill % servers.len();
                next_kill += 1;
                let killed = servers.remove(i);
                killed.kill().await;
                tokio::time::sleep(down).await;
                servers.insert(i, start_server(server_addrs[i], &db).await?);
                report.server_restarts += 1;
            }
            Fault::KillClient(i) => {
                let device = &mut devices[i];
                kill(&mut device.child);
                device.incarnation += 1;
                device.child = spawn_device(config, &proxy.url(), device, &tally)?;
                report.client_restarts += 1;
            }
            Fault::Refuse { window } => {
                proxy.refuse(true).await.map_err(setup("refuse"))?;
                tokio::time::sleep(window).await;
                proxy.refuse(false).await.map_err(setup("resume"))?;
            }
            Fault::CutAll => proxy.cut_all(),
        }
    }
    tokio::time::sleep_until(chaos_start + config.duration).await;

    // Faults stop; the devices are killed one last time (mid-whatever they were doing).
    for device in &mut devices {
        kill(&mut device.child);
    }
    proxy.set_rates(FaultRates::NONE);
    report.proxy = proxy.stats();
    {
        let t = tally.lock().unwrap_or_else(|p| p.into_inner());
        report.queued = t.queued.len();
        report.syncs_online = t.online;
        report.syncs_offline = t.offline;
        report.flushes_interrupted = t.interrupted;
        report.sync_errors = t.errors.clone();
        report.send_errors = t.send_errors.clone();
        report.changes = t.changes.clone();
        report.change_errors = t.change_errors.clone();
    }

    // Drain: each store, reopened in this process, syncs straight with the server until its
    // outbox is empty; then rounds over all of them until no one gets anything new.
    let url = servers[0].url();
    let stores: Vec<DeviceStore> = devices.iter().map(|d| d.store.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        report.drain_rounds += 1;
        let mut quiet = true;
        for store in &stores {
            let client = open_store(&url, store)?;
            let r = client.sync_once().await.map_err(setup("drain sync"))?;
            if !r.online
                || r.pending > 0
                || r.failed > 0
                || !r.new_messages.is_empty()
                || r.sent > 0
            {
                quiet = false;
            }
        }
        if quiet {
            break;
        }
        if Instant::now() > deadline {
            report
                .violations
                .push("the stores did not converge within 60 s of draining".into());
            break;
        }
    }
    let queued = tally
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .queued
        .clone();
    let (delivered, violations) = verify(&url, &room_members, &queued, &stores).await?;
    report.delivered = delivered;
    report.violations.extend(violations);
    drop(proxy);
    for server in servers {
        server.shutdown().await;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Opens a device store in this process against `server_url` (dev tokens).
pub fn open_store(server_url: &str, store: &DeviceStore) -> Result<Arc<ChatClient>, SoakError> {
    let mut c = ClientConfig::new(
        server_url,
        store.data.clone(),
        store.user.clone(),
        TokenSource::DevTokenRoute,
    );
    c.cache_capacity_bytes = 1024 * 1024;
    ChatClient::new(c).map_err(setup("open a device store"))
}

/// One message as a device should show it once converged: what the checks compare, field by
/// field, between a store and the server.
#[derive(Clone, Debug, PartialEq)]
struct Shown {
    server_id: Option<u64>,
    sender: String,
    state: MessageState,
    text: String,
    deleted: bool,
    edited_at: Option<String>,
    /// (key, count, me), sorted by key.
    reactions: Vec<(String, u32, bool)>,
    /// Sorted.
    read_by: Vec<String>,
}

/// The server's answers, per room and user: the truth the stores are checked against.
struct Truth {
    /// Every message of a room as a member gets it (`me`, `txn_id` are per user).
    views: HashMap<(String, String), Vec<chatsync_protocol::v2::Message>>,
    /// A user's initial v2 sync: every member's receipt and the user's unread count, per room.
    syncs: HashMap<String, chatsync_protocol::v2::SyncResponse>,
}

impl Truth {
    /// What `user`'s device must show for the messages of `room`, oldest first.
    fn expected(&self, room: &str, user: &str) -> Vec<Shown> {
        let receipts = self
            .syncs
            .get(user)
            .and_then(|s| s.rooms.get(room))
            .map(|r| r.receipts.clone())
            .unwrap_or_default();
        let view = self
            .views
            .get(&(room.to_owned(), user.to_owned()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        view.iter()
            .map(|m| {
                let mut reactions: Vec<(String, u32, bool)> = m
                    .reactions
                    .iter()
                    .map(|r| (r.key.clone(), r.count, r.me))
                    .collect();
                reactions.sort();
                let mut read_by: Vec<String> = receipts
                    .iter()
                    .filter(|(u, read)| **read >= m.id && **u != m.user_id)
                    .map(|(u, _)| u.clone())
                    .collect();
                read_by.sort();
                Shown {
                    server_id: Some(m.id),
                    sender: m.user_id.clone(),
                    state: MessageState::Sent,
                    text: if m.deleted {
                        String::new()
                    } else {
                        m.text().unwrap_or("").to_owned()
                    },
                    deleted: m.deleted,
                    edited_at: m.edited_at.clone(),
                    reactions,
                    read_by,
                }
            })
            .collect()
    }
}

/// Reads the server's truth (every room of `room_members` as each member gets it, and each
/// member's initial sync, via dev tokens) and checks the promises against the `queued` reports
/// and the device `stores`. Returns the number of messages on the server and the broken
/// promises (empty: all kept).
pub async fn verify(
    server_url: &str,
    room_members: &[(String, Vec<String>)],
    queued: &[Queued],
    stores: &[DeviceStore],
) -> Result<(usize, Vec<String>), SoakError> {
    let harness = Harness::new(server_url);
    let mut truth = Truth {
        views: HashMap::new(),
        syncs: HashMap::new(),
    };
    let mut delivered = 0;
    for (room, members) in room_members {
        for (i, member) in members.iter().enumerate() {
            let token = harness.token(member).await.map_err(setup("token"))?;
            let history = harness
                .v2_full_history(&token, room)
                .await
                .map_err(setup("history"))?;
            if i == 0 {
                delivered += history.len();
            }
            truth.views.insert((room.clone(), member.clone()), history);
            if !truth.syncs.contains_key(member) {
                let sync = harness
                    .v2_initial_sync(&token)
                    .await
                    .map_err(setup("sync"))?;
                truth.syncs.insert(member.clone(), sync);
            }
        }
    }
    let mut v = Vec::new();
    // No text twice on the server (tombstones have none).
    let mut on_server: HashMap<&str, Vec<(&str, &str, u64)>> = HashMap::new();
    for (room, members) in room_members {
        let Some(first) = members.first() else {
            continue;
        };
        for m in &truth.views[&(room.clone(), first.clone())] {
            if !m.deleted {
                on_server.entry(m.text().unwrap_or("")).or_default().push((
                    room.as_str(),
                    m.user_id.as_str(),
                    m.id,
                ));
            }
        }
    }
    for (text, copies) in &on_server {
        if copies.len() > 1 {
            v.push(format!(
                "{text:?} is on the server {} times: {copies:?}",
                copies.len()
            ));
        }
    }
    // Every queued message is there, once, in its room, from its sender, under its txn id (as
    // its sender's answers name it; its text may have been edited since, or deleted).
    for Queued {
        user,
        room,
        local_id,
        text,
    } in queued
    {
        let mut copies: Vec<(&str, &str, u64)> = Vec::new();
        for ((r, viewer), messages) in &truth.views {
            if viewer != user {
                continue;
            }
            for m in messages {
                if m.txn_id.as_deref() == Some(local_id.as_str()) {
                    copies.push((r.as_str(), m.user_id.as_str(), m.id));
                }
            }
        }
        match copies.as_slice() {
            [(r, u, _)] if r == room && u == user => {}
            [] => v.push(format!(
                "queued {text:?} ({user} in {room}, txn {local_id}) never reached the server"
            )),
            other => v.push(format!(
                "queued {text:?} ({user} in {room}, txn {local_id}) found as {other:?}"
            )),
        }
    }
    // Every store equals the server, room by room, message by message, as its user sees it.
    for device in stores {
        let client = open_store(server_url, device)?;
        let outbox = client.outbox().map_err(setup("outbox"))?;
        if !outbox.is_empty() {
            v.push(format!(
                "{}: {} messages left in the outbox: {:?}",
                device.user,
                outbox.len(),
                outbox
                    .iter()
                    .take(3)
                    .map(|e| format!("{:?} {:?} {:?}", e.kind, e.state, e.failure_reason))
                    .collect::<Vec<_>>()
            ));
        }
        let held = client.rooms().map_err(setup("rooms"))?;
        for room in &held {
            if !room_members
                .iter()
                .any(|(id, m)| *id == room.id && m.contains(&device.user))
            {
                v.push(format!(
                    "{} holds room {} it is not a member of",
                    device.user, room.id
                ));
            }
        }
        for room in &device.rooms {
            // Newest first, paged back until the start; `messages` never reads across a gap.
            let mut shown = Vec::new();
            let mut before = None;
            loop {
                let page = client
                    .messages(room.clone(), 1_000, before)
                    .map_err(setup("messages"))?;
                let Some(last) = page.last() else { break };
                before = last.server_id;
                let n = page.len();
                shown.extend(page);
                if n < 1_000 || before.is_none() {
                    break;
                }
            }
            shown.reverse();
            let shown: Vec<Shown> = shown
                .iter()
                .map(|m| {
                    let mut reactions: Vec<(String, u32, bool)> = m
                        .reactions
                        .iter()
                        .map(|r| (r.key.clone(), r.count, r.me))
                        .collect();
                    reactions.sort();
                    let mut read_by = m.read_by.clone();
                    read_by.sort();
                    Shown {
                        server_id: m.server_id,
                        sender: m.sender.id.clone(),
                        state: m.state,
                        text: m.text.clone(),
                        deleted: m.deleted,
                        edited_at: m.edited_at.clone(),
                        reactions,
                        read_by,
                    }
                })
                .collect();
            let expected = truth.expected(room, &device.user);
            if shown != expected {
                let first_diff = shown
                    .iter()
                    .zip(&expected)
                    .position(|(a, b)| a != b)
                    .unwrap_or(shown.len().min(expected.len()));
                v.push(format!(
                    "{} room {room}: store shows {} messages, server holds {}; first difference at {first_diff}: {:?} vs {:?}",
                    device.user,
                    shown.len(),
                    expected.len(),
                    shown.get(first_diff),
                    expected.get(first_diff)
                ));
            }
            let unread = held.iter().find(|r| r.id == *room).map(|r| r.unread);
            let server_unread = truth
                .syncs
                .get(&device.user)
                .and_then(|s| s.rooms.get(room))
                .map(|r| r.unread);
            if unread.is_some() && unread != server_unread {
                v.push(format!(
                    "{} room {room}: store says {unread:?} unread, the server {server_unread:?}",
                    device.user
                ));
            }
        }
    }
    Ok((delivered, v))
}
