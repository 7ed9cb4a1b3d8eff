//! `orch doctor`: each problem planted on a real board, and what it says.

use std::process::Command as StdCommand;

use assert_cmd::Command;
use predicates::str::contains;

use crate::env::{TestEnv, stdout};

/// `orch` run as on a kernel without Landlock (see the fixture).
fn orch_without_landlock(env: &TestEnv) -> Command {
    let wrapper =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin/no-landlock");
    let mut std = StdCommand::new(wrapper);
    std.arg(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut std);
    std.current_dir(&env.repo);
    Command::from_std(std)
}

#[test]
fn a_healthy_board_needs_nobody() {
    let env = TestEnv::new();
    env.init();
    env.orch()
        .arg("doctor")
        .assert()
        .success()
        .stdout(contains("nothing needs you"));
    let out = env.orch().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
    assert_eq!(v["findings"].as_array().map(|a| a.len()), Some(0), "{v}");
}

#[test]
fn no_board_is_a_problem_with_the_fix() {
    let env = TestEnv::new();
    env.orch()
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(contains("no branch orch/plan"))
        .stdout(contains("orch init"));
}

/// Without Landlock, doctor says so and the first tick says so once; the
/// agent still runs, unsandboxed, and can write outside its worktree.
#[test]
fn a_kernel_without_landlock_is_named_by_doctor_and_the_first_tick() {
    let env = TestEnv::new();
    let outside = env.dir.path().join("outside.txt");
    env.ready(
        &format!("echo x > '{}'\necho work > work.txt", outside.display()),
        "",
    );
    orch_without_landlock(&env)
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(contains("does not offer Landlock"));
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    let first = orch_without_landlock(&env).arg("tick").output().unwrap();
    assert!(first.status.success(), "{first:?}");
    let said = format!(
        "{}{}",
        stdout(&first),
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(said.contains("does not offer Landlock"), "{said}");
    assert!(said.contains("a: success (attempt 1)"), "{said}");
    assert!(outside.exists(), "unsandboxed, the agent wrote outside");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let second = orch_without_landlock(&env).arg("tick").output().unwrap();
    let said = format!(
        "{}{}",
        stdout(&second),
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(said.contains("b: success (attempt 1)"), "{said}");
    assert!(!said.contains("Landlock"), "said once only: {said}");
    // With Landlock, the same agent's write outside is refused.
    std::fs::remove_file(&outside).unwrap();
    env.write_ticket("todo", "c", "---\ntitle: C\n---\n");
    env.tick_ok();
    assert!(!outside.exists(), "sandboxed, the write was refused");
}

/// A deleted orch/plan, a rewound one, and the version kept aside: each is
/// a problem that names its fix, and the board is healthy once it is done.
#[test]
fn a_moved_plan_branch_and_kept_versions_are_named() {
    let env = TestEnv::new();
    env.init();
    env.orch().args(["new", "One"]).assert().success();
    env.orch().args(["new", "Two"]).assert().success();
    let tip = env.git(&["rev-parse", "orch/plan"]);
    env.git(&["update-ref", "-d", "refs/heads/orch/plan"]);
    env.orch()
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(contains("orch/plan was deleted"))
        .stdout(contains("restores orch/plan"));
    env.git(&["update-ref", "refs/heads/orch/plan", tip.trim()]);
    env.git(&["update-ref", "refs/heads/orch/plan", "orch/plan~2"]);
    env.orch()
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(contains("whose history lacks"));
    // The next board change restores it and keeps the rewound version.
    env.orch().arg("status").assert().success();
    env.orch().args(["new", "Three"]).assert().success();
    let out = env.orch().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("[kept-board] refs/orch/kept/plan/"), "{text}");
    let kept = env.git(&["for-each-ref", "--format=%(refname)", "refs/orch/kept/plan"]);
    env.git(&["update-ref", "-d", kept.trim()]);
    env.orch().arg("doctor").assert().success();
}

#[test]
fn a_plan_worktree_off_its_branch_is_a_problem() {
    let env = TestEnv::new();
    env.init();
    env.git_in(&env.plan(), &["checkout", "-q", "--detach"]);
    env.orch()
        .arg("doctor")
        .assert()
        .code(1)
        .stdout(contains("not on orch/plan"))
        .stdout(contains("git -C .orch/plan checkout orch/plan"));
}
