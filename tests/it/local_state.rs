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

/// Seen in chaos: an orch killed while moving a ticket branch left
/// `refs/heads/orch/<id>.lock`; every later attempt failed to prepare the
/// worktree, the ticket ended blocked for orch's reason, and the agent's
/// commit never reached its branch. A lock no live process holds is
/// removed; one a live process holds is left alone.
#[test]
fn a_stale_lock_on_a_ticket_branch_is_removed_and_a_held_one_is_not() {
    let env = TestEnv::new();
    env.ready(
        "if [ \"$ORCH_ATTEMPT\" = 1 ]; then exit 1; fi\necho work > \"work-$ORCH_ATTEMPT.txt\"",
        "max_attempts: 5",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("t: failed (attempt 1)"), "{out}");
    let lock = env.repo.join(".git/refs/heads/orch/t.lock");
    // Held open by a live process: never removed, the attempt waits.
    let holder = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec sleep 30 3>{}", lock.display()))
        .spawn()
        .unwrap();
    while !lock.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut holder = holder;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let out = env.tick_ok();
    assert!(lock.exists(), "a held lock is left alone: {out}");
    assert!(!out.contains("success"), "{out}");
    holder.kill().unwrap();
    holder.wait().unwrap();
    // Left by a dead process: removed, and the attempt runs.
    let out = env.tick_ok();
    assert!(!lock.exists(), "{out}");
    assert!(out.contains("t: success (attempt 3)"), "{out}");
    assert_eq!(env.git(&["show", "orch/t:work-3.txt"]), "work\n");
}
