//! Reading what can still be read from a damaged store, for [`crate::recovery`]: the outbox
//! (what the user sent that the server may not have) and the session. Works on a copy, so the
//! damaged store itself is never written.
//!
//! Two ways, the first that works:
//! - **opened**: sled opens the copy (after the same leftover repairs as a normal open); each
//!   outbox entry and the session are decoded one by one, and what does not decode is listed.
//! - **scanned**: sled cannot open it (a garbled log): the copy's files are scanned byte by byte
//!   for the JSON values the store writes (outbox records, the session). A scan also finds old
//!   versions of values and entries already sent or discarded; that is safe for the sent ones
//!   (re-queued under their original txn id, the server keeps one copy) and said in the report
//!   for the discarded ones.

use std::collections::BTreeMap;
use std::path::Path;

use super::keys::outbox_seq_of_key;
use super::meta::StoredSession as Session;
use super::outbox::OutboxRecord;
use super::{decode, journal, meta, open};

/// How the damaged store was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SalvageMethod {
    /// sled opened it.
    Opened,
    /// sled could not open it; its bytes were scanned.
    Scanned,
}

/// What could be read.
#[derive(Clone, Debug)]
pub(crate) struct Salvaged {
    pub method: SalvageMethod,
    /// Outbox entries in queue order.
    pub outbox: Vec<OutboxRecord>,
    pub session: Option<Session>,
    /// What could not be read, one line each.
    pub unreadable: Vec<String>,
}

/// Reads what it can from the store copy in `dir` (which sled may modify: it zeroes a
/// damaged log's tail when it opens it) or, failing that, by scanning `pristine`, a second,
/// untouched copy.
pub(crate) fn salvage(dir: &Path, pristine: &Path) -> Salvaged {
    let mut found = salvage_log(dir, pristine);
    if let Some(journal) = journal::read(pristine) {
        merge_journal(&mut found, journal);
    }
    found
}

/// The outbox is the journal's live entries, plus what sled (or the scan) holds that the
/// journal never mentions (it may be behind after a power loss). An entry the journal
/// removed stays removed: it was sent or discarded after the point sled's log ends. A scan
/// also finds long-gone entries, so with an undamaged journal only the journal counts.
fn merge_journal(found: &mut Salvaged, journal: journal::JournalContents) {
    let from_log = std::mem::take(&mut found.outbox);
    let journal_session = journal.session.clone();
    let trust_log = found.method == SalvageMethod::Opened || journal.bad_lines > 0;
    let live: std::collections::HashSet<String> =
        journal.live.iter().map(|r| r.local_id.clone()).collect();
    let mut outbox = journal.live;
    if trust_log {
        outbox.extend(
            from_log.into_iter().filter(|r| {
                !journal.mentioned.contains(&r.local_id) && !live.contains(&r.local_id)
            }),
        );
    }
    if journal.bad_lines > 0 {
        found.unreadable.push(format!(
            "{} damaged lines of the outbox journal were skipped",
            journal.bad_lines
        ));
    } else {
        // A whole journal answers for the outbox: whatever the log could not give, nothing the
        // app was told is queued is missing (messages come back with sync).
        found.unreadable.clear();
    }
    if found.session.is_none() {
        found.session = journal_session;
    }
    found.outbox = outbox;
}

fn salvage_log(dir: &Path, pristine: &Path) -> Salvaged {
    match salvage_opened(dir) {
        Ok(found) if !found.log_gone => found.salvaged,
        // sled opened it but recovered nothing (it stops reading its log at the first damaged
        // stretch): what lies beyond may still be intact, so scan.
        Ok(_) => {
            let mut found = salvage_scanned(pristine);
            found.unreadable.insert(
                0,
                "the store's log is damaged from its start: sled recovered nothing, its files were scanned instead".into(),
            );
            found
        }
        Err(why) => {
            let mut found = salvage_scanned(pristine);
            found.unreadable.insert(
                0,
                format!("sled could not open the store ({why}); its files were scanned instead"),
            );
            found
        }
    }
}

/// What sled read, and whether it found no store at all in the log.
struct Opened {
    salvaged: Salvaged,
    log_gone: bool,
}

fn salvage_opened(dir: &Path) -> Result<Opened, String> {
    open::repair_leftovers(dir).map_err(|e| e.to_string())?;
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(1 << 20)
        .flush_every_ms(None);
    let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
        .map_err(|_| "sled panicked while opening it".to_string())?
        .map_err(|e| e.to_string())?;
    let mut found = Salvaged {
        method: SalvageMethod::Opened,
        outbox: Vec::new(),
        session: None,
        unreadable: Vec::new(),
    };
    // Each read guarded: sled 0.34 may panic on a damaged page.
    let guarded = |what: &str, f: &mut dyn FnMut() -> Result<(), String>| -> Result<(), String> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(_) => Err(format!("sled panicked reading {what}")),
        }
    };
    let mut outbox = Vec::new();
    let mut unreadable = Vec::new();
    let read_outbox = guarded("the outbox", &mut || {
        let tree = db.open_tree("outbox").map_err(|e| e.to_string())?;
        for item in tree.iter() {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    unreadable.push(format!("the rest of the outbox: {e}"));
                    break;
                }
            };
            let seq = outbox_seq_of_key(&key);
            match decode::<OutboxRecord>(&value) {
                Ok(record) => outbox.push(record),
                Err(e) => unreadable.push(format!(
                    "outbox entry {}: {e}",
                    seq.map_or_else(|| format!("{key:?}"), |s| s.to_string())
                )),
            }
        }
        Ok(())
    });
    if let Err(e) = read_outbox {
        unreadable.push(format!("the outbox: {e}"));
    }
    found.outbox = outbox;
    let mut session = None;
    let mut log_gone = false;
    let read_session = guarded("the session", &mut || {
        let tree = db.open_tree("meta").map_err(|e| e.to_string())?;
        // sled found no data where a store was: its log is gone, or damaged from its start.
        log_gone = !tree
            .contains_key(meta::FORMAT_VERSION_KEY)
            .map_err(|e| e.to_string())?;
        if let Some(v) = tree.get(meta::SESSION_KEY).map_err(|e| e.to_string())? {
            session = Some(decode::<Session>(&v).map_err(|e| e.to_string())?);
        }
        Ok(())
    });
    if let Err(e) = read_session {
        unreadable.push(format!("the session (log in again): {e}"));
    }
    found.session = session;
    found.unreadable.extend(unreadable);
    Ok(Opened {
        salvaged: found,
        log_gone,
    })
}

/// Scans every file of `dir` for outbox records and sessions as the store encodes them (JSON).
fn salvage_scanned(dir: &Path) -> Salvaged {
    let mut records: BTreeMap<String, OutboxRecord> = BTreeMap::new();
    let mut session = None;
    let mut unreadable = Vec::new();
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    files.sort();
    for path in files {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for at in find_all(&bytes, br#"{"local_id":""#) {
            if let Some(record) = json_at::<OutboxRecord>(&bytes[at..]) {
                // The last copy in file order wins: sled appends newer versions after older.
                records.insert(record.local_id.clone(), record);
            }
        }
        for at in find_all(&bytes, br#"{"user":{"_id":""#) {
            if let Some(s) = json_at::<Session>(&bytes[at..]) {
                session = Some(s);
            }
        }
    }
    if records.is_empty() && session.is_none() {
        unreadable
            .push("nothing of the store could be read: whatever was queued in it is lost".into());
    }
    let mut outbox: Vec<OutboxRecord> = records.into_values().collect();
    // Queue order is lost with the keys; creation time is the order the user sent them in.
    outbox.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    if !outbox.is_empty() {
        unreadable.push(format!(
            "which of the {} queued messages found by the scan had already been sent or discarded: \
             sent ones are not sent twice (same txn id), discarded ones come back",
            outbox.len()
        ));
    }
    Salvaged {
        method: SalvageMethod::Scanned,
        outbox,
        session,
        unreadable,
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_files(&path, out),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Offsets of every occurrence of `needle` in `hay`.
fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// The JSON value of type `T` that starts at `bytes[0]`, if one does.
fn json_at<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<T>()
        .next()?
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_finds_records_between_garbage_and_keeps_the_last_copy() {
        let dir = tempfile::tempdir().unwrap();
        let record = |attempts: u32, created: &str, id: &str| OutboxRecord {
            local_id: id.into(),
            room_id: "r".into(),
            parts: vec![chatsync_protocol::Part::text("hi")],
            created_at: created.into(),
            state: crate::model::MessageState::Pending,
            attempts,
            failure_reason: None,
            after_id: None,
            op: Default::default(),
            maybe_sent: false,
        };
        let mut bytes = b"\x00\x17garbage".to_vec();
        bytes.extend(serde_json::to_vec(&record(0, "2026-01-02", "b")).unwrap());
        bytes.extend(b"\xff\xfe");
        bytes.extend(serde_json::to_vec(&record(0, "2026-01-01", "a")).unwrap());
        bytes.extend(serde_json::to_vec(&record(3, "2026-01-02", "b")).unwrap());
        // A record cut in half (the end of a truncated file) is not one.
        let cut = serde_json::to_vec(&record(0, "2026-01-03", "c")).unwrap();
        bytes.extend(&cut[..cut.len() / 2]);
        std::fs::write(dir.path().join("db"), bytes).unwrap();
        let found = salvage_scanned(dir.path());
        let ids: Vec<(&str, u32)> = found
            .outbox
            .iter()
            .map(|r| (r.local_id.as_str(), r.attempts))
            .collect();
        assert_eq!(ids, [("a", 0), ("b", 3)]);
        assert_eq!(found.method, SalvageMethod::Scanned);
    }
}
