//! What earlier ticks left behind, found and settled under the board lock:
//! in-progress tickets without a claim go back to todo, claims whose run is
//! dead (or whose lease expired on another host) are settled as
//! `abandoned`, and worktrees of done tickets that a crash left are removed.

use crate::board::Layout;
use crate::board::transition::{self, RunRef, Settled};
use crate::board::{Board, BoardTxn};
use crate::config::Config;
use crate::error::{Result, render_chain};
use crate::failpoint;
use crate::git;
use crate::lock::RunLock;
use crate::outcome::{Outcome, Settlement};
use crate::process;
use crate::runlog;
use crate::summary::AttemptSummary;
use crate::ticket::{Claim, State, Ticket, now_rfc3339};
use crate::workspace;

use super::attempt::{WorkOf, work_message};
use super::event::{Event, Reporter};
use super::plan::{self, Ownership, RunLockFacts};
use super::settings::RunSettings;
use super::settle::forget_run;

/// What reconcile settled: (ticket, outcome), and the tickets it could not
/// settle (each reported as it happened; the others went on).
#[derive(Debug, Default)]
pub struct Reconciled {
    pub settled: Vec<(String, Outcome)>,
    pub failed: Vec<String>,
}

/// Settle in-progress tickets whose run is over. Holds the board lock.
pub fn reconcile(
    txn: &mut BoardTxn,
    board: &Board,
    config: &Config,
    reporter: &dyn Reporter,
) -> Result<Reconciled> {
    let mut out = Reconciled::default();
    let stranded = board.stranded.iter().filter(|t| {
        board
            .seen
            .get(&t.id)
            .is_some_and(|s| s == &[State::InProgress])
    });
    for t in board.in_state(State::InProgress).chain(stranded) {
        let Some(claim) = t.open_claim() else {
            // A claim this version cannot read (a newer orch's) is left to
            // the orch that wrote it.
            if t.has_open_attempt() {
                continue;
            }
            match transition::release(txn, &t.id) {
                Ok(true) => {
                    reporter.report(&Event::Released { id: t.id.clone() });
                    out.settled.push((t.id.clone(), Outcome::Released));
                }
                Ok(false) => {}
                Err(e) => out.fail(&t.id, &e, reporter),
            }
            continue;
        };
        let lock_path = txn.layout.run_lock(&t.id);
        let shared = txn.is_shared();
        let present = super::claim::run_was_here(&txn.layout, &t.id, claim, shared);
        // Take the run lock of a run of this host: holding it while settling
        // keeps a late supervisor (or a second tick) out.
        let (guard, held) = if plan::claimed_here(
            claim,
            &txn.host,
            RunLockFacts {
                present,
                held: false,
                shared,
            },
        ) {
            match RunLock::try_acquire(&lock_path) {
                // A free lock alone does not make a run dead: `git clean`,
                // a person or an older orch may have removed or moved the
                // file under a live supervisor. Its process, started before
                // the run, is the proof.
                Ok(Some(g)) if claim.run.as_deref().is_some_and(supervisor_alive) => {
                    (Some(g), true)
                }
                Ok(Some(g)) => (Some(g), false),
                Ok(None) => (None, true),
                // A lock that cannot be taken at all (its directory is not
                // one any more): the process is the only proof left. The
                // board lock keeps other ticks out meanwhile.
                Err(_) => (None, claim.run.as_deref().is_some_and(supervisor_alive)),
            }
        } else {
            (None, false)
        };
        let owner = plan::ownership(
            claim,
            &txn.host,
            RunLockFacts {
                present,
                held,
                shared,
            },
            jiff::Timestamp::now(),
        );
        let (reason, notes) = match &owner {
            Ownership::Live | Ownership::Foreign { .. } => continue,
            Ownership::Dead => (
                "its supervising orch died (no live run lock)".to_string(),
                Vec::new(),
            ),
            Ownership::Expired { host } => (
                format!("host {host} did not settle it before its lease expired"),
                vec![format!("the lease of host {host} expired")],
            ),
        };
        let run = claim.run.as_deref().unwrap_or("");
        let pending = super::pending::path(&txn.layout, &t.id, claim.attempt);
        let (settlement, notes) = match super::pending::read(&pending, run) {
            // Its tick decided the result but could not record it (a
            // full disk, say): that result, not "its orch died".
            Some(decided) if matches!(owner, Ownership::Dead) => (
                decided,
                vec![
                    "its tick decided this result but could not record it; a later tick did".into(),
                ],
            ),
            _ => (Settlement::new(Outcome::Abandoned, reason), notes),
        };
        let dead = DeadRun {
            ticket: t,
            claim,
            owner: &owner,
        };
        // A ticket that cannot be settled is reported and left for the
        // next tick; it never stops the others.
        let outcome = settlement.outcome;
        match settle_dead_run(txn, config, &dead, settlement, notes) {
            Ok(settled) => {
                if let Settled::Moved { to, reason } = settled {
                    reporter.report(&if outcome == Outcome::Abandoned {
                        Event::Abandoned {
                            id: t.id.clone(),
                            attempt: claim.attempt,
                            reason,
                            to,
                        }
                    } else {
                        Event::Settled {
                            id: t.id.clone(),
                            attempt: claim.attempt,
                            outcome,
                            reason,
                            to,
                        }
                    });
                    out.settled.push((t.id.clone(), outcome));
                    if to == State::Done {
                        remove_done_worktree(txn, &t.id, reporter);
                    }
                }
                super::pending::forget(&txn.layout, &t.id, claim.attempt);
                super::unsettled::forget(&txn.layout, &t.id);
            }
            Err(e) => {
                let ours = matches!(owner, Ownership::Dead);
                out.fail(&t.id, &e, reporter);
                give_up_after_tries(txn, t, claim, ours, &e, &mut out, reporter);
            }
        }
        drop(guard);
    }
    sweep_done_worktrees(txn, board, reporter);
    Ok(out)
}

impl Reconciled {
    pub fn is_empty(&self) -> bool {
        self.settled.is_empty() && self.failed.is_empty()
    }

    fn fail(&mut self, id: &str, e: &crate::Error, reporter: &dyn Reporter) {
        reporter.report(&Event::error(
            id,
            format!("cannot settle it: {}", render_chain(e)),
        ));
        self.failed.push(id.to_string());
    }
}

/// Count a failed settle of a dead run; after [`super::unsettled::TRIES`]
/// of them, move the ticket to blocked with the error so that one ticket
/// is not met again by every tick. A full disk is every ticket's, and
/// passes: it is not counted.
fn give_up_after_tries(
    txn: &mut BoardTxn,
    t: &Ticket,
    claim: &Claim,
    ours: bool,
    error: &crate::Error,
    out: &mut Reconciled,
    reporter: &dyn Reporter,
) {
    use super::unsettled;
    if unsettled::is_the_disks(error) {
        return;
    }
    let run = claim.run.as_deref().unwrap_or("");
    let tries = unsettled::count(&txn.layout, &t.id, run);
    if tries < unsettled::TRIES {
        return;
    }
    if ours && !run.is_empty() {
        process::kill_run(run);
    }
    let reason = format!(
        "orch could not settle attempt {} in {tries} tries, and blocked it for a person: {}",
        claim.attempt,
        render_chain(error)
    );
    let run_ref = RunRef {
        id: &t.id,
        attempt: claim.attempt,
        run,
    };
    match transition::give_up(txn, &run_ref, reason) {
        Ok(Settled::Moved { to, reason }) => {
            reporter.report(&Event::Settled {
                id: t.id.clone(),
                attempt: claim.attempt,
                outcome: Outcome::Blocked,
                reason,
                to,
            });
            if ours {
                workspace::unlock(&txn.main, &t.id);
            }
            unsettled::forget(&txn.layout, &t.id);
            out.failed.retain(|id| id != &t.id);
            out.settled.push((t.id.clone(), Outcome::Blocked));
        }
        Ok(_) => {}
        Err(e) => reporter.report(&Event::error(
            &t.id,
            format!("cannot move it to blocked either: {}", render_chain(&e)),
        )),
    }
}

/// Remove worktrees of done tickets that no run holds: a crash between
/// recording a success and removing its worktree leaves one behind.
fn sweep_done_worktrees(txn: &BoardTxn, board: &Board, reporter: &dyn Reporter) {
    let Ok(entries) = std::fs::read_dir(txn.layout.orch.join("worktrees")) else {
        return;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if id.starts_with('.') && id.contains(git::REMOVING) {
            // A worktree whose deletion a killed orch did not finish; its
            // registration is already gone, and so is anything to keep.
            if std::fs::remove_dir_all(entry.path()).is_ok() {
                reporter.report(&Event::Cleaned {
                    id: id.clone(),
                    text: "removed a worktree directory left half deleted".into(),
                });
            }
            continue;
        }
        if board.seen.get(&id).is_none_or(|s| s != &[State::Done]) {
            continue;
        }
        let Ok(Some(_lock)) = RunLock::try_acquire(&txn.layout.run_lock(&id)) else {
            continue;
        };
        remove_done_worktree(txn, &id, reporter);
    }
}

/// Remove the worktree of a done ticket, keeping what it holds first.
fn remove_done_worktree(txn: &BoardTxn, id: &str, reporter: &dyn Reporter) {
    match workspace::remove(&txn.main, &txn.layout, id) {
        Ok(kept) => {
            for text in kept {
                reporter.report(&Event::Cleaned {
                    id: id.to_string(),
                    text,
                });
            }
            reporter.report(&Event::Cleaned {
                id: id.to_string(),
                text: "removed the worktree of a done ticket left by an earlier tick".into(),
            });
        }
        Err(e) => reporter.report(&Event::error(
            id,
            format!(
                "cannot remove the worktree of a done ticket; it stays: {}",
                render_chain(&e)
            ),
        )),
    }
}

/// A claim whose supervisor is gone, and whose it was.
pub struct DeadRun<'a> {
    pub ticket: &'a Ticket,
    pub claim: &'a Claim,
    pub owner: &'a Ownership,
}

/// Settle a run whose supervisor is gone: kill what is left of it, keep its
/// uncommitted work on the ticket branch, record the outcome. The caller
/// holds the board lock and, for a run of this host, its run lock.
pub fn settle_dead_run(
    txn: &mut BoardTxn,
    config: &Config,
    dead: &DeadRun<'_>,
    settlement: Settlement,
    mut notes: Vec<String>,
) -> Result<Settled> {
    let t = dead.ticket;
    let attempt = dead.claim.attempt;
    let run = dead.claim.run.clone().unwrap_or_default();
    let ours = matches!(dead.owner, Ownership::Dead | Ownership::Live);
    let settings = RunSettings::for_ticket(config, t);
    if ours {
        clean_up_after(txn, t, attempt, &run, &settings, &mut notes);
        if let Some(remote) = txn.remote().cloned() {
            notes.extend(workspace::publish_branch(
                &txn.main, &remote, &t.id, attempt,
            )?);
        }
    }
    let mut settlement = settlement;
    // A run whose orch died before the agent started (it has no log) was
    // never given a chance: it does not use up an attempt.
    if ours
        && settlement.outcome == Outcome::Abandoned
        && !txn.layout.log_path(&t.id, attempt).exists()
    {
        settlement = Settlement::new(Outcome::Abandoned, "its orch died before the agent started")
            .counting(false);
    }
    let summary = AttemptSummary {
        id: t.id.clone(),
        attempt,
        outcome: settlement.outcome.as_str().to_string(),
        reason: settlement.reason.clone(),
        agent: settings.agent.label(),
        host: dead.claim.host.clone().unwrap_or_default(),
        started: dead.claim.at.clone(),
        finished: now_rfc3339(),
        branch: git::ticket_branch(&t.id),
        tip: txn
            .main
            .branch_tip(&git::ticket_branch(&t.id))
            .map(|o| o.to_string()),
        notes,
        log: runlog::summary_field(&txn.layout, &t.id, attempt),
        tail: runlog::tail(&txn.layout, &t.id, attempt),
        ..Default::default()
    };
    let settled = transition::settle(
        txn,
        &RunRef {
            id: &t.id,
            attempt,
            run: &run,
        },
        &settlement,
        settings.max_attempts,
        &summary,
    )?;
    forget_run(&txn.layout, &t.id);
    Ok(settled)
}

/// Kill what is left of a dead run of this host and commit the work it left.
fn clean_up_after(
    txn: &BoardTxn,
    t: &Ticket,
    attempt: u32,
    run: &str,
    settings: &RunSettings,
    notes: &mut Vec<String>,
) {
    if !run.is_empty() {
        let killed = process::kill_run(run);
        if killed > 0 {
            notes.push(format!("killed {killed} leftover process(es) of the run"));
        }
    }
    let wt_path = txn.layout.worktree(&t.id);
    if let Some((_, started)) = super::settings::run_origin(run) {
        let strays = process::kill_strays_in(&wt_path, started);
        if strays > 0 {
            notes.push(format!(
                "killed {strays} stray process(es) still working in the run's worktree (they had left its session)"
            ));
        }
    }
    failpoint::hit("reconcile-after-kill");
    match workspace::finish_interrupted(&txn.main, &txn.layout, &t.id) {
        Ok(more) => notes.extend(more),
        Err(e) => notes.push(format!(
            "cannot finish preparing the run's worktree: {}",
            render_chain(&e)
        )),
    }
    let name = Layout::worktree_name(&t.id);
    if std::fs::symlink_metadata(&wt_path).is_ok() {
        match txn.main.open_worktree(&name, &wt_path) {
            Ok(wt) => {
                // The run's processes are dead: their git locks are stale.
                wt.clear_stale_index_lock();
                let message = work_message(&t.id, attempt, WorkOf::AbandonedRun);
                let start = txn
                    .main
                    .branch_tip(&git::ticket_branch(&t.id))
                    .or_else(|| wt.head().ok());
                let plain =
                    super::attempt::unsupervised_hooks(&txn.layout, &txn.main, &t.id, settings);
                let taken = start.map(|start| {
                    workspace::take_work(
                        &txn.main,
                        &wt,
                        &t.id,
                        start,
                        workspace::Move::FastForward,
                        attempt,
                        &workspace::WorkCommit {
                            message: &message,
                            hooks: &super::attempt::hooks(settings, &plain),
                        },
                    )
                });
                match taken {
                    Some(Ok(taken)) => notes.extend(taken.notes),
                    None => {}
                    Some(Err(e)) => notes.push(format!(
                        "cannot commit the run's uncommitted work: {}",
                        render_chain(&e)
                    )),
                }
            }
            Err(e) => notes.push(format!(
                "nothing of the run's worktree was committed: {}",
                render_chain(&e)
            )),
        }
    }
    workspace::unlock(&txn.main, &t.id);
}

/// Whether the orch that supervises `run` on this host still lives: the
/// pid in the run id is a live process that started no later than the run
/// (a pid reused since started after the run began).
fn supervisor_alive(run: &str) -> bool {
    match super::settings::run_origin(run) {
        Some((pid, started)) => {
            pid as u32 != std::process::id() && process::started_by(pid, started)
        }
        None => false,
    }
}
