//! The ticket worktree's own git config, `config.worktree` in its
//! registration: git reads it when the repository has
//! `extensions.worktreeConfig` (git's sparse-checkout turns that on), and
//! the agent can write it, as it writes the rest of its registration. A
//! filter, `core.fsmonitor` or any other command set there would run as
//! orch, outside the sandbox, the next time orch runs git in the worktree.
//! So orch records the file as the worktree was made and puts it back
//! before its own git commands there.

use std::path::PathBuf;

use crate::board::Layout;
use crate::error::{Error, Result};
use crate::git::MainRepo;

fn live(main: &MainRepo, id: &str) -> PathBuf {
    main.registration(&Layout::worktree_name(id))
        .join("config.worktree")
}

/// The record: `none`, or `some` and the file's bytes.
fn record(layout: &Layout, id: &str) -> PathBuf {
    layout.state_dir(id).join("worktree-config")
}

fn read(path: &std::path::Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Record the worktree's own config as it is now, orch's to trust.
pub fn remember(main: &MainRepo, layout: &Layout, id: &str) -> Result<()> {
    let text = match read(&live(main, id))? {
        None => b"none\n".to_vec(),
        Some(bytes) => [b"some\n".as_slice(), &bytes].concat(),
    };
    let path = record(layout, id);
    // A retry finds its record as it was: no write, no fsync.
    if read(&path)?.as_deref() == Some(text.as_slice()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    crate::board::write_atomic(&path, &text)
}

/// Put the worktree's own config back as [`remember`] found it, if it
/// changed since. A note for the attempt summary when it did. Nothing is
/// done for a worktree with no record (made by an earlier orch).
pub fn put_back(main: &MainRepo, layout: &Layout, id: &str) -> Result<Option<String>> {
    let Some(text) = read(&record(layout, id))? else {
        return Ok(None);
    };
    let want = text.strip_prefix(b"some\n").map(<[u8]>::to_vec);
    let path = live(main, id);
    let now = match read(&path) {
        Ok(now) => now,
        // Not a file (a directory, a fifo): not git's config either way.
        Err(_) => Some(Vec::new()),
    };
    if now == want {
        return Ok(None);
    }
    match &want {
        Some(bytes) => {
            if path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            }
            crate::board::write_atomic(&path, bytes)?;
        }
        None => {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| Error::io("cannot remove", &path, e))?;
        }
    }
    Ok(Some(format!(
        "the agent changed its worktree's own git config ({}); orch put it back before running git there, as a command set in it would run outside the sandbox",
        path.display()
    )))
}

/// Drop the record, for a worktree about to be made anew.
pub fn forget(layout: &Layout, id: &str) -> Result<()> {
    let path = record(layout, id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", &path, e)),
    }
}
