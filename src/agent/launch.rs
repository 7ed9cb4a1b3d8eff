//! From a ticket's settings and its prepared worktree to the exact command
//! orch spawns: argv with placeholders filled, the `ORCH_*` environment, a
//! `PATH` on which the agent finds `orch submit`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::agent::contract::{
    ENV_ATTEMPT, ENV_BRANCH, ENV_PROMPT_FILE, ENV_RESULT_FILE, ENV_TICKET, ENV_WORKTREE,
};
use crate::agent::preset;
use crate::agent::sandbox::{self, Policy};
use crate::agent::supervise::Spec;
use crate::board::Layout;
use crate::board::layout::CONFIG_DISPLAY;
use crate::config::AgentSpec;
use crate::error::{Error, Result};
use crate::tick::settings::RunSettings;

/// Everything about one attempt that the command depends on.
pub struct Attempt<'a> {
    pub layout: &'a Layout,
    pub settings: &'a RunSettings,
    pub id: &'a str,
    pub attempt: u32,
    pub run_id: &'a str,
    pub worktree: &'a Path,
    pub branch: &'a str,
    pub prompt_file: &'a Path,
    pub result_file: &'a Path,
    pub prompt_text: &'a str,
    /// The repository's common git directory.
    pub git_dir: &'a Path,
    /// Who orch commits as; the agent gets it where git has no identity.
    pub identity: &'a crate::gitcli::Identity,
}

/// The supervised command for the agent of `a`.
pub fn agent_spec(a: &Attempt<'_>) -> Result<Spec> {
    let preset::Resolved {
        argv,
        env: agent_env,
        stdin,
        events,
        writable,
        in_sandbox,
    } = preset::resolve(&a.settings.agent)?;
    let run_dir = a.layout.run_dir(a.id, a.attempt);
    let tmp = run_dir.join("tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    let wt = a.worktree.display().to_string();
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("prompt_file", a.prompt_file.display().to_string());
    vars.insert("worktree", wt.clone());
    vars.insert("ticket", a.id.to_string());
    vars.insert("attempt", a.attempt.to_string());
    vars.insert("branch", a.branch.to_string());
    vars.insert("state_dir", a.layout.state_dir(a.id).display().to_string());
    vars.insert("run_dir", run_dir.display().to_string());
    let argv = preset::expand(&argv, &vars);
    let mut env: Vec<(String, String)> = vec![
        (ENV_TICKET.into(), a.id.to_string()),
        (ENV_ATTEMPT.into(), a.attempt.to_string()),
        (ENV_WORKTREE.into(), wt),
        (ENV_BRANCH.into(), a.branch.to_string()),
        (ENV_PROMPT_FILE.into(), a.prompt_file.display().to_string()),
        (ENV_RESULT_FILE.into(), a.result_file.display().to_string()),
        // The one temporary directory the sandbox lets the agent write.
        ("TMPDIR".into(), tmp.display().to_string()),
    ];
    if let Some(path) = path_with_orch() {
        env.push(("PATH".into(), path));
    }
    // Without it the agent's own `git commit` fails ("Author identity
    // unknown"); the agent's `env:` in orch.yaml still wins.
    env.extend(a.identity.agent_env());
    env.extend(agent_env);
    let mut env_remove = a.settings.env_remove.clone();
    // The agent works in its worktree, whatever git environment orch ran in.
    env_remove.extend(["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"].map(String::from));
    let sandbox = sandbox_policy(a, &run_dir, &writable, &env);
    let argv = if sandbox.is_some() {
        argv.into_iter()
            .map(|arg| {
                in_sandbox
                    .iter()
                    .find(|(from, _)| *from == arg)
                    .map(|(_, to)| to.clone())
                    .unwrap_or(arg)
            })
            .collect()
    } else {
        argv
    };
    Ok(Spec {
        argv,
        cwd: a.worktree.to_path_buf(),
        env,
        env_remove,
        stdin: stdin.then(|| a.prompt_text.as_bytes().to_vec()),
        log_path: a.layout.log_path(a.id, a.attempt),
        log_append: false,
        max_log: a.settings.max_log,
        timeout: a.settings.timeout,
        no_output_timeout: a.settings.no_output_timeout,
        kill_grace: a.settings.kill_grace,
        run_id: a.run_id.to_string(),
        events,
        no_progress_timeout: a.settings.no_progress_timeout,
        // Set by the tick, which knows what the ticket and the day spent.
        token_limit: None,
        sandbox,
    })
}

/// `$VAR|fallback`: the variable's value in the agent's environment (or
/// orch's), else the fallback; any other entry as it is.
fn relocated(entry: &str, env: &[(String, String)]) -> Option<String> {
    let Some((var, fallback)) = entry
        .strip_prefix('$')
        .and_then(|rest| rest.split_once('|'))
    else {
        return Some(entry.to_string());
    };
    env.iter()
        .rev()
        .find(|(k, _)| k == var)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(var).ok())
        .filter(|v| !v.is_empty())
        .or_else(|| Some(fallback.to_string()))
}

/// Where the agent of `a` may write, or None with the sandbox off or
/// unsupported here.
fn sandbox_policy(
    a: &Attempt<'_>,
    run_dir: &Path,
    preset_dirs: &[String],
    env: &[(String, String)],
) -> Option<Policy> {
    if !a.settings.sandbox.enabled || !sandbox::supported() {
        return None;
    }
    let mut writable = vec![
        a.worktree.to_path_buf(),
        a.git_dir
            .join("worktrees")
            .join(Layout::worktree_name(a.id)),
        a.git_dir.join("objects"),
        run_dir.to_path_buf(),
        PathBuf::from("/dev"),
        // Namespaces (bubblewrap, which codex's own sandbox uses) are set up
        // by writing /proc/<pid>/uid_map; a process can only write its own
        // or its children's entries there unless it is root.
        PathBuf::from("/proc"),
    ];
    // Git LFS keeps content in the common git directory: an agent that
    // stages a file under an LFS path (and orch's commit after) writes there.
    let lfs = a.git_dir.join("lfs");
    if lfs.is_dir() {
        writable.push(lfs);
    }
    for dir in preset_dirs.iter().chain(&a.settings.sandbox.writable) {
        let Some(path) = relocated(dir, env).and_then(|d| sandbox::expand_home(&d)) else {
            continue;
        };
        // A preset's own directory may not exist before its first run; the
        // sandbox would stop the CLI making it. A file is left as it is.
        if preset_dirs.contains(dir) && !path.exists() && path.extension().is_none() {
            let _ = std::fs::create_dir_all(&path);
        }
        writable.push(path);
    }
    Some(Policy { writable })
}

/// A `verify` command run like the agent, appending to its log. It keeps
/// the agent's run id: a verify orphaned by a dead supervisor is found and
/// killed like the agent.
pub fn verify_spec(agent: &Spec, cmd: &str) -> Spec {
    Spec {
        argv: vec!["sh".into(), "-c".into(), cmd.to_string()],
        log_append: true,
        stdin: None,
        events: None,
        token_limit: None,
        ..agent.clone()
    }
}

/// `git commit` with the repository's hooks, run like `verify`: in the
/// agent's sandbox, under its timeouts, appending to its log, as the
/// identity orch commits with.
pub fn hook_spec(agent: &Spec, argv: &[String], who: &crate::gitcli::Identity) -> Spec {
    let (env, env_remove) = crate::gitcli::env_for_supervised();
    let mut spec = Spec {
        argv: argv.to_vec(),
        log_append: true,
        stdin: None,
        events: None,
        no_progress_timeout: None,
        token_limit: None,
        ..agent.clone()
    };
    spec.env.extend(env);
    spec.env.extend(who.env());
    spec.env_remove.extend(env_remove);
    spec
}

/// The agent's program must exist before anything is claimed for it, or
/// every ticket would spend its attempts on a missing binary (a short PATH
/// under cron is the usual cause).
pub fn check_program(agent: &AgentSpec) -> Result<()> {
    let argv = preset::resolve(agent)?.argv;
    let Some(program) = argv.first() else {
        return Err(Error::usage("the agent command is empty"));
    };
    // A relative path runs from each ticket's worktree, a checkout of the
    // repository: one that climbs out with `..` names another file there
    // than here, and would fail every attempt.
    let relative = std::path::Path::new(program);
    if relative.is_relative()
        && relative
            .components()
            .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(Error::Config {
            path: PathBuf::from(CONFIG_DISPLAY),
            line: None,
            message: format!(
                "the agent program `{program}` is a relative path out of the repository; it runs from each ticket's worktree, where it names another file"
            ),
            hint: Some(
                "give its absolute path, or a path inside the repository (`./scripts/agent.sh`, run from the worktree's copy)".into(),
            ),
        });
    }
    let path = path_with_orch().unwrap_or_default();
    if preset::locate(program, std::ffi::OsStr::new(&path)).is_some() {
        return Ok(());
    }
    Err(Error::Config {
        path: PathBuf::from(CONFIG_DISPLAY),
        line: None,
        message: format!("the agent program `{program}` cannot be found or is not executable"),
        hint: Some(format!(
            "install it, or give its absolute path in `agent:`; cron runs with a short PATH (PATH here: {path})"
        )),
    })
}

/// PATH with the directory of the running orch appended, so an agent can
/// call `orch submit` even when orch is not installed on PATH.
fn path_with_orch() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut parts: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if !parts.contains(&dir) {
        parts.push(dir);
    }
    std::env::join_paths(parts).ok()?.into_string().ok()
}
