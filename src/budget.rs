//! Token budgets (`budget:` in orch.yaml): per attempt, per ticket and per
//! day. Tokens are what the agent's events report, input plus output.
//!
//! A ticket's spend is derived from its log (each result line carries the
//! attempt's `tokens=`), over the same set of attempts `max_attempts`
//! counts, so `orch retry` gives it a fresh budget too. The day's spend is
//! one small file on the plan branch, `budget/spent`, added to by every
//! settle commit: every host sees it, and a tick with nothing to do reads
//! one file. Days are UTC days, the same on every host.

use std::path::Path;

/// The limits, each optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub tokens_per_attempt: Option<u64>,
    pub tokens_per_ticket: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// Which budget an attempt was stopped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Attempt,
    Ticket,
    Day,
}

/// What one attempt may spend before it is stopped, and by which budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub kind: Kind,
    /// Tokens this attempt may spend; one more stops it.
    pub tokens: u64,
    /// The budget in words, for the reason of an `over-budget` result.
    pub text: String,
}

impl Budget {
    pub fn is_set(&self) -> bool {
        *self != Budget::default()
    }

    /// The tightest of the three for an attempt that starts with the
    /// ticket at `ticket_spent` and the day at `day_spent`.
    pub fn attempt_limit(&self, ticket_spent: u64, day_spent: u64) -> Option<Limit> {
        let mut limits = Vec::new();
        if let Some(b) = self.tokens_per_attempt {
            limits.push(Limit {
                kind: Kind::Attempt,
                tokens: b,
                text: format!("tokens_per_attempt {b}"),
            });
        }
        if let Some(b) = self.tokens_per_ticket {
            limits.push(Limit {
                kind: Kind::Ticket,
                tokens: b.saturating_sub(ticket_spent),
                text: format!("tokens_per_ticket {b}, {ticket_spent} spent by earlier attempts"),
            });
        }
        if let Some(b) = self.tokens_per_day {
            limits.push(Limit {
                kind: Kind::Day,
                tokens: b.saturating_sub(day_spent),
                text: format!("tokens_per_day {b}, {day_spent} spent today before it started"),
            });
        }
        limits.into_iter().min_by_key(|l| l.tokens)
    }

    /// Why the ticket may not spend more, once its attempts together
    /// spent `spent`.
    pub fn ticket_spent(&self, spent: u64) -> Option<String> {
        let b = self.tokens_per_ticket?;
        (spent >= b).then(|| format!("token budget spent ({spent} of tokens_per_ticket {b})"))
    }

    /// The day's budget, when today's spend reached it.
    pub fn day_spent(&self, day: &DaySpend) -> Option<DayOver> {
        let limit = self.tokens_per_day?;
        (day.day == today() && day.tokens >= limit).then(|| DayOver {
            spent: day.tokens,
            limit,
            resume: next_day(),
        })
    }
}

/// The daily budget is spent: claims pause until `resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayOver {
    pub spent: u64,
    pub limit: u64,
    pub resume: String,
}

impl std::fmt::Display for DayOver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "daily budget spent: {} of {} tokens; claims resume at {}",
            self.spent, self.limit, self.resume
        )
    }
}

/// The tokens spent on one UTC day, as `budget/spent` holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaySpend {
    pub day: String,
    pub tokens: u64,
}

/// orch's budget records on the plan branch, relative to the plan.
pub const DIR: &str = "budget/";

/// The day's file on the plan branch, relative to the plan.
pub const DAY_FILE: &str = "budget/spent";

/// Today, as a UTC date (`2026-11-22`).
pub fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// The start of the next UTC day.
pub fn next_day() -> String {
    let now = jiff::Timestamp::now().as_second();
    let next = (now.div_euclid(86_400) + 1) * 86_400;
    jiff::Timestamp::from_second(next)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The spend `budget/spent` records for today; nothing for another day, or
/// a file that is missing or unreadable (a person may delete it to resume
/// claims at once).
pub fn read_day(plan: &Path) -> DaySpend {
    let today = today();
    let Ok(Some(bytes)) = crate::safe_read::regular_file(&plan.join(DAY_FILE), 4096) else {
        return DaySpend {
            day: today,
            tokens: 0,
        };
    };
    let parsed = parse_day(&String::from_utf8_lossy(&bytes));
    if parsed.day == today {
        parsed
    } else {
        DaySpend {
            day: today,
            tokens: 0,
        }
    }
}

fn parse_day(text: &str) -> DaySpend {
    let mut d = DaySpend::default();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("day:") {
            d.day = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("tokens:") {
            d.tokens = v.trim().parse().unwrap_or(0);
        }
    }
    d
}

/// The file's new content once `tokens` more were spent today.
pub fn add_to_day(plan: &Path, tokens: u64) -> String {
    let d = read_day(plan);
    render_day(&DaySpend {
        tokens: d.tokens.saturating_add(tokens),
        ..d
    })
}

fn render_day(d: &DaySpend) -> String {
    format!(
        "# Tokens spent by agents on this UTC day, added to by orch as it records\n# each attempt. Delete the file to resume claims paused by tokens_per_day.\nday: {}\ntokens: {}\n",
        d.day, d.tokens
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_wins_and_names_its_budget() {
        let b = Budget {
            tokens_per_attempt: Some(1000),
            tokens_per_ticket: Some(1500),
            tokens_per_day: None,
        };
        assert_eq!(b.attempt_limit(0, 0).map(|l| l.kind), Some(Kind::Attempt));
        let l = b.attempt_limit(800, 0).expect("a limit");
        assert_eq!((l.kind, l.tokens), (Kind::Ticket, 700));
        assert!(l.text.contains("tokens_per_ticket 1500"), "{}", l.text);
        assert_eq!(Budget::default().attempt_limit(5, 5), None);
        assert_eq!(b.ticket_spent(1499), None);
        assert!(b.ticket_spent(1500).is_some());
    }

    #[test]
    fn the_day_file_round_trips_and_other_days_are_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_day(dir.path()).tokens, 0);
        std::fs::create_dir_all(dir.path().join("budget")).expect("mkdir");
        std::fs::write(dir.path().join(DAY_FILE), add_to_day(dir.path(), 40)).expect("write");
        std::fs::write(dir.path().join(DAY_FILE), add_to_day(dir.path(), 2)).expect("write");
        assert_eq!(read_day(dir.path()).tokens, 42);
        std::fs::write(dir.path().join(DAY_FILE), "day: 2001-01-01\ntokens: 99\n").expect("write");
        assert_eq!(read_day(dir.path()).tokens, 0);
        let over = Budget {
            tokens_per_day: Some(42),
            ..Budget::default()
        };
        let day = DaySpend {
            day: today(),
            tokens: 42,
        };
        assert!(over.day_spent(&day).is_some());
        assert!(next_day() > jiff::Timestamp::now().to_string());
    }
}
