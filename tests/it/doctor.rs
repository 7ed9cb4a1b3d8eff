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
    env.ready("exit 0", "");
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
    env.ready("exit 0", "");
    env.orch()
        .args(["new", "One", "--body", "Do it."])
        .assert()
        .success();
    env.orch()
        .args(["new", "Two", "--body", "Do it."])
        .assert()
        .success();
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
    env.orch()
        .args(["new", "Three", "--body", "Do it."])
        .assert()
        .success();
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

/// An agent program no PATH has: no ticket would run. One this PATH has
/// but cron's does not: a note with the crontab line.
#[test]
fn an_agent_program_nowhere_on_path_is_a_problem_and_one_cron_misses_a_note() {
    let env = TestEnv::new();
    env.init();
    let name = "orch-test-agent-nowhere";
    env.configure(std::path::Path::new(name), "");
    let out = env.orch().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "[agent] the agent program `{name}` is not found on PATH"
        )),
        "{}",
        stdout(&out)
    );
    let bin = env.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let program = bin.join(name);
    std::fs::write(&program, "#!/bin/sh\nexit 0\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = env
        .orch()
        .arg("doctor")
        .env("PATH", &path)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "a note only: {text}");
    assert!(
        text.contains("which cron's PATH (/usr/bin:/bin) does not reach"),
        "{text}"
    );
    assert!(
        text.contains(&format!("PATH={}:/usr/bin:/bin", bin.display())),
        "{text}"
    );
}

/// The case: orch.yaml's base branch renamed away, so every tick
/// exits 2 while the queue looks healthy.
#[test]
fn a_missing_base_branch_and_an_unreachable_remote_are_problems() {
    let env = TestEnv::new();
    env.ready("exit 0", "");
    env.git(&["branch", "-m", "main", "trunk"]);
    let out = env.orch().arg("doctor").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[branches] the base branch `main` that orch.yaml names does not exist"),
        "{text}"
    );
    env.git(&["branch", "-m", "trunk", "main"]);
    env.git(&[
        "remote",
        "add",
        "origin",
        &format!("file://{}/nowhere.git", env.dir.path().display()),
    ]);
    let config = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    std::fs::write(
        env.plan().join("orch.yaml"),
        format!("{config}remote: origin\nremote_timeout: 5s\n"),
    )
    .unwrap();
    let out = env.orch().arg("doctor").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[remote] the board's remote `origin` does not answer"),
        "{text}"
    );
    assert!(!text.contains("[branches]"), "{text}");
}

/// A run killed with its orch leaves a claim nobody holds: doctor names
/// it, and --fix settles it as the next tick would, saying so.
#[test]
fn a_claim_no_run_holds_is_named_and_fix_settles_it_as_a_tick_would() {
    let env = TestEnv::new();
    let flags = env.flags_dir();
    env.ready(
        &format!("touch '{f}/started'; sleep 60", f = flags.display()),
        "kill_grace: 100ms\n",
    );
    env.write_ticket("todo", "k", "---\ntitle: K\n---\nDo it.\n");
    let mut tick = env.spawn_tick();
    crate::env::wait_for(&flags.join("started"));
    // orch and its agent die at once, as in a power cut.
    for pid in env.agent_processes() {
        let _ = StdCommand::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    let _ = tick.kill();
    let _ = tick.wait();
    assert_eq!(env.state_of("k"), "in-progress");
    let out = env.orch().arg("doctor").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[claims] k is in progress (attempt 1"),
        "{text}"
    );
    let out = env.orch().args(["doctor", "--fix"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("k:"), "the repair is said: {text}");
    assert!(!text.contains("[claims]"), "{text}");
    assert_ne!(env.state_of("k"), "in-progress");
    let out = env.orch().args(["doctor", "--fix"]).output().unwrap();
    assert!(
        stdout(&out).contains("nothing to repair"),
        "{}",
        stdout(&out)
    );
}

/// Git's lock files outlive a killed git: doctor names one that is old
/// and that no process holds, and leaves alone one just made or one a
/// live process has open.
#[test]
fn a_git_lock_left_by_a_killed_process_is_named_and_a_live_one_is_not() {
    let env = TestEnv::new();
    env.ready("exit 0", "");
    let git = env.repo.join(".git");
    let stale = [
        git.join("index.lock"),
        git.join("refs/heads/orch/gone.lock"),
    ];
    let held = git.join("packed-refs.lock");
    let fresh = git.join("HEAD.lock");
    for lock in stale.iter().chain([&held, &fresh]) {
        std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
        std::fs::write(lock, "").unwrap();
    }
    for lock in stale.iter().chain([&held]) {
        let ok = StdCommand::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(lock)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let holder = std::fs::File::open(&held).unwrap();
    let out = env.orch().arg("doctor").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("[git-lock] .git/index.lock is a git lock that no process holds, 2h"),
        "{text}"
    );
    assert!(
        text.contains(".git/refs/heads/orch/gone.lock is a git lock"),
        "{text}"
    );
    assert!(!text.contains("packed-refs.lock"), "{text}");
    assert!(!text.contains("HEAD.lock"), "{text}");
    for lock in &stale {
        std::fs::remove_file(lock).unwrap();
    }
    std::fs::remove_file(&fresh).unwrap();
    drop(holder);
    std::fs::remove_file(&held).unwrap();
    env.orch().arg("doctor").assert().success();
}

/// An invalid ticket is skipped by every tick: doctor names its file, its
/// line and the fix, and a warning alone (an unknown key) is not a problem.
#[test]
fn an_invalid_ticket_is_a_problem_with_its_line_and_a_warning_is_not() {
    let env = TestEnv::new();
    env.ready("exit 0", "");
    env.write_ticket(
        "todo",
        "odd",
        "---\ntitle: Odd\nflavour: sweet\n---\nDo it.\n",
    );
    env.orch().arg("doctor").assert().success();
    env.write_ticket(
        "todo",
        "bad",
        "---\ntitle: Bad\ndepends-on: [odd]\n---\nDo it.\n",
    );
    let out = env.orch().arg("doctor").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[tickets] tickets/todo/bad.md:3:"), "{text}");
    assert!(text.contains("depends_on"), "{text}");
    assert!(!text.contains("odd.md"), "{text}");
}
