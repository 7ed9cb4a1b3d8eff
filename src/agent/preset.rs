//! Command lines for the coding agents orch knows by name.
//!
//! Each preset runs the agent non-interactively with the prompt on stdin or
//! from `{prompt_file}`, allowed to edit files and run commands without
//! asking, because orch runs it unattended in a worktree made for the
//! ticket. docs/AGENTS.md gives each command line and the CLI version it
//! was checked against; flags change between versions, so check yours.

use std::collections::BTreeMap;

use crate::agent::events::Format;
use crate::config::AgentSpec;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub argv: &'static [&'static str],
    /// Whether the prompt goes to stdin (it is always in $ORCH_PROMPT_FILE).
    pub stdin: bool,
    /// The machine-readable output the command line asks for.
    pub events: Option<Format>,
    /// Where the CLI keeps its own configuration, sessions and caches
    /// (under `~/`): writable to it inside the sandbox. `$VAR|~/dir` is the
    /// variable's value where the agent's environment sets it.
    pub writable: &'static [&'static str],
    /// Arguments replaced when orch's own sandbox is on: a CLI's sandbox
    /// that needs mount namespaces cannot start inside Landlock, and orch's
    /// sandbox already confines it.
    pub in_sandbox: &'static [(&'static str, &'static str)],
}

/// Checked against codex-cli 0.169.0, claude-code 2.1.197, aider-chat
/// 0.86.2, opencode-ai 1.18.33 and gemini-cli 0.61.0: each argv passed the
/// CLI's own argument parser and reached a model endpoint. docs/AGENTS.md
/// has the details.
pub const PRESETS: &[Preset] = &[
    // `--full-auto` is rejected by codex 0.169; `exec` never asks for
    // approval, and workspace-write lets it edit the worktree.
    Preset {
        name: "codex",
        argv: &[
            "codex",
            "exec",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",
            "--color",
            "never",
            "--json",
            "-",
        ],
        stdin: true,
        events: Some(Format::CodexJson),
        writable: &["$CODEX_HOME|~/.codex"],
        in_sandbox: &[("workspace-write", "danger-full-access")],
    },
    // As root, claude refuses bypassPermissions unless IS_SANDBOX=1 is in
    // its environment (set it with `agent: {command: [...], env: ...}`).
    Preset {
        name: "claude",
        argv: &[
            "claude",
            "--print",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ],
        stdin: true,
        events: Some(Format::ClaudeStreamJson),
        writable: &["~/.claude", "~/.claude.json", "~/.config/claude"],
        in_sandbox: &[],
    },
    // aider cannot take the prompt on stdin (`--message-file -` falls into
    // interactive chat), and keeps its history out of the worktree only
    // when told where to put it.
    Preset {
        name: "aider",
        argv: &[
            "aider",
            "--message-file",
            "{prompt_file}",
            "--yes-always",
            "--no-check-update",
            "--no-show-release-notes",
            "--no-show-model-warnings",
            "--analytics-disable",
            "--no-pretty",
            "--no-stream",
            "--no-fancy-input",
            "--no-detect-urls",
            "--no-suggest-shell-commands",
            "--no-gitignore",
            "--no-restore-chat-history",
            "--chat-history-file",
            "{run_dir}/aider.chat.history.md",
            "--input-history-file",
            "{run_dir}/aider.input.history",
        ],
        stdin: false,
        events: None,
        writable: &["~/.aider"],
        in_sandbox: &[],
    },
    Preset {
        name: "opencode",
        argv: &["opencode", "run", "--auto"],
        stdin: true,
        events: None,
        writable: &[
            "~/.local/share/opencode",
            "~/.local/state/opencode",
            "~/.config/opencode",
        ],
        in_sandbox: &[],
    },
    // Without --skip-trust, gemini downgrades yolo in an untrusted folder
    // (every fresh worktree) and exits 55.
    Preset {
        name: "gemini",
        argv: &["gemini", "--approval-mode", "yolo", "--skip-trust"],
        stdin: true,
        events: None,
        writable: &["~/.gemini"],
        in_sandbox: &[],
    },
];

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// Where `program` would be found: itself if it names a path, else the
/// first executable of that name on `path`.
pub fn locate(program: &str, path: &std::ffi::OsStr) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Whether `agent:` names a program by its path rather than a preset: cron's
/// short `PATH` is fixed by naming the program (`/opt/bin/codex`), and a
/// path is never a preset's name.
pub fn is_path(name: &str) -> bool {
    name.contains('/')
}

/// The preset whose program a path names (`/opt/bin/codex` is codex):
/// someone who gives the absolute path of codex wants codex's command line,
/// not a bare `codex` that would start its interactive interface.
pub fn by_path(name: &str) -> Option<&'static Preset> {
    if !is_path(name) {
        return None;
    }
    std::path::Path::new(name)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(find)
}

/// The preset `name` stands for: by its name, or by its program's path.
pub fn by_name_or_path(name: &str) -> Option<&'static Preset> {
    if is_path(name) {
        by_path(name)
    } else {
        find(name)
    }
}

/// How to run an agent: argv template, extra environment, whether to feed
/// stdin, and its machine-readable output format.
pub struct Resolved {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub stdin: bool,
    pub events: Option<Format>,
    /// The CLI's own directories (see [`Preset::writable`]).
    pub writable: Vec<String>,
    /// See [`Preset::in_sandbox`].
    pub in_sandbox: Vec<(String, String)>,
}

pub fn resolve(spec: &AgentSpec) -> Result<Resolved> {
    let (name, args, env) = match spec {
        AgentSpec::Preset(name) => (name, &[][..], BTreeMap::new()),
        AgentSpec::PresetWith {
            preset, args, env, ..
        } => (preset, args.as_slice(), env.clone()),
        AgentSpec::Command {
            command,
            env,
            events,
            ..
        } => {
            return Ok(Resolved {
                argv: command.clone(),
                env: env.clone(),
                stdin: true,
                events: *events,
                writable: Vec::new(),
                in_sandbox: Vec::new(),
            });
        }
    };
    let program = is_path(name).then(|| name.clone());
    let Some(p) = by_name_or_path(name) else {
        if let (Some(program), AgentSpec::Preset(_)) = (&program, spec) {
            // `agent: /path/to/my-agent`: a command of one word.
            return Ok(Resolved {
                argv: vec![program.clone()],
                env,
                stdin: true,
                events: None,
                writable: Vec::new(),
                in_sandbox: Vec::new(),
            });
        }
        return Err(Error::Config {
            path: "orch.yaml".into(),
            line: None,
            message: format!("unknown agent preset `{name}`"),
            hint: Some(format!(
                "use one of {}, or give a command: `agent: {{command: [\"my-agent\", \"{{prompt_file}}\"]}}`",
                names().join(", ")
            )),
        });
    };
    let mut argv: Vec<String> = p.argv.iter().map(|s| s.to_string()).collect();
    if let (Some(program), Some(first)) = (program, argv.first_mut()) {
        *first = program;
    }
    // Extra arguments go before a trailing `-` (read the prompt from stdin),
    // which must stay the last argument.
    let at = if argv.last().is_some_and(|a| a == "-") {
        argv.len() - 1
    } else {
        argv.len()
    };
    argv.splice(at..at, args.iter().cloned());
    Ok(Resolved {
        argv,
        env,
        stdin: p.stdin,
        events: p.events,
        writable: p.writable.iter().map(|w| w.to_string()).collect(),
        in_sandbox: p
            .in_sandbox
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    })
}

/// Replace placeholders that stand as a whole argument. Ticket text is
/// never spliced into an argument, so nothing a ticket says reaches a shell.
pub fn expand(argv: &[String], vars: &BTreeMap<&str, String>) -> Vec<String> {
    argv.iter()
        .map(|a| {
            a.strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .and_then(|name| vars.get(name))
                .cloned()
                .unwrap_or_else(|| a.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_whole_arguments_only() {
        let mut vars = BTreeMap::new();
        vars.insert("prompt_file", "/p".to_string());
        let argv: Vec<String> = ["a", "{prompt_file}", "x{prompt_file}", "{nope}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand(&argv, &vars),
            ["a", "/p", "x{prompt_file}", "{nope}"]
        );
    }

    #[test]
    fn preset_args_go_before_the_stdin_marker() {
        let spec = AgentSpec::PresetWith {
            preset: "codex".into(),
            args: vec!["-c".into(), "model_provider=x".into()],
            env: BTreeMap::new(),
            unavailable_patterns: Vec::new(),
        };
        let r = resolve(&spec).unwrap();
        assert_eq!(r.argv[r.argv.len() - 3..], ["-c", "model_provider=x", "-"]);
    }

    #[test]
    fn a_path_is_a_command_or_the_preset_of_its_program() {
        let r = resolve(&AgentSpec::Preset("/opt/bin/codex".into())).unwrap();
        assert_eq!(r.argv[0], "/opt/bin/codex");
        assert_eq!(r.argv[1..], find("codex").unwrap().argv[1..]);
        assert!(r.events.is_some());
        let r = resolve(&AgentSpec::Preset("./bin/my-agent".into())).unwrap();
        assert_eq!(r.argv, ["./bin/my-agent"]);
        assert!(r.stdin && r.events.is_none());
        let with = |preset: &str| AgentSpec::PresetWith {
            preset: preset.into(),
            args: vec!["--model".into(), "m".into()],
            env: BTreeMap::new(),
            unavailable_patterns: Vec::new(),
        };
        let r = resolve(&with("/usr/local/bin/claude")).unwrap();
        assert_eq!(r.argv[0], "/usr/local/bin/claude");
        assert_eq!(r.argv[r.argv.len() - 2..], ["--model", "m"]);
        assert!(resolve(&with("/usr/local/bin/my-agent")).is_err());
    }

    #[test]
    fn every_preset_resolves() {
        for p in PRESETS {
            let r = resolve(&AgentSpec::Preset(p.name.into())).unwrap();
            assert_eq!(r.argv[0], p.name);
        }
        assert!(resolve(&AgentSpec::Preset("nope".into())).is_err());
    }
}
