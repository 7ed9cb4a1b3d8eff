//! The board lock and per-ticket run locks: OS file locks (flock through
//! std's `File::lock`), so the kernel releases them when orch dies, however
//! it dies. Lock files are never deleted: deleting a lock file while another
//! process waits on it would let two processes hold "the" lock at once.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};

/// Held while reading and committing the board; released on drop.
#[derive(Debug)]
pub struct BoardLock {
    _file: File,
}

fn open_lock_file(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).context_path("cannot create the lock directory", dir)?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .context_path("cannot open the lock file", path)
}

impl BoardLock {
    /// Wait up to `timeout` for the lock. Past it: [`Error::LockBusy`] (exit 75).
    pub fn acquire(path: &Path, timeout: Duration) -> Result<BoardLock> {
        let file = open_lock_file(path)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(BoardLock { _file: file }),
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(Error::LockBusy {
                            path: path.to_path_buf(),
                            waited: timeout,
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
