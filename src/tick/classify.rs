//! Pure: what an attempt's facts amount to. [`classify`] turns the facts a
//! finished run left (how the agent ended, what it submitted, its commits,
//! verify) into the one [`Settlement`] the tick records.

use crate::agent::contract::{Submission, SubmitStatus};
use crate::agent::supervise::{Ended, Report};
use crate::agent::unavailable;
use crate::duration::display;
use crate::git::CommitInfo;
use crate::outcome::{Outcome, Settlement};

use super::settings::RunSettings;

/// Everything a finished run knows, gathered for classification.
#[derive(Debug, Default)]
pub struct RunFacts {
    pub report: Option<Report>,
    pub submission: Option<Submission>,
    pub commits: Vec<CommitInfo>,
    pub tip: Option<String>,
    pub verify: Vec<(String, String)>,
    pub verify_failed: Option<String>,
    /// The repository's commit hooks refused orch's commit of the work
    /// the agent left (kept aside, off the ticket branch): why.
    pub hooks_refused: Option<String>,
    /// orch could not commit what the agent left (a full disk): its
    /// failure, not the agent's; the work stays in the worktree.
    pub work_error: Option<String>,
    pub verify_ended: Option<Ended>,
    pub notes: Vec<String>,
    /// orch could not prepare the run (worktree, prompt, preset).
    pub setup_error: Option<String>,
    /// orch was stopped before the agent started.
    pub interrupted_early: bool,
    /// The agent broke out of its worktree (changed its link to the
    /// repository): its work was refused.
    pub contained: Option<String>,
    /// Someone else moved the ticket branch while the agent ran.
    pub moved_by_other: Option<String>,
    /// agent-unavailable results that end the ticket's log, in a row.
    pub unavailable_in_a_row: usize,
    /// When that run of results began.
    pub unavailable_since: Option<String>,
    /// The agent's pause as last written (over or not), with when it last
    /// finished a ticket after an outage.
    pub last_cooldown: Option<unavailable::Cooldown>,
    /// Uncounted failures of orch's own that end the ticket's log, in a row.
    pub orch_failures_in_a_row: usize,
    /// What the attempt could spend under `budget:`, and which budget said so.
    pub budget_limit: Option<crate::budget::Limit>,
    /// Tokens the ticket's earlier attempts spent, in the set the budget counts.
    pub ticket_tokens_before: u64,
}

/// orch's own failures before the agent runs (a worktree it could not
/// prepare, a command it could not start) use no attempt, until this many
/// in a row: a persistent one must end in blocked, not retry for ever.
pub const ORCH_FAILURES_COUNTED_AFTER: usize = 3;

/// The run's outcome, unless its output says the agent could not use its
/// model at all: then the attempt says nothing about the ticket.
pub fn classify(f: &RunFacts, settings: &RunSettings) -> Settlement {
    let mut settlement = classify_outage(f, settings);
    settlement.tokens = f
        .report
        .as_ref()
        .map(|r| {
            r.activity
                .input_tokens
                .saturating_add(r.activity.output_tokens)
        })
        .unwrap_or(0);
    settlement.budget_spent = settings
        .budget
        .ticket_spent(f.ticket_tokens_before.saturating_add(settlement.tokens));
    settlement
}

fn classify_outage(f: &RunFacts, settings: &RunSettings) -> Settlement {
    let settlement = classify_run(f, settings);
    if settlement.outcome == Outcome::Success
        && let Some(c) = f.last_cooldown.as_ref().filter(|c| c.awaits_recovery())
    {
        // Recorded once per outage, on the pause's own file.
        let recovered = unavailable::Cooldown {
            recovered: Some(jiff::Timestamp::now().to_string()),
            ..c.clone()
        };
        return settlement.with_file(
            unavailable::rel_path(&c.agent),
            unavailable::render(&recovered),
        );
    }
    if !settlement.outcome.may_be_outage() || f.setup_error.is_some() {
        return settlement;
    }
    let tail = f.report.as_ref().map(|r| r.tail.as_slice()).unwrap_or(&[]);
    let Some(reason) = unavailable::recognise(tail, settings.agent.unavailable_patterns()) else {
        return settlement;
    };
    let seconds = i64::try_from(settings.agent_cooldown.as_secs()).unwrap_or(i64::MAX);
    let until =
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second().saturating_add(seconds))
            .map(|t| t.to_string())
            .unwrap_or_default();
    let agent = settings.agent.label();
    let recovered = f.last_cooldown.as_ref().and_then(|c| c.recovered.clone());
    // Output that only looks like an outage (a test that prints one) must
    // not retry a ticket for ever: the third in a row counts, but only
    // when the agent has finished another ticket since the first, so a
    // real outage, however long, costs no attempt.
    let looks_alike = f.unavailable_in_a_row + 1 >= unavailable::UNCOUNTED_IN_A_ROW
        && f.last_cooldown.as_ref().is_some_and(|c| {
            f.unavailable_since
                .as_deref()
                .is_some_and(|since| c.recovered_after(since))
        });
    let cooldown = unavailable::Cooldown {
        agent: agent.clone(),
        until,
        reason: reason.clone(),
        at: Some(jiff::Timestamp::now().to_string()),
        recovered,
    };
    Settlement::new(Outcome::AgentUnavailable, reason)
        .counting(looks_alike)
        .with_file(
            unavailable::rel_path(&agent),
            unavailable::render(&cooldown),
        )
}

fn classify_run(f: &RunFacts, settings: &RunSettings) -> Settlement {
    if f.interrupted_early {
        return Settlement::new(
            Outcome::Interrupted,
            "orch was stopped before the agent started",
        );
    }
    let orch_failure_counts = f.orch_failures_in_a_row + 1 >= ORCH_FAILURES_COUNTED_AFTER;
    if let Some(e) = f.setup_error.as_ref().or(f.work_error.as_ref()) {
        return Settlement::new(Outcome::Failed, e.clone()).counting(orch_failure_counts);
    }
    if let Some(why) = &f.contained {
        return Settlement::new(Outcome::Failed, why.clone());
    }
    if let Some(why) = &f.moved_by_other {
        // A person's hand, not the agent's doing.
        return Settlement::new(Outcome::Failed, why.clone()).counting(false);
    }
    let Some(r) = &f.report else {
        return Settlement::new(Outcome::Failed, "the agent did not run");
    };
    let ended = match (r.ended, f.verify_ended) {
        (
            Ended::Exited,
            Some(v @ (Ended::Interrupted | Ended::Aborted | Ended::Moved | Ended::WorktreeRemoved)),
        ) => v,
        (e, _) => e,
    };
    if ended == Ended::OverBudget {
        return over_budget(f, r);
    }
    if let Some(s) = classify_ending(ended, r, settings) {
        return match s.outcome {
            Outcome::Failed if !s.counts => s.counting(orch_failure_counts),
            _ => s,
        };
    }
    let said = f.submission.as_ref().and_then(|s| s.status);
    let with_message = |base: String| match f.submission.as_ref().and_then(|s| s.message.as_deref())
    {
        Some(m) if !m.trim().is_empty() => {
            format!("{base}: {}", m.lines().next().unwrap_or("").trim())
        }
        _ => base,
    };
    match said {
        Some(SubmitStatus::Blocked) => {
            return Settlement::new(
                Outcome::Blocked,
                with_message("the agent asked for a person".into()),
            );
        }
        Some(SubmitStatus::Failed) => {
            return Settlement::new(
                Outcome::Failed,
                with_message(format!("the agent reported failure ({})", r.exit_text())),
            );
        }
        Some(SubmitStatus::Done) | None => {}
    }
    if !r.success() {
        let reason = with_message(r.exit_text());
        return Settlement::new(
            Outcome::Failed,
            match &f.hooks_refused {
                Some(why) => format!("{reason}; {why}"),
                None => reason,
            },
        );
    }
    // Before "no changes": the refused work is not on the branch.
    if let Some(why) = &f.hooks_refused {
        return Settlement::new(Outcome::VerifyFailed, why.clone());
    }
    if f.commits.is_empty() {
        if said == Some(SubmitStatus::Done) {
            return Settlement::new(
                Outcome::Success,
                with_message("the agent reported done with no changes needed".into()),
            );
        }
        return Settlement::new(
            Outcome::NoChanges,
            "the agent exited 0 without changing anything",
        );
    }
    if let Some(v) = &f.verify_failed {
        return Settlement::new(Outcome::VerifyFailed, v.clone());
    }
    let n = f.commits.len();
    Settlement::new(
        Outcome::Success,
        with_message(format!(
            "{n} commit{} on the ticket branch",
            if n == 1 { "" } else { "s" }
        )),
    )
}

/// An attempt stopped by a budget. Stopped by the day's budget, it used
/// no attempt: the agent was cut short by other tickets' spending.
fn over_budget(f: &RunFacts, r: &Report) -> Settlement {
    let spent = r
        .activity
        .input_tokens
        .saturating_add(r.activity.output_tokens);
    let Some(limit) = &f.budget_limit else {
        return Settlement::new(Outcome::OverBudget, format!("{spent} tokens spent"));
    };
    let reason = format!(
        "{spent} tokens spent, past the {} this attempt could spend ({})",
        limit.tokens, limit.text
    );
    Settlement::new(Outcome::OverBudget, reason).counting(limit.kind != crate::budget::Kind::Day)
}

/// The settlement for a run that did not end by exiting on its own.
fn classify_ending(ended: Ended, r: &Report, settings: &RunSettings) -> Option<Settlement> {
    Some(match ended {
        Ended::Exited | Ended::OverBudget => return None,
        Ended::Interrupted => Settlement::new(Outcome::Interrupted, "orch was stopped by a signal"),
        Ended::Aborted => Settlement::new(Outcome::Aborted, "stopped by `orch abort`"),
        // A person's hand, not the agent's doing: no attempt used.
        Ended::Moved => Settlement::new(
            Outcome::Interrupted,
            "a person moved the ticket out of in-progress while it ran",
        ),
        Ended::WorktreeRemoved => Settlement::new(
            Outcome::Interrupted,
            "the ticket's worktree was removed from git while it ran",
        ),
        Ended::NoProgress => Settlement::new(
            Outcome::Stalled,
            format!(
                "no progress for {} (only retry messages or idle output)",
                display(settings.no_progress_timeout.unwrap_or_default())
            ),
        ),
        Ended::Timeout => Settlement::new(
            Outcome::Timeout,
            format!(
                "still running after the hard timeout of {}",
                display(settings.timeout)
            ),
        ),
        Ended::Stalled => Settlement::new(
            Outcome::Stalled,
            format!("no output for {}", display(settings.no_output_timeout)),
        ),
        // Checked before the claim, so this is a race with an uninstall:
        // a configuration problem, not the ticket's failure.
        Ended::SpawnFailed => Settlement::new(Outcome::Failed, r.exit_text()).counting(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::outcome::Next;

    fn settings() -> RunSettings {
        let t = crate::ticket::parse("t", crate::ticket::State::Todo, b"---\ntitle: t\n---\n")
            .0
            .expect("ticket");
        RunSettings::for_ticket(&Config::defaults(), &t)
    }

    fn exited(code: i32, tail: &[&str]) -> Report {
        Report::for_tests(Ended::Exited, Some(code), tail)
    }

    fn commit() -> CommitInfo {
        CommitInfo {
            id: "0".repeat(40),
            summary: "work".into(),
            message: "work".into(),
            time: 0,
            author: "a".into(),
            email: "a@example.com".into(),
        }
    }

    fn facts(report: Report) -> RunFacts {
        RunFacts {
            report: Some(report),
            ..RunFacts::default()
        }
    }

    fn submitted(status: SubmitStatus, message: &str) -> Option<Submission> {
        Some(Submission {
            status: Some(status),
            message: Some(message.into()),
        })
    }

    #[test]
    fn table() {
        let s = settings();
        let mut with_commit = facts(exited(0, &[]));
        with_commit.commits = vec![commit()];
        let mut verify_failed = facts(exited(0, &[]));
        verify_failed.commits = vec![commit()];
        verify_failed.verify_failed = Some("verify `false` failed (exit status 1)".into());
        let mut asked = facts(exited(0, &[]));
        asked.submission = submitted(SubmitStatus::Blocked, "which API?\nmore");
        let mut reported = facts(exited(0, &[]));
        reported.submission = submitted(SubmitStatus::Failed, "");
        let mut done_nothing = facts(exited(0, &[]));
        done_nothing.submission = submitted(SubmitStatus::Done, "already fine");
        let mut verify_interrupted = facts(exited(0, &[]));
        verify_interrupted.verify_ended = Some(Ended::Interrupted);
        let setup = RunFacts {
            setup_error: Some("cannot prepare the worktree".into()),
            ..RunFacts::default()
        };
        let early = RunFacts {
            interrupted_early: true,
            ..RunFacts::default()
        };
        let cases: Vec<(&str, RunFacts, Outcome, Next, bool, &str)> = vec![
            (
                "success",
                with_commit,
                Outcome::Success,
                Next::Done,
                true,
                "1 commit on the ticket branch",
            ),
            (
                "no changes",
                facts(exited(0, &[])),
                Outcome::NoChanges,
                Next::Retry,
                true,
                "the agent exited 0 without changing anything",
            ),
            (
                "exit 3",
                facts(exited(3, &[])),
                Outcome::Failed,
                Next::Retry,
                true,
                "exit status 3",
            ),
            (
                "verify",
                verify_failed,
                Outcome::VerifyFailed,
                Next::Retry,
                true,
                "verify `false` failed (exit status 1)",
            ),
            (
                "asked",
                asked,
                Outcome::Blocked,
                Next::Block,
                true,
                "the agent asked for a person: which API?",
            ),
            (
                "reported",
                reported,
                Outcome::Failed,
                Next::Retry,
                true,
                "the agent reported failure (exit status 0)",
            ),
            (
                "done, nothing",
                done_nothing,
                Outcome::Success,
                Next::Done,
                true,
                "the agent reported done with no changes needed: already fine",
            ),
            (
                "timeout",
                facts(Report::for_tests(Ended::Timeout, None, &[])),
                Outcome::Timeout,
                Next::Retry,
                true,
                "still running after the hard timeout of 1h",
            ),
            (
                "stalled",
                facts(Report::for_tests(Ended::Stalled, None, &[])),
                Outcome::Stalled,
                Next::Retry,
                true,
                "no output for 10m",
            ),
            (
                "aborted",
                facts(Report::for_tests(Ended::Aborted, None, &[])),
                Outcome::Aborted,
                Next::Block,
                true,
                "stopped by `orch abort`",
            ),
            (
                "signal",
                facts(Report::for_tests(Ended::Interrupted, None, &[])),
                Outcome::Interrupted,
                Next::Todo,
                false,
                "orch was stopped by a signal",
            ),
            (
                "verify signal",
                verify_interrupted,
                Outcome::Interrupted,
                Next::Todo,
                false,
                "orch was stopped by a signal",
            ),
            (
                "spawn",
                facts(Report::for_tests(Ended::SpawnFailed, None, &[])),
                Outcome::Failed,
                Next::Retry,
                false,
                "",
            ),
            (
                "setup",
                setup,
                Outcome::Failed,
                Next::Retry,
                false,
                "cannot prepare the worktree",
            ),
            (
                "early",
                early,
                Outcome::Interrupted,
                Next::Todo,
                false,
                "orch was stopped before the agent started",
            ),
        ];
        for (name, f, outcome, next, counts, reason) in cases {
            let got = classify(&f, &s);
            assert_eq!(got.outcome, outcome, "{name}");
            assert_eq!(got.next(), next, "{name}");
            assert_eq!(got.counts, counts, "{name}");
            if !reason.is_empty() {
                assert_eq!(got.reason, reason, "{name}");
            }
        }
    }

    #[test]
    fn orch_failures_spend_no_attempt_until_the_third_in_a_row() {
        let s = settings();
        let mut f = RunFacts {
            setup_error: Some("cannot prepare the worktree: disk full".into()),
            ..RunFacts::default()
        };
        assert!(!classify(&f, &s).counts);
        f.orch_failures_in_a_row = ORCH_FAILURES_COUNTED_AFTER - 1;
        assert!(classify(&f, &s).counts);
        let mut spawn = facts(Report::for_tests(Ended::SpawnFailed, None, &[]));
        assert!(!classify(&spawn, &s).counts);
        spawn.orch_failures_in_a_row = ORCH_FAILURES_COUNTED_AFTER - 1;
        assert!(classify(&spawn, &s).counts);
    }

    #[test]
    fn an_outage_spends_no_attempt_unless_the_agent_worked_meanwhile() {
        let s = settings();
        let tail = ["ERROR: Reconnecting... waiting for network"];
        let mut f = facts(exited(1, &tail));
        let got = classify(&f, &s);
        assert_eq!(got.outcome, Outcome::AgentUnavailable);
        assert!(!got.counts);
        assert_eq!(got.extra_files.len(), 1);
        assert!(got.extra_files[0].path.starts_with("cooldown/"));
        // A long outage: the third in a row still costs nothing.
        f.unavailable_in_a_row = 2;
        f.unavailable_since = Some("2026-01-01T00:00:00Z".into());
        let pause = crate::agent::unavailable::Cooldown {
            agent: "codex".into(),
            until: "2026-01-01T01:00:00Z".into(),
            reason: "outage".into(),
            at: Some("2026-01-01T00:00:00Z".into()),
            recovered: None,
        };
        f.last_cooldown = Some(pause.clone());
        assert!(!classify(&f, &s).counts);
        // The agent finished another ticket since: this ticket's own output
        // only looks like an outage, and the third counts.
        f.last_cooldown = Some(crate::agent::unavailable::Cooldown {
            recovered: Some("2026-01-01T00:30:00Z".into()),
            ..pause.clone()
        });
        assert!(classify(&f, &s).counts);
        // A success that mentions an outage stays a success, and records
        // that the agent works again, once.
        let mut ok = facts(exited(0, &tail));
        ok.commits = vec![commit()];
        ok.last_cooldown = Some(pause);
        let got = classify(&ok, &s);
        assert_eq!(got.outcome, Outcome::Success);
        assert_eq!(got.extra_files.len(), 1);
        ok.last_cooldown = f.last_cooldown.clone();
        assert!(classify(&ok, &s).extra_files.is_empty());
    }
}
