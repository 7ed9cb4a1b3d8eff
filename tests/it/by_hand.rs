//! A person's hand on a running ticket: the move stands, the agent is
//! stopped within seconds, and no attempt is used or left "running".

use crate::env::{TestEnv, stdout, wait_for};

/// An agent that keeps talking (so no output limit ends it) until stopped.
fn chatty_agent(env: &TestEnv) {
    let started = env.flag("started");
    env.ready(
        &format!(
            "touch {started}\necho work > work.txt\nwhile :; do echo still here; sleep 0.05; done",
            started = started.display()
        ),
        "timeout: 1h",
    );
}

fn moved_by_hand(how: &str) {
    let env = TestEnv::new();
    chatty_agent(&env);
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let tick = env.spawn_tick();
    wait_for(&env.flag("started"));
    let plan = env.plan();
    let to = match how {
        "mv" => {
            std::fs::rename(
                plan.join("tickets/in-progress/t.md"),
                plan.join("tickets/done/t.md"),
            )
            .unwrap();
            "done"
        }
        "commit" => {
            env.git_in(
                &plan,
                &["mv", "tickets/in-progress/t.md", "tickets/blocked/t.md"],
            );
            env.git_in(&plan, &["commit", "-qm", "park t"]);
            "blocked"
        }
        _ => {
            std::fs::remove_file(plan.join("tickets/in-progress/t.md")).unwrap();
            "missing"
        }
    };
    let out = tick.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{how}: {text}");
    assert!(text.contains("t: interrupted (attempt 1)"), "{how}: {text}");
    assert!(
        !text.contains("while the agent ran"),
        "{how}: not the agent's: {text}"
    );
    assert_eq!(env.state_of("t"), to, "{how}: the person's move stands");
    let summary = std::fs::read_to_string(plan.join("runs/t/1.md"))
        .or_else(|_| std::fs::read_to_string(plan.join("runs/t/1.stale.md")))
        .unwrap();
    assert!(
        summary.contains("a person moved the ticket"),
        "{how}: {summary}"
    );
    if to != "missing" {
        let show = env.orch().args(["show", "t"]).output().unwrap();
        let show = stdout(&show);
        assert!(show.contains("interrupted"), "{how}: {show}");
        assert!(!show.contains("running"), "{how}: {show}");
        // Not the agent's fault: an interrupted attempt is not counted.
        let json = env.orch().args(["show", "t", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(v["attempts"][0]["outcome"], "interrupted", "{how}: {v}");
    }
    assert!(env.git(&["log", "--format=%s", "orch/t"]).contains("orch:"));
}

#[test]
fn a_ticket_moved_by_hand_while_it_runs_stops_its_agent() {
    moved_by_hand("mv");
}

#[test]
fn a_ticket_moved_in_a_commit_while_it_runs_stops_its_agent() {
    moved_by_hand("commit");
}

#[test]
fn a_ticket_deleted_while_it_runs_stops_its_agent() {
    moved_by_hand("rm");
}

/// Seen with the first release: a person fixing a blocked ticket by hand
/// in its worktree, who then moved it to done, lost the uncommitted fix
/// when the next tick removed the worktree.
#[test]
fn a_worktree_is_never_removed_with_a_persons_work_in_it() {
    let env = TestEnv::new();
    env.ready("echo try > try.txt\nexit 1", "max_attempts: 1");
    env.write_ticket("todo", "fixme", "---\ntitle: Fix me\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("moved to blocked"), "{out}");
    let wt = env.repo.join(".orch/worktrees/fixme");
    std::fs::write(wt.join("fix.txt"), "the person's fix\n").unwrap();
    let plan = env.plan();
    std::fs::rename(
        plan.join("tickets/blocked/fixme.md"),
        plan.join("tickets/done/fixme.md"),
    )
    .unwrap();
    let out = env.tick_ok();
    assert!(!wt.exists(), "the done ticket's worktree goes: {out}");
    assert!(
        out.contains("it is kept as refs/orch/kept/fixme/removed-"),
        "{out}"
    );
    let kept = env.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/orch/kept/fixme/",
    ]);
    let kept = kept.lines().find(|l| l.contains("removed-")).unwrap();
    assert_eq!(
        env.git(&["show", &format!("{kept}:fix.txt")]),
        "the person's fix\n"
    );
}
