//! `--explain`: what a tick would do with every ticket, and why. A renderer
//! of the same decisions the tick makes ([`plan`]), on the files as they
//! are; it takes no lock and changes nothing.

use std::path::Path;

use crate::board::{Board, Layout, Readiness, host_name};
use crate::error::Result;
use crate::ticket::{Severity, State};

use super::Options;
use super::claim::{self, lock_facts};
use super::event::SkipReason;
use super::plan::{self, Ownership, PlanInputs, Verdict};

/// One row: (ticket, state, what a tick would do and why).
pub type Row = (String, String, String);

pub fn explain(layout: &Layout, opts: &Options) -> Result<Vec<Row>> {
    let board = Board::load(layout);
    let config = board.config()?.clone();
    let mut out = Vec::new();
    in_progress_rows(layout, &board, &mut out)?;
    let running = claim::running(layout, &host_name(), &board)?;
    ready_rows(layout, &board, &config, opts, running, &mut out);
    waiting_rows(&board, &mut out);
    Ok(out)
}

/// Rows for in-progress tickets.
fn in_progress_rows(layout: &Layout, board: &Board, out: &mut Vec<Row>) -> Result<()> {
    let host = host_name();
    let now = jiff::Timestamp::now();
    let shared = claim::is_shared(board);
    for t in board.in_state(State::InProgress) {
        let why = match t.open_claim() {
            None => "would return to todo: in progress without a claim".to_string(),
            Some(c) => {
                let owner = plan::ownership(c, &host, lock_facts(layout, &t.id, c, shared)?, now);
                match owner {
                    Ownership::Live => {
                        format!("running (attempt {}), supervised by a live orch", c.attempt)
                    }
                    Ownership::Dead => {
                        "would settle as abandoned: its supervising orch is gone".to_string()
                    }
                    Ownership::Foreign { host } => format!("running on host {host}"),
                    Ownership::Expired { host } => {
                        format!("would settle as abandoned: the lease of host {host} expired")
                    }
                }
            }
        };
        out.push((t.id.clone(), "in-progress".into(), why));
    }
    Ok(())
}

/// Rows for the ready queue, in the order a tick takes it.
fn ready_rows(
    layout: &Layout,
    board: &Board,
    config: &crate::config::Config,
    opts: &Options,
    running: u32,
    out: &mut Vec<Row>,
) {
    let paused = claim::paused_agents(layout);
    let plan = plan::plan_claims(
        board,
        config,
        &PlanInputs {
            jobs: opts.jobs,
            only: None,
            running,
            paused: &paused,
            agent_missing: &claim::agent_missing,
        },
    );
    let mut taken = 0usize;
    let day_over = config
        .budget
        .day_spent(&crate::budget::read_day(&layout.plan));
    for (t, verdict) in &plan.queue {
        let skipped = match verdict {
            Verdict::Skip(why) => Some(why),
            Verdict::Claim => None,
        };
        let why = if opts.only.as_ref().is_some_and(|o| o != &t.id) {
            "ready, but --ticket names another".to_string()
        } else if let Some(SkipReason::AgentPaused { agent, until, .. }) = skipped {
            format!("ready, not claimed: agent `{agent}` is paused until {until}")
        } else if let Some(why) = skipped {
            format!("ready, not claimed: {why}")
        } else if let Some(over) = &day_over {
            format!("ready, not claimed: {over}")
        } else if taken < plan.room {
            taken += 1;
            format!(
                "would claim: ready, priority {}, attempt {}",
                t.front.priority,
                t.attempts_started() + 1
            )
        } else if plan.cap == 0 {
            format!(
                "ready, not claimed: over the cap (max_in_progress {})",
                config.max_in_progress
            )
        } else {
            format!(
                "ready, not claimed: this tick runs {} (--jobs / max_in_progress)",
                plan.room
            )
        };
        out.push((t.id.clone(), "todo".into(), why));
    }
}

/// Rows for tickets that wait, are stuck, are blocked, or are invalid;
/// then the warnings a tick says once.
fn waiting_rows(board: &Board, out: &mut Vec<Row>) {
    let stuck = board.stuck();
    for t in board.in_state(State::Todo) {
        match board.readiness(t) {
            Readiness::Ready => {}
            Readiness::Waiting(_) if stuck.contains_key(&t.id) => {
                out.push((t.id.clone(), "todo".into(), stuck[&t.id].describe()))
            }
            Readiness::Waiting(on) => out.push((
                t.id.clone(),
                "todo".into(),
                format!("waiting on {}", on.join(", ")),
            )),
            Readiness::Invalid(why) => {
                // With its path and line, as the tick names it.
                let path = t.rel_path();
                let why = board
                    .errors()
                    .find(|p| p.path == path)
                    .map(|p| p.to_string())
                    .unwrap_or(why);
                out.push((
                    t.id.clone(),
                    "todo".into(),
                    format!("skipped, invalid: {why}"),
                ))
            }
        }
    }
    for t in board.in_state(State::Blocked) {
        let why = t
            .last_result()
            .and_then(|r| r.reason.as_deref())
            .unwrap_or("needs a person");
        out.push((t.id.clone(), "blocked".into(), format!("blocked: {why}")));
    }
    for p in board.errors() {
        let id = Path::new(&p.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !out.iter().any(|(i, _, _)| *i == id) {
            out.push((id, "invalid".into(), format!("skipped: {p}")));
        }
    }
    for w in &board.config_warnings {
        let line = w.line.map(|l| format!(":{l}")).unwrap_or_default();
        out.push((
            "orch.yaml".into(),
            "config".into(),
            format!("warning: orch.yaml{line}: {}", w.message),
        ));
    }
    for p in board
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .filter(|p| !p.path.starts_with(&format!("{}/", State::Done.rel_dir())))
    {
        let id = Path::new(&p.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let state = Path::new(&p.path)
            .parent()
            .and_then(|d| d.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((id, state, format!("warning: {p}")));
    }
}
