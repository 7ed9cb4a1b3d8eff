//! Where orch keeps things: the plan and the worktrees under `.orch/` in
//! the checkout, where people look at them; locks, run state and logs in
//! `<git dir>/orch/`, where the user's own git commands (`git clean -fdx`)
//! cannot delete them from under a live run, as other git tools keep
//! theirs.

use std::path::{Path, PathBuf};

pub const PLAN_WORKTREE_NAME: &str = "orch-plan";

/// Where orch keeps things in a user's repository.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The user's checkout.
    pub root: PathBuf,
    /// `<root>/.orch`
    pub orch: PathBuf,
    /// `<root>/.orch/plan`
    pub plan: PathBuf,
    /// `<git dir>/orch`: this host's locks, run state and logs.
    pub local: PathBuf,
}

impl Layout {
    /// `git_dir` is the common git directory.
    pub fn new(root: &Path, git_dir: &Path) -> Layout {
        let orch = root.join(".orch");
        Layout {
            root: root.to_path_buf(),
            plan: orch.join("plan"),
            orch,
            local: git_dir.join("orch"),
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.local.join("lock")
    }

    /// Where orch before 0.2 kept the board lock. Held as well while the
    /// file exists, so an older orch still running from cron is kept out.
    pub fn legacy_lock_path(&self) -> PathBuf {
        self.orch.join("lock")
    }

    /// Take the board lock (see [`crate::lock::BoardLock`]).
    pub fn lock_board(
        &self,
        timeout: std::time::Duration,
    ) -> crate::Result<crate::lock::BoardLock> {
        crate::lock::BoardLock::acquire_with_legacy(
            &self.lock_path(),
            &self.legacy_lock_path(),
            timeout,
        )
    }

    /// A path under [`Layout::local`] as a person would type it from the
    /// checkout: `.git/orch/...` in an ordinary repository.
    pub fn display_local(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The board cache of one state directory (see [`super::cache`]):
    /// this host's, like the locks.
    pub fn board_cache(&self, state: crate::ticket::State) -> PathBuf {
        self.local
            .join("cache")
            .join(format!("board-{}", state.dir()))
    }

    /// The cache of a state's tickets as `status` summarises them: decoding
    /// a summary costs a fraction of a whole ticket.
    pub fn board_summary_cache(&self, state: crate::ticket::State) -> PathBuf {
        self.local
            .join("cache")
            .join(format!("board-{}-summary", state.dir()))
    }

    pub fn config_path(&self) -> PathBuf {
        self.plan.join("orch.yaml")
    }

    pub fn worktree(&self, id: &str) -> PathBuf {
        self.orch.join("worktrees").join(id)
    }

    pub fn worktree_name(id: &str) -> String {
        format!("orch-ticket-{id}")
    }

    pub fn log_dir(&self, id: &str) -> PathBuf {
        self.local.join("logs").join(id)
    }

    pub fn log_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.log_dir(id).join(format!("{attempt}.log"))
    }

    /// Local, uncommitted per-ticket state: run lock, prompt, result file.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.local.join("state").join(id)
    }

    /// Held by the one process that lands on this host at a time.
    pub fn land_lock(&self) -> PathBuf {
        self.local.join("land.lock")
    }

    /// The scratch worktree where checks run on a merged result.
    pub fn land_scratch(&self) -> PathBuf {
        self.orch.join("landing")
    }

    /// Why the ticket's landing waits, as the last landing run saw it.
    pub fn land_wait(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("land-wait")
    }

    /// The commit a landing is about to put on the target, written before
    /// the target moves, so a crash after it is recognised as landed.
    pub fn land_journal(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("landing")
    }

    pub fn run_lock(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("run.lock")
    }

    pub fn run_info(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("run.json")
    }

    pub fn abort_request(&self, id: &str) -> PathBuf {
        self.state_dir(id).join("abort")
    }

    pub fn prompt_file(&self, id: &str, attempt: u32) -> PathBuf {
        self.state_dir(id).join(format!("prompt-{attempt}.md"))
    }

    /// The one local directory an attempt's agent may write: its result
    /// file, its `TMPDIR`, an agent's history files.
    pub fn run_dir(&self, id: &str, attempt: u32) -> PathBuf {
        self.state_dir(id).join(format!("attempt-{attempt}"))
    }

    pub fn result_file(&self, id: &str, attempt: u32) -> PathBuf {
        self.run_dir(id, attempt).join("result.json")
    }
}

/// How orch.yaml is named in messages to the user.
pub const CONFIG_DISPLAY: &str = ".orch/plan/orch.yaml";

/// An attempt's summary on the plan branch, relative to the plan.
pub fn summary_rel(id: &str, attempt: u32) -> String {
    format!("runs/{id}/{attempt}.md")
}

/// The summary of a result refused because its claim was superseded.
pub fn stale_summary_rel(id: &str, attempt: u32) -> String {
    format!("runs/{id}/{attempt}.stale.md")
}
