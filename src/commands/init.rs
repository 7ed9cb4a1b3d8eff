//! `orch init`: create or repair the board in a repository.

use crate::board::{self, BoardTxn, CommitMessage, Layout, Trailer};
use crate::config::DEFAULT_YAML;
use crate::error::{Error, Result};
use crate::git;
use crate::ticket::State;

use super::Ctx;

/// Create the board: the orphan branch orch/plan with orch.yaml and the
/// ticket directories, checked out at .orch/plan.
///
/// Safe to run again: it reports what exists and repairs what is missing,
/// such as the plan worktree of a fresh clone whose orch/plan came from a
/// remote. It never touches your checkout or index.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The branch ticket branches start from [default: the current branch].
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
    /// Make a new board without asking the repository's remotes whether
    /// one of them has a board already (for a remote that cannot be reached).
    #[arg(long)]
    pub no_fetch: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let main = git::open_main(&ctx.cwd)?;
    if !main.has_commits() {
        // The suggested commit must work as pasted: without an identity,
        // git refuses it ("Author identity unknown").
        let hint = if crate::gitcli::Identity::lookup(&main.repo).is_users() {
            "make a first commit, e.g. `git commit --allow-empty -m \"initial commit\"`, then run `orch init` again"
        } else {
            "git has no identity to make it with yet: set one and make a first commit, e.g. `git config --global user.name \"Your Name\" && git config --global user.email you@example.com && git commit --allow-empty -m \"initial commit\"`, then run `orch init` again"
        };
        return Err(Error::usage(format!(
            "{} has no commits yet; ticket branches need a commit to start from",
            main.root.display()
        ))
        .hinted(hint));
    }
    let layout = Layout::new(&main.root, &main.git_dir);
    let lock = layout.lock_board(ctx.lock_timeout)?;
    let mut report: Vec<String> = Vec::new();

    if main.exclude_orch_dir()? {
        report.push("added .orch/ to .git/info/exclude".into());
    }

    let base = match &args.base {
        Some(b) => {
            main.resolve_commit(b).map_err(|e| {
                Error::usage(format!("--base {}", crate::error::render_chain(&e)))
                    .hinted("give an existing branch, e.g. --base main")
            })?;
            b.clone()
        }
        None => main.current_branch().unwrap_or_else(|| "main".into()),
    };

    let existed = main.branch_exists(git::PLAN_BRANCH);
    let mut joined = false;
    if existed {
        report.push("branch orch/plan exists".into());
        if args.base.is_some() {
            crate::ui::warn(
                "--base is ignored: orch/plan exists; edit `base:` in .orch/plan/orch.yaml instead",
            );
        }
    } else if let Some(oid) = board::journal::last_published(&main) {
        // orch/plan was deleted: the board it had is still here. A fresh
        // board would lose the audit history.
        main.create_branch_at(git::PLAN_BRANCH, oid)?;
        report.push(format!(
            "restored branch orch/plan to {}, the last board orch published (it had been deleted)",
            crate::text::short_oid(&oid.to_string())
        ));
    } else if let Some((remote, oid)) = find_remote_board(&main, args.no_fetch)? {
        main.create_branch_at(git::PLAN_BRANCH, oid)?;
        report.push(format!(
            "joined the board on {} (created orch/plan from {remote})",
            remote
                .trim_start_matches("refs/remotes/")
                .trim_end_matches("/orch/plan")
        ));
        joined = true;
    } else {
        let yaml = default_yaml(&base);
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (board::CONFIG_REL.into(), yaml.into_bytes()),
            (
                board::GITIGNORE_REL.into(),
                board::PLAN_GITIGNORE.as_bytes().to_vec(),
            ),
            (
                board::numbering::NEXT_ID_REL.into(),
                board::numbering::render_counter(0).into_bytes(),
            ),
        ];
        for s in State::ALL {
            files.push((format!("{}/.gitkeep", s.rel_dir()), Vec::new()));
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_slice()))
            .collect();
        let msg = CommitMessage::new("orch: init board")
            .trailer(Trailer::Base, &base)
            .render(&board::host_name());
        let oid = main.create_plan_branch(&refs, &msg)?;
        board::journal::record(&main, oid);
        report.push(format!("created branch orch/plan (base: {base})"));
    }

    if board::ensure_plan_worktree(&main, &layout)? {
        report.push(format!(
            "checked out orch/plan at {}",
            rel(&layout, &layout.plan)
        ));
    } else {
        report.push(format!(
            "plan worktree exists at {}",
            rel(&layout, &layout.plan)
        ));
    }

    // Repair ticket directories and orch.yaml a person or a bad merge
    // removed, as a board change of its own (which takes the lock again).
    drop(lock);
    let mut txn = BoardTxn::open_in(main, layout.clone(), ctx.lock_timeout)?;
    let repaired = txn.apply(|txn| {
        let mut missing = Vec::new();
        if std::fs::symlink_metadata(txn.layout.config_path()).is_err() {
            // A deletion is never adopted, so orch/plan still has the
            // board's own orch.yaml: that one comes back, not the defaults
            // (which would change the agent and every limit).
            match txn.main.file_at(txn.base(), board::CONFIG_REL) {
                Some(committed) => {
                    txn.write(board::CONFIG_REL, &committed)?;
                    missing.push(format!("{} (as orch/plan has it)", board::CONFIG_REL));
                }
                None => {
                    let yaml = default_yaml(&base);
                    txn.write(board::CONFIG_REL, yaml.as_bytes())?;
                    missing.push(format!("{} (the default)", board::CONFIG_REL));
                }
            }
        }
        for s in State::ALL {
            if !txn.layout.plan.join(s.rel_dir()).is_dir() {
                let keep = format!("{}/.gitkeep", s.rel_dir());
                txn.write(&keep, b"")?;
                missing.push(keep);
            }
        }
        Ok((!missing.is_empty()).then(|| {
            (
                CommitMessage::new("orch: repair the board's files").line(missing.join(", ")),
                missing,
            )
        }))
    })?;
    drop(txn);
    if let Some(missing) = repaired {
        report.push(format!("recreated {}", missing.join(", ")));
    }

    if joined
        && crate::config::Config::load(&layout.config_path()).is_ok_and(|(c, _)| c.remote.is_none())
    {
        report.push(
            "note: the board's orch.yaml sets no `remote:`, so changes made here stay here; add `remote: origin` to share them"
                .into(),
        );
    }
    for line in &report {
        crate::outln!("{line}");
    }
    if !existed && !joined {
        crate::outln!();
        crate::outln!(
            "Next: add a ticket with `orch new \"What to do\"` or a file in .orch/plan/tickets/todo/,"
        );
        crate::outln!("      set the agent in .orch/plan/orch.yaml, then run `orch tick`.");
    }
    Ok(0)
}

/// A board on one of the repository's remotes: a remote-tracking orch/plan
/// a clone already has, or else one fetched from each remote in turn. A
/// remote that cannot be asked stops `init`: making a second board beside
/// one that exists would split the team's tickets in two.
fn find_remote_board(main: &git::MainRepo, no_fetch: bool) -> Result<Option<(String, git::Oid)>> {
    if let Some(found) = main.remote_plan_tip() {
        return Ok(Some(found));
    }
    if no_fetch {
        return Ok(None);
    }
    let names = main.remote_names();
    for name in &names {
        let remote =
            crate::remote::Remote::new(main, name, std::time::Duration::from_secs(60), false);
        match remote.fetch_branch(git::PLAN_BRANCH) {
            Ok(Some(oid)) => {
                return Ok(Some((
                    crate::remote::tracking_ref(name, git::PLAN_BRANCH),
                    oid,
                )));
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Error::other(format!(
                    "cannot check whether the remote {name} has a board: {}",
                    crate::error::render_chain(&e)
                ))
                .hinted("run `orch init` again when the remote can be reached, or `orch init --no-fetch` to make a new board without asking it"));
            }
        }
    }
    Ok(None)
}

/// The commented default orch.yaml, with the repository's base branch.
fn default_yaml(base: &str) -> String {
    DEFAULT_YAML.replacen("\nbase: main\n", &format!("\nbase: {base}\n"), 1)
}

fn rel(layout: &Layout, p: &std::path::Path) -> String {
    p.strip_prefix(&layout.root)
        .map(|r| r.display().to_string())
        .unwrap_or_else(|_| p.display().to_string())
}
