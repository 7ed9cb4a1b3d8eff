//! One tick, in phases: open the board ([`BoardTxn`]), [`reconcile`] what
//! earlier ticks left, [`claim`] what the [`plan`] picks, then for each
//! claim run its [`attempt`], [`classify`] the facts and [`settle`] the
//! result.
//!
//! The board lock is held only to read and commit the board: once to
//! reconcile and claim, and once per finished ticket to settle it; never
//! while an agent runs. Each claimed ticket also has a run lock, taken
//! before its claim is committed and held by its supervisor until its
//! result is committed. A free run lock on an in-progress ticket therefore
//! means its supervisor died, and the next tick settles it as `abandoned`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::board::{Board, BoardTxn};
use crate::error::{Error, Result, render_chain};
use crate::git;
use crate::outcome::Outcome;

pub mod attempt;
pub mod checkout_watch;
pub mod claim;
pub mod classify;
pub mod event;
pub mod explain;
pub mod pending;
pub mod plan;
pub mod reconcile;
pub mod settings;
pub mod settle;
pub mod told;
pub mod unsettled;

pub use event::{Event, Reporter};
pub use explain::explain;

use crate::board::transition::Settled;
use claim::Claimed;

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: Option<u32>,
    pub only: Option<String>,
    pub lock_timeout: Duration,
}

/// What one ticket's run came to, as the tick reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Settled(Outcome),
    /// Refused: the claim was no longer this run's.
    Stale,
    /// orch failed to record it; the next tick settles it.
    Error(String),
}

#[derive(Debug, Default)]
pub struct TickResult {
    pub reconciled: reconcile::Reconciled,
    pub settled: Vec<(String, RunEnd)>,
    pub claimed: Vec<String>,
    pub landed: crate::land::Landed,
}

/// Run one tick.
pub fn tick(
    root: &Path,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<TickResult> {
    let mut result = TickResult::default();
    let (claims, layout, landing_waits) = {
        let mut txn = BoardTxn::open(root, opts.lock_timeout)?;
        for note in &txn.notes {
            reporter.report(&Event::Note(note.clone()));
        }
        let mut board = txn.load_active();
        let config = board.config()?.clone();
        reporter.configured(&txn.layout, &config);
        told::say_once(&txn.layout, reporter, told::notices(&board));
        if config.sandbox.enabled
            && let Some(why) = crate::agent::sandbox::unsupported_reason()
        {
            // Said once per repository: a machine without Landlock stays so.
            let said = txn.layout.local.join("sandbox-unsupported");
            if !said.exists() {
                let _ = std::fs::write(&said, format!("{why}\n"));
                reporter.report(&Event::ConfigWarning(format!(
                    "{why}; set `sandbox: off` in orch.yaml to say you know"
                )));
            }
        }
        result.reconciled = reconcile::reconcile(&mut txn, &board, &config, reporter)?;
        if !result.reconciled.is_empty() {
            board = txn.load_active();
        }
        if let Some(only) = &opts.only
            && !board.seen.contains_key(only)
        {
            return Err(Error::usage(format!("there is no ticket `{only}`"))
                .hinted("`orch status` lists the tickets"));
        }
        let claims = if interrupt.load(Ordering::SeqCst) {
            Vec::new()
        } else {
            claim::claim(&mut txn, &board, &config, opts, reporter)?
        };
        // Landing runs when it is on, or when tickets wait in landing/
        // (left there before a person turned it off).
        // Landing has work only if a ticket waits in landing/ or one of
        // this tick's runs may succeed: a tick with nothing to do opens
        // no second board transaction.
        let waiting = board.count(crate::ticket::State::Landing) > 0;
        (claims, txn.layout.clone(), waiting)
    };
    result.claimed = claims.iter().map(|c| c.ticket.id.clone()).collect();
    if !claims.is_empty() {
        result.settled = run_all(&layout, claims, opts, interrupt.clone(), reporter);
    }
    if (landing_waits || !result.claimed.is_empty()) && !interrupt.load(Ordering::SeqCst) {
        result.landed =
            crate::land::land_waiting(&layout, opts.lock_timeout, interrupt.clone(), reporter)?;
    }
    // A ticket this tick sent to blocked leaves its dependents stuck: say
    // so in this tick's output, beside the line that blocked it, not in
    // the next one's.
    let changed = !result.claimed.is_empty()
        || !result.reconciled.is_empty()
        || !result.landed.handed_back.is_empty();
    if changed && !interrupt.load(Ordering::SeqCst) {
        told::say_once(
            &layout,
            reporter,
            told::notices(&Board::load_active(&layout)),
        );
    }
    Ok(result)
}

/// Run each claimed ticket in its own thread, to its recorded result.
fn run_all(
    layout: &crate::board::Layout,
    claims: Vec<Claimed>,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Vec<(String, RunEnd)> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = claims
            .into_iter()
            .map(|c| {
                let interrupt = interrupt.clone();
                scope.spawn(move || {
                    let id = c.ticket.id.clone();
                    let end = match run_and_settle(layout, c, opts, interrupt, reporter) {
                        Ok(end) => end,
                        Err(e) => {
                            let text = render_chain(&e);
                            reporter.report(&Event::error(&id, text.clone()));
                            RunEnd::Error(text)
                        }
                    };
                    (id, end)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

/// One claimed ticket, from its attempt to its recorded result.
fn run_and_settle(
    layout: &crate::board::Layout,
    c: Claimed,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<RunEnd> {
    let main = git::open_main(&layout.root)?;
    let won = attempt::Won {
        ticket: &c.ticket,
        attempt: c.claim.attempt,
        run_id: &c.run_id,
        base: c.base,
        settings: &c.settings,
        remote: c.remote.as_ref(),
    };
    let facts = attempt::run(layout, &main, &won, interrupt, reporter);
    let settlement = classify::classify(&facts, &c.settings);
    let summary = settle::summary(layout, &won, &c.claim.at, &facts, &settlement);
    let settled = settle::record(
        layout,
        &main,
        &won,
        &settlement,
        &summary,
        opts.lock_timeout,
        reporter,
    )?;
    // The run lock goes last: until the result is committed, a second
    // tick must see this run as live.
    drop(c.run_lock);
    Ok(match settled {
        Settled::Moved { .. } => RunEnd::Settled(settlement.outcome),
        Settled::Stale => RunEnd::Stale,
        Settled::Deleted => RunEnd::Settled(settlement.outcome),
    })
}
