//! The board: init, new, status, show, history, validation, adoption, locks.

use std::fs::OpenOptions;

use predicates::prelude::*;

use crate::env::{TestEnv, stderr, stdout};

#[test]
fn init_creates_the_plan_branch_and_worktree_without_touching_the_checkout() {
    let env = TestEnv::new();
    let head_before = env.git(&["rev-parse", "HEAD"]);
    std::fs::write(env.repo.join("README.md"), "# edited, not staged\n").unwrap();
    env.orch()
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "created branch orch/plan (base: main)",
        ));
    for dir in ["todo", "in-progress", "done", "blocked"] {
        assert!(env.plan().join("tickets").join(dir).is_dir(), "{dir}");
    }
    let yaml = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    assert!(yaml.contains("\nbase: main\n"));
    assert!(
        yaml.contains("# Hard limit"),
        "the template's comments are kept"
    );
    // The user's checkout: same HEAD, the same unstaged edit, nothing staged.
    assert_eq!(env.git(&["rev-parse", "HEAD"]), head_before);
    assert_eq!(env.git(&["status", "--porcelain"]), " M README.md\n");
    let exclude = std::fs::read_to_string(env.repo.join(".git/info/exclude")).unwrap();
    assert!(exclude.contains("/.orch/"));
    // orch/plan is an orphan: it shares no history with main.
    assert_eq!(env.git(&["rev-list", "--count", "orch/plan"]).trim(), "1");
    let log = env.git(&["log", "-1", "--format=%B", "orch/plan"]);
    assert!(log.contains("Orch-Base: main"), "{log}");
}

#[test]
fn init_again_reports_and_repairs() {
    let env = TestEnv::new();
    env.init();
    env.orch()
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("branch orch/plan exists"))
        .stdout(predicate::str::contains("plan worktree exists"));
    assert_eq!(env.plan_log().len(), 1, "a second init commits nothing");

    std::fs::remove_dir_all(env.plan()).unwrap();
    env.orch()
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains("checked out orch/plan"));
    assert!(env.plan().join("orch.yaml").exists());
}

#[test]
fn init_in_a_fresh_clone_checks_out_the_remote_plan() {
    let env = TestEnv::new();
    env.init();
    env.orch().args(["new", "Carried over"]).assert().success();
    let clone = env.clone_repo("clone");
    let mut cmd = env.orch();
    cmd.current_dir(&clone)
        .arg("init")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "joined the board on origin (created orch/plan from refs/remotes/origin/orch/plan)",
        ));
    assert!(
        clone
            .join(".orch/plan/tickets/todo/0001-carried-over.md")
            .exists()
    );
}

#[test]
fn init_refuses_places_it_cannot_work() {
    let env = TestEnv::new();
    let outside = env.dir.path().join("not-a-repo");
    std::fs::create_dir_all(&outside).unwrap();
    env.orch()
        .current_dir(&outside)
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not inside a git repository"))
        .stderr(predicate::str::contains("hint:"));

    let bare = env.dir.path().join("bare.git");
    env.git_in(
        env.dir.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    env.orch()
        .current_dir(&bare)
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bare"));

    let empty = env.dir.path().join("empty");
    env.git_in(env.dir.path(), &["init", "-q", empty.to_str().unwrap()]);
    env.orch()
        .current_dir(&empty)
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("has no commits yet"))
        .stderr(predicate::str::contains("git commit --allow-empty"));
}

#[test]
fn commands_before_init_say_to_run_init() {
    let env = TestEnv::new();
    env.orch()
        .args(["new", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("run `orch init`"));
}

#[test]
fn new_writes_numbered_tickets_and_commits_them() {
    let env = TestEnv::new();
    env.init();
    let out = env
        .orch()
        .args([
            "new",
            "Retry failed uploads!",
            "--priority",
            "1",
            "--body",
            "Retry on 5xx.",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("0001-retry-failed-uploads\n"));
    env.orch()
        .args(["new", "Use it", "--depends-on", "0001-retry-failed-uploads"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("0002-use-it\n"));
    let text =
        std::fs::read_to_string(env.ticket_path("todo", "0001-retry-failed-uploads")).unwrap();
    assert_eq!(
        text,
        "---\ntitle: \"Retry failed uploads!\"\npriority: 1\n---\nRetry on 5xx.\n"
    );
    let text = std::fs::read_to_string(env.ticket_path("todo", "0002-use-it")).unwrap();
    assert!(text.contains("depends_on: [0001-retry-failed-uploads]"));
    assert_eq!(env.plan_dirt(), "");
    let body = env.git(&["log", "-1", "--format=%B", "orch/plan"]);
    assert!(body.contains("Orch-Ticket: 0002-use-it"), "{body}");
    assert!(body.contains("Orch-Host: test-host"), "{body}");

    env.orch()
        .args(["new", "x", "--depends-on", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--depends-on nope: there is no such ticket",
        ));
}

#[test]
fn ten_concurrent_new_make_ten_distinct_tickets() {
    let env = TestEnv::new();
    env.init();
    let children: Vec<_> = (0..10)
        .map(|i| {
            let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
            env.apply_env(&mut cmd);
            cmd.current_dir(&env.repo)
                .args(["new", &format!("Parallel {i}")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut ids = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        ids.push(stdout(&out).lines().next().unwrap().to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "{ids:?}");
    let numbers: std::collections::BTreeSet<String> =
        ids.iter().map(|i| i[..4].to_string()).collect();
    assert_eq!(numbers.len(), 10, "numbers collide: {ids:?}");
    let status = env.status();
    assert_eq!(status["counts"]["todo"], 10);
    assert_eq!(env.plan_log().len(), 11);
    assert_eq!(env.plan_dirt(), "");
}

#[test]
fn status_orders_the_ready_queue_and_shows_waiting_tickets() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "b", "---\ntitle: B\npriority: 1\n---\n");
    env.write_ticket("todo", "a", "---\ntitle: A\npriority: 1\n---\n");
    env.write_ticket("todo", "c", "---\ntitle: C\npriority: 0\n---\n");
    env.write_ticket("todo", "d", "---\ntitle: D\ndepends_on: [e]\n---\n");
    env.write_ticket("todo", "f", "---\ntitle: F\ndepends_on: [g]\n---\n");
    env.write_ticket("blocked", "e", "---\ntitle: E\n---\n");
    env.write_ticket("done", "g", "---\ntitle: G\n---\n");
    let status = env.status();
    assert_eq!(env.ids(&status, "ready"), ["c", "a", "b", "f"]);
    assert_eq!(env.ids(&status, "waiting"), ["d"]);
    assert_eq!(status["waiting"][0]["waiting_on"], serde_json::json!(["e"]));
    assert_eq!(env.ids(&status, "blocked"), ["e"]);
    assert_eq!(status["counts"]["todo"], 5);
    assert_eq!(status["counts"]["done"], 1);
    assert_eq!(status["version"], 1);

    let text = env.orch().arg("status").output().unwrap();
    let text = stdout(&text);
    assert!(!text.contains('\x1b'), "no colour without a terminal");
    let c = text.find("  1. c").expect("c first");
    let a = text.find("  2. a").expect("a second");
    assert!(c < a, "{text}");
    assert!(text.contains("waits on e"), "{text}");
}

/// Each kind of bad ticket is named with path, line and hint, and hurts
/// nothing else: the good ticket stays ready.
#[test]
fn bad_tickets_are_named_and_skipped() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "good", "---\ntitle: Good\n---\nfine\n");
    env.write_ticket("todo", "yaml", "---\ntitle: ok\npriority: [1\n---\n");
    env.write_ticket("todo", "notitle", "---\npriority: 2\n---\nbody\n");
    env.write_ticket("todo", "unknown", "---\ntitle: U\nowner: me\n---\n");
    env.write_ticket("todo", "-dash", "---\ntitle: D\n---\n");
    env.write_ticket("todo", "twice", "---\ntitle: T\n---\n");
    env.write_ticket("done", "twice", "---\ntitle: T\n---\n");
    env.write_ticket(
        "todo",
        "orphan",
        "---\ntitle: O\ndepends_on: [ghost]\n---\n",
    );
    env.write_ticket("todo", "x", "---\ntitle: X\ndepends_on: [y]\n---\n");
    env.write_ticket("todo", "y", "---\ntitle: Y\ndepends_on: [x]\n---\n");
    env.write_ticket("todo", "open", "---\ntitle: never closes\n");
    std::fs::write(
        env.ticket_path("todo", "binary"),
        b"---\ntitle: \xff\xfe\n---\n",
    )
    .unwrap();

    let status = env.status();
    assert_eq!(env.ids(&status, "ready"), ["good", "unknown"]);
    let invalid: Vec<String> = status["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}: {}",
                p["path"].as_str().unwrap(),
                p["line"],
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    let has = |needle: &str| {
        assert!(
            invalid.iter().any(|l| l.contains(needle)),
            "missing {needle:?} in {invalid:#?}"
        )
    };
    has("tickets/todo/yaml.md:3: invalid front matter");
    has("tickets/todo/notitle.md:2: the ticket has no title");
    has("tickets/todo/-dash.md:null: the ticket id `-dash` must start with a letter or digit");
    has("tickets/todo/twice.md:null: the id `twice` is also used by tickets/done/twice.md");
    has("tickets/done/twice.md:null: the id `twice` is also used by tickets/todo/twice.md");
    has("tickets/todo/orphan.md:3: depends on `ghost`, which is not a ticket");
    has("dependency cycle: x -> y -> x");
    has("tickets/todo/open.md:1: the front matter never closes");
    has("tickets/todo/binary.md:2: the file is not valid UTF-8");
    for p in status["invalid"].as_array().unwrap() {
        assert!(p["hint"].is_string(), "every error has a hint: {p}");
    }
    let warnings = status["warnings"].to_string();
    assert!(
        warnings.contains("unknown key `owner` is ignored"),
        "{warnings}"
    );
    assert!(warnings.contains("\"line\":3"), "{warnings}");

    let text = stdout(&env.orch().arg("status").output().unwrap());
    assert!(
        text.contains("tickets/todo/yaml.md:3: invalid front matter"),
        "{text}"
    );
    assert!(text.contains("(hint: "), "{text}");
}

#[test]
fn hand_edits_are_adopted_in_a_commit_of_their_own() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "by-hand", "---\ntitle: By hand\n---\n");
    let yaml = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    std::fs::write(
        env.plan().join("orch.yaml"),
        yaml.replace("max_attempts: 3", "max_attempts: 5"),
    )
    .unwrap();
    env.orch().args(["new", "By orch"]).assert().success();
    let log = env.plan_log();
    assert_eq!(log[0], "orch: new 0001-by-orch");
    assert_eq!(log[1], "orch: adopt edits to 2 files");
    let adopted = env.git(&["show", "--name-only", "--format=%B", "orch/plan~1"]);
    assert!(adopted.contains("tickets/todo/by-hand.md"), "{adopted}");
    assert!(adopted.contains("orch.yaml"), "{adopted}");
    assert!(adopted.contains("Orch-Adopted: 2"), "{adopted}");
    let newest = env.git(&["show", "--name-only", "--format=", "orch/plan"]);
    assert_eq!(newest.trim(), "next-id\ntickets/todo/0001-by-orch.md");
    assert_eq!(env.plan_dirt(), "");

    // A deleted ticket is adopted as a deletion.
    std::fs::remove_file(env.ticket_path("todo", "by-hand")).unwrap();
    env.orch().args(["new", "Another"]).assert().success();
    let adopted = env.git(&["show", "--name-status", "--format=", "orch/plan~1"]);
    assert!(adopted.contains("D\ttickets/todo/by-hand.md"), "{adopted}");
}

#[test]
fn show_and_history() {
    let env = TestEnv::new();
    env.init();
    env.orch()
        .args(["new", "First", "--body", "Do the first thing."])
        .assert()
        .success();
    env.orch().args(["new", "Second"]).assert().success();

    let out = env
        .orch()
        .args(["show", "0001-first", "--json"])
        .output()
        .unwrap();
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["state"], "todo");
    assert_eq!(show["title"], "First");
    assert_eq!(show["body"], "Do the first thing.");
    assert_eq!(show["valid"], true);
    assert_eq!(show["attempts"], serde_json::json!([]));
    env.orch()
        .args(["show", "0001-first"])
        .assert()
        .success()
        .stdout(predicate::str::contains("state     todo"));
    env.orch()
        .args(["show", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("there is no ticket `nope`"));

    let out = env.orch().args(["history", "--json"]).output().unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let summaries: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            "orch: new 0002-second",
            "orch: new 0001-first",
            "orch: init board"
        ]
    );
    assert_eq!(history[0]["ticket"], "0002-second");
    assert_eq!(history[0]["host"], "test-host");
    let out = env
        .orch()
        .args(["history", "0001-first", "--json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(history.as_array().unwrap().len(), 1);
    env.orch()
        .args(["history", "-n", "1"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("orch: new 0002-second")
                .and(predicate::str::contains("0001").not()),
        );
}

#[test]
fn a_busy_board_lock_exits_75() {
    let env = TestEnv::new();
    env.init();
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.repo.join(".git/orch/lock"))
        .unwrap();
    lock.lock().unwrap();
    env.orch()
        .args(["new", "waits", "--lock-timeout", "100ms"])
        .assert()
        .code(75)
        .stderr(predicate::str::contains("board lock"));
    drop(lock);
    env.orch()
        .args(["new", "goes", "--lock-timeout", "100ms"])
        .assert()
        .success();
}

#[test]
fn a_broken_orch_yaml_is_reported_by_status() {
    let env = TestEnv::new();
    env.init();
    std::fs::write(
        env.plan().join("orch.yaml"),
        "max_attempts: lots\nspeed: 3\n",
    )
    .unwrap();
    let status = env.status_of_broken_config();
    let err = status["config_error"].as_str().unwrap();
    assert!(err.contains("orch.yaml:1"), "{err}");
}

#[test]
fn read_commands_never_repair_but_board_changes_do() {
    let env = TestEnv::new();
    env.init();
    env.orch()
        .args(["new", "Kept", "-b", "k"])
        .assert()
        .success();
    std::fs::remove_dir_all(env.plan()).unwrap();
    for args in [
        vec!["status"],
        vec!["show", "0001-kept"],
        vec!["history"],
        vec!["tick", "--explain"],
    ] {
        env.orch()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "run `orch init` to check out orch/plan there again",
            ));
    }
    assert!(!env.plan().exists(), "a read created nothing");
    env.orch()
        .args(["new", "Another", "-b", "a"])
        .assert()
        .success();
    let status = env.status();
    assert_eq!(env.ids(&status, "ready"), ["0001-kept", "0002-another"]);
}

#[test]
fn read_commands_without_a_board_write_nothing() {
    let env = TestEnv::new();
    for args in [
        vec!["status"],
        vec!["show", "x"],
        vec!["history"],
        vec!["tick", "--explain"],
        vec!["log", "x"],
        vec!["tick"],
        vec!["new", "x"],
    ] {
        env.orch()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("run `orch init`"));
    }
    assert!(
        !env.repo.join(".orch").exists(),
        "nothing written into the checkout"
    );
    assert_eq!(env.git(&["status", "--porcelain"]), "");
}

#[test]
fn a_fresh_clone_uses_the_remotes_board_and_keeps_orch_out_of_git_status() {
    let env = TestEnv::new();
    env.init();
    env.orch()
        .args(["new", "Shared", "-b", "s"])
        .assert()
        .success();
    let clone = env.clone_repo("clone");
    // The board came with the clone: status shows it, as init would.
    env.orch()
        .current_dir(&clone)
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("Shared"));
    assert_eq!(env.git_in(&clone, &["status", "--porcelain"]), "");
    // A board change in the clone checks the board out and keeps .orch/ out of git status.
    env.orch()
        .current_dir(&clone)
        .args(["new", "From the clone"])
        .assert()
        .success();
    assert_eq!(env.git_in(&clone, &["status", "--porcelain"]), "");
}

#[test]
fn a_closed_pipe_ends_a_read_quietly() {
    let env = TestEnv::new();
    env.init();
    for i in 0..30 {
        env.write_ticket("todo", &format!("t{i}"), "---\ntitle: T\n---\n");
    }
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut cmd);
    let mut child = cmd
        .current_dir(&env.repo)
        .args(["status", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away, like `| head -0`
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// A board change is committed from the plan worktree's index onto
/// orch/plan; from a worktree switched to another branch it would replace
/// the board with that branch's files. orch refuses and changes nothing.
#[test]
fn a_plan_worktree_on_another_branch_is_refused_and_the_board_kept() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.orch().arg("status").assert().success();
    env.git_in(&env.plan(), &["add", "-A"]);
    env.git_in(&env.plan(), &["commit", "-q", "-m", "a ticket"]);
    let before = env.git(&["rev-parse", "orch/plan"]);
    env.git_in(&env.plan(), &["checkout", "-q", "-b", "elsewhere"]);
    env.git_in(&env.plan(), &["rm", "-q", "-r", "tickets"]);
    env.git_in(&env.plan(), &["commit", "-q", "-m", "no tickets here"]);
    env.orch()
        .args(["new", "B"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is on refs/heads/elsewhere, not on orch/plan",
        ))
        .stderr(predicate::str::contains(
            "git -C .orch/plan checkout orch/plan",
        ));
    assert_eq!(env.git(&["rev-parse", "orch/plan"]), before);
    env.git_in(&env.plan(), &["checkout", "-q", "orch/plan"]);
    env.orch().args(["new", "B"]).assert().success();
    assert_eq!(env.state_of("a"), "todo");
}

/// Seen with the first release: after a failed write, orch's own temporary
/// file was committed into orch/plan as a person's edit.
#[test]
fn orch_temporary_files_are_never_adopted() {
    let env = TestEnv::new();
    env.init();
    env.write_plan_file("runs/t/.1.md.orch-tmp-4242", "half a summary");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.orch().args(["new", "B"]).assert().success();
    let tree = env.git(&["ls-tree", "-r", "--name-only", "orch/plan"]);
    assert!(!tree.contains("orch-tmp"), "{tree}");
    assert!(tree.contains("tickets/todo/a.md"), "{tree}");
    assert!(!env.plan().join("runs/t/.1.md.orch-tmp-4242").exists());
    assert_eq!(env.plan_dirt(), "");
}
