//! Recovering a store that does not open or read back: damage no code can prevent (a log
//! truncated or garbled by the disk, files deleted). [`ChatClient::recover`] keeps the damaged
//! directory aside untouched, builds a fresh store in its place with the session and every
//! outbox entry it can still read **under its original txn id** (so a message that had already
//! reached the server is not sent twice: the server keeps one copy per txn id), and says what
//! it could not read. Sync then brings back everything the server holds.
//!
//! Steps, each safe to interrupt:
//! 1. lock the store (another client holding it: `Busy`);
//! 2. copy it to `<dir>.recovering-<ms>/old` (and `pristine`) and check the copy: it opens and
//!    every value decodes: healthy, nothing changes (the copies are removed);
//! 3. salvage the copy ([`crate::store::salvage`]), build the fresh store in
//!    `<dir>.recovering-<ms>/new`, flush it, mark it `ready`;
//! 4. rename `<dir>` to `<dir>.damaged-<ms>`, rename the fresh store to `<dir>`, remove the
//!    scratch folder. Interrupted between the two renames, `<dir>` is missing; the next open
//!    finds the ready store and moves it into place ([`finish_interrupted_recovery`]).
//!
//! [`ChatClient::recover`]: crate::ChatClient::recover

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::ClientConfig;
use crate::error::ChatError;
use crate::store::open::{StoreLock, LOCK_FILE};
use crate::store::salvage::{salvage, SalvageMethod};
use crate::store::{Store, StoreError};

/// Marks a fresh store as complete inside a `.recovering-` folder.
const READY_FILE: &str = "ready";

/// How the damaged store was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecoveryMethod {
    /// The storage engine still opened it: entries were read one by one.
    Opened,
    /// It would not open: its files were scanned for the values the store writes.
    Scanned,
}

/// What [`crate::ChatClient::recover`] found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Whether the store was damaged and rebuilt. `false`: it opened and every value read
    /// back, and nothing was changed.
    pub recovered: bool,
    /// What was wrong with it (the first check that failed), when it was damaged.
    pub damage: Option<String>,
    /// Where the damaged directory was moved (its contents untouched), when rebuilt.
    pub damaged_dir: Option<String>,
    /// How the damaged store was read, when rebuilt.
    pub method: Option<RecoveryMethod>,
    /// Outbox entries queued again in the fresh store, under their original txn ids.
    pub requeued: u32,
    /// Whether the login (session) was carried over.
    pub session_restored: bool,
    /// What could not be read, one line each (empty: nothing queued was lost).
    pub unreadable: Vec<String>,
}

fn io(what: &str, path: &Path, e: std::io::Error) -> ChatError {
    ChatError::Storage(format!("recovery: cannot {what} {}: {e}", path.display()))
}

/// See the module docs. Blocking file I/O: call it off the UI thread.
pub(crate) fn recover(config: &ClientConfig) -> Result<RecoveryReport, ChatError> {
    let dir = config.data_dir.as_path();
    finish_interrupted_recovery(dir).map_err(ChatError::from)?;
    if !dir.exists() {
        return Ok(RecoveryReport::default());
    }
    let _lock = StoreLock::acquire(dir)?;
    let (parent, name) = split(dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    remove_stale_scratch(&parent, &name);
    let scratch = parent.join(format!("{name}.recovering-{stamp}"));
    // Two copies: sled may write to the one it opens (it zeroes a damaged log's tail), and a
    // scan needs the bytes as they were.
    let old = scratch.join("old");
    let pristine = scratch.join("pristine");
    copy_dir(dir, &old)?;
    copy_dir(dir, &pristine)?;

    let damage = match check(&old, config.cache_capacity_bytes) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Ok(RecoveryReport::default());
        }
        Err(damage) => damage,
    };
    tracing::warn!(
        "store {} is damaged ({damage}); rebuilding it",
        dir.display()
    );
    let salvaged = salvage(&old, &pristine);
    let new = scratch.join("new");
    let mut report = RecoveryReport {
        recovered: true,
        damage: Some(damage),
        method: Some(match salvaged.method {
            SalvageMethod::Opened => RecoveryMethod::Opened,
            SalvageMethod::Scanned => RecoveryMethod::Scanned,
        }),
        unreadable: salvaged.unreadable.clone(),
        ..RecoveryReport::default()
    };
    {
        let fresh = Store::open(&new, config.cache_capacity_bytes)?;
        if let Some(session) = &salvaged.session {
            if session.user.id == config.user_id {
                fresh.put_session(session)?;
                fresh.meta.set_profile_dirty(true)?;
                report.session_restored = true;
            } else {
                report.unreadable.push(format!(
                    "the session belongs to {:?}, not {:?}: not carried over",
                    session.user.id, config.user_id
                ));
            }
        }
        for record in &salvaged.outbox {
            fresh.enqueue(record)?;
            report.requeued += 1;
        }
        fresh.flush_blocking()?;
    }
    let ready = scratch.join(READY_FILE);
    std::fs::File::create(&ready)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("mark ready", &ready, e))?;
    sync_dir(&scratch);

    let damaged = parent.join(format!("{name}.damaged-{stamp}"));
    std::fs::rename(dir, &damaged).map_err(|e| io("move aside", dir, e))?;
    std::fs::rename(&new, dir).map_err(|e| io("move into place", &new, e))?;
    sync_dir(&parent);
    let _ = std::fs::remove_dir_all(&scratch);
    report.damaged_dir = Some(damaged.display().to_string());
    Ok(report)
}

/// Whether the store in `dir` opens, every value in it decodes, and its outbox holds every
/// entry the journal says is queued (a log cut short by the disk opens without its tail).
fn check(dir: &Path, cache_bytes: u64) -> Result<(), String> {
    let journal = crate::store::journal::read(dir);
    let opened = std::panic::catch_unwind(|| -> Result<(), StoreError> {
        let store = Store::open(dir, cache_bytes)?;
        store.verify_readable()?;
        if let Some(journal) = journal {
            let held: std::collections::HashSet<String> = store
                .outbox
                .entries()?
                .into_iter()
                .map(|(_, r)| r.local_id)
                .collect();
            let missing = journal
                .live
                .iter()
                .filter(|r| !held.contains(&r.local_id))
                .count();
            if missing > 0 {
                return Err(StoreError::Corrupt(format!(
                    "{missing} queued messages are in the outbox journal but not in the store (its log was cut short)"
                )));
            }
        }
        Ok(())
    });
    match opened {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("reading the store panicked".into()),
    }
}

/// When `dir` is missing but a recovery left a complete fresh store beside it (interrupted
/// between its two renames), moves that store into place. Called by every open.
pub(crate) fn finish_interrupted_recovery(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() {
        return Ok(());
    }
    let Ok((parent, name)) = split(dir) else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return Ok(());
    };
    let prefix = format!("{name}.recovering-");
    let mut ready: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .filter(|p| p.join(READY_FILE).exists() && p.join("new").is_dir())
        .collect();
    ready.sort();
    if let Some(scratch) = ready.pop() {
        tracing::warn!(
            "finishing an interrupted recovery of {}: moving {} into place",
            dir.display(),
            scratch.display()
        );
        std::fs::rename(scratch.join("new"), dir).map_err(|e| {
            StoreError::Sled(sled::Error::Io(std::io::Error::new(
                e.kind(),
                format!("finish the recovery of {}: {e}", dir.display()),
            )))
        })?;
        sync_dir(&parent);
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(())
}

/// Scratch folders of earlier recoveries that never got as far as their ready store.
fn remove_stale_scratch(parent: &Path, name: &str) {
    let prefix = format!("{name}.recovering-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn split(dir: &Path) -> Result<(PathBuf, String), ChatError> {
    let absolute = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| io("resolve", dir, e))?
            .join(dir)
    };
    let name = absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| ChatError::InvalidInput(format!("{} names no folder", dir.display())))?;
    let parent = absolute
        .parent()
        .map(Path::to_owned)
        .ok_or_else(|| ChatError::InvalidInput(format!("{} has no parent", dir.display())))?;
    Ok((parent, name))
}

/// Copies the files of `from` (recursively, not the lock file) into `to`.
fn copy_dir(from: &Path, to: &Path) -> Result<(), ChatError> {
    std::fs::create_dir_all(to).map_err(|e| io("create", to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| io("read", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("read", from, e))?;
        let path = entry.path();
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| io("read", &path, e))?;
        if kind.is_dir() {
            copy_dir(&path, &target)?;
        } else if kind.is_file() {
            std::fs::copy(&path, &target).map_err(|e| io("copy", &path, e))?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
