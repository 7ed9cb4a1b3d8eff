//! `orch abort`: stop a ticket from another shell.

use std::time::{Duration, Instant};

use crate::agent::contract;
use crate::board::{self, Board, BoardTxn, Layout, transition};
use crate::error::{Error, Result};
use crate::lock::RunLock;
use crate::outcome::{Outcome, Settlement};
use crate::tick::plan::{self, RunLockFacts};
use crate::tick::reconcile::{DeadRun, settle_dead_run};
use crate::ticket::State;

use super::Ctx;

/// Stop a ticket and send it to blocked, as `aborted`.
///
/// A running ticket's supervisor stops the agent (SIGTERM to its group,
/// SIGKILL after kill_grace) and records the attempt; a ticket whose
/// supervisor is gone is settled here. A todo ticket moves to blocked.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket id.
    pub id: String,
    /// How long to wait for the running tick to settle it.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = crate::cli::parse_duration)]
    pub wait: Duration,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    crate::ticket::require_id(&args.id)?;
    let (main, layout) = board::discover(&ctx.cwd)?;
    let id = args.id.as_str();
    let run_lock = layout.run_lock(id);
    if RunLock::is_held(&run_lock)? {
        return ask_supervisor(&layout, id, args.wait);
    }
    let mut txn = BoardTxn::open_in(main, layout, ctx.lock_timeout)?;
    let board = txn.load();
    let Some(t) = board.tickets.get(id) else {
        return Err(Error::usage(format!("there is no valid ticket `{id}`"))
            .hinted("`orch status` lists the tickets"));
    };
    match (t.state, t.open_claim()) {
        (State::InProgress, Some(claim)) => {
            let config = board.config()?.clone();
            let shared = txn.is_shared();
            let present = crate::tick::claim::run_was_here(&txn.layout, id, claim, shared);
            let Some(_lock) = RunLock::try_acquire(&run_lock)? else {
                return Err(Error::other(format!(
                    "{id} started running meanwhile; run `orch abort {id}` again"
                )));
            };
            let facts = RunLockFacts {
                present,
                held: false,
                shared,
            };
            let owner = plan::ownership(claim, &txn.host, facts, jiff::Timestamp::now());
            let settlement = Settlement::new(Outcome::Aborted, "stopped by `orch abort`");
            let dead = DeadRun {
                ticket: t,
                claim,
                owner: &owner,
            };
            settle_dead_run(&mut txn, &config, &dead, settlement, Vec::new())?;
        }
        (State::InProgress | State::Todo, _) => {
            transition::abort_unclaimed(&mut txn, id, t.state)?;
        }
        (other, _) => {
            return Err(Error::usage(format!(
                "{id} is in {other}; there is nothing to abort"
            )));
        }
    }
    crate::outln!("{id}: aborted; moved to blocked");
    Ok(0)
}

/// A live supervisor on this host runs the ticket: leave it a request
/// naming its run, and wait for it to settle the ticket.
fn ask_supervisor(layout: &Layout, id: &str, wait: Duration) -> Result<i32> {
    let Some(info) = contract::read_run_info(&layout.run_info(id)) else {
        return Err(Error::other(format!(
            "{id} is starting or finishing; run `orch abort {id}` again"
        )));
    };
    board::write_atomic(&layout.abort_request(id), info.run.as_bytes())?;
    crate::outln!("{id}: asked its supervising orch to stop the agent");
    let start = Instant::now();
    let run_lock = layout.run_lock(id);
    while RunLock::is_held(&run_lock)? {
        if start.elapsed() > wait {
            return Err(Error::other(format!("{id} is still running after {}", crate::duration::display(wait)))
                .hinted("the abort request stays in place; the supervising tick settles the ticket when the agent stops"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let board = Board::load(layout);
    let state = board.seen.get(id).and_then(|s| s.first().copied());
    crate::outln!(
        "{id}: now in {}",
        state.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
    );
    Ok(0)
}
