//! The tick's heartbeat: every tick records when it ran and how it ended,
//! and `orch status` shows it and warns when ticks stop or keep failing.

use std::path::{Path, PathBuf};

use crate::env::{TestEnv, stdout};

fn heartbeat_file(repo: &Path) -> PathBuf {
    repo.join(".git/orch/heartbeat.json")
}

/// Move every recorded tick of `repo` back to `at`, as if no tick had
/// run since.
fn age_heartbeat(repo: &Path, at: &str) {
    let path = heartbeat_file(repo);
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("heartbeat")).expect("JSON");
    for t in json["ticks"].as_array_mut().expect("ticks") {
        t["at"] = at.into();
    }
    std::fs::write(&path, json.to_string()).expect("write heartbeat");
}

#[test]
fn an_idle_tick_records_itself_without_a_board_commit() {
    let env = TestEnv::new();
    env.ready("true", "");
    let status = env.status();
    assert!(status["ticks"]["last"].is_null(), "{status}");
    env.tick_ok();
    let commits = env.plan_log().len();
    env.tick_ok();
    assert_eq!(
        env.plan_log().len(),
        commits,
        "an idle tick commits nothing"
    );
    let status = env.status();
    let last = &status["ticks"]["last"];
    assert_eq!(last["result"], "ok", "{status}");
    assert_eq!(last["code"], 0);
    assert_eq!(last["host"], "test-host");
    assert_eq!(last["summary"], "nothing to do");
    assert_eq!(status["ticks"]["recent"].as_array().map(Vec::len), Some(2));
    assert!(
        status["ticks"]["warnings"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    // Out of the checkout: the user's clean-up cannot remove it.
    env.git(&["clean", "-fdxq"]);
    assert!(heartbeat_file(&env.repo).exists());
    let text = stdout(&env.orch().arg("status").output().expect("status"));
    assert!(text.contains("last tick  "), "{text}");
    assert!(text.contains("on test-host: ok: nothing to do"), "{text}");
}

#[test]
fn a_tick_that_exits_2_is_recorded_and_status_warns() {
    let env = TestEnv::new();
    env.ready("true", "base: renamed-away");
    env.write_ticket("todo", "T1", "---\ntitle: Anything\n---\nDo it.\n");
    for _ in 0..3 {
        assert_eq!(env.tick().status.code(), Some(2));
    }
    let status = env.status();
    let last = &status["ticks"]["last"];
    assert_eq!(last["result"], "failed", "{status}");
    assert_eq!(last["code"], 2);
    assert!(
        last["summary"]
            .as_str()
            .is_some_and(|s| s.contains("the base `renamed-away`")),
        "{status}"
    );
    let warning = status["ticks"]["warnings"][0].as_str().unwrap_or("");
    assert!(
        warning.starts_with("the last 3 ticks on test-host failed (exit 2): the base"),
        "{status}"
    );
    // A warning, not an error: status itself still exits 0.
    let out = env.orch().arg("status").output().expect("status");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("warning: the last 3 ticks on test-host failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn status_warns_when_no_tick_ran_for_longer_than_expect_tick_every() {
    let env = TestEnv::new();
    env.ready("true", "expect_tick_every: 1m");
    let status = env.status();
    assert!(
        status["ticks"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("no tick has been recorded")),
        "{status}"
    );
    env.tick_ok();
    let status = env.status();
    assert!(
        status["ticks"]["warnings"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{status}"
    );
    assert_eq!(status["ticks"]["expect_every_secs"], 60);
    age_heartbeat(&env.repo, "2020-01-01T00:00:00Z");
    let status = env.status();
    let warning = status["ticks"]["warnings"][0].as_str().unwrap_or("");
    assert!(warning.starts_with("no tick for "), "{status}");
    assert!(warning.contains("expect_tick_every is 1m"), "{status}");
    // Without expect_tick_every an old tick is shown, not warned about.
    env.configure(&env.agent("agent", "true"), "");
    let status = env.status();
    assert!(
        status["ticks"]["warnings"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{status}"
    );
}

#[test]
fn with_a_remote_board_a_second_host_sees_the_first_hosts_tick() {
    let env = TestEnv::new();
    let bare = env.dir.path().join("remote.git");
    env.git_in(
        env.dir.path(),
        &["init", "-q", "--bare", "-b", "main", "remote.git"],
    );
    let url = format!("file://{}", bare.display());
    env.git(&["remote", "add", "origin", &url]);
    env.git(&["push", "-q", "origin", "main"]);
    env.ready("true", "remote: origin\nremote_timeout: 10s");
    env.init();
    let remote_plan = || env.git_in(&bare, &["rev-parse", "orch/plan"]);
    let before = remote_plan();
    let out = env
        .orch()
        .arg("tick")
        .env("ORCH_HOST", "host-a")
        .output()
        .expect("tick");
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(remote_plan(), before, "an idle tick adds no board commit");
    let refs = env.git_in(
        &bare,
        &["for-each-ref", "--format=%(refname)", "refs/orch/"],
    );
    assert!(refs.contains("refs/orch/heartbeat/host-a"), "{refs}");

    let clone = env.dir.path().join("host-b");
    env.git_in(
        env.dir.path(),
        &["clone", "-q", &url, clone.to_str().expect("utf-8")],
    );
    let orch_b = |args: &[&str]| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
        env.apply_env(&mut cmd);
        cmd.current_dir(&clone)
            .env("ORCH_HOST", "host-b")
            .args(args)
            .output()
            .expect("orch runs")
    };
    let out = orch_b(&["tick"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let out = orch_b(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    let hosts = status["ticks"]["hosts"].as_array().expect("hosts");
    assert!(
        hosts
            .iter()
            .any(|h| h["host"] == "host-a" && h["result"] == "ok"),
        "{status}"
    );
    assert_eq!(status["ticks"]["recent"][0]["host"], "host-b");
}
