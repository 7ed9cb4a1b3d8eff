//! End-to-end: the real Codex CLI and Aider, run by `orch tick` through
//! their presets, against the scripted model server on loopback. The CLIs
//! come from `scripts/install-agents.sh` (pinned, in a cache outside the
//! repository; `.ci/run` installs them). Where they are not installed, each
//! test prints why it is skipped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::env::{TestEnv, stderr, stdout};
use crate::model_server::{ModelServer, Reply, unreachable_base_url};

/// The directory holding the named CLI, or why it is not there.
fn cli_dir(name: &str) -> Result<PathBuf, String> {
    let cache = std::env::var_os("ORCH_AGENTS_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/orch-agents")))
        .ok_or("HOME is not set")?;
    let dir = match name {
        "codex" => cache.join("codex/node_modules/.bin"),
        _ => cache.join("aider/bin"),
    };
    if dir.join(name).exists() {
        Ok(dir)
    } else {
        Err(format!(
            "{name} is not installed in {} (run scripts/install-agents.sh)",
            dir.display()
        ))
    }
}

macro_rules! require_cli {
    ($name:expr) => {
        match cli_dir($name) {
            Ok(dir) => dir,
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    };
}

/// Run `orch tick` with the CLI's directory first on PATH.
fn tick_with(env: &TestEnv, dir: &std::path::Path) -> (std::process::Output, Duration) {
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let start = Instant::now();
    let out = env.orch().arg("tick").env("PATH", path).output().unwrap();
    (out, start.elapsed())
}

fn summary(env: &TestEnv, id: &str) -> String {
    std::fs::read_to_string(env.plan().join(format!("runs/{id}/1.md"))).unwrap_or_default()
}

fn sse(events: &[serde_json::Value]) -> Reply {
    Reply::Sse(
        events
            .iter()
            .map(|e| (e["type"].as_str().unwrap_or("").to_string(), e.to_string()))
            .collect(),
    )
}

fn completed(id: &str) -> serde_json::Value {
    serde_json::json!({"type": "response.completed", "response": {"id": id,
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}}})
}

/// codex's exec_command tool writing hello.txt, then a final message.
fn codex_writes_hello() -> Vec<Reply> {
    vec![
        sse(&[
            serde_json::json!({"type": "response.output_item.done", "item": {"type": "function_call",
                "call_id": "call_1", "name": "exec_command",
                "arguments": serde_json::json!({"cmd": "printf hello > hello.txt", "login": false}).to_string()}}),
            completed("resp_1"),
        ]),
        sse(&[
            serde_json::json!({"type": "response.output_item.done", "item": {"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "Wrote hello.txt."}]}}),
            completed("resp_2"),
        ]),
    ]
}

/// The codex preset pointed at `base_url` with codex's own overrides, and a
/// private CODEX_HOME so a user's ~/.codex is never read or written.
fn configure_codex(env: &TestEnv, base_url: &str, extra: &str) {
    let home = env.dir.path().join("codex-home");
    std::fs::create_dir_all(&home).unwrap();
    let yaml = format!(
        r#"base: main
agent:
  preset: codex
  args: [-c, model_provider=orch, -c, model_providers.orch.name=orch,
         -c, "model_providers.orch.base_url={base_url}",
         -c, model_providers.orch.env_key=ORCH_TEST_KEY,
         -c, model_providers.orch.wire_api=responses,
         -c, model_providers.orch.request_max_retries=0,
         -c, model_providers.orch.stream_max_retries=0,
         -m, gpt-test]
  env: {{CODEX_HOME: "{}", ORCH_TEST_KEY: test}}
kill_grace: 500ms
{extra}"#,
        home.display()
    );
    std::fs::write(env.plan().join("orch.yaml"), yaml).unwrap();
}

const HELLO_TICKET: &str = "---\ntitle: Say hello\n---\nCreate hello.txt containing hello.\n";

#[test]
fn codex_edits_the_worktree_through_a_scripted_turn() {
    let dir = require_cli!("codex");
    let server = ModelServer::start(codex_writes_hello());
    let env = TestEnv::new();
    env.init();
    configure_codex(
        &env,
        &server.base_url(),
        "timeout: 2m\nno_output_timeout: 1m\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, _) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("hello: success (attempt 1)"),
        "{}\n{}",
        stdout(&out),
        summary(&env, "hello")
    );
    assert_eq!(env.git(&["show", "orch/hello:hello.txt"]), "hello");
    let posts = server.posts();
    assert_eq!(posts.len(), 2, "a tool call, then the final answer");
    assert!(posts[0].path.ends_with("/responses"));
    assert!(
        posts[0].body.contains("Create hello.txt containing hello."),
        "the prompt carries the ticket"
    );
    assert!(
        posts[1].body.contains("function_call_output"),
        "codex sent the tool's output back"
    );
    let s = summary(&env, "hello");
    assert!(s.contains("## What the agent did"), "{s}");
    assert!(s.contains("printf hello > hello.txt"), "{s}");
    assert!(s.contains("- last message: Wrote hello.txt."), "{s}");
    assert!(s.contains("- tokens: 20 in, 10 out"), "{s}");
    assert!(env.agent_processes().is_empty());
}

#[test]
fn codex_gives_up_on_server_errors_and_the_attempt_fails() {
    let dir = require_cli!("codex");
    let server = ModelServer::start(vec![Reply::Json(
        500,
        r#"{"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}"#.into(),
    )]);
    let env = TestEnv::new();
    env.init();
    configure_codex(
        &env,
        &server.base_url(),
        "timeout: 2m\nno_output_timeout: 1m\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, _) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello: failed (attempt 1)"),
        "{}",
        stdout(&out)
    );
    let s = summary(&env, "hello");
    // codex's own words for a 5xx, from its event stream and its output.
    assert!(s.contains("experiencing high demand"), "{s}");
    assert!(env.agent_processes().is_empty());
}

#[test]
fn codex_waiting_on_a_silent_server_is_stopped_by_the_no_output_timeout() {
    let dir = require_cli!("codex");
    let server = ModelServer::start(vec![Reply::Hang]);
    let env = TestEnv::new();
    env.init();
    configure_codex(
        &env,
        &server.base_url(),
        "timeout: 2m\nno_output_timeout: 3s\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, elapsed) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello: stalled (attempt 1): no output for 3s"),
        "{}",
        stdout(&out)
    );
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    assert!(
        env.agent_processes().is_empty(),
        "codex and its children are gone"
    );
}

#[test]
fn codex_without_a_server_is_settled_as_agent_unavailable_within_the_timeout() {
    let dir = require_cli!("codex");
    let env = TestEnv::new();
    env.init();
    configure_codex(
        &env,
        &unreachable_base_url(),
        "timeout: 6s\nno_output_timeout: 1m\nmax_attempts: 1\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, elapsed) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("hello: agent-unavailable (attempt 1): the agent cannot reach its model"),
        "{text}\n{}",
        summary(&env, "hello")
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "settled within the timeout: {elapsed:?}"
    );
    assert_eq!(
        env.state_of("hello"),
        "todo",
        "no attempt spent, even with max_attempts 1"
    );
    assert_eq!(env.status()["paused_agents"][0]["agent"], "codex");
    assert!(env.agent_processes().is_empty());
}

#[test]
fn codex_refused_credentials_are_agent_unavailable() {
    let dir = require_cli!("codex");
    let server = ModelServer::start(vec![Reply::Json(
        401,
        r#"{"error":{"message":"Incorrect API key provided: test.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
    )]);
    let env = TestEnv::new();
    env.init();
    configure_codex(
        &env,
        &server.base_url(),
        "timeout: 2m\nno_output_timeout: 1m\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, _) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("hello: agent-unavailable (attempt 1): the agent was refused by its model"),
        "{}\n{}",
        stdout(&out),
        summary(&env, "hello")
    );
}

/// The aider preset pointed at `base_url` with its own API-base option.
fn configure_aider(env: &TestEnv, base_url: &str, extra: &str) {
    // Users have an identity; without one aider writes a placeholder into
    // the repository's shared config, which the sandbox refuses.
    env.git(&["config", "user.name", "Test Author"]);
    env.git(&["config", "user.email", "author@example.com"]);
    let yaml = format!(
        r#"base: main
agent:
  preset: aider
  args: [--model, openai/gpt-test, --openai-api-base, "{base_url}", --openai-api-key, test]
  env: {{LITELLM_LOCAL_MODEL_COST_MAP: "True"}}
kill_grace: 500ms
{extra}"#
    );
    std::fs::write(env.plan().join("orch.yaml"), yaml).unwrap();
}

fn chat(content: &str) -> Reply {
    Reply::Json(
        200,
        serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-test", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
        .to_string(),
    )
}

#[test]
fn aider_edits_and_commits_through_a_scripted_reply() {
    let dir = require_cli!("aider");
    // aider's whole-file edit format, then a commit message.
    let server = ModelServer::start(vec![
        chat("hello.txt\n```\nhello\n```\n"),
        chat("Add hello.txt"),
    ]);
    let env = TestEnv::new();
    env.init();
    configure_aider(
        &env,
        &server.base_url(),
        "timeout: 3m\nno_output_timeout: 2m\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, _) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("hello: success (attempt 1)"),
        "{}\n{}",
        stdout(&out),
        summary(&env, "hello")
    );
    assert_eq!(env.git(&["show", "orch/hello:hello.txt"]), "hello\n");
    let log = env.git(&["log", "--format=%s", "orch/hello"]);
    assert!(log.contains("Add hello.txt"), "aider's own commit: {log}");
    let posts = server.posts();
    assert!(posts[0].path.ends_with("/chat/completions"));
    assert!(
        posts[0].body.contains("Create hello.txt containing hello."),
        "the prompt carries the ticket"
    );
    // Its history went to orch's state directory, not into the worktree.
    let files = env.git(&["ls-tree", "-r", "--name-only", "orch/hello"]);
    assert!(!files.contains(".aider.chat.history"), "{files}");
    assert!(env.agent_processes().is_empty());
}

#[test]
fn aider_without_a_server_is_settled_as_agent_unavailable() {
    let dir = require_cli!("aider");
    let env = TestEnv::new();
    env.init();
    configure_aider(
        &env,
        &unreachable_base_url(),
        "timeout: 20s\nno_output_timeout: 2m\n",
    );
    env.write_ticket("todo", "hello", HELLO_TICKET);
    let (out, _) = tick_with(&env, &dir);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .contains("hello: agent-unavailable (attempt 1): the agent cannot reach its model"),
        "{}\n{}",
        stdout(&out),
        summary(&env, "hello")
    );
    assert!(env.agent_processes().is_empty());
}
