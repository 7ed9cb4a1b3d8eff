//! Agents that cannot reach their model: settled as agent-unavailable, no
//! attempt spent, claims for that agent paused on the plan branch.

use crate::env::{TestEnv, stdout};

/// What codex 0.169 prints, for ever, when its endpoint is unreachable.
const CODEX_OFFLINE: &str = "while true; do echo '{\"type\":\"error\",\"message\":\"Reconnecting... waiting for network (Connection failed: error sending request)\"}'; sleep 0.05; done";

/// What aider 0.86 prints on a rejected key, before it exits 0 anyway.
const AIDER_401: &str = "echo 'litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect'\necho 'API key provided: sk-invalid.'\necho 'The API provider is not able to authenticate you. Check your API key.'\nexit 0";

#[test]
fn an_unreachable_model_pauses_the_agent_without_spending_attempts() {
    let env = TestEnv::new();
    env.ready(
        CODEX_OFFLINE,
        "timeout: 600ms\nagent_cooldown: 1h\nmax_attempts: 1\n",
    );
    env.write_ticket("todo", "a", "---\ntitle: A\npriority: 1\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let out = env.orch().args(["tick", "--jobs", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("a: agent-unavailable (attempt 1): the agent cannot reach its model"),
        "{text}"
    );
    assert_eq!(
        env.state_of("a"),
        "todo",
        "back to todo, not blocked with max_attempts 1"
    );
    let status = env.status();
    assert_eq!(status["ready"][0]["attempts_used"], 0);
    assert_eq!(status["paused_agents"][0]["agent"], "agent.sh");
    // The pause is on the plan branch, committed with the result.
    let committed = env.git(&["show", "--name-only", "--format=", "orch/plan"]);
    assert!(committed.contains("cooldown/agent.sh.md"), "{committed}");
    // While paused, a tick claims nothing and says nothing to cron.
    let out = env.tick();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    let explain = env.orch().args(["tick", "--explain"]).output().unwrap();
    assert!(String::from_utf8_lossy(&explain.stdout).contains("agent `agent.sh` is paused until"));
    // A person removes the pause: claims resume.
    std::fs::remove_file(env.plan().join("cooldown/agent.sh.md")).unwrap();
    let text = env.tick_ok();
    assert!(text.contains("claimed"), "{text}");
}

#[test]
fn a_rejected_key_with_exit_zero_is_recognised() {
    let env = TestEnv::new();
    env.ready(AIDER_401, "");
    env.write_ticket("todo", "key", "---\ntitle: Key\n---\n");
    let text = env.tick_ok();
    assert!(
        text.contains(
            "key: agent-unavailable (attempt 1): the agent was refused by its model (credentials)"
        ),
        "{text}"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/key/1.md")).unwrap();
    assert!(
        summary.contains("- outcome: agent-unavailable"),
        "{summary}"
    );
}

#[test]
fn a_success_that_mentions_an_error_stays_a_success() {
    let env = TestEnv::new();
    env.ready(
        "echo 'retrying: waiting for network'\necho done > done.txt",
        "",
    );
    env.write_ticket("todo", "fine", "---\ntitle: Fine\n---\n");
    let text = env.tick_ok();
    assert!(text.contains("fine: success"), "{text}");
    assert!(env.status()["paused_agents"].as_array().unwrap().is_empty());
}

/// Events as codex `exec --json` prints them.
const CODEX_EVENTS: &str = r#"echo '{"type":"thread.started","thread_id":"t1"}'
echo '{"type":"turn.started"}'
echo hello > hello.txt
echo '{"type":"item.completed","item":{"id":"i0","type":"command_execution","command":"bash -lc '"'"'echo hello > hello.txt'"'"'","aggregated_output":"","exit_code":0,"status":"completed"}}'
echo '{"type":"item.completed","item":{"id":"i1","type":"file_change","changes":[{"path":"hello.txt","kind":"add"}],"status":"completed"}}'
echo '{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"Wrote hello.txt."}}'
echo '{"type":"turn.completed","usage":{"input_tokens":1200,"cached_input_tokens":0,"output_tokens":85}}'"#;

#[test]
fn structured_events_are_recorded_in_the_summary() {
    let env = TestEnv::new();
    env.init();
    let agent = env.agent("agent", CODEX_EVENTS);
    std::fs::write(
        env.plan().join("orch.yaml"),
        format!(
            "agent: {{command: [\"{}\"], events: codex-json}}\n",
            agent.display()
        ),
    )
    .unwrap();
    env.write_ticket("todo", "events", "---\ntitle: Events\n---\n");
    let text = env.tick_ok();
    assert!(text.contains("events: success"), "{text}");
    let summary = std::fs::read_to_string(env.plan().join("runs/events/1.md")).unwrap();
    assert!(summary.contains("## What the agent did"), "{summary}");
    assert!(summary.contains("- commands run: 1"), "{summary}");
    assert!(summary.contains("- files changed: hello.txt"), "{summary}");
    assert!(summary.contains("- tokens: 1200 in, 85 out"), "{summary}");
    assert!(
        summary.contains("- last message: Wrote hello.txt."),
        "{summary}"
    );
}

#[test]
fn retry_chatter_does_not_count_as_progress() {
    let env = TestEnv::new();
    env.init();
    let agent = env.agent(
        "agent",
        "while true; do echo '{\"type\":\"error\",\"message\":\"Reconnecting... 2/5 (unexpected status 500)\"}'; sleep 0.05; done",
    );
    std::fs::write(
        env.plan().join("orch.yaml"),
        format!(
            "agent: {{command: [\"{}\"], events: codex-json}}\nno_progress_timeout: 400ms\nkill_grace: 100ms\n",
            agent.display()
        ),
    )
    .unwrap();
    env.write_ticket("todo", "chatty", "---\ntitle: Chatty\n---\n");
    let text = env.tick_ok();
    assert!(
        text.contains("chatty: stalled (attempt 1): no progress for 400ms"),
        "{text}"
    );
    assert!(env.agent_processes().is_empty());
}

#[test]
fn a_ticket_that_only_looks_unavailable_still_ends_in_blocked() {
    let env = TestEnv::new();
    // `loop` fails with an outage message in its tail every time, while
    // the same agent finishes another ticket: the outage is the ticket's
    // own output, so its third in a row counts.
    let agent = format!(
        "if [ \"$ORCH_TICKET\" = loop ]; then\n{AIDER_401}\nfi\n\
         echo ok > ok.txt && git add ok.txt && git commit -qm ok"
    );
    env.ready(
        &agent,
        "max_attempts: 1\nagent_cooldown: 1ms\nmax_in_progress: 1\n",
    );
    env.write_ticket(
        "todo",
        "loop",
        "---\ntitle: Loop\npriority: 1\n---\nLoop.\n",
    );
    env.tick_ok();
    assert_eq!(env.state_of("loop"), "todo");
    env.write_ticket(
        "todo",
        "fine",
        "---\ntitle: Fine\npriority: 0\n---\nFine.\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = env.tick_ok();
    assert_eq!(env.state_of("fine"), "done", "{text}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.tick_ok();
    assert_eq!(env.state_of("loop"), "todo");
    let pause = std::fs::read_to_string(env.plan().join("cooldown/aider.md"))
        .or_else(|_| {
            std::fs::read_dir(env.plan().join("cooldown"))
                .unwrap()
                .flatten()
                .next()
                .map(|e| std::fs::read_to_string(e.path()))
                .unwrap()
        })
        .unwrap();
    assert!(pause.contains("- recovered: "), "{pause}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let text = env.tick_ok();
    assert!(
        text.contains("loop: agent-unavailable (attempt 3)"),
        "{text}"
    );
    assert_eq!(env.state_of("loop"), "blocked", "{text}");
}

/// Seen: a long outage blocked the whole queue, three unavailable results
/// in a row counting as an attempt. While the agent finishes nothing, no
/// number of them costs one.
#[test]
fn a_long_outage_costs_no_attempt() {
    let env = TestEnv::new();
    env.ready(AIDER_401, "max_attempts: 1\nagent_cooldown: 1ms\n");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\nDo a.\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\nDo b.\n");
    for _ in 0..5 {
        env.tick_ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for id in ["a", "b"] {
        assert_eq!(env.state_of(id), "todo");
        let text = std::fs::read_to_string(env.ticket_path("todo", id)).unwrap();
        assert_eq!(
            text.matches("outcome=agent-unavailable").count(),
            5,
            "{text}"
        );
    }
}

/// One line each CLI prints when its provider refuses it for a rate limit,
/// a usage limit or a quota, and what orch makes of it. aider exits 0
/// even then.
const LIMITS: &[(&str, &str, &str)] = &[
    (
        "codex",
        r#"{"type":"turn.failed","error":{"message":"You've hit your usage limit. Try again at 3:28 PM."}}"#,
        "has reached its usage limit",
    ),
    (
        "claude",
        "You've hit your limit · resets 3:30am (Asia/Calcutta)",
        "has reached its usage limit",
    ),
    (
        "aider",
        "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached\nThe API provider has rate limited you. Try again later or check your quotas.",
        "was rate-limited by its provider",
    ),
    (
        "opencode",
        r#"Error: OpenAI API error (429): {"param":null,"code":"rate_limit_exceeded","type":"rate_limit_error","message":"Rate limit exceeded. Please retry after a brief wait."}"#,
        "was rate-limited by its provider",
    ),
    (
        "gemini",
        "[API Error: You exceeded your current quota, please check your plan and billing details. (Status: RESOURCE_EXHAUSTED)]",
        "has run out of quota",
    ),
];

#[test]
fn each_cli_s_rate_or_usage_limit_pauses_the_agent_without_spending_attempts() {
    let env = TestEnv::new();
    for (cli, line, _) in LIMITS {
        std::fs::write(env.flag(&format!("{cli}.out")), format!("{line}\n")).unwrap();
    }
    env.ready(
        &format!(
            "cat '{}'/\"$ORCH_TICKET.out\"\n[ \"$ORCH_TICKET\" = aider ] && exit 0\nexit 1",
            env.flags_dir().display()
        ),
        "max_attempts: 1\nmax_in_progress: 5\nagent_cooldown: 1h\n",
    );
    for (cli, _, _) in LIMITS {
        env.write_ticket("todo", cli, &format!("---\ntitle: {cli}\n---\n"));
    }
    let text = env.tick_ok();
    for (cli, _, why) in LIMITS {
        assert!(
            text.contains(&format!(
                "{cli}: agent-unavailable (attempt 1): the agent {why}"
            )),
            "{cli}: {text}"
        );
        assert_eq!(
            env.state_of(cli),
            "todo",
            "{cli}: not blocked at max_attempts 1"
        );
    }
    let status = env.status();
    let ready = status["ready"].as_array().unwrap();
    assert_eq!(ready.len(), LIMITS.len(), "{status}");
    assert!(ready.iter().all(|t| t["attempts_used"] == 0), "{status}");
    let paused = &status["paused_agents"][0];
    assert_eq!(paused["agent"], "agent.sh");
    let until: jiff::Timestamp = paused["until"].as_str().unwrap().parse().unwrap();
    let in_50m = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(50);
    assert!(until > in_50m, "paused for agent_cooldown (1h): {until}");
    // The pause holds the queue: nothing is claimed while it lasts.
    assert_eq!(stdout(&env.tick()), "");
}

#[test]
fn unavailable_patterns_extend_the_built_in_ones_and_a_plain_failure_stays_failed() {
    let env = TestEnv::new();
    env.init();
    let agent = env.agent(
        "agent",
        "if [ \"$ORCH_TICKET\" = proxy ]; then echo 'fatal: UPSTREAM PROXY SAYS: come back later'; else echo 'test limiter::over_the_limit ... FAILED: status 429 != 200'; fi\nexit 1",
    );
    env.configure(
        &agent,
        &format!(
            "agent: {{command: [\"{}\"], unavailable_patterns: [\"upstream proxy says\"]}}\nmax_attempts: 1\nagent_cooldown: 1h",
            agent.display()
        ),
    );
    env.write_ticket("todo", "proxy", "---\ntitle: Proxy\npriority: 1\n---\n");
    env.write_ticket("todo", "work", "---\ntitle: Work\npriority: 2\n---\n");
    // The failure first, so the pause the other one sets cannot hold it.
    let text = env
        .orch()
        .args(["tick", "--ticket", "work"])
        .output()
        .unwrap();
    let text = stdout(&text);
    assert!(text.contains("work: failed (attempt 1)"), "{text}");
    assert_eq!(env.state_of("work"), "blocked", "a real failure counts");
    assert!(env.status()["paused_agents"].as_array().unwrap().is_empty());

    let text = env.tick_ok();
    assert!(
        text.contains(
            "proxy: agent-unavailable (attempt 1): the agent matched `upstream proxy says` of its unavailable_patterns (fatal: UPSTREAM PROXY SAYS: come back later)"
        ),
        "{text}"
    );
    assert_eq!(env.state_of("proxy"), "todo");
    assert_eq!(env.status()["paused_agents"][0]["agent"], "agent.sh");
}
