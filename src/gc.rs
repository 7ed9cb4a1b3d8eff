//! What `orch gc` removes: worktrees of done tickets, branches the target
//! holds, and what a finished ticket left past `retention:`. Found by
//! [`plan`] without changing anything, so `orch gc --dry-run` and
//! `orch doctor` say exactly what `orch gc` would do; removed by
//! [`collect`], which keeps on a ref first whatever no other ref holds.
//!
//! Only tickets that are done, or no longer on the board, are looked at:
//! one in todo, in progress, landing or blocked is never touched, whatever
//! its age. Kept refs (`refs/orch/kept/...`) are the safety net and stay.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::board::{Board, Layout};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::git::{self, MainRepo, Oid};
use crate::lock::RunLock;
use crate::text::short_oid;
use crate::ticket::State;

/// What one thing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    // Declared in the order they are removed: a worktree's work is kept
    // against its branch before the branch goes.
    Worktree,
    Branch,
    Logs,
    RunState,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Worktree => "worktree",
            Kind::Branch => "branch",
            Kind::Logs => "logs",
            Kind::RunState => "run state",
        }
    }
}

/// One thing `orch gc` would remove.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub id: String,
    /// The directory, for everything but a branch.
    pub path: Option<PathBuf>,
    /// Why it may go: "done", "landed on main", "untouched for 40d".
    pub why: String,
    /// Bytes of its files, measured now; a branch counts 0.
    pub bytes: u64,
    /// What in it exists nowhere else and is kept on a ref before it goes.
    pub unique: Option<String>,
}

/// What `orch gc` would remove now.
#[derive(Debug, Default)]
pub struct Plan {
    pub items: Vec<Item>,
    pub retention: Duration,
    /// What gc leaves although it would go, and why.
    pub left: Vec<String>,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.bytes).sum()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.items.iter().filter(|i| i.kind == kind).count()
    }
}

/// Where an id stands on the board, for gc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// In todo, in progress, landing or blocked (in any of them, if a
    /// person left the file in two places): never touched.
    Active,
    Done,
    /// No file on the board.
    Gone,
}

fn standing(board: &Board, id: &str) -> Standing {
    match board.seen.get(id) {
        None => Standing::Gone,
        Some(states) if states.iter().all(|s| *s == State::Done) => Standing::Done,
        Some(_) => Standing::Active,
    }
}

/// What `orch gc` would remove now, with nothing changed.
pub fn plan(main: &MainRepo, layout: &Layout, board: &Board, config: &Config) -> Result<Plan> {
    let retention = config.retention;
    let now = SystemTime::now();
    let mut plan = Plan {
        items: Vec::new(),
        retention,
        left: Vec::new(),
    };
    let old = |age: Duration| age >= retention;
    let ids = ids_with_litter(main, layout);
    let mut touched: Option<BTreeMap<String, SystemTime>> = None;
    let target = config.target().to_string();
    let target_tip = main.branch_tip(&target);
    for id in &ids {
        let standing = standing(board, id);
        if standing == Standing::Active {
            continue;
        }
        // A run holding the lock of a ticket that is done is settling:
        // nothing of it goes until it has.
        if RunLock::is_held(&layout.run_lock(id)).unwrap_or(true) {
            continue;
        }
        let state_word = match standing {
            Standing::Done => "done",
            _ => "not on the board",
        };
        let worktree = layout.worktree(id);
        let has_worktree = std::fs::symlink_metadata(&worktree).is_ok();
        let link_problem = has_worktree
            .then(|| main.worktree_link_problem(&Layout::worktree_name(id), &worktree))
            .flatten();
        if let Some(problem) = link_problem {
            // Not a worktree orch can read: what is in it cannot be kept
            // on a ref, so it is not orch's to delete.
            plan.left.push(format!(
                "{}: {problem}; look at it and remove it by hand",
                layout.display_local(&worktree)
            ));
        } else if has_worktree {
            plan.items.push(Item {
                kind: Kind::Worktree,
                id: id.clone(),
                bytes: size_of(&worktree),
                unique: crate::workspace::unkept_work(main, layout, id)?,
                path: Some(worktree),
                why: state_word.to_string(),
            });
        }
        let branch = git::ticket_branch(id);
        if let Some(tip) = main.branch_tip(&branch)
            && main.checkouts_of(&branch).is_empty()
        {
            let landed =
                standing == Standing::Done && target_tip.is_some_and(|t| main.contains(t, tip));
            let why = if landed {
                Some(format!("landed on {target}"))
            } else {
                let last = touched
                    .get_or_insert_with(|| last_touched(layout))
                    .get(id.as_str())
                    .copied();
                let since = [last, commit_time(main, tip)].into_iter().flatten().max();
                let age = since.and_then(|t| now.duration_since(t).ok());
                age.filter(|a| old(*a))
                    .map(|a| format!("{state_word} for {}", days(a)))
            };
            if let Some(why) = why {
                plan.items.push(Item {
                    kind: Kind::Branch,
                    id: id.clone(),
                    path: None,
                    why,
                    bytes: 0,
                    unique: (!held_elsewhere(main, &branch, tip))
                        .then(|| format!("its commits up to {}", short_oid(&tip.to_string()))),
                });
            }
        }
        for (kind, dir) in [
            (Kind::Logs, layout.log_dir(id)),
            (Kind::RunState, layout.state_dir(id)),
        ] {
            if !dir.is_dir() {
                continue;
            }
            let Some(age) = newest_mtime(&dir).and_then(|t| now.duration_since(t).ok()) else {
                continue;
            };
            if old(age) {
                plan.items.push(Item {
                    kind,
                    id: id.clone(),
                    bytes: size_of(&dir),
                    path: Some(dir),
                    why: format!("{state_word}, untouched for {}", days(age)),
                    unique: (kind == Kind::Logs).then(|| "the full attempt logs".to_string()),
                });
            }
        }
    }
    // The log of landing sets, shared by every ticket.
    let landing_log = layout.local.join("logs").join("landing.log");
    if let Some(age) = std::fs::symlink_metadata(&landing_log)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        && old(age)
    {
        plan.items.push(Item {
            kind: Kind::Logs,
            id: String::new(),
            bytes: size_of(&landing_log),
            path: Some(landing_log),
            why: format!("the landing log, untouched for {}", days(age)),
            unique: Some("the landing log".into()),
        });
    }
    plan.items
        .sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Ok(plan)
}

/// What [`collect`] did with one item.
#[derive(Debug)]
pub struct Removed {
    pub item: Item,
    /// Where what only it held is kept now, and what else is worth saying.
    pub notes: Vec<String>,
}

/// Remove what `plan` found. Each branch is looked at again just before
/// it goes (a worktree removed before it may have kept work against it),
/// and whatever no other ref holds is kept on `refs/orch/kept/<id>/gc-...`
/// first. Stops at the first failure: what was removed before it is
/// returned in the error's context by the caller's output.
pub fn collect(
    main: &MainRepo,
    layout: &Layout,
    plan: Plan,
    mut done: impl FnMut(&Removed),
) -> Result<u64> {
    let mut freed = 0;
    for item in plan.items {
        let notes = match item.kind {
            Kind::Worktree => crate::workspace::remove_as(main, layout, &item.id, "gc")?,
            Kind::Branch => remove_branch(main, &item.id)?,
            Kind::Logs => {
                let Some(path) = &item.path else { continue };
                let notes = keep_logs(main, &item.id, path)?;
                remove_path(path)?;
                notes
            }
            Kind::RunState => {
                let Some(path) = &item.path else { continue };
                remove_path(path)?;
                Vec::new()
            }
        };
        freed += item.bytes;
        done(&Removed { item, notes });
    }
    Ok(freed)
}

fn remove_branch(main: &MainRepo, id: &str) -> Result<Vec<String>> {
    let branch = git::ticket_branch(id);
    let Some(tip) = main.branch_tip(&branch) else {
        return Ok(Vec::new());
    };
    let mut notes = Vec::new();
    if !held_elsewhere(main, &branch, tip) {
        let kept = main.keep(
            &format!("refs/orch/kept/{id}/gc-{}", short_oid(&tip.to_string())),
            tip,
            "orch gc: a ticket branch whose commits no other ref holds",
        )?;
        notes.push(format!("its commits no other ref holds are kept as {kept}"));
    }
    main.delete_branch(&branch)?;
    Ok(notes)
}

/// An attempt's full log exists nowhere else (the plan has its summary
/// and tail): it is kept, compressed, on a ref before its file goes.
/// The landing log (a file shared by all tickets, `id` empty) is kept the
/// same way, under `refs/orch/kept/landing-log/`.
fn keep_logs(main: &MainRepo, id: &str, path: &Path) -> Result<Vec<String>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let (name, what) = if id.is_empty() {
        (
            "refs/orch/kept/landing-log/gc".to_string(),
            "the landing log".to_string(),
        )
    } else {
        (
            format!("refs/orch/kept/{id}/gc-logs"),
            format!("the attempt logs of {id}"),
        )
    };
    let kept = main.keep_files(&name, path, &format!("orch gc: {what}"))?;
    let example = if id.is_empty() {
        "landing.log"
    } else {
        "1.log"
    };
    Ok(vec![format!(
        "kept compressed as {kept} (`git show {kept}:{example}`)"
    )])
}

fn remove_path(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot remove", path, e)),
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    removed.map_err(|e| Error::io("cannot remove", path, e))
}

/// Whether a ref other than `branch` holds `tip`. Remote-tracking refs do
/// not count: the next `git fetch --prune` may take them.
pub fn held_elsewhere(main: &MainRepo, branch: &str, tip: Oid) -> bool {
    let own = format!("refs/heads/{branch}");
    let Ok(refs) = main.repo.references() else {
        return false;
    };
    for r in refs.flatten() {
        let Ok(name) = r.name() else { continue };
        if name == own || name.starts_with("refs/remotes/") {
            continue;
        }
        if let Ok(c) = r.peel_to_commit()
            && main.contains(c.id(), tip)
        {
            return true;
        }
    }
    false
}

/// Ids that have a worktree, a branch, logs or run state on this host.
fn ids_with_litter(main: &MainRepo, layout: &Layout) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for dir in [
        layout.orch.join("worktrees"),
        layout.local.join("logs"),
        layout.local.join("state"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if let Some(name) = e.file_name().to_str()
                && e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink())
            {
                ids.insert(name.to_string());
            }
        }
    }
    for name in main.ref_names("refs/heads/orch/") {
        if name != git::PLAN_REF
            && let Some(id) = name.strip_prefix("refs/heads/orch/")
        {
            ids.insert(id.to_string());
        }
    }
    // Names that are no ticket id (a worktree half removed, `.x.removing`,
    // a directory someone made) are not orch's to judge.
    ids.retain(|id| crate::ticket::check_id(id).is_none());
    ids
}

/// When each ticket's file last changed on orch/plan (moved to done, or
/// deleted), from one walk of the plan history.
fn last_touched(layout: &Layout) -> BTreeMap<String, SystemTime> {
    let mut out = BTreeMap::new();
    let Ok(text) = crate::gitcli::run(
        &layout.plan,
        [
            "log",
            "--format=%x01%ct",
            "--name-only",
            "--no-renames",
            git::PLAN_REF,
            "--",
            "tickets",
        ],
    ) else {
        return out;
    };
    for commit in text.split('\u{1}').filter(|c| !c.trim().is_empty()) {
        let mut lines = commit.lines();
        let Some(at) = lines.next().and_then(|l| l.trim().parse::<u64>().ok()) else {
            continue;
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(at);
        for path in lines {
            let Some(id) = path
                .strip_prefix("tickets/")
                .and_then(|p| p.split_once('/'))
                .and_then(|(_, file)| file.strip_suffix(".md"))
            else {
                continue;
            };
            // Newest first: the first time an id is seen is its last change.
            out.entry(id.to_string()).or_insert(at);
        }
    }
    out
}

fn commit_time(main: &MainRepo, oid: Oid) -> Option<SystemTime> {
    let secs = main
        .repo
        .find_commit(oid)
        .ok()?
        .committer()
        .when()
        .seconds();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Bytes of the files under `path`, links not followed.
pub fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries.flatten().map(|e| size_of(&e.path())).sum()
}

/// The newest modification time under `path`: a directory is as old as
/// the last file written in it (its own time moves when anything in it is
/// deleted), or its own time when it is empty.
fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .ok()?
        .flatten()
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
        .or(own)
}

/// An age as people say it: whole days, or the exact duration below one.
fn days(age: Duration) -> String {
    let d = age.as_secs() / 86400;
    if d >= 1 {
        format!("{d}d")
    } else {
        crate::duration::display(Duration::from_secs(age.as_secs()))
    }
}

/// Where orch's things take space on this host.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub worktrees: u64,
    pub logs: u64,
    pub state: u64,
}

impl Usage {
    pub fn measure(layout: &Layout) -> Usage {
        Usage {
            worktrees: size_of(&layout.orch.join("worktrees")),
            logs: size_of(&layout.local.join("logs")),
            state: size_of(&layout.local.join("state")),
        }
    }

    pub fn total(&self) -> u64 {
        self.worktrees + self.logs + self.state
    }
}
