//! Writes to the user's checkout while an unsandboxed agent runs, seen by
//! inotify instead of two status scans of the whole checkout per ticket.
//!
//! Setting up costs a readdir per directory (no stat per file), and the
//! answer costs nothing per file: on a 20,000-file checkout that is the
//! difference between a few directory reads and two full `git status`
//! scans around every run. `.git`, `.orch` (the plan and every ticket's
//! worktree), nested repositories and ignored directories are not watched,
//! as `git status` would not report them.

use std::collections::{BTreeSet, HashMap};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::git::MainRepo;

/// A watch on the checkout for the length of one run. The kernel queues
/// the events; they are read once, after the run, so nothing runs beside
/// the agent and no event can arrive late.
pub struct CheckoutWatch {
    fd: OwnedFd,
    /// Each watch's directory, relative to the checkout.
    dirs: HashMap<i32, PathBuf>,
}

/// What a run wrote: a change of content, a name made, removed or moved.
fn writes() -> WatchFlags {
    WatchFlags::MODIFY
        | WatchFlags::ATTRIB
        | WatchFlags::CLOSE_WRITE
        | WatchFlags::CREATE
        | WatchFlags::DELETE
        | WatchFlags::MOVED_FROM
        | WatchFlags::MOVED_TO
        | WatchFlags::DONT_FOLLOW
}

impl CheckoutWatch {
    /// Start watching. None when the kernel will not (no inotify, too
    /// many watches): the caller falls back to the scans.
    pub fn start(main: &MainRepo) -> Option<CheckoutWatch> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC).ok()?;
        let mut dirs = HashMap::new();
        for dir in directories(main, &main.root) {
            let wd = inotify::add_watch(&fd, &dir, writes()).ok()?;
            let rel = dir.strip_prefix(&main.root).unwrap_or(&dir).to_path_buf();
            dirs.insert(wd, rel);
        }
        Some(CheckoutWatch { fd, dirs })
    }

    /// The paths written since the start, relative to the checkout, as
    /// `git status` names them (a new directory by itself, not what went
    /// into it), leaving out what git ignores. A queue that overflowed is
    /// said as such.
    pub fn finish(self, main: &MainRepo) -> Vec<String> {
        let mut changed = BTreeSet::new();
        let mut overflowed = false;
        let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        // Until the queue is empty (AGAIN) or cannot be read.
        while let Ok(event) = reader.next() {
            if event.events().contains(ReadFlags::QUEUE_OVERFLOW) {
                overflowed = true;
                continue;
            }
            let (Some(dir), Some(name)) = (self.dirs.get(&event.wd()), event.file_name()) else {
                continue;
            };
            let name = std::ffi::OsStr::from_bytes(name.to_bytes());
            changed.insert(dir.join(name));
        }
        let ignores = main.checkout_ignores();
        let mut out: Vec<String> = changed
            .into_iter()
            .filter(|rel| !skipped(rel))
            .filter(|rel| !ignores.ignored(rel, main.root.join(rel).is_dir()))
            .map(|rel| rel.to_string_lossy().into_owned())
            .collect();
        if overflowed {
            out.push("(more: the kernel's queue of changes overflowed)".into());
        }
        out
    }
}

/// Names at the top of the checkout that are never the agent's concern here.
fn skipped(rel: &Path) -> bool {
    rel.components()
        .next()
        .is_some_and(|c| c.as_os_str() == ".git" || c.as_os_str() == ".orch")
}

/// The checkout's directories that `git status` would look into.
fn directories(main: &MainRepo, root: &Path) -> Vec<PathBuf> {
    let ignores = main.checkout_ignores();
    let mut out = Vec::new();
    let mut walk = walkdir::WalkDir::new(root).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_dir() {
            continue;
        }
        let path = entry.path();
        let rel = path.strip_prefix(root).unwrap_or(path);
        let nested_repo = entry.depth() > 0 && path.join(".git").exists();
        if entry.depth() > 0 && (skipped(rel) || nested_repo || ignores.ignored(rel, true)) {
            walk.skip_current_dir();
            continue;
        }
        out.push(path.to_path_buf());
    }
    out
}
