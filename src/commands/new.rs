//! `orch new`: add a ticket to todo.

use crate::board::{BoardTxn, CommitMessage, Trailer};
use crate::error::{Error, Result};
use crate::ticket::{self, State};

use super::Ctx;

/// Add a ticket to tickets/todo as NNNN-slug.md and commit it.
///
/// Numbers never collide: the next number is taken under the board lock.
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
    /// The task as the agent will read it.
    #[arg(long, short = 'b')]
    pub body: Option<String>,
    /// Open $VISUAL or $EDITOR on the new ticket, then commit your edit.
    #[arg(long, short = 'e')]
    pub edit: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if args.title.trim().is_empty() {
        return Err(Error::usage("the title is empty").hinted("orch new \"Retry failed uploads\""));
    }
    let text = ticket::render_new(
        &args.title,
        args.priority,
        &args.depends_on,
        args.body.as_deref().unwrap_or(""),
    );
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
        let number = board.highest_number() + 1;
        let id = format!("{number:04}-{}", ticket::slug(&args.title));
        txn.write(&ticket::rel_path(State::Todo, &id), text.as_bytes())?;
        let message = CommitMessage::new(format!("orch: new {id}"))
            .line(args.title.trim().to_string())
            .trailer(Trailer::Ticket, &id)
            .trailer(Trailer::Event, "new");
        Ok(Some((message, id)))
    })?;
    let Some(id) = id else {
        return Err(Error::other("the new ticket was not written"));
    };
    let path = txn.layout.plan.join(ticket::rel_path(State::Todo, &id));
    drop(txn);
    crate::outln!("{id}");
    crate::outln!("{}", path.display());
    if args.edit {
        edit(&path)?;
        // Commit the edit now rather than at the next command.
        drop(BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?);
    }
    Ok(0)
}

fn edit(path: &std::path::Path) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // The editor setting may carry arguments ("code --wait"), so it goes
    // through sh; the path is passed as "$1", never spliced into the script.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| Error::io("cannot start the editor", path, e))?;
    if !status.success() {
        return Err(Error::other(format!("the editor `{editor}` exited with {status}"))
            .hinted("the ticket was created; edit it in .orch/plan and orch commits your edit on its next command"));
    }
    Ok(())
}
