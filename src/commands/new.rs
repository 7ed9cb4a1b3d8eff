//! `orch new`: add a ticket to todo.

use crate::board::numbering::{self, NEXT_ID_REL};
use crate::board::{BoardTxn, CommitMessage, Layout, Trailer};
use crate::error::{Error, Result};
use crate::ticket::{self, State};

use super::Ctx;
use super::editor::{self, Edited};

/// Add a ticket to tickets/todo as NNNN-slug.md and commit it.
///
/// Prints the new ticket's id alone on stdout (`id=$(orch new ...)`), and
/// where its file is on stderr. Numbers never collide and are never reused:
/// the next number is taken under the board lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket's title.
    pub title: String,
    /// Lower runs first [default: 5].
    #[arg(long, short = 'p')]
    pub priority: Option<i64>,
    /// A ticket that must be done first (repeatable).
    #[arg(long = "depends-on", short = 'd', value_name = "ID")]
    pub depends_on: Vec<String>,
    /// The task as the agent will read it. Without it (or --edit) the
    /// ticket keeps the template's placeholder and does not run until you
    /// write the task in its file.
    #[arg(long, short = 'b')]
    pub body: Option<String>,
    /// Write the ticket in $VISUAL or $EDITOR first; it is added only when
    /// you save a changed, valid ticket.
    #[arg(long, short = 'e')]
    pub edit: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if args.title.trim().is_empty() {
        return Err(Error::usage("the title is empty").hinted("orch new \"Retry failed uploads\""));
    }
    let mut text = ticket::render_new(
        &args.title,
        args.priority,
        &args.depends_on,
        args.body.as_deref().unwrap_or(""),
    );
    let mut title = args.title.trim().to_string();
    if args.edit {
        // Nothing reaches todo before the editor returns: a tick running
        // meanwhile must not take a half-written ticket.
        let (_, layout) = crate::board::discover(&ctx.cwd)?;
        (text, title) = write_in_editor(&layout, &text)?;
    }
    let mut txn = BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    // The number is chosen on the board the change is committed on: after
    // a lost race it is chosen again. A failed change leaves no
    // uncommitted ticket behind (the transaction puts back what it wrote),
    // so a retry cannot duplicate it.
    let id = txn.apply(|txn| {
        let board = txn.load_active();
        for dep in &args.depends_on {
            if !board.seen.contains_key(dep) {
                return Err(
                    Error::usage(format!("--depends-on {dep}: there is no such ticket"))
                        .hinted("`orch status` lists the tickets"),
                );
            }
        }
        let number = numbering::next_number(&txn.layout, &txn.main, &board);
        let id = format!("{number:04}-{}", ticket::slug(&title));
        txn.write(&ticket::rel_path(State::Todo, &id), text.as_bytes())?;
        txn.write(NEXT_ID_REL, numbering::render_counter(number).as_bytes())?;
        let message = CommitMessage::new(format!("orch: new {id}"))
            .line(title.clone())
            .trailer(Trailer::Ticket, &id)
            .trailer(Trailer::Event, "new");
        Ok(Some((message, id)))
    })?;
    let Some(id) = id else {
        return Err(Error::other("the new ticket was not written"));
    };
    let path = txn.layout.plan.join(ticket::rel_path(State::Todo, &id));
    let shown = txn.layout.display_local(&path);
    drop(txn);
    crate::outln!("{id}");
    if ticket::is_placeholder(&text) {
        eprintln!(
            "orch: added {shown}; it does not run until you replace the placeholder with the task"
        );
    } else {
        eprintln!("orch: added {shown}");
    }
    Ok(0)
}

/// Open the editor on a draft of the ticket, outside the board, and return
/// what the person saved and its title once it is a changed, valid ticket.
/// Otherwise nothing is added, and a draft with their text is kept.
fn write_in_editor(layout: &Layout, template: &str) -> Result<(String, String)> {
    let name = format!("new-{}.md", std::process::id());
    match editor::edit_ticket(
        layout,
        &name,
        "draft",
        template,
        State::Todo,
        "nothing was added",
    )? {
        Edited::Unchanged => Err(Error::usage(
            "the ticket was not changed in the editor; nothing was added",
        )
        .hinted("write the task below the front matter and save")),
        Edited::Changed { text, title, draft } => {
            let _ = std::fs::remove_file(&draft);
            Ok((text, title))
        }
    }
}
