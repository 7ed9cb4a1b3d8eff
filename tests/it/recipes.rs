//! The deployment recipes in `examples/`: their YAML parses and has the
//! shape their comments promise, and their shell steps, run as the recipe
//! has them in a fresh checkout of a local bare remote that holds a shared
//! board, tick that board to the end. The README's cron line is run as
//! cron would run it.
//!
//! What a test cannot run offline is explicit: a GitHub step that `uses:`
//! an action is not shell (the only one allowed is actions/checkout, which
//! the test stands in for with a clone), and a shell step whose text
//! carries [`SKIP`] (installing orch or the agent from a registry) is left
//! out; the test checks that each skipped step installs something, and
//! puts the orch under test on `PATH` in its place.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;
use std::time::Duration;

use serde_json::Value;

use crate::env::{TestEnv, stderr, stdout};

/// A recipe's shell step carrying this is not run by the tests.
const SKIP: &str = "# orch-recipe: skip-in-test";

/// The ticket the board holds, and what the fake agent leaves for it: the
/// key it was given, so the test sees a recipe's secret reach the agent.
const TICKET: &str = "greet";
const AGENT: &str =
    r#"echo "hello from $ORCH_TICKET, key ${OPENAI_API_KEY:-unset}" > greeting.txt"#;
/// The test environment's git identity, which stands for a host's own.
const IDENTITY: &[&str] = &[
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
];
/// What a test puts where a recipe reads the agent's key from.
const SECRET: &str = "test-secret";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn read(rel: &str) -> String {
    let path = examples().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(rel: &str) -> Value {
    serde_saphyr::from_str::<Value>(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The directory of the orch under test, for `PATH`.
fn orch_dir() -> PathBuf {
    Path::new(assert_cmd::cargo::cargo_bin!("orch"))
        .parent()
        .expect("orch's directory")
        .to_path_buf()
}

/// `dir` first, then the test's own `PATH` (for git and sh).
fn path_with(dir: &str) -> String {
    match std::env::var("PATH") {
        Ok(p) if !p.is_empty() => format!("{dir}:{p}"),
        _ => dir.to_string(),
    }
}

/// One shell step of a recipe.
struct Step {
    name: String,
    script: String,
    env: Vec<(String, String)>,
}

/// Split a recipe's steps into the ones to run and the ones marked
/// [`SKIP`], checking that each skipped one only installs something.
fn runnable(steps: Vec<Step>) -> Vec<Step> {
    let (skipped, run): (Vec<Step>, Vec<Step>) =
        steps.into_iter().partition(|s| s.script.contains(SKIP));
    for s in &skipped {
        assert!(
            s.script.contains("install"),
            "step {:?} is skipped in the test but installs nothing:\n{}",
            s.name,
            s.script
        );
    }
    assert!(
        skipped.iter().any(|s| s.script.contains("cargo install")),
        "no step installs orch"
    );
    run
}

/// A board with one ticket, shared through a bare remote over file://.
struct Board {
    env: TestEnv,
    bare: PathBuf,
    url: String,
}

impl Board {
    fn new() -> Board {
        let env = TestEnv::new();
        let bare = env.dir.path().join("remote.git");
        env.git_in(
            env.dir.path(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        let url = format!("file://{}", bare.display());
        env.git(&["remote", "add", "origin", &url]);
        env.git(&["push", "-q", "origin", "main"]);
        env.ready(AGENT, "remote: origin\nremote_timeout: 10s\n");
        env.write_ticket("todo", TICKET, "---\ntitle: Greet\n---\nSay hello.\n");
        // Any board command adopts orch.yaml and the ticket and publishes.
        let out = env.orch().arg("init").output().expect("orch runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let board = Board { env, bare, url };
        assert_eq!(board.remote_ids("todo"), [TICKET], "the board is published");
        board
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        self.env.git_in(dir, args)
    }

    /// A command in `dir` with the test's hermetic environment, nothing of
    /// the developer's or the CI's own agent key, and orch on `PATH`.
    fn command(&self, program: &str, dir: &Path) -> StdCommand {
        let mut cmd = StdCommand::new(program);
        self.env.apply_env(&mut cmd);
        cmd.env_remove("OPENAI_API_KEY")
            .env("PATH", path_with(&orch_dir().display().to_string()))
            .current_dir(dir);
        cmd
    }

    /// Run the steps with `sh -e -c`, each in `dir`, with `job_env` and
    /// the step's own variables; each must succeed. A CI runner has no git
    /// identity but the one its recipe sets.
    fn run(&self, dir: &Path, steps: &[Step], job_env: &[(&str, &str)]) {
        for step in steps {
            let mut cmd = self.command("sh", dir);
            for v in IDENTITY {
                cmd.env_remove(v);
            }
            cmd.envs(job_env.iter().copied())
                .envs(step.env.iter().map(|(k, v)| (k, v)))
                .args(["-e", "-c", &step.script]);
            let out = cmd.output().expect("sh runs");
            assert!(
                out.status.success(),
                "step {:?} failed ({}):\n{}\n--- stdout\n{}--- stderr\n{}",
                step.name,
                out.status,
                step.script,
                stdout(&out),
                stderr(&out)
            );
        }
    }

    /// Ticket ids in `state` on the remote's orch/plan.
    fn remote_ids(&self, state: &str) -> Vec<String> {
        self.git_in(
            &self.bare,
            &[
                "ls-tree",
                "--name-only",
                &format!("orch/plan:tickets/{state}"),
            ],
        )
        .lines()
        .filter_map(|l| l.strip_suffix(".md"))
        .map(str::to_string)
        .collect()
    }

    /// The ticket is done on the remote's orch/plan, and the agent's work,
    /// done with `key`, is on its branch there.
    fn assert_ticked(&self, key: &str) {
        assert_eq!(self.remote_ids("done"), [TICKET], "done on the remote");
        assert!(self.remote_ids("todo").is_empty());
        assert!(self.remote_ids("in-progress").is_empty());
        let work = self.git_in(
            &self.bare,
            &["show", &format!("refs/heads/orch/{TICKET}:greeting.txt")],
        );
        assert_eq!(work.trim(), format!("hello from {TICKET}, key {key}"));
    }

    /// The identity the recipe set in `dir` is the one on the commits it
    /// pushed: the board's tip and the ticket's work.
    fn assert_identity(&self, dir: &Path) {
        let name = self.git_in(dir, &["config", "user.name"]);
        let email = self.git_in(dir, &["config", "user.email"]);
        let want = format!("{} <{}>", name.trim(), email.trim());
        for rev in ["orch/plan".to_string(), format!("orch/{TICKET}")] {
            let who = self.git_in(
                &self.bare,
                &["log", "-1", "--format=%an <%ae>|%cn <%ce>", &rev],
            );
            assert_eq!(who.trim(), format!("{want}|{want}"), "{rev}");
        }
    }
}

#[test]
fn every_yaml_recipe_parses_and_the_readme_names_every_recipe() {
    let mut parsed = Vec::new();
    for entry in walkdir::WalkDir::new(examples()) {
        let entry = entry.expect("walk examples/");
        let path = entry.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            let rel = path.strip_prefix(examples()).expect("under examples/");
            let rel = rel.to_str().expect("utf-8 path");
            let value = yaml(rel);
            assert!(value.is_object(), "{rel}: not a mapping");
            parsed.push(rel.to_string());
        }
    }
    parsed.sort();
    assert_eq!(
        parsed,
        [
            "github-actions/orch-tick.yml",
            "gitlab-ci/orch-tick.gitlab-ci.yml",
            "notify/mail.yaml",
            "notify/ntfy.yaml",
            "notify/slack.yaml",
        ]
    );
    let readme = read("README.md");
    for name in [
        "github-actions/orch-tick.yml",
        "gitlab-ci/orch-tick.gitlab-ci.yml",
        "systemd/orch-tick.service",
        "systemd/orch-tick.timer",
        "notify/slack.yaml",
        "notify/ntfy.yaml",
        "notify/mail.yaml",
        "cron/crontab",
        "require_signed: true",
        "git config orch.requireSigned true",
    ] {
        assert!(readme.contains(name), "examples/README.md lacks {name:?}");
    }
}

/// The workflow's steps, checking what the test does not model is absent.
fn github_steps(wf: &Value) -> Vec<Step> {
    for unmodelled in ["env", "defaults"] {
        assert!(wf.get(unmodelled).is_none(), "workflow-level {unmodelled}");
    }
    let jobs = wf["jobs"].as_object().expect("jobs");
    assert_eq!(jobs.len(), 1, "one job");
    let (_, job) = jobs.iter().next().expect("a job");
    for unmodelled in ["env", "defaults", "container", "services"] {
        assert!(job.get(unmodelled).is_none(), "job-level {unmodelled}");
    }
    let mut steps = Vec::new();
    let mut checkout = false;
    for (i, step) in job["steps"].as_array().expect("steps").iter().enumerate() {
        let name = step["name"].as_str().unwrap_or_default().to_string();
        if let Some(action) = step["uses"].as_str() {
            // The one action: the test's clone stands in for it.
            assert!(
                action.starts_with("actions/checkout@"),
                "step {i} uses {action}, which the test cannot stand in for"
            );
            assert_eq!(
                step["with"]["fetch-depth"],
                Value::from(0),
                "checkout fetches every branch, orch/plan included"
            );
            assert!(steps.is_empty(), "checkout comes first");
            checkout = true;
            continue;
        }
        for unmodelled in ["shell", "working-directory", "if"] {
            assert!(step.get(unmodelled).is_none(), "step {i}: {unmodelled}");
        }
        let script = step["run"].as_str().expect("a run or uses step");
        // `${{ secrets.X }}` is what the test puts in its place.
        let env = step["env"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().expect("string env");
                        let v = if v.starts_with("${{ secrets.") {
                            SECRET
                        } else {
                            assert!(!v.contains("${{"), "{k}: {v}");
                            v
                        };
                        (k.clone(), v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        steps.push(Step {
            name: if name.is_empty() {
                format!("step {i}")
            } else {
                name
            },
            script: script.to_string(),
            env,
        });
    }
    assert!(checkout, "the workflow checks out the repository");
    steps
}

#[test]
fn the_github_workflow_is_scheduled_and_its_steps_tick_the_shared_board() {
    let wf = yaml("github-actions/orch-tick.yml");
    let on = &wf["on"];
    let cron = on["schedule"][0]["cron"].as_str().expect("a cron schedule");
    assert_eq!(cron.split_whitespace().count(), 5, "{cron}");
    assert!(on.get("workflow_dispatch").is_some(), "started by hand too");
    assert!(
        wf["concurrency"]["group"].is_string(),
        "a concurrency group"
    );
    assert_eq!(
        wf["concurrency"]["cancel-in-progress"],
        Value::Bool(false),
        "a tick in progress is never cancelled"
    );
    assert_eq!(wf["permissions"]["contents"], "write", "pushes work");

    let steps = github_steps(&wf);
    let scripts: Vec<&str> = steps.iter().map(|s| s.script.trim()).collect();
    let init = scripts.iter().position(|s| *s == "orch init");
    let tick = scripts.iter().position(|s| *s == "orch tick");
    assert!(
        matches!((init, tick), (Some(i), Some(t)) if i < t),
        "orch init, then orch tick: {scripts:?}"
    );
    let tick_step = &steps[tick.expect("tick")];
    assert!(
        tick_step
            .env
            .iter()
            .any(|(k, v)| k == "OPENAI_API_KEY" && v == SECRET),
        "the tick step gets the agent's key from the secrets"
    );
    let identity = scripts
        .iter()
        .position(|s| s.contains("git config user.name") && s.contains("git config user.email"))
        .expect("a step sets a git identity");
    assert!(identity < init.expect("init"), "identity before orch init");
    let steps = runnable(steps);

    let b = Board::new();
    // actions/checkout with fetch-depth 0: every branch, full history.
    let dir = b.env.dir.path().join("runner");
    b.git_in(
        b.env.dir.path(),
        &[
            "clone",
            "-q",
            "--no-single-branch",
            &b.url,
            dir.to_str().expect("utf-8"),
        ],
    );
    b.run(&dir, &steps, &[]);
    b.assert_ticked(SECRET);
    b.assert_identity(&dir);
}

/// The one job of a GitLab CI file, with its name.
fn gitlab_job(ci: &Value) -> (&String, &Value) {
    const KEYWORDS: &[&str] = &[
        "default",
        "include",
        "stages",
        "variables",
        "workflow",
        "image",
        "services",
        "cache",
        "before_script",
        "after_script",
    ];
    let jobs: Vec<(&String, &Value)> = ci
        .as_object()
        .expect("a mapping")
        .iter()
        .filter(|(k, _)| !k.starts_with('.') && !KEYWORDS.contains(&k.as_str()))
        .collect();
    assert_eq!(jobs.len(), 1, "one job");
    for keyword in KEYWORDS {
        assert!(ci.get(*keyword).is_none(), "top-level {keyword}");
    }
    jobs[0]
}

#[test]
fn the_gitlab_job_runs_on_schedule_and_ticks_from_a_single_branch_checkout() {
    let ci = yaml("gitlab-ci/orch-tick.gitlab-ci.yml");
    let (name, job) = gitlab_job(&ci);
    let rules = job["rules"].as_array().expect("rules");
    assert!(!rules.is_empty());
    for rule in rules {
        assert_eq!(
            rule["if"], "$CI_PIPELINE_SOURCE == \"schedule\"",
            "{name} runs only in scheduled pipelines"
        );
    }
    assert!(job["resource_group"].is_string(), "one tick at a time");
    let variables = job["variables"].as_object().expect("variables");
    assert_eq!(variables["GIT_STRATEGY"], "clone");
    assert_eq!(variables["GIT_DEPTH"], "0");
    for unmodelled in ["after_script", "services", "extends", "hooks"] {
        assert!(job.get(unmodelled).is_none(), "{name}: {unmodelled}");
    }
    // GitLab runs before_script, then script, in the checkout.
    let mut steps = Vec::new();
    for key in ["before_script", "script"] {
        for (i, line) in job[key].as_array().into_iter().flatten().enumerate() {
            steps.push(Step {
                name: format!("{key}[{i}]"),
                script: line.as_str().expect("a script line").to_string(),
                env: Vec::new(),
            });
        }
    }
    let scripts: Vec<&str> = steps.iter().map(|s| s.script.trim()).collect();
    let init = scripts.iter().position(|s| *s == "orch init");
    let tick = scripts.iter().position(|s| *s == "orch tick");
    assert!(
        matches!((init, tick), (Some(i), Some(t)) if i < t),
        "orch init, then orch tick: {scripts:?}"
    );
    let steps = runnable(steps);

    let b = Board::new();
    let host = "gitlab.example.com";
    let project = "group/project";
    let token = "project-token";
    // Where the runner clones from, with a job token that cannot push
    // (pushes to it go nowhere), and the push URL the job sets, both the
    // bare remote in truth.
    let fetch_url = format!("https://gitlab-ci-token:job-token@{host}/{project}.git");
    let push_url = format!("https://oauth2:{token}@{host}/{project}.git");
    let nowhere = format!("file://{}", b.env.dir.path().join("nowhere.git").display());
    // The runner's checkout: one branch, detached at the pipeline's commit.
    let dir = b.env.dir.path().join("runner");
    std::fs::create_dir_all(&dir).expect("runner dir");
    b.git_in(&dir, &["init", "-q"]);
    b.git_in(&dir, &["remote", "add", "origin", &fetch_url]);
    let insteadof = format!("url.{}.insteadOf", b.url);
    b.git_in(&dir, &["config", "--add", &insteadof, &fetch_url]);
    b.git_in(&dir, &["config", "--add", &insteadof, &push_url]);
    let push_insteadof = format!("url.{nowhere}.pushInsteadOf");
    b.git_in(&dir, &["config", &push_insteadof, &fetch_url]);
    b.git_in(
        &dir,
        &[
            "fetch",
            "-q",
            "origin",
            "+refs/heads/main:refs/pipelines/1",
            "+refs/heads/main:refs/remotes/origin/main",
        ],
    );
    let sha = b.git_in(&dir, &["rev-parse", "refs/pipelines/1"]);
    b.git_in(&dir, &["checkout", "-f", "-q", sha.trim()]);
    assert!(
        b.git_in(&dir, &["for-each-ref", "--format=%(refname)"])
            .lines()
            .all(|r| !r.contains("orch/plan")),
        "the runner's checkout has no board"
    );

    let probe = b
        .command("git", &dir)
        .args(["push", "-q", "--dry-run", "origin", "HEAD:refs/heads/probe"])
        .output()
        .expect("git runs");
    assert!(!probe.status.success(), "the job token cannot push");

    let mut job_env: Vec<(&str, &str)> = vec![
        ("CI", "true"),
        ("GITLAB_CI", "true"),
        ("CI_PIPELINE_SOURCE", "schedule"),
        ("CI_SERVER_HOST", host),
        ("CI_PROJECT_PATH", project),
        ("ORCH_PUSH_TOKEN", token),
        ("OPENAI_API_KEY", SECRET),
    ];
    for (k, v) in variables {
        job_env.push((k.as_str(), v.as_str().expect("string variable")));
    }
    b.run(&dir, &steps, &job_env);
    b.assert_ticked(SECRET);
    b.assert_identity(&dir);
    assert_eq!(
        b.git_in(&dir, &["config", "remote.origin.pushurl"]).trim(),
        push_url,
        "pushes went through the push URL the job set"
    );
}

/// `key=value` lines of a systemd unit, by section, `%h` replaced.
fn unit(rel: &str, home: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in read(rel).lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(!line.ends_with('\\'), "{rel}: continued line {line:?}");
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{rel}: {line:?}"));
        out.push((section.clone(), k.to_string(), v.replace("%h", home)));
    }
    out
}

fn value<'a>(unit: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    let mut found = unit
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str());
    let v = found
        .next()
        .unwrap_or_else(|| panic!("no [{section}] {key}="));
    assert!(found.next().is_none(), "[{section}] {key}= twice");
    v
}

/// A systemd time span of one number and unit (`30s`, `2min`).
fn span(text: &str) -> Duration {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..split].parse().expect("a number");
    match &text[split..] {
        "" | "s" | "sec" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        other => panic!("unit {other:?} of {text:?}"),
    }
}

#[test]
fn the_systemd_timer_ticks_the_checkout_and_stop_lets_orch_settle() {
    let b = Board::new();
    let home = b.env.home.to_str().expect("utf-8").to_string();
    let service = unit("systemd/orch-tick.service", &home);
    let timer = unit("systemd/orch-tick.timer", &home);
    assert_eq!(value(&service, "Service", "Type"), "oneshot");
    // SIGTERM to orch alone, and time for it to stop its agents and push.
    assert_eq!(value(&service, "Service", "KillMode"), "mixed");
    let defaults = orch::config::Config::defaults();
    let stop = span(value(&service, "Service", "TimeoutStopSec"));
    assert!(
        stop > defaults.kill_grace + defaults.remote_timeout,
        "TimeoutStopSec {stop:?} leaves orch no time to settle"
    );
    assert_eq!(value(&timer, "Timer", "OnCalendar"), "*:0/5");
    assert_eq!(value(&timer, "Timer", "Persistent"), "true");
    let delay = span(value(&timer, "Timer", "RandomizedDelaySec"));
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(60));
    assert_eq!(value(&timer, "Install", "WantedBy"), "timers.target");
    assert!(
        !timer.iter().any(|(_, k, _)| k == "Unit"),
        "the timer starts the service of its own name"
    );

    // The host as examples/README.md sets it up: orch in ~/.cargo/bin, the
    // agent's key in ~/.config/orch/env, a plain clone of the repository.
    let bin = b.env.home.join(".cargo/bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin!("orch"), bin.join("orch"))
        .expect("symlink orch");
    let env_file = value(&service, "Service", "EnvironmentFile");
    let env_file = PathBuf::from(env_file.strip_prefix('-').unwrap_or(env_file));
    std::fs::create_dir_all(env_file.parent().expect("parent")).expect("dir");
    std::fs::write(&env_file, format!("OPENAI_API_KEY={SECRET}\n")).expect("env file");
    let dir = PathBuf::from(value(&service, "Service", "WorkingDirectory"));
    assert!(dir.starts_with(&b.env.home), "{}", dir.display());
    std::fs::create_dir_all(dir.parent().expect("parent")).expect("dir");
    b.git_in(
        b.env.dir.path(),
        &["clone", "-q", &b.url, dir.to_str().expect("utf-8")],
    );

    // ExecStart is no shell command line: an absolute program and words.
    let exec = value(&service, "Service", "ExecStart");
    assert!(
        !exec.contains(['"', '\'', '$', ';', '|']),
        "ExecStart the test cannot split: {exec}"
    );
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(Path::new(argv[0]).is_absolute(), "{exec}");
    let mut cmd = b.command(argv[0], &dir);
    cmd.args(&argv[1..]);
    for (_, k, v) in service.iter().filter(|(s, _, _)| s == "Service") {
        match k.as_str() {
            "Environment" => {
                let (name, val) = v.split_once('=').expect("NAME=value");
                // The unit's PATH, then the test's for git where it lives.
                let val = if name == "PATH" {
                    path_with(val)
                } else {
                    val.to_string()
                };
                cmd.env(name, val);
            }
            "EnvironmentFile" => {
                let text = std::fs::read_to_string(&env_file).expect("env file");
                for line in text.lines().filter(|l| !l.starts_with('#')) {
                    if let Some((name, val)) = line.split_once('=') {
                        cmd.env(name, val);
                    }
                }
            }
            "Type" | "WorkingDirectory" | "ExecStart" | "KillMode" | "TimeoutStopSec" | "Nice" => {}
            other => panic!("[Service] {other}= is not modelled by the test"),
        }
    }
    let out = cmd.output().expect("ExecStart runs");
    assert!(
        out.status.success(),
        "{exec}: {}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    b.assert_ticked(SECRET);
}

/// The cron line in the README, as its schedule's command.
fn readme_cron_command() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let block = readme
        .split("```cron\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a ```cron block in README.md");
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines.len(), 1, "one cron line: {lines:?}");
    // Five schedule fields, then the command as cron hands it to sh.
    let mut rest = lines[0];
    for _ in 0..5 {
        let field_end = rest.find(char::is_whitespace).expect("a schedule field");
        rest = rest[field_end..].trim_start();
    }
    rest.to_string()
}

/// cron runs a line with `sh -c`, `HOME`, `LOGNAME`, `SHELL=/bin/sh` and
/// `PATH=/usr/bin:/bin`, nothing else (crontab(5)). The README's line, its
/// repository put where `/srv/your-repo` stands, must tick there, with
/// orch where `cargo install` puts it and the agent named by its path.
#[test]
fn the_readme_cron_line_ticks_under_cron_s_environment() {
    let command = readme_cron_command();
    assert!(command.contains("/srv/your-repo"), "{command}");
    let env = TestEnv::new();
    let repo = env.repo.to_str().expect("utf-8");
    assert!(
        !repo.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)),
        "a repository path sh takes as it is: {repo}"
    );
    let command = command.replace("/srv/your-repo", repo);
    env.ready("echo cron > cron.txt", "");
    let agent = env.dir.path().join("agent.sh");
    env.configure(&agent, &format!("agent: {}", agent.display()));
    env.write_ticket("todo", "cron", "---\ntitle: From cron\n---\n");
    // The host: orch installed by cargo, a git identity of its own.
    let bin = env.home.join(".cargo/bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin!("orch"), bin.join("orch"))
        .expect("symlink orch");
    std::fs::write(
        env.home.join(".gitconfig"),
        "[user]\n\tname = Cron Host\n\temail = cron@example.com\n",
    )
    .expect("gitconfig");

    let out = StdCommand::new("env")
        .arg("-i")
        .arg(format!("HOME={}", env.home.display()))
        .args(["LOGNAME=orch-test", "SHELL=/bin/sh", "PATH=/usr/bin:/bin"])
        .args(["/bin/sh", "-c", &command])
        .current_dir(&env.home)
        .output()
        .expect("env runs");
    assert!(
        out.status.success(),
        "{command}: {}\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("cron: success"), "{}", stdout(&out));
    assert_eq!(env.state_of("cron"), "done");
    let who = env.git(&["log", "-1", "--format=%an <%ae>", "orch/plan"]);
    assert_eq!(who.trim(), "Cron Host <cron@example.com>");
}
