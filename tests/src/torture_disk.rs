//! The torture's disk slot: one device whose store lives on a small tmpfs that is, in turns,
//! filled up to a few kilobytes of free space (then a life runs and is killed at random) or
//! remounted read-only (then a life runs to its end). After each cycle the disk is made fine
//! again and the store is checked like any other: it opens, nothing acknowledged is lost.
//! Needs root (mount); without it the cycles are skipped and the report says why.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatsync_core::{ChatError, ClientConfig, TokenSource};

use crate::soak::DeviceStore;
use crate::torture::{Ledger, Life, SceneHandle, TortureError};

/// Size of the tmpfs: room for the store's log segments and snapshots, small enough to fill.
const TMPFS_SIZE: &str = "24m";

/// A mounted tmpfs, unmounted when dropped.
pub struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of [`TMPFS_SIZE`] at `path` (created), or says why it cannot.
    pub fn tmpfs(path: &Path) -> Result<Mount, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot mount a tmpfs".into());
        }
        let size = format!("size={TMPFS_SIZE}");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &size, "tmpfs", &path.to_string_lossy()],
        )?;
        Ok(Mount {
            path: path.to_owned(),
        })
    }

    /// Remounts read-only (`true`) or read-write.
    pub fn set_read_only(&self, read_only: bool) -> Result<(), String> {
        let opts = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run("mount", &["-o", opts, &self.path.to_string_lossy()])
    }

    /// Fills the disk until only about `leave` bytes are free.
    pub fn fill(&self, leave: u64) -> Result<(), String> {
        Mount::fill_at(&self.path, leave)
    }

    /// [`Mount::fill`] by path (for a closure that runs while a life is under way).
    fn fill_at(path: &Path, leave: u64) -> Result<(), String> {
        let filler = path.join("filler");
        let _ = std::fs::remove_file(&filler);
        let free = available(path)?;
        let size = free.saturating_sub(leave) as usize;
        // tmpfs counts pages: a write that does not fit fails part way, which is what we want.
        let _ = std::fs::write(&filler, vec![0u8; size]);
        Ok(())
    }
}

/// Bytes free for an unprivileged writer on the file system of `path`.
fn available(path: &Path) -> Result<u64, String> {
    let c = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut s) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    Ok(s.f_bavail as u64 * s.f_frsize as u64)
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = self.set_read_only(false);
        let _ = run("umount", &["-l", &self.path.to_string_lossy()]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether a storage error says the disk is full or read-only (what the app must be told).
fn names_the_disk(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no space") || m.contains("disk is full") || m.contains("read-only")
}

/// Runs the disk slot's cycles. Returns its ledger, its device (store on the tmpfs) and the
/// mount, which must outlive the final checks.
pub(crate) async fn run_disk_slot(
    scene: SceneHandle,
    mut device: DeviceStore,
    work_dir: PathBuf,
) -> Result<(Ledger, DeviceStore, Option<Mount>), TortureError> {
    let mut ledger = Ledger::default();
    let config = scene.config().clone();
    let cycles = config.disk_full_cycles + config.read_only_cycles;
    if cycles == 0 {
        return Ok((ledger, device, None));
    }
    let mount = match Mount::tmpfs(&work_dir.join("disk")) {
        Ok(m) => m,
        Err(why) => {
            scene.note(|r| r.disk_skipped = Some(why));
            return Ok((ledger, device, None));
        }
    };
    device.data = work_dir
        .join("disk")
        .join(format!("device-{}", device.user));
    let mut rng = fastrand::Rng::with_seed(config.seed ^ 0xd15c);
    let mut full_left = config.disk_full_cycles;
    let mut ro_left = config.read_only_cycles;
    let mut life = 0u64;
    // A first healthy life, so there is a store (with a session) to damage.
    let (lines, _) = scene
        .live(Life {
            device: &device,
            number: life,
            seed: rng.u64(..),
            background: None,
            kill_after: std::time::Duration::from_secs(30),
            on_opened: None,
            ops: 12,
        })
        .await?;
    scene.record(&mut ledger, &device.user, &lines);
    while full_left + ro_left > 0 {
        life += 1;
        let full = ro_left == 0 || (full_left > 0 && rng.u32(0..(full_left + ro_left)) < full_left);
        if full {
            full_left -= 1;
            // Half the time the disk is full before the life starts (opening meets it), half
            // the time it fills up once the store is open (sends and syncs meet it).
            let leave = rng.u64(0..=16 * 1024);
            // Long enough, half the time, for the store to need new pages on the full disk.
            let kill_after = if rng.bool() {
                scene.kill_delay(&mut rng)
            } else {
                std::time::Duration::from_millis(rng.u64(1_000..=6_000))
            };
            let filler = mount.path.join("filler");
            let early = rng.bool();
            if early {
                mount
                    .fill(leave)
                    .map_err(|e| TortureError(format!("fill the disk: {e}")))?;
            }
            let late_fill: Option<Box<dyn FnOnce() + Send>> = if early {
                None
            } else {
                let path = mount.path.clone();
                Some(Box::new(move || {
                    let _ = Mount::fill_at(&path, leave);
                }))
            };
            let (lines, killed) = scene
                .live(Life {
                    device: &device,
                    number: life,
                    seed: rng.u64(..),
                    background: None,
                    kill_after,
                    on_opened: late_fill,
                    ops: 400,
                })
                .await?;
            scene.record(&mut ledger, &device.user, &lines);
            if std::env::var_os("CHATSYNC_TORTURE_DEBUG").is_some() {
                eprintln!("full disk (early {early}, leave {leave}): {lines:?}");
            }
            let refused = lines
                .iter()
                .any(|l| l.starts_with("open-error storage") && names_the_disk(l));
            // While the disk is still full, opening is either fine or a storage error that
            // names the full disk; anything else is a store the app cannot read.
            let while_full = open_here(&scene, &device).await;
            scene.note(|r| {
                r.disk_full_cycles += 1;
                if let Some(phase) = killed {
                    *r.kills_by_phase
                        .entry(format!("full disk, {phase}"))
                        .or_default() += 1;
                }
                if refused {
                    r.opens_refused_on_bad_disk += 1;
                }
                match &while_full {
                    Ok(()) => {}
                    Err(ChatError::Storage(m)) if names_the_disk(m) => {
                        r.opens_refused_on_bad_disk += 1
                    }
                    Err(e) => r
                        .unreadable
                        .push(format!("{} on a full disk: {e}", device.user)),
                }
            });
            match std::fs::remove_file(&filler) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(TortureError(format!("free the disk: {e}"))),
            }
        } else {
            ro_left -= 1;
            mount
                .set_read_only(true)
                .map_err(|e| TortureError(format!("remount read-only: {e}")))?;
            let lived = scene
                .live(Life {
                    device: &device,
                    number: life,
                    seed: rng.u64(..),
                    background: None,
                    kill_after: std::time::Duration::from_secs(30),
                    on_opened: None,
                    ops: 12,
                })
                .await;
            mount
                .set_read_only(false)
                .map_err(|e| TortureError(format!("remount read-write: {e}")))?;
            let (lines, _) = lived?;
            scene.record(&mut ledger, &device.user, &lines);
            let refused = lines
                .iter()
                .any(|l| l.starts_with("open-error storage") && names_the_disk(l));
            scene.note(|r| {
                r.read_only_cycles += 1;
                if refused {
                    r.opens_refused_on_bad_disk += 1;
                }
            });
        }
        if !scene.check(&device, &ledger).await? {
            break;
        }
    }
    Ok((ledger, device, Some(mount)))
}

/// Opens the store in this process and closes it again.
async fn open_here(scene: &SceneHandle, device: &DeviceStore) -> Result<(), ChatError> {
    let mut c = ClientConfig::new(
        scene.proxy_url(),
        device.data.clone(),
        device.user.clone(),
        TokenSource::DevTokenRoute,
    );
    c.cache_capacity_bytes = 1024 * 1024;
    tokio::task::spawn_blocking(move || chatsync_core::ChatClient::new(c).map(drop))
        .await
        .unwrap_or_else(|e| Err(ChatError::Storage(format!("open task: {e}"))))
}
