//! `orch retry`: a blocked ticket back to todo, with a fresh set of
//! attempts, recorded with who asked.

use crate::board::{BoardTxn, CommitMessage, Trailer};
use crate::error::{Error, Result};
use crate::ticket::{self, Event, State};

use super::Ctx;

/// Move a blocked ticket back to todo with a fresh set of attempts.
///
/// The same as moving its file from tickets/blocked to tickets/todo by
/// hand, and recorded on the ticket's log and in the board commit with
/// your git identity. Its branch and earlier work stay: the next attempt
/// continues from them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The blocked ticket's id.
    pub id: String,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    ticket::require_id(&args.id)?;
    let id = args.id.as_str();
    let mut txn = BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    let who = crate::gitcli::Identity::of(&txn.main.repo);
    let by = format!("{} <{}>", who.name, who.email);
    let moved = txn.apply(|txn| {
        let Some(t) = txn.read_ticket(id, State::Blocked) else {
            return Ok(None);
        };
        let event = Event::retry(&by);
        txn.move_ticket(id, State::Blocked, State::Todo, &t.text_with(&event))?;
        let message = CommitMessage::new(format!("orch: retry {id}"))
            .line(format!(
                "Moved back to todo by {by}, with a fresh set of attempts."
            ))
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Event, "retry")
            .trailer(Trailer::State, State::Todo);
        Ok(Some((message, ())))
    })?;
    if moved.is_some() {
        crate::outln!("{id}: back in todo with a fresh set of attempts");
        return Ok(0);
    }
    let board = txn.load();
    match board.seen.get(id).and_then(|states| states.first()) {
        Some(State::Todo) => {
            crate::outln!("{id} is already in todo");
            Ok(0)
        }
        Some(state) => Err(Error::usage(format!(
            "{id} is in {}, not blocked: only a blocked ticket is retried",
            state.dir()
        ))
        .hinted(match state {
            State::InProgress => format!("`orch abort {id}` stops its run first"),
            _ => "`orch status` shows where each ticket is".to_string(),
        })),
        None => Err(no_such_ticket(&board, id)),
    }
}

/// The error for an id no ticket has, with the ids it may have meant.
pub fn no_such_ticket(board: &crate::board::Board, id: &str) -> Error {
    let ids: Vec<&str> = board.seen.keys().map(String::as_str).collect();
    let similar = super::history::similar_ids(id, &ids);
    Error::usage(format!("there is no ticket `{id}`")).hinted(if similar.is_empty() {
        "`orch status` lists the tickets".to_string()
    } else {
        format!("did you mean {}?", similar.join(", "))
    })
}
