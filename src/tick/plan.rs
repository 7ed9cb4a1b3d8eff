//! Pure decisions about the board: who owns a claim, and which ready
//! tickets a tick takes. The tick, `--explain`, `status` and `abort` all
//! call these, so they cannot disagree. Whatever needs the file system
//! (run locks, cooldown files, `PATH`) is looked up by the caller and
//! passed in.

use std::collections::BTreeMap;

use crate::agent::unavailable::Cooldown;
use crate::board::{Board, Readiness};
use crate::config::{AgentSpec, Config};
use crate::ticket::{Claim, State, Ticket};

use super::event::SkipReason;
use super::settings::RunSettings;

/// What is known of a claim's run lock on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLockFacts {
    /// The run lock file exists: a run was supervised on this machine,
    /// whatever name the host had then (`ORCH_HOST` may differ under cron).
    pub present: bool,
    /// A live process holds it.
    pub held: bool,
    /// The board is shared through a remote. A host name proves nothing
    /// there (CI runners and containers share names, and two clones may
    /// sit on one machine): `present` then says whether this checkout's
    /// local state records claiming this very run.
    pub shared: bool,
}

/// Whose a claim is, and whether its run is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// This host's, supervised by a live orch.
    Live,
    /// This host's, and its supervisor is gone: settle it as abandoned.
    Dead,
    /// Another host's, within its lease: leave it alone.
    Foreign { host: String },
    /// Another host's, past its lease: settle it as abandoned.
    Expired { host: String },
}

impl Ownership {
    /// Whether the run still occupies a slot under `max_in_progress`.
    pub fn is_running(&self) -> bool {
        matches!(self, Ownership::Live | Ownership::Foreign { .. })
    }
}

/// Whether a claim was made on this host (so its run lock tells its fate).
pub fn claimed_here(claim: &Claim, host: &str, lock: RunLockFacts) -> bool {
    if lock.shared {
        return lock.present;
    }
    match claim.host.as_deref() {
        None | Some("") => true,
        Some(h) => h == host || lock.present,
    }
}

/// The one answer to "is this claim ours, live, or expired?".
pub fn ownership(claim: &Claim, host: &str, lock: RunLockFacts, now: jiff::Timestamp) -> Ownership {
    if claimed_here(claim, host, lock) {
        return if lock.held {
            Ownership::Live
        } else {
            Ownership::Dead
        };
    }
    let other = claim.host.clone().unwrap_or_default();
    let expired = claim
        .lease
        .as_deref()
        .and_then(|l| l.parse::<jiff::Timestamp>().ok())
        .is_some_and(|l| l < now);
    if expired {
        Ownership::Expired { host: other }
    } else {
        Ownership::Foreign { host: other }
    }
}

/// What a tick does with one ready ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Claim it, while there is room.
    Claim,
    Skip(SkipReason),
}

/// The ready queue, in the order a tick takes it, with a verdict for each.
#[derive(Debug)]
pub struct ClaimPlan<'b> {
    /// The tick walks this in order and claims until `room` are claimed.
    pub queue: Vec<(&'b Ticket, Verdict)>,
    /// How many the tick may claim: the cap left and `--jobs`.
    pub room: usize,
    /// Slots left under `max_in_progress`.
    pub cap: u32,
    /// Tickets running now, on any host.
    pub running: u32,
}

/// What the caller looked up for [`plan_claims`].
pub struct PlanInputs<'a> {
    pub jobs: Option<u32>,
    pub only: Option<&'a str>,
    /// Runs that occupy a slot (see [`Ownership::is_running`]).
    pub running: u32,
    /// Pauses in force, by agent label.
    pub paused: &'a BTreeMap<String, Cooldown>,
    /// Why an agent's program cannot start, if it cannot.
    pub agent_missing: &'a dyn Fn(&AgentSpec) -> Option<String>,
}

pub fn plan_claims<'b>(
    board: &'b Board,
    config: &Config,
    inputs: &PlanInputs<'_>,
) -> ClaimPlan<'b> {
    let cap = config.max_in_progress.saturating_sub(inputs.running);
    let jobs = inputs.jobs.unwrap_or(config.max_in_progress).max(1);
    let mut plan = ClaimPlan {
        queue: Vec::new(),
        room: cap.min(jobs) as usize,
        cap,
        running: inputs.running,
    };
    for t in board.ready_queue() {
        if inputs.only.is_some_and(|o| o != t.id) {
            continue;
        }
        let agent = RunSettings::for_ticket(config, t).agent;
        let verdict = if let Some(p) = inputs.paused.get(&agent.label()) {
            Verdict::Skip(SkipReason::AgentPaused {
                agent: p.agent.clone(),
                until: p.until.clone(),
                reason: p.reason.clone(),
            })
        } else if let Some(why) = (inputs.agent_missing)(&agent) {
            Verdict::Skip(SkipReason::AgentMissing(why))
        } else {
            Verdict::Claim
        };
        plan.queue.push((t, verdict));
    }
    plan
}

/// Why `--ticket ID` cannot be claimed, when it is not in the ready queue.
pub fn not_claimable(board: &Board, id: &str) -> String {
    // A tick knows done and blocked tickets by their file name alone.
    if let Some(states) = board.seen.get(id)
        && !states.contains(&State::Todo)
        && let Some(state) = states.first()
    {
        return format!("it is in {state}");
    }
    match board.tickets.get(id) {
        Some(t) if t.state != State::Todo => format!("it is in {}", t.state),
        Some(t) => match board.readiness(t) {
            Readiness::Waiting(on) => format!("it waits on {}", on.join(", ")),
            Readiness::Invalid(why) => format!("it is invalid: {why}"),
            Readiness::Ready => "it is not ready".into(),
        },
        None => "it is invalid".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board::Layout;

    fn claim(host: Option<&str>, lease: Option<&str>) -> Claim {
        Claim {
            at: "2026-01-01T00:00:00Z".into(),
            attempt: 1,
            host: host.map(str::to_string),
            pid: Some(1),
            run: Some("r".into()),
            lease: lease.map(str::to_string),
        }
    }

    const NOW: &str = "2026-06-01T00:00:00Z";
    const FREE: RunLockFacts = RunLockFacts {
        present: false,
        held: false,
        shared: false,
    };

    fn own(c: &Claim, lock: RunLockFacts) -> Ownership {
        ownership(c, "here", lock, NOW.parse().expect("time"))
    }

    #[test]
    fn ownership_of_claims() {
        let held = RunLockFacts {
            present: true,
            held: true,
            shared: false,
        };
        let left = RunLockFacts {
            present: true,
            held: false,
            shared: false,
        };
        assert_eq!(own(&claim(Some("here"), None), held), Ownership::Live);
        assert_eq!(own(&claim(Some("here"), None), left), Ownership::Dead);
        assert_eq!(own(&claim(None, None), FREE), Ownership::Dead);
        // A run lock file on this machine: the host was renamed since.
        assert_eq!(own(&claim(Some("old-name"), None), held), Ownership::Live);
        let future = claim(Some("there"), Some("2026-07-01T00:00:00Z"));
        assert_eq!(
            own(&future, FREE),
            Ownership::Foreign {
                host: "there".into()
            }
        );
        let past = claim(Some("there"), Some("2026-05-01T00:00:00Z"));
        let expired = own(&past, FREE);
        assert_eq!(
            expired,
            Ownership::Expired {
                host: "there".into()
            }
        );
        assert!(!expired.is_running());
        // No lease, or one that does not parse, never expires.
        assert!(own(&claim(Some("there"), None), FREE).is_running());
        assert!(own(&claim(Some("there"), Some("soon")), FREE).is_running());
    }

    fn board_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Board) {
        let dir = tempfile::tempdir().expect("temp dir");
        let layout = Layout::new(dir.path(), &dir.path().join(".git"));
        for (path, text) in files {
            let p = layout.plan.join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let board = Board::load(&layout);
        (dir, board)
    }

    fn ids<'b>(ts: &[&'b Ticket]) -> Vec<&'b str> {
        ts.iter().map(|t| t.id.as_str()).collect()
    }

    fn claimable<'b>(plan: &ClaimPlan<'b>) -> Vec<&'b Ticket> {
        plan.queue
            .iter()
            .filter(|(_, v)| *v == Verdict::Claim)
            .map(|(t, _)| *t)
            .collect()
    }

    #[test]
    fn candidates_in_order_with_room_from_cap_and_jobs() {
        let (_d, board) = board_with(&[
            ("tickets/todo/b.md", "---\ntitle: b\npriority: 1\n---\n"),
            ("tickets/todo/a.md", "---\ntitle: a\npriority: 1\n---\n"),
            ("tickets/todo/c.md", "---\ntitle: c\npriority: 0\n---\n"),
            ("tickets/todo/w.md", "---\ntitle: w\ndepends_on: [a]\n---\n"),
            (
                "tickets/todo/p.md",
                "---\ntitle: p\nagent: {command: [paused-agent]}\n---\n",
            ),
            (
                "tickets/todo/m.md",
                "---\ntitle: m\nagent: {command: [missing-agent]}\n---\n",
            ),
        ]);
        let mut config = Config::defaults();
        config.max_in_progress = 3;
        let paused: BTreeMap<String, Cooldown> = [(
            "paused-agent".to_string(),
            Cooldown {
                agent: "paused-agent".into(),
                until: "later".into(),
                reason: "outage".into(),
                at: None,
                recovered: None,
            },
        )]
        .into();
        let missing =
            |a: &AgentSpec| (a.label() == "missing-agent").then(|| "not found".to_string());
        let inputs = PlanInputs {
            jobs: None,
            only: None,
            running: 1,
            paused: &paused,
            agent_missing: &missing,
        };
        let plan = plan_claims(&board, &config, &inputs);
        assert_eq!(ids(&claimable(&plan)), ["c", "a", "b"]);
        assert_eq!(plan.room, 2);
        let order: Vec<&str> = plan.queue.iter().map(|(t, _)| t.id.as_str()).collect();
        assert_eq!(order, ["c", "a", "b", "m", "p"]);
        assert!(matches!(
            plan.queue[3].1,
            Verdict::Skip(SkipReason::AgentMissing(_))
        ));
        assert!(matches!(
            plan.queue[4].1,
            Verdict::Skip(SkipReason::AgentPaused { .. })
        ));

        let jobs = plan_claims(
            &board,
            &config,
            &PlanInputs {
                jobs: Some(1),
                running: 0,
                ..inputs
            },
        );
        assert_eq!(jobs.room, 1);
        let full = plan_claims(
            &board,
            &config,
            &PlanInputs {
                jobs: None,
                only: None,
                running: 5,
                paused: &paused,
                agent_missing: &missing,
            },
        );
        assert_eq!((full.room, full.cap), (0, 0));
        let only = plan_claims(
            &board,
            &config,
            &PlanInputs {
                jobs: None,
                only: Some("b"),
                running: 0,
                paused: &paused,
                agent_missing: &missing,
            },
        );
        assert_eq!(ids(&claimable(&only)), ["b"]);
        assert_eq!(not_claimable(&board, "w"), "it waits on a");
    }
}
