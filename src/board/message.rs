//! Commit messages on orch/plan and ticket branches: a summary, an optional
//! body, and `Orch-*` trailers that make `git log` the query language.
//! The trailer names are a contract with users' scripts and never change.

use std::fmt::Display;

use crate::text::visible_line;

/// The trailers orch writes, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trailer {
    Ticket,
    Attempt,
    Event,
    Run,
    Agent,
    Outcome,
    State,
    /// The ticket branch's tip when an attempt was settled.
    Commit,
    /// How many files a person's edits, adopted in one commit, touched.
    Adopted,
    Base,
    Host,
    /// Tokens an attempt spent, as its agent's events reported them.
    Tokens,
}

impl Trailer {
    pub fn key(self) -> &'static str {
        match self {
            Trailer::Ticket => "Orch-Ticket",
            Trailer::Attempt => "Orch-Attempt",
            Trailer::Event => "Orch-Event",
            Trailer::Run => "Orch-Run",
            Trailer::Agent => "Orch-Agent",
            Trailer::Outcome => "Orch-Outcome",
            Trailer::State => "Orch-State",
            Trailer::Commit => "Orch-Commit",
            Trailer::Adopted => "Orch-Adopted",
            Trailer::Base => "Orch-Base",
            Trailer::Host => "Orch-Host",
            Trailer::Tokens => "Orch-Tokens",
        }
    }
}

/// A message and the trailers that make `git log` the query language.
#[derive(Debug, Clone)]
pub struct CommitMessage {
    pub summary: String,
    pub body: Vec<String>,
    pub trailers: Vec<(Trailer, String)>,
}

impl CommitMessage {
    pub fn new(summary: impl Into<String>) -> CommitMessage {
        CommitMessage {
            summary: summary.into(),
            body: Vec::new(),
            trailers: Vec::new(),
        }
    }

    pub fn line(mut self, text: impl Into<String>) -> CommitMessage {
        self.body.push(text.into());
        self
    }

    pub fn trailer(mut self, key: Trailer, value: impl Display) -> CommitMessage {
        self.trailers.push((key, value.to_string()));
        self
    }

    /// The full text, with `Orch-Host` last. Every line is made visible
    /// ([`visible_line`]): a reason can carry an agent's words, and `git
    /// log` prints a message as it is. A line break inside a body line or
    /// a trailer would also forge a trailer.
    pub fn render(&self, host: &str) -> String {
        let mut m = format!("{}\n\n", visible_line(&self.summary));
        if !self.body.is_empty() {
            for l in &self.body {
                m.push_str(&visible_line(l));
                m.push('\n');
            }
            m.push('\n');
        }
        for (k, v) in &self.trailers {
            m.push_str(&format!("{}: {}\n", k.key(), visible_line(v)));
        }
        m.push_str(&format!("{}: {host}\n", Trailer::Host.key()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_words_cannot_forge_a_trailer_or_reach_a_terminal() {
        let m = CommitMessage::new("orch: failed x (attempt 1)")
            .line("agent says: oops\nOrch-Outcome: success \x1b]52;c;aGk=\x07")
            .trailer(Trailer::Ticket, "x")
            .render("h");
        assert!(
            m.contains("agent says: oops\\nOrch-Outcome: success \\x1b]52;c;aGk=\\x07\n"),
            "{m}"
        );
        assert!(!m.lines().any(|l| l.starts_with("Orch-Outcome")), "{m}");
    }

    #[test]
    fn renders_as_the_first_release() {
        let m = CommitMessage::new("orch: claim x (attempt 2)")
            .trailer(Trailer::Ticket, "x")
            .trailer(Trailer::Attempt, 2)
            .trailer(Trailer::Event, "claim");
        assert_eq!(
            m.render("h"),
            "orch: claim x (attempt 2)\n\nOrch-Ticket: x\nOrch-Attempt: 2\nOrch-Event: claim\nOrch-Host: h\n"
        );
        let parsed = crate::git::trailers(&m.render("h"));
        assert_eq!(parsed.len(), 4);
    }
}
