//! `orch edit`: a ticket changed in the person's editor, checked before it
//! goes on the board.

use crate::board::{self, BoardTxn, CommitMessage, Trailer};
use crate::error::{Error, Result};
use crate::ticket::{self, State};

use super::Ctx;
use super::editor::{self, Edited};

/// Open a ticket in $VISUAL or $EDITOR and commit what you save.
///
/// The editor works on a copy. What you save goes on the board only when
/// it is a valid ticket; otherwise the board keeps the old text and your
/// version is kept, with the path said. A ticket that changed on the board
/// while you edited (a tick claimed it, say) is not overwritten.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket's id (its number, or a start no other id shares).
    pub id: String,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    ticket::require_id(&args.id)?;
    let id = args.id.as_str();
    let (_, layout) = board::open_read(&ctx.cwd)?;
    let Some((state, original)) = current(&layout, id)? else {
        return Err(super::retry::no_such_ticket(
            &board::Board::load(&layout),
            id,
        ));
    };
    if state == State::InProgress {
        eprintln!(
            "orch: {id} is running; its attempt keeps the text it started with, the next one reads yours"
        );
    }
    let name = format!("edit-{id}-{}.md", std::process::id());
    let (text, draft) = match editor::edit_ticket(
        &layout,
        &name,
        id,
        &original,
        state,
        "the board keeps the ticket as it was",
    )? {
        Edited::Unchanged => {
            crate::outln!("{id}: unchanged");
            return Ok(0);
        }
        Edited::Changed { text, draft, .. } => (text, draft),
    };
    let mut txn = BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    let who = crate::gitcli::Identity::of(&txn.main.repo);
    let by = format!("{} <{}>", who.name, who.email);
    let saved = txn.apply(|txn| {
        match current(&txn.layout, id)? {
            Some((now, text_now)) if now == state && text_now == original => {}
            Some((now, _)) => {
                return Err(Error::usage(format!(
                    "{id} changed on the board while you edited it (it is in {now} now); the board keeps its version"
                ))
                .hinted(format!(
                    "{}; run `orch edit {id}` again and bring your changes over",
                    editor::kept_hint(&draft)
                )));
            }
            None => {
                return Err(Error::usage(format!(
                    "{id} was removed from the board while you edited it"
                ))
                .hinted(editor::kept_hint(&draft)));
            }
        }
        txn.write(&ticket::rel_path(state, id), text.as_bytes())?;
        let message = CommitMessage::new(format!("orch: edit {id}"))
            .line(format!("Edited by {by}."))
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Event, "edit");
        Ok(Some((message, ())))
    });
    match saved {
        Ok(_) => {
            let _ = std::fs::remove_file(&draft);
            crate::outln!("{id}: saved");
            Ok(0)
        }
        Err(e) if e.hint().is_some() => Err(e),
        Err(e) => Err(e.hinted(editor::kept_hint(&draft))),
    }
}

/// The state and text of ticket `id` in the plan worktree, if it is there.
fn current(layout: &board::Layout, id: &str) -> Result<Option<(State, String)>> {
    for state in State::ALL {
        let rel = ticket::rel_path(state, id);
        let read = crate::safe_read::regular_file_in(
            &layout.plan,
            std::path::Path::new(&rel),
            ticket::MAX_TICKET_BYTES,
        )
        .map_err(|e| Error::other(format!("cannot read {rel}: {e}")))?;
        if let Some(bytes) = read {
            return Ok(Some((state, String::from_utf8_lossy(&bytes).into_owned())));
        }
    }
    Ok(None)
}
