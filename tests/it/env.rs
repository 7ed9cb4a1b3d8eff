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
        let repo = dir.path().join("repo");
        TestEnv::with_repo_at(dir, repo)
    }

    /// Like [`TestEnv::new`], with the repository at `repo` (on another
    /// file system, say).
    pub fn with_repo_at(dir: TempDir, repo: PathBuf) -> TestEnv {
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("home");
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

    /// `git clone --no-single-branch` of the repository, as a second user
    /// or host would have it.
    pub fn clone_repo(&self, name: &str) -> PathBuf {
        let clone = self.dir.path().join(name);
        self.git_in(
            self.dir.path(),
            &[
                "clone",
                "-q",
                "--no-single-branch",
                self.repo.to_str().expect("utf-8 path"),
                clone.to_str().expect("utf-8 path"),
            ],
        );
        clone
    }

    pub fn plan(&self) -> PathBuf {
        self.repo.join(".orch/plan")
    }

    pub fn ticket_path(&self, state: &str, id: &str) -> PathBuf {
        self.plan()
            .join("tickets")
            .join(state)
            .join(format!("{id}.md"))
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
        self.status_exiting(0)
    }

    /// `orch status --json` on a board whose orch.yaml is missing or
    /// invalid (exit 2), parsed.
    pub fn status_of_broken_config(&self) -> serde_json::Value {
        self.status_exiting(2)
    }

    fn status_exiting(&self, code: i32) -> serde_json::Value {
        let out = self
            .orch()
            .args(["status", "--json"])
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(code),
            "status: {}",
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

impl TestEnv {
    /// Write an executable fake agent: a real shell script.
    pub fn agent(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.sh"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write agent");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    /// orch.yaml with this agent and test-sized limits; `extra` lines
    /// (`key: value`) replace the defaults of the same key.
    pub fn configure(&self, agent: &Path, extra: &str) {
        let mut keys: Vec<(String, String)> = vec![
            ("base".into(), "main".into()),
            (
                "agent".into(),
                format!("{{command: [\"{}\"]}}", agent.display()),
            ),
            ("timeout".into(), "20s".into()),
            ("no_output_timeout".into(), "10s".into()),
            ("kill_grace".into(), "200ms".into()),
            ("max_attempts".into(), "3".into()),
            ("max_in_progress".into(), "4".into()),
            // The test's flag files are the one place outside its worktree
            // a fake agent may write.
            (
                "sandbox".into(),
                format!("{{writable: [\"{}\"]}}", self.flags_dir().display()),
            ),
        ];
        for line in extra.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once(':').expect("key: value");
            match keys.iter_mut().find(|(key, _)| key == k.trim()) {
                Some(slot) => slot.1 = v.trim().to_string(),
                None => keys.push((k.trim().to_string(), v.trim().to_string())),
            }
        }
        let yaml: String = keys.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        std::fs::write(self.plan().join("orch.yaml"), yaml).expect("write orch.yaml");
    }

    /// A path inside the test directory that a fake agent can touch.
    pub fn flag(&self, name: &str) -> PathBuf {
        self.flags_dir().join(name)
    }

    pub fn flags_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("flags");
        std::fs::create_dir_all(&dir).expect("flags dir");
        dir
    }

    /// Live processes started by orch for this test's repository: they carry
    /// ORCH_WORKTREE pointing into it.
    pub fn agent_processes(&self) -> Vec<i32> {
        let needle = format!(
            "ORCH_WORKTREE={}",
            self.repo.join(".orch/worktrees").display()
        );
        orch::process::processes_with_env(|kv| kv.starts_with(needle.as_bytes()))
    }

    /// `orch init`, then orch.yaml with a fake agent running `agent_body`.
    pub fn ready(&self, agent_body: &str, extra: &str) {
        self.init();
        let agent = self.agent("agent", agent_body);
        self.configure(&agent, extra);
    }

    /// `orch tick` that must succeed; its stdout.
    pub fn tick_ok(&self) -> String {
        let out = self.tick();
        assert!(
            out.status.success(),
            "tick failed: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// `path` as the first ref orch kept ticket `id`'s work on holds it;
    /// None when nothing is kept for `id`.
    pub fn kept_file(&self, id: &str, path: &str) -> Option<String> {
        let refs = self.git(&[
            "for-each-ref",
            "--format=%(refname)",
            &format!("refs/orch/kept/{id}/"),
        ]);
        let kept = refs.lines().next()?;
        Some(self.git(&["show", &format!("{kept}:{path}")]))
    }

    pub fn state_of(&self, id: &str) -> String {
        for s in ["todo", "in-progress", "landing", "done", "blocked"] {
            if self.ticket_path(s, id).exists() {
                return s.to_string();
            }
        }
        "missing".into()
    }

    /// Full commit messages on orch/plan, newest first.
    pub fn plan_messages(&self) -> Vec<String> {
        self.git(&["log", "--format=%B%x00", "orch/plan"])
            .split('\0')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// `orch tick` started in the background, its output piped.
    pub fn spawn_tick(&self) -> std::process::Child {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin!("orch"));
        self.apply_env(&mut cmd);
        cmd.current_dir(&self.repo)
            .arg("tick")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tick starts")
    }

    pub fn tick(&self) -> std::process::Output {
        self.orch().arg("tick").output().expect("tick runs")
    }
}

/// Wait for a file to appear (an event), failing after a generous bound.
pub fn wait_for(path: &Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `orch tick` that must die by SIGKILL at the failpoint `point`.
pub fn crash_at(env: &TestEnv, point: &str) {
    let out = env
        .orch()
        .arg("tick")
        .env("ORCH_FAILPOINT", point)
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "orch should have died at {point}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
}
