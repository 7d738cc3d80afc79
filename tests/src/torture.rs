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
//!   queued, per room, and the store reads back in id order;
//! - **no change lost** (protocol v2): every chat-model change the life was told was made (an
//!   edit, a deletion, a reaction turned on, a room marked read) is still in the outbox or is
//!   on the server (see [`check_changes`] for the exact rules).
//!
//! At the end every store is drained against the server, every change the devices were told
//! was made must be on the server (nothing may still be queued), and the soak's convergence
//! check ([`crate::soak::verify`]) runs over all of them. Kills are counted only when they land on a
//! running process, by the phase the process was in (starting, opening, working).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// Chat-model changes the lives were told were made (`changed` lines), by operation.
    pub changes: BTreeMap<String, u64>,
    /// Acknowledged changes about a message that never reached the server (a send the app was
    /// never told was queued: killed before `send_text` returned, or refused by a full disk),
    /// so there is nothing on the server to check them against. Counted, not a violation.
    pub changes_unverifiable: u64,
    /// Change entries (not sends) the drain found failed and discarded, with the server's
    /// reason: what to look at first when a change is reported lost at the end.
    pub drained_changes: Vec<String>,
    /// Acknowledged changes that are neither queued nor on the server (and not excused by a
    /// discard or a deletion).
    pub changes_lost: Vec<String>,
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
            && self.changes_lost.is_empty()
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
            "  changes told made: {:?}; {} about a message that never reached the server (not checkable)",
            self.changes, self.changes_unverifiable
        )?;
        if !self.drained_changes.is_empty() {
            writeln!(
                f,
                "  failed changes discarded by the drain: {:?}",
                self.drained_changes
            )?;
        }
        writeln!(
            f,
            "  shown twice until resent (protocol v1 cannot tell): {}",
            self.echo_and_copy
        )?;
        writeln!(
            f,
            "  result: {} unreadable stores, {} lost, {} duplicated, {} misordered, {} changes lost, {} final violations",
            self.unreadable.len(),
            self.lost.len(),
            self.duplicated.len(),
            self.misordered.len(),
            self.changes_lost.len(),
            self.final_violations.len()
        )?;
        for v in self
            .unreadable
            .iter()
            .chain(&self.lost)
            .chain(&self.duplicated)
            .chain(&self.misordered)
            .chain(&self.changes_lost)
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
    /// The device's user.
    pub user: String,
    /// Messages reported queued, in the order they were queued, with their local ids.
    pub queued: Vec<(String, Queued)>,
    /// Local ids of sends the app asked to discard (they may be gone, or may have been sent
    /// once).
    pub discarding: HashSet<String>,
    /// Chat-model changes the lives started (`changing`), in the order the device made them;
    /// `acked` once the call returned `Ok` (`changed`).
    pub changes: Vec<ChangeMade>,
    /// Outbox entries the app asked to discard, with what they were (a discarded change is
    /// excused, as a discarded send is).
    pub change_discards: Vec<Discard>,
    /// Where the newest life's changes start in `changes` (the per-life check looks at those).
    pub life_start: usize,
}

/// One chat-model change a life made (or started: `acked` false when the life was killed in
/// the call or it failed).
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeMade {
    /// The room.
    pub room: String,
    /// What it did.
    pub op: ChangeOp,
    /// The call returned `Ok`: the app was told.
    pub acked: bool,
    /// For a reaction: what the toggle returned (`true`: now on). Always `true` for a key that
    /// is new (unique to its life and operation).
    pub now_on: bool,
}

/// What a change did; `target` is the message's app id (its local id for the device's own
/// messages, the server id for others').
#[derive(Clone, Debug, PartialEq)]
pub enum ChangeOp {
    /// New text.
    Edit { target: String, text: String },
    /// A deletion of one of the device's sent messages.
    Delete { target: String },
    /// The reaction `key` turned on.
    React { target: String, key: String },
    /// The room marked read; `upto`: the newest server id the room showed before the call.
    Read { upto: u64 },
}

/// An outbox entry the app asked to discard, as the outbox showed it.
#[derive(Clone, Debug, PartialEq)]
pub struct Discard {
    /// `changes.len()` when it was discarded: it excuses the changes before it.
    pub at: usize,
    /// The entry's local id.
    pub local_id: String,
    /// `send`, `edit`, `delete`, `react` or `receipt`.
    pub kind: String,
    /// Its room.
    pub room: String,
    /// The message a change is about (the outbox's `target_id`: a local id or a server id).
    pub target: Option<String>,
    /// A send's or an edit's text, a reaction's key.
    pub text: String,
}

/// The server's truth, read incrementally straight from the server (not through the proxy), in
/// its v2 state: each room is read as each member and a member's own messages are taken from
/// their view, where they carry the txn id they were sent under (an edit may have changed a
/// queued message's text before it went out, so a send is found by txn id, not by text).
pub struct Mirror {
    harness: Harness,
    /// A token per user (dev tokens; renewed on a 401).
    tokens: HashMap<String, String>,
    /// Per room: each member and the newest id read in their view.
    rooms: BTreeMap<String, Vec<(String, Option<u64>)>>,
    /// Text -> (room, sender, id) of every copy on the server (its text when first read).
    texts: HashMap<String, Vec<(String, String, u64)>>,
    /// (sender, txn id) -> (room, id) of every message on the server.
    txns: HashMap<(String, String), (String, u64)>,
    /// Txn id -> (life, n) of each send reported queued (from the ledgers): the queue order of
    /// a message whose text an edit changed before it went out.
    orders: HashMap<String, (u64, u64)>,
    /// Per (sender, room): the (life, n) of the newest message seen, for the order check.
    newest: HashMap<(String, String), (u64, u64)>,
    /// Findings so far (duplicates, order), each reported once.
    pub duplicated: Vec<String>,
    /// Messages that landed out of queue order.
    pub misordered: Vec<String>,
}

impl Mirror {
    /// A mirror of `rooms` (room id, its members) on the server at `server_url`.
    pub async fn new(
        server_url: &str,
        rooms: &[(String, Vec<String>)],
    ) -> Result<Mirror, TortureError> {
        let harness = Harness::new(server_url);
        let mut mirrored = BTreeMap::new();
        let mut tokens = HashMap::new();
        for (room, members) in rooms {
            for member in members {
                if !tokens.contains_key(member) {
                    let token = harness.token(member).await.map_err(setup("token"))?;
                    tokens.insert(member.clone(), token);
                }
            }
            mirrored.insert(
                room.clone(),
                members.iter().map(|m| (m.clone(), None)).collect(),
            );
        }
        Ok(Mirror {
            harness,
            tokens,
            rooms: mirrored,
            texts: HashMap::new(),
            txns: HashMap::new(),
            orders: HashMap::new(),
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

    /// `user`'s token, renewed when the server answered 401 (dev tokens expire after an hour).
    async fn token(&mut self, user: &str, renew: bool) -> Result<String, crate::http::HttpError> {
        if renew || !self.tokens.contains_key(user) {
            let token = self.harness.token(user).await?;
            self.tokens.insert(user.to_owned(), token);
        }
        Ok(self.tokens[user].clone())
    }

    async fn try_refresh(&mut self) -> Result<(), crate::http::HttpError> {
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let members = self.rooms[&room].clone();
            for (i, (member, after)) in members.into_iter().enumerate() {
                let token = self.token(&member, false).await?;
                let new = match self.harness.v2_history_after(&token, &room, after).await {
                    Err(e) if e.detail.starts_with("401") => {
                        let token = self.token(&member, true).await?;
                        self.harness.v2_history_after(&token, &room, after).await?
                    }
                    other => other?,
                };
                if let Some(last) = new.last() {
                    self.rooms.get_mut(&room).expect("mirrored room")[i].1 = Some(last.id);
                }
                // Each message is taken once: from its sender's view (with its txn id).
                for m in new.into_iter().filter(|m| m.user_id == member) {
                    self.add(&room, m);
                }
            }
        }
        Ok(())
    }

    fn add(&mut self, room: &str, m: chatsync_protocol::v2::Message) {
        let text = m.text().unwrap_or("").to_owned();
        if let Some(txn) = &m.txn_id {
            let key = (m.user_id.clone(), txn.clone());
            if let Some(first) = self.txns.get(&key) {
                self.duplicated.push(format!(
                    "txn {txn} of {} is on the server twice: {first:?} and id {}",
                    m.user_id, m.id
                ));
            } else {
                self.txns.insert(key, (room.to_owned(), m.id));
            }
        }
        // A tombstone has no text to compare (deleted before this mirror first read it).
        if !m.deleted {
            let copies = self.texts.entry(text.clone()).or_default();
            copies.push((room.to_owned(), m.user_id.clone(), m.id));
            if copies.len() == 2 {
                self.duplicated
                    .push(format!("{text:?} is on the server twice: {copies:?}"));
            }
        }
        let order = m
            .txn_id
            .as_ref()
            .and_then(|t| self.orders.get(t).copied())
            .or_else(|| life_and_number(&text));
        if let Some(order) = order {
            let key = (m.user_id.clone(), room.to_owned());
            if let Some(prev) = self.newest.get(&key) {
                if order <= *prev {
                    self.misordered.push(format!(
                        "{text:?} (id {}, queued as {order:?}) landed after {:?} of the same sender in {room}",
                        m.id, prev
                    ));
                }
            }
            self.newest.insert(key, order);
        }
    }

    /// Whether `text` is on the server (as first read).
    pub fn holds(&self, text: &str) -> bool {
        self.texts.contains_key(text)
    }

    /// The room and id of the message `user` sent under `txn`, when it is on the server.
    pub fn sent_as(&self, user: &str, txn: &str) -> Option<&(String, u64)> {
        self.txns.get(&(user.to_owned(), txn.to_owned()))
    }

    /// Learns the queue order of the sends in `ledger` (for messages edited before they went
    /// out, whose text no longer tells).
    fn learn_orders(&mut self, ledger: &Ledger) {
        for (local_id, q) in &ledger.queued {
            if let Some(order) = life_and_number(&q.text) {
                self.orders.entry(local_id.clone()).or_insert(order);
            }
        }
    }

    /// A message as `user` gets it now, retried while the server restarts.
    async fn message_as(
        &mut self,
        user: &str,
        room: &str,
        id: u64,
    ) -> Result<Option<chatsync_protocol::v2::Message>, TortureError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut renew = false;
        loop {
            let token = self.token(user, renew).await;
            let got = match token {
                Ok(t) => self.harness.v2_message(&t, room, id).await,
                Err(e) => Err(e),
            };
            match got {
                Ok(m) => return Ok(m),
                Err(e) if Instant::now() < deadline => {
                    renew = e.detail.starts_with("401");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(TortureError(format!("read the server: {e}"))),
            }
        }
    }

    /// `user`'s own read-up-to per room, as the server holds it now.
    async fn receipts_of(&mut self, user: &str) -> Result<HashMap<String, u64>, TortureError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut renew = false;
        loop {
            let token = self.token(user, renew).await;
            let got = match token {
                Ok(t) => self.harness.v2_initial_sync(&t).await,
                Err(e) => Err(e),
            };
            match got {
                Ok(sync) => {
                    return Ok(sync
                        .rooms
                        .into_iter()
                        .filter_map(|(room, r)| r.receipts.get(user).map(|n| (room, *n)))
                        .collect())
                }
                Err(e) if Instant::now() < deadline => {
                    renew = e.detail.starts_with("401");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(TortureError(format!("read the server: {e}"))),
            }
        }
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
    /// Acknowledged changes of the newest life neither queued nor on the server.
    pub changes_lost: Vec<String>,
    /// Acknowledged changes of the newest life about a message that never reached the server.
    pub changes_unverifiable: u64,
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
    mirror.learn_orders(ledger);
    mirror.refresh().await?;

    let queued_ids: HashSet<&str> = outbox.iter().map(|e| e.local_id.as_str()).collect();
    for (local_id, q) in &ledger.queued {
        if ledger.discarding.contains(local_id) {
            continue;
        }
        // By txn id: an edit may have changed a queued message's text before it went out.
        if !queued_ids.contains(local_id.as_str()) && mirror.sent_as(&q.user, local_id).is_none() {
            found.lost.push(format!(
                "{}: queued {:?} ({local_id}, room {}) is neither queued nor on the server",
                device.user, q.text, q.room
            ));
        }
    }
    // Sends only: a queued edit's text shows on its message at once, by design.
    let pending_texts: HashSet<&str> = outbox
        .iter()
        .filter(|e| e.kind == chatsync_core::ChangeKind::Send)
        .map(|e| e.text.as_str())
        .collect();
    for (room, messages) in &rooms {
        let mut seen = HashSet::new();
        let mut previous: Option<u64> = None;
        for m in messages {
            let Some(id) = m.server_id else { continue };
            if m.state != MessageState::Sent || m.deleted {
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
    let view = ServerView::of_targets(mirror, &device.user, ledger, ledger.life_start).await?;
    let changes = check_changes(
        &device.user,
        ledger,
        ledger.life_start,
        &outbox,
        mirror,
        &view,
        &HashSet::new(),
    );
    found.changes_lost = changes.lost;
    found.changes_unverifiable = changes.unverifiable;
    Ok(found)
}

/// The server's state of what the change checks look at, as the device's user gets it.
#[derive(Clone, Debug, Default)]
pub struct ServerView {
    /// (room, id) -> the message now.
    pub messages: HashMap<(String, u64), chatsync_protocol::v2::Message>,
    /// Room -> the user's read-up-to.
    pub receipts: HashMap<String, u64>,
}

impl ServerView {
    /// The messages the acknowledged changes from `from` on are about (one small read each)
    /// and, when one marked a room read, the user's receipts.
    pub async fn of_targets(
        mirror: &mut Mirror,
        user: &str,
        ledger: &Ledger,
        from: usize,
    ) -> Result<ServerView, TortureError> {
        let mut view = ServerView::default();
        let mut wanted = BTreeSet::new();
        let mut receipts = false;
        for c in ledger.changes.iter().skip(from).filter(|c| c.acked) {
            match c.op.target() {
                Some(target) => {
                    if let Some(id) = resolve(mirror, user, &c.room, target) {
                        wanted.insert((c.room.clone(), id));
                    }
                }
                None => receipts = true,
            }
        }
        for (room, id) in wanted {
            if let Some(m) = mirror.message_as(user, &room, id).await? {
                view.messages.insert((room, id), m);
            }
        }
        if receipts {
            view.receipts = mirror.receipts_of(user).await?;
        }
        Ok(view)
    }

    /// Every message of `rooms` and the user's receipts (the final check).
    pub async fn of_rooms(
        mirror: &mut Mirror,
        user: &str,
        rooms: &[String],
    ) -> Result<ServerView, TortureError> {
        let mut view = ServerView::default();
        let token = mirror.token(user, true).await.map_err(setup("token"))?;
        for room in rooms {
            let all = mirror
                .harness
                .v2_history_after(&token, room, None)
                .await
                .map_err(setup("history"))?;
            for m in all {
                view.messages.insert((room.clone(), m.id), m);
            }
        }
        view.receipts = mirror.receipts_of(user).await?;
        Ok(view)
    }
}

impl ChangeOp {
    /// The message it is about (`None`: a receipt).
    pub fn target(&self) -> Option<&str> {
        match self {
            ChangeOp::Edit { target, .. }
            | ChangeOp::Delete { target }
            | ChangeOp::React { target, .. } => Some(target),
            ChangeOp::Read { .. } => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            ChangeOp::Edit { .. } => "edit",
            ChangeOp::Delete { .. } => "delete",
            ChangeOp::React { .. } => "react",
            ChangeOp::Read { .. } => "read",
        }
    }
}

/// The server id of the message `app_id` names in `room` for `user`: a server id as such, a
/// local id through the txn id it was sent under (`None`: not on the server).
fn resolve(mirror: &Mirror, user: &str, room: &str, app_id: &str) -> Option<u64> {
    match app_id.parse::<u64>() {
        Ok(id) => Some(id),
        Err(_) => mirror
            .sent_as(user, app_id)
            .filter(|(r, _)| r == room)
            .map(|(_, id)| *id),
    }
}

/// What [`check_changes`] found.
#[derive(Clone, Debug, Default)]
pub struct ChangeFindings {
    /// Acknowledged changes neither queued nor on the server.
    pub lost: Vec<String>,
    /// Acknowledged changes about a message that never reached the server and is not queued.
    pub unverifiable: u64,
}

/// Checks the acknowledged changes of `ledger` from `from` on against the device's `outbox`
/// and the server (`view`). A change the app was told was made must be still queued or on the
/// server:
/// - an **edit**: the message's text (on the server, or in the queued send or queued edit) is
///   that edit's text or the text of an edit of the same message the device started after it
///   (acknowledged or not: a life killed after the store took an edit but before the app was
///   told still made it), unless the message is deleted (or its deletion queued);
/// - a **deletion**: the message is a tombstone on the server, or its deletion is queued;
/// - a **reaction** (a key unique to its life and operation, so no one else touches it): the
///   toggle said it is on, and the key is on the message with `me` for the device's user (or
///   queued), unless the message is deleted;
/// - a **read**: the user's receipt in the room is at least the newest server id the room showed
///   before the call (or a receipt is queued there: it only moves forward).
///
/// A change is excused when the app discarded the outbox entry that held it (or the send of its
/// message) after making it, or the drain discarded that send (`drained`: refused for good).
pub fn check_changes(
    user: &str,
    ledger: &Ledger,
    from: usize,
    outbox: &[chatsync_core::OutboxEntry],
    mirror: &Mirror,
    view: &ServerView,
    drained: &HashSet<String>,
) -> ChangeFindings {
    use chatsync_core::ChangeKind;
    let mut found = ChangeFindings::default();
    let same = |room: &str, a: &str, b: &str| {
        a == b
            || matches!(
                (resolve(mirror, user, room, a), resolve(mirror, user, room, b)),
                (Some(x), Some(y)) if x == y
            )
    };
    for (i, c) in ledger.changes.iter().enumerate().skip(from) {
        if !c.acked {
            continue;
        }
        let room = c.room.as_str();
        let target = c.op.target();
        let excused = ledger
            .change_discards
            .iter()
            .filter(|d| d.at > i && d.room == c.room)
            .any(|d| {
                let on_it = |t: &str| d.target.as_deref().is_some_and(|dt| same(room, dt, t));
                match (&c.op, d.kind.as_str()) {
                    (_, "send") => target == Some(d.local_id.as_str()),
                    (ChangeOp::Edit { target, .. }, "edit")
                    | (ChangeOp::Delete { target }, "delete") => on_it(target),
                    (ChangeOp::React { target, key }, "react") => d.text == *key && on_it(target),
                    (ChangeOp::Read { .. }, "receipt") => true,
                    _ => false,
                }
            })
            || target.is_some_and(|t| drained.contains(t));
        if excused {
            continue;
        }
        let what = format!("{user}: {} in room {room} ({:?})", c.op.name(), c.op);
        if let ChangeOp::React { .. } = &c.op {
            if !c.now_on {
                found
                    .lost
                    .push(format!("{what}: the toggle of a new key said it is off"));
                continue;
            }
        }
        let entries: Vec<_> = outbox.iter().filter(|e| e.room_id == c.room).collect();
        let about = |e: &chatsync_core::OutboxEntry, t: &str| {
            e.target_id.as_deref().is_some_and(|et| same(room, et, t))
        };
        // The texts this edit's message may show: its own, or a later edit's of the same one.
        let allowed: HashSet<&str> = match &c.op {
            ChangeOp::Edit { target, text } => std::iter::once(text.as_str())
                .chain(
                    ledger.changes[i + 1..]
                        .iter()
                        .filter_map(|later| match &later.op {
                            ChangeOp::Edit { target: t, text }
                                if later.room == c.room && same(room, t, target) =>
                            {
                                Some(text.as_str())
                            }
                            _ => None,
                        }),
                )
                .collect(),
            _ => HashSet::new(),
        };
        let queued = match &c.op {
            ChangeOp::Edit { target, .. } => entries.iter().any(|e| match e.kind {
                ChangeKind::Send => e.local_id == *target && allowed.contains(e.text.as_str()),
                ChangeKind::Edit => about(e, target) && allowed.contains(e.text.as_str()),
                ChangeKind::Delete => about(e, target),
                _ => false,
            }),
            ChangeOp::Delete { target } => entries
                .iter()
                .any(|e| e.kind == ChangeKind::Delete && about(e, target)),
            ChangeOp::React { target, key } => entries.iter().any(|e| match e.kind {
                ChangeKind::React => about(e, target) && e.text == *key,
                ChangeKind::Delete => about(e, target),
                _ => false,
            }),
            ChangeOp::Read { .. } => entries.iter().any(|e| e.kind == ChangeKind::Receipt),
        };
        if queued {
            continue;
        }
        let target = match &c.op {
            ChangeOp::Read { upto } => {
                let read = view.receipts.get(room).copied();
                if *upto > 0 && read.is_none_or(|r| r < *upto) {
                    found.lost.push(format!(
                        "{what}: not queued, and the server's receipt is {read:?}"
                    ));
                }
                continue;
            }
            other => other.target().unwrap_or_default(),
        };
        let Some(id) = resolve(mirror, user, room, target) else {
            if entries
                .iter()
                .any(|e| e.kind == ChangeKind::Send && e.local_id == target)
            {
                found.lost.push(format!(
                    "{what}: its message is still queued, the change is not"
                ));
            } else {
                found.unverifiable += 1;
            }
            continue;
        };
        let Some(m) = view.messages.get(&(c.room.clone(), id)) else {
            found.lost.push(format!(
                "{what}: not queued, and the server holds no message {id} there"
            ));
            continue;
        };
        let held = match &c.op {
            ChangeOp::Edit { .. } => m.deleted || allowed.contains(m.text().unwrap_or("")),
            ChangeOp::Delete { .. } => m.deleted,
            ChangeOp::React { key, .. } => {
                m.deleted
                    || m.reactions
                        .iter()
                        .any(|r| r.key == *key && r.count >= 1 && r.me)
            }
            ChangeOp::Read { .. } => unreachable!("handled above"),
        };
        if !held {
            found.lost.push(format!(
                "{what}: not queued, and the server's message {id} shows {:?} (deleted {}, reactions {:?})",
                m.text().unwrap_or(""),
                m.deleted,
                m.reactions.iter().map(|r| (&r.key, r.count, r.me)).collect::<Vec<_>>()
            ));
        }
    }
    found
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
            "changing" => "changing",
            "changed" => "between operations",
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
    user.clone_into(&mut ledger.user);
    ledger.life_start = ledger.changes.len();
    // CHATSYNC_TORTURE_TRACE=<device>: every line of that device's lives on stderr (to follow
    // a reported broken promise back through the lives of a seed that shows it).
    let trace = std::env::var("CHATSYNC_TORTURE_TRACE").is_ok_and(|d| d == user);
    for line in lines {
        if trace {
            eprintln!("{user}| {line}");
        }
        let mut words = line.splitn(4, ' ');
        if let (Some("queued"), Some(local_id), Some(room), Some(text)) =
            (words.next(), words.next(), words.next(), words.next())
        {
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
            continue;
        }
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["discarding", local_id, rest @ ..] => {
                let kind = rest.first().copied().unwrap_or("send");
                if kind == "send" && ledger.discarding.insert((*local_id).to_owned()) {
                    report.discarded += 1;
                }
                if let [kind, room, target, text] = rest {
                    ledger.change_discards.push(Discard {
                        at: ledger.changes.len(),
                        local_id: (*local_id).to_owned(),
                        kind: (*kind).to_owned(),
                        room: (*room).to_owned(),
                        target: (*target != "-").then(|| (*target).to_owned()),
                        text: (*text).to_owned(),
                    });
                }
            }
            ["changing", op, room, target, arg] => {
                let op = match *op {
                    "edit" => ChangeOp::Edit {
                        target: (*target).to_owned(),
                        text: (*arg).to_owned(),
                    },
                    "delete" => ChangeOp::Delete {
                        target: (*target).to_owned(),
                    },
                    "react" => ChangeOp::React {
                        target: (*target).to_owned(),
                        key: (*arg).to_owned(),
                    },
                    "read" => ChangeOp::Read {
                        upto: arg.parse().unwrap_or(0),
                    },
                    _ => continue,
                };
                ledger.changes.push(ChangeMade {
                    room: (*room).to_owned(),
                    op,
                    acked: false,
                    now_on: true,
                });
            }
            ["changed", op, room, _target, _arg, rest @ ..] => {
                // The change this acknowledges is the one the life started just before.
                if let Some(c) = ledger.changes[ledger.life_start..].last_mut() {
                    if c.op.name() == *op && c.room == *room && !c.acked {
                        c.acked = true;
                        c.now_on = rest.first() != Some(&"off");
                        *report.changes.entry((*op).to_owned()).or_default() += 1;
                    }
                }
            }
            ["error", "send", "storage", ..] => report.storage_send_errors += 1,
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
        r.changes_lost.extend(check.changes_lost);
        r.changes_unverifiable += check.changes_unverifiable;
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
    let mirror = Mirror::new(&server_url, &room_members).await?;
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
                    if entry.kind != chatsync_core::ChangeKind::Send {
                        report.drained_changes.push(format!(
                            "{}: {:?} of {:?} in {} ({:?}: {:?})",
                            device.user,
                            entry.kind,
                            entry.target_id,
                            entry.room_id,
                            entry.state,
                            entry.failure_reason
                        ));
                    }
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
    // Every change a device was told it made is on the server now: the outboxes are drained, so
    // nothing may count as still queued.
    {
        let mut mirror = scene.mirror.lock().await;
        mirror.refresh().await?;
        for ledger in &ledgers {
            // A store that does not open is reported already.
            let Some(device) = all_devices.iter().find(|d| d.user == ledger.user) else {
                continue;
            };
            let view = ServerView::of_rooms(&mut mirror, &device.user, &device.rooms).await?;
            let found = check_changes(
                &device.user,
                ledger,
                0,
                &[],
                &mirror,
                &view,
                &discarded_at_drain,
            );
            report
                .changes_lost
                .extend(found.lost.into_iter().map(|v| format!("at the end: {v}")));
        }
    }
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
