//! `orch abort`: stop a ticket from another shell.

use std::time::{Duration, Instant};

use crate::board::{self, Board, Change, Session};
use crate::error::{Error, Result};
use crate::lock::RunLock;
use crate::tick::{self, Settlement};
use crate::ticket::{LogEntry, State};

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
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    crate::ticket::require_id(&args.id)?;
    let (main, layout) = board::discover(&ctx.cwd)?;
    let id = args.id.as_str();
    let run_lock = layout.run_lock(id);
    if RunLock::is_held(&run_lock)? {
        // The request names the run it is for, from the supervisor's run.json.
        let run = std::fs::read_to_string(layout.run_info(id))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["run"].as_str().map(str::to_string))
            .ok_or_else(|| {
                Error::other(format!(
                    "{id} is starting or finishing; run `orch abort {id}` again"
                ))
            })?;
        board::write_atomic(&layout.abort_request(id), run.as_bytes())?;
        crate::outln!("{id}: asked its supervising orch to stop the agent");
        let start = Instant::now();
        while RunLock::is_held(&run_lock)? {
            if start.elapsed() > args.wait {
                return Err(Error::other(format!("{id} is still running after {}", crate::duration::display(args.wait)))
                    .hinted("the abort request stays in place; the supervising tick settles the ticket when the agent stops"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let board = Board::load(&layout);
        let state = board.seen.get(id).and_then(|s| s.first().copied());
        crate::outln!(
            "{id}: now in {}",
            state.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        );
        return Ok(0);
    }
    let session = Session::open_in(main, layout, ctx.lock_timeout)?;
    let board = session.load();
    let Some(t) = board.tickets.get(id) else {
        return Err(Error::usage(format!("there is no valid ticket `{id}`"))
            .hinted("`orch status` lists the tickets"));
    };
    match t.state {
        State::InProgress => {
            let config = board.config()?.clone();
            let Some(_lock) = RunLock::try_acquire(&run_lock)? else {
                return Err(Error::other(format!(
                    "{id} started running meanwhile; run `orch abort {id}` again"
                )));
            };
            let settlement = Settlement {
                outcome: "aborted".into(),
                reason: "stopped by `orch abort`".into(),
                retry: false,
                to: Some(State::Blocked),
                counts: true,
                extra_files: Vec::new(),
            };
            match t.open_claim().cloned() {
                Some(claim) => {
                    let ours = claim.get("host").is_none_or(|h| h == session.host);
                    tick::settle_dead_run(
                        &session,
                        &config,
                        t,
                        &claim,
                        ours,
                        &settlement,
                        Vec::new(),
                    )?;
                }
                None => block(
                    &session,
                    t.id.as_str(),
                    State::InProgress,
                    &t.text_with_entry(&abort_entry()),
                )?,
            }
        }
        State::Todo => block(
            &session,
            id,
            State::Todo,
            &t.text_with_entry(&abort_entry()),
        )?,
        other => {
            return Err(Error::usage(format!(
                "{id} is in {other}; there is nothing to abort"
            )));
        }
    }
    crate::outln!("{id}: aborted; moved to blocked");
    Ok(0)
}

fn abort_entry() -> LogEntry {
    LogEntry::new("abort").with("reason", "aborted by `orch abort` before it ran")
}

fn block(session: &Session, id: &str, from: State, text: &str) -> Result<()> {
    let paths = session.move_ticket(id, from, State::Blocked, text)?;
    session.commit(
        &paths,
        &Change::new(format!("orch: aborted {id}"))
            .trailer("Orch-Ticket", id)
            .trailer("Orch-Outcome", "aborted")
            .trailer("Orch-State", State::Blocked),
    )?;
    Ok(())
}
