//! What a new user tripped on: a mistyped key ignored without a word. A
//! typo is an error.

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
