//! Ticket worktrees: `.orch/worktrees/<id>` on the branch `orch/<id>`.
//!
//! All creation goes through [`prepare`], so a future pool of reusable
//! worktrees replaces one function. A first attempt branches from `base`; a
//! retry continues from the branch tip, so no attempt's work is lost.

use std::path::PathBuf;

use crate::board::Layout;
use crate::error::Result;
use crate::git::{self, MainRepo, Oid, Worktree};

#[derive(Debug)]
pub struct Prepared {
    pub path: PathBuf,
    pub branch: String,
    /// The branch tip before the agent ran.
    pub start: Oid,
    /// Whether this attempt created the branch (a first attempt).
    pub created_branch: bool,
    /// Something orch had to repair, for the attempt summary.
    pub notes: Vec<String>,
}

/// Make the ticket's worktree ready for an attempt. On failure nothing
/// half-made is left: a branch created here is deleted again.
pub fn prepare(main: &MainRepo, layout: &Layout, id: &str, base: Oid) -> Result<Prepared> {
    let branch = git::ticket_branch(id);
    let path = layout.worktree(id);
    let name = Layout::worktree_name(id);
    let mut notes = Vec::new();
    let created_branch = if main.branch_exists(&branch) {
        false
    } else {
        main.create_branch_at(&branch, base)?;
        true
    };
    let result = (|| -> Result<()> {
        // A worktree half made or half removed by a killed orch: start over
        // from the branch, which holds all committed work.
        if path.join(".git").exists() && Worktree::open(&path).and_then(|w| w.head()).is_err() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| crate::error::Error::io("cannot clear a broken worktree", &path, e))?;
            main.force_prune_worktree(&name)?;
            notes.push("recreated a broken worktree left by an interrupted orch".into());
        }
        if path.join(".git").exists() {
            let wt = Worktree::open(&path)?;
            // No process of an earlier run is alive here (its run lock is
            // ours), so a leftover index.lock is stale.
            wt.clear_stale_index_lock();
            let want = format!("refs/heads/{branch}");
            if wt.head_ref().as_deref() != Some(want.as_str()) {
                // An earlier agent switched branches; keep what it left there
                // (committed, and reachable from refs/orch/kept), then put the
                // worktree back on the ticket branch.
                if let Some(note) = keep_work(
                    main,
                    &wt,
                    id,
                    "before-retry",
                    "orch: work left off the ticket branch",
                )? {
                    notes.push(note);
                }
                wt.switch_forced(&want)?;
                notes.push(format!(
                    "the worktree was on {} instead of {branch}; switched it back",
                    wt.head_ref().unwrap_or_default()
                ));
            }
        } else {
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(|e| {
                    crate::error::Error::io("cannot clear a broken worktree", &path, e)
                })?;
                notes.push("removed a broken worktree directory".into());
            }
            main.add_worktree(&name, &path, &branch)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        if created_branch {
            // Best effort: the error being returned is the one to report.
            let _ = main.delete_branch(&branch);
        }
        let _ = main.remove_worktree(&name, &path);
        return Err(e);
    }
    main.lock_worktree(&name, "orch: an agent is running in this worktree");
    let start = main
        .branch_tip(&branch)
        .ok_or_else(|| crate::error::Error::other(format!("the branch {branch} has no commit")))?;
    Ok(Prepared {
        path,
        branch,
        start,
        created_branch,
        notes,
    })
}

/// After a successful attempt the worktree goes; the branch stays.
pub fn remove(main: &MainRepo, layout: &Layout, id: &str) -> Result<()> {
    main.remove_worktree(&Layout::worktree_name(id), &layout.worktree(id))
}

pub fn unlock(main: &MainRepo, id: &str) {
    main.unlock_worktree(&Layout::worktree_name(id));
}

/// Undo [`prepare`] of a first attempt that never ran: no worktree and no
/// branch are left behind when they hold nothing but the base.
pub fn discard(main: &MainRepo, layout: &Layout, id: &str) -> Result<()> {
    main.remove_worktree(&Layout::worktree_name(id), &layout.worktree(id))?;
    main.delete_branch(&git::ticket_branch(id))
}

/// Commit what a run left uncommitted in its worktree, wherever its HEAD is.
/// On the ticket branch that is the work; on another branch or a detached
/// HEAD, the commit is also kept as `refs/orch/kept/<id>/<tag>` so that
/// putting the worktree back on its branch can never discard it. Returns a
/// note for the attempt summary when there is something to say.
pub fn keep_work(
    main: &MainRepo,
    wt: &Worktree,
    id: &str,
    tag: impl std::fmt::Display,
    message: &str,
) -> Result<Option<String>> {
    let want = format!("refs/heads/{}", git::ticket_branch(id));
    let head = wt.head_ref();
    let committed = wt.commit_all(message)?;
    if head.as_deref() == Some(want.as_str()) {
        return Ok(committed.map(|oid| {
            format!(
                "committed the uncommitted work as {}",
                &oid.to_string()[..12]
            )
        }));
    }
    let tip = wt.head()?;
    let kept = format!("refs/orch/kept/{id}/{tag}-elsewhere");
    main.keep(&kept, tip, "orch: work left off the ticket branch")?;
    Ok(Some(format!(
        "the worktree was left on {} instead of {}; its work ({}) is kept as {kept}",
        head.unwrap_or_else(|| "a detached HEAD".into()),
        git::ticket_branch(id),
        &tip.to_string()[..12]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    /// libgit2 misreads a worktree that is being created or removed while
    /// it walks the worktrees ("reference ... is already checked out"), so
    /// worktrees made and removed at once, in threads, must not fail.
    #[test]
    fn worktrees_made_and_removed_at_once_do_not_fail() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("f"), "x\n").expect("write");
        git(&repo, &["add", "f"]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        let layout = Layout::new(&repo);
        let failures: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let layout = &layout;
                    let repo = &repo;
                    scope.spawn(move || {
                        let main = git::open_main(repo).expect("open");
                        let base = main.resolve_commit("main").expect("base");
                        let mut failures = Vec::new();
                        for round in 0..15 {
                            let id = format!("t{n}-{round}");
                            match prepare(&main, layout, &id, base) {
                                Ok(_) => {
                                    if let Err(e) = remove(&main, layout, &id) {
                                        failures.push(crate::error::render_chain(&e));
                                    }
                                }
                                Err(e) => failures.push(crate::error::render_chain(&e)),
                            }
                        }
                        failures
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(
            failures.is_empty(),
            "{} of 120 failed, first: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}
