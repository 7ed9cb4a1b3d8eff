//! What a new user's first afternoon turned up after the first round of
//! fixes: each a mistake refused or named at once, and said once.

use std::os::unix::fs::PermissionsExt;

use crate::env::{TestEnv, stderr, stdout};

/// `agent: ../agents/x.sh` passed `--explain` and the tick's check, then
/// failed every attempt: it runs from the ticket's worktree.
#[test]
fn an_agent_path_out_of_the_repository_is_refused_before_any_claim() {
    let env = TestEnv::new();
    env.init();
    env.agent("agent", "true");
    std::fs::write(
        env.plan().join("orch.yaml"),
        "base: main\nagent: ../agent.sh\nsandbox: off\n",
    )
    .unwrap();
    env.write_ticket("todo", "t", "---\ntitle: T\n---\nDo t.\n");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("relative path out of the repository"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.state_of("t"), "todo");
}

/// `deps:` or `depends:` was a warning and the ticket ran before its
/// dependency; `unavailable_patterns:` at the top of orch.yaml was
/// ignored with a generic warning.
#[test]
fn other_words_for_a_key_and_a_key_out_of_its_table_are_errors() {
    let env = TestEnv::new();
    env.ready("true", "");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\nDo a.\n");
    for (id, key) in [("b", "deps"), ("c", "depends"), ("d", "requires")] {
        env.write_ticket(
            "todo",
            id,
            &format!("---\ntitle: T\n{key}: [a]\n---\nDo it.\n"),
        );
    }
    let status = env.status();
    let invalid = status["invalid"].to_string();
    for key in ["deps", "depends", "requires"] {
        assert!(
            invalid.contains(&format!("unknown key `{key}`: did you mean `depends_on`?")),
            "{invalid}"
        );
    }
    assert_eq!(env.ids(&status, "ready"), ["a"]);

    let yaml = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    std::fs::write(
        env.plan().join("orch.yaml"),
        format!("{yaml}unavailable_patterns: [\"quota\"]\n"),
    )
    .unwrap();
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`unavailable_patterns` belongs inside `agent:`"),
        "{}",
        stderr(&out)
    );
}

/// A board that stays wrong for days (a placeholder ticket left by
/// `orch new TITLE`) is named by one tick, not every five minutes; an
/// editor's backup beside it is not named at all.
#[test]
fn an_invalid_ticket_is_said_once_and_an_editors_backup_not_at_all() {
    let env = TestEnv::new();
    env.ready("true", "");
    env.orch().args(["new", "Later"]).assert().success();
    env.write_plan_file("tickets/todo/0001-later.md~", "a backup");
    let first = env.tick_ok();
    assert!(first.contains("placeholder"), "{first}");
    assert!(!first.contains(".md~"), "{first}");
    assert_eq!(env.tick_ok(), "", "said once");
    let status = env.status();
    assert!(!status.to_string().contains(".md~"), "{status}");
    assert!(status["invalid"].to_string().contains("placeholder"));
}

/// The README says `.orch/` is private (0700); it was 0755.
#[test]
fn the_orch_directory_is_private() {
    let env = TestEnv::new();
    env.init();
    let mode = std::fs::metadata(env.repo.join(".orch"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
}
