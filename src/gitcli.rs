//! The git CLI, for the ticket worktrees and the identity of orch's
//! commits. libgit2 runs no hooks, no filter drivers (Git LFS), ignores
//! sparse checkouts (staging every file outside the cone as deleted) and
//! does not initialise submodules: only `git` checks out and commits the
//! agent's work the way the user's own `git commit` would, and only `git`
//! knows which identity that is (environment, every configuration file,
//! `user.useConfigOnly`). The board and every ref stay with libgit2.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::git::Oid;

/// What git syncs to the disk for orch's commits (git 2.36 and later;
/// older ones ignore it).
const FSYNC: &str = "core.fsync=objects,reference";

/// Variables that would point git at another repository or index: set
/// when orch itself runs from a git hook, say.
const REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_CEILING_DIRECTORIES",
];

/// Who orch's commits are by: the identity git itself would commit with
/// here (`GIT_COMMITTER_*`, `user.name`, `user.email`, ...), or, when git
/// has none, orch's own ([`Identity::orch`]), which the agents are given
/// too so that their own `git commit` works.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub email: String,
    /// The roles (`AUTHOR`, `COMMITTER`) git finds no identity for.
    missing: Vec<&'static str>,
}

/// Identities already asked of git, by common git directory: asking
/// costs two processes, and every board commit needs the answer.
static KNOWN: Mutex<Vec<(PathBuf, Identity)>> = Mutex::new(Vec::new());

/// Whether this process has said that git has no identity.
static SAID: AtomicBool = AtomicBool::new(false);

impl Identity {
    /// The identity of orch's commits in `repo`. The first time this
    /// process falls back to orch's own, it says so on stderr.
    pub fn of(repo: &git2::Repository) -> Identity {
        let key = repo.commondir().to_path_buf();
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, who)) = known.iter().find(|(k, _)| *k == key) {
            return who.clone();
        }
        let who = Identity::lookup(repo);
        if !who.is_users() && !SAID.swap(true, Ordering::Relaxed) {
            crate::ui::warn(&format!(
                "git has no identity here (user.name and user.email): orch commits as `{} <{}>` and gives the agents the same, so that their own commits work; set yours with `git config --global user.name \"Your Name\"` and `git config --global user.email you@example.com`",
                who.name, who.email
            ));
        }
        known.push((key, who.clone()));
        who
    }

    /// Ask git, as `git commit` in `repo` would, without caching or a note.
    pub fn lookup(repo: &git2::Repository) -> Identity {
        let dir = repo.workdir().unwrap_or_else(|| repo.path());
        let ask = |role: &str| {
            run(dir, ["var", &format!("GIT_{role}_IDENT")])
                .ok()
                .and_then(|line| parse_ident(&line))
        };
        let author = ask("AUTHOR");
        let committer = ask("COMMITTER");
        let mut missing = Vec::new();
        if author.is_none() {
            missing.push("AUTHOR");
        }
        if committer.is_none() {
            missing.push("COMMITTER");
        }
        // orch is the committer of its commits, and their author too.
        let (name, email) = committer.unwrap_or_else(Identity::orch);
        Identity {
            name,
            email,
            missing,
        }
    }

    /// orch's own identity, for a host git has none for: plainly not a
    /// person, and not an address anyone receives mail at (`.invalid`).
    pub fn orch() -> (String, String) {
        let host: String = crate::board::host_name()
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let host = host.trim_matches(['.', '-']);
        let host = if host.is_empty() { "localhost" } else { host };
        ("orch".into(), format!("orch@{host}.invalid"))
    }

    /// Whether this is the user's identity (git found one for both roles).
    pub fn is_users(&self) -> bool {
        self.missing.is_empty()
    }

    /// The variables that make git commit as this identity, for commits
    /// orch makes with the git CLI.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for who in ["AUTHOR", "COMMITTER"] {
            env.push((format!("GIT_{who}_NAME"), self.name.clone()));
            env.push((format!("GIT_{who}_EMAIL"), self.email.clone()));
        }
        env
    }

    /// The variables an agent needs for its own commits: orch's identity
    /// for the roles git finds none for, and nothing where the user has
    /// one, which is never overridden.
    pub fn agent_env(&self) -> Vec<(String, String)> {
        let mut env = Vec::new();
        for who in &self.missing {
            env.push((format!("GIT_{who}_NAME"), self.name.clone()));
            env.push((format!("GIT_{who}_EMAIL"), self.email.clone()));
        }
        env
    }
}

/// `Name <email> 1767225600 +0000`, as `git var` prints an identity.
fn parse_ident(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let open = line.find('<')?;
    let close = open + line[open..].find('>')?;
    let name = line[..open].trim();
    let email = line[open + 1..close].trim();
    (!name.is_empty() && !email.is_empty()).then(|| (name.to_string(), email.to_string()))
}

/// No hook runs: with `core.hooksPath` relative (husky sets `.husky/_`),
/// git looks for hooks inside the worktree it runs in, which an agent
/// writes, and orch's own commands there run outside the sandbox. The
/// hooks a repository means for orch's commits run through the sandbox
/// (`commit_argv`).
const NO_HOOKS: &str = "core.hooksPath=/dev/null";

/// `git -C dir`, with the caller's repository variables removed, no
/// prompt that could wait for a person, and no hook.
pub fn command(dir: &Path) -> Command {
    let mut cmd = command_with_hooks(dir);
    cmd.arg("-c").arg(NO_HOOKS);
    cmd
}

/// [`command`] with the repository's hooks: for what a person would run
/// the same way (a push, whose `pre-push` uploads LFS objects; the
/// fast-forward of their own checkout), never in a worktree an agent
/// writes.
pub fn command_with_hooks(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).arg("-c").arg(FSYNC);
    for var in REPO_ENV {
        cmd.env_remove(var);
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(Stdio::null());
    cmd
}

/// The variables `git` runs with, for commands orch supervises itself.
pub fn env_for_supervised() -> (Vec<(String, String)>, Vec<String>) {
    (
        vec![("GIT_TERMINAL_PROMPT".into(), "0".into())],
        REPO_ENV.iter().map(|s| s.to_string()).collect(),
    )
}

/// Run git in `dir`; its stdout, or an error carrying its stderr.
pub fn run<I, S>(dir: &Path, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(command(dir), args)
}

/// [`run`] with the repository's hooks (see [`command_with_hooks`]).
pub fn run_with_hooks<I, S>(dir: &Path, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with(command_with_hooks(dir), args)
}

fn run_with<I, S>(mut cmd: Command, args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args
        .into_iter()
        .map(|a| a.as_ref().to_os_string())
        .collect();
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = output(cmd.args(&args)).map_err(|e| {
        Error::other(format!("cannot run `git {shown}`: {e}"))
            .hinted("orch needs git (2.25 or newer) on PATH for the agents' worktrees")
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::other(format!(
            "`git {shown}` failed ({}): {}",
            out.status,
            crate::text::visible(stderr.trim())
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run `cmd` to its end, registered as orch's own child: a tick running
/// agents in parallel sweeps up every other child of orch as an orphan
/// an agent left.
fn output(cmd: &mut Command) -> std::io::Result<std::process::Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = crate::process::spawn_registered(cmd, "orch-git")?;
    let pid = child.id() as i32;
    let out = child.wait_with_output();
    crate::process::forget_spawned(pid);
    out
}

/// Make a linked worktree named `name` at `path`, detached at `tip`, with
/// the repository's filters, sparse patterns and submodules applied. git
/// names a worktree after its directory, so it is made under a directory
/// of that name and then moved into place (the name stays).
pub fn add_worktree(root: &Path, name: &str, path: &Path, tip: Oid) -> Result<()> {
    let parent = path
        .parent()
        .ok_or_else(|| Error::other(format!("{} has no parent", path.display())))?;
    let staging = parent.join(".adding");
    let first = staging.join(name);
    if first.exists() {
        // Left by a killed orch between the two steps below.
        let _ = run(
            root,
            [
                OsStr::new("worktree"),
                "remove".as_ref(),
                "--force".as_ref(),
                first.as_os_str(),
            ],
        );
        std::fs::remove_dir_all(&first).map_err(|e| Error::io("cannot remove", &first, e))?;
    }
    std::fs::create_dir_all(&staging).map_err(|e| Error::io("cannot create", &staging, e))?;
    let tip = tip.to_string();
    run(
        root,
        [
            OsStr::new("worktree"),
            "add".as_ref(),
            "--quiet".as_ref(),
            "--force".as_ref(),
            "--detach".as_ref(),
            first.as_os_str(),
            tip.as_ref(),
        ],
    )?;
    run(
        root,
        [
            OsStr::new("worktree"),
            "move".as_ref(),
            first.as_os_str(),
            path.as_os_str(),
        ],
    )?;
    let _ = std::fs::remove_dir(&staging);
    Ok(())
}

/// Detach the worktree at `tip` and make its tracked files match it,
/// through the repository's filters; untracked files stay.
pub fn checkout_detached(wt: &Path, tip: Oid) -> Result<()> {
    let tip = tip.to_string();
    run(wt, ["checkout", "--quiet", "--force", "--detach", &tip])?;
    init_submodules(wt)
}

/// Move a detached HEAD to `tip`, writing only the paths that differ
/// from where it is: `git reset --keep`, which unlike `checkout` does not
/// stat every file first (the caller has proved the rest clean). False,
/// for the caller to check out the long way, where it refused (a path
/// that differs has changes) or said anything at all: it warns, and
/// exits 0, when it cannot remove a file.
pub fn move_detached_head(wt: &Path, tip: Oid) -> Result<bool> {
    let out = output(
        command(wt)
            .args(["reset", "--quiet", "--keep"])
            .arg(tip.to_string()),
    )
    .map_err(|e| Error::io("cannot run git in", wt, e))?;
    if !out.status.success() || !out.stderr.is_empty() {
        return Ok(false);
    }
    init_submodules(wt)?;
    Ok(true)
}

/// Initialise the submodules the checked-out tree names, so the agent has
/// the whole project.
pub fn init_submodules(wt: &Path) -> Result<()> {
    if !wt.join(".gitmodules").exists() {
        return Ok(());
    }
    run(
        wt,
        ["submodule", "update", "--init", "--recursive", "--quiet"],
    )
    .map(|_| ())
}

/// Paths that differ from HEAD or the index, untracked ones included
/// (ignored ones and those outside a sparse checkout not).
pub fn changed_paths(wt: &Path) -> Result<Vec<String>> {
    status_paths(wt, &[])
}

/// Like [`changed_paths`], with both sides of a staged rename (the board
/// stages exactly the paths it is given). git stats the files on several
/// threads and keeps what it learns in the index, so on a large plan this
/// costs a fraction of libgit2's status.
pub fn changed_paths_no_renames(wt: &Path) -> Result<Vec<String>> {
    status_paths(wt, &["--no-renames"])
}

fn status_paths(wt: &Path, extra: &[&str]) -> Result<Vec<String>> {
    let mut args = vec![
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--ignore-submodules=none",
    ];
    args.extend_from_slice(extra);
    let out = run(wt, args)?;
    let mut paths = Vec::new();
    let mut entries = out.split('\0');
    while let Some(entry) = entries.next() {
        if entry.len() < 4 {
            continue;
        }
        let (code, path) = entry.split_at(3);
        paths.push(path.to_string());
        // A rename names its source next.
        if code.starts_with('R') || code.starts_with('C') {
            entries.next();
        }
    }
    Ok(paths)
}

/// Stage everything (new, changed, deleted; `.gitignore`, filters and the
/// sparse cone respected). Whether anything differs from HEAD after.
pub fn stage_all(wt: &Path) -> Result<bool> {
    run(wt, ["add", "--all", "--", "."])?;
    let out = output(command(wt).args(["diff", "--cached", "--quiet", "--ignore-submodules=none"]))
        .map_err(|e| Error::other(format!("cannot run git diff: {e}")))?;
    match out.status.code() {
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        _ => Err(Error::other(format!(
            "`git diff --cached` failed ({}): {}",
            out.status,
            crate::text::visible(String::from_utf8_lossy(&out.stderr).trim())
        ))),
    }
}

/// The argv of the commit of what is staged, message from `message_file`.
/// With `verify`, the `pre-commit` and `commit-msg` hooks run.
pub fn commit_argv(message_file: &Path, verify: bool) -> Vec<String> {
    // git syncs loose objects and refs only when told: the agent's work
    // must reach the disk before orch records it as kept or done.
    let mut argv: Vec<String> = [
        "git",
        "-c",
        FSYNC,
        "commit",
        "--quiet",
        "--cleanup=verbatim",
        "--file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.push(message_file.to_string_lossy().into_owned());
    if !verify {
        argv.push("--no-verify".into());
    }
    argv
}

/// Commit what is staged without hooks (orch keeping work safe, not
/// publishing it). The new HEAD.
pub fn commit_unverified(wt: &Path, message: &str, who: &Identity) -> Result<Oid> {
    let file = message_file(wt, message)?;
    let argv = commit_argv(&file, false);
    let mut cmd = command(wt);
    cmd.envs(who.env());
    let result = run_with(cmd, &argv[1..]);
    let _ = std::fs::remove_file(&file);
    result?;
    head(wt)
}

/// A commit of `tree` on `parents`, signed with the user's signing key
/// (`user.signingkey`, `gpg.format`) by `git commit-tree -S`; by orch's
/// usual identity. Moves no ref.
pub fn commit_tree_signed(
    dir: &Path,
    repo: &git2::Repository,
    tree: Oid,
    parents: &[Oid],
    message: &str,
) -> Result<Oid> {
    let file = message_file(dir, message)?;
    let mut argv: Vec<String> = vec!["commit-tree".into(), "-S".into(), tree.to_string()];
    for p in parents {
        argv.push("-p".into());
        argv.push(p.to_string());
    }
    argv.push("-F".into());
    argv.push(file.to_string_lossy().into_owned());
    let mut cmd = command(dir);
    cmd.envs(Identity::of(repo).env());
    let out = run_with(cmd, &argv);
    let _ = std::fs::remove_file(&file);
    let out = out.map_err(|e| {
        Error::other(format!(
            "cannot sign a board commit: {}",
            crate::error::render_chain(&e)
        ))
        .hinted("require_signed is on: set a signing key for git (`git config user.signingkey`, and `gpg.format ssh` for an ssh key)")
    })?;
    Oid::from_str(out.trim()).map_err(|e| Error::other(format!("git printed no commit id: {e}")))
}

/// Write a commit message where git keeps per-worktree files, never in
/// the worktree (it would be committed).
pub fn message_file(wt: &Path, message: &str) -> Result<PathBuf> {
    let dir = run(wt, ["rev-parse", "--absolute-git-dir"])?;
    let path = PathBuf::from(dir.trim()).join("ORCH_COMMIT_MSG");
    crate::board::write_atomic(&path, message.as_bytes())?;
    Ok(path)
}

pub fn head(wt: &Path) -> Result<Oid> {
    let out = run(wt, ["rev-parse", "--verify", "HEAD^{commit}"])?;
    Oid::from_str(out.trim()).map_err(|e| Error::other(format!("git printed no commit id: {e}")))
}

/// Put HEAD back at `oid` and remove what is not in it (untracked files;
/// ignored ones stay): after the work was kept elsewhere.
pub fn reset_to(wt: &Path, oid: Oid) -> Result<()> {
    checkout_detached(wt, oid)?;
    run(wt, ["clean", "--force", "-d", "--quiet"]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_as_git_var_prints_them() {
        assert_eq!(
            parse_ident("Test Author <author@example.com> 1767225600 +0000\n"),
            Some(("Test Author".into(), "author@example.com".into()))
        );
        assert_eq!(parse_ident("<a@b> 0 +0000"), None);
        assert_eq!(parse_ident("no identity"), None);
    }

    #[test]
    fn only_the_missing_roles_go_to_the_agent() {
        let who = Identity {
            name: "orch".into(),
            email: "orch@h.invalid".into(),
            missing: vec!["COMMITTER"],
        };
        assert!(!who.is_users());
        assert_eq!(
            who.agent_env(),
            [
                ("GIT_COMMITTER_NAME".to_string(), "orch".to_string()),
                (
                    "GIT_COMMITTER_EMAIL".to_string(),
                    "orch@h.invalid".to_string()
                )
            ]
        );
        let user = Identity {
            missing: Vec::new(),
            ..who
        };
        assert!(user.agent_env().is_empty(), "a user's is never overridden");
    }
}
