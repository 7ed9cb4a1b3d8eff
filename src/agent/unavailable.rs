//! Recognising an agent that cannot reach its model or is not allowed to
//! use it. Such an attempt says nothing about the ticket: it is settled as
//! `agent-unavailable`, uses up no attempt, and pauses claims for that agent
//! for a cool-down, so a model outage does not burn every ticket's attempts.
//!
//! The patterns are the messages the real CLIs print (checked against the
//! versions in docs/AGENTS.md); they are matched only on the last lines of
//! an attempt that did not succeed.

use std::path::Path;

/// (what the line says, why the agent is unavailable)
const PATTERNS: &[(&str, &str)] = &[
    // codex
    (
        "reconnecting... waiting for network",
        "cannot reach its model",
    ),
    (
        "unexpected status 401 unauthorized",
        "was refused by its model (credentials)",
    ),
    ("missing environment variable: `", "has no credentials"),
    // claude
    (
        "api error: unable to connect to api",
        "cannot reach its model",
    ),
    (
        "failed to authenticate. api error",
        "was refused by its model (credentials)",
    ),
    ("not logged in · please run /login", "has no credentials"),
    // aider (litellm)
    (
        "litellm.authenticationerror",
        "was refused by its model (credentials)",
    ),
    ("litellm.internalservererror", "cannot reach its model"),
    ("litellm.apiconnectionerror", "cannot reach its model"),
    (
        "api provider is not able to authenticate",
        "was refused by its model (credentials)",
    ),
    // opencode
    ("error: cannot connect to api", "cannot reach its model"),
    // gemini
    ("fetch failed sending request", "cannot reach its model"),
];

/// After this many agent-unavailable results in a row, a ticket's attempt
/// counts after all: output that only looks like an outage (a test printing
/// a similar line) must not retry a ticket for ever.
pub const UNCOUNTED_IN_A_ROW: usize = 3;

/// Why the output says the agent could not use its model, with the line.
pub fn recognise(tail: &[String]) -> Option<String> {
    for line in tail.iter().rev() {
        let lower = line.to_lowercase();
        if let Some((_, why)) = PATTERNS.iter().find(|(p, _)| lower.contains(p)) {
            let mut shown: String = line.trim().chars().take(200).collect();
            if line.trim().chars().count() > 200 {
                shown.push('…');
            }
            return Some(format!("the agent {why} ({shown})"));
        }
    }
    None
}

/// A pause of one agent, as kept on the plan branch in `cooldown/<agent>.md`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cooldown {
    pub agent: String,
    pub until: String,
    pub reason: String,
}

/// The file name for an agent label: the label with anything but
/// `[A-Za-z0-9._-]` replaced, so it stays inside `cooldown/`.
pub fn rel_path(agent: &str) -> String {
    let safe: String = agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    format!(
        "cooldown/{}.md",
        if safe.is_empty() { "agent" } else { safe }
    )
}

pub fn render(c: &Cooldown) -> String {
    format!(
        "# Claims for agent `{}` are paused\n\n- until: {}\n- reason: {}\n\nDelete this file to resume claims at once.\n",
        c.agent, c.until, c.reason
    )
}

/// More than any pause file orch writes; a bigger one is not orch's.
const MAX_COOLDOWN_BYTES: u64 = 64 * 1024;

/// The pause for `agent` if one is in force now.
pub fn active(plan: &Path, agent: &str) -> Option<Cooldown> {
    // The plan is anyone's to write: a link or a fifo here is refused.
    let bytes = crate::safe_read::regular_file_in(
        plan,
        std::path::Path::new(&rel_path(agent)),
        MAX_COOLDOWN_BYTES,
    )
    .ok()??;
    let text = String::from_utf8_lossy(&bytes);
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("- {k}: ")))
            .map(str::to_string)
    };
    let until = field("until")?;
    let t: jiff::Timestamp = until.parse().ok()?;
    (t > jiff::Timestamp::now()).then(|| Cooldown {
        agent: agent.to_string(),
        until,
        reason: field("reason").unwrap_or_default(),
    })
}

/// Every pause in force, for `orch status`.
pub fn all_active(plan: &Path) -> Vec<Cooldown> {
    let Ok(dir) = std::fs::read_dir(plan.join("cooldown")) else {
        return Vec::new();
    };
    let mut out: Vec<Cooldown> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let agent = name.strip_suffix(".md")?.to_string();
            active(plan, &agent)
        })
        .collect();
    out.sort_by(|a, b| a.agent.cmp(&b.agent));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_real_messages() {
        let cases = [
            "{\"type\":\"error\",\"message\":\"Reconnecting... waiting for network (Connection failed: error sending request)\"}",
            "ERROR: unexpected status 401 Unauthorized: Incorrect API key provided: sk-x.",
            "API Error: Unable to connect to API (ConnectionRefused)",
            "{\"type\":\"turn.failed\",\"error\":{\"message\":\"Missing environment variable: `TEST_KEY`.\"}}",
            "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect",
            "Error: Cannot connect to API: Unable to connect. Is the computer able to access the url?",
            "Attempt 3 failed. Retrying with backoff... Error: exception TypeError: fetch failed sending request",
        ];
        for c in cases {
            assert!(recognise(&[c.to_string()]).is_some(), "{c}");
        }
        for generic in [
            "error: tests failed",
            "panic: missing environment variable DATABASE_URL",
            "reqwest::Error: error sending request for url",
            "You are not logged in to the registry",
        ] {
            assert!(recognise(&[generic.to_string()]).is_none(), "{generic}");
        }
    }

    #[test]
    fn cooldown_paths_stay_inside() {
        assert_eq!(rel_path("codex"), "cooldown/codex.md");
        assert_eq!(rel_path("../../x"), "cooldown/_.._x.md");
    }
}
