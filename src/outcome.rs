//! The vocabulary of results: what became of an attempt ([`Outcome`]), where
//! the ticket goes next ([`Next`]), and the one value a tick records
//! ([`Settlement`]).
//!
//! Outcomes are written to ticket logs and `Orch-Outcome` trailers by their
//! [`Outcome::as_str`] names, which never change. Adding an outcome here
//! makes the compiler name every `match` that must decide about it.

use std::fmt;
use std::str::FromStr;

use crate::ticket::State;

/// Declares [`Outcome`], its wire names and [`Outcome::ALL`] from one list,
/// so a new outcome cannot be left out of any of them.
macro_rules! outcomes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)+) => {
        /// What became of one attempt, or of a ticket's claim.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Outcome {
            $($(#[$doc])* $variant,)+
        }

        impl Outcome {
            pub const ALL: &[Outcome] = &[$(Outcome::$variant,)+];

            /// The name in ticket logs, summaries and trailers.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Outcome::$variant => $name,)+
                }
            }
        }
    };
}

outcomes! {
    /// The agent finished, with changes that passed `verify` (or reported
    /// done with nothing to change).
    Success => "success",
    /// The agent exited non-zero, reported failure, or could not start.
    Failed => "failed",
    /// Still running at the hard timeout.
    Timeout => "timeout",
    /// No output (or no progress) for the stall limit.
    Stalled => "stalled",
    /// Exit 0 without a change.
    NoChanges => "no-changes",
    /// A `verify` command failed on the agent's work.
    VerifyFailed => "verify-failed",
    /// The agent asked for a person (`orch submit blocked`).
    Blocked => "blocked",
    /// A person stopped it with `orch abort`.
    Aborted => "aborted",
    /// orch was stopped by a signal; the ticket goes back to todo.
    Interrupted => "interrupted",
    /// Its supervising orch died, or another host's lease expired.
    Abandoned => "abandoned",
    /// The agent could not reach or use its model: says nothing about the ticket.
    AgentUnavailable => "agent-unavailable",
    /// A result whose claim was no longer the run's when it finished.
    Stale => "stale",
    /// In progress without a claim by orch; returned to todo.
    Released => "released",
    /// Stopped when its tokens passed a budget (`budget:` in orch.yaml).
    OverBudget => "over-budget",
    /// The ticket's branch reached the target branch (or its `land`
    /// command succeeded).
    Landed => "landed",
    /// Merging the branch onto the target conflicted; handed back to an
    /// agent with the paths.
    Conflict => "conflict",
    /// The checks failed on the branch merged onto the target; handed back
    /// with their output, the target untouched.
    LandFailed => "land-failed",
}

impl Outcome {
    /// Whether the attempt uses up one of the ticket's attempts. Those that
    /// do not: the agent was never given a fair run.
    pub fn counts_as_attempt(self) -> bool {
        match self {
            Outcome::Interrupted | Outcome::Stale | Outcome::AgentUnavailable => false,
            Outcome::Released => false,
            // Landing results are about the merge, not a new attempt; how
            // a hand-back gives its attempt back is `Ticket::attempts_used`.
            Outcome::Landed | Outcome::Conflict | Outcome::LandFailed => false,
            Outcome::Success
            | Outcome::Failed
            | Outcome::Timeout
            | Outcome::Stalled
            | Outcome::NoChanges
            | Outcome::VerifyFailed
            | Outcome::Blocked
            | Outcome::Aborted
            | Outcome::Abandoned
            | Outcome::OverBudget => true,
        }
    }

    /// Whether landing handed the ticket back to an agent.
    pub fn is_hand_back(self) -> bool {
        matches!(self, Outcome::Conflict | Outcome::LandFailed)
    }

    /// Whether an agent's outage could explain this outcome, so its output
    /// is worth checking for one.
    pub fn may_be_outage(self) -> bool {
        matches!(
            self,
            Outcome::Failed | Outcome::Timeout | Outcome::Stalled | Outcome::NoChanges
        )
    }

    /// Where a ticket with this outcome goes.
    pub fn next(self) -> Next {
        match self {
            Outcome::Success | Outcome::Landed => Next::Done,
            Outcome::Conflict | Outcome::LandFailed => Next::Todo,
            Outcome::Blocked | Outcome::Aborted => Next::Block,
            Outcome::Interrupted | Outcome::Released => Next::Todo,
            Outcome::Failed
            | Outcome::Timeout
            | Outcome::Stalled
            | Outcome::NoChanges
            | Outcome::VerifyFailed
            | Outcome::Abandoned
            | Outcome::AgentUnavailable
            | Outcome::Stale
            | Outcome::OverBudget => Next::Retry,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an outcome of this version of orch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an outcome")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Outcome, UnknownOutcome> {
        Outcome::ALL
            .iter()
            .copied()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_string()))
    }
}

// By name, as in ticket logs (the board cache stores parsed logs).
impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Outcome {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Outcome, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a ticket goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Back to todo whatever the attempts used (nothing was tried).
    Todo,
    /// Back to todo while attempts remain, else blocked.
    Retry,
    Block,
}

/// The outcome of one attempt, decided and ready to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub outcome: Outcome,
    pub reason: String,
    /// Whether this attempt uses up one of the ticket's attempts; the
    /// outcome's default unless the run says otherwise.
    pub counts: bool,
    /// Further plan files written in the same commit.
    pub extra_files: Vec<PlanFile>,
    /// Tokens the attempt spent, as its agent's events report them.
    pub tokens: u64,
    /// Set when the ticket's attempts together spent its token budget:
    /// why. Instead of another try, the ticket goes to blocked.
    pub budget_spent: Option<String>,
}

/// A file on the plan branch that a settlement writes beside the ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFile {
    /// Relative to the plan worktree.
    pub path: String,
    pub content: String,
}

/// Where a settled ticket ends, and why, once its attempts are counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub state: State,
    pub reason: String,
}

impl Settlement {
    pub fn new(outcome: Outcome, reason: impl Into<String>) -> Settlement {
        Settlement {
            outcome,
            reason: reason.into(),
            counts: outcome.counts_as_attempt(),
            extra_files: Vec::new(),
            tokens: 0,
            budget_spent: None,
        }
    }

    /// The same settlement, using up an attempt or not, whatever its outcome says.
    pub fn counting(mut self, counts: bool) -> Settlement {
        self.counts = counts;
        self
    }

    pub fn with_file(mut self, path: String, content: String) -> Settlement {
        self.extra_files.push(PlanFile { path, content });
        self
    }

    pub fn next(&self) -> Next {
        self.outcome.next()
    }

    /// Where the ticket goes with `used` attempts used (this one included)
    /// of `max`.
    pub fn destination(&self, used: u32, max: u32) -> Destination {
        let keep = |state| Destination {
            state,
            reason: self.reason.clone(),
        };
        match self.next() {
            Next::Done => keep(State::Done),
            Next::Todo => keep(State::Todo),
            Next::Block => keep(State::Blocked),
            // Another try would spend more than the ticket may.
            Next::Retry if let Some(why) = &self.budget_spent => Destination {
                state: State::Blocked,
                reason: format!("{why}; last: {}: {}", self.outcome, self.reason),
            },
            Next::Retry if used < max => keep(State::Todo),
            Next::Retry => Destination {
                state: State::Blocked,
                reason: format!(
                    "attempts used up ({used} of {max}); last: {}: {}",
                    self.outcome, self.reason
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_the_release_names() {
        let names: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            names,
            [
                "success",
                "failed",
                "timeout",
                "stalled",
                "no-changes",
                "verify-failed",
                "blocked",
                "aborted",
                "interrupted",
                "abandoned",
                "agent-unavailable",
                "stale",
                "released",
                "over-budget",
                "landed",
                "conflict",
                "land-failed"
            ]
        );
        for &o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("merged".parse::<Outcome>().is_err());
    }

    #[test]
    fn attempts_that_count() {
        let uncounted: Vec<Outcome> = Outcome::ALL
            .iter()
            .copied()
            .filter(|o| !o.counts_as_attempt())
            .collect();
        assert_eq!(
            uncounted,
            [
                Outcome::Interrupted,
                Outcome::AgentUnavailable,
                Outcome::Stale,
                Outcome::Released,
                Outcome::Landed,
                Outcome::Conflict,
                Outcome::LandFailed
            ]
        );
    }

    #[test]
    fn destinations() {
        let failed = Settlement::new(Outcome::Failed, "exit 1");
        assert_eq!(failed.destination(1, 3).state, State::Todo);
        let last = failed.destination(3, 3);
        assert_eq!(last.state, State::Blocked);
        assert_eq!(
            last.reason,
            "attempts used up (3 of 3); last: failed: exit 1"
        );
        let interrupted = Settlement::new(Outcome::Interrupted, "signal");
        assert_eq!(interrupted.destination(9, 3).state, State::Todo);
        assert_eq!(
            Settlement::new(Outcome::Success, "")
                .destination(9, 3)
                .state,
            State::Done
        );
        assert_eq!(
            Settlement::new(Outcome::Aborted, "")
                .destination(0, 3)
                .state,
            State::Blocked
        );
        assert!(!failed.clone().counting(false).counts);
        let spent = Settlement {
            budget_spent: Some("token budget spent (10 of tokens_per_ticket 10)".into()),
            ..Settlement::new(Outcome::OverBudget, "past tokens_per_attempt 5")
        };
        let d = spent.destination(1, 3);
        assert_eq!(d.state, State::Blocked);
        assert!(d.reason.starts_with("token budget spent"), "{}", d.reason);
    }
}
