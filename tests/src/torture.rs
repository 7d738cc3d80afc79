//! The crash torture (issue 12): device processes (`chatsync-torture-client`) live short lives
//! against the real server (up, down, and through the chaos proxy) and are SIGKILLed at random
//! moments, opening and flushing included; a disk slot does the same on a small tmpfs that is
//! filled up or remounted read-only. After every life the harness checks the promise on the
//! store that life left behind:
//! - **the store opens** (a real `ChatClient::new` in this process);
//! - **nothing lost**: every message a life reported queued (`send_text` returned) is still in
//!   the outbox or on the server, unless the app discarded it;
//! - **nothing duplicated**: no text is on the server twice; no message is stored twice on the
//!   device;
//! - **ids stay ordered**: each device's messages land on the server in the order they were
//!   queued, per room, and the store reads back in id order.
//!
//! At the end every store is drained against the server and the soak's convergence check
//! ([`crate::soak::verify`]) runs over all of them. Kills are counted only when they land on a
//! running process, by the phase the process was in (starting, opening, working).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{ChatClient, ChatError, ClientConfig, MessageState, TokenSource};
use chatsync_server::RunningServer;
use tokio::sync::Mutex as AsyncMutex;

use crate::http::Harness;
use crate::proxy::{ChaosProxy, FaultRates};
use crate::soak::{self, DeviceStore, Queued};

/// What to run.
#[derive(Clone, Debug)]
pub struct TortureConfig {
    /// The `chatsync-torture-client` binary.
    pub client_bin: PathBuf,
    /// SIGKILLs to land on running device processes (disk-slot kills not included).
    pub kills: u32,
    /// Device processes at once (each its own user and store).
    pub slots: usize,
    /// Full-disk cycles of the disk slot (0: none).
    pub disk_full_cycles: u32,
    /// Read-only cycles of the disk slot (0: none).
    pub read_only_cycles: u32,
    /// Seed of everything random.
    pub seed: u64,
}

impl TortureConfig {
    /// Size 1 is the run of the test suite: 300 kills, 8 full-disk and 4 read-only cycles. Each
    /// unit adds as much again.
    pub fn sized(client_bin: PathBuf, size: u32, seed: u64) -> TortureConfig {
        let size = size.max(1);
        TortureConfig {
            client_bin,
            kills: 300 * size,
            slots: 4,
            disk_full_cycles: 8 * size,
            read_only_cycles: 4 * size,
            seed,
        }
    }
}

/// What the torture did and found.
#[derive(Clone, Debug, Default)]
pub struct TortureReport {
    /// SIGKILLs that landed on a running device process, by the phase it was in.
    pub kills_by_phase: BTreeMap<String, u64>,
    /// Device lives run (killed or not).
    pub lives: u64,
    /// Stores checked (one per life).
    pub checks: u64,
    /// Messages reported queued.
    pub queued: u64,
    /// Messages discarded by the app (excluded from "lost").
    pub discarded: u64,
    /// Sends that failed with a storage error (the full disk), as the app was told.
    pub storage_send_errors: u64,
    /// Lives whose store did not open (the child's own open) with a storage error on a disk
    /// that was full or read-only at the time: expected, and checked to open once it is fine.
    pub opens_refused_on_bad_disk: u64,
    /// Server kills (each followed by a restart on the same port and database).
    pub server_kills: u64,
    /// Full-disk and read-only cycles run.
    pub disk_full_cycles: u64,
    /// Read-only cycles run.
    pub read_only_cycles: u64,
    /// Why the disk cycles did not run, when they did not (no root, no tmpfs).
    pub disk_skipped: Option<String>,
    /// A message shown twice for a while: a pending echo whose send had in fact reached the
    /// server (killed between the server's answer and the local confirmation). Protocol v1
    /// cannot tell; the resend (same txn id) ends it. Counted, not a violation.
    pub echo_and_copy: u64,
    /// Stores that did not open.
    pub unreadable: Vec<String>,
    /// Queued messages found nowhere.
    pub lost: Vec<String>,
    /// Messages on the server (or stored on a device) twice.
    pub duplicated: Vec<String>,
    /// Messages out of order.
    pub misordered: Vec<String>,
    /// The final convergence check's findings.
    pub final_violations: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl TortureReport {
    /// SIGKILLs that landed.
    pub fn kills(&self) -> u64 {
        self.kills_by_phase.values().sum()
    }

    /// Whether every promise held.
    pub fn passed(&self) -> bool {
        self.unreadable.is_empty()
            && self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.misordered.is_empty()
            && self.final_violations.is_empty()
    }
}

impl std::fmt::Display for TortureReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "torture finished in {:.1} s", self.elapsed.as_secs_f64())?;
        writeln!(
            f,
            "  kills: {} landed ({:?}); {} lives, {} stores checked",
            self.kills(),
            self.kills_by_phase,
            self.lives,
            self.checks
        )?;
        writeln!(
            f,
            "  messages: {} queued, {} discarded by the app; {} server kills",
            self.queued, self.discarded, self.server_kills
        )?;
        match &self.disk_skipped {
            Some(why) => writeln!(f, "  disk cycles: skipped ({why})")?,
            None => writeln!(
                f,
                "  disk cycles: {} full, {} read-only; {} sends refused with a storage error, {} opens refused while the disk was bad",
                self.disk_full_cycles, self.read_only_cycles, self.storage_send_errors, self.opens_refused_on_bad_disk
            )?,
        }
        writeln!(
            f,
            "  shown twice until resent (protocol v1 cannot tell): {}",
            self.echo_and_copy
        )?;
        writeln!(
            f,
            "  result: {} unreadable stores, {} lost, {} duplicated, {} misordered, {} final violations",
            self.unreadable.len(),
            self.lost.len(),
            self.duplicated.len(),
            self.misordered.len(),
            self.final_violations.len()
        )?;
        for v in self
            .unreadable
            .iter()
            .chain(&self.lost)
            .chain(&self.duplicated)
            .chain(&self.misordered)
            .chain(&self.final_violations)
            .take(30)
        {
            writeln!(f, "    - {v}")?;
        }
        Ok(())
    }
}

/// The torture could not run (a setup step failed), as opposed to running and finding faults.
#[derive(Debug, thiserror::Error)]
#[error("torture setup: {0}")]
pub struct TortureError(pub String);

fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> TortureError + '_ {
    move |e| TortureError(format!("{what}: {e}"))
}

/// What the harness knows of one device across its lives: what it was promised.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Messages reported queued, in the order they were queued, with their local ids.
    pub queued: Vec<(String, Queued)>,
    /// Local ids the app asked to discard (they may be gone, or may have been sent once).
    pub discarding: HashSet<String>,
}

/// The server's truth, read incrementally straight from the server (not through the proxy).
pub struct Mirror {
    harness: Harness,
    /// Per room: a member, their token and every message so far, ascending.
    rooms: BTreeMap<String, (String, String, Vec<chatsync_protocol::Message>)>,
    /// Text -> (room, sender, id) of every copy on the server.
    texts: HashMap<String, Vec<(String, String, u64)>>,
    /// Per (sender, room): the (life, n) of the newest message seen, for the order check.
    newest: HashMap<(String, String), (u64, u64)>,
    /// Findings so far (duplicates, order), each reported once.
    pub duplicated: Vec<String>,
    /// Messages that landed out of queue order.
    pub misordered: Vec<String>,
}

impl Mirror {
    /// A mirror of `rooms` (room id -> a member) on the server at `server_url`.
    pub async fn new(server_url: &str, rooms: &[(String, String)]) -> Result<Mirror, TortureError> {
        let harness = Harness::new(server_url);
        let mut mirrored = BTreeMap::new();
        for (room, member) in rooms {
            let token = harness.token(member).await.map_err(setup("token"))?;
            mirrored.insert(room.clone(), (member.clone(), token, Vec::new()));
        }
        Ok(Mirror {
            harness,
            rooms: mirrored,
            texts: HashMap::new(),
            newest: HashMap::new(),
            duplicated: Vec::new(),
            misordered: Vec::new(),
        })
    }

    /// Reads what is new on the server (retrying while it restarts) and checks it.
    pub async fn refresh(&mut self) -> Result<(), TortureError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.try_refresh().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(TortureError(format!("read the server: {e}"))),
            }
        }
    }

    async fn try_refresh(&mut self) -> Result<(), crate::http::HttpError> {
        for (room, (member, token, held)) in &mut self.rooms {
            let after = held.last().map(|m| m.id);
            let new = match self.harness.history_after(token, room, after).await {
                // Dev tokens expire (an hour): a long run takes a fresh one.
                Err(e) if e.detail.starts_with("401") => {
                    *token = self.harness.token(member).await?;
                    self.harness.history_after(token, room, after).await?
                }
                other => other?,
            };
            for m in new {
                let text = m.text().unwrap_or("").to_owned();
                let copies = self.texts.entry(text.clone()).or_default();
                copies.push((room.clone(), m.user_id.clone(), m.id));
                if copies.len() == 2 {
                    self.duplicated
                        .push(format!("{text:?} is on the server twice: {copies:?}"));
                }
                if let Some(order) = life_and_number(&text) {
                    let key = (m.user_id.clone(), room.clone());
                    if let Some(prev) = self.newest.get(&key) {
                        if order <= *prev {
                            self.misordered.push(format!(
                                "{text:?} (id {}) landed after {:?} of the same sender in {room}",
                                m.id, prev
                            ));
                        }
                    }
                    self.newest.insert(key, order);
                }
                held.push(m);
            }
        }
        Ok(())
    }

    /// Whether `text` is on the server.
    pub fn holds(&self, text: &str) -> bool {
        self.texts.contains_key(text)
    }
}

/// `(life, n)` of a torture text `user/life/n`.
fn life_and_number(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.rsplitn(3, '/');
    let n = parts.next()?.parse().ok()?;
    let life = parts.next()?.parse().ok()?;
    Some((life, n))
}

/// What one check of a store found.
#[derive(Clone, Debug, Default)]
pub struct StoreCheck {
    /// The store did not open: the error.
    pub unreadable: Option<String>,
    /// Queued messages found nowhere.
    pub lost: Vec<String>,
    /// Messages stored twice on the device.
    pub duplicated: Vec<String>,
    /// Store reads out of id order.
    pub misordered: Vec<String>,
    /// Pending echoes whose message the store also holds as sent (protocol v1).
    pub echo_and_copy: u64,
}

/// Opens the store of `device` (as the app would, no network I/O), reads its outbox and
/// messages, and checks them against the `ledger` and the server `mirror` (refreshed after the
/// store was read, so a message is never missed between the two reads).
pub async fn check_store(
    server_url: &str,
    device: &DeviceStore,
    ledger: &Ledger,
    mirror: &mut Mirror,
) -> Result<StoreCheck, TortureError> {
    let mut found = StoreCheck::default();
    let client = match open_waiting(server_url, device).await {
        Ok(c) => c,
        Err(e) => {
            found.unreadable = Some(e.to_string());
            return Ok(found);
        }
    };
    let read = (|| -> Result<_, ChatError> {
        let outbox = client.outbox()?;
        let mut rooms = Vec::new();
        for room in &device.rooms {
            rooms.push((room.clone(), recent_messages(&client, room)?));
        }
        Ok((outbox, rooms))
    })();
    drop(client);
    let (outbox, rooms) = match read {
        Ok(r) => r,
        Err(e) => {
            found.unreadable = Some(format!("opened, but reading failed: {e}"));
            return Ok(found);
        }
    };
    mirror.refresh().await?;

    let queued_ids: HashSet<&str> = outbox.iter().map(|e| e.local_id.as_str()).collect();
    for (local_id, q) in &ledger.queued {
        if ledger.discarding.contains(local_id) {
            continue;
        }
        if !queued_ids.contains(local_id.as_str()) && !mirror.holds(&q.text) {
            found.lost.push(format!(
                "{}: queued {:?} ({local_id}, room {}) is neither queued nor on the server",
                device.user, q.text, q.room
            ));
        }
    }
    let pending_texts: HashSet<&str> = outbox.iter().map(|e| e.text.as_str()).collect();
    for (room, messages) in &rooms {
        let mut seen = HashSet::new();
        let mut previous: Option<u64> = None;
        for m in messages {
            let Some(id) = m.server_id else { continue };
            if m.state != MessageState::Sent {
                continue;
            }
            if let Some(prev) = previous {
                if id >= prev {
                    found.misordered.push(format!(
                        "{} room {room}: id {id} read after {prev} (newest first)",
                        device.user
                    ));
                }
            }
            previous = Some(id);
            if !seen.insert(m.text.clone()) {
                found.duplicated.push(format!(
                    "{} room {room}: {:?} is stored twice",
                    device.user, m.text
                ));
            }
            if pending_texts.contains(m.text.as_str()) {
                found.echo_and_copy += 1;
            }
        }
    }
    Ok(found)
}

/// Messages a check reads per room, newest first: where a life's sends, syncs and kills land.
/// (Older history was checked by earlier lives; reading all of it after every kill made a long
/// run quadratic.)
const CHECKED_PER_ROOM: u32 = 300;

/// The newest messages the store shows for `room`, newest first.
fn recent_messages(
    client: &ChatClient,
    room: &str,
) -> Result<Vec<chatsync_core::ChatMessage>, ChatError> {
    client.messages(room.to_owned(), CHECKED_PER_ROOM, None)
}

/// Opens a device store in this process, waiting while another process still holds it.
async fn open_waiting(
    server_url: &str,
    device: &DeviceStore,
) -> Result<Arc<ChatClient>, ChatError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = server_url.to_owned();
        let device = device.clone();
        let opened = tokio::task::spawn_blocking(move || open_store(&url, &device))
            .await
            .expect("open task");
        match opened {
            Err(ChatError::Busy(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

fn open_store(server_url: &str, device: &DeviceStore) -> Result<Arc<ChatClient>, ChatError> {
    let mut c = ClientConfig::new(
        server_url,
        device.data.clone(),
        device.user.clone(),
        TokenSource::DevTokenRoute,
    );
    c.cache_capacity_bytes = 1024 * 1024;
    ChatClient::new(c)
}

/// The phase a device process is in, from the last line it printed.
#[derive(Clone, Debug, Default)]
struct Progress {
    lines: Vec<String>,
}

impl Progress {
    fn phase(&self) -> &'static str {
        let Some(last) = self.lines.last() else {
            return "starting";
        };
        match last.split(' ').next().unwrap_or("") {
            "opening" => "opening",
            "opened" | "queued" | "discarded" | "synced" | "error" => "between operations",
            "sending" => "sending",
            "discarding" => "discarding",
            "step" => "working",
            _ => "working",
        }
    }
}

/// One life of a device process, as [`live_once`] runs it.
pub(crate) struct Life<'a> {
    pub device: &'a DeviceStore,
    /// The life's number (makes its texts unique).
    pub number: u64,
    pub seed: u64,
    /// Run `background_sync_at` with this budget instead of opening as an app.
    pub background: Option<u64>,
    /// When to SIGKILL it (if still running).
    pub kill_after: Duration,
    /// Run once the life reports its store open.
    pub on_opened: Option<Box<dyn FnOnce() + Send>>,
    /// Operations at most.
    pub ops: u32,
}

/// Spawns a life, kills it after `kill_after` (if still running), reaps it. Returns its lines
/// and the phase it was killed in (`None`: it ended by itself).
async fn live_once(
    config: &TortureConfig,
    server: &str,
    bad_room: Option<&str>,
    life: Life<'_>,
) -> Result<(Vec<String>, Option<&'static str>), TortureError> {
    let Life {
        device,
        number,
        seed,
        background,
        kill_after,
        mut on_opened,
        ops,
    } = life;
    let mut command = Command::new(&config.client_bin);
    command
        .arg("--ops")
        .arg(ops.to_string())
        .arg("--server")
        .arg(server)
        .arg("--data")
        .arg(&device.data)
        .arg("--user")
        .arg(&device.user)
        .arg("--rooms")
        .arg(device.rooms.join(","))
        .arg("--seed")
        .arg(seed.to_string())
        .arg("--tag")
        .arg(number.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(bad) = bad_room {
        command.arg("--bad-room").arg(bad);
    }
    if let Some(budget) = background {
        command.arg("--background").arg(budget.to_string());
    }
    let mut child = command.spawn().map_err(setup("spawn the torture client"))?;
    let progress = Arc::new(Mutex::new(Progress::default()));
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = {
        let progress = progress.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                progress
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .lines
                    .push(line);
            }
        })
    };
    // The kill's own clock: how long this life may run, not a wait for a condition.
    let deadline = tokio::time::Instant::now() + kill_after;
    let mut killed_in = None;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if on_opened.is_some()
            && progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .lines
                .iter()
                .any(|l| l == "opened")
        {
            if let Some(action) = on_opened.take() {
                action();
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let phase = progress.lock().unwrap_or_else(|p| p.into_inner()).phase();
            // std's kill is SIGKILL: no chance to flush or clean up.
            if child.kill().is_ok() {
                killed_in = Some(phase);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut child: Child = child;
    tokio::task::spawn_blocking(move || {
        let _ = child.wait();
        let _ = reader.join();
    })
    .await
    .map_err(setup("reap"))?;
    let lines = std::mem::take(&mut progress.lock().unwrap_or_else(|p| p.into_inner()).lines);
    // A kill that raced the process's own exit did not land.
    let killed_in = killed_in.filter(|_| lines.last().map(String::as_str) != Some("done"));
    Ok((lines, killed_in))
}

/// Updates the ledger with one life's lines.
fn record(ledger: &mut Ledger, user: &str, lines: &[String], report: &mut TortureReport) {
    for line in lines {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("queued"), Some(local_id), Some(room), Some(text)) => {
                report.queued += 1;
                ledger.queued.push((
                    local_id.to_owned(),
                    Queued {
                        user: user.to_owned(),
                        room: room.to_owned(),
                        local_id: local_id.to_owned(),
                        text: text.to_owned(),
                    },
                ));
            }
            (Some("discarding"), Some(local_id), _, _)
                if ledger.discarding.insert(local_id.to_owned()) =>
            {
                report.discarded += 1;
            }
            (Some("error"), Some("send"), Some("storage"), _) => report.storage_send_errors += 1,
            _ => {}
        }
    }
}

/// A kill delay: a third of the lives are cut within their first few milliseconds (process
/// start and opening the store), a third within their first operations, the rest anywhere.
fn kill_delay(rng: &mut fastrand::Rng) -> Duration {
    let ms = match rng.u32(0..3) {
        0 => rng.u64(0..=25),
        1 => rng.u64(0..=150),
        _ => rng.u64(0..=1_200),
    };
    Duration::from_millis(ms)
}

/// The server, killed and restarted by the network task, shared with the checks.
struct ServerSlot {
    server: Option<RunningServer>,
}

/// The shared scene of a run.
struct Scene {
    config: TortureConfig,
    server_url: String,
    proxy: ChaosProxy,
    bad_room: String,
    mirror: AsyncMutex<Mirror>,
    report: Mutex<TortureReport>,
    kills_left: Mutex<i64>,
}

impl Scene {
    fn report(&self) -> std::sync::MutexGuard<'_, TortureReport> {
        self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one kill off the budget; false when the budget is spent.
    fn kill_landed(&self, phase: &str) -> bool {
        self.report()
            .kills_by_phase
            .entry(phase.to_owned())
            .and_modify(|n| *n += 1)
            .or_insert(1);
        let mut left = self.kills_left.lock().unwrap_or_else(|p| p.into_inner());
        *left -= 1;
        *left > 0
    }

    fn kills_spent(&self) -> bool {
        *self.kills_left.lock().unwrap_or_else(|p| p.into_inner()) <= 0
    }

    fn merge(&self, device: &DeviceStore, check: StoreCheck) -> bool {
        let mut r = self.report();
        r.checks += 1;
        r.echo_and_copy += check.echo_and_copy;
        r.lost.extend(check.lost);
        r.duplicated.extend(check.duplicated);
        r.misordered.extend(check.misordered);
        match check.unreadable {
            Some(e) => {
                r.unreadable
                    .push(format!("{} ({}): {e}", device.user, device.data.display()));
                false
            }
            None => true,
        }
    }
}

/// One device slot: lives until the kill budget is spent.
async fn run_slot(
    scene: Arc<Scene>,
    device: DeviceStore,
    mut ledger: Ledger,
    seed: u64,
) -> Result<Ledger, TortureError> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut life = 0u64;
    while !scene.kills_spent() {
        life += 1;
        let background = (rng.u32(0..100) < 15).then(|| rng.u64(200..=2_000));
        let (lines, killed_in) = live_once(
            &scene.config,
            &scene.proxy.url(),
            Some(&scene.bad_room),
            Life {
                device: &device,
                number: life,
                seed: rng.u64(..),
                background,
                kill_after: kill_delay(&mut rng),
                on_opened: None,
                ops: 12,
            },
        )
        .await?;
        {
            let mut report = scene.report();
            report.lives += 1;
            record(&mut ledger, &device.user, &lines, &mut report);
        }
        if let Some(phase) = killed_in {
            scene.kill_landed(phase);
        }
        let check = {
            let mut mirror = scene.mirror.lock().await;
            check_store(&scene.server_url, &device, &ledger, &mut mirror).await?
        };
        if !scene.merge(&device, check) {
            // A store that does not open ends this slot: nothing more can be learnt from it.
            break;
        }
    }
    Ok(ledger)
}

/// The network over time: up, down (the proxy refuses), faulty (the proxy drops, cuts and
/// delays at random), and now and then the server killed and restarted, until `stop`.
async fn run_network(
    scene: Arc<Scene>,
    server: Arc<AsyncMutex<ServerSlot>>,
    db: PathBuf,
    addr: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), TortureError> {
    let mut rng = fastrand::Rng::with_seed(scene.config.seed ^ 0x5eed);
    let faulty = FaultRates {
        drop: 0.1,
        cut: 0.15,
        delay: 0.2,
        max_delay: Duration::from_millis(30),
        max_cut_after_bytes: 2_000,
        cut_chunk: 0.02,
    };
    let mut period = 0u32;
    while !*stop.borrow() {
        // The schedule's own clock: how long each network state lasts. Every fifth period the
        // server is killed (so every run has some), the others are drawn.
        let hold = Duration::from_millis(rng.u64(300..=2_500));
        period += 1;
        let draw = if period.is_multiple_of(5) {
            9
        } else {
            rng.u32(0..9)
        };
        match draw {
            0..=3 => scene.proxy.set_rates(FaultRates::NONE),
            4..=5 => {
                scene.proxy.refuse(true).await.map_err(setup("refuse"))?;
                tokio::time::sleep(hold).await;
                scene.proxy.refuse(false).await.map_err(setup("resume"))?;
                continue;
            }
            6..=8 => scene.proxy.set_rates(faulty),
            _ => {
                let mut slot = server.lock().await;
                if let Some(s) = slot.server.take() {
                    s.kill().await;
                }
                tokio::time::sleep(Duration::from_millis(rng.u64(50..=600))).await;
                slot.server = Some(
                    soak::start_server(addr, &db)
                        .await
                        .map_err(|e| TortureError(e.0))?,
                );
                scene.report().server_kills += 1;
                continue;
            }
        }
        tokio::time::sleep(hold).await;
    }
    scene.proxy.set_rates(FaultRates::NONE);
    Ok(())
}

/// Runs the torture in `work_dir`.
pub async fn run(config: &TortureConfig, work_dir: &Path) -> Result<TortureReport, TortureError> {
    let started = Instant::now();
    let db = work_dir.join("server.db");
    let server = soak::start_server(SocketAddr::from(([127, 0, 0, 1], 0)), &db)
        .await
        .map_err(|e| TortureError(e.0))?;
    let addr = server.addr();
    let server_url = server.url();
    let harness = Harness::new(server_url.clone());
    let proxy = ChaosProxy::start(addr, config.seed)
        .await
        .map_err(setup("proxy"))?;

    // Users t0..tK (and "tdisk" for the disk slot), two rooms each: one shared by all, one
    // shared with a neighbour.
    let mut users: Vec<String> = (0..config.slots).map(|i| format!("t{i}")).collect();
    users.push("tdisk".into());
    let admin = harness
        .token("torture-admin")
        .await
        .map_err(setup("token"))?;
    let everyone = harness
        .create_room(&admin, "torture all", &users)
        .await
        .map_err(setup("room"))?;
    let mut room_members: Vec<(String, Vec<String>)> = vec![(everyone.id.clone(), users.clone())];
    let mut devices = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let neighbour = &users[(i + 1) % users.len()];
        let members = vec![user.clone(), neighbour.clone()];
        let pair = harness
            .create_room(&admin, &format!("torture {user}"), &members)
            .await
            .map_err(setup("room"))?;
        room_members.push((pair.id.clone(), members));
    }
    for user in &users {
        let rooms = room_members
            .iter()
            .filter(|(_, m)| m.contains(user))
            .map(|(id, _)| id.clone())
            .collect();
        devices.push(DeviceStore {
            user: user.clone(),
            data: work_dir.join(format!("device-{user}")),
            rooms,
        });
    }
    let mirror_rooms: Vec<(String, String)> = room_members
        .iter()
        .map(|(id, m)| (id.clone(), m[0].clone()))
        .collect();
    let mirror = Mirror::new(&server_url, &mirror_rooms).await?;
    let scene = Arc::new(Scene {
        config: config.clone(),
        server_url: server_url.clone(),
        proxy,
        bad_room: "no-such-room".into(),
        mirror: AsyncMutex::new(mirror),
        report: Mutex::new(TortureReport::default()),
        kills_left: Mutex::new(i64::from(config.kills)),
    });
    let server = Arc::new(AsyncMutex::new(ServerSlot {
        server: Some(server),
    }));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let network = tokio::spawn(run_network(
        scene.clone(),
        server.clone(),
        db.clone(),
        addr,
        stop_rx,
    ));
    let mut slots = tokio::task::JoinSet::new();
    let disk_device = devices.pop().expect("the disk device");
    for (i, device) in devices.iter().enumerate() {
        slots.spawn(run_slot(
            scene.clone(),
            device.clone(),
            Ledger::default(),
            config.seed.wrapping_mul(31).wrapping_add(i as u64),
        ));
    }
    let disk = tokio::spawn(crate::torture_disk::run_disk_slot(
        scene_handle(&scene),
        disk_device.clone(),
        work_dir.to_owned(),
    ));
    let mut ledgers = Vec::new();
    while let Some(done) = slots.join_next().await {
        ledgers.push(done.map_err(setup("slot task"))??);
    }
    let (disk_ledger, disk_device, disk_mount) = disk.await.map_err(setup("disk task"))??;
    ledgers.push(disk_ledger);
    let mut all_devices = devices.clone();
    all_devices.push(disk_device);
    stop_tx.send_replace(true);
    network.await.map_err(setup("network task"))??;

    // Drain: the network is fine now; every store discards what the server refused for good
    // (the unknown room) and syncs until nothing moves, then the soak's convergence check.
    let mut report = std::mem::take(&mut *scene.report());
    let server_url = {
        let slot = server.lock().await;
        slot.server.as_ref().expect("server up").url()
    };
    let mut discarded_at_drain: HashSet<String> = HashSet::new();
    // A store found unreadable is reported already; the rest are drained and compared.
    let mut readable = Vec::new();
    for device in all_devices {
        match open_waiting(&server_url, &device).await {
            Ok(_) => readable.push(device),
            Err(e) => report.final_violations.push(format!(
                "{}: the store does not open at the end: {e}",
                device.user
            )),
        }
    }
    let all_devices = readable;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut quiet = true;
        for device in &all_devices {
            let client = open_waiting(&server_url, device)
                .await
                .map_err(setup("drain open"))?;
            for entry in client.outbox().map_err(setup("drain outbox"))? {
                if entry.state == MessageState::Failed || entry.room_id == scene.bad_room {
                    client
                        .discard(entry.local_id.clone())
                        .await
                        .map_err(setup("drain discard"))?;
                    discarded_at_drain.insert(entry.local_id);
                    quiet = false;
                }
            }
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
                .final_violations
                .push("the stores did not converge within 120 s of draining".into());
            break;
        }
    }
    // A device that was away while a room moved on holds the newest page and a gap below it
    // (filled when the user scrolls there, by design): scroll every room to its start.
    for device in &all_devices {
        let client = open_waiting(&server_url, device)
            .await
            .map_err(setup("drain open"))?;
        for room in &device.rooms {
            let timeline = client
                .timeline(room.clone())
                .map_err(setup("drain timeline"))?;
            let mut pages = 0;
            while timeline
                .paginate_backwards(100)
                .await
                .map_err(setup("drain scroll"))?
                .has_more
            {
                pages += 1;
                if pages > 10_000 {
                    report
                        .final_violations
                        .push(format!("{}: scrolling {room} never ended", device.user));
                    break;
                }
            }
        }
    }
    let promised: Vec<Queued> = ledgers
        .iter()
        .flat_map(|l| {
            l.queued
                .iter()
                .filter(|(id, q)| {
                    !l.discarding.contains(id)
                        && !discarded_at_drain.contains(id)
                        && q.room != scene.bad_room
                })
                .map(|(_, q)| q.clone())
        })
        .collect();
    let (_, violations) = soak::verify(&server_url, &room_members, &promised, &all_devices)
        .await
        .map_err(|e| TortureError(e.0))?;
    report.final_violations.extend(violations);
    {
        let mirror = scene.mirror.lock().await;
        report.duplicated.extend(mirror.duplicated.iter().cloned());
        report.misordered.extend(mirror.misordered.iter().cloned());
    }
    if let Some(s) = server.lock().await.server.take() {
        s.shutdown().await;
    }
    drop(disk_mount);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What the disk slot needs of the scene.
pub(crate) struct SceneHandle {
    scene: Arc<Scene>,
}

fn scene_handle(scene: &Arc<Scene>) -> SceneHandle {
    SceneHandle {
        scene: scene.clone(),
    }
}

impl SceneHandle {
    pub(crate) fn config(&self) -> &TortureConfig {
        &self.scene.config
    }
    pub(crate) fn proxy_url(&self) -> String {
        self.scene.proxy.url()
    }
    pub(crate) async fn live(
        &self,
        life: Life<'_>,
    ) -> Result<(Vec<String>, Option<&'static str>), TortureError> {
        live_once(
            &self.scene.config,
            &self.scene.proxy.url(),
            Some(&self.scene.bad_room),
            life,
        )
        .await
    }
    pub(crate) fn record(&self, ledger: &mut Ledger, user: &str, lines: &[String]) {
        let mut report = self.scene.report();
        report.lives += 1;
        record(ledger, user, lines, &mut report);
    }
    pub(crate) fn note(&self, f: impl FnOnce(&mut TortureReport)) {
        f(&mut self.scene.report());
    }
    /// Checks the store; false when it did not open.
    pub(crate) async fn check(
        &self,
        device: &DeviceStore,
        ledger: &Ledger,
    ) -> Result<bool, TortureError> {
        let check = {
            let mut mirror = self.scene.mirror.lock().await;
            check_store(&self.scene.server_url, device, ledger, &mut mirror).await?
        };
        Ok(self.scene.merge(device, check))
    }
    pub(crate) fn kill_delay(&self, rng: &mut fastrand::Rng) -> Duration {
        kill_delay(rng)
    }
}
