//! Token budgets: an agent past its budget is stopped as over-budget, a
//! ticket that spent its budget goes to blocked, a spent day pauses
//! claims. The fake agents print codex `--json` usage events, one per
//! step, then hang: only the budget can end them quickly.

use std::time::{Duration, Instant};

use crate::env::{TestEnv, stdout};

/// An agent that commits its work, then reports `steps` turns of 100
/// tokens each (60 in, 40 out), then hangs. The last turn is the one that
/// passes each test's budget, so the tokens counted are exact whatever
/// the machine's speed.
fn spender(steps: u32) -> String {
    format!(
        "echo work > work.txt\ngit add work.txt\ngit commit -qm 'agent: work'\n\
         for i in $(seq {steps}); do echo '{{\"type\":\"turn.completed\",\"usage\":{{\"input_tokens\":60,\"cached_input_tokens\":0,\"output_tokens\":40}}}}'; done\n\
         sleep 60"
    )
}

/// orch.yaml for `spender`, with limits far past the test's time: a run
/// that the budget does not stop ends as `stalled` after 30s, not quickly.
fn ready(env: &TestEnv, steps: u32, budget: &str) {
    env.init();
    let agent = env.agent("agent", &spender(steps));
    env.configure(
        &agent,
        &format!(
            "agent: {{command: [\"{}\"], events: codex-json}}\ntimeout: 60s\nno_output_timeout: 30s\nbudget: {budget}\n",
            agent.display()
        ),
    );
}

fn show(env: &TestEnv, id: &str) -> serde_json::Value {
    let out = env.orch().args(["show", id, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_attempt_past_its_budget_is_stopped_and_its_work_kept() {
    let env = TestEnv::new();
    ready(&env, 3, "{tokens_per_attempt: 250}");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    let start = Instant::now();
    let text = env.tick_ok();
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "took {:?}: the budget did not stop it",
        start.elapsed()
    );
    assert!(
        text.contains("a: over-budget (attempt 1): 300 tokens spent, past the 250 this attempt could spend (tokens_per_attempt 250)"),
        "{text}"
    );
    assert!(
        env.agent_processes().is_empty(),
        "the agent's processes outlived the stop"
    );
    // An attempt of the ticket's own: it counts, and another may follow.
    assert_eq!(env.state_of("a"), "todo");
    assert_eq!(env.status()["ready"][0]["attempts_used"], 1);
    // The work it committed before the stop stays on its branch.
    let log = env.git(&["log", "--format=%s", "orch/a"]);
    assert!(log.contains("agent: work"), "{log}");
    // Its usage: in the log line, the trailer, show and status.
    let ticket = std::fs::read_to_string(env.ticket_path("todo", "a")).unwrap();
    assert!(ticket.contains("outcome=over-budget"), "{ticket}");
    assert!(ticket.contains("tokens=300"), "{ticket}");
    assert!(env.plan_messages()[0].contains("Orch-Tokens: 300"));
    let shown = show(&env, "a");
    assert_eq!(shown["attempts"][0]["tokens"], 300);
    assert_eq!(shown["usage"]["tokens"], 300);
    let out = env.orch().args(["show", "a"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("tokens    300 in all"), "{text}");
    assert!(text.contains("over-budget  host"), "{text}");
    assert!(text.contains("300 tokens"), "{text}");
    assert_eq!(env.status()["ready"][0]["usage"]["tokens"], 300);
}

#[test]
fn a_ticket_that_spends_its_budget_goes_to_blocked_until_retried() {
    let env = TestEnv::new();
    ready(&env, 3, "{tokens_per_attempt: 250, tokens_per_ticket: 500}");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    // First attempt: stopped by tokens_per_attempt at 300, 300 of 500.
    let text = env.tick_ok();
    assert!(text.contains("a: over-budget (attempt 1)"), "{text}");
    assert_eq!(
        env.state_of("a"),
        "todo",
        "300 of 500 spent: it may try again"
    );
    // Second attempt: 200 left, 300 spent: the ticket's budget is spent.
    let text = env.tick_ok();
    assert!(
        text.contains("tokens_per_ticket 500, 300 spent by earlier attempts"),
        "{text}"
    );
    assert!(
        text.contains("a: over-budget (attempt 2): token budget spent (600 of tokens_per_ticket 500); last: over-budget"),
        "{text}"
    );
    assert!(text.contains("moved to blocked"), "{text}");
    assert_eq!(
        env.state_of("a"),
        "blocked",
        "max_attempts 3 is not used up"
    );
    let status = env.status();
    let blocked = &status["blocked"][0];
    assert_eq!(blocked["attempts_used"], 2);
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .starts_with("token budget spent (600 of tokens_per_ticket 500); last: over-budget"),
        "{blocked}"
    );
    assert_eq!(blocked["usage"]["tokens"], 600);
    assert_eq!(blocked["usage"]["tokens_toward_budget"], 600);
    assert!(env.agent_processes().is_empty());
    // `orch retry` gives a fresh set of attempts, and so a fresh budget;
    // what was spent stays on record.
    env.orch().args(["retry", "a"]).assert().success();
    let ready = &env.status()["ready"][0];
    assert_eq!(ready["usage"]["tokens"], 600);
    assert_eq!(ready["usage"]["tokens_toward_budget"], 0);
}

#[test]
fn a_spent_daily_budget_pauses_claims_and_status_says_until_when() {
    let env = TestEnv::new();
    ready(&env, 3, "{tokens_per_day: 250}");
    env.write_ticket("todo", "a", "---\ntitle: A\npriority: 1\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let out = env.orch().args(["tick", "--jobs", "1"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("a: over-budget (attempt 1): 300 tokens spent, past the 250 this attempt could spend (tokens_per_day 250, 0 spent today before it started)"),
        "{text}"
    );
    // Stopped by the day's budget, the ticket used no attempt of its own.
    assert_eq!(env.state_of("a"), "todo");
    assert_eq!(env.status()["ready"][0]["attempts_used"], 0);
    assert!(env.plan().join("budget/spent").is_file());
    // The day is spent: the next tick claims nothing (and, like a paused
    // agent, says nothing to cron each minute; status says why).
    let text = env.tick_ok();
    assert_eq!(text, "");
    assert_eq!(env.state_of("b"), "todo");
    let out = env.orch().arg("status").output().unwrap();
    let shown = stdout(&out);
    assert!(
        shown.contains("daily budget spent: 300 of 250 tokens; claims resume at "),
        "{shown}"
    );
    let status = env.status();
    assert_eq!(status["budget"]["tokens_today"], 300);
    assert_eq!(status["budget"]["tokens_per_day"], 250);
    let resume = status["budget"]["claims_resume_at"].as_str().unwrap();
    assert!(resume.ends_with("T00:00:00Z"), "{resume}");
    let explain = env.orch().args(["tick", "--explain"]).output().unwrap();
    assert!(stdout(&explain).contains("not claimed: daily budget spent"));
    // A person who deletes the day's record resumes claims at once.
    std::fs::remove_file(env.plan().join("budget/spent")).unwrap();
    let explain = env.orch().args(["tick", "--explain"]).output().unwrap();
    assert!(
        stdout(&explain).contains("would claim"),
        "{}",
        stdout(&explain)
    );
}

#[test]
fn a_budget_typo_is_caught() {
    let env = TestEnv::new();
    ready(&env, 1, "{tokens_per_atempt: 10}");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::env::stderr(&out).contains("did you mean `tokens_per_attempt`?"),
        "{}",
        crate::env::stderr(&out)
    );
}

/// A ticket blocked by its budget is heard about: `budget-spent` reaches
/// a notifier, with the ticket and the reason.
#[test]
fn a_spent_ticket_budget_reaches_a_budget_spent_notifier() {
    let env = TestEnv::new();
    env.init();
    let agent = env.agent("agent", &spender(3));
    let heard = env.flag("heard");
    let notifier = env.agent(
        "notifier",
        &format!(
            "echo \"$ORCH_EVENT $ORCH_TICKET $ORCH_TEXT\" >> '{}'",
            heard.display()
        ),
    );
    env.configure(
        &agent,
        &format!(
            "agent: {{command: [\"{}\"], events: codex-json}}\ntimeout: 60s\nno_output_timeout: 30s\nbudget: {{tokens_per_ticket: 250}}\nnotify: [{{on: [budget-spent], command: [\"{}\"]}}]\n",
            agent.display(),
            notifier.display()
        ),
    );
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("a"), "blocked");
    let text = std::fs::read_to_string(&heard).unwrap_or_default();
    assert!(text.starts_with("budget-spent a "), "{text}");
    assert!(text.contains("tokens_per_ticket 250"), "{text}");
}
