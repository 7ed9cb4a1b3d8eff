//! `orch gc`: remove what finished tickets left on this host, keeping on a
//! ref first whatever exists nowhere else.

use crate::board::{self, Board, BoardTxn, Layout};
use crate::error::Result;
use crate::gc::{self, Item, Kind};
use crate::safe_read::size;

use super::Ctx;

/// Remove what finished tickets left behind on this host.
///
/// Goes at once: the worktree of a done ticket (or of one no longer on the
/// board) and the branch of a done ticket its target holds (landed). Goes
/// once untouched for `retention:` (orch.yaml, 30d unless set): the branch
/// of a done or deleted ticket that never landed, attempt logs, run state.
/// Work no other ref holds (commits, a worktree's uncommitted changes) is
/// kept on refs/orch/kept/<ticket>/ first and named. Tickets in todo, in
/// progress, landing or blocked, kept refs, and anything on a remote are
/// never touched. Prints each thing removed and the space freed.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Say what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if args.dry_run {
        // Read only: no lock, and no adoption of hand edits (which commits).
        let (main, layout) = board::open_read(&ctx.cwd)?;
        let board = Board::load(&layout);
        let plan = gc::plan(&main, &layout, &board, board.config()?)?;
        for item in &plan.items {
            crate::outln!("{}", line(&layout, item, true));
            if let Some(unique) = &item.unique {
                let under = if item.id.is_empty() {
                    "landing-log"
                } else {
                    &item.id
                };
                crate::outln!("  {unique} would be kept on refs/orch/kept/{under}/ first");
            }
        }
        for left in &plan.left {
            crate::outln!("would leave {left}");
        }
        summary(plan.bytes(), plan.retention, true);
        return Ok(0);
    }
    // Under the board lock, as a tick: gc never removes a worktree a tick
    // is about to use, nor races the landing of a branch.
    let txn = BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    for note in &txn.notes {
        crate::outln!("{note}");
    }
    let board = txn.load();
    let plan = gc::plan(&txn.main, &txn.layout, &board, board.config()?)?;
    let retention = plan.retention;
    let left = plan.left.clone();
    let freed = gc::collect(&txn.main, &txn.layout, plan, |removed| {
        crate::outln!("{}", line(&txn.layout, &removed.item, false));
        for note in &removed.notes {
            crate::outln!("  {note}");
        }
    })?;
    for left in &left {
        crate::outln!("left {left}");
    }
    let dropped = crate::workspace::trim_pool(&txn.main, &txn.layout)?;
    if dropped > 0 {
        crate::outln!("removed {dropped} recycled worktree(s) past the pool's size or disk cap");
    }
    summary(freed, retention, false);
    Ok(0)
}

fn line(layout: &Layout, item: &Item, dry: bool) -> String {
    let verb = if dry { "would remove" } else { "removed" };
    let what = match (item.kind, &item.path) {
        (Kind::Branch, _) => format!("branch {}", crate::git::ticket_branch(&item.id)),
        (kind, Some(path)) => format!("{} {}", kind.noun(), layout.display_local(path)),
        (kind, None) => kind.noun().to_string(),
    };
    let bytes = if item.kind == Kind::Branch {
        String::new()
    } else {
        format!(", {}", size(item.bytes))
    };
    format!("{verb} {what} ({}{bytes})", item.why)
}

fn summary(bytes: u64, retention: std::time::Duration, dry: bool) {
    let retention = crate::duration::display(retention);
    crate::outln!(
        "{} {} (retention {retention})",
        if dry { "would free" } else { "freed" },
        size(bytes)
    );
}
