//! Crash consistency: orch is killed (SIGKILL, through a test-only
//! failpoint) between the steps of each board transition, and the next
//! tick must repair the board without losing the attempt's work or
//! mistaking the repair for a second claim.

use crate::env::{TestEnv, crash_at, stderr, stdout};

fn setup(env: &TestEnv) {
    env.init();
    let agent = env.agent(
        "agent",
        "echo \"attempt $ORCH_ATTEMPT\" > \"work-$ORCH_ATTEMPT.txt\"\necho done",
    );
    env.configure(&agent, "");
    env.write_ticket("todo", "t", "---\ntitle: Crash me\n---\n");
}

fn tick(env: &TestEnv) -> String {
    let out = env.tick();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// The board after repair: one file per ticket, nothing in progress, the
/// plan worktree clean, no process left, the ticket done.
fn assert_repaired(env: &TestEnv) {
    let states: Vec<&str> = ["todo", "in-progress", "done", "blocked"]
        .into_iter()
        .filter(|s| env.ticket_path(s, "t").exists())
        .collect();
    assert_eq!(states, ["done"]);
    assert_eq!(env.plan_dirt(), "");
    assert!(env.agent_processes().is_empty());
    assert!(
        !env.repo.join(".orch/worktrees/t").exists(),
        "done ticket's worktree removed"
    );
    assert!(!env.git(&["worktree", "list"]).contains("orch/t]"));
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--no-progress"])
        .current_dir(&env.repo)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", stderr(&fsck));
}

fn result_lines(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.ticket_path("done", "t"))
        .unwrap()
        .lines()
        .filter(|l| l.contains(" result "))
        .map(str::to_string)
        .collect()
}

/// A claim moved in the plan but not committed is orch's half-made
/// change: it is put back, never adopted as a person's edit, and the
/// ticket is claimed again as the same attempt.
#[test]
fn crash_after_claim_move_before_commit() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "claim-after-move");
    assert_eq!(env.state_of("t"), "in-progress", "moved, not committed");
    let out = tick(&env);
    assert!(out.contains("put back tickets/todo/t.md"), "{out}");
    assert!(!out.contains("adopted"), "{out}");
    assert!(out.contains("t: success (attempt 1)"), "{out}");
    assert_repaired(&env);
    assert_eq!(result_lines(&env).len(), 1);
}

#[test]
fn crash_after_claim_commit_before_worktree() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "claim-after-commit");
    assert!(!env.repo.join(".orch/worktrees/t").exists());
    let out = tick(&env);
    assert!(
        out.contains("its orch died before the agent started"),
        "{out}"
    );
    assert!(out.contains("t: success (attempt 2)"), "{out}");
    assert_repaired(&env);
    // One claim per attempt, never two for one attempt.
    let claims = env
        .plan_messages()
        .iter()
        .filter(|m| m.contains("Orch-Event: claim"))
        .count();
    assert_eq!(claims, 2);
}

#[test]
fn crash_while_the_agent_runs_keeps_its_work() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "run-after-spawn");
    let out = tick(&env);
    assert!(out.contains("t: abandoned (attempt 1)"), "{out}");
    assert!(out.contains("t: success (attempt 2)"), "{out}");
    assert_repaired(&env);
    assert_eq!(env.git(&["show", "orch/t:work-1.txt"]), "attempt 1\n");
    assert_eq!(env.git(&["show", "orch/t:work-2.txt"]), "attempt 2\n");
}

#[test]
fn crash_after_the_work_commit_before_settling() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "settle-after-work-commit");
    assert!(
        env.git(&["log", "--format=%s", "orch/t"])
            .contains("attempt 1")
    );
    let out = tick(&env);
    assert!(out.contains("t: abandoned (attempt 1)"), "{out}");
    assert_repaired(&env);
    assert_eq!(env.git(&["show", "orch/t:work-1.txt"]), "attempt 1\n");
}

/// The supervising tick decided the result and died recording it: the
/// next tick puts back the half-made change and records that result
/// (kept in local state), not "abandoned".
#[test]
fn crash_after_the_summary_before_the_move() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "settle-after-summary");
    let out = tick(&env);
    assert!(out.contains("put back runs/t/1.md"), "{out}");
    assert!(out.contains("t: success (attempt 1)"), "{out}");
    assert_repaired(&env);
    assert_eq!(env.git(&["show", "orch/t:work-1.txt"]), "attempt 1\n");
    let summary = std::fs::read_to_string(env.plan().join("runs/t/1.md")).unwrap();
    assert!(
        summary.contains("its tick decided this result"),
        "{summary}"
    );
}

#[test]
fn crash_after_the_move_before_the_commit() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "settle-after-move");
    assert_eq!(env.state_of("t"), "done", "moved, not committed");
    let out = tick(&env);
    assert!(out.contains("put back"), "{out}");
    assert!(!out.contains("adopted"), "{out}");
    assert!(out.contains("t: success (attempt 1)"), "{out}");
    assert_repaired(&env);
    assert!(!env.repo.join(".orch/worktrees/t").exists());
    assert_eq!(
        result_lines(&env).len(),
        1,
        "settled once: {:?}",
        result_lines(&env)
    );
}

#[test]
fn crash_while_reconciling_is_reconciled_again() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "run-after-spawn");
    crash_at(&env, "reconcile-after-kill");
    assert_eq!(env.state_of("t"), "in-progress");
    let out = tick(&env);
    assert!(out.contains("t: abandoned (attempt 1)"), "{out}");
    assert_repaired(&env);
}

#[test]
fn a_stale_index_lock_in_the_plan_worktree_is_cleared() {
    let env = TestEnv::new();
    setup(&env);
    let lock = env.repo.join(".git/worktrees/orch-plan/index.lock");
    std::fs::write(&lock, "").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = tick(&env);
    assert!(out.contains("removed a stale"), "{out}");
    assert!(out.contains("t: success (attempt 1)"), "{out}");
    assert!(!lock.exists());
}

#[test]
fn a_ref_lock_left_by_a_killed_commit_is_cleared() {
    let env = TestEnv::new();
    setup(&env);
    // What a kill in the middle of a libgit2 ref update leaves behind.
    let lock = env.repo.join(".git/refs/heads/orch/plan.lock");
    std::fs::write(&lock, "").unwrap();
    let out = tick(&env);
    assert!(out.contains("removed a stale"), "{out}");
    assert!(out.contains("t: success (attempt 1)"), "{out}");
    assert!(!lock.exists());
}

/// A failure that concerns one ticket stays with it. Here its dead run
/// cannot be recorded where it must go (a directory stands where its
/// ticket file belongs in `todo/`). Every tick reports it, exits non-zero
/// and goes on with the others; after three tries the ticket goes to
/// blocked with the error, for a person, and the ticks are clean again.
#[test]
fn a_ticket_that_cannot_be_settled_is_blocked_after_three_tries_and_the_others_go_on() {
    let env = TestEnv::new();
    setup(&env);
    crash_at(&env, "settle-after-work-commit");
    assert_eq!(env.state_of("t"), "in-progress");
    std::fs::create_dir_all(env.ticket_path("todo", "t")).unwrap();
    env.write_ticket("todo", "u", "---\ntitle: Another\n---\n");

    for round in 1..=2 {
        let out = env.tick();
        assert!(!out.status.success(), "round {round}: {}", stdout(&out));
        assert!(
            stdout(&out).contains("t: cannot settle it"),
            "round {round}: {}",
            stdout(&out)
        );
        if round == 1 {
            assert_eq!(env.state_of("u"), "done", "the other ticket went on");
        }
        assert!(
            env.ticket_path("in-progress", "t").is_file(),
            "round {round}"
        );
    }
    let third = tick(&env);
    assert!(third.contains("t: blocked (attempt 1)"), "{third}");
    assert!(env.ticket_path("blocked", "t").is_file());
    let text = std::fs::read_to_string(env.ticket_path("blocked", "t")).unwrap();
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("outcome=blocked")
            && last.contains("counted=no")
            && last.contains("could not settle"),
        "{last}"
    );
    assert!(
        last.contains("tickets/todo/t.md: Is a directory"),
        "the error names what is in the way: {last}"
    );
    assert_eq!(env.plan_dirt(), "");
    assert!(env.agent_processes().is_empty());
    tick(&env);
}
