//! The one path for a board change.
//!
//! A [`BoardTxn`] takes the board lock, repairs the plan worktree, adopts
//! what a person left uncommitted, and remembers the commit C it read. Each
//! change then writes files, commits them with C as the only parent, and
//! publishes that commit by moving orch/plan from exactly C (a
//! compare-and-swap). If orch/plan moved meanwhile, the publish is rejected
//! with [`GitError::Rejected`]; [`BoardTxn::apply`] then brings the worktree
//! to the new tip and decides again, so nothing is ever decided on a board
//! that is not the published one.
//!
//! With `remote:` in orch.yaml the remote's orch/plan is the board: opening
//! fetches it and folds in what this checkout has that it lacks (a
//! person's edits, adopted as a commit), and publishing is a non-force
//! push of exactly the new commit, which the remote takes only if its
//! orch/plan is still C. Only then does the local orch/plan move.

use std::path::Path;
use std::time::{Duration, Instant};

use super::journal::Guarded;
use crate::board::{
    Board, CommitMessage, Layout, Trailer, discover, ensure_plan_worktree, host_name,
};
use crate::error::{Context, Error, Result};
use crate::git::{self, GitError, MainRepo, Oid, Worktree};
use crate::lock::BoardLock;
use crate::remote::{self, Remote};
use crate::text::short_oid;
use crate::ticket::{self, State, Ticket};

/// How often a change is decided again after losing a race for orch/plan.
const MAX_ROUNDS: u32 = 3;

/// The same with a remote, where many hosts race: each lost round waits a
/// little longer, at random, so the racers spread out.
const MAX_REMOTE_ROUNDS: u32 = 16;

/// The board lock, the commit the board was read at, and the files written
/// since. Dropping it releases the lock.
#[must_use = "a board transaction holds the board lock until it is dropped"]
pub struct BoardTxn {
    pub main: MainRepo,
    pub layout: Layout,
    pub host: String,
    /// What the transaction had to do on opening (adoption, repair), for the user.
    pub notes: Vec<String>,
    plan: Worktree,
    base: Oid,
    /// Plan paths written by the change being prepared.
    touched: Vec<String>,
    inflight: super::inflight::Inflight,
    /// The remote the board is shared through, if any.
    remote: Option<Remote>,
    _lock: BoardLock,
}

/// A commit made on the board's base but not yet on orch/plan.
#[must_use = "publish() it, or the change never reaches the board"]
pub struct Unpublished {
    commit: Option<Oid>,
    base: Oid,
}

impl BoardTxn {
    /// Lock the board, repair the plan worktree if needed, adopt hand edits.
    pub fn open(start: &Path, lock_timeout: Duration) -> Result<BoardTxn> {
        let (main, layout) = discover(start)?;
        BoardTxn::open_in(main, layout, lock_timeout)
    }

    pub fn open_in(main: MainRepo, layout: Layout, lock_timeout: Duration) -> Result<BoardTxn> {
        if !main.branch_exists(git::PLAN_BRANCH)
            && main.remote_plan_tip().is_none()
            && super::journal::last_published(&main).is_none()
        {
            // Nothing to lock: say so before creating .orch/ in the checkout.
            return Err(Error::usage(format!(
                "{} has no board: the branch orch/plan does not exist",
                main.root.display()
            ))
            .hinted("run `orch init` in this repository first"));
        }
        let lock = layout.lock_board(lock_timeout)?;
        let mut notes = Vec::new();
        let guarded = super::journal::guard(&main)?;
        match &guarded {
            Guarded::Intact => {}
            Guarded::Restored { to } => notes.push(format!(
                "orch/plan was deleted; restored it to {}, the last board orch published",
                short_oid(&to.to_string())
            )),
            Guarded::Rewound { from, to, kept } => notes.push(format!(
                "orch/plan was moved to {}, which drops commits orch published; restored it to {} and kept the other version as {kept}",
                short_oid(&from.to_string()),
                short_oid(&to.to_string())
            )),
        }
        if ensure_plan_worktree(&main, &layout)? {
            notes.push(format!(
                "recreated the missing plan worktree at {}",
                layout.plan.display()
            ));
        }
        let remote = shared_through(&main, &layout);
        let mut plan = Worktree::open(&layout.plan)?;
        plan.sign = remote.as_ref().is_some_and(|r| r.require_signed);
        if let Guarded::Rewound { from, .. } = guarded
            && plan.head_ref().as_deref() == Some(git::PLAN_REF)
        {
            // The files follow the branch back.
            plan.follow_head(from, &[])?;
        }
        // Every change is committed from the plan worktree's index onto
        // orch/plan: from a worktree on another branch it would replace
        // the board with that branch's files.
        let head = plan.head_ref();
        if head.as_deref() != Some(git::PLAN_REF) {
            return Err(Error::other(format!(
                "the plan worktree {} is on {}, not on orch/plan",
                layout.plan.display(),
                head.as_deref().unwrap_or("a detached HEAD")
            ))
            .hinted("put it back with `git -C .orch/plan checkout orch/plan`; orch changes nothing until then"));
        }
        let base = plan_tip(&main)?;
        let inflight = super::inflight::Inflight::open(&layout.local.join("board-change"));
        let mut txn = BoardTxn {
            main,
            layout,
            host: host_name(),
            notes,
            plan,
            base,
            touched: Vec::new(),
            inflight,
            remote,
            _lock: lock,
        };
        txn.clear_stale_index_lock()?;
        txn.put_back_unfinished()?;
        txn.adopt()?;
        if txn.remote.is_some() {
            txn.sync()?;
        }
        Ok(txn)
    }

    /// Whether `t`'s finished work waits to land (its `land:`, else
    /// orch.yaml's as the board holds it now). An orch.yaml that cannot
    /// be read counts as landing: a ticket waiting in landing/ is seen and
    /// moved on once it is fixed; one sent to done would skip its landing.
    pub fn lands(&self, t: &Ticket) -> bool {
        if let Some(land) = &t.front.land {
            return land.is_on();
        }
        match crate::config::Config::load(&self.layout.plan.join("orch.yaml")) {
            Ok((config, _)) => config.land.is_on(),
            Err(_) => true,
        }
    }

    /// The commit of orch/plan this transaction's decisions are based on.
    pub fn base(&self) -> Oid {
        self.base
    }

    pub fn load(&self) -> Board {
        Board::load(&self.layout)
    }

    /// The board as a tick needs it (see [`Board::load_active`]).
    pub fn load_active(&self) -> Board {
        Board::load_active(&self.layout)
    }

    /// The ticket file `id` in `state` as it is now, read from its log
    /// alone if a person broke its front matter (a run under way must still
    /// be settled).
    pub fn read_ticket(&self, id: &str, state: State) -> Option<Ticket> {
        let rel = ticket::rel_path(state, id);
        let bytes = crate::safe_read::regular_file_in(
            &self.layout.plan,
            std::path::Path::new(&rel),
            ticket::MAX_TICKET_BYTES,
        )
        .ok()??;
        ticket::parse(id, state, &bytes)
            .0
            .or_else(|| ticket::parse_lenient(id, state, &bytes))
    }

    /// Under the board lock no orch writes the plan's index, so an
    /// `index.lock` there belongs to a person's git command, which finishes
    /// in moments, or to a process that was killed. Wait briefly for the
    /// first; remove the second, or every later command would fail on it.
    /// A git lock file in the plan worktree: one a live process holds open
    /// (a person's `git commit` waiting in an editor) makes the board busy;
    /// one nobody holds was left by a killed process and goes.
    fn clear_stale_index_lock(&mut self) -> Result<()> {
        let start = Instant::now();
        let wait = Duration::from_secs(2);
        while self.plan.has_stale_lock() && start.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some((path, pid)) = self.plan.held_locks().into_iter().next() {
            return Err(Error::LockBusy {
                holder: Some(crate::process::describe(pid)),
                path,
                waited: start.elapsed(),
            }
            .hinted("a git command in the plan worktree holds it (a commit waiting in an editor?); orch changes the board once it is done"));
        }
        if let Some(path) = self.plan.clear_stale_index_lock() {
            self.notes.push(format!(
                "removed a stale {} left by a killed git process",
                path.display()
            ));
        }
        Ok(())
    }

    /// Put back what a board change that could not finish nor be undone
    /// wrote (see [`super::inflight`]): it is orch's, not a person's edit.
    fn put_back_unfinished(&mut self) -> Result<()> {
        let left = self.inflight.left();
        if left.is_empty() {
            return Ok(());
        }
        for p in &left {
            // What orch/plan does not have goes; the rest is checked out.
            let abs = self.layout.plan.join(p);
            if std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&abs).context_path("cannot remove", &abs)?;
            }
        }
        self.plan.follow_head(self.base, &left)?;
        self.inflight.clear();
        self.notes.push(format!(
            "put back {} that an earlier board change wrote but could not commit",
            left.join(", ")
        ));
        Ok(())
    }

    /// Commit what a person left uncommitted in the plan worktree, in a
    /// commit of its own, so every later commit holds only orch's change.
    fn adopt(&mut self) -> Result<()> {
        let (leftovers, changed): (Vec<String>, Vec<String>) = self
            .plan
            .changed_paths_fast()?
            .into_iter()
            .partition(|p| p.contains(super::TMP_MARK));
        // orch's own temporary files, left by a killed or failed write: no
        // orch writes the plan without the board lock, so they are stale.
        for p in &leftovers {
            let abs = self.layout.plan.join(p);
            std::fs::remove_file(&abs).context_path("cannot remove", &abs)?;
        }
        // A fifo, socket or device is no board file, and staging a fifo
        // blocks for ever while the board lock is held: put back what
        // orch/plan has there (or nothing).
        let (special, changed): (Vec<String>, Vec<String>) = changed.into_iter().partition(|p| {
            use std::os::unix::fs::FileTypeExt;
            std::fs::symlink_metadata(self.layout.plan.join(p)).is_ok_and(|m| {
                let t = m.file_type();
                t.is_fifo() || t.is_socket() || t.is_block_device() || t.is_char_device()
            })
        });
        if !special.is_empty() {
            for p in &special {
                let abs = self.layout.plan.join(p);
                std::fs::remove_file(&abs).context_path("cannot remove", &abs)?;
            }
            self.plan.follow_head(self.base, &special)?;
            self.notes.push(format!(
                "replaced {} in the plan worktree, which {} not a regular file, with what orch/plan has",
                special.join(", "),
                if special.len() == 1 { "was" } else { "were" }
            ));
        }
        // An editor's swap or backup file, or a file manager's, is no
        // board change (a board from before the plan's .gitignore may
        // still show them). A deleted orch.yaml is not adopted either: it
        // would run the board on defaults without a word; left uncommitted,
        // every command names it (exit 2).
        let plan = &self.layout.plan;
        let changed: Vec<String> = changed
            .into_iter()
            .filter(|p| !super::is_editor_litter(p))
            .filter(|p| p != super::CONFIG_REL || plan.join(p).exists())
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let n = changed.len();
        let files = if n == 1 { "file" } else { "files" };
        let mut message = CommitMessage::new(format!("orch: adopt edits to {n} {files}"));
        for p in changed.iter().take(50) {
            message = message.line(format!("- {p}"));
        }
        if n > 50 {
            message = message.line(format!("- and {} more", n - 50));
        }
        message = message.trailer(Trailer::Adopted, n);
        self.plan.stage_paths(&changed)?;
        let unpublished = Unpublished {
            commit: self
                .plan
                .commit_staged_on(self.base, &message.render(&self.host))?,
            base: self.base,
        };
        self.touched = changed;
        // With a remote, the fold that follows pushes it.
        let published = match unpublished.commit {
            Some(commit) if self.remote.is_some() => {
                self.publish_local(commit, unpublished.base)?
            }
            _ => self.publish(unpublished)?,
        };
        if published.is_some() {
            self.notes.push(format!(
                "adopted uncommitted edits to {n} {files} in the plan worktree"
            ));
        }
        Ok(())
    }

    /// Write a plan file (relative path) as part of the change being prepared.
    pub fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.touch(rel);
        super::write_atomic(&self.layout.plan.join(rel), bytes)
    }

    /// Remove a plan file (relative path) as part of the change being
    /// prepared; gone already is fine.
    pub fn remove(&mut self, rel: &str) -> Result<()> {
        self.touch(rel);
        let abs = self.layout.plan.join(rel);
        match std::fs::remove_file(&abs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(crate::error::Error::io("cannot remove", &abs, e)),
        }
        match abs.parent() {
            Some(dir) => super::sync_dir(dir),
            None => Ok(()),
        }
    }

    /// Write `text` as `tickets/<to>/<id>.md`, removing the file from `from`.
    /// The rename comes first, so a crash between the steps leaves one file,
    /// never two.
    pub fn move_ticket(&mut self, id: &str, from: State, to: State, text: &str) -> Result<()> {
        let old = ticket::rel_path(from, id);
        let new = ticket::rel_path(to, id);
        let old_abs = self.layout.plan.join(&old);
        let new_abs = self.layout.plan.join(&new);
        if let Some(dir) = new_abs.parent() {
            std::fs::create_dir_all(dir).context_path("cannot create", dir)?;
        }
        if from != to {
            self.touch(&old);
            self.touch(&new);
            std::fs::rename(&old_abs, &new_abs).map_err(|e| {
                crate::error::Error::io(format!("cannot move {old} to"), &new_abs, e)
            })?;
            if let Some(dir) = old_abs.parent() {
                super::sync_dir(dir)?;
            }
        }
        self.write(&new, text.as_bytes())
    }

    /// Note `rel` as written by the change, before it is written.
    fn touch(&mut self, rel: &str) {
        if !self.touched.iter().any(|p| p == rel) {
            self.touched.push(rel.to_string());
            self.inflight.set(&self.touched);
        }
    }

    /// Commit exactly the files written since the last publish, on the base.
    pub fn commit(&mut self, message: &CommitMessage) -> Result<Unpublished> {
        // A board made before the plan had a .gitignore gets it with its
        // next change.
        if !self.touched.is_empty()
            && std::fs::symlink_metadata(self.layout.plan.join(super::GITIGNORE_REL)).is_err()
        {
            self.write(super::GITIGNORE_REL, super::PLAN_GITIGNORE.as_bytes())?;
        }
        self.plan.stage_paths(&self.touched)?;
        let commit = self
            .plan
            .commit_staged_on(self.base, &message.render(&self.host))?;
        Ok(Unpublished {
            commit,
            base: self.base,
        })
    }

    /// Move orch/plan from the base to the commit, or fail with
    /// [`GitError::Rejected`] if it is no longer at the base (on the
    /// remote, when there is one: the push comes first). Returns the new
    /// tip, or None when the change wrote nothing new.
    pub fn publish(&mut self, change: Unpublished) -> Result<Option<Oid>> {
        let Some(commit) = change.commit else {
            self.touched.clear();
            self.inflight.clear();
            return Ok(None);
        };
        if self.remote.is_some() {
            self.push_plan(commit, change.base)?;
        }
        self.publish_local(commit, change.base)
    }

    /// The local half of a publish: the compare-and-swap of orch/plan.
    fn publish_local(&mut self, commit: Oid, base: Oid) -> Result<Option<Oid>> {
        self.main
            .update_ref(git::PLAN_REF, commit, base, "orch: board change")?;
        if self.remote.is_none() {
            super::journal::record(&self.main, commit);
        }
        self.base = commit;
        self.touched.clear();
        self.inflight.clear();
        Ok(Some(commit))
    }

    /// Push `commit` (whose parent is `base`) to the remote's orch/plan,
    /// without force: taken only if the remote is still at `base`.
    fn push_plan(&mut self, commit: Oid, base: Oid) -> Result<()> {
        let Some(remote) = self.remote.clone() else {
            return Ok(());
        };
        match remote.push_one(commit, git::PLAN_REF, Some(base)) {
            Ok(()) => {}
            Err(Error::Git(e @ GitError::Rejected { .. })) => return Err(Error::Git(e)),
            Err(e) => {
                // The push may have landed before the connection broke:
                // the remote tells.
                if remote.fetch_branch(git::PLAN_BRANCH).ok().flatten() != Some(commit) {
                    return Err(e);
                }
            }
        }
        let tracking = remote::tracking_ref(&remote.name, git::PLAN_BRANCH);
        let _ = self
            .main
            .set_ref(&tracking, commit, "orch: pushed the board");
        super::journal::record(&self.main, commit);
        super::journal::record_verified(&self.main, commit);
        Ok(())
    }

    /// Bring this checkout's board and the remote's together: fetch, take
    /// what the remote has (a fast-forward), and push what only this
    /// checkout has (adopted edits, or a board that was never pushed),
    /// replayed on the remote's tip where both moved. A ticket file both
    /// changed stops here, with the person's version kept.
    fn sync(&mut self) -> Result<()> {
        let Some(remote) = self.remote.clone() else {
            return Ok(());
        };
        for round in 1..=MAX_REMOTE_ROUNDS {
            if round > 1 {
                backoff(round);
            }
            let local = self.base;
            let Some(tip) = remote.fetch_branch(git::PLAN_BRANCH)? else {
                // The remote has no board yet: this one becomes it.
                match self.push_plan(local, local) {
                    Err(Error::Git(GitError::Rejected { .. })) => continue,
                    other => return other,
                }
            };
            if tip == local {
                super::journal::record_verified(&self.main, tip);
                return Ok(());
            }
            if remote.require_signed {
                remote.verify(super::journal::last_verified(&self.main), tip)?;
            }
            super::journal::record_verified(&self.main, tip);
            if self.main.contains(tip, local) {
                return self.fast_forward(tip);
            }
            let next = if self.main.contains(local, tip) {
                local
            } else {
                self.fold_onto(local, tip, &remote)?
            };
            match self.push_plan(next, tip) {
                Ok(()) => return Ok(()),
                Err(Error::Git(GitError::Rejected { .. })) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(self.lost_races(MAX_REMOTE_ROUNDS))
    }

    /// The error of a change that lost every round to other hosts: their
    /// changes are the board now, and the next tick decides again.
    fn lost_races(&self, rounds: u32) -> Error {
        Error::other(format!(
            "lost the race for orch/plan on {} {rounds} times",
            self.remote
                .as_ref()
                .map(|r| r.name.as_str())
                .unwrap_or("the remote")
        ))
        .hinted("many hosts are changing the board at once; the next tick tries again")
    }

    /// Move this checkout's board to `tip`, which contains it.
    fn fast_forward(&mut self, tip: Oid) -> Result<()> {
        let old = self.base;
        self.main
            .update_ref(git::PLAN_REF, tip, old, "orch: fetched the board")?;
        self.plan.follow_head(old, &[])?;
        super::journal::record(&self.main, tip);
        self.base = tip;
        Ok(())
    }

    /// Replay the commits only this checkout has on the remote's `tip`,
    /// as one commit, and move the local board there.
    fn fold_onto(&mut self, local: Oid, tip: Oid, remote: &Remote) -> Result<Oid> {
        let messages = self
            .main
            .repo
            .merge_base(local, tip)
            .map(|b| self.main.messages_since(b, local))
            .unwrap_or_default();
        let message = match messages.as_slice() {
            [one] => one.clone(),
            many => {
                let mut m = CommitMessage::new(format!(
                    "orch: fold {} board commits made here while {} moved",
                    many.len(),
                    remote.name
                ));
                for text in many.iter().take(50) {
                    m = m.line(format!("- {}", text.lines().next().unwrap_or("")));
                }
                m.render(&self.host)
            }
        };
        match self
            .main
            .fold_onto(local, tip, &message, remote.require_signed)?
        {
            git::Folded::Clean(folded) => {
                self.main
                    .update_ref(git::PLAN_REF, folded, local, "orch: fold local board edits")?;
                self.plan.follow_head(local, &[])?;
                self.base = folded;
                self.notes.push(format!(
                    "{} moved meanwhile; put the edits made here on top of it",
                    remote.name
                ));
                Ok(folded)
            }
            git::Folded::Conflicts(paths) => {
                let kept = self.main.keep(
                    &format!("refs/orch/kept/plan/edits-{}", short_oid(&local.to_string())),
                    local,
                    "orch: board edits that conflict with the remote",
                )?;
                let tracking = remote::tracking_ref(&remote.name, git::PLAN_BRANCH);
                Err(Error::other(format!(
                    "{} changed on {} and here: {}; your version is on disk in .orch/plan and in commit {} ({kept}); nothing was changed",
                    if paths.len() == 1 { "a board file was" } else { "board files were" },
                    remote.name,
                    paths.join(", "),
                    short_oid(&local.to_string()),
                ))
                .hinted(format!(
                    "merge by hand: `git -C .orch/plan merge {}`, resolve, commit, and the next command pushes it; or take the remote's version with `git -C .orch/plan reset --hard {}`",
                    tracking.trim_start_matches("refs/remotes/"),
                    tracking.trim_start_matches("refs/remotes/"),
                )))
            }
            git::Folded::Unrelated => Err(Error::other(format!(
                "the board on {} and the one here share no history",
                remote.name
            ))
            .hinted(format!(
                "keep one: to use the remote's, move this one aside (`git branch -m orch/plan orch/plan-old`) and run `orch init`; to use this one, delete orch/plan on {}",
                remote.name
            ))),
        }
    }

    /// Decide a change on the board as it is, commit it and publish it. A
    /// lost race brings the worktree to the new tip and runs `decide`
    /// again (a bounded number of times). `decide` returns None when there
    /// is nothing to change; it must then have written nothing.
    pub fn apply<T>(
        &mut self,
        decide: impl FnMut(&mut BoardTxn) -> Result<Option<(CommitMessage, T)>>,
    ) -> Result<Option<T>> {
        self.apply_rounds(self.rounds(), decide)
    }

    /// How often a change is decided again after a lost race.
    pub fn rounds(&self) -> u32 {
        if self.remote.is_some() {
            MAX_REMOTE_ROUNDS
        } else {
            MAX_ROUNDS
        }
    }

    /// Whether orch signs the commits it makes (`require_signed`).
    pub fn signs(&self) -> bool {
        self.remote.as_ref().is_some_and(|r| r.require_signed)
    }

    /// Whether the board is shared through a remote.
    pub fn is_shared(&self) -> bool {
        self.remote.is_some()
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// [`apply`](Self::apply) without deciding again: a lost race returns
    /// [`GitError::Rejected`] with the worktree at the new tip, for a caller
    /// whose decision depends on more than this one change (which tickets
    /// to claim under a cap).
    pub fn apply_once<T>(
        &mut self,
        decide: impl FnMut(&mut BoardTxn) -> Result<Option<(CommitMessage, T)>>,
    ) -> Result<Option<T>> {
        self.apply_rounds(1, decide)
    }

    fn apply_rounds<T>(
        &mut self,
        rounds: u32,
        mut decide: impl FnMut(&mut BoardTxn) -> Result<Option<(CommitMessage, T)>>,
    ) -> Result<Option<T>> {
        let mut round = 1;
        loop {
            self.touched.clear();
            let outcome = decide(self).and_then(|decided| match decided {
                None => Ok(None),
                Some((message, value)) => {
                    let change = self.commit(&message)?;
                    self.publish(change).map(|_| Some(value))
                }
            });
            match outcome {
                Ok(value) => return Ok(value),
                Err(Error::Git(GitError::Rejected { .. })) if round < rounds => {
                    self.follow()?;
                    round += 1;
                    if self.remote.is_some() {
                        backoff(round);
                    }
                }
                Err(e) => {
                    // Nothing half-made stays in the worktree: what this
                    // change wrote is put back as the board has it. The
                    // error being returned is the one to report.
                    let _ = self.follow_local();
                    return Err(match e {
                        // Said as what it is, where deciding again was
                        // tried: not a ref that vanished.
                        Error::Git(GitError::Rejected {
                            on_remote: true, ..
                        }) if rounds > 1 => self.lost_races(rounds),
                        e => e,
                    });
                }
            }
        }
    }

    /// Bring the plan worktree to where orch/plan is now, dropping the
    /// change that lost the race, and read from there.
    /// With a remote, the new tip is fetched first.
    pub fn follow(&mut self) -> Result<()> {
        self.follow_local()?;
        if self.remote.is_some() {
            self.sync()?;
        }
        Ok(())
    }

    /// Bring the plan worktree to where the local orch/plan is.
    fn follow_local(&mut self) -> Result<()> {
        let touched = self.touched.clone();
        self.plan.follow_head(self.base, &touched)?;
        self.touched.clear();
        self.inflight.clear();
        self.base = plan_tip(&self.main)?;
        Ok(())
    }
}

/// Wait a random while, longer each round, before racing again.
pub fn backoff(round: u32) {
    let cap_ms = (10u64 << round.min(7)).min(1000);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 16);
    // A cheap mix of the clock and the pid: hosts and processes that
    // lost at the same instant wait different times.
    let jitter = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
    std::thread::sleep(Duration::from_millis(
        cap_ms / 2 + jitter % (cap_ms / 2 + 1),
    ));
}

/// The remote orch.yaml names (`remote:`), read leniently: a board whose
/// orch.yaml is broken elsewhere still knows where it is shared (its
/// top-level `remote:` line is enough).
pub fn shared_through(main: &MainRepo, layout: &Layout) -> Option<Remote> {
    let d = crate::config::Config::defaults();
    let (name, timeout, signed) = match crate::config::Config::load(&layout.config_path()) {
        Ok((c, _)) => (c.remote, c.remote_timeout, c.require_signed),
        Err(_) => {
            let bytes = crate::safe_read::regular_file(
                &layout.config_path(),
                crate::config::MAX_CONFIG_BYTES,
            )
            .ok()??;
            let text = String::from_utf8_lossy(&bytes);
            let value = |key: &str| {
                text.lines().find_map(|l| {
                    let v = l.strip_prefix(key)?.strip_prefix(':')?;
                    let v = v.split(" #").next()?.trim().trim_matches(['"', '\'']);
                    (!v.is_empty()).then(|| v.to_string())
                })
            };
            (
                value("remote"),
                d.remote_timeout,
                value("require_signed").is_some_and(|v| v == "true" || v == "yes"),
            )
        }
    };
    let name = name?;
    // A host can insist on signatures whatever the board says: a fresh
    // clone reads require_signed from the very board it must check.
    let host_insists = main
        .repo
        .config()
        .and_then(|c| c.get_bool("orch.requireSigned"))
        .unwrap_or(false);
    Some(Remote::new(main, &name, timeout, signed || host_insists))
}

fn plan_tip(main: &MainRepo) -> Result<Oid> {
    main.ref_target(git::PLAN_REF).ok_or_else(|| {
        Error::other("the branch orch/plan has no commit")
            .hinted("run `orch init` to repair the board")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    fn board() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["commit", "-q", "--allow-empty", "-m", "first"]);
        let main = git::open_main(&repo).expect("open");
        main.create_plan_branch(&[("orch.yaml", b"base: main\n")], "orch: init board")
            .expect("plan branch");
        (dir, repo)
    }

    #[test]
    fn a_change_is_one_commit_on_the_base() {
        let (_d, repo) = board();
        let mut txn = BoardTxn::open(&repo, Duration::from_secs(5)).expect("open");
        let base = txn.base();
        txn.apply(|txn| {
            txn.write("tickets/todo/a.md", b"---\ntitle: a\n---\n")?;
            Ok(Some((CommitMessage::new("orch: add a"), ())))
        })
        .expect("apply");
        let parent = git(&repo, &["rev-parse", "orch/plan^"]);
        assert_eq!(parent, base.to_string());
        assert_eq!(
            txn.base().to_string(),
            git(&repo, &["rev-parse", "orch/plan"])
        );
        // The plan worktree is clean: the index holds what was committed.
        assert_eq!(git(&txn.layout.plan, &["status", "--porcelain"]), "");
    }

    #[test]
    fn a_lost_race_leaves_no_file_the_winner_moved() {
        let (_d, repo) = board();
        {
            let mut txn = BoardTxn::open(&repo, Duration::from_secs(5)).expect("open");
            txn.apply(|txn| {
                txn.write("tickets/todo/y.md", b"---\ntitle: y\n---\n")?;
                Ok(Some((CommitMessage::new("orch: new y"), ())))
            })
            .expect("apply");
        }
        let mut txn = BoardTxn::open(&repo, Duration::from_secs(5)).expect("open");
        // Another writer claims y (moves it) without touching this worktree.
        let other = tempfile::tempdir().expect("temp dir");
        let clone = other.path().join("c");
        git(
            other.path(),
            &[
                "clone",
                "-q",
                "--branch",
                "orch/plan",
                repo.to_str().expect("utf-8"),
                "c",
            ],
        );
        git(
            &clone,
            &["mv", "tickets/todo/y.md", "tickets/in-progress-y.md"],
        );
        git(&clone, &["commit", "-q", "-m", "claim y elsewhere"]);
        let moved = git(&clone, &["rev-parse", "HEAD"]);
        git(
            &repo,
            &["fetch", "-q", clone.to_str().expect("utf-8"), "orch/plan"],
        );
        git(&repo, &["update-ref", "refs/heads/orch/plan", &moved]);
        let result = txn.apply_once(|txn| {
            txn.write("tickets/todo/x.md", b"---\ntitle: x\n---\n")?;
            Ok(Some((CommitMessage::new("orch: new x"), ())))
        });
        assert!(
            matches!(result, Err(Error::Git(GitError::Rejected { .. }))),
            "{:?}",
            result.err()
        );
        let plan = &txn.layout.plan;
        assert!(
            !plan.join("tickets/todo/y.md").exists(),
            "the moved ticket stays behind"
        );
        assert!(
            !plan.join("tickets/todo/x.md").exists(),
            "the lost change stays behind"
        );
        assert!(plan.join("tickets/in-progress-y.md").exists());
        assert_eq!(git(plan, &["status", "--porcelain"]), "");
        assert_eq!(txn.base().to_string(), moved);
    }

    #[test]
    fn a_lost_race_is_decided_again_on_the_new_tip() {
        let (_d, repo) = board();
        let mut txn = BoardTxn::open(&repo, Duration::from_secs(5)).expect("open");
        let mut rounds = 0;
        let result = txn.apply(|txn| {
            rounds += 1;
            if rounds == 1 {
                // Another writer publishes first, without the board lock.
                let tree = git(&repo, &["rev-parse", "orch/plan^{tree}"]);
                let other = git(
                    &repo,
                    &["commit-tree", &tree, "-p", "orch/plan", "-m", "other"],
                );
                git(&repo, &["update-ref", "refs/heads/orch/plan", &other]);
            }
            txn.write("runs/a/1.md", format!("round {rounds}\n").as_bytes())?;
            Ok(Some((CommitMessage::new("orch: write a summary"), rounds)))
        });
        assert_eq!(result.expect("apply"), Some(2));
        assert_eq!(
            git(&repo, &["log", "-1", "--format=%s", "orch/plan^"]),
            "other"
        );
        assert_eq!(git(&repo, &["show", "orch/plan:runs/a/1.md"]), "round 2");
        assert_eq!(git(&txn.layout.plan, &["status", "--porcelain"]), "");
    }
}
