//! The machine-owned section at the end of a ticket: one line per event,
//! below [`LOG_MARKER`], parsed into typed [`Event`]s and written from them.
//!
//! The line format is the first release's and must read back unchanged:
//! `- <time> <event> key=value ...`, keys in alphabetical order, a value
//! quoted as a JSON string unless it is plain. A line this version does not
//! understand is kept as [`Event::Unknown`] and never rewritten.

use std::collections::BTreeMap;

use crate::outcome::Outcome;
use crate::ticket::State;

pub const LOG_MARKER: &str =
    "<!-- orch: the lines below are appended by orch; write above this line -->";

/// One event of a ticket's life, as orch recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    Claim(Claim),
    Result(AttemptResult),
    /// In progress without a claim; orch returned it to todo.
    Release {
        at: String,
        reason: String,
    },
    /// `orch abort` on a ticket that was not running.
    Abort {
        at: String,
        reason: String,
    },
    /// `orch retry`: a person sent the blocked ticket back to todo.
    Retry {
        at: String,
        by: String,
    },
    /// A line this version does not understand, kept as written.
    Unknown(RawLine),
}

/// An attempt taken: who runs it and until when the claim holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Claim {
    pub at: String,
    pub attempt: u32,
    pub host: Option<String>,
    pub pid: Option<u32>,
    /// The run id, also in the agent's environment as `ORCH_RUN_ID`.
    pub run: Option<String>,
    /// RFC 3339 time after which another host may settle the claim.
    pub lease: Option<String>,
}

/// How an attempt ended and where it sent the ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptResult {
    pub at: String,
    pub attempt: u32,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Whether the attempt was counted, written only where it differs from
    /// what the outcome says.
    pub counted: Option<bool>,
    pub to: Option<State>,
    /// Tokens the attempt spent, written only when its events reported any.
    #[serde(default)]
    pub tokens: Option<u64>,
}

impl AttemptResult {
    pub fn counts(&self) -> bool {
        self.counted
            .unwrap_or_else(|| self.outcome.counts_as_attempt())
    }
}

impl Claim {
    /// A new claim stamped now.
    pub fn new(attempt: u32, host: &str, run: &str, lease: String) -> Claim {
        Claim {
            at: now_rfc3339(),
            attempt,
            host: Some(host.to_string()),
            pid: Some(std::process::id()),
            run: Some(run.to_string()),
            lease: Some(lease),
        }
    }
}

impl Event {
    /// The attempt of a claim, typed or written by another version.
    pub fn claimed_attempt(&self) -> Option<u32> {
        match self {
            Event::Claim(c) => Some(c.attempt),
            Event::Unknown(raw) if raw.event == "claim" => raw.attempt(),
            _ => None,
        }
    }

    /// The attempt a result settles, typed or written by another version.
    pub fn settled_attempt(&self) -> Option<u32> {
        match self {
            Event::Result(r) => Some(r.attempt),
            Event::Unknown(raw) if raw.event == "result" => raw.attempt(),
            _ => None,
        }
    }

    /// Whether a result uses up an attempt. A result of an outcome this
    /// version does not know counts unless it says otherwise, as the first
    /// release counted it.
    /// Whether the ticket's set of attempts ends here: it went where only
    /// a person takes it out of (blocked, done), or was aborted.
    pub fn ends_a_set(&self) -> bool {
        match self {
            Event::Result(r) => matches!(r.to, Some(State::Blocked | State::Done)),
            Event::Abort { .. } => true,
            _ => false,
        }
    }

    pub fn counts_as_attempt(&self) -> bool {
        match self {
            Event::Result(r) => r.counts(),
            Event::Unknown(raw) if raw.event == "result" => raw.get("counted") != Some("no"),
            _ => false,
        }
    }

    pub fn release(reason: &str) -> Event {
        Event::Release {
            at: now_rfc3339(),
            reason: reason.to_string(),
        }
    }

    pub fn retry(by: &str) -> Event {
        Event::Retry {
            at: now_rfc3339(),
            by: by.to_string(),
        }
    }

    pub fn abort(reason: &str) -> Event {
        Event::Abort {
            at: now_rfc3339(),
            reason: reason.to_string(),
        }
    }

    /// A result stamped now; `counted` is written only where it differs
    /// from the outcome's rule.
    pub fn result(
        attempt: u32,
        outcome: Outcome,
        reason: String,
        counts: bool,
        to: State,
    ) -> Event {
        Event::Result(AttemptResult {
            at: now_rfc3339(),
            attempt,
            outcome,
            reason: Some(reason),
            counted: (counts != outcome.counts_as_attempt()).then_some(counts),
            to: Some(to),
            tokens: None,
        })
    }

    /// The same result, with the tokens its attempt spent (none written for 0).
    pub fn with_tokens(mut self, tokens: u64) -> Event {
        if let Event::Result(r) = &mut self {
            r.tokens = (tokens > 0).then_some(tokens);
        }
        self
    }

    /// Parse one line of the section; None for a line that is not an
    /// event line at all (blank, or written by a person below the marker).
    pub fn parse(line: &str) -> Option<Event> {
        let raw = RawLine::parse(line)?;
        Some(Event::from_raw(raw))
    }

    fn from_raw(raw: RawLine) -> Event {
        let typed = match raw.event.as_str() {
            "claim" => raw.claim().map(Event::Claim),
            "result" => raw.result().map(Event::Result),
            "release" if raw.only(&["reason"]) => Some(Event::Release {
                at: raw.at.clone(),
                reason: raw.get("reason").unwrap_or("").to_string(),
            }),
            "abort" if raw.only(&["reason"]) => Some(Event::Abort {
                at: raw.at.clone(),
                reason: raw.get("reason").unwrap_or("").to_string(),
            }),
            "retry" if raw.only(&["by"]) => Some(Event::Retry {
                at: raw.at.clone(),
                by: raw.get("by").unwrap_or("").to_string(),
            }),
            _ => None,
        };
        typed.unwrap_or(Event::Unknown(raw))
    }

    /// The line as it is written in the file. A line this version does
    /// not understand is given back exactly as it was read.
    pub fn render(&self) -> String {
        match self {
            Event::Unknown(raw) => raw.text.clone(),
            typed => typed.to_raw().render(),
        }
    }

    fn to_raw(&self) -> RawLine {
        match self {
            Event::Claim(c) => RawLine::new(&c.at, "claim")
                .with("attempt", Some(c.attempt.to_string()))
                .with("host", c.host.clone())
                .with("pid", c.pid.map(|p| p.to_string()))
                .with("run", c.run.clone())
                .with("lease", c.lease.clone()),
            Event::Result(r) => RawLine::new(&r.at, "result")
                .with("attempt", Some(r.attempt.to_string()))
                .with("outcome", Some(r.outcome.as_str().to_string()))
                .with("reason", r.reason.clone())
                .with(
                    "counted",
                    r.counted.map(|c| if c { "yes" } else { "no" }.to_string()),
                )
                .with("to", r.to.map(|s| s.dir().to_string()))
                .with("tokens", r.tokens.map(|n| n.to_string())),
            Event::Release { at, reason } => {
                RawLine::new(at, "release").with("reason", Some(reason.clone()))
            }
            Event::Abort { at, reason } => {
                RawLine::new(at, "abort").with("reason", Some(reason.clone()))
            }
            Event::Retry { at, by } => RawLine::new(at, "retry").with("by", Some(by.clone())),
            Event::Unknown(raw) => raw.clone(),
        }
    }
}

/// The entries of the machine-owned section of a ticket file's text.
pub fn entries(text: &str) -> Vec<Event> {
    match text.find(LOG_MARKER) {
        Some(i) => text[i + LOG_MARKER.len()..]
            .lines()
            .filter_map(Event::parse)
            .collect(),
        None => Vec::new(),
    }
}

/// `text` with `event` appended to its machine-owned section (which is
/// started when missing). What is there already is never rewritten.
pub fn append(text: &str, event: &Event) -> String {
    let mut out = text.to_string();
    if !out.contains(LOG_MARKER) {
        let trimmed = out.trim_end_matches('\n').len();
        out.truncate(trimmed);
        out.push_str("\n\n");
        out.push_str(LOG_MARKER);
        out.push('\n');
    } else if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&event.render());
    out.push('\n');
    out
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// One line as written: time, event name, fields. Only this module reads
/// or writes the line format.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawLine {
    pub at: String,
    pub event: String,
    pub fields: BTreeMap<String, String>,
    /// The line as read (empty for one made here).
    pub text: String,
}

impl RawLine {
    fn new(at: &str, event: &str) -> RawLine {
        RawLine {
            at: at.to_string(),
            event: event.to_string(),
            fields: BTreeMap::new(),
            text: String::new(),
        }
    }

    fn with(mut self, key: &str, value: Option<String>) -> RawLine {
        if let Some(v) = value {
            self.fields.insert(key.to_string(), v);
        }
        self
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The attempt a line this version does not fully understand is about.
    pub fn attempt(&self) -> Option<u32> {
        self.get("attempt")?.parse().ok()
    }

    /// Whether every field is one of `keys`: a line with more than a typed
    /// event holds stays [`Event::Unknown`], so writing it back loses nothing.
    fn only(&self, keys: &[&str]) -> bool {
        self.fields.keys().all(|k| keys.contains(&k.as_str()))
    }

    /// A number written the way orch writes numbers, so it renders back the same.
    fn number<T: std::str::FromStr + ToString>(&self, key: &str) -> Option<Option<T>> {
        match self.get(key) {
            None => Some(None),
            Some(v) => {
                let n: T = v.parse().ok()?;
                (n.to_string() == v).then_some(Some(n))
            }
        }
    }

    fn claim(&self) -> Option<Claim> {
        if !self.only(&["attempt", "host", "pid", "run", "lease"]) {
            return None;
        }
        Some(Claim {
            at: self.at.clone(),
            attempt: self.number("attempt")??,
            host: self.get("host").map(str::to_string),
            pid: self.number("pid")?,
            run: self.get("run").map(str::to_string),
            lease: self.get("lease").map(str::to_string),
        })
    }

    fn result(&self) -> Option<AttemptResult> {
        if !self.only(&["attempt", "outcome", "reason", "counted", "to", "tokens"]) {
            return None;
        }
        let counted = match self.get("counted") {
            None => None,
            Some("yes") => Some(true),
            Some("no") => Some(false),
            Some(_) => return None,
        };
        let to = match self.get("to") {
            None => None,
            Some(s) => Some(s.parse::<State>().ok()?),
        };
        Some(AttemptResult {
            at: self.at.clone(),
            attempt: self.number("attempt")??,
            outcome: self.get("outcome")?.parse().ok()?,
            reason: self.get("reason").map(str::to_string),
            counted,
            to,
            tokens: self.number("tokens")?,
        })
    }

    pub fn render(&self) -> String {
        let mut out = format!("- {} {}", self.at, self.event);
        for (k, v) in &self.fields {
            out.push(' ');
            out.push_str(k);
            out.push('=');
            if !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:/@+-".contains(c))
            {
                out.push_str(v);
            } else {
                out.push_str(&serde_json::Value::String(v.clone()).to_string());
            }
        }
        out
    }

    pub fn parse(line: &str) -> Option<RawLine> {
        let rest = line.strip_prefix("- ")?;
        let (at, rest) = rest.split_once(' ')?;
        let (event, mut rest) = match rest.split_once(' ') {
            Some((e, r)) => (e, r),
            None => (rest, ""),
        };
        let mut fields = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let (key, after) = rest.split_once('=')?;
            if let Some(quoted) = after.strip_prefix('"') {
                // Find the closing quote that is not escaped.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end?;
                let value: String = serde_json::from_str(&after[..end + 2]).ok()?;
                fields.insert(key.to_string(), value);
                rest = &quoted[end + 1..];
            } else {
                let (value, r) = after.split_once(' ').unwrap_or((after, ""));
                fields.insert(key.to_string(), value.to_string());
                rest = r;
            }
        }
        Some(RawLine {
            at: at.to_string(),
            event: event.to_string(),
            fields,
            text: line.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_events_render_as_the_first_release_wrote_them() {
        let lines = [
            "- 2026-01-01T00:00:00Z claim attempt=1 host=h lease=2026-01-01T02:10:00Z pid=42 run=42-17-1",
            "- 2026-01-01T00:01:00Z result attempt=1 outcome=failed reason=\"exit status 1\" to=todo",
            "- 2026-01-01T00:02:00Z result attempt=2 counted=no outcome=interrupted reason=\"orch was stopped by a signal\" to=todo",
            "- 2026-01-01T00:03:00Z release reason=\"in progress without a claim by orch; returned to todo\"",
            "- 2026-01-01T00:04:00Z abort reason=\"aborted by `orch abort` before it ran\"",
        ];
        for line in lines {
            let e = Event::parse(line).expect(line);
            assert!(!matches!(e, Event::Unknown(_)), "{line} parsed as unknown");
            assert_eq!(e.render(), line);
        }
    }

    #[test]
    fn lines_this_version_does_not_know_are_kept_as_written() {
        for line in [
            "- 2026-01-01T00:00:00Z land attempt=1 target=main",
            "- 2026-01-01T00:00:00Z claim attempt=01 host=h",
            "- 2026-01-01T00:00:00Z claim attempt=1 host=h shard=3",
            "- 2026-01-01T00:00:00Z result attempt=1 outcome=superseded to=todo",
            "- 2026-01-01T00:00:00Z result attempt=1 outcome=failed counted=maybe",
        ] {
            let e = Event::parse(line).expect(line);
            assert!(matches!(e, Event::Unknown(_)), "{line}: {e:?}");
            assert_eq!(e.render(), line);
        }
        assert_eq!(Event::parse("a person's note"), None);
    }

    #[test]
    fn quoted_values_round_trip() {
        let e = Event::result(
            3,
            Outcome::Blocked,
            "the agent asked: \"why?\" — café \\ done".into(),
            true,
            State::Blocked,
        );
        let line = e.render();
        assert_eq!(Event::parse(&line), Some(e));
    }

    #[test]
    fn tokens_are_written_when_spent_and_read_back() {
        let e =
            Event::result(2, Outcome::OverBudget, "x".into(), true, State::Todo).with_tokens(1234);
        let line = e.render();
        assert!(line.ends_with(" tokens=1234"), "{line}");
        assert_eq!(Event::parse(&line), Some(e));
        let none = Event::result(1, Outcome::Failed, "x".into(), true, State::Todo).with_tokens(0);
        assert!(!none.render().contains("tokens"));
    }

    #[test]
    fn counted_is_written_only_against_the_rule() {
        let plain = Event::result(1, Outcome::Failed, "x".into(), true, State::Todo);
        assert!(!plain.render().contains("counted"));
        let odd = Event::result(1, Outcome::Failed, "x".into(), false, State::Todo);
        assert!(odd.render().contains("counted=no"));
    }
}
