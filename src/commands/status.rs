//! `orch status`: the board at a glance. Reads files only: no lock, no
//! commit, no history walk, so it stays fast on a board with a long past.

use serde::Serialize;

use crate::board::{self, Board, Finished, Layout, Readiness};
use crate::error::Result;
use crate::text::{visible, visible_line};
use crate::tick::claim::lock_facts;
use crate::tick::plan::{self, Ownership};
use crate::ticket::{Problem, Severity, State, Ticket};
use crate::ui::Style;

use super::{Ctx, human_secs, print_json, seconds_since};

/// Show the board: counts, the ready queue in the order a tick takes it,
/// what runs, what is blocked and why, and invalid tickets.
///
/// The --json form is stable (its `version` field changes if it ever must);
/// the README documents it.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct StatusJson {
    pub version: u32,
    pub plan: String,
    pub counts: Counts,
    pub ready: Vec<ReadyEntry>,
    pub waiting: Vec<WaitingEntry>,
    /// Waiting tickets that wait on one that needs a person (also in
    /// `waiting`), with the chain to it.
    pub stuck: Vec<StuckEntry>,
    pub in_progress: Vec<RunningEntry>,
    /// Succeeded, waiting to land on the target, in the order they land.
    pub landing: Vec<LandingEntry>,
    pub blocked: Vec<BlockedEntry>,
    #[serde(serialize_with = "done_json")]
    pub done: Vec<Finished>,
    pub invalid: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub config_error: Option<String>,
    /// Agents whose claims are paused after they could not reach their model.
    pub paused_agents: Vec<crate::agent::unavailable::Cooldown>,
    /// The last ticks (the heartbeat) and what is wrong with them.
    pub ticks: crate::heartbeat::Health,
    /// Tokens spent today (UTC) against `budget.tokens_per_day`.
    pub budget: DayBudget,
}

/// The day's spend, and whether it pauses claims.
#[derive(Debug, Serialize)]
pub struct DayBudget {
    /// The UTC day, `2026-11-22`.
    pub day: String,
    pub tokens_today: u64,
    /// null: no daily budget.
    pub tokens_per_day: Option<u64>,
    /// When the daily budget is spent: when claims resume (the next UTC
    /// day); else null.
    pub claims_resume_at: Option<String>,
}

/// Tokens a ticket's attempts spent (input + output, as their agents'
/// events report them).
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Usage {
    /// Every attempt's.
    pub tokens: u64,
    /// Those of the attempts `tokens_per_ticket` counts: since the ticket
    /// last went to blocked or done.
    pub tokens_toward_budget: u64,
}

impl Usage {
    pub fn of(t: &Ticket) -> Usage {
        Usage {
            tokens: t.tokens_total(),
            tokens_toward_budget: t.tokens_spent(),
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in all", self.tokens)?;
        if self.tokens_toward_budget != self.tokens {
            write!(
                f,
                ", {} since its last fresh set of attempts",
                self.tokens_toward_budget
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct Counts {
    pub todo: usize,
    pub in_progress: usize,
    pub landing: usize,
    pub done: usize,
    pub blocked: usize,
    pub invalid: usize,
}

#[derive(Debug, Serialize)]
pub struct ReadyEntry {
    pub id: String,
    pub title: String,
    pub priority: i64,
    pub attempts_used: u32,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct WaitingEntry {
    pub id: String,
    pub title: String,
    pub waiting_on: Vec<String>,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct StuckEntry {
    pub id: String,
    pub title: String,
    /// The ticket that needs a person, at the end of `chain`.
    pub on: String,
    /// `blocked` or `invalid`.
    pub on_state: crate::board::StuckOn,
    /// The ticket, the dependencies on the way, and `on`.
    pub chain: Vec<String>,
    /// Tickets of a long chain left out of `chain` before `on`.
    pub more: usize,
    /// What to do, in words.
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct RunningEntry {
    pub id: String,
    pub title: String,
    pub attempt: Option<u32>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub claimed_at: Option<String>,
    pub elapsed_secs: Option<i64>,
    /// Whether a process on this host holds the ticket's run lock; null
    /// when the claim belongs to another host.
    pub supervised: Option<bool>,
    /// Another host's claim past its lease: the next tick settles it.
    #[serde(skip)]
    pub lease_expired: bool,
    pub usage: Usage,
}

#[derive(Debug, Serialize)]
pub struct BlockedEntry {
    pub id: String,
    pub title: String,
    pub outcome: Option<String>,
    pub reason: String,
    pub attempts_used: u32,
    pub usage: Usage,
}

fn done_json<S: serde::Serializer>(
    done: &[Finished],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    struct Json<'a>(&'a Finished);
    impl Serialize for Json<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
            self.0.serialize_json(s)
        }
    }
    s.collect_seq(done.iter().map(Json))
}

#[derive(Debug, Serialize)]
pub struct LandingEntry {
    pub id: String,
    pub title: String,
    pub attempt: Option<u32>,
    pub succeeded_at: Option<String>,
    /// Why it has not landed yet, as the last landing run on this host
    /// saw it; null when no run has looked at it yet.
    pub waits: Option<String>,
    pub usage: Usage,
}

pub fn collect(layout: &Layout, board: &mut Board) -> StatusJson {
    let host = board::host_name();
    let ready = board
        .ready_queue()
        .into_iter()
        .map(|t| ReadyEntry {
            id: t.id.clone(),
            title: t.title().to_string(),
            priority: t.front.priority,
            attempts_used: t.attempts_used(),
            usage: Usage::of(t),
        })
        .collect();
    let waiting = board
        .in_state(State::Todo)
        .filter_map(|t| match board.readiness(t) {
            Readiness::Waiting(on) => Some(WaitingEntry {
                id: t.id.clone(),
                title: t.title().to_string(),
                waiting_on: on,
                usage: Usage::of(t),
            }),
            _ => None,
        })
        .collect();
    let stuck = board
        .stuck()
        .into_iter()
        .map(|(id, s)| StuckEntry {
            title: board
                .tickets
                .get(&id)
                .map(|t| t.title().to_string())
                .unwrap_or_default(),
            id,
            on: s.on().to_string(),
            on_state: s.end,
            text: s.describe(),
            chain: s.chain,
            more: s.more,
        })
        .collect();
    let in_progress = board
        .in_state(State::InProgress)
        .map(|t| running_entry(layout, t, &host, crate::tick::claim::is_shared(board)))
        .collect();
    let blocked = board
        .in_state(State::Blocked)
        .map(|t| {
            let (outcome, reason) = blocked_reason(t);
            BlockedEntry {
                id: t.id.clone(),
                title: t.title().to_string(),
                outcome,
                reason,
                attempts_used: t.attempts_used(),
                usage: Usage::of(t),
            }
        })
        .collect();
    // Read whole (by `watch`), done tickets are in `tickets`; read for
    // status, they are summaries already.
    let mut done: Vec<Finished> = board.in_state(State::Done).map(Finished::of).collect();
    if done.is_empty() {
        done = std::mem::take(&mut board.finished);
    }
    let mut landing: Vec<&Ticket> = board.in_state(State::Landing).collect();
    landing.sort_by(|a, b| (a.succeeded_at(), &a.id).cmp(&(b.succeeded_at(), &b.id)));
    let landing = landing
        .into_iter()
        .map(|t| LandingEntry {
            id: t.id.clone(),
            title: t.title().to_string(),
            attempt: t.last_result().map(|r| r.attempt),
            succeeded_at: t.succeeded_at().map(str::to_string),
            waits: crate::land::why_waiting(layout, &t.id),
            usage: Usage::of(t),
        })
        .collect();
    // A finished ticket's warnings are history: listed, they would stay
    // for ever.
    let mut warnings: Vec<Problem> = board
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .filter(|p| !p.path.starts_with(&format!("{}/", State::Done.rel_dir())))
        .cloned()
        .collect();
    warnings.extend(board.config_warnings.iter().map(|w| Problem {
        path: "orch.yaml".into(),
        line: w.line,
        severity: Severity::Warning,
        message: w.message.clone(),
        hint: None,
    }));
    let config = board.config.as_ref().ok();
    let ticks = crate::heartbeat::health(
        crate::heartbeat::load(layout),
        config
            .and_then(|c| c.remote.as_deref())
            .map(|r| crate::heartbeat::fetched(layout, r))
            .unwrap_or_default(),
        config.and_then(|c| c.expect_tick_every),
        jiff::Timestamp::now(),
    );
    StatusJson {
        version: 1,
        ticks,
        plan: layout.plan.display().to_string(),
        counts: Counts {
            todo: board.count(State::Todo),
            in_progress: board.count(State::InProgress),
            landing: board.count(State::Landing),
            done: board.count(State::Done),
            blocked: board.count(State::Blocked),
            invalid: board.invalid.len(),
        },
        ready,
        waiting,
        stuck,
        in_progress,
        landing,
        blocked,
        done,
        invalid: board.errors().cloned().collect(),
        warnings,
        paused_agents: crate::agent::unavailable::all_active(&layout.plan),
        budget: day_budget(layout, board),
        config_error: board
            .config
            .as_ref()
            .err()
            .map(|(line, message)| match line {
                Some(l) => format!("orch.yaml:{l}: {message}"),
                None => format!("orch.yaml: {message}"),
            }),
    }
}

fn day_budget(layout: &Layout, board: &Board) -> DayBudget {
    let day = crate::budget::read_day(&layout.plan);
    let budget = board.config().map(|c| c.budget).unwrap_or_default();
    DayBudget {
        claims_resume_at: budget.day_spent(&day).map(|o| o.resume),
        day: day.day,
        tokens_today: day.tokens,
        tokens_per_day: budget.tokens_per_day,
    }
}

pub fn running_entry(layout: &Layout, t: &Ticket, host: &str, shared: bool) -> RunningEntry {
    let claim = t.open_claim();
    let owner = claim.and_then(|c| {
        let facts = lock_facts(layout, &t.id, c, shared).ok()?;
        Some(plan::ownership(c, host, facts, jiff::Timestamp::now()))
    });
    let supervised = match owner {
        Some(Ownership::Live) => Some(true),
        Some(Ownership::Dead) => Some(false),
        Some(Ownership::Foreign { .. } | Ownership::Expired { .. }) | None => None,
    };
    RunningEntry {
        id: t.id.clone(),
        title: t.title().to_string(),
        attempt: claim.map(|c| c.attempt),
        host: claim.and_then(|c| c.host.clone()),
        pid: claim.and_then(|c| c.pid),
        claimed_at: claim.map(|c| c.at.clone()),
        elapsed_secs: claim.and_then(|c| seconds_since(&c.at)),
        supervised,
        lease_expired: matches!(owner, Some(Ownership::Expired { .. })),
        usage: Usage::of(t),
    }
}

pub fn blocked_reason(t: &Ticket) -> (Option<String>, String) {
    match t.last_result() {
        Some(r) => (
            Some(r.outcome.as_str().to_string()),
            r.reason
                .clone()
                .unwrap_or_else(|| r.outcome.as_str().to_string()),
        ),
        None => (None, "moved to blocked by a person".into()),
    }
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let (_main, layout) = board::open_read(&ctx.cwd)?;
    let mut board = Board::load_summary(&layout);
    let status = collect(&layout, &mut board);
    if args.json {
        print_json(&status)?;
    } else {
        print_text(&status);
    }
    // A board whose orch.yaml is missing or broken cannot tick: shown,
    // and said in the exit code too, for a script or a cron check.
    let code = if status.config_error.is_some() { 2 } else { 0 };
    // The process ends here: freeing a large board entry by entry would
    // only delay the exit.
    std::mem::forget((board, status));
    Ok(code)
}

/// Ticket text, agent output and the contents of orch.yaml are printed
/// through [`visible_line`]: a control character in them is shown, never
/// sent to the terminal.
pub(crate) fn print_text(s: &StatusJson) {
    let st = Style::stdout();
    let c = &s.counts;
    crate::outln!(
        "{}  todo {}  in-progress {}  landing {}  done {}  blocked {}  invalid {}",
        st.bold("board"),
        c.todo,
        c.in_progress,
        c.landing,
        c.done,
        c.blocked,
        c.invalid
    );
    match &s.ticks.last {
        Some(b) => {
            let ago = s
                .ticks
                .last_age_secs
                .map(|a| format!(" ({} ago)", human_secs(a)))
                .unwrap_or_default();
            let result = if b.failed() {
                st.red(&format!("{} (exit {})", b.result, b.code))
            } else {
                b.result.clone()
            };
            crate::outln!(
                "{}  {}{ago} on {}: {result}: {}",
                st.bold("last tick"),
                visible_line(&b.at),
                visible_line(&b.host),
                visible_line(&b.summary)
            );
        }
        None => crate::outln!("{}  none recorded", st.bold("last tick")),
    }
    for w in &s.ticks.warnings {
        crate::outln!("{} {}", st.yellow("warning:"), visible_line(w));
    }
    if let Some(e) = &s.config_error {
        crate::outln!("\n{} {}", st.red("config error:"), visible_line(e));
    }
    if let (Some(limit), Some(resume)) = (s.budget.tokens_per_day, &s.budget.claims_resume_at) {
        let over = crate::budget::DayOver {
            spent: s.budget.tokens_today,
            limit,
            resume: resume.clone(),
        };
        crate::outln!("\n{} {over}", st.yellow("paused:"));
    }
    for p in &s.paused_agents {
        crate::outln!(
            "\n{} agent `{}` is paused until {}: {}",
            st.yellow("paused:"),
            visible_line(&p.agent),
            visible_line(&p.until),
            visible_line(&p.reason)
        );
    }
    if !s.ready.is_empty() {
        crate::outln!("\n{}", st.bold("ready (in the order a tick takes them)"));
        for (i, t) in s.ready.iter().enumerate() {
            let tries = if t.attempts_used > 0 {
                format!(
                    "  {}",
                    st.dim(&format!("{} attempt(s) used", t.attempts_used))
                )
            } else {
                String::new()
            };
            crate::outln!(
                "  {:>3}. {}  p{}  {}{tries}",
                i + 1,
                st.cyan(&t.id),
                t.priority,
                visible_line(&t.title)
            );
        }
    }
    let waiting: Vec<&WaitingEntry> = s
        .waiting
        .iter()
        .filter(|w| !s.stuck.iter().any(|t| t.id == w.id))
        .collect();
    if !waiting.is_empty() {
        crate::outln!("\n{}", st.bold("waiting on dependencies"));
        for t in waiting {
            crate::outln!(
                "  {}  {}  {}",
                st.cyan(&t.id),
                visible_line(&t.title),
                st.dim(&visible_line(&format!(
                    "waits on {}",
                    t.waiting_on.join(", ")
                )))
            );
        }
    }
    if !s.stuck.is_empty() {
        crate::outln!(
            "\n{}",
            st.bold("stuck (waiting on a ticket that needs a person)")
        );
        for t in &s.stuck {
            crate::outln!(
                "  {}  {}  {}",
                st.cyan(&t.id),
                visible_line(&t.title),
                st.yellow(&visible_line(&t.text))
            );
        }
    }
    if !s.in_progress.is_empty() {
        crate::outln!("\n{}", st.bold("in progress"));
        for t in &s.in_progress {
            let attempt = t
                .attempt
                .map(|a| format!("attempt {a}"))
                .unwrap_or_else(|| "no claim".into());
            let host = visible_line(t.host.as_deref().unwrap_or("?"));
            let pid = t.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
            let elapsed = t.elapsed_secs.map(human_secs).unwrap_or_else(|| "?".into());
            let orphan = if t.supervised == Some(false) {
                format!("  {}", st.yellow("(no live run: the next tick settles it)"))
            } else if t.lease_expired {
                format!(
                    "  {}",
                    st.yellow("(its host's lease expired: the next tick settles it)")
                )
            } else {
                String::new()
            };
            crate::outln!(
                "  {}  {attempt}  host {host}  pid {pid}  {elapsed}  {}{orphan}{}",
                st.cyan(&t.id),
                visible_line(&t.title),
                tokens_note(&st, t.usage)
            );
        }
    }
    if !s.landing.is_empty() {
        crate::outln!("\n{}", st.bold("waiting to land (in the order they land)"));
        for t in &s.landing {
            let why = t.waits.as_deref().unwrap_or("the next tick lands it");
            crate::outln!(
                "  {}  {}  {}",
                st.cyan(&t.id),
                visible_line(&t.title),
                st.yellow(&visible_line(why))
            );
        }
    }
    if !s.blocked.is_empty() {
        crate::outln!("\n{}", st.bold("blocked (needs a person)"));
        for t in &s.blocked {
            crate::outln!(
                "  {}  {}  {}{}",
                st.cyan(&t.id),
                visible_line(&t.title),
                st.yellow(&visible_line(&t.reason)),
                tokens_note(&st, t.usage)
            );
        }
    }
    if !s.invalid.is_empty() {
        crate::outln!(
            "\n{}",
            st.bold("invalid (skipped by every tick until fixed)")
        );
        for p in &s.invalid {
            crate::outln!("  {}", st.red(&visible(&p.to_string())));
        }
    }
    if !s.warnings.is_empty() {
        crate::outln!("\n{}", st.bold("warnings"));
        for p in &s.warnings {
            crate::outln!("  {}", st.yellow(&visible(&p.to_string())));
        }
    }
    if s.ready.is_empty()
        && s.in_progress.is_empty()
        && c.landing == 0
        && c.todo == 0
        && c.blocked == 0
        && c.done == 0
    {
        crate::outln!("\nno tickets yet: `orch new \"What to do\"` adds one");
    }
}

/// `  (1234 tokens)` after a ticket's line, when its attempts spent any.
fn tokens_note(st: &Style, usage: Usage) -> String {
    if usage.tokens == 0 {
        return String::new();
    }
    format!("  {}", st.dim(&format!("({} tokens)", usage.tokens)))
}
