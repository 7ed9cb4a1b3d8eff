//! Moving the target branch to a landed commit: a compare-and-swap of the
//! ref (a non-force push first, with a remote), and a checkout of the
//! target moved along only when it is clean, as `git merge --ff-only`
//! would move it.

use crate::error::{Error, Result};
use crate::git::land::checkout_in_the_way;
use crate::git::{GitError, MainRepo, Oid};
use crate::remote::{self, Remote};

/// What became of a move of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advanced {
    /// The target is at the new commit (on the remote too, with one).
    /// `notes` say what was left alone on this host.
    Moved { notes: Vec<String> },
    /// Nothing moved: a checkout of the target is in the way.
    Waits(String),
    /// Someone moved the target meanwhile: merge again onto its new tip.
    Raced,
}

/// The full ref of a branch.
pub fn branch_ref(target: &str) -> String {
    format!("refs/heads/{target}")
}

/// The target's tip to land on: the remote's with one (fetched now),
/// else the local branch's.
pub fn target_tip(main: &MainRepo, target: &str, remote: Option<&Remote>) -> Result<Oid> {
    // Where the remote has no such branch yet, landing goes onto the
    // local one and pushes it there.
    if let Some(remote) = remote
        && let Some(tip) = remote.fetch_branch(target)?
    {
        return Ok(tip);
    }
    main.branch_tip(target).ok_or_else(|| {
        Error::usage(format!("the target branch `{target}` does not exist"))
            .hinted("create it, or set `target:` (or `base:`) in orch.yaml to an existing branch")
    })
}

/// Move `target` from `old` to `new` (a descendant of `old`).
pub fn advance(
    main: &MainRepo,
    target: &str,
    old: Oid,
    new: Oid,
    remote: Option<&Remote>,
) -> Result<Advanced> {
    let Some(remote) = remote else {
        return advance_local(main, target, old, new);
    };
    let had = main.ref_target(&remote::tracking_ref(&remote.name, target));
    match remote.push_one(new, &branch_ref(target), had) {
        Ok(()) => {}
        Err(Error::Git(GitError::Rejected { .. })) => return Ok(Advanced::Raced),
        // A protected branch or a hook: the tickets wait, saying why,
        // until a person lets orch push (or lands them by hand).
        Err(e) if remote::is_refused(&e) => {
            return Ok(Advanced::Waits(crate::error::render_chain(&e)));
        }
        Err(e) => return Err(e),
    }
    crate::failpoint::hit("land-after-push");
    // What the remote has now, so the next fetch starts from it.
    let _ = main.set_ref(
        &remote::tracking_ref(&remote.name, target),
        new,
        "orch: landed",
    );
    let mut notes = Vec::new();
    match main.branch_tip(target) {
        Some(local) if local == new => {}
        Some(local) if main.contains(new, local) => {
            // This host's branch is behind: move it along if nobody's
            // checkout is in the way; the landing stands either way.
            match advance_local(main, target, local, new)? {
                Advanced::Moved { .. } => {}
                Advanced::Waits(why) => notes.push(format!(
                    "landed on {}; the local {target} stays where it was: {why}",
                    remote.name
                )),
                Advanced::Raced => notes.push(format!(
                    "landed on {}; the local {target} moved meanwhile and was left alone",
                    remote.name
                )),
            }
        }
        Some(_) => notes.push(format!(
            "landed on {}; the local {target} has commits {} lacks and was left alone",
            remote.name, remote.name
        )),
        None => {}
    }
    Ok(Advanced::Moved { notes })
}

fn advance_local(main: &MainRepo, target: &str, old: Oid, new: Oid) -> Result<Advanced> {
    let name = branch_ref(target);
    if main.branch_tip(target) != Some(old) {
        return Ok(Advanced::Raced);
    }
    let checkouts = main.checkouts_of(target);
    if checkouts.is_empty() {
        return match main.update_ref(&name, new, old, "orch: land") {
            Ok(()) => Ok(Advanced::Moved { notes: Vec::new() }),
            Err(Error::Git(GitError::Rejected { .. })) => Ok(Advanced::Raced),
            Err(e) => Err(e),
        };
    }
    let writes = main.paths_between(old, new)?;
    for checkout in &checkouts {
        if let Some(why) = checkout_in_the_way(checkout, &writes)? {
            return Ok(Advanced::Waits(format!(
                "{why}; it lands once the checkout is clean or on another branch"
            )));
        }
    }
    // git's own fast-forward moves the branch, its index and its files
    // together, and refuses (changing nothing) should a person have
    // started editing since the look above.
    for checkout in &checkouts {
        let tip = new.to_string();
        if let Err(e) =
            crate::gitcli::run_with_hooks(checkout, ["merge", "--ff-only", "--quiet", &tip])
        {
            if main.branch_tip(target) == Some(old) {
                return Ok(Advanced::Waits(format!(
                    "git could not fast-forward {}: {}",
                    checkout.display(),
                    crate::error::render_chain(&e)
                )));
            }
            return Ok(Advanced::Raced);
        }
    }
    if main.branch_tip(target) == Some(new) {
        Ok(Advanced::Moved { notes: Vec::new() })
    } else {
        Ok(Advanced::Raced)
    }
}
