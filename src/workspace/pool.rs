//! The worktree pool: finished ticket worktrees kept as free slots under
//! `.orch/pool/<n>` (registered as `orch-pool-<n>`) and handed to later
//! tickets, so a ticket's worktree is a checkout of only the paths that
//! differ, with its ignored build output still warm.
//!
//! A slot moves between the pool and a ticket by renaming its directory
//! and its registration under the worktree change lock, so two processes
//! can never take one slot. Each move is written to a journal first, and
//! a recycled worktree carries a reset marker in the ticket's local state
//! until it is at the ticket's start: a kill -9 between any two steps is
//! finished by whoever next takes the lock, and what a slot holds never
//! reaches a ticket unchecked.
//!
//! Nothing outside the workspace module knows about slots.

use std::path::{Path, PathBuf};

use crate::board::Layout;
use crate::config::{Pool, PoolClean};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::git::{MainRepo, Oid, WorktreeChange};
use crate::gitcli::{self, Identity};
use crate::text::short_oid;

fn pool_dir(layout: &Layout) -> PathBuf {
    layout.orch.join("pool")
}

fn slot_path(layout: &Layout, n: u32) -> PathBuf {
    pool_dir(layout).join(n.to_string())
}

const SLOT_PREFIX: &str = "orch-pool-";

fn slot_name(n: u32) -> String {
    format!("{SLOT_PREFIX}{n}")
}

/// The move under way, in `<git dir>/orch/`, beside the locks: a person's
/// `git clean` in the checkout cannot take it.
fn journal(layout: &Layout) -> PathBuf {
    layout.local.join("pool-move")
}

/// Present while the ticket's worktree is a slot not yet reset to the
/// ticket's start: its HEAD and files are another ticket's, and must not
/// be taken for this ticket's work.
fn reset_marker(layout: &Layout, id: &str) -> PathBuf {
    layout.state_dir(id).join("pool-reset")
}

/// The pool as orch.yaml sets it. Read here rather than passed down: the
/// worktree is removed from four places (settle, reconcile, landing,
/// `gc`), and the pool is nobody else's business. A file that cannot be
/// read turns the pool off; the tick reports the file itself.
pub fn settings(layout: &Layout) -> Pool {
    match crate::config::Config::load(&layout.config_path()) {
        Ok((config, _)) => config.pool,
        Err(_) => Pool {
            size: 0,
            ..Pool::default()
        },
    }
}

struct Move {
    from: (String, PathBuf),
    to: (String, PathBuf),
}

impl Move {
    fn write(&self, layout: &Layout) -> Result<()> {
        let path = journal(layout);
        let text = format!(
            "{}\n{}\n{}\n{}\n",
            self.from.0,
            self.from.1.display(),
            self.to.0,
            self.to.1.display()
        );
        std::fs::create_dir_all(&layout.local)
            .map_err(|e| Error::io("cannot create", &layout.local, e))?;
        std::fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))
    }

    fn read(layout: &Layout) -> Option<Move> {
        let text = std::fs::read_to_string(journal(layout)).ok()?;
        let mut lines = text.lines();
        let mut next = || lines.next().filter(|l| !l.is_empty()).map(str::to_string);
        let (a, b, c, d) = (next()?, next()?, next()?, next()?);
        Some(Move {
            from: (a, PathBuf::from(b)),
            to: (c, PathBuf::from(d)),
        })
    }

    fn run(&self, main: &MainRepo, held: &WorktreeChange, point: &str) -> Result<()> {
        main.rename_worktree(
            held,
            (&self.from.0, &self.from.1),
            (&self.to.0, &self.to.1),
            || failpoint::hit(point),
        )
    }

    /// Write the journal, move, and clear the journal.
    fn perform(
        &self,
        main: &MainRepo,
        held: &WorktreeChange,
        layout: &Layout,
        point: &str,
    ) -> Result<()> {
        self.write(layout)?;
        self.run(main, held, point)?;
        clear_journal(layout)
    }
}

fn clear_journal(layout: &Layout) -> Result<()> {
    let path = journal(layout);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", &path, e)),
    }
}

/// Finish a move a killed orch left half done, then drop slots that are
/// not whole (a directory without its registration, or the other way).
/// The caller holds the worktree change lock.
fn repair(main: &MainRepo, held: &WorktreeChange, layout: &Layout) -> Result<()> {
    if let Some(mv) = Move::read(layout) {
        // Forward, never back: the move was decided, and the work in it
        // was kept before it began.
        mv.run(main, held, "")?;
    }
    clear_journal(layout)?;
    let mut numbers: Vec<u32> = slots_on_disk(layout);
    for name in main.worktree_names(SLOT_PREFIX) {
        if let Some(n) = name
            .strip_prefix(SLOT_PREFIX)
            .and_then(|n| n.parse::<u32>().ok())
            && !numbers.contains(&n)
        {
            numbers.push(n);
        }
    }
    for n in numbers {
        if !whole(main, layout, n) {
            main.drop_worktree(held, &slot_name(n), &slot_path(layout, n))?;
        }
    }
    Ok(())
}

/// Slot numbers with a directory under `.orch/pool`.
fn slots_on_disk(layout: &Layout) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(pool_dir(layout)) else {
        return Vec::new();
    };
    let mut out: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    out.sort_unstable();
    out
}

/// A slot is whole when its directory and its registration name each other
/// and its HEAD is a commit.
fn whole(main: &MainRepo, layout: &Layout, n: u32) -> bool {
    let name = slot_name(n);
    let path = slot_path(layout, n);
    main.worktree_link_problem(&name, &path).is_none()
        && main
            .open_worktree(&name, &path)
            .and_then(|w| w.head())
            .is_ok()
}

/// Finish what a killed orch left half done (see [`repair`]).
pub fn recover(main: &MainRepo, layout: &Layout) -> Result<()> {
    if !journal(layout).exists() && !pool_dir(layout).exists() {
        return Ok(());
    }
    let held = main.worktree_changes()?;
    repair(main, &held, layout)
}

/// Whether the ticket's worktree is a slot still waiting to be reset.
pub fn reset_pending(layout: &Layout, id: &str) -> bool {
    reset_marker(layout, id).exists()
}

pub fn forget_reset(layout: &Layout, id: &str) {
    // Gone already is what is wanted.
    let _ = std::fs::remove_file(reset_marker(layout, id));
}

/// Move a free slot to the ticket's worktree `path` as `name`. False when
/// the pool is off or empty: the caller makes a fresh worktree. The slot
/// keeps its HEAD and files until [`reset`].
pub fn take(main: &MainRepo, layout: &Layout, id: &str, name: &str, path: &Path) -> Result<bool> {
    if settings(layout).size == 0 && !pool_dir(layout).exists() {
        return Ok(false);
    }
    let held = main.worktree_changes()?;
    repair(main, &held, layout)?;
    let Some(n) = slots_on_disk(layout).into_iter().next() else {
        return Ok(false);
    };
    let marker = reset_marker(layout, id);
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    std::fs::write(&marker, format!("{n}\n")).map_err(|e| Error::io("cannot write", &marker, e))?;
    Move {
        from: (slot_name(n), slot_path(layout, n)),
        to: (name.to_string(), path.to_path_buf()),
    }
    .perform(main, &held, layout, "pool-take")?;
    Ok(true)
}

/// Bring a slot just taken to `tip`: work someone left in it is kept on
/// `refs/orch/kept/<id>/pool-<time>` first, then only the paths that
/// differ are written, and untracked files (and with `clean: all`
/// ignored ones) go. Returns notes for the attempt summary.
///
/// A slot goes back to the pool clean ([`put_back`]), so the one pass
/// over every file here is the status that proves nobody has written in
/// it since. Only what that cannot rule out costs a `git clean`: work
/// found and kept, `clean: all`, or ignore rules that differ between the
/// slot's commit and `tip` (a file one side ignores is untracked on the
/// other).
pub fn reset(
    main: &MainRepo,
    layout: &Layout,
    id: &str,
    name: &str,
    path: &Path,
    tip: Oid,
) -> Result<Vec<String>> {
    let wt = main.open_worktree(name, path)?;
    // No process of an earlier run is alive here (its run lock is ours).
    wt.clear_stale_index_lock();
    let mut notes = Vec::new();
    // A branch the slot's last agent switched to is left where it is:
    // neither the work kept below nor the move to `tip` is committed on it.
    wt.detach_unless_on(None)?;
    let touched = !gitcli::changed_paths(path)?.is_empty();
    if touched && gitcli::stage_all(path)? {
        let at = gitcli::commit_unverified(
            path,
            "orch: work left in a recycled worktree",
            &Identity::of(&main.repo),
        )?;
        let kept = main.keep(
            &format!(
                "refs/orch/kept/{id}/pool-{}",
                jiff::Timestamp::now().as_second()
            ),
            at,
            "orch: work in a recycled worktree",
        )?;
        notes.push(format!(
            "the recycled worktree held work no ticket had kept ({}); it is kept as {kept}",
            short_oid(&at.to_string())
        ));
    }
    failpoint::hit("pool-reset");
    // A commit on an unborn branch made that branch: off it, too.
    wt.detach_unless_on(None)?;
    let from = wt.head().ok();
    // Everything here is committed, so a move that writes only the paths
    // differing from `from` loses nothing, but for edits git was told not
    // to look at: only the full checkout puts those back.
    let moved = from.is_some() && !wt.assumes_unchanged() && gitcli::move_detached_head(path, tip)?;
    if !moved {
        gitcli::checkout_detached(path, tip)?;
    }
    let mode = settings(layout).clean;
    // After the move, not before: files the tip's .gitignore no longer
    // ignores would otherwise become the agent's "work".
    if touched
        || !moved
        || mode == PoolClean::All
        || from.is_none_or(|from| main.ignore_rules_differ(from, tip))
    {
        clean(path, mode)?;
    }
    forget_reset(layout, id);
    Ok(notes)
}

/// `git clean`: untracked files and directories go, and with
/// `clean: all` ignored ones too.
fn clean(path: &Path, mode: PoolClean) -> Result<()> {
    let flags = match mode {
        PoolClean::Ignored => "-d",
        PoolClean::All => "-dx",
    };
    gitcli::run(path, ["clean", "--force", flags, "--quiet"]).map(|_| ())
}

/// Return the ticket's worktree to the pool instead of deleting it.
/// With `kept`, the caller has just kept its unkept work, so all that is
/// untracked in it now is directories holding nothing git sees; they go
/// here (a `git clean`), and the slot waits clean for [`reset`]. Without,
/// it is a slot taken and never reset, as clean as when it came.
/// False when the pool is off, full, over its disk cap, or the worktree
/// cannot move (submodules): the caller removes it.
pub fn put_back(
    main: &MainRepo,
    layout: &Layout,
    name: &str,
    path: &Path,
    kept: bool,
) -> Result<bool> {
    let pool = settings(layout);
    if pool.size == 0
        || !path.is_dir()
        || main.worktree_link_problem(name, path).is_some()
        // Submodules' git directories name the worktree's path: a move
        // would break them.
        || path.join(".gitmodules").exists()
        || main.registration(name).join("modules").exists()
    {
        return Ok(false);
    }
    // Before the worktree change lock, which other ticks wait on. `-d`
    // whatever `clean:` says: it may say `ignored` when the slot is taken.
    if kept {
        clean(path, PoolClean::Ignored)?;
    }
    let held = main.worktree_changes()?;
    repair(main, &held, layout)?;
    let taken = slots_on_disk(layout);
    let Some(n) = (0..pool.size).find(|n| !taken.contains(n)) else {
        return Ok(false);
    };
    if let Some(cap) = pool.max_disk {
        // Measured only here, when a slot would grow the pool.
        let used: u64 = taken
            .iter()
            .map(|n| crate::gc::size_of(&slot_path(layout, *n)))
            .sum();
        if used.saturating_add(crate::gc::size_of(path)) > cap {
            return Ok(false);
        }
    }
    main.unlock_worktree(name);
    Move {
        from: (name.to_string(), path.to_path_buf()),
        to: (slot_name(n), slot_path(layout, n)),
    }
    .perform(main, &held, layout, "pool-return")?;
    Ok(true)
}

/// Drop free slots past the pool's size, and the newest ones while the
/// pool is over its disk cap (`orch gc`). Returns how many went.
pub fn trim(main: &MainRepo, layout: &Layout) -> Result<usize> {
    if !pool_dir(layout).exists() {
        return Ok(0);
    }
    let pool = settings(layout);
    let held = main.worktree_changes()?;
    repair(main, &held, layout)?;
    let mut dropped = 0;
    let mut kept: Vec<(u32, u64)> = Vec::new();
    for n in slots_on_disk(layout) {
        if n >= pool.size {
            main.drop_worktree(&held, &slot_name(n), &slot_path(layout, n))?;
            dropped += 1;
        } else {
            kept.push((n, crate::gc::size_of(&slot_path(layout, n))));
        }
    }
    if let Some(cap) = pool.max_disk {
        while kept.iter().map(|(_, b)| b).sum::<u64>() > cap {
            let Some((n, _)) = kept.pop() else { break };
            main.drop_worktree(&held, &slot_name(n), &slot_path(layout, n))?;
            dropped += 1;
        }
    }
    Ok(dropped)
}
