//! The git side of landing: a trial merge of a ticket branch onto the
//! target's tip, made in memory (no checkout, no index of anyone's), and
//! the checkouts of the target that a landing must not disturb.

use std::path::{Path, PathBuf};

use git2::{Oid, StatusOptions};

use super::{GitContext, MainRepo, Worktree, signature};
use crate::error::Result;

/// How the branch's work is put onto the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// A merge commit whose first parent is the target.
    Merge,
    /// One commit on the target with the merged tree.
    Squash,
    /// Each commit of the branch replayed onto the target.
    Rebase,
}

/// What a trial merge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trial {
    /// The commit the target would move to; no ref moved.
    Clean(Oid),
    /// The target has the branch's changes already: nothing to land.
    AlreadyIn,
    /// The paths that conflict, sorted.
    Conflicts(Vec<String>),
}

impl MainRepo {
    /// Put `branch` onto `onto` the `way` asked, as new commits that no ref
    /// names yet. `message` is the landing commit's (for a rebase, the
    /// replayed commits keep their own and the last one gets trailers
    /// from it).
    pub fn trial_land(
        &self,
        onto: Oid,
        branch: Oid,
        way: Way,
        message: &str,
        sign: bool,
    ) -> Result<Trial> {
        if onto == branch || self.contains(onto, branch) {
            return Ok(Trial::AlreadyIn);
        }
        let onto_tree = self.tree_of(onto)?;
        let merged = {
            let ours = self
                .repo
                .find_commit(onto)
                .git_context("cannot read the target's tip")?;
            let theirs = self
                .repo
                .find_commit(branch)
                .git_context("cannot read the ticket branch's tip")?;
            let mut index = self
                .repo
                .merge_commits(&ours, &theirs, None)
                .git_context("cannot merge the ticket branch onto the target")?;
            if index.has_conflicts() {
                return Ok(Trial::Conflicts(conflict_paths(&mut index)?));
            }
            index
                .write_tree_to(&self.repo)
                .git_context("cannot write the merged tree")?
        };
        if merged == onto_tree {
            return Ok(Trial::AlreadyIn);
        }
        let landed = match way {
            Way::Merge => self.commit_tree(merged, &[onto, branch], message, sign)?,
            Way::Squash => self.commit_tree(merged, &[onto], message, sign)?,
            Way::Rebase => match self.replay(onto, branch, message, sign)? {
                Replayed::Tip(tip) => tip,
                Replayed::Conflicts(paths) => return Ok(Trial::Conflicts(paths)),
                // A branch with merges in it (an agent that merged the
                // target to resolve a conflict) cannot be replayed commit
                // by commit without losing the resolution: it lands as
                // one commit with the merged tree.
                Replayed::HasMerges => self.commit_tree(merged, &[onto], message, sign)?,
            },
        };
        Ok(Trial::Clean(landed))
    }

    fn tree_of(&self, commit: Oid) -> Result<Oid> {
        self.repo
            .find_commit(commit)
            .map(|c| c.tree_id())
            .git_context("cannot read a commit")
    }

    /// The commits of `branch` that `onto` lacks, cherry-picked onto it in
    /// order, with their authors and messages.
    fn replay(&self, onto: Oid, branch: Oid, message: &str, sign: bool) -> Result<Replayed> {
        let mut walk = self.repo.revwalk().git_context("cannot walk history")?;
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .git_context("cannot walk history")?;
        walk.push(branch).git_context("cannot walk history")?;
        walk.hide(onto).git_context("cannot walk history")?;
        let commits: Vec<Oid> = walk.flatten().collect();
        let mut tip = onto;
        let last = commits.len().saturating_sub(1);
        for (i, oid) in commits.iter().enumerate() {
            let commit = self
                .repo
                .find_commit(*oid)
                .git_context("cannot read a commit")?;
            if commit.parent_count() > 1 {
                return Ok(Replayed::HasMerges);
            }
            let on = self
                .repo
                .find_commit(tip)
                .git_context("cannot read a commit")?;
            let mut index = self
                .repo
                .cherrypick_commit(&commit, &on, 0, None)
                .git_context("cannot replay a commit onto the target")?;
            if index.has_conflicts() {
                return Ok(Replayed::Conflicts(conflict_paths(&mut index)?));
            }
            let tree = index
                .write_tree_to(&self.repo)
                .git_context("cannot write a replayed tree")?;
            if tree == on.tree_id() && i != last {
                // Already on the target: an empty commit helps nobody.
                continue;
            }
            let own = commit.message().unwrap_or("").trim_end().to_string();
            let text = if i == last {
                format!("{own}\n\n{}", trailers_of(message))
            } else {
                format!("{own}\n")
            };
            let author = commit.author().to_owned();
            tip = if sign {
                self.commit_tree(tree, &[tip], &text, true)?
            } else {
                let tree = self
                    .repo
                    .find_tree(tree)
                    .git_context("cannot read a tree")?;
                self.repo
                    .commit(None, &author, &signature(&self.repo), &text, &tree, &[&on])
                    .git_context("cannot commit a replayed commit")?
            };
        }
        Ok(Replayed::Tip(tip))
    }

    /// The checkouts whose HEAD is the branch `name`: the main checkout
    /// and any linked worktree a person made.
    pub fn checkouts_of(&self, name: &str) -> Vec<PathBuf> {
        let want = format!("ref: refs/heads/{name}");
        let on_branch =
            |head: &Path| std::fs::read_to_string(head).is_ok_and(|text| text.trim_end() == want);
        let mut out = Vec::new();
        if !self.is_bare() && on_branch(&self.git_dir.join("HEAD")) {
            out.push(self.root.clone());
        }
        if let Ok(names) = self.repo.worktrees() {
            for wt in names.iter().flatten().flatten() {
                let head = self.git_dir.join("worktrees").join(wt).join("HEAD");
                if on_branch(&head)
                    && let Ok(found) = self.repo.find_worktree(wt)
                {
                    out.push(found.path().to_path_buf());
                }
            }
        }
        out
    }

    fn is_bare(&self) -> bool {
        std::fs::symlink_metadata(self.root.join(".git")).is_err() && self.repo.is_bare()
    }
}

enum Replayed {
    Tip(Oid),
    Conflicts(Vec<String>),
    HasMerges,
}

/// The paths of a merge's conflicts, sorted, each once.
pub(super) fn conflict_paths(index: &mut git2::Index) -> Result<Vec<String>> {
    let mut paths: Vec<String> = index
        .conflicts()
        .git_context("cannot read the merge's conflicts")?
        .flatten()
        .filter_map(|c| {
            let entry = c.our.or(c.their).or(c.ancestor)?;
            String::from_utf8(entry.path).ok()
        })
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The `Orch-*` trailer block of a rendered message.
fn trailers_of(message: &str) -> String {
    message
        .lines()
        .filter(|l| l.starts_with("Orch-"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why landing may not move a checkout of the target, or None when it is
/// clean: a change to a tracked file (staged or not) anywhere, or an
/// untracked or ignored file at a path the landing would write.
pub fn checkout_in_the_way(checkout: &Path, writes: &[String]) -> Result<Option<String>> {
    let wt = Worktree::open(checkout)?;
    let mut opts = StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = wt
        .repo
        .statuses(Some(&mut opts))
        .git_context(format!("cannot read the status of {}", checkout.display()))?;
    let changed: Vec<String> = statuses
        .iter()
        .filter_map(|s| s.path().ok().map(str::to_string))
        .collect();
    if !changed.is_empty() {
        return Ok(Some(format!(
            "{} has local changes ({})",
            checkout.display(),
            crate::text::list_some(&changed, 3)
        )));
    }
    let head_tree = wt
        .repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .git_context(format!("cannot read HEAD of {}", checkout.display()))?;
    let overwritten: Vec<String> = writes
        .iter()
        .filter(|p| head_tree.get_path(Path::new(p)).is_err())
        .filter(|p| std::fs::symlink_metadata(checkout.join(p)).is_ok())
        .cloned()
        .collect();
    if !overwritten.is_empty() {
        return Ok(Some(format!(
            "{} has untracked files the landing would overwrite ({})",
            checkout.display(),
            crate::text::list_some(&overwritten, 3)
        )));
    }
    Ok(None)
}
