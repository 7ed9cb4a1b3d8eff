//! A hermetic test environment: its own HOME, no global or system git
//! configuration, a fixed host name, no colour, and a fresh repository.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use tempfile::TempDir;

pub struct TestEnv {
    pub dir: TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
}

/// Variables that could leak the developer's setup into a test.
const CLEARED: &[&str] = &[
    "ORCH_TICKET",
    "ORCH_ATTEMPT",
    "ORCH_WORKTREE",
    "ORCH_BRANCH",
    "ORCH_PROMPT_FILE",
    "ORCH_RESULT_FILE",
    "ORCH_RUN_ID",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "VISUAL",
    "EDITOR",
];

impl TestEnv {
    /// A repository on branch main with one commit.
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("orch-test-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).expect("repo");
        let env = TestEnv { dir, home, repo };
        env.git(&["init", "-q", "-b", "main"]);
        std::fs::write(env.repo.join("README.md"), "# sample\n").expect("write");
        std::fs::write(env.repo.join(".gitignore"), "target/\n").expect("write");
        env.git(&["add", "."]);
        env.git(&["commit", "-q", "-m", "initial commit"]);
        env
    }

    pub fn apply_env(&self, cmd: &mut StdCommand) {
        for v in CLEARED {
            cmd.env_remove(v);
        }
        cmd.env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test Author")
            .env("GIT_AUTHOR_EMAIL", "author@example.com")
            .env("GIT_COMMITTER_NAME", "Test Author")
            .env("GIT_COMMITTER_EMAIL", "author@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .env("ORCH_HOST", "test-host")
            .env("NO_COLOR", "1");
    }

    /// The real orch binary, run in the repository.
    pub fn orch(&self) -> Command {
        let mut std = StdCommand::new(assert_cmd::cargo::cargo_bin!("orch"));
        self.apply_env(&mut std);
        std.current_dir(&self.repo);
        Command::from_std(std)
    }

    /// `orch init` that must succeed.
    pub fn init(&self) {
        self.orch().arg("init").assert().success();
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = StdCommand::new("git");
        self.apply_env(&mut cmd);
        let out = cmd.current_dir(dir).args(args).output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    pub fn plan(&self) -> PathBuf {
        self.repo.join(".orch/plan")
    }

    pub fn ticket_path(&self, state: &str, id: &str) -> PathBuf {
        self.plan().join("tickets").join(state).join(format!("{id}.md"))
    }

    pub fn write_ticket(&self, state: &str, id: &str, text: &str) {
        let path = self.ticket_path(state, id);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write ticket");
    }

    pub fn write_plan_file(&self, rel: &str, text: &str) {
        let path = self.plan().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    }

    /// `orch status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.orch().args(["status", "--json"]).output().expect("runs");
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }

    /// Ids in the given section of `orch status --json`.
    pub fn ids(&self, status: &serde_json::Value, section: &str) -> Vec<String> {
        status[section]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `git status --porcelain` of the plan worktree.
    pub fn plan_dirt(&self) -> String {
        self.git_in(&self.plan(), &["status", "--porcelain"])
    }

    /// Subjects of orch/plan, newest first.
    pub fn plan_log(&self) -> Vec<String> {
        self.git(&["log", "--format=%s", "orch/plan"])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
