//! A board shared through a git remote: real bare repositories over
//! `file://` and a real `git daemon` on loopback, several clones standing
//! for hosts and CI runners, each running the real binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use crate::env::{TestEnv, stderr, stdout, wait_for};

/// A board published on a bare remote, and the means to run hosts on it.
struct Shared {
    env: TestEnv,
    /// The bare repository on disk.
    bare: PathBuf,
    /// The URL hosts use (file:// or git://).
    url: String,
    daemon: Option<Daemon>,
}

/// A `git daemon` on 127.0.0.1, stopped by its pid.
struct Daemon {
    child: Child,
    port: u16,
    base: PathBuf,
}

impl Daemon {
    fn start(base: &Path, port: Option<u16>) -> Daemon {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port")
        });
        // git-daemon itself, not `git daemon`: git runs it as a child,
        // which killing `git` would leave listening.
        let exec_path = StdCommand::new("git")
            .arg("--exec-path")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .expect("git --exec-path");
        let child = StdCommand::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "git daemon never listened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            port,
            base: base.to_path_buf(),
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    /// The user's repository with a board using `agent_body`, pushed to a
    /// bare remote, served over `git daemon` when `daemon` is set.
    fn new(agent_body: &str, extra: &str, daemon: bool) -> Shared {
        Shared::with_git_config(agent_body, extra, daemon, &[])
    }

    /// [`Shared::new`] with `git config` settings in the user's repository
    /// from the start (a signing key, say).
    fn with_git_config(
        agent_body: &str,
        extra: &str,
        daemon: bool,
        config: &[(&str, String)],
    ) -> Shared {
        let env = TestEnv::new();
        for (k, v) in config {
            env.git(&["config", k, v]);
        }
        let bare = env.dir.path().join("remote.git");
        env.git_in(
            env.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let (url, daemon) = if daemon {
            let d = Daemon::start(env.dir.path(), None);
            (format!("git://127.0.0.1:{}/remote.git", d.port), Some(d))
        } else {
            (format!("file://{}", bare.display()), None)
        };
        env.git(&["remote", "add", "origin", &url]);
        env.git(&["push", "-q", "origin", "main"]);
        env.ready(
            agent_body,
            &format!("remote: origin\nremote_timeout: 10s\n{extra}"),
        );
        // Any board command adopts orch.yaml and publishes the board.
        env.orch().arg("init").assert().success();
        Shared {
            env,
            bare,
            url,
            daemon,
        }
    }

    /// The board's agent: a fake agent running `body`, with orch.yaml
    /// `extra` lines over the shared board's settings; published by
    /// [`Shared::publish`].
    fn use_agent(&self, body: &str, extra: &str) {
        self.env.configure(
            &self.env.agent("agent", body),
            &format!("remote: origin\nremote_timeout: 10s\n{extra}"),
        );
    }

    /// A fresh clone of the remote, as a new host or CI runner has it.
    fn host(&self, name: &str) -> PathBuf {
        let dir = self.env.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&dir);
        self.env.git_in(
            self.env.dir.path(),
            &["clone", "-q", &self.url, dir.to_str().expect("utf-8")],
        );
        dir
    }

    /// orch in `dir`, as host `host`.
    fn orch(&self, dir: &Path, host: &str) -> StdCommand {
        let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin!("orch"));
        self.env.apply_env(&mut cmd);
        cmd.current_dir(dir).env("ORCH_HOST", host);
        cmd
    }

    fn run(&self, dir: &Path, host: &str, args: &[&str]) -> std::process::Output {
        self.orch(dir, host).args(args).output().expect("orch runs")
    }

    /// git in the bare remote.
    fn remote_git(&self, args: &[&str]) -> String {
        self.env.git_in(&self.bare, args)
    }

    /// Ticket ids in `state` on the remote's orch/plan.
    fn remote_ids(&self, state: &str) -> Vec<String> {
        let out = StdCommand::new("git")
            .current_dir(&self.bare)
            .args([
                "ls-tree",
                "--name-only",
                &format!("orch/plan:tickets/{state}"),
            ])
            .output()
            .expect("git runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(".md"))
            .map(str::to_string)
            .collect()
    }

    /// How many claim commits each ticket has on the remote's orch/plan,
    /// counted from the trailers, by attempt.
    fn remote_claims(&self) -> BTreeMap<(String, String), usize> {
        let log = self.remote_git(&["log", "--format=%B%x00", "orch/plan"]);
        let mut claims = BTreeMap::new();
        for message in log.split('\0') {
            let trailer = |key: &str| {
                message
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{key}: ")))
                    .map(str::to_string)
            };
            if trailer("Orch-Event").as_deref() == Some("claim") {
                let key = (
                    trailer("Orch-Ticket").unwrap_or_default(),
                    trailer("Orch-Attempt").unwrap_or_default(),
                );
                *claims.entry(key).or_insert(0) += 1;
            }
        }
        claims
    }

    fn write_ticket(&self, id: &str, text: &str) {
        self.env.write_ticket("todo", id, text);
    }

    /// Publish what was written in the user's plan worktree.
    fn publish(&self) {
        let out = self.env.orch().arg("init").output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

fn ticket(title: &str, deps: &[&str]) -> String {
    let mut t = format!("---\ntitle: {title}\n");
    if !deps.is_empty() {
        t.push_str(&format!("depends_on: [{}]\n", deps.join(", ")));
    }
    t.push_str("---\nDo it.\n");
    t
}

/// The fake agent of most tests: records its run in a shared log (the
/// one file outside its worktree it may write) and leaves a file for
/// orch to commit.
const RECORDING_AGENT: &str = r#"echo "$ORCH_TICKET $ORCH_ATTEMPT" >> "$FLAGS/runs.log"
echo "work of $ORCH_TICKET" > "work-$ORCH_TICKET.txt""#;

fn recording_agent(env: &TestEnv) -> String {
    RECORDING_AGENT.replace("$FLAGS", &env.flags_dir().display().to_string())
}

fn runs(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.flag("runs.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_fresh_clone_uses_the_board_on_the_remote_and_init_never_makes_a_second() {
    let s = Shared::new("exit 0", "", false);
    s.write_ticket("a", &ticket("A", &[]));
    s.publish();
    // A clone with the remote-tracking branch: status just works.
    let full = s.host("full");
    let out = s.run(&full, "h1", &["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(st.to_string().contains("\"a\""), "{st}");
    // A single-branch clone (GitLab CI's): init fetches the board.
    let single = s.env.dir.path().join("single");
    s.env.git_in(
        s.env.dir.path(),
        &[
            "clone",
            "-q",
            "--single-branch",
            "-b",
            "main",
            &s.url,
            single.to_str().expect("utf-8"),
        ],
    );
    let before = s.remote_git(&["rev-parse", "orch/plan"]);
    let out = s.run(&single, "h2", &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("joined the board on origin"),
        "{}",
        stdout(&out)
    );
    assert!(single.join(".orch/plan/tickets/todo/a.md").exists());
    assert_eq!(
        s.env.git_in(&single, &["rev-parse", "orch/plan"]),
        before,
        "no second board: orch/plan is the remote's"
    );
    assert_eq!(s.remote_git(&["rev-parse", "orch/plan"]), before);
}

#[test]
fn tickets_claimed_on_one_host_are_not_claimed_on_another_and_work_travels() {
    let s = Shared::new("", "", false);
    s.use_agent(&recording_agent(&s.env), "");
    for id in ["a", "b", "c"] {
        s.write_ticket(id, &ticket(id, &[]));
    }
    s.publish();
    let h1 = s.host("h1");
    let h2 = s.host("h2");
    let out = s.run(&h1, "h1", &["tick", "-j", "2"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = s.run(&h2, "h2", &["tick", "-j", "2"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut done = s.remote_ids("done");
    done.sort();
    assert_eq!(done, ["a", "b", "c"]);
    let mut ran = runs(&s.env);
    ran.sort();
    assert_eq!(ran, ["a 1", "b 1", "c 1"], "each ticket ran once");
    // Each attempt's work is on the remote, on its branch.
    for id in ["a", "b", "c"] {
        let files = s.remote_git(&["ls-tree", "--name-only", &format!("orch/{id}")]);
        assert!(files.contains(&format!("work-{id}.txt")), "{id}: {files}");
    }
}

#[test]
fn sixteen_workers_over_git_daemon_run_two_hundred_tickets_exactly_once() {
    let s = Shared::new("", "max_in_progress: 16\n", true);
    s.use_agent(
        &recording_agent(&s.env),
        "remote_timeout: 30s\nmax_in_progress: 16\nsandbox: off\n",
    );
    let n = 200;
    for i in 0..n {
        s.write_ticket(&format!("t{i:03}"), &ticket(&format!("T{i}"), &[]));
    }
    s.publish();
    let hosts: Vec<PathBuf> = (0..16).map(|i| s.host(&format!("w{i:02}"))).collect();
    let started = Instant::now();
    std::thread::scope(|scope| {
        for (i, dir) in hosts.iter().enumerate() {
            let s = &s;
            scope.spawn(move || {
                let host = format!("w{i:02}");
                for _ in 0..400 {
                    let out = s.run(dir, &host, &["tick", "-j", "2"]);
                    // A tick may lose every race and say so (exit 1); it
                    // never runs a claim it did not win.
                    let text = format!("{}{}", stdout(&out), stderr(&out));
                    assert!(
                        out.status.code() == Some(0) || text.contains("lost the race"),
                        "{host}: {text}"
                    );
                    if s.remote_ids("todo").is_empty() && s.remote_ids("in-progress").is_empty() {
                        return;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(600),
                        "the board never emptied"
                    );
                }
            });
        }
    });
    let done = s.remote_ids("done");
    assert_eq!(done.len(), n, "every ticket is done");
    let ran = runs(&s.env);
    let mut per_ticket: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &ran {
        *per_ticket
            .entry(line.split(' ').next().unwrap_or(""))
            .or_insert(0) += 1;
    }
    let twice: Vec<_> = per_ticket.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "tickets run more than once: {twice:?}");
    assert_eq!(per_ticket.len(), n);
    let claims = s.remote_claims();
    let doubled: Vec<_> = claims.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "double claims on the remote: {doubled:?}"
    );
    assert_eq!(claims.len(), n, "one claim per ticket");
    s.remote_git(&["fsck", "--no-progress", "--strict"]);
    eprintln!(
        "16 workers settled {n} tickets in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_killed_worker_is_settled_after_its_lease_and_the_retry_continues_from_the_pushed_tip() {
    let s = Shared::new("", "", false);
    let flags = s.env.flags_dir();
    // Attempt 1 commits and fails; attempt 2 hangs until its host is
    // killed; attempt 3 must start from attempt 1's pushed commit.
    let body = format!(
        r#"case "$ORCH_ATTEMPT" in
1) echo one > one.txt; git add one.txt; git commit -qm "attempt one"; exit 1;;
2) touch "{f}/hanging"; exec sleep 60;;
*) git log --format=%s | grep -q "attempt one" && touch "{f}/continued"; echo three > three.txt;;
esac"#,
        f = flags.display()
    );
    s.use_agent(&body, "timeout: 5s\nkill_grace: 100ms\nlease_margin: 1s\n");
    s.write_ticket("k", &ticket("K", &[]));
    s.publish();
    let a = s.host("a");
    let b = s.host("b");
    let out = s.run(&a, "a", &["tick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        s.remote_git(&["log", "--format=%s", "orch/k"])
            .contains("attempt one")
    );
    let mut tick = s
        .orch(&a, "a")
        .arg("tick")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tick");
    wait_for(&flags.join("hanging"));
    // Within the lease, host b leaves the claim alone.
    let out = s.run(&b, "b", &["tick"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        s.remote_ids("in-progress"),
        ["k"],
        "{}\n{}",
        stdout(&out),
        s.remote_git(&["log", "-3", "--format=%B", "orch/plan"])
    );
    tick.kill().expect("kill -9 the tick");
    let _ = tick.wait();
    // Its agent is an orphan now; it dies with its limits elsewhere, but
    // the test does not wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = s.run(&b, "b", &["tick"]);
        assert!(out.status.success(), "{}", stderr(&out));
        if flags.join("continued").exists() {
            break;
        }
        assert!(Instant::now() < deadline, "never retried: {}", stdout(&out));
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = s.remote_git(&["log", "--format=%B", "orch/plan"]);
    assert_eq!(s.remote_ids("done"), ["k"], "{log}");
    assert!(
        log.contains("lease of host a expired") || log.contains("host a did not settle"),
        "{log}"
    );
    kill_agents_of(&a);
}

#[test]
fn ephemeral_runners_settle_a_board_with_dependencies_and_keep_every_attempts_work() {
    let s = Shared::new("", "", false);
    s.use_agent(&recording_agent(&s.env), "max_in_progress: 4\n");
    for i in 0..20 {
        let deps: Vec<String> = if i >= 4 {
            vec![format!("e{:02}", i - 4)]
        } else {
            Vec::new()
        };
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        s.write_ticket(&format!("e{i:02}"), &ticket(&format!("E{i}"), &deps));
    }
    s.publish();
    for round in 0..30 {
        let dir = s.host("runner");
        let out = s.run(&dir, &format!("runner-{round}"), &["tick", "-j", "4"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        std::fs::remove_dir_all(&dir).expect("the runner goes");
        if s.remote_ids("done").len() == 20 {
            break;
        }
    }
    assert_eq!(s.remote_ids("done").len(), 20, "{:?}", s.remote_ids("todo"));
    assert_eq!(runs(&s.env).len(), 20, "each ran once: {:?}", runs(&s.env));
    for i in 0..20 {
        let id = format!("e{i:02}");
        let files = s.remote_git(&["ls-tree", "--name-only", &format!("orch/{id}")]);
        assert!(files.contains(&format!("work-{id}.txt")), "{id}: {files}");
    }
}

#[test]
fn an_unreachable_remote_claims_nothing_and_a_result_whose_push_failed_is_published_next_tick() {
    let mut s = Shared::new("", "", true);
    let flags = s.env.flags_dir();
    let body = format!(
        r#"echo "$ORCH_TICKET" >> "{f}/runs.log"
echo work > work.txt
touch "{f}/started"
while [ ! -e "{f}/go" ]; do sleep 0.02; done"#,
        f = flags.display()
    );
    s.use_agent(&body, "remote_timeout: 5s\nsandbox: off\n");
    s.write_ticket("n", &ticket("N", &[]));
    s.publish();
    let h = s.host("h");
    let port = s.daemon.as_ref().map(|d| d.port).expect("daemon");
    let base = s.daemon.as_ref().map(|d| d.base.clone()).expect("daemon");
    // The remote goes away while the agent runs: the result cannot be
    // pushed.
    let tick = s
        .orch(&h, "h")
        .arg("tick")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tick");
    wait_for(&flags.join("started"));
    if let Some(d) = s.daemon.as_mut() {
        d.stop();
    }
    std::fs::write(flags.join("go"), "").expect("go");
    let out = tick.wait_with_output().expect("tick ends");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(s.remote_ids("in-progress"), ["n"]);
    // While it is away, a tick claims nothing and says git's message.
    let out = s.run(&h, "h", &["tick"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach the remote"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).to_lowercase().contains("connect")
            || stderr(&out).to_lowercase().contains("refused"),
        "git's own words: {}",
        stderr(&out)
    );
    // It comes back: the next tick publishes the result decided before,
    // without running the agent again.
    s.daemon = Some(Daemon::start(&base, Some(port)));
    let out = s.run(&h, "h", &["tick"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(s.remote_ids("done"), ["n"]);
    assert_eq!(runs(&s.env), ["n"], "the agent ran once");
    let files = s.remote_git(&["ls-tree", "--name-only", "orch/n"]);
    assert!(files.contains("work.txt"), "{files}");
}

#[test]
fn a_persons_edit_racing_a_remote_change_merges_or_stops_with_both_kept() {
    let s = Shared::new("exit 0", "", false);
    for id in ["x", "y", "z"] {
        s.write_ticket(id, &ticket(id, &[]));
    }
    s.publish();
    let a = s.host("a");
    let b = s.host("b");
    for dir in [&a, &b] {
        let out = s.run(dir, "h", &["status"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let edit = |dir: &Path, id: &str, text: &str| {
        std::fs::write(
            dir.join(format!(".orch/plan/tickets/todo/{id}.md")),
            ticket(text, &[]),
        )
        .expect("edit");
    };
    // Different tickets: both edits end up on the remote.
    edit(&b, "y", "Y from b");
    assert!(s.run(&b, "b", &["init"]).status.success());
    edit(&a, "z", "Z from a");
    let out = s.run(&a, "a", &["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let y = s.remote_git(&["show", "orch/plan:tickets/todo/y.md"]);
    let z = s.remote_git(&["show", "orch/plan:tickets/todo/z.md"]);
    assert!(y.contains("Y from b") && z.contains("Z from a"), "{y}{z}");
    // The same ticket: a stops, names the file, keeps its version.
    edit(&b, "x", "X from b");
    assert!(s.run(&b, "b", &["init"]).status.success());
    edit(&a, "x", "X from a");
    let out = s.run(&a, "a", &["tick"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("tickets/todo/x.md"),
        "{}",
        stderr(&out)
    );
    let on_disk =
        std::fs::read_to_string(a.join(".orch/plan/tickets/todo/x.md")).expect("still there");
    assert!(on_disk.contains("X from a"));
    let kept = s.env.git_in(
        &a,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/orch/kept/plan/",
        ],
    );
    let kept = kept.lines().next().expect("a kept ref").to_string();
    let theirs = s
        .env
        .git_in(&a, &["show", &format!("{kept}:tickets/todo/x.md")]);
    assert!(theirs.contains("X from a"), "{theirs}");
    let remote = s.remote_git(&["show", "orch/plan:tickets/todo/x.md"]);
    assert!(
        remote.contains("X from b"),
        "the remote is untouched: {remote}"
    );
    assert!(s.remote_ids("in-progress").is_empty(), "nothing claimed");
}

/// Kill what agents a killed host left running in its worktrees.
fn kill_agents_of(dir: &Path) {
    let needle = format!("ORCH_WORKTREE={}", dir.join(".orch/worktrees").display());
    for pid in orch::process::processes_with_env(|kv| kv.starts_with(needle.as_bytes())) {
        let _ = StdCommand::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

/// `faketime`, or None (the test says it is skipped) where it is missing.
fn faketime() -> Option<PathBuf> {
    let found = StdCommand::new("sh")
        .args(["-c", "command -v faketime"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if found.is_none() {
        assert!(
            std::env::var_os("ORCH_TEST_REQUIRE_FAKETIME").is_none(),
            "faketime is required here (ORCH_TEST_REQUIRE_FAKETIME is set)"
        );
        eprintln!("skipped: faketime is not installed");
    }
    found
}

#[test]
fn hosts_with_clocks_two_minutes_apart_leave_a_live_claim_alone_and_a_superseded_result_is_refused()
{
    let Some(faketime) = faketime() else {
        return;
    };
    let s = Shared::new("", "", false);
    let flags = s.env.flags_dir();
    let body = format!(
        r#"if [ "$ORCH_ATTEMPT" = 1 ]; then
  touch "{f}/started"
  while [ ! -e "{f}/go" ]; do sleep 0.02; done
fi
echo "attempt $ORCH_ATTEMPT on $ORCH_HOST_LABEL" > work.txt"#,
        f = flags.display()
    );
    // The default lease margin (10m) is the clock-skew tolerance.
    s.use_agent(&body, "timeout: 60s\n");
    s.write_ticket("k", &ticket("K", &[]));
    s.publish();
    let a = s.host("a");
    let b = s.host("b");
    let tick_a = s
        .orch(&a, "a")
        .arg("tick")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tick");
    wait_for(&flags.join("started"));
    let skewed = |offset: &str| {
        let mut cmd = StdCommand::new(&faketime);
        s.env.apply_env(&mut cmd);
        cmd.current_dir(&b)
            .env("ORCH_HOST", "b")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .args(["-f", offset])
            .arg(assert_cmd::cargo::cargo_bin!("orch"))
            .arg("tick")
            .output()
            .expect("tick runs")
    };
    // b's clock is two minutes ahead (and behind): a's claim is live.
    for offset in ["+120s", "-120s"] {
        let out = skewed(offset);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            s.remote_ids("in-progress"),
            ["k"],
            "b at {offset}: {}",
            stdout(&out)
        );
    }
    // A clock beyond the tolerance takes the claim for expired; a's
    // result is then refused on the remote: the claim is no longer its.
    let out = skewed("+30m");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(s.remote_ids("done"), ["k"], "{}", stdout(&out));
    std::fs::write(flags.join("go"), "").expect("go");
    let out = tick_a.wait_with_output().expect("a's tick ends");
    assert!(
        stdout(&out).contains("refused"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(s.remote_ids("done"), ["k"]);
    let log = s.remote_git(&["log", "--format=%B", "orch/plan"]);
    assert!(log.contains("Orch-Outcome: stale"), "{log}");
    // a's work is not lost: its tip is on the remote, kept.
    let kept = s.remote_git(&["for-each-ref", "--format=%(refname)", "refs/orch/kept/k/"]);
    assert!(!kept.trim().is_empty(), "a's work is kept on the remote");
}

#[test]
fn with_require_signed_an_unsigned_board_commit_from_the_remote_is_refused() {
    let keys = tempfile::tempdir().expect("keys");
    let key = keys.path().join("id");
    let made = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "orch-test", "-f"])
        .arg(&key)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: ssh-keygen cannot make a key here");
        return;
    }
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let allowed = keys.path().join("allowed_signers");
    std::fs::write(&allowed, format!("author@example.com {public}")).expect("allowed");
    let config = [
        ("gpg.format", "ssh".to_string()),
        ("user.signingkey", key.display().to_string()),
        ("gpg.ssh.allowedSignersFile", allowed.display().to_string()),
    ];
    let s = Shared::with_git_config("exit 0", "require_signed: true\n", false, &config);
    s.write_ticket("s", &ticket("S", &[]));
    s.publish();
    let tip = s.remote_git(&["rev-parse", "orch/plan"]);
    s.env.git_in(
        &s.bare,
        &[
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "verify-commit",
            tip.trim(),
        ],
    );
    // A host that trusts the key works on the board.
    let b = s.host("b");
    for (k, v) in &config {
        s.env.git_in(&b, &["config", k, v]);
    }
    let out = s.run(&b, "b", &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Someone with push access but not the key changes the agent.
    let c = s.host("c");
    s.env
        .git_in(&c, &["checkout", "-q", "-b", "evil", "origin/orch/plan"]);
    std::fs::write(c.join("tickets/todo/pwn.md"), ticket("pwn", &[])).expect("write");
    s.env.git_in(&c, &["add", "."]);
    s.env.git_in(&c, &["commit", "-q", "-m", "add a ticket"]);
    s.env
        .git_in(&c, &["push", "-q", "origin", "evil:orch/plan"]);
    let evil = s.env.git_in(&c, &["rev-parse", "--short=12", "HEAD"]);
    let out = s.run(&b, "b", &["tick"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains(evil.trim()),
        "names the commit: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("add a ticket"), "{}", stderr(&out));
    assert!(
        !b.join(".orch/plan/tickets/todo/pwn.md").exists(),
        "not taken"
    );
    assert!(s.remote_ids("in-progress").is_empty(), "nothing claimed");
}

/// Landing commits on the remote's main, by ticket, from the trailers of
/// its first-parent line.
fn remote_landings(shared: &Shared) -> BTreeMap<String, usize> {
    let log = shared.remote_git(&["log", "--first-parent", "--format=%B%x00", "main"]);
    let mut out = BTreeMap::new();
    for message in log.split('\0') {
        if message.lines().any(|l| l == "Orch-Event: land")
            && let Some(id) = message
                .lines()
                .find_map(|l| l.strip_prefix("Orch-Ticket: "))
        {
            *out.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn two_hosts_landing_at_once_both_land_on_the_remotes_target_exactly_once() {
    let shared = Shared::new(
        &recording_agent(&TestEnv::new()),
        "land: merge\nmax_in_progress: 2",
        false,
    );
    shared.use_agent(
        &recording_agent(&shared.env),
        "land: merge\nmax_in_progress: 2\nverify: [\"test -e work-$ORCH_TICKET.txt || ls work-*.txt\"]",
    );
    for id in ["a", "b", "c", "d"] {
        shared.write_ticket(id, &ticket(&format!("Work {id}"), &[]));
    }
    shared.publish();
    let hosts: Vec<PathBuf> = ["h1", "h2"].iter().map(|h| shared.host(h)).collect();
    for round in 0..3 {
        let children: Vec<_> = hosts
            .iter()
            .zip(["h1", "h2"])
            .map(|(dir, name)| {
                shared
                    .orch(dir, name)
                    .arg("tick")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("tick starts")
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().expect("tick ends");
            assert!(
                out.status.success(),
                "round {round}: {}\n{}",
                stdout(&out),
                stderr(&out)
            );
        }
    }
    // The cap is the board's: a host may have found no room. Ticks on
    // one host finish the queue.
    for _ in 0..4 {
        if shared.remote_ids("done").len() == 4 {
            break;
        }
        let out = shared.run(&hosts[0], "h1", &["tick"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(shared.remote_ids("done"), ["a", "b", "c", "d"]);
    let landings = remote_landings(&shared);
    assert_eq!(
        landings,
        [("a", 1), ("b", 1), ("c", 1), ("d", 1)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<BTreeMap<_, _>>()
    );
    let files = shared.remote_git(&["ls-tree", "--name-only", "main"]);
    for id in ["a", "b", "c", "d"] {
        assert!(files.contains(&format!("work-{id}.txt")), "{files}");
    }
}

#[test]
fn a_remote_that_refuses_board_pushes_is_said_at_once_not_taken_for_a_lost_race() {
    let s = Shared::new("", "", false);
    s.use_agent(&recording_agent(&s.env), "");
    s.write_ticket("p", &ticket("P", &[]));
    s.publish();
    let hook = s.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nif grep -q refs/heads/orch/plan; then echo 'orch/plan is protected here' >&2; exit 1; fi\n",
    )
    .expect("hook");
    executable(&hook);
    let before = s.remote_git(&["rev-parse", "orch/plan"]);
    let h = s.host("h");
    let out = s.run(&h, "h", &["tick"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("refused the push") && text.contains("orch/plan is protected here"),
        "the remote's reason, in its words: {text}"
    );
    assert!(!text.contains("lost the race"), "{text}");
    assert!(!text.contains("other hosts changed the board"), "{text}");
    assert!(
        runs(&s.env).is_empty(),
        "nothing ran on a claim never published"
    );
    assert_eq!(s.remote_git(&["rev-parse", "orch/plan"]), before);
    // The protection lifted, the next tick claims and runs it.
    std::fs::remove_file(&hook).expect("hook removed");
    let out = s.run(&h, "h", &["tick"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(s.remote_ids("done"), ["p"]);
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn a_protected_target_on_the_remote_keeps_the_ticket_waiting_with_the_remotes_reason() {
    let s = Shared::new("", "", false);
    s.use_agent(
        &recording_agent(&s.env),
        "land: merge
",
    );
    s.write_ticket("m", &ticket("M", &[]));
    s.publish();
    let hook = s.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nif grep -q ' refs/heads/main$'; then echo 'main is protected: open a merge request' >&2; exit 1; fi\n",
    )
    .expect("hook");
    executable(&hook);
    let main_before = s.remote_git(&["rev-parse", "main"]);
    let h = s.host("h");
    let out = s.run(&h, "h", &["tick"]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("main is protected: open a merge request"),
        "the remote's reason: {text}"
    );
    assert!(
        !text.contains("kept moving"),
        "not taken for a race: {text}"
    );
    assert_eq!(s.remote_git(&["rev-parse", "main"]), main_before);
    // The work itself is on the remote, waiting.
    let files = s.remote_git(&["ls-tree", "--name-only", "orch/m"]);
    assert!(files.contains("work-m.txt"), "{files}");
    let status = s.run(&h, "h", &["status"]);
    assert!(
        stdout(&status).contains("main is protected"),
        "status says why it waits: {}",
        stdout(&status)
    );
    std::fs::remove_file(&hook).expect("hook removed");
    let out = s.run(&h, "h", &["tick"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(remote_landings(&s).get("m"), Some(&1));
}
