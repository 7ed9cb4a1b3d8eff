//! The settings one attempt runs under: orch.yaml overridden by the
//! ticket's front matter.

use std::time::Duration;

use crate::config::{AgentSpec, Config};
use crate::ticket::Ticket;

/// Settings for one ticket's attempt.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub agent: AgentSpec,
    pub timeout: Duration,
    pub no_output_timeout: Duration,
    pub kill_grace: Duration,
    pub max_attempts: u32,
    pub verify: Vec<String>,
    pub max_log: u64,
    pub env_remove: Vec<String>,
    pub agent_cooldown: Duration,
    pub no_progress_timeout: Option<Duration>,
    pub sandbox: crate::config::Sandbox,
    pub commit_hooks: crate::config::CommitHooks,
    pub lease_margin: Duration,
    pub budget: crate::budget::Budget,
}

impl RunSettings {
    pub fn for_ticket(config: &Config, t: &Ticket) -> RunSettings {
        RunSettings {
            agent: t
                .front
                .agent
                .clone()
                .unwrap_or_else(|| config.agent.clone()),
            timeout: t.front.timeout.unwrap_or(config.timeout),
            no_output_timeout: t
                .front
                .no_output_timeout
                .unwrap_or(config.no_output_timeout),
            kill_grace: config.kill_grace,
            max_attempts: t.front.max_attempts.unwrap_or(config.max_attempts),
            verify: t
                .front
                .verify
                .clone()
                .unwrap_or_else(|| config.verify.clone()),
            max_log: config.max_log_size,
            env_remove: config.env_remove.clone(),
            agent_cooldown: config.agent_cooldown,
            no_progress_timeout: config.no_progress_timeout,
            sandbox: config.sandbox.clone(),
            commit_hooks: config.commit_hooks,
            lease_margin: config.lease_margin,
            budget: config.budget,
        }
    }

    /// Until when a claim under these settings holds. Generous: a lease
    /// only matters for claims of another host, whose run lock this host
    /// cannot see.
    pub fn lease(&self) -> String {
        let runs = 1 + self.verify.len() as u64;
        let secs = self
            .timeout
            .saturating_add(self.kill_grace)
            .as_secs()
            .saturating_mul(runs)
            .saturating_add(self.lease_margin.as_secs());
        let at = jiff::Timestamp::now()
            .as_second()
            .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        jiff::Timestamp::from_second(at)
            .map(|t| t.to_string())
            .unwrap_or_default()
    }
}

/// A run id unique to this attempt on this host; agents see it as
/// `ORCH_RUN_ID`, which is how their leftovers are found.
pub fn run_id(attempt: u32) -> String {
    run_id_at(attempt, std::process::id())
}

/// The supervising process and the start of a run, read back from its id.
pub fn run_origin(run: &str) -> Option<(i32, std::time::SystemTime)> {
    let mut parts = run.split('-');
    let pid = parts.next()?.parse().ok()?;
    let nanos: u64 = parts.next()?.parse().ok()?;
    Some((
        pid,
        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos),
    ))
}

fn run_id_at(attempt: u32, pid: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{pid}-{nanos}-{attempt}")
}
