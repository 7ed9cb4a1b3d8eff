//! The claim phase: look up what the plan needs (run locks, pauses, agent
//! programs), let [`plan::plan_claims`] decide, and claim each chosen
//! ticket in one board change. A claim whose change lost its race is
//! decided again on the new board and, if the ticket is gone, skipped:
//! no agent ever runs on a claim this tick did not win.

use std::collections::BTreeMap;

use crate::agent::launch;
use crate::agent::unavailable;
use crate::board::transition::{self, ClaimRequest};
use crate::board::{Board, BoardTxn, Layout};
use crate::config::{AgentSpec, Config};
use crate::error::{Error, Result, render_chain};
use crate::failpoint;
use crate::git::GitError;
use crate::git::Oid;
use crate::lock::RunLock;
use crate::ticket::{Claim, State, Ticket};

use super::Options;
use super::event::{Event, Reporter, SkipReason};
use super::plan::{self, ClaimPlan, PlanInputs, RunLockFacts, Verdict};
use super::settings::{RunSettings, run_id};

/// A claim this tick won, with the run lock its supervisor holds until
/// the result is recorded.
pub struct Claimed {
    pub ticket: Ticket,
    pub claim: Claim,
    pub run_id: String,
    pub base: Oid,
    pub settings: RunSettings,
    pub run_lock: RunLock,
    /// The remote the board is shared through: the ticket branch travels.
    pub remote: Option<crate::remote::Remote>,
}

/// Runs on the board that occupy a slot under `max_in_progress`: what the
/// tick counts after reconciling, and `--explain` before it.
pub fn running(layout: &Layout, host: &str, board: &Board) -> Result<u32> {
    let now = jiff::Timestamp::now();
    let shared = is_shared(board);
    let mut n = 0;
    for t in board.in_state(State::InProgress) {
        let live = match t.open_claim() {
            Some(c) => {
                plan::ownership(c, host, lock_facts(layout, &t.id, c, shared)?, now).is_running()
            }
            // Reconcile returns it to todo before anything is claimed.
            None => false,
        };
        n += u32::from(live);
    }
    // Files in in-progress that did not parse still hold their slot.
    let invalid = board.count(State::InProgress) - board.in_state(State::InProgress).count();
    Ok(n + invalid as u32)
}

/// Pauses in force, by agent label.
pub fn paused_agents(layout: &Layout) -> BTreeMap<String, unavailable::Cooldown> {
    unavailable::all_active(&layout.plan)
        .into_iter()
        .map(|c| (c.agent.clone(), c))
        .collect()
}

/// Why an agent's program cannot start, if it cannot.
pub fn agent_missing(agent: &AgentSpec) -> Option<String> {
    launch::check_program(agent).err().map(|e| render_chain(&e))
}

/// Whether the board is shared through a remote.
pub fn is_shared(board: &Board) -> bool {
    board.config().is_ok_and(|c| c.remote.is_some())
}

/// Whether the claim's run was supervised here, and whether its run lock
/// is held, without creating it.
pub fn lock_facts(layout: &Layout, id: &str, claim: &Claim, shared: bool) -> Result<RunLockFacts> {
    let path = layout.run_lock(id);
    Ok(RunLockFacts {
        present: run_was_here(layout, id, claim, shared),
        held: RunLock::is_held(&path)?,
        shared,
    })
}

/// Whether this checkout supervised the claim's run: its run lock file is
/// here, or, on a shared board, its local state names this very run.
pub fn run_was_here(layout: &Layout, id: &str, claim: &Claim, shared: bool) -> bool {
    if !shared {
        return layout.run_lock(id).exists();
    }
    let record = layout.state_dir(id).join("claimed-run");
    let Ok(Some(bytes)) = crate::safe_read::regular_file(&record, 4096) else {
        return false;
    };
    claim
        .run
        .as_deref()
        .is_some_and(|run| String::from_utf8_lossy(&bytes).trim() == run)
}

/// Note in local state that this checkout claims `run`, before the claim
/// is published: on a shared board it is the only proof the run is ours.
fn record_claim(layout: &Layout, id: &str, run: &str) -> Result<()> {
    crate::board::write_atomic(
        &layout.state_dir(id).join("claimed-run"),
        format!("{run}\n").as_bytes(),
    )
}

/// How often the claim phase plans again after orch/plan moved under it.
const MAX_REPLANS: u32 = 3;

pub fn claim(
    txn: &mut BoardTxn,
    board: &Board,
    config: &Config,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Result<Vec<Claimed>> {
    let paused = paused_agents(&txn.layout);
    let plan = plan_for(txn, board, config, opts, &paused)?;
    if let Some(only) = &opts.only
        && plan.queue.is_empty()
    {
        reporter.report(&Event::NotClaimed {
            id: only.clone(),
            why: SkipReason::NotClaimable(plan::not_claimable(board, only)),
        });
        return Ok(Vec::new());
    }
    if plan.queue.is_empty() {
        return Ok(Vec::new());
    }
    // Checked only with work ready: a tick with nothing to do reads no
    // more than it did. Runs already going are not stopped here; each is
    // bounded by what the day had left when it started.
    if let Some(over) = config
        .budget
        .day_spent(&crate::budget::read_day(&txn.layout.plan))
    {
        reporter.report(&Event::BudgetSpent {
            id: None,
            text: over.to_string(),
        });
        return Ok(Vec::new());
    }
    if plan.room == 0 {
        reporter.report(&Event::NoRoom {
            ready: plan.queue.len(),
            in_progress: plan.running,
            max_in_progress: config.max_in_progress,
        });
        return Ok(Vec::new());
    }
    // A base or agent that does not resolve is a configuration error:
    // claim nothing rather than spend every ticket's attempts on it.
    let base = base_commit(txn, config)?;
    launch::check_program(&config.agent)?;
    let mut claims = Vec::new();
    let mut outcome = claim_from(txn, &plan, config, base, reporter, &mut claims);
    // orch/plan moved under a claim: the claims won so far stand (their
    // tickets are in progress, and count against the cap); the rest is
    // planned again on the board as it is now.
    let mut replans = 0;
    let max_replans = if txn.is_shared() {
        txn.rounds()
    } else {
        MAX_REPLANS
    };
    while let Err(Error::Git(GitError::Rejected { .. })) = &outcome
        && replans < max_replans
    {
        replans += 1;
        // With a remote, the board is fetched again (and waited for a
        // little, at random, so that racing hosts spread out).
        if txn.is_shared() {
            crate::board::txn::backoff(replans);
            txn.follow()?;
        }
        let board = txn.load_active();
        let plan = plan_for(txn, &board, config, opts, &paused)?;
        outcome = claim_from(txn, &plan, config, base, reporter, &mut claims);
    }
    match outcome {
        Ok(()) => Ok(claims),
        Err(Error::Git(GitError::Rejected { .. })) if txn.is_shared() => {
            // Other hosts kept winning: a lost race is no failure, and
            // what they claimed is theirs. The next tick tries again.
            reporter.report(&Event::Note(format!(
                "other hosts changed the board {replans} times while this tick claimed; it claimed {} and leaves the rest to the next tick",
                claims.len()
            )));
            Ok(claims)
        }
        Err(e) if claims.is_empty() => Err(e),
        Err(e) => {
            // The claims already won still run; the error is said once.
            reporter.report(&Event::Error {
                id: None,
                text: format!(
                    "stopped claiming after {} claim(s): {}",
                    claims.len(),
                    render_chain(&e)
                ),
            });
            Ok(claims)
        }
    }
}

/// The commit first attempts start from. On a shared board the remote's
/// base branch, where it has everything the local one has: a build host's
/// own checkout may lag behind it.
fn base_commit(txn: &BoardTxn, config: &Config) -> Result<Oid> {
    // With landing on, work starts from the target: it holds the tickets
    // landed so far, the dependencies of this one among them.
    let start = if config.land.is_on() {
        config.target()
    } else {
        &config.base
    };
    let local = txn.main.resolve_commit(start);
    let remote = match txn.remote() {
        Some(r) if crate::git::is_valid_branch_name(start) => r.fetch_branch(start)?,
        _ => None,
    };
    match (local, remote) {
        (Ok(l), Some(r)) if txn.main.contains(r, l) => Ok(r),
        (Err(_), Some(r)) => Ok(r),
        (Ok(l), _) => Ok(l),
        (Err(e), None) => Err(Error::usage(format!("the base {}", render_chain(&e)))
            .hinted("set `base:` in orch.yaml to an existing branch, e.g. main")),
    }
}

fn plan_for<'b>(
    txn: &BoardTxn,
    board: &'b Board,
    config: &Config,
    opts: &Options,
    paused: &BTreeMap<String, unavailable::Cooldown>,
) -> Result<ClaimPlan<'b>> {
    let running = running(&txn.layout, &txn.host, board)?;
    Ok(plan::plan_claims(
        board,
        config,
        &PlanInputs {
            jobs: opts.jobs,
            only: opts.only.as_deref(),
            running,
            paused,
            agent_missing: &agent_missing,
        },
    ))
}

/// Walk the plan in order: report each skip, claim each candidate, until
/// the plan's room is used. Claims are added to `claims` as they are won.
fn claim_from(
    txn: &mut BoardTxn,
    plan: &ClaimPlan<'_>,
    config: &Config,
    base: Oid,
    reporter: &dyn Reporter,
    claims: &mut Vec<Claimed>,
) -> Result<()> {
    let mut won = 0;
    for (t, verdict) in &plan.queue {
        if won >= plan.room {
            break;
        }
        match verdict {
            Verdict::Skip(why) => reporter.report(&Event::NotClaimed {
                id: t.id.clone(),
                why: why.clone(),
            }),
            Verdict::Claim => {
                if let Some(c) = claim_one(txn, t, config, base, reporter)? {
                    claims.push(c);
                    won += 1;
                }
            }
        }
    }
    Ok(())
}

fn claim_one(
    txn: &mut BoardTxn,
    t: &Ticket,
    config: &Config,
    base: Oid,
    reporter: &dyn Reporter,
) -> Result<Option<Claimed>> {
    let Some(run_lock) = RunLock::try_acquire(&txn.layout.run_lock(&t.id))? else {
        reporter.report(&Event::NotClaimed {
            id: t.id.clone(),
            why: SkipReason::RunLockHeld,
        });
        return Ok(None);
    };
    let settings = RunSettings::for_ticket(config, t);
    let attempt = t.attempts_started() + 1;
    let run = run_id(attempt);
    record_claim(&txn.layout, &t.id, &run)?;
    let request = ClaimRequest {
        id: &t.id,
        attempt,
        run: &run,
        lease: settings.lease(),
        agent: &settings.agent.label(),
    };
    let Some((ticket, claim)) = transition::claim(txn, &request)? else {
        // Taken or changed meanwhile: not ours to run.
        return Ok(None);
    };
    failpoint::hit("claim-after-commit");
    reporter.report(&Event::Claimed {
        id: t.id.clone(),
        attempt,
        title: t.title().to_string(),
    });
    Ok(Some(Claimed {
        ticket,
        claim,
        run_id: run,
        base,
        settings,
        run_lock,
        remote: txn.remote().cloned(),
    }))
}
