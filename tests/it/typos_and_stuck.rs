//! What a new user tripped on: a mistyped key ignored without a word, and
//! a ticket waiting for ever on a blocked one with nothing to say why. A
//! typo is an error; a warning or a stuck ticket is said by one tick, not
//! mailed by cron every few minutes.

use crate::env::{TestEnv, stderr, stdout};

/// Seen: `depends-on: [a]` (the spelling of `orch new`'s flag) was ignored,
/// and both tickets ran at once.
#[test]
fn a_mistyped_depends_on_makes_the_ticket_invalid_not_ignored() {
    let env = TestEnv::new();
    env.ready("echo work > work.txt", "");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\ndepends-on: [a]\n---\n");
    let explain = stdout(&env.orch().args(["tick", "--explain"]).output().unwrap());
    assert!(
        explain
            .contains("tickets/todo/b.md:3: unknown key `depends-on`: did you mean `depends_on`?"),
        "{explain}"
    );
    let out = env.tick_ok();
    assert!(
        out.contains(
            "skipped: tickets/todo/b.md:3: unknown key `depends-on`: did you mean `depends_on`?"
        ),
        "{out}"
    );
    assert_eq!(env.state_of("a"), "done", "{out}");
    assert_eq!(env.state_of("b"), "todo", "b never ran beside a: {out}");
    let status = env.status();
    assert!(
        status["invalid"]
            .to_string()
            .contains("did you mean `depends_on`?"),
        "{status}"
    );
}

#[test]
fn a_mistyped_key_in_orch_yaml_stops_the_tick_with_did_you_mean() {
    let env = TestEnv::new();
    env.ready("echo work > work.txt", "max_attemps: 1");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("orch.yaml:9: unknown key `max_attemps`: did you mean `max_attempts`?"),
        "{err}"
    );
    assert_eq!(env.state_of("a"), "todo", "nothing claimed");

    // Inside a table orch reads, too: `writeable` would leave the agent
    // without the place it needs to write.
    let yaml = std::fs::read_to_string(env.plan().join("orch.yaml")).unwrap();
    let yaml = yaml
        .replace("max_attemps: 1\n", "")
        .replace("{writable:", "{writeable:");
    std::fs::write(env.plan().join("orch.yaml"), yaml).unwrap();
    let err = stderr(&env.tick());
    assert!(
        err.contains("unknown key `sandbox.writeable`: did you mean `writable`?"),
        "{err}"
    );
}

/// A ticket's unknown key (not a typo) is said by the tick that finds it,
/// again only when it changes, and `orch status` forgets it once the
/// ticket is done.
#[test]
fn a_tickets_unknown_key_is_said_once_per_change() {
    let env = TestEnv::new();
    env.ready("echo work > work.txt", "colour: blue");
    env.write_ticket("blocked", "a", "---\ntitle: A\n---\n");
    env.write_ticket(
        "todo",
        "x",
        "---\ntitle: X\ndepends_on: [a]\nowner: me\n---\n",
    );
    let first = env.tick_ok();
    assert!(
        first.contains("warning: tickets/todo/x.md:4: unknown key `owner` is ignored"),
        "{first}"
    );
    assert!(
        first.contains("unknown key `colour` is ignored"),
        "orch.yaml's too: {first}"
    );
    assert_eq!(env.tick_ok(), "", "said once: cron mails nothing");
    let explain = stdout(&env.orch().args(["tick", "--explain"]).output().unwrap());
    assert!(explain.contains("unknown key `owner`"), "{explain}");

    env.write_ticket(
        "todo",
        "x",
        "---\ntitle: X\ndepends_on: [a]\nowner: me\nreviewer: you\n---\n",
    );
    let changed = env.tick_ok();
    assert!(changed.contains("unknown key `reviewer`"), "{changed}");
    assert!(!changed.contains("`owner`"), "{changed}");

    std::fs::rename(
        env.ticket_path("blocked", "a"),
        env.ticket_path("todo", "a"),
    )
    .unwrap();
    env.tick_ok();
    env.tick_ok();
    assert_eq!(env.state_of("x"), "done");
    let warnings = env.status()["warnings"].to_string();
    assert!(!warnings.contains("owner"), "{warnings}");
}

/// Seen: a ticket that depends on a blocked ticket waited for ever, with
/// only "waits on t-fail" in `status`.
#[test]
fn a_ticket_waiting_on_a_blocked_one_is_shown_stuck_with_the_chain() {
    let env = TestEnv::new();
    env.ready(
        "[ \"$ORCH_TICKET\" = a ] && exit 1\necho work > work.txt",
        "max_attempts: 1",
    );
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\ndepends_on: [a]\n---\n");
    env.write_ticket("todo", "c", "---\ntitle: C\ndepends_on: [b]\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("a: failed (attempt 1)"), "{out}");
    let retry = "`orch retry a`";
    assert!(
        out.contains(&format!(
            "b: stuck: waits on a, which is blocked; retry it with {retry}"
        )),
        "said by the tick that blocked a: {out}"
    );
    assert!(
        out.contains("c: stuck: waits on b, which waits on a, which is blocked"),
        "{out}"
    );
    assert_eq!(env.tick_ok(), "", "said once: cron mails nothing");

    let status = env.status();
    assert_eq!(env.ids(&status, "stuck"), ["b", "c"]);
    assert_eq!(
        status["stuck"][1]["chain"],
        serde_json::json!(["c", "b", "a"])
    );
    assert_eq!(status["stuck"][1]["on"], "a");
    assert_eq!(status["stuck"][1]["on_state"], "blocked");
    assert_eq!(
        env.ids(&status, "waiting"),
        ["b", "c"],
        "waiting stays as it was"
    );
    let text = stdout(&env.orch().arg("status").output().unwrap());
    assert!(
        text.contains("stuck: waits on b, which waits on a, which is blocked"),
        "{text}"
    );
    let explain = stdout(&env.orch().args(["tick", "--explain"]).output().unwrap());
    assert!(
        explain.contains("stuck: waits on a, which is blocked; retry it with"),
        "{explain}"
    );

    // The retry the line names unsticks them.
    std::fs::rename(
        env.ticket_path("blocked", "a"),
        env.ticket_path("todo", "a"),
    )
    .unwrap();
    assert!(env.status()["stuck"].as_array().unwrap().is_empty());
}
