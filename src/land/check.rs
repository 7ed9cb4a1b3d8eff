//! Checks on a merged result, in a scratch worktree orch alone uses
//! (`.orch/landing`, detached at the candidate commit), under the
//! tickets' timeouts and the kernel sandbox like any `verify`.

use std::path::{Path, PathBuf};

use crate::agent::sandbox::{self, Policy};
use crate::agent::supervise::{self, Control, Ended, Spec};
use crate::board::Layout;
use crate::config::Config;
use crate::error::Result;
use crate::git::{MainRepo, Oid};

/// The registration name of the scratch worktree.
pub const SCRATCH_NAME: &str = "orch-landing";

/// How checks on one merged result went.
#[derive(Debug, Clone)]
pub struct Checked {
    /// None when every command passed; else what failed, in one line.
    pub failed: Option<String>,
    /// The last lines of output of the command that failed.
    pub tail: Vec<String>,
    /// How many commands ran.
    pub runs: u32,
}

/// Remove the scratch worktree a killed tick may have left, so each
/// landing run starts from a fresh checkout of its candidate.
pub fn clear_scratch(main: &MainRepo, layout: &Layout) -> Result<()> {
    let path = layout.land_scratch();
    if path.exists() || main.registration(SCRATCH_NAME).exists() {
        main.remove_worktree(SCRATCH_NAME, &path)?;
        main.force_prune_worktree(SCRATCH_NAME)?;
    }
    // A deletion that a killed orch did not finish.
    if let Ok(entries) = std::fs::read_dir(&layout.orch) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".landing") && name.contains(crate::git::REMOVING) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

/// Run `commands` on `candidate` in the scratch worktree, stopping at the
/// first failure; output is appended to `log`.
pub fn run(
    main: &MainRepo,
    layout: &Layout,
    config: &Config,
    candidate: Oid,
    commands: &[String],
    log: &Path,
    control: &Control,
) -> Result<Checked> {
    let mut checked = Checked {
        failed: None,
        tail: Vec::new(),
        runs: 0,
    };
    if commands.is_empty() {
        return Ok(checked);
    }
    clear_scratch(main, layout)?;
    let scratch = layout.land_scratch();
    main.add_ticket_worktree(SCRATCH_NAME, &scratch, candidate)?;
    crate::failpoint::hit("land-after-scratch");
    if let Some(dir) = log.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = layout.local.join("landing-tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| crate::Error::io("cannot create", &tmp, e))?;
    let run_id = crate::tick::settings::run_id(0);
    for cmd in commands {
        mark(
            log,
            &format!("checks on the merged result {candidate}: {cmd}"),
        );
        let spec = Spec {
            argv: vec!["sh".into(), "-c".into(), cmd.clone()],
            cwd: scratch.clone(),
            env: vec![("TMPDIR".into(), tmp.display().to_string())],
            env_remove: config
                .env_remove
                .iter()
                .cloned()
                .chain(["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"].map(String::from))
                .collect(),
            stdin: None,
            log_path: log.to_path_buf(),
            log_append: true,
            max_log: config.max_log_size,
            timeout: config.timeout,
            no_output_timeout: config.no_output_timeout,
            sandbox: policy(main, config, &scratch, &tmp),
            kill_grace: config.kill_grace,
            run_id: run_id.clone(),
            events: None,
            no_progress_timeout: None,
            token_limit: None,
        };
        let report = supervise::run(&spec, control);
        checked.runs += 1;
        if !report.success() {
            let how = match report.ended {
                Ended::Timeout => "timed out".to_string(),
                Ended::Stalled | Ended::NoProgress => "stalled (no output)".to_string(),
                Ended::Interrupted => "interrupted".to_string(),
                _ => format!("failed ({})", report.exit_text()),
            };
            checked.failed = Some(format!("`{cmd}` {how}"));
            checked.tail = report.tail.clone();
            if report.ended == Ended::Interrupted {
                checked.failed = None;
                return Err(crate::Error::other("interrupted while checking a landing"));
            }
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    clear_scratch(main, layout)?;
    Ok(checked)
}

/// The sandbox of checks on a merged result: they may write in the scratch
/// worktree, its registration, the objects, their temporary directory and
/// /dev, never the user's checkout, the plan or a ref.
fn policy(main: &MainRepo, config: &Config, scratch: &Path, tmp: &Path) -> Option<Policy> {
    if !config.sandbox.enabled || !sandbox::supported() {
        return None;
    }
    let mut writable: Vec<PathBuf> = vec![
        scratch.to_path_buf(),
        main.registration(SCRATCH_NAME),
        main.git_dir.join("objects"),
        tmp.to_path_buf(),
        PathBuf::from("/dev"),
        PathBuf::from("/proc"),
    ];
    for dir in &config.sandbox.writable {
        if let Some(p) = sandbox::expand_home(dir) {
            writable.push(p);
        }
    }
    Some(Policy { writable })
}

fn mark(log: &Path, what: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "\n[orch: {what}]");
    }
}
