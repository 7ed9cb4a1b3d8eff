//! Small things a new user tripped on at the command line: a global flag
//! that took a command's own, counts and ids that were not checked, and a
//! flag listed where it does nothing.

use predicates::prelude::*;

use crate::env::{TestEnv, stderr, stdout};

/// Seen: the global `-C` was also `--dir`, so `orch demo --dir y` made
/// the sandbox at `y/y`.
#[test]
fn demo_dir_is_demos_own_not_the_global_directory() {
    let env = TestEnv::new();
    let top = env.dir.path();
    // Both `y` and `y/y` are taken: where the demo looks shows in the
    // refusal, and no demo runs.
    std::fs::create_dir_all(top.join("y/y")).unwrap();
    std::fs::write(top.join("y/y/taken"), "").unwrap();
    let out = env
        .orch()
        .current_dir(top)
        .args(["demo", "--dir", "y"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} exists and is not empty",
            top.join("y").display()
        )),
        "{err}"
    );
    assert!(!err.contains("y/y"), "{err}");
    // The global flag is `-C` or `--directory`.
    env.init();
    env.orch()
        .current_dir(top)
        .args(["--directory", env.repo.to_str().unwrap(), "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("board  todo 0"));
}

/// Seen: `history -n 0` printed one entry, and `history <typo>` exited 0
/// with nothing.
#[test]
fn history_takes_its_limit_and_its_id_at_their_word() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0003-flaky-change", "---\ntitle: F\n---\n");
    env.orch().args(["new", "Second"]).assert().success();
    env.orch()
        .args(["history", "-n", "0"])
        .assert()
        .success()
        .stdout("");
    let out = env
        .orch()
        .args(["history", "-n", "0", "--json"])
        .output()
        .unwrap();
    assert_eq!(stdout(&out).trim(), "[]");
    env.orch()
        .args(["history", "0003-flaky-chnage"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("there is no ticket `0003-flaky-chnage`").and(
                predicate::str::contains("did you mean `0003-flaky-change`?"),
            ),
        );
    // A ticket with no commit of its own yet is no error.
    env.orch()
        .args(["history", "0003-flaky-change"])
        .assert()
        .success();
}

/// Seen: `log -a 9` exited 1 with a raw OS error.
#[test]
fn log_of_an_attempt_that_never_was_says_which_there_are() {
    let env = TestEnv::new();
    env.ready("echo trying\nexit 1", "max_attempts: 5");
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    env.tick_ok();
    env.tick_ok();
    env.orch()
        .args(["log", "t", "-a", "2"])
        .assert()
        .success()
        .stdout(predicate::str::contains("trying"));
    env.orch()
        .args(["log", "t", "-a", "9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "ticket t has attempts 1..2; no attempt 9",
        ));
}

/// Seen: `--lock-timeout` was listed on commands that never lock.
#[test]
fn lock_timeout_is_a_flag_of_the_commands_that_lock() {
    let env = TestEnv::new();
    env.init();
    for read_only in ["status", "show", "history", "log", "submit"] {
        let help = stdout(&env.orch().args([read_only, "--help"]).output().unwrap());
        assert!(!help.contains("--lock-timeout"), "{read_only}: {help}");
    }
    env.orch()
        .args(["status", "--lock-timeout", "1s"])
        .assert()
        .code(2);
    // doctor locks only for --fix, which makes a tick's repairs.
    for locking in [
        "init", "new", "tick", "abort", "demo", "retry", "edit", "rm", "doctor",
    ] {
        let help = stdout(&env.orch().args([locking, "--help"]).output().unwrap());
        assert!(help.contains("--lock-timeout"), "{locking}: {help}");
    }
    env.orch()
        .args(["new", "After the command", "--lock-timeout", "1s"])
        .assert()
        .success();
    // The form of earlier releases, before the command, still works.
    env.orch()
        .args(["--lock-timeout", "1s", "new", "Before the command"])
        .assert()
        .success();
}
