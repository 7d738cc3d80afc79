//! A second copy of the outbox, outside sled: `outbox.journal`, one line per change.
//!
//! Why: the outbox holds what the user sent and the server may not have, the one thing sync
//! cannot bring back. sled keeps it in its log, and a log damaged by the disk (bytes flipped, a
//! truncation) is read by sled only up to the damage, after which sled *zeroes the rest of that
//! log segment* when it opens the store. So the first open of a damaged store destroys intact
//! outbox entries that lay beyond the damage. The journal is an independent copy that
//! [`crate::recovery`] re-queues from.
//!
//! It is written with plain `write` calls and never fsynced: it only has to survive what sled's
//! log does not (damage), and a killed process's writes are in the page cache. sled stays the
//! authority for a healthy store; after a power loss the journal may be behind it, never ahead
//! of what the app was told (an entry is journaled before sled's flush acknowledges it).
//!
//! Format, one line per change, each with a CRC-32 of its payload so damaged lines are skipped:
//! `P <crc> <OutboxRecord JSON>` (queued or updated), `D <crc> <local id>` (sent or
//! discarded) and `S <crc> <Session JSON>` (the login). Emptied (back to the session line)
//! whenever the outbox is empty; rewritten with just the session and the live entries when it
//! outgrows [`REWRITE_BYTES`].

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::meta::StoredSession as Session;
use super::outbox::OutboxRecord;

/// The journal's file name in the store directory.
pub(crate) const JOURNAL_FILE: &str = "outbox.journal";
/// Past this size a non-empty journal is rewritten with only its live entries.
const REWRITE_BYTES: u64 = 1 << 20;

/// The open journal of a store. Failures to write it are logged, never returned: it is a
/// backup, and the store's own write (which the app is told about) has already succeeded.
#[derive(Debug)]
pub(crate) struct OutboxJournal {
    path: PathBuf,
    file: Mutex<Option<File>>,
    /// The newest session line, written again whenever the journal is emptied or rewritten.
    session: Mutex<Option<String>>,
}

fn line(kind: char, payload: &str) -> String {
    format!(
        "{kind} {:08x} {payload}\n",
        crc32fast::hash(payload.as_bytes())
    )
}

impl OutboxJournal {
    /// Opens (creating) the journal of the store in `dir`, for appending. `session` is the
    /// store's current login: written when the journal is new (a store from before journals).
    pub fn open(dir: &Path, session: Option<&Session>) -> OutboxJournal {
        let path = dir.join(JOURNAL_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| tracing::warn!("cannot open {}: {e}", path.display()))
            .ok();
        let journal = OutboxJournal {
            path,
            file: Mutex::new(file),
            session: Mutex::new(None),
        };
        if let Some(session) = session {
            let empty = journal
                .file
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .is_some_and(|m| m.len() == 0);
            if empty {
                journal.session(session);
            } else if let Ok(json) = serde_json::to_string(session) {
                *journal.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(line('S', &json));
            }
        }
        journal
    }

    fn append(&self, text: &str) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(text.as_bytes()) {
                tracing::warn!("cannot write {}: {e}", self.path.display());
            }
        }
    }

    /// Records a queued (or updated) entry.
    pub fn put(&self, record: &OutboxRecord) {
        match serde_json::to_string(record) {
            Ok(json) => self.append(&line('P', &json)),
            Err(e) => tracing::warn!("cannot journal an outbox entry: {e}"),
        }
    }

    /// Records the login (the session), so a recovery can carry it over.
    pub fn session(&self, session: &Session) {
        match serde_json::to_string(session) {
            Ok(json) => {
                let text = line('S', &json);
                self.append(&text);
                *self.session.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
            }
            Err(e) => tracing::warn!("cannot journal the session: {e}"),
        }
    }

    /// Records that an entry left the outbox (sent or discarded).
    pub fn remove(&self, local_id: &str) {
        self.append(&line('D', local_id));
    }

    /// Called after every removal with what is left in the outbox: empties the journal when
    /// nothing is, rewrites it with `live` when it has grown past [`REWRITE_BYTES`].
    pub fn compact(&self, live: impl FnOnce() -> Option<Vec<OutboxRecord>>, empty: bool) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(f) = file.as_mut() else { return };
        let len = f.metadata().map_or(0, |m| m.len());
        let session = self
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        if empty {
            // Back to just the session line; skipped when that is all there is already.
            if len > session.len() as u64 {
                let emptied = f.set_len(0).and_then(|()| f.write_all(session.as_bytes()));
                if let Err(e) = emptied {
                    tracing::warn!("cannot empty {}: {e}", self.path.display());
                }
            }
            return;
        }
        if len < REWRITE_BYTES {
            return;
        }
        let Some(live) = live() else { return };
        let tmp = self.path.with_extension("journal.tmp");
        let text: String = std::iter::once(session)
            .chain(
                live.iter()
                    .filter_map(|r| serde_json::to_string(r).ok())
                    .map(|json| line('P', &json)),
            )
            .collect();
        let rewritten = std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .and_then(|()| OpenOptions::new().append(true).open(&self.path));
        match rewritten {
            Ok(new) => *f = new,
            Err(e) => tracing::warn!("cannot rewrite {}: {e}", self.path.display()),
        }
    }
}

/// What a journal file says.
#[derive(Clone, Debug, Default)]
pub(crate) struct JournalContents {
    /// Entries still queued at its end, in the order they were first queued, each as last
    /// written.
    pub live: Vec<OutboxRecord>,
    /// Local ids the journal mentions at all (queued or removed).
    pub mentioned: HashSet<String>,
    /// Lines that did not check out (damaged).
    pub bad_lines: usize,
    /// The newest session.
    pub session: Option<Session>,
}

/// Reads the journal in `dir`; `None` when there is none.
pub(crate) fn read(dir: &Path) -> Option<JournalContents> {
    let bytes = std::fs::read(dir.join(JOURNAL_FILE)).ok()?;
    let mut contents = JournalContents::default();
    // local id -> (order of first put, latest record)
    let mut live: BTreeMap<String, (usize, OutboxRecord)> = BTreeMap::new();
    for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if raw.is_empty() {
            continue;
        }
        let Some((kind, payload)) = parse_line(raw) else {
            contents.bad_lines += 1;
            continue;
        };
        match kind {
            b'S' => match serde_json::from_str::<Session>(payload) {
                Ok(session) => contents.session = Some(session),
                Err(_) => contents.bad_lines += 1,
            },
            b'P' => match serde_json::from_str::<OutboxRecord>(payload) {
                Ok(record) => {
                    contents.mentioned.insert(record.local_id.clone());
                    let order = live.get(&record.local_id).map_or(n, |(o, _)| *o);
                    live.insert(record.local_id.clone(), (order, record));
                }
                Err(_) => contents.bad_lines += 1,
            },
            _ => {
                contents.mentioned.insert(payload.to_owned());
                live.remove(payload);
            }
        }
    }
    let mut ordered: Vec<(usize, OutboxRecord)> = live.into_values().collect();
    ordered.sort_by_key(|(order, _)| *order);
    contents.live = ordered.into_iter().map(|(_, r)| r).collect();
    Some(contents)
}

/// `(kind, payload)` of a line whose checksum matches.
fn parse_line(raw: &[u8]) -> Option<(u8, &str)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (kind, rest) = text.split_once(' ')?;
    let (crc, payload) = rest.split_once(' ')?;
    let kind = match kind {
        "P" => b'P',
        "D" => b'D',
        "S" => b'S',
        _ => return None,
    };
    (u32::from_str_radix(crc, 16).ok()? == crc32fast::hash(payload.as_bytes()))
        .then_some((kind, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageState;

    fn record(id: &str, attempts: u32) -> OutboxRecord {
        OutboxRecord {
            local_id: id.into(),
            room_id: "r".into(),
            parts: vec![chatsync_protocol::Part::text(id)],
            created_at: "2026-12-02T00:00:00.000Z".into(),
            state: MessageState::Pending,
            attempts,
            failure_reason: None,
            after_id: None,
            op: Default::default(),
            maybe_sent: false,
        }
    }

    #[test]
    fn the_live_entries_come_back_in_queue_order_as_last_written_and_damage_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let journal = OutboxJournal::open(dir.path(), None);
        journal.put(&record("a", 0));
        journal.put(&record("b", 0));
        journal.put(&record("c", 0));
        journal.put(&record("a", 2));
        journal.remove("b");
        drop(journal);
        // A damaged line in the middle and half a line at the end.
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 30;
        bytes[second] ^= 0x20;
        bytes.extend_from_slice(b"P 0000");
        std::fs::write(&path, bytes).unwrap();
        let read = read(dir.path()).unwrap();
        let live: Vec<(&str, u32)> = read
            .live
            .iter()
            .map(|r| (r.local_id.as_str(), r.attempts))
            .collect();
        // "b"'s put was damaged, its removal was not: gone either way.
        assert_eq!(live, [("a", 2), ("c", 0)]);
        assert_eq!(read.bad_lines, 2);
        assert!(read.mentioned.contains("b"));
    }

    #[test]
    fn an_empty_outbox_empties_the_journal_and_a_big_one_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let journal = OutboxJournal::open(dir.path(), None);
        journal.put(&record("a", 0));
        journal.remove("a");
        journal.compact(|| None, true);
        assert_eq!(
            std::fs::metadata(dir.path().join(JOURNAL_FILE))
                .unwrap()
                .len(),
            0
        );
        let session = Session {
            user: crate::store::meta::StoredUser {
                id: "alice".into(),
                name: "Alice".into(),
                avatar: None,
            },
            friend_id: None,
            room_id: None,
        };
        journal.session(&session);
        for i in 0..6_000 {
            journal.put(&record(&format!("m{i}"), 0));
            journal.remove(&format!("m{i}"));
        }
        journal.put(&record("keep", 1));
        journal.compact(|| Some(vec![record("keep", 1)]), false);
        let len = std::fs::metadata(dir.path().join(JOURNAL_FILE))
            .unwrap()
            .len();
        assert!(len < 1_000, "{len}");
        journal.put(&record("after", 0));
        let read = read(dir.path()).unwrap();
        let live: Vec<String> = read.live.into_iter().map(|r| r.local_id).collect();
        assert_eq!(live, ["keep", "after"]);
        assert_eq!(
            read.session,
            Some(session.clone()),
            "the session outlives compaction"
        );
        journal.remove("keep");
        journal.remove("after");
        journal.compact(|| None, true);
        let read = super::read(dir.path()).unwrap();
        assert!(read.live.is_empty());
        assert_eq!(read.session, Some(session));
    }
}
