//! Recognising an agent that cannot reach its model or is not allowed to
//! use it. Such an attempt says nothing about the ticket: it is settled as
//! `agent-unavailable`, uses up no attempt, and pauses claims for that agent
//! for a cool-down, so a model outage does not burn every ticket's attempts.
//!
//! The patterns are the messages the real CLIs print: those for an
//! unreachable model or refused credentials were checked against the
//! versions in docs/AGENTS.md; those for rate limits, usage limits and
//! quotas are each CLI's wording as its source prints it (for claude, whose
//! source is not public, as its users reported it). They are matched only
//! on the last lines of an attempt that did not succeed, and an agent's
//! `unavailable_patterns` add to them. A bare `429` is not one: the work
//! itself (a rate limiter and its tests) prints it.

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
    ("you've hit your usage limit", USAGE_LIMIT),
    ("quota exceeded. check your plan and billing details", QUOTA),
    // The retries ran out on 429s; a 429 alone is retry chatter.
    ("exceeded retry limit, last status: 429", RATE_LIMIT),
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
    ("claude ai usage limit reached", USAGE_LIMIT),
    ("claude usage limit reached", USAGE_LIMIT),
    ("you've hit your limit", USAGE_LIMIT),
    ("api error: rate limit reached", RATE_LIMIT),
    ("api error: request rejected (429)", RATE_LIMIT),
    // Anthropic's error type, also in what opencode relays from it.
    ("rate_limit_error", RATE_LIMIT),
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
    ("litellm.ratelimiterror", RATE_LIMIT),
    ("the api provider has rate limited you", RATE_LIMIT),
    ("insufficient credits with the api provider", QUOTA),
    // opencode
    ("error: cannot connect to api", "cannot reach its model"),
    ("freeusagelimiterror", USAGE_LIMIT),
    ("free usage exceeded", USAGE_LIMIT),
    ("rate_limit_exceeded", RATE_LIMIT),
    // gemini
    ("fetch failed sending request", "cannot reach its model"),
    ("you exceeded your current quota", QUOTA),
    ("you have exhausted your daily quota", QUOTA),
    ("exhausted your capacity", USAGE_LIMIT),
    ("resource has been exhausted", QUOTA),
    ("resource_exhausted", QUOTA),
    ("request a quota increase", RATE_LIMIT),
];

const RATE_LIMIT: &str = "was rate-limited by its provider";
const USAGE_LIMIT: &str = "has reached its usage limit";
const QUOTA: &str = "has run out of quota";

/// After this many agent-unavailable results in a row, a ticket's attempt
/// counts after all, if the agent finished another ticket since the first
/// of them: output that only looks like an outage (a test printing a
/// similar line) must not retry a ticket for ever, and a real outage,
/// however long, must cost no attempt.
pub const UNCOUNTED_IN_A_ROW: usize = 3;

/// Why the output says the agent could not use its model, with the line.
/// `extra` are the agent's own `unavailable_patterns`, matched like the
/// built-in ones: anywhere in a line, ignoring case.
pub fn recognise(tail: &[String], extra: &[String]) -> Option<String> {
    let extra: Vec<String> = extra
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    for line in tail.iter().rev() {
        let lower = line.to_lowercase();
        let why = PATTERNS
            .iter()
            .find(|(p, _)| lower.contains(p))
            .map(|(_, why)| why.to_string())
            .or_else(|| {
                extra
                    .iter()
                    .find(|p| lower.contains(p.as_str()))
                    .map(|p| format!("matched `{p}` of its unavailable_patterns"))
            });
        if let Some(why) = why {
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
    /// When the outage that set this pause was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// When the agent last finished a ticket after an outage: proof that
    /// it reaches its model, which an outage never gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<String>,
}

impl Cooldown {
    /// Whether the agent finished a ticket after `since` (an RFC 3339
    /// time): then output that looks like an outage on another ticket is
    /// that ticket's own.
    pub fn recovered_after(&self, since: &str) -> bool {
        let parse = |t: &str| t.parse::<jiff::Timestamp>().ok();
        match (self.recovered.as_deref().and_then(parse), parse(since)) {
            (Some(r), Some(s)) => r > s,
            _ => false,
        }
    }

    /// Whether a finished ticket now would be news: no recovery recorded
    /// since the last outage.
    pub fn awaits_recovery(&self) -> bool {
        match (&self.recovered, &self.at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(_), Some(at)) => !self.recovered_after(at),
        }
    }
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
    let mut text = format!(
        "# Claims for agent `{}` are paused\n\n- until: {}\n- reason: {}\n",
        c.agent, c.until, c.reason
    );
    if let Some(at) = &c.at {
        text.push_str(&format!("- at: {at}\n"));
    }
    if let Some(r) = &c.recovered {
        text.push_str(&format!("- recovered: {r}\n"));
    }
    text.push_str("\nDelete this file to resume claims at once.\n");
    text
}

/// More than any pause file orch writes; a bigger one is not orch's.
const MAX_COOLDOWN_BYTES: u64 = 64 * 1024;

/// The pause for `agent` if one is in force now.
pub fn active(plan: &Path, agent: &str) -> Option<Cooldown> {
    let c = last(plan, agent)?;
    let t: jiff::Timestamp = c.until.parse().ok()?;
    (t > jiff::Timestamp::now()).then_some(c)
}

/// The text to write for an agent's pause file under the board lock:
/// `new`, keeping the latest recovery of what the file holds now. Two
/// attempts of one agent settle in turn, each from what it read before it
/// ran; a recovery one of them recorded must not be lost to the other.
pub fn merged(plan: &Path, rel: &str, new: &str) -> String {
    let Some(agent) = rel
        .strip_prefix("cooldown/")
        .and_then(|n| n.strip_suffix(".md"))
    else {
        return new.to_string();
    };
    let (Some(mut next), Some(now)) = (parse(agent, new), last_at(plan, rel, agent)) else {
        return new.to_string();
    };
    let later = match (&next.recovered, &now.recovered) {
        (_, None) => return new.to_string(),
        (None, Some(r)) => r.clone(),
        (Some(a), Some(b)) => {
            if now.recovered_after(a) {
                b.clone()
            } else {
                a.clone()
            }
        }
    };
    next.recovered = Some(later);
    render(&next)
}

fn last_at(plan: &Path, rel: &str, agent: &str) -> Option<Cooldown> {
    let bytes =
        crate::safe_read::regular_file_in(plan, Path::new(rel), MAX_COOLDOWN_BYTES).ok()??;
    parse(agent, &String::from_utf8_lossy(&bytes))
}

/// The agent's pause as last written, over or not.
pub fn last(plan: &Path, agent: &str) -> Option<Cooldown> {
    // The plan is anyone's to write: a link or a fifo here is refused.
    last_at(plan, &rel_path(agent), agent)
}

fn parse(agent: &str, text: &str) -> Option<Cooldown> {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("- {k}: ")))
            .map(str::to_string)
    };
    // The heading names the agent as configured; the file name may have
    // had characters replaced.
    let label = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# Claims for agent `"))
        .and_then(|l| l.strip_suffix("` are paused"))
        .unwrap_or(agent);
    Some(Cooldown {
        agent: label.to_string(),
        until: field("until")?,
        reason: field("reason").unwrap_or_default(),
        at: field("at"),
        recovered: field("recovered"),
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
            assert!(recognise(&[c.to_string()], &[]).is_some(), "{c}");
        }
        for generic in [
            "error: tests failed",
            "panic: missing environment variable DATABASE_URL",
            "reqwest::Error: error sending request for url",
            "You are not logged in to the registry",
        ] {
            assert!(
                recognise(&[generic.to_string()], &[]).is_none(),
                "{generic}"
            );
        }
    }

    /// Each CLI's own wording for a rate limit, a usage limit or a quota,
    /// as its source prints it (codex-rs `error.rs`, aider `exceptions.py`
    /// and litellm, gemini-cli `errorParsing.ts` and `googleQuotaErrors.ts`,
    /// opencode `session/retry.ts`) or as users of claude and opencode
    /// reported it from their terminals.
    #[test]
    fn recognises_rate_and_usage_limits() {
        let cases = [
            // codex exec --json
            (
                r#"{"type":"turn.failed","error":{"message":"You've hit your usage limit. Upgrade to Pro (https://openai.com/chatgpt/pricing), visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at 3:28 PM."}}"#,
                USAGE_LIMIT,
            ),
            (
                r#"{"type":"error","message":"Quota exceeded. Check your plan and billing details."}"#,
                QUOTA,
            ),
            (
                r#"{"type":"turn.failed","error":{"message":"exceeded retry limit, last status: 429 Too Many Requests, request id: req_1"}}"#,
                RATE_LIMIT,
            ),
            // claude --print
            ("Claude AI usage limit reached|1753441200", USAGE_LIMIT),
            (
                "Claude usage limit reached. Your limit will reset at 10am (America/Lima).",
                USAGE_LIMIT,
            ),
            (
                "You've hit your limit · resets 3:30am (Asia/Calcutta)",
                USAGE_LIMIT,
            ),
            ("API Error: Rate limit reached", RATE_LIMIT),
            (
                "API Error: Request rejected (429) · Rate limited. Please try again later.",
                RATE_LIMIT,
            ),
            (
                r#"API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account's rate limit. Please try again later."}}"#,
                RATE_LIMIT,
            ),
            // aider
            (
                "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached",
                RATE_LIMIT,
            ),
            (
                "The API provider has rate limited you. Try again later or check your quotas.",
                RATE_LIMIT,
            ),
            (
                "Insufficient credits with the API provider. Please add credits.",
                QUOTA,
            ),
            // opencode run
            (
                r#"Error: OpenAI API error (429): {"param":null,"code":"rate_limit_exceeded","message":"Rate limit exceeded. Please retry after a brief wait."}"#,
                RATE_LIMIT,
            ),
            (
                r#"Error: 429: {"type":"FreeUsageLimitError","message":"Rate limit exceeded. Please try again later."}"#,
                USAGE_LIMIT,
            ),
            (
                "Free usage exceeded, add credits https://opencode.ai/zen",
                USAGE_LIMIT,
            ),
            // gemini
            (
                "[API Error: You exceeded your current quota, please check your plan and billing details. (Status: RESOURCE_EXHAUSTED)]",
                QUOTA,
            ),
            ("You have exhausted your daily quota on this model.", QUOTA),
            (
                "[API Error: Resource has been exhausted (e.g. check quota).]",
                QUOTA,
            ),
            (
                "Please wait and try again later. To increase your limits, request a quota increase through AI Studio, or switch to another /auth method",
                RATE_LIMIT,
            ),
        ];
        for (line, why) in cases {
            let got = recognise(&[line.to_string()], &[]);
            assert!(
                got.as_deref()
                    .is_some_and(|g| g.starts_with(&format!("the agent {why} ("))),
                "{line}: {got:?}"
            );
        }
        // A 429 in the work itself (a ticket about rate limiting) is not
        // the agent's provider refusing it.
        for work in [
            "test http::tests::returns_429_when_over_the_limit ... ok",
            "HTTP/1.1 429 Too Many Requests",
            "assertion failed: status == 429",
            "Reconnecting... 2/5 (unexpected status 429 Too Many Requests)",
            "the limiter allows 5 requests per second; quota is per user",
        ] {
            assert_eq!(recognise(&[work.to_string()], &[]), None, "{work}");
        }
    }

    #[test]
    fn unavailable_patterns_extend_the_built_in_ones_ignoring_case() {
        let extra = vec!["Upstream Capacity".to_string(), "  ".to_string()];
        let tail = ["fatal: UPSTREAM CAPACITY reached".to_string()];
        assert_eq!(
            recognise(&tail, &extra).as_deref(),
            Some(
                "the agent matched `upstream capacity` of its unavailable_patterns (fatal: UPSTREAM CAPACITY reached)"
            )
        );
        assert_eq!(recognise(&tail, &[]), None);
        // A blank pattern would match every line: it is never used.
        assert_eq!(
            recognise(&["error: tests failed".to_string()], &extra),
            None
        );
    }

    #[test]
    fn cooldown_paths_stay_inside() {
        assert_eq!(rel_path("codex"), "cooldown/codex.md");
        assert_eq!(rel_path("../../x"), "cooldown/_.._x.md");
    }
}
