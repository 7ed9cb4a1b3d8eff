//! The board's git remote: fetch and push with the git CLI, so the user's
//! own configuration (ssh agent, credential helpers, `insteadOf`, proxies)
//! applies, each under a time limit. Nothing here decides anything: the
//! board transaction asks for a fetch or a compare-and-swap push and acts
//! on the answer.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::git::{self, GitError, MainRepo, Oid};

/// The remote a board is shared through, as orch.yaml names it.
#[derive(Debug, Clone)]
pub struct Remote {
    pub name: String,
    pub timeout: Duration,
    pub require_signed: bool,
    /// Where git runs: the main checkout.
    dir: PathBuf,
}

/// How one ref of a push ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The remote took it (or already had it).
    Done,
    /// The remote's ref was not an ancestor of ours: another host won.
    Rejected(String),
}

/// The remote-tracking ref orch fetches `branch` of `remote` into.
pub fn tracking_ref(remote: &str, branch: &str) -> String {
    format!("refs/remotes/{remote}/{branch}")
}

impl Remote {
    pub fn new(main: &MainRepo, name: &str, timeout: Duration, require_signed: bool) -> Remote {
        Remote {
            name: name.to_string(),
            timeout,
            require_signed,
            dir: main.root.clone(),
        }
    }

    /// Fetch the branch `branch` into its remote-tracking ref. None when
    /// the remote has no such branch.
    pub fn fetch_branch(&self, branch: &str) -> Result<Option<Oid>> {
        let spec = format!("+refs/heads/{branch}:{}", tracking_ref(&self.name, branch));
        let out = self.git(&[
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            &self.name,
            &spec,
        ])?;
        if !out.ok {
            if out.stderr.contains("couldn't find remote ref") {
                return Ok(None);
            }
            return Err(out.failure(&format!("git fetch {} {branch}", self.name)));
        }
        let main = git::open_main(&self.dir)?;
        Ok(main.ref_target(&tracking_ref(&self.name, branch)))
    }

    /// Push each `(commit or ref, destination ref)` without force (all or
    /// none with `atomic`). Returns how each destination ended; a push that
    /// could not reach the remote at all is an error.
    pub fn push(&self, specs: &[(String, String)], atomic: bool) -> Result<Vec<(String, Pushed)>> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<String> = vec![
            "push".into(),
            "--porcelain".into(),
            "--no-verify".into(),
            "--no-recurse-submodules".into(),
        ];
        if atomic && specs.len() > 1 {
            args.push("--atomic".into());
        }
        args.push(self.name.clone());
        for (src, dst) in specs {
            args.push(format!("{src}:{dst}"));
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.git(&argv)?;
        // What the remote's hooks said, for a refusal to be explained.
        let said: Vec<&str> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("remote:"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let mut ends = Vec::new();
        for line in out.stdout.lines() {
            // "<flag>\t<from>:<to>\t<summary>"
            let mut fields = line.splitn(3, '\t');
            let (Some(flag), Some(refs), summary) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some((_, to)) = refs.split_once(':') else {
                continue;
            };
            let end = if flag == "!" {
                let mut why = summary.unwrap_or("rejected").trim().to_string();
                if !said.is_empty() {
                    why = format!("{why}; the remote said: {}", said.join(" / "));
                }
                Pushed::Rejected(why)
            } else {
                Pushed::Done
            };
            ends.push((to.to_string(), end));
        }
        if ends.len() < specs.len() {
            return Err(out.failure(&format!("git push {}", self.name)));
        }
        Ok(ends)
    }

    /// Push one ref; [`GitError::Rejected`] when another host moved it,
    /// an error naming the remote's reason when it refused the push
    /// itself (a hook, a protected branch): trying again would not help.
    pub fn push_one(&self, src: Oid, dst: &str, expected: Option<Oid>) -> Result<()> {
        let ends = self.push(&[(src.to_string(), dst.to_string())], false)?;
        match ends.into_iter().next() {
            Some((_, Pushed::Done)) => Ok(()),
            Some((_, Pushed::Rejected(why))) if !is_race(&why) => Err(Error::other(format!(
                "{REFUSED} {dst}: {}",
                crate::text::visible_line(&why)
            ))
            .hinted(
                "a hook or a branch protection on the remote refuses orch's pushes; orch must be able to push to this ref without force. Nothing was lost: the next tick publishes what is kept here",
            )),
            _ => Err(Error::Git(GitError::Rejected {
                refname: format!("{dst} on {}", self.name),
                expected,
                found: None,
                on_remote: true,
            })),
        }
    }

    /// Refuse commits in `tip` that `since` lacks unless `git verify-commit`
    /// accepts their signature. Without `since` (a board seen for the first
    /// time) only the tip is checked: it is what every worker would run.
    pub fn verify(&self, since: Option<Oid>, tip: Oid) -> Result<()> {
        let mut args = vec![
            "log".to_string(),
            "--format=%H%x09%an <%ae>%x09%s".to_string(),
        ];
        match since {
            Some(s) => {
                args.push(tip.to_string());
                args.push(format!("^{s}"));
            }
            None => {
                args.push("-1".into());
                args.push(tip.to_string());
            }
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.git_local(&argv)?;
        for line in out.lines() {
            let mut f = line.splitn(3, '\t');
            let (Some(oid), Some(who), subject) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let check = self.git(&["verify-commit", "--raw", oid])?;
            if !check.ok {
                let said = crate::text::visible(check.stderr.trim()).into_owned();
                let signer = signer(&check.stderr).unwrap_or_else(|| "no signature".to_string());
                return Err(Error::other(format!(
                    "refused the board from {}: commit {} (\"{}\", by {}) is not signed by a key git accepts: {signer}{}",
                    self.name,
                    crate::text::short_oid(oid),
                    crate::text::visible_line(subject.unwrap_or("")),
                    crate::text::visible_line(who),
                    if said.is_empty() { String::new() } else { format!("\n{said}") }
                ))
                .hinted("require_signed is on: whoever can push to orch/plan could make every worker run commands. Check the commit; if it is trusted, add its key to git's allowed signers (gpg.ssh.allowedSignersFile, or your gpg keyring)"));
            }
        }
        Ok(())
    }

    fn git_local(&self, args: &[&str]) -> Result<String> {
        crate::gitcli::run(&self.dir, args)
    }

    /// Run git under the remote's time limit, in its own process group
    /// (an ssh it starts goes with it when the limit passes).
    fn git(&self, args: &[&str]) -> Result<Output> {
        run_timed(&self.dir, args, self.timeout)
    }
}

/// Who signed, as `git verify-commit --raw` reports it, if anyone.
fn signer(stderr: &str) -> Option<String> {
    for line in stderr.lines() {
        let line = line.trim();
        // gpg --status-fd lines, and ssh-keygen's wording.
        for tag in ["[GNUPG:] GOODSIG ", "[GNUPG:] BADSIG ", "[GNUPG:] ERRSIG "] {
            if let Some(rest) = line.strip_prefix(tag) {
                return Some(format!("signed by {}", crate::text::visible_line(rest)));
            }
        }
        if line.contains("signature for") || line.contains("key SHA256:") {
            return Some(crate::text::visible_line(line).into_owned());
        }
    }
    None
}

pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// How every error of a fetch or push that never reached a verdict begins:
/// the remote's trouble, never the ticket's.
const UNREACHABLE: &str = "cannot reach the remote";

/// How an error begins when the remote was reached and refused a push
/// for a reason of its own.
const REFUSED: &str = "the remote refused the push of";

/// Whether `e` is a fetch or push that could not get through, or that the
/// remote refused: either way the remote's trouble, not a ticket's.
pub fn is_unreachable(e: &Error) -> bool {
    let text = crate::error::render_chain(e);
    text.contains(UNREACHABLE) || text.contains(REFUSED)
}

/// Whether `e` is a push the remote refused for a reason of its own.
pub fn is_refused(e: &Error) -> bool {
    crate::error::render_chain(e).contains(REFUSED)
}

/// Whether a rejected push's summary (`git push --porcelain`) may say
/// that the ref moved on the remote, which deciding again on its new tip
/// answers. Only a refusal the remote states as policy (a hook, a
/// protected or checked-out branch) is not: a lock another push held
/// ("failed to update ref", "cannot lock ref") is a race too, and
/// wording not known here is tried again as one.
fn is_race(summary: &str) -> bool {
    let Some(reason) = summary.strip_prefix("[remote rejected]") else {
        return true;
    };
    // git's own words, not what a hook printed beside them.
    let reason = reason
        .split("; the remote said:")
        .next()
        .unwrap_or(reason)
        .to_ascii_lowercase();
    ![
        "declined",
        "denied",
        "deny",
        "protected",
        "not allowed",
        "checked out",
    ]
    .iter()
    .any(|w| reason.contains(w))
}

impl Output {
    fn failure(&self, what: &str) -> Error {
        let said = crate::text::visible(self.stderr.trim());
        Error::other(format!(
            "{UNREACHABLE}: `{what}` failed: {}",
            if said.is_empty() {
                "git said nothing".to_string()
            } else {
                said.into_owned()
            }
        ))
        .hinted("check that the remote is reachable with `git fetch`; nothing was claimed, and a result not yet published is kept here and published by the next tick")
    }
}

/// Run `git` in `dir` with the user's configuration, no prompt, and a
/// time limit after which its whole process group is killed.
pub fn run_timed(dir: &Path, args: &[&str], limit: Duration) -> Result<Output> {
    use std::os::unix::process::CommandExt;
    let mut cmd = crate::gitcli::command_with_hooks(dir);
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let shown = args.join(" ");
    let mut child = crate::process::spawn_registered(&mut cmd, "orch-git").map_err(|e| {
        Error::other(format!("cannot run `git {shown}`: {e}"))
            .hinted("orch needs git on PATH to reach the board's remote")
    })?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(p) = pipe {
                let _ = p.take(1 << 20).read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = crate::process::wait_or_kill_group(&mut child, limit);
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            ok: status.success(),
            stdout,
            stderr,
        }),
        None => Err(Error::other(format!(
            "{UNREACHABLE}: `git {shown}` did not finish within {}; stopped it",
            crate::duration::display(limit)
        ))
        .hinted("the remote is slow or unreachable; raise `remote_timeout` in orch.yaml if it is only slow")),
    }
}

#[cfg(test)]
mod tests {
    use super::is_race;

    #[test]
    fn a_moved_or_locked_ref_is_a_race_and_a_stated_policy_is_not() {
        for race in [
            "[rejected] (fetch first)",
            "[rejected] (non-fast-forward)",
            "[rejected] (stale info)",
            "[remote rejected] (failed to update ref); the remote said: error: cannot lock ref 'refs/heads/orch/plan': is at a but expected b",
            "[remote rejected] (failed to lock)",
            "[remote rejected] (something new); the remote said: access denied",
        ] {
            assert!(is_race(race), "{race}");
        }
        for refusal in [
            "[remote rejected] (pre-receive hook declined)",
            "[remote rejected] (protected branch hook declined)",
            "[remote rejected] (hook declined); the remote said: no",
            "[remote rejected] (deny updating a hidden ref)",
            "[remote rejected] (branch is currently checked out)",
            "[remote rejected] (shallow update not allowed)",
        ] {
            assert!(!is_race(refusal), "{refusal}");
        }
    }
}
