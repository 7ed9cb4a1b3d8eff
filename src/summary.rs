//! `runs/<id>/<attempt>.md`: a bounded, readable record of one attempt,
//! committed on the plan branch. The full output stays in the local log.
//!
//! People `cat` these files: what comes from the agent or the ticket has its
//! control characters shown escaped ([`crate::text::visible`]), in the
//! fields and in the tail of output alike.

use crate::git::CommitInfo;
use crate::text::{visible, visible_line};

#[derive(Debug, Clone, Default)]
pub struct AttemptSummary {
    pub id: String,
    pub attempt: u32,
    pub outcome: String,
    pub reason: String,
    pub agent: String,
    pub host: String,
    pub started: String,
    pub finished: String,
    pub duration: String,
    pub exit: String,
    pub branch: String,
    pub tip: Option<String>,
    pub commits: Vec<CommitInfo>,
    pub verify: Vec<(String, String)>,
    pub agent_message: Option<String>,
    pub notes: Vec<String>,
    /// What the agent's events say it did (presets with structured output).
    pub activity: crate::agent::events::Activity,
    pub log: String,
    pub tail: Vec<String>,
}

/// Bound on the summary's tail, so a summary stays small in git.
const TAIL_BYTES: usize = 8 * 1024;

/// Bound on one `- key: value` field (the reason quotes the agent's
/// message): a field is one line for a person reading the board.
const FIELD_BYTES: usize = 4 * 1024;

/// Bound on a whole summary. Every summary is committed to orch/plan and
/// kept forever, so one attempt must not be able to grow the branch (or a
/// tick's memory) without limit; what is cut stays in the local log.
pub const MAX_SUMMARY_BYTES: usize = 256 * 1024;

impl AttemptSummary {
    // Long but flat: one block per section of the summary, in the order a
    // reader meets them; splitting it would scatter the format.
    pub fn render(&self) -> String {
        let mut s = format!("# {} attempt {}\n\n", self.id, self.attempt);
        let mut field = |k: &str, v: &str| {
            if !v.is_empty() {
                let v = crate::safe_read::cut(v, FIELD_BYTES, 0);
                s.push_str(&format!("- {k}: {}\n", visible_line(&v)));
            }
        };
        field("outcome", &self.outcome);
        field("reason", &self.reason);
        field("agent", &self.agent);
        field("host", &self.host);
        field("started", &self.started);
        field("finished", &self.finished);
        field("duration", &self.duration);
        field("exit", &self.exit);
        let branch = match &self.tip {
            Some(tip) => format!("{} at {}", self.branch, &tip[..tip.len().min(12)]),
            None => self.branch.clone(),
        };
        field("branch", &branch);
        field("log", &self.log);
        if let Some(m) = &self.agent_message {
            s.push_str(&format!("- agent says: {}\n", one_line(m)));
        }
        if !self.commits.is_empty() {
            s.push_str("\n## Commits\n\n");
            for c in self.commits.iter().take(50) {
                s.push_str(&format!(
                    "- {} {}\n",
                    &c.id[..c.id.len().min(12)],
                    one_line(&c.summary)
                ));
            }
            if self.commits.len() > 50 {
                s.push_str(&format!("- and {} more\n", self.commits.len() - 50));
            }
        }
        let a = &self.activity;
        if !a.is_empty() {
            s.push_str("\n## What the agent did\n\n");
            if !a.commands.is_empty() {
                s.push_str(&format!("- commands run: {}\n", a.commands.len()));
                for c in a.commands.iter().take(20) {
                    s.push_str(&format!("  - `{}`\n", one_line(c).replace('`', "'")));
                }
                if a.commands.len() > 20 {
                    s.push_str(&format!("  - and {} more\n", a.commands.len() - 20));
                }
            }
            if !a.files.is_empty() {
                let files: Vec<&str> = a.files.iter().take(50).map(String::as_str).collect();
                s.push_str(&format!("- files changed: {}\n", files.join(", ")));
            }
            if a.input_tokens + a.output_tokens > 0 {
                s.push_str(&format!(
                    "- tokens: {} in, {} out\n",
                    a.input_tokens, a.output_tokens
                ));
            }
            if let Some(m) = &a.last_message {
                s.push_str(&format!("- last message: {}\n", one_line(m)));
            }
            for e in a.errors.iter().take(5) {
                s.push_str(&format!("- error: {}\n", one_line(e)));
            }
        }
        if !self.verify.is_empty() {
            s.push_str("\n## Verify\n\n");
            for (cmd, result) in &self.verify {
                s.push_str(&format!("- `{}`: {result}\n", one_line(cmd)));
            }
        }
        if !self.notes.is_empty() {
            s.push_str("\n## Notes\n\n");
            for n in &self.notes {
                s.push_str(&format!("- {}\n", one_line(n)));
            }
        }
        if !self.tail.is_empty() {
            let mut tail: Vec<std::borrow::Cow<'_, str>> = Vec::new();
            let mut bytes = 0;
            for l in self.tail.iter().rev() {
                let l = visible(l);
                bytes += l.len() + 1;
                if bytes > TAIL_BYTES {
                    break;
                }
                tail.push(l);
            }
            tail.reverse();
            let longest_ticks = tail.iter().map(|l| longest_run(l, '`')).max().unwrap_or(0);
            let fence = "`".repeat((longest_ticks + 1).max(3));
            s.push_str(&format!("\n## Last lines of output\n\n{fence}text\n"));
            for l in &tail {
                s.push_str(l);
                s.push('\n');
            }
            s.push_str(&fence);
            s.push('\n');
        }
        if s.len() > MAX_SUMMARY_BYTES {
            s = crate::safe_read::cut(&s, MAX_SUMMARY_BYTES, 0);
            s.push('\n');
        }
        s
    }
}

/// The first line of `s`, bounded, trimmed and made visible.
fn one_line(s: &str) -> String {
    visible_line(crate::text::one_line(s, 300).trim()).into_owned()
}

fn longest_run(s: &str, c: char) -> usize {
    let mut best = 0;
    let mut cur = 0;
    for ch in s.chars() {
        if ch == c {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best
}

/// The tail of an earlier summary, for the retry prompt when the local log
/// is gone (another host ran the attempt).
pub fn tail_of(summary: &str) -> Vec<String> {
    let Some(i) = summary.find("## Last lines of output") else {
        return Vec::new();
    };
    let mut lines = summary[i..].lines().skip(2);
    let Some(fence) = lines.next().map(|l| l.trim_end_matches("text").to_string()) else {
        return Vec::new();
    };
    lines
        .take_while(|l| *l != fence)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_survives_backticks_and_round_trips() {
        let s = AttemptSummary {
            id: "x".into(),
            attempt: 1,
            outcome: "failed".into(),
            tail: vec!["```".into(), "last".into()],
            ..Default::default()
        };
        let text = s.render();
        assert!(text.contains("````text\n```\nlast\n````\n"), "{text}");
        assert_eq!(tail_of(&text), ["```", "last"]);
    }

    #[test]
    fn a_summary_is_bounded_and_says_what_was_cut() {
        let s = AttemptSummary {
            id: "x".into(),
            reason: "r".repeat(100_000),
            notes: vec!["n".repeat(300); 2000],
            ..Default::default()
        };
        let text = s.render();
        assert!(text.len() <= MAX_SUMMARY_BYTES + 100, "{}", text.len());
        assert!(text.contains("- reason: rrrr"), "{}", &text[..200]);
        assert!(text.contains("… [cut: 95.9 kB more]"));
        assert!(text.trim_end().ends_with(" more]"));
    }
}
