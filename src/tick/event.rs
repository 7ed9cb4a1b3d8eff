//! What a tick reports while it works, as typed events. The command picks
//! a renderer (live on a terminal, labelled lines for cron); `--json` or
//! `watch` can render the same events later.

use crate::agent::supervise::Control;
use crate::outcome::Outcome;
use crate::text::visible_line;
use crate::ticket::{Problem, State};

/// Why a ready ticket was not claimed this tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Its agent is paused after it could not reach its model.
    AgentPaused {
        agent: String,
        until: String,
        reason: String,
    },
    /// Its own agent's program cannot be found.
    AgentMissing(String),
    /// Another process holds its run lock.
    RunLockHeld,
    /// `--ticket` asked for it, but it cannot be claimed.
    NotClaimable(String),
}

/// For a person: a pause's reason comes from an agent's output, so its
/// control characters are shown escaped ([`crate::text::visible_line`]).
impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::AgentPaused {
                agent,
                until,
                reason,
            } => write!(
                f,
                "{}",
                visible_line(&format!(
                    "agent `{agent}` is paused until {until} ({reason})"
                ))
            ),
            SkipReason::AgentMissing(why) | SkipReason::NotClaimable(why) => {
                f.write_str(&visible_line(why))
            }
            SkipReason::RunLockHeld => f.write_str("its run lock is held by another process"),
        }
    }
}

/// One thing a tick did or found.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something the board transaction had to do (adopt edits, repair).
    Note(String),
    /// A warning about orch.yaml.
    ConfigWarning(String),
    /// An invalid ticket this tick skips.
    Invalid(Problem),
    /// A warning about one ticket (an unknown key), said once.
    Warning(Problem),
    /// A todo ticket that waits on one that needs a person, said once.
    Stuck {
        id: String,
        text: String,
    },
    /// Ready tickets left unclaimed for want of room.
    NoRoom {
        ready: usize,
        in_progress: u32,
        max_in_progress: u32,
    },
    NotClaimed {
        id: String,
        why: SkipReason,
    },
    Claimed {
        id: String,
        attempt: u32,
        title: String,
    },
    /// An in-progress ticket without a claim went back to todo.
    Released {
        id: String,
    },
    /// A run whose supervisor is gone was settled by this tick.
    Abandoned {
        id: String,
        attempt: u32,
        reason: String,
        to: State,
    },
    Settled {
        id: String,
        attempt: u32,
        outcome: Outcome,
        reason: String,
        to: State,
    },
    /// A result whose ticket a person deleted while it ran: only the
    /// attempt's summary is recorded.
    Deleted {
        id: String,
        attempt: u32,
        outcome: Outcome,
    },
    /// A result refused because its claim was superseded.
    Refused {
        id: String,
    },
    /// While the agent ran, paths changed outside its worktree.
    OutsideWrites {
        id: String,
        text: String,
    },
    /// A leftover of an earlier tick was cleaned up.
    Cleaned {
        id: String,
        text: String,
    },
    /// A ticket's work reached the target.
    Landed {
        id: String,
        text: String,
    },
    /// Landing sent a ticket back: a conflict, or checks that failed on
    /// the merged result.
    HandedBack {
        id: String,
        outcome: Outcome,
        reason: String,
        to: State,
    },
    /// Landing waits (a checkout in the way, a command that failed).
    LandWaits {
        id: Option<String>,
        text: String,
    },
    /// A `notify:` command failed or was stopped at its limit; the tick
    /// goes on.
    NotifyFailed {
        id: Option<String>,
        text: String,
    },
    /// A token budget is spent: the day's (`id` None; claims pause until
    /// the next UTC day) or a ticket's (it went to blocked). Said so that
    /// a notifier can hook it.
    BudgetSpent {
        id: Option<String>,
        text: String,
    },
    /// Something failed; about one ticket, or about the tick.
    Error {
        id: Option<String>,
        text: String,
    },
}

impl Event {
    pub fn error(id: &str, text: impl Into<String>) -> Event {
        Event::Error {
            id: Some(id.to_string()),
            text: text.into(),
        }
    }
}

/// Where a tick reports what it does.
pub trait Reporter: Send + Sync {
    fn report(&self, event: &Event);
    /// A ticket's agent started; `control.last_line` shows its output.
    fn started(&self, ticket: &str, control: &Control);
    fn stopped(&self, ticket: &str);
    /// The tick has read orch.yaml (a reporter that runs notifiers starts them).
    fn configured(&self, _layout: &crate::board::Layout, _config: &crate::config::Config) {}
}
