//! The kernel sandbox around an agent and its `verify` commands: Landlock
//! (Linux 5.13 and later, unprivileged). Everything may be read and run;
//! writes are allowed only beneath the paths of a [`Policy`]: the ticket's
//! worktree, its private git directory, the repository's objects, the
//! run's own directory (its `TMPDIR` and result file), `/dev`, and the
//! agent's own configuration and cache directories. The user's checkout,
//! `.orch/plan`, other worktrees and every ref are read-only to the agent:
//! a write there fails with EACCES.
//!
//! orch itself is never restricted: the agent is started through
//! `orch sandbox-exec`, which restricts itself and then execs the agent.

use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr,
};

/// The newest Landlock ABI this build knows; older kernels get what they
/// support of it (refer and truncate control came in ABI 2 and 3).
const ABI_WANTED: ABI = ABI::V5;

/// Where an agent may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub writable: Vec<PathBuf>,
}

/// Whether the running kernel offers Landlock.
pub fn supported() -> bool {
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create())
        .is_ok()
}

/// Why the sandbox cannot be had on this machine, if it cannot.
pub fn unsupported_reason() -> Option<String> {
    (!supported()).then(|| {
        "this kernel does not offer Landlock (Linux 5.13 or later, with landlock among its LSMs): agents run without the sandbox".to_string()
    })
}

/// Restrict this process, and all it will start, to `policy`. Called by
/// `orch sandbox-exec` just before it becomes the agent.
pub fn restrict_self(policy: &Policy) -> Result<(), String> {
    if !supported() {
        return Ok(());
    }
    let all = AccessFs::from_all(ABI_WANTED);
    let read = AccessFs::from_read(ABI_WANTED);
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("cannot set up the sandbox ({what}): {e}");
    let mut created: RulesetCreated = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(|e| fail("access rights", &e))?
        .create()
        .map_err(|e| fail("ruleset", &e))?;
    let root = PathFd::new("/").map_err(|e| fail("/", &e))?;
    created = created
        .add_rule(PathBeneath::new(root, read))
        .map_err(|e| fail("/", &e))?;
    for path in &policy.writable {
        let Ok(fd) = PathFd::new(path) else {
            // A place that does not exist cannot be written beneath anyway.
            continue;
        };
        let access = if path.is_dir() {
            all
        } else {
            all & AccessFs::from_file(ABI_WANTED)
        };
        created = created
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(&path.display().to_string(), &e))?;
    }
    created.restrict_self().map_err(|e| fail("restrict", &e))?;
    Ok(())
}

/// The command line that runs `argv` under `policy`: orch's own
/// `sandbox-exec`, which restricts itself and then becomes the program
/// (same process, same group, same environment).
pub fn wrap(argv: &[String], policy: &Policy) -> Option<Vec<String>> {
    let exe = std::env::current_exe().ok()?;
    let mut out = vec![exe.to_string_lossy().into_owned(), SUBCOMMAND.into()];
    for p in &policy.writable {
        out.push("--write".into());
        out.push(p.to_string_lossy().into_owned());
    }
    out.push("--".into());
    out.extend(argv.iter().cloned());
    Some(out)
}

/// How `orch sandbox-exec` tells that it could not exec the agent: this
/// exit code, and a last line of output that starts with the mark.
pub const EXEC_FAILED_CODE: i32 = 127;
pub const EXEC_FAILED_MARK: &str = "orch sandbox-exec: could not start ";

/// The hidden subcommand that applies the sandbox.
pub const SUBCOMMAND: &str = "sandbox-exec";

/// `~/x` with the home directory put in; other paths as they are.
pub fn expand_home(path: &str) -> Option<PathBuf> {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME").map(|h| Path::new(&h).join(rest)),
        None => Some(PathBuf::from(path)),
    }
}
