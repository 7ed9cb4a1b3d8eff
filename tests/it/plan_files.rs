//! The plan's own files: orch.yaml that went missing, and what editors and
//! file managers leave beside tickets.

use crate::env::{TestEnv, stderr, stdout};

/// Seen: after `rm .orch/plan/orch.yaml`, `status` showed nothing wrong,
/// the deletion was committed as "adopt edits" and the next tick ran with
/// every default (another agent, other limits).
#[test]
fn a_deleted_orch_yaml_stops_every_command_and_is_never_adopted() {
    let env = TestEnv::new();
    env.ready("touch \"$FLAGS/ran\"", "");
    env.write_ticket("todo", "0001-a", "---\ntitle: A\n---\nDo a.\n");
    env.orch().arg("status").assert().success();
    std::fs::remove_file(env.plan().join("orch.yaml")).unwrap();

    let out = env.orch().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("orch.yaml: the file is missing"),
        "{}",
        stdout(&out)
    );
    let out = env.orch().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        json["config_error"]
            .as_str()
            .unwrap_or("")
            .contains("missing"),
        "{json}"
    );

    let out = env
        .orch()
        .arg("tick")
        .env("FLAGS", env.flags_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("orch.yaml: the file is missing"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("orch init"), "{}", stderr(&out));
    assert!(!env.flag("ran").exists(), "a tick ran on the defaults");
    assert_eq!(env.state_of("0001-a"), "todo");
    let tree = env.git(&["ls-tree", "--name-only", "orch/plan"]);
    assert!(
        tree.contains("orch.yaml"),
        "the deletion was adopted: {tree}"
    );

    let out = env.orch().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("orch.yaml: the file is missing"),
        "{}",
        stdout(&out)
    );

    // `orch init` puts back the board's own orch.yaml, not the defaults
    // (which would change the agent).
    let committed = env.git(&["show", "orch/plan:orch.yaml"]);
    env.orch()
        .arg("init")
        .assert()
        .success()
        .stdout(predicates::str::contains("orch.yaml (as orch/plan has it)"));
    assert_eq!(
        std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap(),
        committed
    );
    env.orch().arg("status").assert().success();
}

/// Seen: vim's swap file, `~` backups and `.DS_Store` in tickets/ were
/// committed to orch/plan, and every tick adopted the swap file again.
#[test]
fn editor_and_file_manager_files_are_never_board_changes() {
    let env = TestEnv::new();
    env.ready("true", "");
    let tree = env.git(&["ls-tree", "--name-only", "orch/plan"]);
    assert!(tree.contains(".gitignore"), "{tree}");
    let litter = [
        "tickets/todo/.0001-a.md.swp",
        "tickets/todo/0001-a.md~",
        "tickets/todo/.#0001-a.md",
        "tickets/.DS_Store",
        ".DS_Store",
    ];
    for rel in litter {
        env.write_plan_file(rel, "litter");
    }
    env.write_ticket("todo", "0001-a", "---\ntitle: A\n---\nDo a.\n");
    env.tick_ok();
    env.tick_ok();
    let tree = env.git(&["ls-tree", "-r", "--name-only", "orch/plan"]);
    for rel in litter {
        assert!(!tree.contains(rel), "{rel} was committed: {tree}");
        assert!(env.plan().join(rel).exists(), "{rel} was removed");
    }
    assert!(tree.contains("0001-a.md"), "{tree}");
    let adopts = env
        .plan_log()
        .iter()
        .filter(|m| m.starts_with("orch: adopt"))
        .count();
    assert_eq!(
        adopts,
        1,
        "only the ticket is adopted: {:?}",
        env.plan_log()
    );
}

/// A board made before the plan had a .gitignore: its next change adds it,
/// and the litter is not adopted meanwhile.
#[test]
fn a_board_without_the_plan_gitignore_gets_it_with_its_next_change() {
    let env = TestEnv::new();
    env.init();
    env.git_in(&env.plan(), &["rm", "-q", ".gitignore"]);
    env.git_in(&env.plan(), &["commit", "-q", "-m", "an older board"]);
    env.write_plan_file("tickets/todo/.0001-x.md.swp", "litter");
    env.orch()
        .args(["new", "X", "-b", "Do x."])
        .assert()
        .success();
    let tree = env.git(&["ls-tree", "-r", "--name-only", "orch/plan"]);
    assert!(tree.contains(".gitignore"), "{tree}");
    assert!(!tree.contains(".swp"), "{tree}");
}
