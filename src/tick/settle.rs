//! Recording a finished attempt: the summary, then one board change under
//! the lock (refused if the claim is no longer the run's), then the
//! worktree's fate.

use std::time::Duration;

use crate::board::transition::{self, RunRef, Settled};
use crate::board::{BoardTxn, Layout, host_name};
use crate::duration::display;
use crate::error::{Result, render_chain};
use crate::git::{self, MainRepo};
use crate::outcome::Settlement;
use crate::runlog;
use crate::summary::AttemptSummary;
use crate::ticket::{State, now_rfc3339};
use crate::workspace;

use super::attempt::Won;
use super::classify::RunFacts;
use super::event::{Event, Reporter};

/// How long a supervisor waits for the board lock to record a result. Far
/// longer than `--lock-timeout`: giving up here would strand a finished
/// attempt until the next tick reconciles it.
const SETTLE_LOCK_WAIT: Duration = Duration::from_secs(600);

/// The summary of a finished attempt.
pub fn summary(
    layout: &Layout,
    won: &Won<'_>,
    claimed_at: &str,
    facts: &RunFacts,
    settlement: &Settlement,
) -> AttemptSummary {
    let t = won.ticket;
    let report = facts.report.as_ref();
    AttemptSummary {
        id: t.id.clone(),
        attempt: won.attempt,
        outcome: settlement.outcome.as_str().to_string(),
        reason: settlement.reason.clone(),
        agent: won.settings.agent.label(),
        host: host_name(),
        started: claimed_at.to_string(),
        finished: now_rfc3339(),
        duration: report
            .map(|r| display(Duration::from_millis(r.duration.as_millis() as u64)))
            .unwrap_or_default(),
        exit: report.map(|r| r.exit_text()).unwrap_or_default(),
        branch: git::ticket_branch(&t.id),
        tip: facts.tip.clone(),
        commits: facts.commits.clone(),
        verify: facts.verify.clone(),
        agent_message: facts.submission.as_ref().and_then(|s| s.message.clone()),
        notes: facts.notes.clone(),
        activity: report.map(|r| r.activity.clone()).unwrap_or_default(),
        log: runlog::summary_field(layout, &t.id, won.attempt),
        tail: report.map(|r| r.tail.clone()).unwrap_or_default(),
    }
}

/// The pauses before each new try of a settle that failed.
const SETTLE_RETRIES: &[Duration] = &[
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(3),
];

/// Record the attempt under the board lock, report it, and remove the
/// worktree of a ticket that is done. Returns what became of the result.
pub fn record(
    layout: &Layout,
    main: &MainRepo,
    won: &Won<'_>,
    settlement: &Settlement,
    summary: &AttemptSummary,
    lock_timeout: Duration,
    reporter: &dyn Reporter,
) -> Result<Settled> {
    let id = &won.ticket.id;
    let run = RunRef {
        id,
        attempt: won.attempt,
        run: won.run_id,
    };
    // Should every try below fail and this tick end, the next one records
    // this outcome, not "its supervising orch died".
    let pending = super::pending::path(layout, id, won.attempt);
    if let Err(e) = super::pending::write(&pending, won.run_id, settlement) {
        reporter.report(&Event::error(
            id,
            format!(
                "cannot keep the result in local state: {}",
                render_chain(&e)
            ),
        ));
    }
    let once = || -> Result<Settled> {
        // The work goes up before the result that names it: a result on
        // the board never points at a branch only this disk has.
        if let Some(remote) = won.remote {
            for note in workspace::publish_branch(main, remote, id, won.attempt)? {
                reporter.report(&Event::Note(format!("{id}: {note}")));
            }
        }
        let mut txn = BoardTxn::open_in(
            git::open_main(&layout.root)?,
            layout.clone(),
            SETTLE_LOCK_WAIT.max(lock_timeout),
        )?;
        transition::settle(
            &mut txn,
            &run,
            settlement,
            won.settings.max_attempts,
            summary,
        )
    };
    // A write that failed (a disk full for a moment, a git lock in the
    // way) is tried again while this tick lives, a few times: the next
    // tick would settle the run as abandoned, which is not what happened.
    let mut tries = SETTLE_RETRIES.iter();
    let settled = loop {
        match once() {
            Ok(s) => break s,
            Err(e) if matches!(e, crate::Error::LockBusy { .. }) => return Err(e),
            Err(e) => match tries.next() {
                Some(pause) => {
                    reporter.report(&Event::error(
                        id,
                        format!(
                            "cannot record the result yet ({}); trying again in {}",
                            render_chain(&e),
                            crate::duration::display(*pause)
                        ),
                    ));
                    std::thread::sleep(*pause);
                }
                None => return Err(e),
            },
        }
    };
    match &settled {
        Settled::Moved { to, reason } => {
            reporter.report(&Event::Settled {
                id: id.clone(),
                attempt: won.attempt,
                outcome: settlement.outcome,
                reason: reason.clone(),
                to: *to,
            });
            if *to == State::Blocked
                && let Some(why) = &settlement.budget_spent
            {
                reporter.report(&Event::BudgetSpent {
                    id: Some(id.clone()),
                    text: why.clone(),
                });
            }
            if *to == State::Done {
                match workspace::remove(main, layout, id) {
                    Ok(kept) => {
                        for text in kept {
                            reporter.report(&Event::Cleaned {
                                id: id.clone(),
                                text,
                            });
                        }
                    }
                    Err(e) => reporter.report(&Event::error(
                        id,
                        format!("cannot remove the worktree: {}", render_chain(&e)),
                    )),
                }
            } else {
                workspace::unlock(main, id);
            }
        }
        Settled::Stale => reporter.report(&Event::Refused { id: id.clone() }),
        Settled::Deleted => {
            reporter.report(&Event::Deleted {
                id: id.clone(),
                attempt: won.attempt,
                outcome: settlement.outcome,
            });
            workspace::unlock(main, id);
        }
    }
    forget_run(layout, id);
    super::pending::forget(layout, id, won.attempt);
    Ok(settled)
}

/// Remove the files of a run that is over: its abort request and run file.
pub fn forget_run(layout: &Layout, id: &str) {
    for path in [layout.abort_request(id), layout.run_info(id)] {
        // Gone already is fine; any other failure leaves a file that names
        // a dead run, which `orch abort` and the next claim both ignore.
        let _ = std::fs::remove_file(path);
    }
}
