//! The board lock and per-ticket run locks: OS file locks (flock through
//! std's `File::lock`), so the kernel releases them when orch dies, however
//! it dies. Lock files are never deleted: deleting a lock file while another
//! process waits on it would let two processes hold "the" lock at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};

/// Held while reading and committing the board; released on drop.
#[derive(Debug)]
pub struct BoardLock {
    _file: File,
    _legacy: Option<File>,
}

/// Lock files and their directories are private to their owner: another
/// local user who could open a lock file could hold the board's lock.
fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .context_path("cannot open the lock file", path)?;
    // Made by an older orch, or under a loose umask: tighten it.
    if let Ok(meta) = file.metadata()
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    }
    Ok(file)
}

/// Create `dir` (and its parents) as 0700, and tighten it if it exists
/// with group or other access.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .context_path("cannot create the directory", dir)?;
    if let Ok(meta) = std::fs::metadata(dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    Ok(())
}

/// The process holding an flock on `path`, from /proc/locks: `pid 123
/// (orch tick)`. None where it cannot be found (another mount namespace, a
/// kernel without /proc/locks).
pub fn holder(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let ino = meta.ino();
    let dev = meta.dev();
    // /proc/locks prints the device as major:minor in hex.
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid: i32 = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        let file = fields.get(at + 4)?;
        (*file == want).then(|| fields.get(at + 3)?.parse().ok())?
    })?;
    Some(crate::process::describe(pid))
}

impl BoardLock {
    /// Wait up to `timeout` for the lock. Past it: [`Error::LockBusy`] (exit 75).
    pub fn acquire(path: &Path, timeout: Duration) -> Result<BoardLock> {
        let file = open_lock_file(path)?;
        wait_for_lock(&file, path, timeout)?;
        Ok(BoardLock {
            _file: file,
            _legacy: None,
        })
    }

    /// [`BoardLock::acquire`], and the lock file an older orch used at
    /// `legacy` as well where it exists (never created): an older orch
    /// still run by cron keeps to that one.
    pub fn acquire_with_legacy(path: &Path, legacy: &Path, timeout: Duration) -> Result<BoardLock> {
        let start = Instant::now();
        let mut lock = BoardLock::acquire(path, timeout)?;
        if let Ok(file) = OpenOptions::new().read(true).open(legacy)
            && file.metadata().is_ok_and(|m| m.is_file())
        {
            wait_for_lock(&file, legacy, timeout.saturating_sub(start.elapsed()))?;
            lock._legacy = Some(file);
        }
        Ok(lock)
    }
}

fn wait_for_lock(file: &File, path: &Path, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) => {
                if start.elapsed() >= timeout {
                    return Err(Error::LockBusy {
                        path: path.to_path_buf(),
                        waited: timeout,
                        holder: holder(path),
                    });
                }
                std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(TryLockError::Error(e)) => {
                return Err(Error::io("cannot lock", path, e));
            }
        }
    }
}

/// Held by the process that supervises one ticket's run, for the whole run.
/// A free run lock on an in-progress ticket means its supervisor is gone.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Take the run lock if it is free; `Ok(None)` if someone holds it.
    pub fn try_acquire(path: &Path) -> Result<Option<RunLock>> {
        let file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io("cannot lock", path, e)),
        }
    }

    /// Whether some process holds the lock at `path` right now.
    pub fn is_held(path: &Path) -> Result<bool> {
        if !path.exists() {
            return Ok(false);
        }
        Ok(RunLock::try_acquire(path)?.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_lock_times_out_while_held_and_frees_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = BoardLock::acquire(&path, Duration::ZERO).unwrap();
        let err = BoardLock::acquire(&path, Duration::from_millis(30)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::LOCK_BUSY);
        drop(held);
        BoardLock::acquire(&path, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_busy_lock_names_its_holder_and_lock_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("private").join("lock");
        // Held through another open file description, as another process would.
        let other = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open({
                private_dir(path.parent().unwrap()).unwrap();
                &path
            })
            .unwrap();
        other.lock().unwrap();
        let err = BoardLock::acquire(&path, Duration::from_millis(10)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn run_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.lock");
        let held = RunLock::try_acquire(&path).unwrap().unwrap();
        assert!(RunLock::try_acquire(&path).unwrap().is_none());
        assert!(RunLock::is_held(&path).unwrap());
        drop(held);
        assert!(!RunLock::is_held(&path).unwrap());
    }
}
