//! `orch doctor`'s checks of what surrounds the board: what a tick needs
//! from the machine (git's identity, the agent on cron's PATH), from the
//! repository (the base and target branches), from the remote, and the
//! runs this host left claimed. Each only reads.

use crate::board::{Board, Layout};
use crate::config::Config;
use crate::git::MainRepo;
use crate::ticket::State;

use super::doctor::{Finding, Severity};

/// cron's PATH when the crontab sets none.
pub const CRON_PATH: &str = "/usr/bin:/bin";

pub fn surroundings(main: &MainRepo, layout: &Layout, out: &mut Vec<Finding>) {
    identity(main, out);
    stale_git_locks(main, layout, out);
    let Ok((config, _)) = Config::load(&layout.config_path()) else {
        // The config check says what is wrong with it.
        return;
    };
    agent_program(&config, out);
    branches(main, &config, out);
    remote(main, &config, out);
    let board = Board::load(layout);
    invalid_tickets(&board, out);
    ghost_claims(layout, &board, out);
}

/// Tickets no tick will run until a person fixes them, each with its file,
/// line and the fix, as `status` lists them.
fn invalid_tickets(board: &Board, out: &mut Vec<Finding>) {
    for p in board
        .problems
        .iter()
        .filter(|p| p.severity == crate::ticket::Severity::Error)
    {
        let at = match p.line {
            Some(line) => format!("{}:{line}", p.path),
            None => p.path.clone(),
        };
        out.push(Finding {
            check: "tickets",
            severity: Severity::Problem,
            what: format!("{at}: {}", p.message),
            why: "every tick skips an invalid ticket, and tickets that depend on it wait".into(),
            fix: p.hint.clone().unwrap_or_else(|| {
                format!(
                    "fix the file (`orch edit` checks it before it is saved): .orch/plan/{}",
                    p.path
                )
            }),
        });
    }
}

fn identity(main: &MainRepo, out: &mut Vec<Finding>) {
    let who = crate::gitcli::Identity::lookup(&main.repo);
    if who.is_users() {
        return;
    }
    out.push(Finding {
        check: "identity",
        severity: Severity::Info,
        what: format!(
            "git has no identity here: orch commits as `{} <{}>`, and gives the agents the same",
            who.name, who.email
        ),
        why: "the board's history and the tickets' branches say who did what by it".into(),
        fix: "git config --global user.name \"Your Name\" && git config --global user.email you@example.com".into(),
    });
}

/// The agent's program, on this PATH and on the one cron gives.
fn agent_program(config: &Config, out: &mut Vec<Finding>) {
    let Ok(resolved) = crate::agent::preset::resolve(&config.agent) else {
        return;
    };
    let Some(program) = resolved.argv.first() else {
        return;
    };
    let here = std::env::var_os("PATH").unwrap_or_default();
    let found = crate::agent::preset::locate(program, &here);
    let on_cron = crate::agent::preset::locate(program, std::ffi::OsStr::new(CRON_PATH));
    match (found, on_cron) {
        (None, None) => out.push(Finding {
            check: "agent",
            severity: Severity::Problem,
            what: format!("the agent program `{program}` is not found on PATH"),
            why: "no ticket runs: each tick skips them, saying so".into(),
            fix: format!(
                "install `{program}`, or set `agent:` in orch.yaml to its full path"
            ),
        }),
        (Some(at), None) => out.push(Finding {
            check: "agent",
            severity: Severity::Info,
            what: format!(
                "the agent program `{program}` is at {}, which cron's PATH ({CRON_PATH}) does not reach",
                at.display()
            ),
            why: "a tick run by cron without a PATH line finds no agent and runs nothing".into(),
            fix: format!(
                "put `PATH={}:{CRON_PATH}` at the top of the crontab (examples/cron), or give `agent:` the full path",
                at.parent().map(|p| p.display().to_string()).unwrap_or_default()
            ),
        }),
        _ => {}
    }
}

/// The base branch and the landing target, here or on the board's remote.
fn branches(main: &MainRepo, config: &Config, out: &mut Vec<Finding>) {
    let mut names = vec![("base", config.base.as_str())];
    if config.land != crate::config::Land::None && config.target() != config.base {
        names.push(("target", config.target()));
    }
    for (role, name) in names {
        let on_remote = config.remote.as_ref().is_some_and(|r| {
            main.ref_target(&crate::remote::tracking_ref(r, name))
                .is_some()
        });
        if main.branch_exists(name) || on_remote {
            continue;
        }
        out.push(Finding {
            check: "branches",
            severity: Severity::Problem,
            what: format!("the {role} branch `{name}` that orch.yaml names does not exist"),
            why: if role == "base" {
                "every tick stops on it (exit 2): tickets start from the base branch".into()
            } else {
                "nothing lands: finished tickets wait in landing".into()
            },
            fix: format!(
                "set `{role}:` in orch.yaml to the branch's new name, or create it (`git branch {name}`)"
            ),
        });
    }
}

/// Whether the board's remote answers, under orch's own time limit.
fn remote(main: &MainRepo, config: &Config, out: &mut Vec<Finding>) {
    let Some(name) = &config.remote else {
        return;
    };
    let asked = crate::remote::run_timed(
        &main.root,
        &["ls-remote", "--heads", name, crate::git::PLAN_BRANCH],
        config.remote_timeout,
    );
    let said = match asked {
        Ok(o) if o.ok => return,
        Ok(o) => crate::text::visible(o.stderr.trim()).into_owned(),
        Err(e) => crate::error::render_chain(&e),
    };
    out.push(Finding {
        check: "remote",
        severity: Severity::Problem,
        what: format!("the board's remote `{name}` does not answer: {said}"),
        why: "no tick claims anything while the board cannot be fetched; results wait here".into(),
        fix: format!("check `git ls-remote {name}`: the URL, the network, the credentials"),
    });
}

/// Tickets in progress, claimed on this host, that no run of this host
/// holds: the next tick's reconcile settles them.
fn ghost_claims(layout: &Layout, board: &Board, out: &mut Vec<Finding>) {
    let host = crate::board::host_name();
    for t in board.in_state(State::InProgress) {
        let Some(claim) = t.open_claim() else {
            continue;
        };
        if claim.host.as_deref() != Some(host.as_str()) {
            continue;
        }
        if crate::lock::RunLock::is_held(&layout.run_lock(&t.id)).unwrap_or(true) {
            continue;
        }
        out.push(Finding {
            check: "claims",
            severity: Severity::Problem,
            what: format!(
                "{} is in progress (attempt {}, claimed {}), but no run of this host holds it",
                t.id, claim.attempt, claim.at
            ),
            why: "its run ended without settling (a crash, a reboot); it stays in progress until a tick settles it".into(),
            fix: "the next tick settles it; `orch doctor --fix` does now".into(),
        });
    }
}

/// A git lock file older than this, that no process has open, was left by
/// a git (or orch) that died: a live one is held open by its writer for the
/// few milliseconds it takes.
const STALE_LOCK_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Git's own lock files left by a killed process. orch's locks are flocks
/// and die with their owner; git's are files that outlive it, and every
/// later git command in the repository (the agent's commit, the plan's)
/// fails with "Unable to create '...lock': File exists".
fn stale_git_locks(main: &MainRepo, layout: &Layout, out: &mut Vec<Finding>) {
    let git_dir = &main.git_dir;
    let mut candidates: Vec<std::path::PathBuf> =
        ["index.lock", "HEAD.lock", "packed-refs.lock", "config.lock"]
            .iter()
            .map(|f| git_dir.join(f))
            .collect();
    // Each worktree's own index and HEAD (the plan's, the tickets').
    if let Ok(dirs) = std::fs::read_dir(git_dir.join("worktrees")) {
        for d in dirs.flatten() {
            candidates.push(d.path().join("index.lock"));
            candidates.push(d.path().join("HEAD.lock"));
        }
    }
    // Ref locks, under refs/ only: a repository's refs are few directories.
    for entry in walkdir::WalkDir::new(git_dir.join("refs"))
        .into_iter()
        .flatten()
    {
        if entry.file_type().is_file() && entry.file_name().to_string_lossy().ends_with(".lock") {
            candidates.push(entry.into_path());
        }
    }
    let now = std::time::SystemTime::now();
    for lock in candidates {
        let Ok(meta) = std::fs::symlink_metadata(&lock) else {
            continue;
        };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if age < STALE_LOCK_AGE || !crate::process::holders_of(&lock).is_empty() {
            continue;
        }
        let shown = layout.display_local(&lock);
        out.push(Finding {
            check: "git-lock",
            severity: Severity::Problem,
            what: format!(
                "{shown} is a git lock that no process holds, {} old",
                super::human_secs(age.as_secs() as i64)
            ),
            why: "a git or orch process died holding it: git commands that need it (commits, ref updates) fail with \"File exists\" until it goes".into(),
            fix: format!("make sure no git command is running here, then: rm '{}'", lock.display()),
        });
    }
}
