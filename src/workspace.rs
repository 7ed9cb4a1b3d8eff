//! Ticket worktrees: `.orch/worktrees/<id>` on the branch `orch/<id>`.
//!
//! All creation goes through [`prepare`] and all removal through
//! [`remove`], which take a worktree from the pool of recycled ones and
//! return it there (see [`pool`]). A first attempt branches from `base`; a
//! retry continues from the branch tip, so no attempt's work is lost.

mod own_config;
mod pool;

use std::path::PathBuf;

use crate::board::Layout;
use crate::error::Result;
use crate::git::{self, MainRepo, Oid, Worktree};
use crate::gitcli::{self, Identity};
use crate::remote::Remote;
use crate::text::short_oid;

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
///
/// `first` says the ticket has never been claimed before: a branch or
/// worktree already there belongs to an earlier ticket of the same id (a
/// file deleted and written again by hand), whose work is kept on refs
/// rather than continued.
pub fn prepare(
    main: &MainRepo,
    layout: &Layout,
    id: &str,
    base: Oid,
    first: bool,
    hooks: &Hooks<'_>,
) -> Result<Prepared> {
    let branch = git::ticket_branch(id);
    let path = layout.worktree(id);
    let name = Layout::worktree_name(id);
    let mut notes = Vec::new();
    if main.clear_stale_ref_lock(&format!("refs/heads/{branch}")) {
        notes.push(format!(
            "removed a stale lock on {branch} left by a killed process"
        ));
    }
    if first {
        notes.extend(set_aside_earlier_ticket(main, layout, id)?);
    }
    let existed = std::fs::symlink_metadata(&path).is_ok();
    let created_branch = if main.branch_exists(&branch) {
        false
    } else {
        main.create_branch_at(&branch, base)?;
        true
    };
    let result = (|| -> Result<()> {
        pool::recover(main, layout)?;
        // An agent of an earlier attempt may have replaced the worktree with
        // a link or rewritten its `.git`: put the link back first, so that
        // nothing below follows it into the user's checkout or the plan.
        if std::fs::symlink_metadata(&path).is_ok()
            && let Some(note) = main.repair_worktree_link(&name, &path)?
        {
            notes.push(note);
        }
        // A worktree half made or half removed by a killed orch: start over
        // from the branch, which holds all committed work.
        if path.join(".git").exists()
            && main
                .open_worktree(&name, &path)
                .and_then(|w| w.head())
                .is_err()
        {
            std::fs::remove_dir_all(&path)
                .map_err(|e| crate::error::Error::io("cannot clear a broken worktree", &path, e))?;
            main.force_prune_worktree(&name)?;
            notes.push("recreated a broken worktree left by an interrupted orch".into());
        }
        if !path.join(".git").exists() {
            if path.exists() {
                std::fs::remove_dir_all(&path).map_err(|e| {
                    crate::error::Error::io("cannot clear a broken worktree", &path, e)
                })?;
                notes.push("removed a broken worktree directory".into());
            }
            let tip = main.branch_tip(&branch).ok_or_else(|| {
                crate::error::Error::other(format!("the branch {branch} has no commit"))
            })?;
            // A marker without its worktree is from a take that never
            // moved the slot.
            pool::forget_reset(layout, id);
            // What an earlier worktree of this id had is not this one's.
            own_config::forget(layout, id)?;
            if !pool::take(main, layout, id, &name, &path)? {
                main.add_ticket_worktree(&name, &path, tip)?;
            }
        }
        let tip = main.branch_tip(&branch).ok_or_else(|| {
            crate::error::Error::other(format!("the branch {branch} has no commit"))
        })?;
        if pool::reset_pending(layout, id) {
            // A recycled worktree: its HEAD and files are another
            // ticket's, nothing of this one's to keep.
            notes.extend(pool::reset(main, layout, id, &name, &path, tip)?);
            return Ok(());
        }
        notes.extend(own_config::put_back(main, layout, id)?);
        let wt = main.open_worktree(&name, &path)?;
        // No process of an earlier run is alive here (its run lock is
        // ours), so a leftover index.lock is stale.
        wt.clear_stale_index_lock();
        let head_ref = wt.head_ref();
        if head_ref.is_some()
            || wt.head().ok() != Some(tip)
            || !gitcli::changed_paths(&path)?.is_empty()
        {
            // Anything an earlier run left off the branch tip (another
            // branch, a detached commit) is kept before the worktree is
            // put back at the tip.
            let taken = take_work(
                main,
                &wt,
                id,
                tip,
                Move::FastForward,
                "before-retry",
                &WorkCommit {
                    message: "orch: work left in the worktree",
                    hooks,
                },
            )?;
            notes.extend(taken.notes);
            if let Some(other) = head_ref.filter(|r| *r != format!("refs/heads/{branch}")) {
                notes.push(format!(
                    "the worktree was on {other} instead of {branch}; switched it back"
                ));
            }
        }
        // Detached at the tip: the agent's commits move only this
        // worktree's HEAD; orch moves the branch after the run.
        let tip = main.branch_tip(&branch).unwrap_or(tip);
        gitcli::checkout_detached(&path, tip)?;
        Ok(())
    })();
    if let Err(e) = result {
        if created_branch {
            // Best effort: the error being returned is the one to report.
            let _ = main.delete_branch(&branch);
        }
        // Only a worktree made here goes: one that was there may hold a
        // person's work that the failure kept orch from taking.
        if !existed {
            let _ = main.remove_worktree(&name, &path);
            pool::forget_reset(layout, id);
        }
        return Err(e);
    }
    own_config::remember(main, layout, id)?;
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

/// Keep what an earlier ticket with this id left (its worktree's work and
/// its branch) on `refs/orch/kept/<id>/`, and clear both, so a new ticket's
/// first attempt starts from the base and never on another ticket's work.
fn set_aside_earlier_ticket(main: &MainRepo, layout: &Layout, id: &str) -> Result<Vec<String>> {
    let branch = git::ticket_branch(id);
    let path = layout.worktree(id);
    let mut notes = Vec::new();
    if std::fs::symlink_metadata(&path).is_ok() {
        notes.extend(remove(main, layout, id)?);
    }
    if let Some(old) = main.branch_tip(&branch) {
        let kept = main.keep(
            &format!(
                "refs/orch/kept/{id}/earlier-ticket-{}",
                short_oid(&old.to_string())
            ),
            old,
            "orch: the branch an earlier ticket with this id left",
        )?;
        main.delete_branch(&branch)?;
        notes.push(format!(
            "{branch} was left by an earlier ticket with this id; it is kept as {kept}, and this first attempt starts from the base"
        ));
    }
    Ok(notes)
}

/// On a board shared through a remote: take the ticket branch as the
/// remote has it before an attempt, so a retry on this host continues from
/// where the last attempt on any host ended. A local branch the remote
/// lacks commits of stays (it is pushed after the attempt); one that went
/// another way is kept on a ref first. Returns notes for the summary.
pub fn take_remote_branch(main: &MainRepo, remote: &Remote, id: &str) -> Result<Vec<String>> {
    let branch = git::ticket_branch(id);
    let Some(theirs) = remote.fetch_branch(&branch)? else {
        return Ok(Vec::new());
    };
    let full = format!("refs/heads/{branch}");
    let mut notes = Vec::new();
    match main.branch_tip(&branch) {
        None => {
            main.create_branch_at(&branch, theirs)?;
            notes.push(format!(
                "continued from {branch} as {} has it ({})",
                remote.name,
                short_oid(&theirs.to_string())
            ));
        }
        Some(ours) if main.contains(ours, theirs) => {}
        Some(ours) => {
            if !main.contains(theirs, ours) {
                let kept = main.keep(
                    &format!(
                        "refs/orch/kept/{id}/diverged-{}",
                        short_oid(&ours.to_string())
                    ),
                    ours,
                    "orch: the ticket branch here went another way than the remote's",
                )?;
                notes.push(format!(
                    "{branch} here went another way than on {}; kept it as {kept} and continued from the remote's",
                    remote.name
                ));
            }
            main.set_ref(
                &full,
                theirs,
                "orch: take the ticket branch from the remote",
            )?;
        }
    }
    Ok(notes)
}

/// On a board shared through a remote: push the ticket branch and its
/// kept refs, so nothing an agent did exists only on this disk. A branch
/// the remote moved elsewhere meanwhile (another host's run) is not
/// overwritten: this host's tip is pushed as a kept ref instead.
pub fn publish_branch(
    main: &MainRepo,
    remote: &Remote,
    id: &str,
    attempt: u32,
) -> Result<Vec<String>> {
    let branch = git::ticket_branch(id);
    let full = format!("refs/heads/{branch}");
    let mut notes = Vec::new();
    let mut specs: Vec<(String, String)> = main
        .refs_under(&format!("refs/orch/kept/{id}/"))
        .into_iter()
        .map(|(name, _)| (name.clone(), name))
        .collect();
    if main.branch_tip(&branch).is_some() {
        specs.push((full.clone(), full.clone()));
    }
    let ends = remote.push(&specs, false)?;
    if let Some((_, crate::remote::Pushed::Rejected(why))) = ends.iter().find(|(to, _)| *to == full)
        && let Some(ours) = main.branch_tip(&branch)
    {
        let kept = main.keep(
            &format!(
                "refs/orch/kept/{id}/{attempt}-{}",
                crate::board::host_name()
            ),
            ours,
            "orch: this host's tip of a ticket branch another host moved",
        )?;
        remote.push(&[(kept.clone(), kept.clone())], false)?;
        notes.push(format!(
            "{} refused {branch} ({why}); this host's tip is on {kept} there",
            remote.name
        ));
    }
    Ok(notes)
}

/// After a successful attempt the worktree goes; the branch stays.
/// Nothing in it is lost: work its branch does not hold (a person's fix
/// made by hand, a commit on a detached HEAD) is committed and kept as
/// `refs/orch/kept/<id>/removed-<time>` first, and where it cannot be, the
/// worktree stays. Returns what was kept, for the output.
pub fn remove(main: &MainRepo, layout: &Layout, id: &str) -> Result<Vec<String>> {
    remove_with(main, layout, id, "removed", true)
}

/// [`remove`], with the kept ref named `refs/orch/kept/<id>/<label>-<time>`
/// so that who removed the worktree (`orch gc`) shows in the name. The
/// worktree is deleted, never recycled: gc is there to free the disk.
pub fn remove_as(main: &MainRepo, layout: &Layout, id: &str, label: &str) -> Result<Vec<String>> {
    remove_with(main, layout, id, label, false)
}

/// With `recycle`, the pool on and room in it, the worktree becomes a
/// free slot instead of being deleted, after the same keeping.
fn remove_with(
    main: &MainRepo,
    layout: &Layout,
    id: &str,
    label: &str,
    recycle: bool,
) -> Result<Vec<String>> {
    let name = Layout::worktree_name(id);
    let path = layout.worktree(id);
    // A return to the pool a killed orch left half done may have moved
    // this very worktree already.
    pool::recover(main, layout)?;
    // A slot taken but never reset holds no work of this ticket: its HEAD
    // is another's, whose work was kept when it was returned.
    let kept = !pool::reset_pending(layout, id);
    let notes = if !kept {
        Vec::new()
    } else {
        let mut notes: Vec<String> = own_config::put_back(main, layout, id)?
            .into_iter()
            .collect();
        notes.extend(keep_before_removal(main, &name, &path, id, label)?);
        notes
    };
    if !(recycle && pool::put_back(main, layout, &name, &path, kept)?) {
        main.remove_worktree(&name, &path)?;
    }
    pool::forget_reset(layout, id);
    Ok(notes)
}

/// Drop free worktrees past the pool's size or disk cap (`orch gc`).
pub fn trim_pool(main: &MainRepo, layout: &Layout) -> Result<usize> {
    pool::trim(main, layout)
}

/// Before a dead run's work is taken from its worktree: a recycled
/// worktree whose reset a killed orch never finished holds no work of
/// this ticket, only another's HEAD; it is reset now. Notes for output.
pub fn finish_interrupted(main: &MainRepo, layout: &Layout, id: &str) -> Result<Vec<String>> {
    pool::recover(main, layout)?;
    if !pool::reset_pending(layout, id) {
        return Ok(Vec::new());
    }
    let path = layout.worktree(id);
    if std::fs::symlink_metadata(&path).is_err() {
        pool::forget_reset(layout, id);
        return Ok(Vec::new());
    }
    let branch = git::ticket_branch(id);
    let tip = main
        .branch_tip(&branch)
        .ok_or_else(|| crate::error::Error::other(format!("the branch {branch} has no commit")))?;
    pool::reset(main, layout, id, &Layout::worktree_name(id), &path, tip)
}

/// What in the ticket's worktree its branch does not hold, without
/// changing anything: what [`remove`] would keep on a ref first.
pub fn unkept_work(main: &MainRepo, layout: &Layout, id: &str) -> Result<Option<String>> {
    let name = Layout::worktree_name(id);
    let path = layout.worktree(id);
    Ok(match work_beyond_branch(main, &name, &path, id)? {
        None => None,
        Some(true) => Some("uncommitted changes".into()),
        Some(false) => Some(format!("commits {} does not have", git::ticket_branch(id))),
    })
}

/// Whether the worktree holds changes or a HEAD its branch lacks:
/// `Some(dirty)`. None when it holds nothing more, or when it is no
/// worktree orch will read.
fn work_beyond_branch(
    main: &MainRepo,
    name: &str,
    path: &std::path::Path,
    id: &str,
) -> Result<Option<bool>> {
    if !path.join(".git").exists() || main.worktree_link_problem(name, path).is_some() {
        // Nothing registered to read, or a link orch will not follow: the
        // removal only unregisters and deletes orch's own directory.
        return Ok(None);
    }
    let wt = main.open_worktree(name, path)?;
    let tip = main.branch_tip(&git::ticket_branch(id));
    let holds_more = |at: Oid| tip.is_none_or(|t| !main.contains(t, at));
    let dirty = !gitcli::changed_paths(path)?.is_empty();
    if !dirty && !wt.head().is_ok_and(holds_more) {
        return Ok(None);
    }
    Ok(Some(dirty))
}

fn keep_before_removal(
    main: &MainRepo,
    name: &str,
    path: &std::path::Path,
    id: &str,
    label: &str,
) -> Result<Vec<String>> {
    if work_beyond_branch(main, name, path, id)?.is_none() {
        return Ok(Vec::new());
    }
    let wt = main.open_worktree(name, path)?;
    let branch = git::ticket_branch(id);
    let tip = main.branch_tip(&branch);
    let holds_more = |at: Oid| tip.is_none_or(|t| !main.contains(t, at));
    wt.clear_stale_index_lock();
    // The work is kept on a ref of its own: no branch moves for it.
    wt.detach_unless_on(None)?;
    // Kept aside, not published: the repository's hooks need not pass.
    if gitcli::stage_all(path)? {
        gitcli::commit_unverified(
            path,
            &format!("orch: work left in the worktree of {id}"),
            &Identity::of(&main.repo),
        )?;
    }
    let at = wt.head()?;
    if !holds_more(at) {
        return Ok(Vec::new());
    }
    let kept = format!(
        "refs/orch/kept/{id}/{label}-{}",
        jiff::Timestamp::now().as_second()
    );
    let kept = main.keep(&kept, at, "orch: work in a worktree about to be removed")?;
    Ok(vec![format!(
        "the worktree held work that {branch} does not have ({}); it is kept as {kept}",
        short_oid(&at.to_string())
    )])
}

/// Put the worktree's own git config back as orch made it, before orch
/// runs git in a worktree an agent had (see `own_config`). A note when
/// the agent had changed it.
pub fn restore_own_config(main: &MainRepo, layout: &Layout, id: &str) -> Result<Option<String>> {
    own_config::put_back(main, layout, id)
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

/// How [`take_work`] may move the ticket branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Only forward: what is not a descendant of the branch is kept aside.
    FastForward,
    /// Also to a rewritten history (an agent that amended or rebased its
    /// own commits); the replaced tip is kept on a ref.
    Rewrite,
}

/// What [`take_work`] did with the work in a worktree.
#[derive(Debug, Default)]
pub struct Taken {
    /// The ticket branch's tip afterwards, if it has one.
    pub tip: Option<Oid>,
    /// Things worth saying in the attempt summary.
    pub notes: Vec<String>,
    /// The branch was moved by someone else while the run went on: the
    /// work is kept on a ref instead, and it is not the agent's doing.
    pub moved_by_other: Option<String>,
    /// The repository's commit hooks refused orch's commit of the work:
    /// why, and where the work is kept instead.
    pub refused: Option<String>,
}

/// How orch's commit of the work a run left treats the repository's
/// `pre-commit` and `commit-msg` hooks (`commit_hooks:` in orch.yaml).
pub enum Hooks<'a> {
    /// No hooks: `commit_hooks: skip`.
    Skip,
    /// Run `git commit` (the argv given) through this, which applies the
    /// hooks under the sandbox and timeouts the caller chose.
    Run(&'a dyn Fn(&[String]) -> Verdict),
}

/// orch's commit of what a run left uncommitted: its message, and how
/// the repository's hooks are treated.
#[derive(Clone, Copy)]
pub struct WorkCommit<'a> {
    pub message: &'a str,
    pub hooks: &'a Hooks<'a>,
}

/// What a hooked `git commit` came to.
pub struct Verdict {
    pub ok: bool,
    /// Why it failed: the hook's exit and output.
    pub why: String,
}

/// Take the work a run left in its worktree onto the ticket branch: commit
/// what is uncommitted on the worktree's HEAD, then move the branch from
/// `start` to that HEAD, with a compare-and-swap. orch alone moves the
/// branch, and only after checking: work on another branch, or that the
/// branch cannot take (`how`), is kept as `refs/orch/kept/<id>/<tag>...`
/// so that nothing is lost; a branch deleted meanwhile is made again at
/// the work; one moved elsewhere meanwhile is left as it is.
pub fn take_work(
    main: &MainRepo,
    wt: &Worktree,
    id: &str,
    start: Oid,
    how: Move,
    tag: impl std::fmt::Display,
    commit: &WorkCommit<'_>,
) -> Result<Taken> {
    let WorkCommit { message, hooks } = *commit;
    let branch = git::ticket_branch(id);
    let want = format!("refs/heads/{branch}");
    // The run lock is ours and the run's processes are gone: a lock on the
    // branch is what a killed orch left, and would fail every attempt.
    main.clear_stale_ref_lock(&want);
    let head = wt.head_ref();
    let short = |o: Oid| short_oid(&o.to_string()).to_string();
    let mut taken = Taken::default();
    match commit_leftovers(main, wt, id, &tag, message, hooks)? {
        Committed::Nothing => {}
        Committed::As(c) => taken
            .notes
            .push(format!("committed the uncommitted work as {}", short(c))),
        Committed::Refused(why) => {
            taken.notes.push(why.clone());
            taken.refused = Some(why);
        }
    }
    let at = wt.head()?;
    taken.tip = main.branch_tip(&branch);
    if let Some(other) = head.as_deref().filter(|r| *r != want) {
        let kept = format!("refs/orch/kept/{id}/{tag}-elsewhere");
        let kept = main.keep(&kept, at, "orch: work left off the ticket branch")?;
        taken.notes.push(format!(
            "the worktree was left on {other} instead of {branch}; its work ({}) is kept as {kept}",
            short(at)
        ));
        return Ok(taken);
    }
    match taken.tip {
        // The branch itself holds the work (HEAD was attached to it), or
        // nothing new was made.
        Some(tip) if tip == at => {}
        Some(tip) if tip == start => {
            let rewrite = !main.contains(at, start);
            if rewrite && how == Move::FastForward {
                let kept = format!("refs/orch/kept/{id}/{tag}-elsewhere");
                let kept = main.keep(&kept, at, "orch: work off the ticket branch")?;
                taken.notes.push(format!(
                    "the worktree held {} that {branch} does not contain; it is kept as {kept}",
                    short(at)
                ));
                return Ok(taken);
            }
            if rewrite {
                let kept = format!("refs/orch/kept/{id}/{tag}");
                let kept = main.keep(&kept, start, "orch: the agent rewrote its branch")?;
                taken.notes.push(format!(
                    "the agent rewrote {branch} from {}; that commit is kept as {kept}",
                    short(start)
                ));
            }
            main.update_ref(&want, at, start, "orch: the agent's work")?;
            taken.tip = Some(at);
        }
        Some(tip) if main.contains(tip, at) => {}
        Some(tip) => {
            let kept = format!("refs/orch/kept/{id}/{tag}");
            let kept = main.keep(&kept, at, "orch: the ticket branch moved under the run")?;
            let text = format!(
                "{branch} was moved from {} to {} by someone else while the agent ran; the agent's work ({}) is kept as {kept}",
                short(start),
                short(tip),
                short(at)
            );
            taken.notes.push(text.clone());
            taken.moved_by_other = Some(text);
        }
        None => {
            main.create_branch_at(&branch, at)?;
            taken.notes.push(format!(
                "{branch} was deleted while the agent ran; orch made it again at the agent's work ({})",
                short(at)
            ));
            taken.tip = Some(at);
        }
    }
    Ok(taken)
}

enum Committed {
    Nothing,
    As(Oid),
    /// Refused by the hooks: the work is kept aside and the worktree is
    /// back at its HEAD before.
    Refused(String),
}

/// Commit what is uncommitted in the worktree on its HEAD, through the
/// git CLI so that filters, LFS and the sparse cone apply, and through
/// the repository's hooks unless they are skipped. Work the hooks refuse
/// never reaches the ticket branch: it is kept on
/// `refs/orch/kept/<id>/<tag>-refused`.
fn commit_leftovers(
    main: &MainRepo,
    wt: &Worktree,
    id: &str,
    tag: &dyn std::fmt::Display,
    message: &str,
    hooks: &Hooks<'_>,
) -> Result<Committed> {
    let path = &wt.path;
    let own = format!("refs/heads/{}", git::ticket_branch(id));
    wt.detach_unless_on(Some(&own))?;
    if !gitcli::stage_all(path)? {
        return Ok(Committed::Nothing);
    }
    let who = Identity::of(&main.repo);
    let run = match hooks {
        Hooks::Skip => return gitcli::commit_unverified(path, message, &who).map(Committed::As),
        Hooks::Run(run) => run,
    };
    let before = gitcli::head(path)?;
    let file = gitcli::message_file(path, message)?;
    let verdict = run(&gitcli::commit_argv(&file, true));
    let _ = std::fs::remove_file(&file);
    let after = gitcli::head(path)?;
    if after != before && (verdict.ok || !gitcli::stage_all(path)?) {
        // Committed: the hooks passed (whatever became of git after).
        return Ok(Committed::As(after));
    }
    // A hook may have changed or unstaged files before refusing.
    if !gitcli::stage_all(path)? {
        return Ok(Committed::Nothing);
    }
    let aside = gitcli::commit_unverified(
        path,
        &format!("orch: work the repository's commit hooks refused\n\n{message}"),
        &who,
    )?;
    let kept = main.keep(
        &format!("refs/orch/kept/{id}/{tag}-refused"),
        aside,
        "orch: work the repository's commit hooks refused",
    )?;
    gitcli::reset_to(path, before)?;
    Ok(Committed::Refused(format!(
        "{}; the work is kept as {kept}",
        verdict.why
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    /// Not a check: `scripts/bench-tick.sh` times [`prepare`] on its own
    /// repository (`ORCH_BENCH_REPO`), as orch.yaml there sets the pool,
    /// and prints the mean of the prepares after the first (which fills
    /// an empty pool). Each round's worktree is one commit away from the
    /// base when it goes, so a recycled one has a path to check out.
    #[test]
    #[ignore = "run by scripts/bench-tick.sh"]
    fn bench_prepare() {
        let Some(repo) = std::env::var_os("ORCH_BENCH_REPO") else {
            return;
        };
        let rounds: u32 = std::env::var("ORCH_BENCH_ROUNDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(6);
        let main = git::open_main(std::path::Path::new(&repo)).expect("open");
        let layout = Layout::new(&main.root, &main.git_dir);
        let base = main.resolve_commit("main").expect("base");
        let mut times = Vec::new();
        for round in 0..rounds {
            let id = format!("bench-prepare-{}-{round}", std::process::id());
            let start = std::time::Instant::now();
            let p = prepare(&main, &layout, &id, base, true, &Hooks::Skip).expect("prepare");
            times.push(start.elapsed());
            // Build output, as an agent leaves it (target/ is ignored there),
            // and a commit of its work taken onto the branch: the next
            // round's slot is one file away from the base, as in use.
            std::fs::create_dir_all(p.path.join("target")).expect("mkdir");
            std::fs::write(p.path.join("target/out"), "x").expect("write");
            std::fs::write(p.path.join("bench-note.txt"), &id).expect("write");
            assert!(gitcli::stage_all(&p.path).expect("stage"));
            let work = gitcli::commit_unverified(&p.path, "work", &Identity::of(&main.repo))
                .expect("commit");
            let branch = format!("refs/heads/{}", p.branch);
            main.update_ref(&branch, work, p.start, "bench")
                .expect("branch");
            remove(&main, &layout, &id).expect("remove");
            main.delete_branch(&git::ticket_branch(&id))
                .expect("branch");
        }
        let later = &times[1..];
        let mean = later.iter().sum::<std::time::Duration>() / later.len().max(1) as u32;
        println!("bench-prepare-ms {:.1}", mean.as_secs_f64() * 1000.0);
    }

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
        let layout = Layout::new(&repo, &repo.join(".git"));
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
                            match prepare(&main, layout, &id, base, true, &Hooks::Skip) {
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
