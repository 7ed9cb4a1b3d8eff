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

/// Found while trying the first release's successor as a careless person:
/// `git worktree remove -f -f` on a live agent's worktree removed its
/// HEAD, the only ref to the commits it had made, and the attempt was
/// recorded as `no-changes` ("the agent deleted its worktree"). The
/// agent's last commit is now kept, the agent stopped within seconds, and
/// the attempt is a person's doing, not counted.
#[test]
fn a_worktree_removed_by_a_person_while_its_agent_runs_keeps_the_agents_commits() {
    let env = TestEnv::new();
    let committed = env.flag("committed");
    env.ready(
        &format!(
            "echo work > work.txt\ngit add work.txt\ngit commit -qm 'agent: work'\n\
             git rev-parse HEAD > {committed}.tmp && mv {committed}.tmp {committed}\n\
             while :; do echo still here; sleep 0.05; done",
            committed = committed.display()
        ),
        "timeout: 1h",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let tick = env.spawn_tick();
    wait_for(&committed);
    let sha = std::fs::read_to_string(&committed)
        .unwrap()
        .trim()
        .to_string();
    env.git(&["worktree", "remove", "-f", "-f", ".orch/worktrees/t"]);
    let out = tick.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("t: interrupted (attempt 1)"), "{text}");
    assert_eq!(env.state_of("t"), "todo", "it runs again: {text}");
    assert_eq!(
        env.git(&["rev-parse", "refs/orch/kept/t/1-removed"]).trim(),
        sha,
        "the agent's commit is kept: {text}"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/t/1.md")).unwrap();
    assert!(
        summary.contains("refs/orch/kept/t/1-removed"),
        "the summary names where: {summary}"
    );
    assert!(env.agent_processes().is_empty());
}

/// Seen: after a ticket went back to todo by hand the prompt said "This
/// is attempt 3 of 2", `orch history` left out the move, and `orch show`
/// named neither the worktree, the branch, nor how to retry. A ticket a
/// person sends back from done or blocked starts a fresh set of attempts:
/// its prompt counts on from the attempts before (3 of 4), and its first
/// failure of the new set is a retry, not the end.
#[test]
fn a_ticket_moved_back_to_todo_by_hand_counts_a_fresh_set_and_shows_the_move() {
    let env = TestEnv::new();
    let flags = env.flags_dir();
    env.ready(
        &format!(
            "cp \"$ORCH_PROMPT_FILE\" {flags}/prompt-$ORCH_ATTEMPT\n\
             echo \"$ORCH_ATTEMPT\" > work.txt\n\
             [ \"$ORCH_ATTEMPT\" = 2 ] || exit 1",
            flags = flags.display()
        ),
        "max_attempts: 2",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    assert!(env.tick_ok().contains("t: failed (attempt 1)"));
    assert!(env.tick_ok().contains("t: success (attempt 2)"));
    assert_eq!(env.state_of("t"), "done");
    let prompt = std::fs::read_to_string(env.flag("prompt-2")).unwrap();
    assert!(prompt.contains("This is attempt 2 of 2."), "{prompt}");

    // Reopened with a plain mv, adopted by the next tick.
    std::fs::rename(env.ticket_path("done", "t"), env.ticket_path("todo", "t")).unwrap();
    let out = env.tick_ok();
    let prompt = std::fs::read_to_string(env.flag("prompt-3")).unwrap();
    assert!(prompt.contains("This is attempt 3 of 4."), "{prompt}");
    assert!(
        out.contains("t: failed (attempt 3)") && out.contains("moved to todo"),
        "a fresh set of 2: {out}"
    );

    let out = env
        .orch()
        .args(["history", "t", "--json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let adopt = history
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["summary"].as_str().unwrap().starts_with("orch: adopt"))
        .unwrap_or_else(|| panic!("the hand move is in the history: {history:#}"));
    assert_eq!(adopt["by_hand"], "moved from done to todo", "{adopt}");
    assert_eq!(adopt["host"], "test-host");
    assert!(adopt["author"].is_string(), "{adopt}");

    // Attempt 4 fails too: the set is used up, the ticket is blocked.
    env.tick_ok();
    assert_eq!(env.state_of("t"), "blocked");
    let show = stdout(&env.orch().args(["show", "t"]).output().unwrap());
    let worktree = env.repo.join(".orch/worktrees/t");
    assert!(
        show.contains(&format!("worktree  {}", worktree.display())),
        "{show}"
    );
    assert!(show.contains("branch    orch/t"), "{show}");
    let retry = "orch retry t";
    assert!(show.contains(&format!("retry     {retry}")), "{show}");

    // A person's own commit is in the history with its author.
    let plan = env.plan();
    env.git_in(&plan, &["mv", "tickets/blocked/t.md", "tickets/todo/t.md"]);
    env.git_in(&plan, &["commit", "-qm", "try t again"]);
    let text = stdout(&env.orch().args(["history", "t"]).output().unwrap());
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.contains("try t again")
            && first.contains(
                "[by hand: moved from blocked to todo; by Test Author <author@example.com>]"
            ),
        "{text}"
    );
}
