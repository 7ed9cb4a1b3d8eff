//! Everything orch asks of git, through libgit2. No other module touches a
//! repository, so the places where orch writes to one are easy to audit:
//! the orphan branch orch/plan and its worktree, and the ticket branches
//! orch/<id> and their worktrees. The user's own checkout and index are
//! never opened for writing.
//!
//! Errors are [`GitError`]s, typed by what a caller may do about them: a
//! ref that moved under a compare-and-swap ([`GitError::Rejected`]), a lock
//! another git holds, something not found.

use std::path::{Path, PathBuf};

use git2::{Repository, RepositoryOpenFlags, Signature, StatusOptions};

pub use git2::Oid;

use crate::error::{Error, Result};

mod index_flags;
pub mod land;

/// What went wrong in git, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// Another git process holds a lock (an `index.lock`, a ref's `.lock`).
    #[error("{context}: {message}")]
    Locked { context: String, message: String },
    /// A ref was not where a compare-and-swap expected it: someone else
    /// changed it. Re-read and decide again.
    #[error("{refname} moved: expected {}, found {}", show(expected), show_found(*on_remote, found))]
    Rejected {
        refname: String,
        expected: Option<Oid>,
        found: Option<Oid>,
        on_remote: bool,
    },
    #[error("{context}")]
    NotFound {
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("{context}")]
    Other {
        context: String,
        #[source]
        source: git2::Error,
    },
}

fn show(oid: &Option<Oid>) -> String {
    match oid {
        Some(o) => o.to_string()[..12].to_string(),
        None => "nothing".into(),
    }
}

/// What a compare-and-swap found: a rejected push does not say, so the
/// remote's tip is named as unknown rather than as a deleted ref.
fn show_found(on_remote: bool, found: &Option<Oid>) -> String {
    match found {
        None if on_remote => "another host's commit".into(),
        other => show(other),
    }
}

impl GitError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            GitError::Locked { .. } => Some(
                "another git process is writing this repository (an index.lock exists); wait for it, or remove the lock file if no git is running",
            ),
            _ => None,
        }
    }

    fn classify(context: String, e: git2::Error) -> GitError {
        match e.code() {
            git2::ErrorCode::Locked => GitError::Locked {
                context,
                message: e.message().to_string(),
            },
            git2::ErrorCode::NotFound => GitError::NotFound { context, source: e },
            _ => GitError::Other { context, source: e },
        }
    }
}

/// Adds context to git results without a closure at every call site.
pub(crate) trait GitContext<T> {
    fn git_context(self, context: impl std::fmt::Display) -> Result<T>;
}

impl<T> GitContext<T> for std::result::Result<T, git2::Error> {
    fn git_context(self, context: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| Error::Git(GitError::classify(context.to_string(), e)))
    }
}

/// Whether `name` (e.g. `orch/0001-x`) can name a branch.
pub fn is_valid_branch_name(name: &str) -> bool {
    git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
}

pub const PLAN_BRANCH: &str = "orch/plan";

/// Part of the name a worktree directory is renamed to while it is deleted;
/// one left by a killed orch is removed by the next tick's sweep.
pub const REMOVING: &str = ".removing-";
pub const PLAN_REF: &str = "refs/heads/orch/plan";

pub fn ticket_branch(id: &str) -> String {
    format!("orch/{id}")
}

/// The worktree change lock, held (see [`MainRepo::worktree_changes`]).
pub struct WorktreeChange {
    _file: std::fs::File,
}

/// The user's repository, found from a directory inside it (or inside one of
/// orch's worktrees, which resolve to the same main repository).
pub struct MainRepo {
    pub repo: Repository,
    /// The main checkout's top directory.
    pub root: PathBuf,
    /// The common git directory (`<root>/.git` for an ordinary repository).
    pub git_dir: PathBuf,
}

pub fn open_main(start: &Path) -> Result<MainRepo> {
    let found = Repository::open_ext(
        start,
        RepositoryOpenFlags::empty(),
        std::iter::empty::<&Path>(),
    )
    .map_err(|e| {
        if e.code() == git2::ErrorCode::NotFound {
            Error::usage(format!(
                "{} is not inside a git repository",
                start.display()
            ))
            .hinted(
                "run orch inside a git checkout, or create one with `git init` and a first commit",
            )
        } else {
            Error::Git(GitError::classify(
                "cannot open the git repository".into(),
                e,
            ))
        }
    })?;
    if found.is_bare() {
        return Err(
            Error::usage("orch needs a repository with a working tree; this one is bare")
                .hinted("clone it (`git clone <bare> work`) and run orch in the clone"),
        );
    }
    let git_dir = found.commondir().to_path_buf();
    let here = found
        .workdir()
        .map(|w| strip_trailing_slash(w.to_path_buf()));
    // From inside a linked worktree, reopen the main repository.
    let repo = if found.is_worktree() {
        Repository::open(&git_dir).git_context("cannot open the main repository")?
    } else {
        found
    };
    let Some(here) = here else {
        return Err(Error::usage(
            "orch needs a repository with a working tree; this one is bare",
        ));
    };
    let root = board_root(&git_dir).unwrap_or_else(|| outside_orch(here));
    Ok(MainRepo {
        repo,
        root,
        git_dir: strip_trailing_slash(git_dir),
    })
}

/// The checkout whose `.orch/plan` holds the board, found from git's own
/// record of the plan worktree: the board is found from any checkout of
/// the repository, the one it was made in included.
fn board_root(git_dir: &Path) -> Option<PathBuf> {
    let record = git_dir
        .join("worktrees")
        .join(crate::board::PLAN_WORKTREE_NAME)
        .join("gitdir");
    let text = std::fs::read_to_string(record).ok()?;
    let dot_git = PathBuf::from(text.trim());
    let root = dot_git.parent()?.parent()?.parent()?;
    let plan = dot_git.parent()?;
    (plan.ends_with(".orch/plan") && plan.join(".git").is_file()).then(|| root.to_path_buf())
}

/// The checkout a directory belongs to, taking orch's own worktrees
/// (`<root>/.orch/...`) to the checkout they serve.
fn outside_orch(top: PathBuf) -> PathBuf {
    let mut at = top.as_path();
    while let Some(parent) = at.parent() {
        if at.file_name().is_some_and(|n| n == ".orch") {
            return parent.to_path_buf();
        }
        at = parent;
    }
    top
}

fn strip_trailing_slash(p: PathBuf) -> PathBuf {
    let s = p.to_string_lossy();
    if s.len() > 1 && s.ends_with('/') {
        PathBuf::from(s.trim_end_matches('/'))
    } else {
        p
    }
}

impl MainRepo {
    /// Where git keeps a linked worktree's own files (HEAD, index): its
    /// registration, gone once the worktree is removed.
    pub fn registration(&self, name: &str) -> PathBuf {
        self.git_dir.join("worktrees").join(name)
    }

    /// The linked worktree the board lives in, when it is not the main
    /// checkout.
    fn checkout_repo(&self) -> Option<Repository> {
        let main = self
            .repo
            .workdir()
            .map(|w| strip_trailing_slash(w.to_path_buf()));
        if main.as_deref() == Some(self.root.as_path()) {
            return None;
        }
        Repository::open(&self.root).ok()
    }

    pub fn has_commits(&self) -> bool {
        self.repo
            .head()
            .ok()
            .and_then(|h| h.peel_to_commit().ok())
            .is_some()
    }

    pub fn branch_exists(&self, name: &str) -> bool {
        self.repo
            .find_reference(&format!("refs/heads/{name}"))
            .is_ok()
    }

    pub fn branch_tip(&self, name: &str) -> Option<Oid> {
        self.repo
            .find_reference(&format!("refs/heads/{name}"))
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    }

    /// The bytes of `path` in the tree of the commit `at`, if it has a
    /// file there.
    pub fn file_at(&self, at: Oid, path: &str) -> Option<Vec<u8>> {
        let tree = self.repo.find_commit(at).ok()?.tree().ok()?;
        let entry = tree.get_path(Path::new(path)).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// The branch checked out where the board lives (the main checkout
    /// or the linked worktree `orch init` ran in).
    pub fn current_branch(&self) -> Option<String> {
        let checkout = self.checkout_repo();
        let head = checkout.as_ref().unwrap_or(&self.repo).head().ok()?;
        if head.is_branch() {
            head.shorthand().ok().map(str::to_string)
        } else {
            None
        }
    }

    /// A remote-tracking `orch/plan` (a fresh clone has one but no local branch).
    pub fn remote_plan_tip(&self) -> Option<(String, Oid)> {
        let refs = self.repo.references_glob("refs/remotes/*/orch/plan").ok()?;
        for r in refs.flatten() {
            if let (Ok(name), Ok(commit)) = (r.name().map(str::to_string), r.peel_to_commit()) {
                return Some((name, commit.id()));
            }
        }
        None
    }

    /// The repository's remotes, `origin` first.
    pub fn remote_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .repo
            .remotes()
            .map(|r| {
                (0..r.len())
                    .filter_map(|i| r.get(i).ok().flatten().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort_by_key(|n| (n != "origin", n.clone()));
        names
    }

    pub fn create_branch_at(&self, name: &str, oid: Oid) -> Result<()> {
        let commit = self
            .repo
            .find_commit(oid)
            .git_context("cannot find the commit")?;
        self.repo
            .branch(name, &commit, false)
            .git_context(format!("cannot create the branch {name}"))?;
        Ok(())
    }

    /// Make the orphan branch orch/plan holding `files`.
    pub fn create_plan_branch(&self, files: &[(&str, &[u8])], message: &str) -> Result<Oid> {
        let tree = build_tree(&self.repo, files)?;
        let tree = self
            .repo
            .find_tree(tree)
            .git_context("cannot read the new tree")?;
        let sig = signature(&self.repo);
        let oid = self
            .repo
            .commit(None, &sig, &sig, message, &tree, &[])
            .git_context("cannot commit the plan branch")?;
        self.repo
            .reference(PLAN_REF, oid, false, "orch init")
            .git_context("cannot create the branch orch/plan")?;
        Ok(oid)
    }

    /// Hold the worktree change lock (see `worktree_change_lock`) across
    /// several steps: the pool moves a worktree in steps that must not
    /// interleave with another process's.
    pub fn worktree_changes(&self) -> Result<WorktreeChange> {
        Ok(WorktreeChange {
            _file: self.worktree_change_lock()?,
        })
    }

    /// Rename the worktree `from` at `from_path` to `to` at `to_path`: its
    /// registration, its directory, and the two links between them. The
    /// index in the registration moves with it, so git's stat cache still
    /// matches the files. Every step is skipped when it is already done,
    /// so calling it again finishes a rename a killed process left half
    /// done. `between` runs after the registration moved (a crash point).
    pub fn rename_worktree(
        &self,
        _held: &WorktreeChange,
        (from, from_path): (&str, &Path),
        (to, to_path): (&str, &Path),
        between: impl Fn(),
    ) -> Result<()> {
        let (old_reg, new_reg) = (self.registration(from), self.registration(to));
        if old_reg.exists() && !new_reg.exists() {
            std::fs::rename(&old_reg, &new_reg)
                .map_err(|e| Error::io("cannot rename the worktree registration", &old_reg, e))?;
        }
        between();
        if std::fs::symlink_metadata(from_path).is_ok()
            && std::fs::symlink_metadata(to_path).is_err()
        {
            if let Some(parent) = to_path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create the directory", parent, e))?;
            }
            std::fs::rename(from_path, to_path)
                .map_err(|e| Error::io("cannot move the worktree", from_path, e))?;
        }
        if new_reg.join("HEAD").exists() && to_path.is_dir() {
            let dot_git = to_path.join(".git");
            std::fs::write(&dot_git, format!("gitdir: {}\n", new_reg.display()))
                .map_err(|e| Error::io("cannot write", &dot_git, e))?;
            let gitdir = new_reg.join("gitdir");
            std::fs::write(&gitdir, format!("{}\n", dot_git.display()))
                .map_err(|e| Error::io("cannot write", &gitdir, e))?;
        }
        Ok(())
    }

    /// Forget the worktree `name` and delete its directory `path`, under a
    /// lock the caller holds.
    pub fn drop_worktree(&self, _held: &WorktreeChange, name: &str, path: &Path) -> Result<()> {
        if std::fs::symlink_metadata(path).is_ok() {
            std::fs::remove_dir_all(path)
                .map_err(|e| Error::io("cannot remove the worktree", path, e))?;
        }
        self.force_prune_locked(name);
        Ok(())
    }

    /// Names of the registered linked worktrees that start with `prefix`.
    pub fn worktree_names(&self, prefix: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.git_dir.join("worktrees")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| n.starts_with(prefix))
            .collect()
    }

    /// Hold while creating, removing or pruning a worktree. libgit2's walk
    /// over the worktrees (behind "is this branch checked out?") misreads
    /// a worktree that is being created or removed at the same moment and
    /// reports "reference ... is already checked out"; these changes must
    /// not overlap, across threads (one open file each) and processes.
    fn worktree_change_lock(&self) -> Result<std::fs::File> {
        let dir = self.git_dir.join("orch");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        let path = dir.join("worktrees.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
        file.lock()
            .map_err(|e| Error::io("cannot lock", &path, e))?;
        Ok(file)
    }

    /// Check out `branch` as a linked worktree named `name` at `path`,
    /// pruning a stale registration (a worktree whose directory was deleted).
    pub fn add_worktree(&self, name: &str, path: &Path, branch: &str) -> Result<()> {
        let _lock = self.worktree_change_lock()?;
        if !path.join(".git").exists() {
            // Whatever is registered under this name has no working tree.
            self.force_prune_locked(name);
        }
        let reference = self
            .repo
            .find_reference(&format!("refs/heads/{branch}"))
            .git_context(format!("cannot find the branch {branch}"))?;
        let mut opts = git2::WorktreeAddOptions::new();
        opts.reference(Some(&reference));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io("cannot create the directory", parent, e))?;
        }
        self.repo
            .worktree(name, path, Some(&opts))
            .git_context(format!("cannot create the worktree {}", path.display()))?;
        Ok(())
    }

    /// Make a ticket's worktree `name` at `path`, detached at `tip`, with
    /// the git CLI (see [`crate::gitcli`]): filters, LFS and sparse
    /// patterns as the user's own `git worktree add` would.
    pub fn add_ticket_worktree(&self, name: &str, path: &Path, tip: Oid) -> Result<()> {
        let _lock = self.worktree_change_lock()?;
        if !path.join(".git").exists() {
            self.force_prune_locked(name);
        }
        crate::gitcli::add_worktree(&self.root, name, path, tip)
    }

    /// Forget the worktree `name` if its directory is gone (the caller
    /// holds the worktree change lock).
    fn prune_locked(&self, name: &str) -> Result<()> {
        if let Ok(wt) = self.repo.find_worktree(name)
            && (wt.validate().is_err() || !wt.path().exists())
        {
            let mut opts = git2::WorktreePruneOptions::new();
            opts.valid(true).locked(true).working_tree(false);
            wt.prune(Some(&mut opts))
                .git_context(format!("cannot prune the stale worktree {name}"))?;
        }
        Ok(())
    }

    /// Forget the worktree `name` whatever state its registration is in (a
    /// crash while creating it can leave a HEAD that points at nothing).
    pub fn force_prune_worktree(&self, name: &str) -> Result<()> {
        let _lock = self.worktree_change_lock()?;
        self.force_prune_locked(name);
        Ok(())
    }

    fn force_prune_locked(&self, name: &str) {
        // Best effort: whatever is left is removed with the directory below.
        let _ = self.prune_locked(name);
        let dir = self.registration(name);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Remove the worktree `name`: its directory and its registration. The
    /// branch stays; it holds the work.
    pub fn remove_worktree(&self, name: &str, path: &Path) -> Result<()> {
        // Under the lock the directory is only renamed away, so a large
        // checkout being deleted does not hold up other worktrees.
        let doomed = path.with_file_name(format!(
            ".{}{REMOVING}{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        {
            let _lock = self.worktree_change_lock()?;
            if let Ok(wt) = self.repo.find_worktree(name) {
                // Unlocked so that prune may forget it; it is going anyway.
                let _ = wt.unlock();
            }
            if path.exists() {
                std::fs::rename(path, &doomed)
                    .map_err(|e| Error::io("cannot remove the worktree", path, e))?;
            }
            self.prune_locked(name)?;
        }
        if doomed.exists() {
            std::fs::remove_dir_all(&doomed)
                .map_err(|e| Error::io("cannot remove the worktree", &doomed, e))?;
        }
        Ok(())
    }

    /// What is wrong with the link between the worktree `name` and its
    /// directory `path`, if anything: orch made `path` a real directory
    /// (no symlink on the way from the checkout) whose `.git` file names the
    /// registration `<git dir>/worktrees/<name>`, whose `gitdir` file names
    /// `path/.git` back. An agent that replaced its worktree with a symlink
    /// or rewrote either file would otherwise have orch commit and check
    /// out in whatever it pointed at: the user's checkout, or the plan.
    pub fn worktree_link_problem(&self, name: &str, path: &Path) -> Option<String> {
        let canon = |p: &Path| std::fs::canonicalize(p).ok();
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(_) => return Some(format!("{} is missing", path.display())),
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Some(format!(
                "{} is not a directory but a link or a file",
                path.display()
            ));
        }
        let expected = match (canon(&self.root), path.strip_prefix(&self.root)) {
            (Some(root), Ok(rel)) => root.join(rel),
            _ => path.to_path_buf(),
        };
        if canon(path).as_deref() != Some(expected.as_path()) {
            return Some(format!("{} leads through a symbolic link", path.display()));
        }
        let registration = self.registration(name);
        let dot_git = path.join(".git");
        match std::fs::symlink_metadata(&dot_git) {
            Ok(m) if m.is_file() => {}
            _ => return Some(format!("{} is not a file", dot_git.display())),
        }
        let named = std::fs::read_to_string(&dot_git).ok().and_then(|text| {
            text.strip_prefix("gitdir:")
                .map(|rest| PathBuf::from(rest.trim()))
        });
        let named = named.map(|p| if p.is_relative() { path.join(p) } else { p });
        if named.as_deref().and_then(canon) != canon(&registration)
            || canon(&registration).is_none()
        {
            return Some(format!(
                "{} no longer points at the worktree's registration in the repository",
                dot_git.display()
            ));
        }
        let back = std::fs::read_to_string(registration.join("gitdir"))
            .ok()
            .map(|t| PathBuf::from(t.trim()));
        if back.as_deref().and_then(canon) != canon(&dot_git) {
            return Some(format!(
                "{} no longer points back at {}",
                registration.join("gitdir").display(),
                dot_git.display()
            ));
        }
        None
    }

    /// Open the worktree `name` through the main repository's registration
    /// (never through a `.git` file an agent could have rewritten), after
    /// checking its link (see [`MainRepo::worktree_link_problem`]).
    pub fn open_worktree(&self, name: &str, path: &Path) -> Result<Worktree> {
        if let Some(problem) = self.worktree_link_problem(name, path) {
            return Err(Error::other(format!(
                "refusing the worktree {}: {problem}",
                path.display()
            )));
        }
        let wt = self
            .repo
            .find_worktree(name)
            .git_context(format!("cannot find the worktree {name}"))?;
        let repo = Repository::open_from_worktree(&wt)
            .git_context(format!("cannot open the worktree {}", path.display()))?;
        Ok(Worktree {
            repo,
            path: path.to_path_buf(),
            sign: false,
        })
    }

    /// Put back the link between the worktree `name` and `path` as orch
    /// made it, keeping the files: a symlink in place of the directory is
    /// removed (the link only; the worktree is then made again), a
    /// rewritten `.git` or `gitdir` file is written again. Returns what was
    /// repaired.
    pub fn repair_worktree_link(&self, name: &str, path: &Path) -> Result<Option<String>> {
        let problem = match self.worktree_link_problem(name, path) {
            Some(p) => p,
            None => return Ok(None),
        };
        let _lock = self.worktree_change_lock()?;
        let meta = std::fs::symlink_metadata(path).ok();
        if meta
            .as_ref()
            .is_some_and(|m| !m.is_dir() || m.file_type().is_symlink())
        {
            // Only the link or file goes: whatever it pointed at is untouched.
            std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))?;
            self.force_prune_locked(name);
            return Ok(Some(format!("{problem}; removed it")));
        }
        let registration = self.registration(name);
        if !registration.join("HEAD").exists() || meta.is_none() {
            self.force_prune_locked(name);
            return Ok(Some(format!("{problem}; forgot its registration")));
        }
        let dot_git = path.join(".git");
        if std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.is_dir()) {
            std::fs::remove_dir_all(&dot_git)
                .map_err(|e| Error::io("cannot remove", &dot_git, e))?;
        } else if std::fs::symlink_metadata(&dot_git).is_ok() {
            std::fs::remove_file(&dot_git).map_err(|e| Error::io("cannot remove", &dot_git, e))?;
        }
        std::fs::write(&dot_git, format!("gitdir: {}\n", registration.display()))
            .map_err(|e| Error::io("cannot write", &dot_git, e))?;
        let gitdir_file = registration.join("gitdir");
        std::fs::write(&gitdir_file, format!("{}\n", dot_git.display()))
            .map_err(|e| Error::io("cannot write", &gitdir_file, e))?;
        Ok(Some(format!("{problem}; wrote the link again")))
    }

    pub fn lock_worktree(&self, name: &str, reason: &str) {
        if let Ok(wt) = self.repo.find_worktree(name) {
            // Already locked is fine: the reason stays from the earlier run.
            let _ = wt.lock(Some(reason));
        }
    }

    pub fn unlock_worktree(&self, name: &str) {
        if let Ok(wt) = self.repo.find_worktree(name) {
            let _ = wt.unlock();
        }
    }

    /// Resolve a branch or any revision to a commit.
    pub fn resolve_commit(&self, rev: &str) -> Result<Oid> {
        let obj = self.repo.revparse_single(rev).map_err(|e| {
            Error::Git(GitError::NotFound {
                context: format!("`{rev}` is not a branch or commit of this repository"),
                source: e,
            })
        })?;
        let commit = obj
            .peel_to_commit()
            .git_context(format!("`{rev}` is not a commit"))?;
        Ok(commit.id())
    }

    /// Commits reachable from `tip` but not from `from`, oldest first.
    pub fn commits_between(&self, from: Option<Oid>, tip: Oid) -> Result<Vec<CommitInfo>> {
        let mut walk = self.repo.revwalk().git_context("cannot walk history")?;
        walk.push(tip).git_context("cannot walk history")?;
        if let Some(from) = from {
            let _ = walk.hide(from);
        }
        walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
            .git_context("cannot walk history")?;
        let mut out = Vec::new();
        for oid in walk.flatten() {
            if let Ok(c) = self.repo.find_commit(oid) {
                out.push(CommitInfo::from(&c));
            }
        }
        Ok(out)
    }

    /// Commits written as loose objects since `since` that no ref and no
    /// worktree's HEAD reaches, and that have `start` in their history:
    /// work whose only ref went with a removed worktree. Only the tips
    /// (none of the others descends from them).
    pub fn unreachable_commits_since(&self, since: std::time::SystemTime, start: Oid) -> Vec<Oid> {
        let mut found = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.git_dir.join("objects")) else {
            return found;
        };
        for dir in dirs.flatten() {
            let prefix = dir.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let Ok(objects) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for object in objects.flatten() {
                let new = object
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= since);
                if !new {
                    continue;
                }
                let Ok(oid) =
                    Oid::from_str(&format!("{prefix}{}", object.file_name().to_string_lossy()))
                else {
                    continue;
                };
                if self.repo.find_commit(oid).is_ok() && self.contains(oid, start) {
                    found.push(oid);
                }
            }
        }
        let mut tips: Vec<Oid> = self
            .repo
            .references()
            .map(|refs| refs.flatten().filter_map(|r| r.target()).collect())
            .unwrap_or_default();
        if let Ok(worktrees) = self.repo.worktrees() {
            for name in worktrees.iter().flatten().flatten() {
                let head = self.registration(name).join("HEAD");
                if let Some(oid) = std::fs::read_to_string(head)
                    .ok()
                    .and_then(|t| Oid::from_str(t.trim()).ok())
                {
                    tips.push(oid);
                }
            }
        }
        if let Some(head) = self.repo.head().ok().and_then(|h| h.target()) {
            tips.push(head);
        }
        found.retain(|&c| !tips.iter().any(|&t| self.contains(t, c)));
        let all = found.clone();
        found.retain(|&c| !all.iter().any(|&o| o != c && self.contains(o, c)));
        found
    }

    /// Whether `descendant` contains `ancestor` in its history (or is it).
    pub fn contains(&self, descendant: Oid, ancestor: Oid) -> bool {
        descendant == ancestor
            || self
                .repo
                .graph_descendant_of(descendant, ancestor)
                .unwrap_or(false)
    }

    /// Replay what `local` changed since its common ancestor with `onto`
    /// on top of `onto`, as one commit: a three-way merge of the trees,
    /// with no checkout. Paths both sides changed differently are
    /// [`Folded::Conflicts`]; nothing is resolved for anyone.
    pub fn fold_onto(&self, local: Oid, onto: Oid, message: &str, sign: bool) -> Result<Folded> {
        let Ok(base) = self.repo.merge_base(local, onto) else {
            return Ok(Folded::Unrelated);
        };
        let tree = |oid: Oid| {
            self.repo
                .find_commit(oid)
                .and_then(|c| c.tree())
                .git_context("cannot read a board commit")
        };
        let (base_tree, onto_tree, local_tree) = (tree(base)?, tree(onto)?, tree(local)?);
        let mut index = self
            .repo
            .merge_trees(&base_tree, &onto_tree, &local_tree, None)
            .git_context("cannot merge the board's trees")?;
        if index.has_conflicts() {
            return Ok(Folded::Conflicts(land::conflict_paths(&mut index)?));
        }
        let tree = index
            .write_tree_to(&self.repo)
            .git_context("cannot write the merged tree")?;
        self.commit_tree(tree, &[onto], message, sign)
            .map(Folded::Clean)
    }

    /// A commit of `tree` on `parents`, moving no ref; signed with the
    /// user's git signing key (`git commit-tree -S`) when `sign` is set.
    pub fn commit_tree(
        &self,
        tree: Oid,
        parents: &[Oid],
        message: &str,
        sign: bool,
    ) -> Result<Oid> {
        if sign {
            return crate::gitcli::commit_tree_signed(
                &self.root, &self.repo, tree, parents, message,
            );
        }
        let tree = self
            .repo
            .find_tree(tree)
            .git_context("cannot read the tree")?;
        let parents: Vec<git2::Commit<'_>> = parents
            .iter()
            .map(|p| self.repo.find_commit(*p))
            .collect::<std::result::Result<_, _>>()
            .git_context("cannot read a parent commit")?;
        let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
        let sig = signature(&self.repo);
        self.repo
            .commit(None, &sig, &sig, message, &tree, &refs)
            .git_context("cannot commit")
    }

    /// The subjects and full messages of the commits in `tip` that `base`
    /// lacks, oldest first.
    pub fn messages_since(&self, base: Oid, tip: Oid) -> Vec<String> {
        let Ok(mut walk) = self.repo.revwalk() else {
            return Vec::new();
        };
        let _ = walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE);
        if walk.push(tip).is_err() || walk.hide(base).is_err() {
            return Vec::new();
        }
        walk.flatten()
            .filter_map(|oid| self.repo.find_commit(oid).ok())
            .filter_map(|c| c.message().ok().map(str::to_string))
            .collect()
    }

    /// Every path that differs between the trees of two commits, as it
    /// was and as it is (a rename is a path gone and a path added).
    pub fn paths_between(&self, old: Oid, new: Oid) -> Result<Vec<String>> {
        let tree = |oid: Oid| {
            self.repo
                .find_commit(oid)
                .and_then(|c| c.tree())
                .git_context("cannot read a commit")
        };
        let (a, b) = (tree(old)?, tree(new)?);
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&a), Some(&b), None)
            .git_context("cannot compare two commits")?;
        let mut out = Vec::new();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(p) = file.path().and_then(|p| p.to_str())
                    && !out.iter().any(|o: &String| o == p)
                {
                    out.push(p.to_string());
                }
            }
        }
        Ok(out)
    }

    /// Whether any `.gitignore` differs between the trees of two commits
    /// (true when either cannot be read): a path one side ignores may be
    /// untracked on the other. Only subtrees that differ are read.
    pub fn ignore_rules_differ(&self, old: Oid, new: Oid) -> bool {
        let tree = |oid: Oid| self.repo.find_commit(oid).and_then(|c| c.tree());
        match (tree(old), tree(new)) {
            (Ok(a), Ok(b)) => {
                trees_differ_in_ignore_rules(&self.repo, Some(&a), Some(&b)).unwrap_or(true)
            }
            _ => true,
        }
    }

    /// Point `name` (a full ref name) at `oid`, so the commits stay
    /// reachable whatever happens to branches.
    /// A kept ref is never overwritten: where `name` holds another commit
    /// already, `name-2`, `name-3`... is used. Returns the name used.
    pub fn keep(&self, name: &str, oid: Oid, why: &str) -> Result<String> {
        let mut candidate = name.to_string();
        for n in 2..10_000 {
            match self.repo.find_reference(&candidate) {
                Ok(r) if r.target() == Some(oid) => return Ok(candidate),
                Ok(_) => candidate = format!("{name}-{n}"),
                Err(_) => {
                    self.repo
                        .reference(&candidate, oid, false, why)
                        .git_context(format!("cannot create {candidate}"))?;
                    return Ok(candidate);
                }
            }
        }
        Err(Error::other(format!("too many refs named {name}-<n>")))
    }

    /// Keep the files under `dir` (regular files, at any depth), or the
    /// file `dir`, as a root
    /// commit on the ref `name` (or `name-<n>`, as [`MainRepo::keep`]):
    /// compressed in the object store, readable with `git show REF:PATH`.
    pub fn keep_files(&self, name: &str, dir: &Path, message: &str) -> Result<String> {
        let tree = if dir.is_file() {
            // One file: a tree of it alone, under its own name.
            let mut builder = self
                .repo
                .treebuilder(None)
                .git_context("cannot build a tree")?;
            let blob = self
                .repo
                .blob_path(dir)
                .git_context(format!("cannot store {}", dir.display()))?;
            let file = dir.file_name().and_then(|n| n.to_str()).unwrap_or("file");
            builder
                .insert(file, blob, 0o100644)
                .git_context(format!("cannot add {file} to a tree"))?;
            builder.write().git_context("cannot write a tree")?
        } else {
            self.tree_of_dir(dir)?
        };
        let tree = self
            .repo
            .find_tree(tree)
            .git_context("cannot read the tree just written")?;
        let sig = signature(&self.repo);
        let commit = self
            .repo
            .commit(None, &sig, &sig, message, &tree, &[])
            .git_context(format!("cannot keep {}", dir.display()))?;
        self.keep(name, commit, message)
    }

    fn tree_of_dir(&self, dir: &Path) -> Result<Oid> {
        let mut builder = self
            .repo
            .treebuilder(None)
            .git_context("cannot build a tree")?;
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("cannot read", dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("cannot read", &path, e))?;
            let (oid, mode) = if kind.is_dir() {
                (self.tree_of_dir(&path)?, 0o040000)
            } else if kind.is_file() {
                let oid = self
                    .repo
                    .blob_path(&path)
                    .git_context(format!("cannot store {}", path.display()))?;
                (oid, 0o100644)
            } else {
                continue;
            };
            builder
                .insert(&name, oid, mode)
                .git_context(format!("cannot add {name} to a tree"))?;
        }
        builder.write().git_context("cannot write a tree")
    }

    /// Remove the lock file of one of orch's refs (`refs/heads/orch/...`)
    /// that a killed orch or git left behind, if no live process holds it
    /// open. Worktrees are detached, so no worktree's own lock files cover
    /// its branch. Call only where orch alone may move that ref (under the
    /// ticket's run lock). Returns whether one was removed.
    pub fn clear_stale_ref_lock(&self, name: &str) -> bool {
        if !name.starts_with("refs/heads/orch/") {
            return false;
        }
        let lock = self.git_dir.join(format!("{name}.lock"));
        lock.exists()
            && crate::process::holders_of(&lock).is_empty()
            && std::fs::remove_file(&lock).is_ok()
    }

    /// Point `name` at `oid`, whatever it pointed at.
    pub fn set_ref(&self, name: &str, oid: Oid, why: &str) -> Result<()> {
        self.repo
            .reference(name, oid, true, why)
            .git_context(format!("cannot update {name}"))?;
        Ok(())
    }

    /// What git ignores in the checkout, asked of one repository opened
    /// once (a walk asks it for every directory).
    pub fn checkout_ignores(&self) -> CheckoutIgnores<'_> {
        CheckoutIgnores {
            checkout: self.checkout_repo(),
            main: &self.repo,
        }
    }

    /// Paths that differ from HEAD in the main checkout (for noticing an
    /// agent that writes outside its worktree).
    pub fn checkout_changes(&self) -> Vec<String> {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(false)
            .exclude_submodules(true);
        let checkout = self.checkout_repo();
        checkout
            .as_ref()
            .unwrap_or(&self.repo)
            .statuses(Some(&mut opts))
            .map(|st| {
                st.iter()
                    .filter_map(|e| e.path().ok().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Point the full ref `name` at `new` only if it is at `expected` now:
    /// the compare-and-swap every board change is published with.
    pub fn update_ref(&self, name: &str, new: Oid, expected: Oid, why: &str) -> Result<()> {
        match self.repo.reference_matching(name, new, true, expected, why) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified | git2::ErrorCode::NotFound
                ) || e.class() == git2::ErrorClass::Reference =>
            {
                let found = self.repo.find_reference(name).ok().and_then(|r| r.target());
                if found == Some(expected) {
                    // Not a lost race: the update itself failed.
                    return Err(Error::Git(GitError::classify(
                        format!("cannot update {name}"),
                        e,
                    )));
                }
                Err(Error::Git(GitError::Rejected {
                    refname: name.to_string(),
                    expected: Some(expected),
                    found,
                    on_remote: false,
                }))
            }
            Err(e) => Err(Error::Git(GitError::classify(
                format!("cannot update {name}"),
                e,
            ))),
        }
    }

    /// The user's own branches (every local branch but orch's) and where
    /// they point: to tell afterwards which of them moved during a run.
    pub fn user_branches(&self) -> Vec<(String, Oid)> {
        let Ok(refs) = self.repo.references_glob("refs/heads/*") else {
            return Vec::new();
        };
        refs.filter_map(|r| {
            let r = r.ok()?;
            Some((r.name().ok()?.to_string(), r.target()?))
        })
        .filter(|(name, _)| !name.starts_with("refs/heads/orch/"))
        .collect()
    }

    /// The names of the refs under `prefix` (which ends in `/`), without
    /// reading what they point at.
    pub fn ref_names(&self, prefix: &str) -> Vec<String> {
        let Ok(mut refs) = self.repo.references_glob(&format!("{prefix}*")) else {
            return Vec::new();
        };
        refs.names()
            .filter_map(|n| n.ok().map(str::to_string))
            .collect()
    }

    /// Every ref whose name starts with `prefix`, and the commit it points
    /// at, sorted by name.
    pub fn refs_under(&self, prefix: &str) -> Vec<(String, Oid)> {
        let Ok(refs) = self.repo.references_glob(&format!("{prefix}*")) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Oid)> = refs
            .filter_map(|r| {
                let r = r.ok()?;
                Some((r.name().ok()?.to_string(), r.peel_to_commit().ok()?.id()))
            })
            .collect();
        out.sort();
        out
    }

    /// The commit a full ref name points at, if any.
    pub fn ref_target(&self, name: &str) -> Option<Oid> {
        self.repo
            .find_reference(name)
            .ok()
            .and_then(|r| r.peel_to_commit().ok())
            .map(|c| c.id())
    }

    /// Delete the local branch `name` if it exists.
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        match self.repo.find_branch(name, git2::BranchType::Local) {
            Ok(mut b) => b
                .delete()
                .git_context(format!("cannot delete the branch {name}")),
            Err(_) => Ok(()),
        }
    }

    /// Local branches under `orch/` other than orch/plan, with the summary
    /// of their tip, sorted by name.
    pub fn ticket_branches(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Ok(iter) = self.repo.branches(Some(git2::BranchType::Local)) {
            for (b, _) in iter.flatten() {
                let name = b.name().ok().flatten().unwrap_or("").to_string();
                if name.starts_with("orch/") && name != PLAN_BRANCH {
                    let summary = b
                        .get()
                        .peel_to_commit()
                        .ok()
                        .and_then(|c| c.summary().ok().flatten().map(str::to_string))
                        .unwrap_or_default();
                    out.push((name, summary));
                }
            }
        }
        out.sort();
        out
    }

    /// Append `.orch/` to the repository's info/exclude once.
    pub fn exclude_orch_dir(&self) -> Result<bool> {
        let path = self.git_dir.join("info").join("exclude");
        let existing = std::fs::read_to_string(&path).unwrap_or_default();
        if existing
            .lines()
            .any(|l| l.trim() == ".orch/" || l.trim() == "/.orch/")
        {
            return Ok(false);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str("# orch's local state\n/.orch/\n");
        std::fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))?;
        Ok(true)
    }
}

/// A new repository at `dir` on branch `main`, with `files` in its first commit.
pub fn init_with_files(dir: &Path, files: &[(&str, &[u8])], message: &str) -> Result<()> {
    let repo =
        git2::Repository::init_opts(dir, git2::RepositoryInitOptions::new().initial_head("main"))
            .git_context("cannot create the repository")?;
    for (path, content) in files {
        let abs = dir.join(path);
        std::fs::write(&abs, content).map_err(|e| Error::io("cannot write", &abs, e))?;
    }
    let mut index = repo.index().git_context("cannot read the index")?;
    for (path, _) in files {
        index
            .add_path(Path::new(path))
            .git_context(format!("cannot stage {path}"))?;
    }
    index.write().git_context("cannot write the index")?;
    let tree = index.write_tree().git_context("cannot write the tree")?;
    let tree = repo.find_tree(tree).git_context("cannot read the tree")?;
    let sig = signature(&repo);
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &[])
        .git_context("cannot commit")?;
    Ok(())
}

/// What [`MainRepo::fold_onto`] came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Folded {
    Clean(Oid),
    /// Paths both sides changed differently.
    Conflicts(Vec<String>),
    /// No common history.
    Unrelated,
}

/// One path a commit changed: whether it was there before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChange {
    pub path: String,
    pub before: bool,
    pub after: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CommitInfo {
    pub id: String,
    pub summary: String,
    pub message: String,
    pub time: i64,
    pub author: String,
    pub email: String,
}

impl From<&git2::Commit<'_>> for CommitInfo {
    fn from(c: &git2::Commit<'_>) -> Self {
        CommitInfo {
            id: c.id().to_string(),
            summary: c.summary().ok().flatten().unwrap_or("").to_string(),
            message: c.message().unwrap_or("").to_string(),
            time: c.time().seconds(),
            author: c.author().name().unwrap_or("").to_string(),
            email: c.author().email().unwrap_or("").to_string(),
        }
    }
}

fn build_tree(repo: &Repository, files: &[(&str, &[u8])]) -> Result<Oid> {
    // Build nested trees from slash-separated paths.
    fn insert(
        repo: &Repository,
        base: Option<&git2::Tree<'_>>,
        parts: &[&str],
        blob: Oid,
    ) -> Result<Oid> {
        let mut builder = repo.treebuilder(base).git_context("cannot build a tree")?;
        if parts.len() == 1 {
            builder
                .insert(parts[0], blob, 0o100644)
                .git_context("cannot build a tree")?;
        } else {
            let sub = base
                .and_then(|t| t.get_name(parts[0]))
                .and_then(|e| e.to_object(repo).ok())
                .and_then(|o| o.into_tree().ok());
            let sub_oid = insert(repo, sub.as_ref(), &parts[1..], blob)?;
            builder
                .insert(parts[0], sub_oid, 0o040000)
                .git_context("cannot build a tree")?;
        }
        builder.write().git_context("cannot write a tree")
    }
    let mut root: Option<Oid> = None;
    for (path, content) in files {
        let blob = repo.blob(content).git_context("cannot write a blob")?;
        let parts: Vec<&str> = path.split('/').collect();
        let base = root
            .map(|o| repo.find_tree(o))
            .transpose()
            .git_context("cannot read a tree")?;
        root = Some(insert(repo, base.as_ref(), &parts, blob)?);
    }
    match root {
        Some(o) => Ok(o),
        None => repo
            .treebuilder(None)
            .and_then(|b| b.write())
            .git_context("cannot write an empty tree"),
    }
}

/// The committer orch uses: the identity git would commit with, else
/// orch's own (see [`crate::gitcli::Identity`]).
/// See [`MainRepo::checkout_ignores`].
pub struct CheckoutIgnores<'a> {
    checkout: Option<Repository>,
    main: &'a Repository,
}

impl CheckoutIgnores<'_> {
    /// Whether git ignores `rel` (relative to the checkout): a directory
    /// is asked about as one, so `target/` patterns match it.
    pub fn ignored(&self, rel: &Path, dir: bool) -> bool {
        let repo = self.checkout.as_ref().unwrap_or(self.main);
        let mut text = rel.to_string_lossy().into_owned();
        if dir {
            text.push('/');
        }
        repo.is_path_ignored(Path::new(&text)).unwrap_or(false)
    }
}

pub fn signature(repo: &Repository) -> Signature<'static> {
    let who = crate::gitcli::Identity::of(repo);
    match Signature::now(&who.name, &who.email) {
        Ok(s) => s,
        // git accepted the identity, so libgit2 only refuses one with `<`
        // or `>` in it, which git var cannot print; orch's own is valid.
        Err(_) => {
            let (name, email) = crate::gitcli::Identity::orch();
            match Signature::now(&name, &email) {
                Ok(s) => s,
                Err(e) => panic!("orch's own identity is invalid: {e}"),
            }
        }
    }
}

/// A linked worktree orch owns (the plan worktree or a ticket's).
pub struct Worktree {
    pub repo: Repository,
    pub path: PathBuf,
    /// Sign the commits made here with the user's git signing key.
    pub sign: bool,
}

impl Worktree {
    pub fn open(path: &Path) -> Result<Worktree> {
        let repo = Repository::open_ext(
            path,
            RepositoryOpenFlags::NO_SEARCH,
            std::iter::empty::<&Path>(),
        )
        .git_context(format!("cannot open the worktree {}", path.display()))?;
        Ok(Worktree {
            repo,
            path: path.to_path_buf(),
            sign: false,
        })
    }

    pub fn head(&self) -> Result<Oid> {
        self.repo
            .head()
            .and_then(|h| h.peel_to_commit())
            .map(|c| c.id())
            .git_context(format!("cannot read HEAD of {}", self.path.display()))
    }

    /// Detach HEAD at its commit when it is attached to a branch other
    /// than `keep` (a full ref name), so that a commit orch makes here
    /// moves no branch: an agent may `git switch` to any branch no other
    /// worktree has.
    pub fn detach_unless_on(&self, keep: Option<&str>) -> Result<()> {
        if self.head_ref().is_none_or(|r| Some(r.as_str()) == keep) {
            return Ok(());
        }
        // An unborn branch has no commit to detach at; a commit there
        // makes a new branch, never moves one.
        let Ok(at) = self.head() else {
            return Ok(());
        };
        self.repo
            .set_head_detached(at)
            .git_context(format!("cannot detach HEAD of {}", self.path.display()))
    }

    /// Whether some file here is marked `--assume-unchanged`: git takes
    /// its word for such a file and neither stats nor reports it, so an
    /// edit to it is seen only by a checkout that ignores the mark. True
    /// when the index cannot be read.
    pub fn assumes_unchanged(&self) -> bool {
        index_flags::assumes_unchanged(&self.repo.path().join("index"))
    }

    /// The full ref name HEAD points at, e.g. `refs/heads/orch/0001-x`.
    pub fn head_ref(&self) -> Option<String> {
        let head = self.repo.find_reference("HEAD").ok()?;
        head.symbolic_target().ok().flatten().map(str::to_string)
    }

    /// Paths that differ from HEAD, untracked ones included (ignored ones not).
    pub fn changed_paths(&self) -> Result<Vec<String>> {
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .exclude_submodules(true);
        let statuses = self
            .repo
            .statuses(Some(&mut opts))
            .git_context(format!("cannot read the status of {}", self.path.display()))?;
        Ok(statuses
            .iter()
            .filter_map(|s| s.path().ok().map(str::to_string))
            .collect())
    }

    /// [`Worktree::changed_paths`] through `git status`, which stats files
    /// on several threads and refreshes the index it reads: on a plan of
    /// 10,000 tickets it takes half as long. libgit2 answers if git cannot.
    pub fn changed_paths_fast(&self) -> Result<Vec<String>> {
        crate::gitcli::changed_paths_no_renames(&self.path).or_else(|_| self.changed_paths())
    }

    /// Stage exactly `paths` as they are on disk (removed if gone).
    pub fn stage_paths(&self, paths: &[String]) -> Result<()> {
        let mut index = self.repo.index().git_context("cannot read the index")?;
        for p in paths {
            if self.path.join(p).exists() {
                index
                    .add_path(Path::new(p))
                    .git_context(format!("cannot stage {p}"))?;
            } else {
                // Removing a path the index does not hold is not an error.
                let _ = index.remove_path(Path::new(p));
            }
        }
        index.write().git_context("cannot write the index")
    }

    /// A commit of the staged tree with `parent` as its only parent, moving
    /// no ref; None when the tree is `parent`'s. The caller publishes it.
    pub fn commit_staged_on(&self, parent: Oid, message: &str) -> Result<Option<Oid>> {
        let mut index = self.repo.index().git_context("cannot read the index")?;
        let parent = self
            .repo
            .find_commit(parent)
            .git_context("cannot read the board's commit")?;
        self.write_commit(&mut index, &parent, message)
    }

    /// Make the files and index match HEAD again after its branch moved
    /// from `old` to somewhere else: every path that differs between the
    /// two, or that is in `paths` (written since), is made as HEAD has it,
    /// removed where HEAD has none. Files no commit knows are left alone.
    pub fn follow_head(&self, old: Oid, paths: &[String]) -> Result<()> {
        let head = self
            .repo
            .head()
            .and_then(|h| h.peel_to_tree())
            .git_context("cannot read HEAD")?;
        let old_tree = self
            .repo
            .find_commit(old)
            .and_then(|c| c.tree())
            .git_context("cannot read the board's commit")?;
        let diff = self
            .repo
            .diff_tree_to_tree(Some(&old_tree), Some(&head), None)
            .git_context("cannot compare the board's commits")?;
        let mut affected: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(p) = file.path() {
                    affected.push(p.to_path_buf());
                }
            }
        }
        for p in &affected {
            if head.get_path(p).is_err() {
                let abs = self.path.join(p);
                // orch writes only files: a directory in the way is not its
                // own, and failing on it would stop every later tick.
                if std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                match std::fs::remove_file(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("cannot remove", &abs, e)),
                }
            }
        }
        let mut index = self.repo.index().git_context("cannot read the index")?;
        index
            .read_tree(&head)
            .git_context("cannot read HEAD's tree")?;
        index.write().git_context("cannot write the index")?;
        if affected.is_empty() {
            return Ok(());
        }
        // Only the affected paths: a person's uncommitted edit elsewhere in
        // the worktree must survive (it is adopted by the next change).
        let mut checkout = git2::build::CheckoutBuilder::new();
        checkout.force();
        for p in &affected {
            checkout.path(p);
        }
        self.repo
            .checkout_head(Some(&mut checkout))
            .git_context("cannot check out HEAD")
    }

    /// Commit the index's tree on `parent`, moving no ref; None when the
    /// tree is `parent`'s.
    fn write_commit(
        &self,
        index: &mut git2::Index,
        parent: &git2::Commit<'_>,
        message: &str,
    ) -> Result<Option<Oid>> {
        let tree_id = index.write_tree().git_context("cannot write the tree")?;
        if parent.tree_id() == tree_id {
            return Ok(None);
        }
        if self.sign {
            return crate::gitcli::commit_tree_signed(
                &self.path,
                &self.repo,
                tree_id,
                &[parent.id()],
                message,
            )
            .map(Some);
        }
        let tree = self
            .repo
            .find_tree(tree_id)
            .git_context("cannot read the tree")?;
        let sig = signature(&self.repo);
        let oid = self
            .repo
            .commit(None, &sig, &sig, message, &tree, &[parent])
            .git_context("cannot commit")?;
        Ok(Some(oid))
    }

    /// Which of `paths` a commit changed against its first parent (against
    /// nothing for a root commit), and whether each was there before and
    /// after it.
    pub fn path_changes(&self, commit: &str, paths: &[String]) -> Result<Vec<PathChange>> {
        let oid = Oid::from_str(commit).git_context("not a commit id")?;
        let commit = self
            .repo
            .find_commit(oid)
            .git_context("cannot read a commit")?;
        let after = commit.tree().git_context("cannot read a tree")?;
        let before = match commit.parent(0) {
            Ok(p) => Some(p.tree().git_context("cannot read a tree")?),
            Err(_) => None,
        };
        let blob = |tree: Option<&git2::Tree<'_>>, path: &str| {
            tree.and_then(|t| t.get_path(Path::new(path)).ok())
                .map(|e| e.id())
        };
        Ok(paths
            .iter()
            .filter_map(|p| {
                let (b, a) = (blob(before.as_ref(), p), blob(Some(&after), p));
                (b != a).then(|| PathChange {
                    path: p.clone(),
                    before: b.is_some(),
                    after: a.is_some(),
                })
            })
            .collect())
    }

    /// Walk the first-parent history from HEAD, newest first.
    pub fn history(&self, mut visit: impl FnMut(&CommitInfo) -> bool) -> Result<()> {
        let mut walk = self.repo.revwalk().git_context("cannot walk history")?;
        walk.push_head().git_context("cannot walk history")?;
        walk.simplify_first_parent()
            .git_context("cannot walk history")?;
        for oid in walk {
            let oid = oid.git_context("cannot walk history")?;
            let commit = self
                .repo
                .find_commit(oid)
                .git_context("cannot read a commit")?;
            if !visit(&CommitInfo::from(&commit)) {
                break;
            }
        }
        Ok(())
    }

    /// Lock files a killed git or orch can leave for this worktree: its
    /// index, its HEAD, and the ref of the branch it has checked out.
    fn lock_files(&self) -> Vec<PathBuf> {
        let mut locks = vec![
            self.repo.path().join("index.lock"),
            self.repo.path().join("HEAD.lock"),
        ];
        // Only orch's own branches: a HEAD an agent pointed elsewhere (the
        // user's main, say) must never lose a lock the user's git holds.
        if let Some(r) = self
            .head_ref()
            .filter(|r| r.starts_with("refs/heads/orch/"))
        {
            locks.push(self.repo.commondir().join(format!("{r}.lock")));
        }
        locks
    }

    pub fn has_stale_lock(&self) -> bool {
        self.lock_files().iter().any(|p| p.exists())
    }

    /// Lock files of this worktree that a live process holds open, with
    /// that process: never removed.
    pub fn held_locks(&self) -> Vec<(PathBuf, i32)> {
        self.lock_files()
            .into_iter()
            .filter(|p| p.exists())
            .filter_map(|p| {
                let pid = *crate::process::holders_of(&p).first()?;
                Some((p, pid))
            })
            .collect()
    }

    /// Remove lock files left by a killed git or orch process: only those
    /// no live process holds open. Safe only where no process can be
    /// about to take one: under the board lock for the plan worktree, once
    /// the agent's processes are gone for a ticket worktree.
    pub fn clear_stale_index_lock(&self) -> Option<PathBuf> {
        let mut removed = None;
        for lock in self.lock_files() {
            if lock.exists()
                && crate::process::holders_of(&lock).is_empty()
                && std::fs::remove_file(&lock).is_ok()
            {
                removed = Some(lock);
            }
        }
        removed
    }
}

/// `Key: value` lines of the message's last paragraph.
pub fn trailers(message: &str) -> Vec<(String, String)> {
    let last = message.trim_end().rsplit("\n\n").next().unwrap_or("");
    last.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            (!k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                .then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// [`MainRepo::ignore_rules_differ`] for two trees, either of which may
/// be absent (a directory on one side only).
fn trees_differ_in_ignore_rules(
    repo: &Repository,
    a: Option<&git2::Tree<'_>>,
    b: Option<&git2::Tree<'_>>,
) -> std::result::Result<bool, git2::Error> {
    if let (Some(a), Some(b)) = (a, b)
        && a.id() == b.id()
    {
        return Ok(false);
    }
    // Each name once, as it is on both sides.
    let mut pairs = Vec::new();
    for entry in a.into_iter().flat_map(|t| t.iter()) {
        let there = b.and_then(|t| t.get_name_bytes(entry.name_bytes()));
        pairs.push((Some(entry), there));
    }
    for entry in b.into_iter().flat_map(|t| t.iter()) {
        if a.is_none_or(|t| t.get_name_bytes(entry.name_bytes()).is_none()) {
            pairs.push((None, Some(entry)));
        }
    }
    let subtree = |entry: &Option<git2::TreeEntry<'_>>| match entry {
        Some(e) if e.kind() == Some(git2::ObjectType::Tree) => repo.find_tree(e.id()).map(Some),
        _ => Ok(None),
    };
    for (old, new) in &pairs {
        let same = match (old, new) {
            (Some(o), Some(n)) => o.id() == n.id() && o.filemode() == n.filemode(),
            _ => false,
        };
        if same {
            continue;
        }
        let name = old.as_ref().or(new.as_ref()).map(|e| e.name_bytes());
        if name == Some(b".gitignore".as_slice()) {
            return Ok(true);
        }
        let (x, y) = (subtree(old)?, subtree(new)?);
        if (x.is_some() || y.is_some())
            && trees_differ_in_ignore_rules(repo, x.as_ref(), y.as_ref())?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_ref_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let (a, b) = {
            let tree = repo
                .find_tree(repo.index().unwrap().write_tree().unwrap())
                .unwrap();
            let a = repo.commit(None, &sig, &sig, "a", &tree, &[]).unwrap();
            let b = repo.commit(None, &sig, &sig, "b", &tree, &[]).unwrap();
            (a, b)
        };
        let main = MainRepo {
            repo,
            root: dir.path().to_path_buf(),
            git_dir: dir.path().join(".git"),
        };
        let name = "refs/orch/kept/x/1";
        assert_eq!(main.keep(name, a, "t").unwrap(), name);
        assert_eq!(
            main.keep(name, a, "t").unwrap(),
            name,
            "the same commit: no new ref"
        );
        assert_eq!(main.keep(name, b, "t").unwrap(), "refs/orch/kept/x/1-2");
        assert_eq!(main.ref_target(name), Some(a));
        assert_eq!(main.ref_target("refs/orch/kept/x/1-2"), Some(b));
    }

    #[test]
    fn ignore_rules_differ_only_where_a_gitignore_does() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        // A commit of `files`, each a path and its text.
        let commit = |files: &[(&str, &str)]| {
            let mut index = git2::Index::new().unwrap();
            for (path, text) in files {
                let blob = repo.blob(text.as_bytes()).unwrap();
                let mut entry = git2::IndexEntry {
                    ctime: git2::IndexTime::new(0, 0),
                    mtime: git2::IndexTime::new(0, 0),
                    dev: 0,
                    ino: 0,
                    mode: 0o100644,
                    uid: 0,
                    gid: 0,
                    file_size: 0,
                    id: blob,
                    flags: 0,
                    flags_extended: 0,
                    path: path.as_bytes().to_vec(),
                };
                entry.flags = (path.len() as u16) & 0xfff;
                index.add(&entry).unwrap();
            }
            let tree = repo.find_tree(index.write_tree_to(&repo).unwrap()).unwrap();
            repo.commit(None, &sig, &sig, "c", &tree, &[]).unwrap()
        };
        let base = [
            ("src/a.rs", "a"),
            ("src/b/.gitignore", "*.o"),
            (".gitignore", "target/"),
        ];
        let old = commit(&base);
        let main = MainRepo {
            repo: Repository::open(dir.path()).unwrap(),
            root: dir.path().to_path_buf(),
            git_dir: dir.path().join(".git"),
        };
        let with = |extra: &[(&str, &str)]| {
            let mut files: Vec<(&str, &str)> = base
                .iter()
                .filter(|(p, _)| !extra.iter().any(|(q, _)| q == p))
                .copied()
                .collect();
            files.extend_from_slice(extra);
            commit(&files)
        };
        assert!(!main.ignore_rules_differ(old, old));
        assert!(!main.ignore_rules_differ(old, with(&[("src/a.rs", "changed")])));
        assert!(!main.ignore_rules_differ(old, with(&[("new/dir/f", "x")])));
        assert!(main.ignore_rules_differ(old, with(&[(".gitignore", "*.tmp")])));
        assert!(main.ignore_rules_differ(old, with(&[("src/b/.gitignore", "")])));
        assert!(main.ignore_rules_differ(old, with(&[("new/dir/.gitignore", "*")])));
        assert!(main.ignore_rules_differ(with(&[("new/dir/.gitignore", "*")]), old));
        let gone = commit(&[("src/a.rs", "a"), (".gitignore", "target/")]);
        assert!(main.ignore_rules_differ(old, gone), "a .gitignore removed");
    }

    #[test]
    fn trailers_of_the_last_paragraph() {
        let t =
            trailers("orch: claim x\n\nbody: not a trailer\n\nOrch-Ticket: x\nOrch-Attempt: 2\n");
        assert_eq!(
            t,
            vec![
                ("Orch-Ticket".to_string(), "x".to_string()),
                ("Orch-Attempt".to_string(), "2".to_string())
            ]
        );
    }
}
