//! `orch rm`: a ticket taken off the board, its work left where it is.

use crate::board::{BoardTxn, CommitMessage, Trailer};
use crate::error::{Error, Result};
use crate::ticket::{self, State};

use super::Ctx;

/// Remove a ticket that is not running, in one board commit.
///
/// Its branch, worktree, logs and kept refs stay (`orch gc` decides about
/// them later, and never removes work that exists nowhere else); the
/// ticket's text stays in the board's history. A ticket other unfinished
/// tickets depend on is removed only with --force: they would never run.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket's id (its number, or a start no other id shares).
    pub id: String,
    /// Remove it even though unfinished tickets depend on it.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    ticket::require_id(&args.id)?;
    let id = args.id.as_str();
    let mut txn = BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    let who = crate::gitcli::Identity::of(&txn.main.repo);
    let by = format!("{} <{}>", who.name, who.email);
    let removed = txn.apply(|txn| {
        let board = txn.load();
        let Some(states) = board.seen.get(id).cloned() else {
            return Err(super::retry::no_such_ticket(&board, id));
        };
        if states.contains(&State::InProgress) {
            return Err(Error::usage(format!(
                "{id} is in progress: a ticket that may be running is not removed"
            ))
            .hinted(format!("`orch abort {id}` stops its run first")));
        }
        let waiting: Vec<&str> = board
            .tickets
            .values()
            .filter(|t| t.state != State::Done && t.front.depends_on.iter().any(|d| d == id))
            .map(|t| t.id.as_str())
            .collect();
        if !waiting.is_empty() && !args.force {
            return Err(Error::usage(format!(
                "{} unfinished ticket(s) depend on {id}: {}; without it they never run",
                waiting.len(),
                waiting.join(", ")
            ))
            .hinted(format!(
                "edit their depends_on first (`orch edit ID`), or remove it anyway with `orch rm --force {id}`"
            )));
        }
        for state in &states {
            txn.remove(&ticket::rel_path(*state, id))?;
        }
        let message = CommitMessage::new(format!("orch: rm {id}"))
            .line(format!("Removed by {by}."))
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Event, "rm");
        Ok(Some((message, states)))
    })?;
    let Some(states) = removed else {
        return Err(Error::other(format!("{id} was not removed")));
    };
    let from: Vec<&str> = states.iter().map(|s| s.dir()).collect();
    let branch = crate::git::ticket_branch(id);
    if txn.main.branch_tip(&branch).is_some() {
        crate::outln!(
            "{id}: removed from {}; its branch {branch} is kept",
            from.join(" and ")
        );
    } else {
        crate::outln!("{id}: removed from {}", from.join(" and "));
    }
    Ok(0)
}
