//! Every move of a ticket, and the only code that appends to a ticket's
//! log. Each function is one board change through [`BoardTxn::apply`]: it
//! reads the ticket as the board holds it now, decides, writes, and commits
//! once with the trailers of that transition.

use crate::board::layout::{stale_summary_rel, summary_rel};
use crate::board::{BoardTxn, CommitMessage, Trailer};
use crate::error::Result;
use crate::failpoint;
use crate::outcome::{Outcome, Settlement};
use crate::summary::AttemptSummary;
use crate::text;
use crate::ticket::{Claim, Event, State, Ticket};

/// Longest reason kept in a log line or a commit message.
const REASON_MAX: usize = 300;

/// What a claim wants to record.
pub struct ClaimRequest<'a> {
    pub id: &'a str,
    pub attempt: u32,
    pub run: &'a str,
    pub lease: String,
    pub agent: &'a str,
}

/// Move a todo ticket to in-progress with a claim for `attempt`. None when
/// the ticket is no longer in todo on the board (another tick took it). A
/// lost race is returned as `GitError::Rejected`, not decided again here:
/// whether to claim depends on the whole board (the cap), so the caller
/// plans again.
pub fn claim(txn: &mut BoardTxn, req: &ClaimRequest<'_>) -> Result<Option<(Ticket, Claim)>> {
    let host = txn.host.clone();
    txn.apply_once(|txn| {
        let Some(t) = txn.read_ticket(req.id, State::Todo) else {
            return Ok(None);
        };
        if t.attempts_started() + 1 != req.attempt {
            return Ok(None);
        }
        let claim = Claim::new(req.attempt, &host, req.run, req.lease.clone());
        let text = t.text_with(&Event::Claim(claim.clone()));
        txn.move_ticket(req.id, State::Todo, State::InProgress, &text)?;
        failpoint::hit("claim-after-move");
        let message =
            CommitMessage::new(format!("orch: claim {} (attempt {})", req.id, req.attempt))
                .trailer(Trailer::Ticket, req.id)
                .trailer(Trailer::Attempt, req.attempt)
                .trailer(Trailer::Event, "claim")
                .trailer(Trailer::Run, req.run)
                .trailer(Trailer::Agent, req.agent);
        let mut claimed = t;
        claimed.state = State::InProgress;
        claimed.log.push(Event::Claim(claim.clone()));
        claimed.text = text;
        Ok(Some((message, (claimed, claim))))
    })
}

/// An in-progress ticket without a claim by orch (moved there by hand, or a
/// crash between the move and the claim line) goes back to todo.
pub fn release(txn: &mut BoardTxn, id: &str) -> Result<bool> {
    let done = txn.apply(|txn| {
        let Some(t) = txn.read_ticket(id, State::InProgress) else {
            return Ok(None);
        };
        if t.has_open_attempt() {
            return Ok(None);
        }
        let event = Event::release("in progress without a claim by orch; returned to todo");
        txn.move_ticket(id, State::InProgress, State::Todo, &t.text_with(&event))?;
        let message = CommitMessage::new(format!("orch: release {id} (no claim)"))
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Event, "release");
        Ok(Some((message, ())))
    })?;
    Ok(done.is_some())
}

/// A todo ticket, or an in-progress one without a claim, sent to blocked by
/// `orch abort`.
pub fn abort_unclaimed(txn: &mut BoardTxn, id: &str, from: State) -> Result<bool> {
    let done = txn.apply(|txn| {
        let Some(t) = txn.read_ticket(id, from) else {
            return Ok(None);
        };
        let event = Event::abort("aborted by `orch abort` before it ran");
        txn.move_ticket(id, from, State::Blocked, &t.text_with(&event))?;
        let message = CommitMessage::new(format!("orch: aborted {id}"))
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Outcome, Outcome::Aborted)
            .trailer(Trailer::State, State::Blocked);
        Ok(Some((message, ())))
    })?;
    Ok(done.is_some())
}

/// Which run a result belongs to.
pub struct RunRef<'a> {
    pub id: &'a str,
    pub attempt: u32,
    /// The claim's run id; empty for a claim written without one.
    pub run: &'a str,
}

/// What became of a result handed to [`settle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Recorded: the ticket moved to `to`.
    Moved { to: State, reason: String },
    /// The claim was no longer this run's: the result was kept beside the
    /// attempt's summary and the ticket left alone.
    Stale,
    /// The ticket was deleted while its run went on: the summary alone was
    /// recorded.
    Deleted,
}

/// Record an attempt's result, if its claim is still the open one on the
/// board: append the result, move the ticket, write the summary (and the
/// settlement's extra files), commit once.
pub fn settle(
    txn: &mut BoardTxn,
    run: &RunRef<'_>,
    settlement: &Settlement,
    max_attempts: u32,
    summary: &AttemptSummary,
) -> Result<Settled> {
    let full = settle_as(txn, run, settlement, max_attempts, Some(summary));
    let Err(error) = full else {
        return full;
    };
    // The summary or a file beside it could not be written (something in
    // the way in runs/, a full disk): record the result without them
    // rather than leave the ticket in progress for every later tick to
    // trip on. Only when that fails too is the ticket left as it is.
    let mut bare = settlement.clone();
    bare.extra_files.clear();
    bare.reason = format!(
        "{}; orch could not write the attempt summary: {}",
        settlement.reason,
        crate::error::render_chain(&error)
    );
    settle_as(txn, run, &bare, max_attempts, None).map_err(|_| error)
}

/// Move a ticket whose run could not be settled, try after try, to
/// blocked with `reason`: without the summary or anything beside it (what
/// may have failed), and without using up an attempt (the run's own result
/// is not known).
pub fn give_up(txn: &mut BoardTxn, run: &RunRef<'_>, reason: String) -> Result<Settled> {
    let settlement = Settlement::new(Outcome::Blocked, reason).counting(false);
    settle_as(txn, run, &settlement, u32::MAX, None)
}

fn settle_as(
    txn: &mut BoardTxn,
    run: &RunRef<'_>,
    settlement: &Settlement,
    max_attempts: u32,
    summary: Option<&AttemptSummary>,
) -> Result<Settled> {
    let settled = txn.apply(|txn| {
        let current = txn.read_ticket(run.id, State::InProgress);
        let ours = current
            .as_ref()
            .and_then(|t| t.open_claim())
            .is_some_and(|c| c.attempt == run.attempt && c.run.as_deref().unwrap_or("") == run.run);
        match (current, summary) {
            (Some(t), _) if ours => {
                record(txn, &t, run, settlement, max_attempts, summary).map(Some)
            }
            _ if let Some(t) = moved_by_hand(txn, run) => {
                record_in_place(txn, &t, run, settlement, summary).map(Some)
            }
            (None, Some(summary)) if nowhere(txn, run.id) => {
                record_deleted(txn, run, settlement, summary).map(Some)
            }
            (_, Some(summary)) => refuse_stale(txn, run, summary).map(Some),
            // A stale result with nothing to write is not recorded at all.
            (_, None) => Ok(None),
        }
    })?;
    Ok(settled.unwrap_or(Settled::Stale))
}

fn record(
    txn: &mut BoardTxn,
    t: &Ticket,
    run: &RunRef<'_>,
    settlement: &Settlement,
    max_attempts: u32,
    summary: Option<&AttemptSummary>,
) -> Result<(CommitMessage, Settled)> {
    let used = t.attempts_used() + u32::from(settlement.counts);
    let mut dest = settlement.destination(used, max_attempts);
    if dest.state == State::Done && settlement.outcome == Outcome::Success && txn.lands(t) {
        dest.state = State::Landing;
    }
    let reason = text::one_line(&dest.reason, REASON_MAX);
    let event = Event::result(
        run.attempt,
        settlement.outcome,
        reason.clone(),
        settlement.counts,
        dest.state,
    )
    .with_tokens(settlement.tokens);
    add_day_spend(txn, settlement.tokens)?;
    // The summary first: a crash after it leaves the ticket in progress,
    // which the next tick settles, rather than a moved ticket without one.
    let tip = summary.and_then(|s| s.tip.clone());
    if let Some(summary) = summary {
        let mut summary = summary.clone();
        if dest.reason != settlement.reason {
            summary
                .notes
                .push(format!("moved to blocked: {}", dest.reason));
        }
        txn.write(
            &summary_rel(run.id, run.attempt),
            summary.render().as_bytes(),
        )?;
    }
    for file in &settlement.extra_files {
        let content =
            crate::agent::unavailable::merged(&txn.layout.plan, &file.path, &file.content);
        txn.write(&file.path, content.as_bytes())?;
    }
    failpoint::hit("settle-after-summary");
    txn.move_ticket(run.id, State::InProgress, dest.state, &t.text_with(&event))?;
    failpoint::hit("settle-after-move");
    let message = result_message(
        run,
        settlement,
        "",
        reason,
        Some(dest.state),
        tip.as_deref(),
    );
    Ok((
        message,
        Settled::Moved {
            to: dest.state,
            reason: dest.reason,
        },
    ))
}

/// The commit message of a recorded result: `orch: <outcome> <id>
/// (attempt <n>)<suffix>`, the reason, and the result's trailers.
fn result_message(
    run: &RunRef<'_>,
    settlement: &Settlement,
    suffix: &str,
    reason: String,
    state: Option<State>,
    tip: Option<&str>,
) -> CommitMessage {
    let mut message = CommitMessage::new(format!(
        "orch: {} {} (attempt {}){suffix}",
        settlement.outcome, run.id, run.attempt
    ))
    .line(reason)
    .trailer(Trailer::Ticket, run.id)
    .trailer(Trailer::Attempt, run.attempt)
    .trailer(Trailer::Outcome, settlement.outcome);
    if let Some(state) = state {
        message = message.trailer(Trailer::State, state);
    }
    if !run.run.is_empty() {
        message = message.trailer(Trailer::Run, run.run);
    }
    if let Some(tip) = tip {
        message = message.trailer(Trailer::Commit, tip);
    }
    if settlement.tokens > 0 {
        message = message.trailer(Trailer::Tokens, settlement.tokens);
    }
    message
}

/// Add an attempt's tokens to the day's spend on the board, in the same
/// commit as its result; read inside the change, so a race re-adds to
/// the new board's count.
fn add_day_spend(txn: &mut BoardTxn, tokens: u64) -> Result<()> {
    if tokens == 0 {
        return Ok(());
    }
    let content = crate::budget::add_to_day(&txn.layout.plan, tokens);
    txn.write(crate::budget::DAY_FILE, content.as_bytes())
}

/// The ticket, if a person moved it out of in-progress while this run
/// went on: found in another state with this run's claim still open.
fn moved_by_hand(txn: &BoardTxn, run: &RunRef<'_>) -> Option<Ticket> {
    [State::Todo, State::Landing, State::Done, State::Blocked]
        .into_iter()
        .filter_map(|state| txn.read_ticket(run.id, state))
        .find(|t| {
            t.open_claim().is_some_and(|c| {
                c.attempt == run.attempt && c.run.as_deref().unwrap_or("") == run.run
            })
        })
}

fn nowhere(txn: &BoardTxn, id: &str) -> bool {
    State::ALL
        .into_iter()
        .all(|state| txn.read_ticket(id, state).is_none())
}

/// The summary of a run whose ticket a person deleted while it went on:
/// the ticket stays deleted; the attempt is on record in `runs/`.
fn record_deleted(
    txn: &mut BoardTxn,
    run: &RunRef<'_>,
    settlement: &Settlement,
    summary: &AttemptSummary,
) -> Result<(CommitMessage, Settled)> {
    let mut summary = summary.clone();
    summary
        .notes
        .push("a person deleted the ticket while it ran".into());
    // Spent all the same: the day counts it.
    add_day_spend(txn, settlement.tokens)?;
    txn.write(
        &summary_rel(run.id, run.attempt),
        summary.render().as_bytes(),
    )?;
    let message = result_message(
        run,
        settlement,
        ", ticket deleted by hand",
        text::one_line(&settlement.reason, REASON_MAX),
        None,
        summary.tip.as_deref(),
    );
    Ok((message, Settled::Deleted))
}

/// Record the result in the log of a ticket a person moved while it ran,
/// where it is now: the person's move stands, and no attempt shows as
/// running for ever.
fn record_in_place(
    txn: &mut BoardTxn,
    t: &Ticket,
    run: &RunRef<'_>,
    settlement: &Settlement,
    summary: Option<&AttemptSummary>,
) -> Result<(CommitMessage, Settled)> {
    let reason = text::one_line(&settlement.reason, REASON_MAX);
    let event = Event::result(
        run.attempt,
        settlement.outcome,
        reason.clone(),
        settlement.counts,
        t.state,
    )
    .with_tokens(settlement.tokens);
    add_day_spend(txn, settlement.tokens)?;
    let tip = summary.and_then(|s| s.tip.clone());
    if let Some(summary) = summary {
        let mut summary = summary.clone();
        summary.notes.push(format!(
            "a person moved the ticket to {} while it ran; it stays there",
            t.state.dir()
        ));
        txn.write(
            &summary_rel(run.id, run.attempt),
            summary.render().as_bytes(),
        )?;
    }
    txn.write(&t.rel_path(), t.text_with(&event).as_bytes())?;
    let message = result_message(
        run,
        settlement,
        &format!(", left in {} by hand", t.state.dir()),
        reason,
        Some(t.state),
        tip.as_deref(),
    );
    Ok((
        message,
        Settled::Moved {
            to: t.state,
            reason: format!("left in {} where a person moved it", t.state.dir()),
        },
    ))
}

/// Someone settled and perhaps reclaimed this ticket meanwhile. The work
/// stays on the branch; the result is only recorded.
fn refuse_stale(
    txn: &mut BoardTxn,
    run: &RunRef<'_>,
    summary: &AttemptSummary,
) -> Result<(CommitMessage, Settled)> {
    let mut stale = summary.clone();
    stale
        .notes
        .push("refused: the claim was no longer this run's when it finished".into());
    txn.write(
        &stale_summary_rel(run.id, run.attempt),
        stale.render().as_bytes(),
    )?;
    let message = CommitMessage::new(format!(
        "orch: refuse stale result of {} (attempt {})",
        run.id, run.attempt
    ))
    .trailer(Trailer::Ticket, run.id)
    .trailer(Trailer::Attempt, run.attempt)
    .trailer(Trailer::Outcome, Outcome::Stale)
    .trailer(Trailer::Run, run.run);
    Ok((message, Settled::Stale))
}

/// What landing did with a ticket waiting in `landing/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandResult {
    /// On the target as `commit` (None: it was there already, or a
    /// command landed it).
    Landed { commit: Option<String> },
    /// Handed back to an agent: `conflict` or `land-failed`.
    HandedBack { outcome: Outcome },
    /// Landing is off for it: done, with the work left on its branch.
    Off,
}

/// Record what landing did with the ticket `id` waiting in landing/ after
/// `attempt`: to done, or back to todo (blocked once `land_retries`
/// hand-backs are spent). None when the ticket is no longer waiting there
/// (a person moved it): nothing is recorded.
pub fn land(
    txn: &mut BoardTxn,
    id: &str,
    attempt: u32,
    result: &LandResult,
    reason: &str,
    land_retries: u32,
) -> Result<Option<State>> {
    txn.apply(|txn| {
        let Some(t) = txn.read_ticket(id, State::Landing) else {
            return Ok(None);
        };
        let reason = text::one_line(reason, REASON_MAX);
        let (outcome, counts, state, why) = match result {
            LandResult::Landed { .. } => (Outcome::Landed, false, State::Done, reason.clone()),
            LandResult::Off => (Outcome::Success, false, State::Done, reason.clone()),
            LandResult::HandedBack { outcome } => {
                let tries = t.hand_backs() + 1;
                if tries > land_retries {
                    let why = format!(
                        "landing failed {tries} times (land_retries: {land_retries}); last: {outcome}: {reason}"
                    );
                    (*outcome, false, State::Blocked, text::one_line(&why, REASON_MAX))
                } else {
                    (*outcome, false, State::Todo, reason.clone())
                }
            }
        };
        let event = Event::result(attempt, outcome, why.clone(), counts, state);
        txn.move_ticket(id, State::Landing, state, &t.text_with(&event))?;
        failpoint::hit("land-after-move");
        let verb = match result {
            LandResult::Landed { .. } => "landed",
            LandResult::Off => "done without landing",
            LandResult::HandedBack { .. } => "handed back",
        };
        let mut message = CommitMessage::new(format!("orch: {verb} {id} (attempt {attempt})"))
            .line(why)
            .trailer(Trailer::Ticket, id)
            .trailer(Trailer::Attempt, attempt)
            .trailer(Trailer::Event, "land")
            .trailer(Trailer::Outcome, outcome)
            .trailer(Trailer::State, state);
        if let LandResult::Landed {
            commit: Some(commit),
        } = result
        {
            message = message.trailer(Trailer::Commit, commit);
        }
        Ok(Some((message, state)))
    })
}
