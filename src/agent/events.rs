//! Machine-readable agent output: codex `exec --json` (JSON lines of
//! thread, turn and item events) and claude `--output-format stream-json`.
//! Each line is read for what the agent did (commands, files, tokens) and
//! whether it was real progress: retry chatter ("Reconnecting...") keeps a
//! stream busy without moving the work, so `no_progress_timeout` ignores it.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `codex exec --json`
    CodexJson,
    /// `claude --print --output-format stream-json --verbose`
    ClaudeStreamJson,
}

/// What the agent did, as its events tell it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    pub commands: Vec<String>,
    pub files: BTreeSet<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub last_message: Option<String>,
    pub errors: Vec<String>,
}

impl Activity {
    pub fn is_empty(&self) -> bool {
        *self == Activity::default()
    }
}

/// Read one line. Returns (is it real progress, a human line for display).
pub fn parse_line(format: Format, line: &str, a: &mut Activity) -> (bool, Option<String>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
        return (false, None);
    };
    match format {
        Format::CodexJson => codex(&v, a),
        Format::ClaudeStreamJson => claude(&v, a),
    }
}

fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn push_command(a: &mut Activity, cmd: String) {
    if a.commands.len() < 200 && a.commands.last() != Some(&cmd) {
        a.commands.push(cmd);
    }
}

fn codex(v: &serde_json::Value, a: &mut Activity) -> (bool, Option<String>) {
    let kind = v["type"].as_str().unwrap_or("");
    match kind {
        "item.started" | "item.updated" | "item.completed" => {
            let item = &v["item"];
            let done = kind == "item.completed";
            match item["type"].as_str().unwrap_or("") {
                "command_execution" => {
                    let cmd = text(&item["command"]).unwrap_or_default();
                    if done {
                        push_command(a, cmd.clone());
                    }
                    (true, Some(format!("$ {cmd}")))
                }
                "file_change" => {
                    if let Some(changes) = item["changes"].as_array() {
                        for c in changes {
                            if let Some(p) = text(&c["path"]) {
                                a.files.insert(p);
                            }
                        }
                    }
                    (true, Some(format!("changed {} file(s)", a.files.len())))
                }
                "agent_message" | "reasoning" => {
                    let t = text(&item["text"]);
                    if done && item["type"] == "agent_message" {
                        a.last_message = t.clone();
                    }
                    (true, t)
                }
                _ => (true, None),
            }
        }
        "turn.completed" => {
            let u = &v["usage"];
            a.input_tokens += u["input_tokens"].as_u64().unwrap_or(0);
            a.output_tokens += u["output_tokens"].as_u64().unwrap_or(0);
            (true, Some("turn completed".into()))
        }
        "turn.failed" => {
            if let Some(m) = text(&v["error"]["message"]) {
                a.errors.push(m.clone());
                return (false, Some(m));
            }
            (false, None)
        }
        "error" => (false, text(&v["message"])),
        _ => (false, None),
    }
}

fn claude(v: &serde_json::Value, a: &mut Activity) -> (bool, Option<String>) {
    match v["type"].as_str().unwrap_or("") {
        "assistant" => {
            let mut shown = None;
            if let Some(content) = v["message"]["content"].as_array() {
                for c in content {
                    match c["type"].as_str().unwrap_or("") {
                        "tool_use" => {
                            let input = &c["input"];
                            if let Some(cmd) = text(&input["command"]) {
                                push_command(a, cmd.clone());
                                shown = Some(format!("$ {cmd}"));
                            }
                            if let Some(p) = text(&input["file_path"]) {
                                shown = Some(format!("edit {p}"));
                                a.files.insert(p);
                            }
                        }
                        "text" => {
                            a.last_message = text(&c["text"]);
                            shown = a.last_message.clone();
                        }
                        _ => {}
                    }
                }
            }
            (true, shown)
        }
        "user" => (true, None),
        "result" => {
            let u = &v["usage"];
            a.input_tokens += u["input_tokens"].as_u64().unwrap_or(0);
            a.output_tokens += u["output_tokens"].as_u64().unwrap_or(0);
            if v["is_error"].as_bool() == Some(true)
                && let Some(m) = text(&v["result"])
            {
                a.errors.push(m.clone());
                return (false, Some(m));
            }
            (true, text(&v["result"]))
        }
        // system events: init, api_retry (retry chatter).
        _ => (false, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codex_events() {
        let mut a = Activity::default();
        let lines = [
            r#"{"type":"thread.started","thread_id":"t"}"#,
            r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
            r#"{"type":"item.completed","item":{"id":"i0","type":"command_execution","command":"bash -lc 'echo hi > hello.txt'","exit_code":0,"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"i1","type":"file_change","changes":[{"path":"hello.txt","kind":"add"}],"status":"completed"}}"#,
            r#"{"type":"item.completed","item":{"id":"i2","type":"agent_message","text":"done"}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":120,"cached_input_tokens":0,"output_tokens":30}}"#,
        ];
        let progress: Vec<bool> = lines
            .iter()
            .map(|l| parse_line(Format::CodexJson, l, &mut a).0)
            .collect();
        assert_eq!(progress, [false, false, true, true, true, true]);
        assert_eq!(a.commands, ["bash -lc 'echo hi > hello.txt'"]);
        assert!(a.files.contains("hello.txt"));
        assert_eq!((a.input_tokens, a.output_tokens), (120, 30));
        assert_eq!(a.last_message.as_deref(), Some("done"));
    }

    #[test]
    fn claude_events() {
        let mut a = Activity::default();
        let lines = [
            r#"{"type":"system","subtype":"init"}"#,
            r#"{"type":"system","subtype":"api_retry","attempt":1}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"ls"}}]}}"#,
            r#"{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Write","input":{"file_path":"a.txt","content":"x"}}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Done.","usage":{"input_tokens":10,"output_tokens":5}}"#,
        ];
        let progress: Vec<bool> = lines
            .iter()
            .map(|l| parse_line(Format::ClaudeStreamJson, l, &mut a).0)
            .collect();
        assert_eq!(progress, [false, false, true, true, true]);
        assert_eq!(a.commands, ["ls"]);
        assert!(a.files.contains("a.txt"));
        assert_eq!(a.output_tokens, 5);
    }
}
