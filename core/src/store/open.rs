//! Opening a store so that nothing an interrupted open (or write) left behind can brick it.
//!
//! sled 0.34 is crash-safe for its log, but two of the files it writes beside the log are not
//! written atomically, and a later open trusts them:
//! - **`snap.<lsn>.generating`**: at every open sled writes a snapshot of its page table to this
//!   name and renames it to `snap.<lsn>` once complete (and fsynced). A SIGKILL or a full disk
//!   part way leaves the `.generating` file empty or half written; the next open sorts it after
//!   the real snapshot, reads it as the newest one, and refuses the whole store with "Read
//!   corrupted data" (issue 12: 6 stores in 3,600 kills, and one send on a full disk). A
//!   `.generating` file is never a committed snapshot: the rename is what commits it, and the
//!   previous snapshot plus the log hold everything. Removing it is always safe.
//! - **`conf`**: written once, at the first open, with two unsynced writes (text, then a
//!   checksum). Interrupted between them it is left with a text sled cannot parse, and every
//!   later open fails. Its content is fixed by our configuration (we never change sled's segment
//!   size or compression), so a conf that does not parse is removed and sled writes it anew.
//!
//! Both repairs run only while this process holds the store's lock ([`StoreLock`], taken
//! before sled is touched), so they never race a live client's snapshot.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock file beside sled's files. sled locks its `db` file too, but only inside its open,
/// after it has read the files we must repair first.
pub(crate) const LOCK_FILE: &str = "chatsync.lock";

/// An exclusive lock on a store directory, held for the life of the open store. Released by the
/// kernel when the process dies, so a SIGKILL never leaves a store locked.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock on `dir`, or `Busy` when another client (in any process) holds it.
    pub fn acquire(dir: &Path) -> Result<StoreLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(StoreError::Busy(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
        }
    }
}

/// Whether sled has let go of the store in `dir` (its own lock on the `db` file is free): the
/// test `shutdown()` waits on before saying the store is closed.
pub(crate) fn sled_released(dir: &Path) -> bool {
    match File::open(dir.join("db")) {
        Ok(db) => db.try_lock_shared().is_ok(),
        Err(_) => true,
    }
}

/// What [`repair_leftovers`] found and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Leftovers {
    /// Unfinished snapshots removed.
    pub unfinished_snapshots: Vec<PathBuf>,
    /// A `conf` that did not parse, removed (sled rewrites it).
    pub unreadable_conf: bool,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.unfinished_snapshots.is_empty() && !self.unreadable_conf
    }
}

/// Removes what an interrupted open can leave behind (see the module docs). Call it only while
/// holding the store's [`StoreLock`]. A missing directory has nothing to repair.
pub(crate) fn repair_leftovers(dir: &Path) -> Result<Leftovers, StoreError> {
    let mut found = Leftovers::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io_error(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            found.unfinished_snapshots.push(entry.path());
        }
    }
    for path in &found.unfinished_snapshots {
        std::fs::remove_file(path).map_err(|e| io_error(path, e))?;
    }
    let conf = dir.join("conf");
    match std::fs::read(&conf) {
        // sled itself rewrites a conf of 8 bytes or less; longer ones it must be able to parse.
        Ok(bytes) if bytes.len() > 8 && !conf_parses(&bytes[..bytes.len() - 4]) => {
            std::fs::remove_file(&conf).map_err(|e| io_error(&conf, e))?;
            found.unreadable_conf = true;
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&conf, e)),
    }
    if !found.is_empty() {
        // The removals must be durable before sled writes new files in their place.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        tracing::warn!(
            "store {}: removed leftovers of an interrupted open: {found:?}",
            dir.display()
        );
    }
    Ok(found)
}

/// Whether `text` is a conf sled 0.34 can read: the lines `segment_size: N`,
/// `use_compression: BOOL` and `version: MAJOR.MINOR`, each once.
fn conf_parses(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let (mut segment_size, mut compression, mut version) = (false, false, false);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            return false;
        };
        let ok = match key {
            "segment_size" => !segment_size && value.parse::<usize>().is_ok(),
            "use_compression" => !compression && value.parse::<bool>().is_ok(),
            "version" => {
                !version
                    && value.split_once('.').is_some_and(|(a, b)| {
                        a.parse::<usize>().is_ok() && b.parse::<usize>().is_ok()
                    })
            }
            _ => false,
        };
        if !ok {
            return false;
        }
        match key {
            "segment_size" => segment_size = true,
            "use_compression" => compression = true,
            _ => version = true,
        }
    }
    segment_size && compression && version
}

/// A file of spare bytes kept in the store directory so the store can still be opened (and
/// read) on a full disk: sled writes a snapshot while it opens, and on a disk with no room left
/// that write fails and the app could not even show the conversation. When an open fails for
/// want of space, the reserve is given up and the open tried again; the reserve comes back at
/// a later open once there is room.
pub(crate) const RESERVE_FILE: &str = "chatsync.reserve";
/// Bytes kept in reserve: a snapshot of a store of tens of thousands of messages fits.
const RESERVE_BYTES: usize = 512 * 1024;

/// Gives the reserve up; true when there was one.
pub(crate) fn release_reserve(dir: &Path) -> bool {
    std::fs::remove_file(dir.join(RESERVE_FILE)).is_ok()
}

/// Puts the reserve back when it is missing and there is room (best effort: a full disk is
/// exactly when it cannot be had, and that is fine).
pub(crate) fn ensure_reserve(dir: &Path) {
    let path = dir.join(RESERVE_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize == RESERVE_BYTES) {
        return;
    }
    let written = std::fs::write(&path, vec![0u8; RESERVE_BYTES])
        .and_then(|()| std::fs::File::open(&path)?.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        tracing::debug!("no room for the store's reserve: {e}");
    }
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conf_as_sled_writes_it_parses_and_a_cut_one_does_not() {
        let good = b"segment_size: 524288\nuse_compression: false\nversion: 0.34\n";
        assert!(conf_parses(good));
        // Killed between sled's two writes: the text without its checksum. sled cuts the last
        // four bytes off as the checksum, which leaves "version: 0": unparseable.
        assert!(!conf_parses(&good[..good.len() - 4]));
        assert!(!conf_parses(
            b"segment_size: 524288\nuse_compression: false\n"
        ));
        assert!(!conf_parses(b""));
        assert!(!conf_parses(
            b"segment_size: 524288\nsegment_size: 1\nversion: 0.34\n"
        ));
        assert!(!conf_parses(&[0xff, 0xfe, b'\n']));
    }

    #[test]
    fn unfinished_snapshots_and_an_unreadable_conf_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let keep = ["db", "snap.0000000000001000", "chatsync-store", "blobs"];
        for name in keep {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("snap.0000000000002000.generating"), b"").unwrap();
        std::fs::write(
            dir.path().join("conf"),
            b"segment_size: 52\x00\x00\x00\x00\x00",
        )
        .unwrap();
        let found = repair_leftovers(dir.path()).unwrap();
        assert_eq!(found.unfinished_snapshots.len(), 1);
        assert!(found.unreadable_conf);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(left, expected);
        assert_eq!(repair_leftovers(dir.path()).unwrap(), Leftovers::default());
    }

    #[test]
    fn the_lock_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = StoreLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            StoreLock::acquire(dir.path()),
            Err(StoreError::Busy(_))
        ));
        drop(first);
        StoreLock::acquire(dir.path()).unwrap();
    }
}
