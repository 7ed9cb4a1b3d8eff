//! orch's local state (locks, run state, logs) survives what people do to
//! their checkout, and a live run is never taken for dead.

use crate::env::{TestEnv, stdout, wait_for};

/// The agent says it started, then waits to be let go.
fn waiting_agent(env: &TestEnv) {
    let started = env.flag("started");
    let go = env.flag("go");
    env.ready(
        &format!(
            "echo $ORCH_ATTEMPT >> {started}\nwhile [ ! -e {go} ]; do sleep 0.02; done\necho work > work.txt",
            started = started.display(),
            go = go.display()
        ),
        "",
    );
}

/// Seen with the first release: `git clean -fdx` deleted `.orch/lock`,
/// `.orch/state` and `.orch/logs` under a live run; the next tick took the
/// new run lock, killed the live agent as abandoned and ran the ticket
/// again.
#[test]
fn git_clean_in_the_checkout_during_a_run_changes_nothing() {
    let env = TestEnv::new();
    waiting_agent(&env);
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let first = env.spawn_tick();
    wait_for(&env.flag("started"));
    env.git(&["clean", "-fdxq"]);
    let second = env.tick_ok();
    assert!(!second.contains("abandoned"), "{second}");
    assert!(!second.contains("t: claimed"), "{second}");
    std::fs::write(env.flag("go"), "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("t: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    let started = std::fs::read_to_string(env.flag("started")).unwrap();
    assert_eq!(started, "1\n", "the ticket ran once");
    assert!(
        env.repo.join(".git/orch/logs/t/1.log").exists(),
        "the log is kept"
    );
}

/// Even the run lock itself deleted (by a person, or an older orch's
/// clean-up): the supervisor's live process is the proof of a live run.
#[test]
fn a_live_run_whose_lock_file_was_deleted_is_left_alone() {
    let env = TestEnv::new();
    waiting_agent(&env);
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let first = env.spawn_tick();
    wait_for(&env.flag("started"));
    std::fs::remove_dir_all(env.repo.join(".git/orch/state")).unwrap();
    let second = env.tick_ok();
    assert!(!second.contains("abandoned"), "{second}");
    std::fs::write(env.flag("go"), "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("t: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(std::fs::read_to_string(env.flag("started")).unwrap(), "1\n");
}

/// A board lock held by an older orch (at `.orch/lock`) keeps this one
/// out too.
#[test]
fn the_lock_an_older_orch_holds_is_respected() {
    let env = TestEnv::new();
    env.init();
    let legacy = env.repo.join(".orch/lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&legacy)
        .unwrap();
    file.lock().unwrap();
    env.orch()
        .args(["--lock-timeout", "50ms", "new", "Blocked"])
        .assert()
        .code(75);
    drop(file);
    env.orch().args(["new", "Free"]).assert().success();
}
