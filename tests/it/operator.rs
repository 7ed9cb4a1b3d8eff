//! The commands a person running orch reaches for.

use crate::env::{TestEnv, stderr, stdout};

/// `orch retry`: a blocked ticket goes back to todo with a fresh set of
/// attempts, on its branch, and the log and the commit say who asked.
#[test]
fn retry_sends_a_blocked_ticket_back_with_a_fresh_set_and_says_who() {
    let env = TestEnv::new();
    // Fails until the flag exists; then commits.
    let fixed = env.flag("fixed");
    env.ready(
        &format!(
            "echo try >> tries.txt && git add tries.txt && git commit -qm try\n\
             [ -e '{}' ] || exit 1",
            fixed.display()
        ),
        "max_attempts: 1\n",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\nDo t.\n");
    env.tick_ok();
    assert_eq!(env.state_of("t"), "blocked");

    let out = env.orch().args(["retry", "t"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("back in todo"), "{}", stdout(&out));
    assert_eq!(env.state_of("t"), "todo");
    let text = std::fs::read_to_string(env.ticket_path("todo", "t")).unwrap();
    assert!(
        text.contains("retry by=\"Test Author <author@example.com>\""),
        "{text}"
    );
    let message = &env.plan_messages()[0];
    assert!(message.starts_with("orch: retry t"), "{message}");
    assert!(message.contains("Orch-Event: retry"), "{message}");

    std::fs::write(&fixed, "").unwrap();
    let out = env.tick_ok();
    assert!(out.contains("t: success (attempt 2)"), "{out}");
    // The second attempt continued on the first one's branch.
    let tries = env.git(&["show", "orch/t:tries.txt"]);
    assert_eq!(tries, "try\ntry\n");
}

#[test]
fn retry_refuses_what_is_not_blocked_and_names_a_near_id() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0001-upload", "---\ntitle: U\n---\nDo u.\n");
    env.write_ticket("done", "0002-finished", "---\ntitle: F\n---\nDone.\n");
    let before = env.plan_log().len();

    let out = env.orch().args(["retry", "0001-upload"]).output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).contains("already in todo"), "{}", stdout(&out));

    let out = env
        .orch()
        .args(["retry", "0002-finished"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("is in done, not blocked"),
        "{}",
        stderr(&out)
    );

    let out = env.orch().args(["retry", "0001-uplaod"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean `0001-upload`"),
        "{}",
        stderr(&out)
    );
    // Only the adoption of the hand-written tickets changed the board.
    assert!(env.plan_log().len() <= before + 1);
    assert_eq!(env.state_of("0001-upload"), "todo");
}
