//! Where orch keeps things: every path under `.orch/` and in the plan.

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
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        let orch = root.join(".orch");
        Layout {
            root: root.to_path_buf(),
            plan: orch.join("plan"),
            orch,
        }
    }

    pub fn lock_path(&self) -> PathBuf {
        self.orch.join("lock")
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
        self.orch.join("logs").join(id)
    }

    pub fn log_path(&self, id: &str, attempt: u32) -> PathBuf {
        self.log_dir(id).join(format!("{attempt}.log"))
    }

    /// Local, uncommitted per-ticket state: run lock, prompt, result file.
    pub fn state_dir(&self, id: &str) -> PathBuf {
        self.orch.join("state").join(id)
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
