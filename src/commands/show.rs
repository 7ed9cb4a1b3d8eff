//! `orch show ID`: one ticket, its state and its attempts.

use serde::Serialize;

use crate::board::{self, Board};
use crate::error::{Error, Result};
use crate::text::{visible, visible_line};
use crate::ticket::{self, Event, Problem, State};
use crate::ui::Style;

use super::{Ctx, print_json};

/// Show a ticket: where it is, what it asks, and every attempt so far.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ticket id (its file name without .md).
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct ShowJson {
    pub version: u32,
    pub id: String,
    pub state: State,
    pub path: String,
    pub valid: bool,
    pub title: Option<String>,
    pub priority: Option<i64>,
    pub depends_on: Vec<String>,
    pub body: Option<String>,
    pub attempts: Vec<Attempt>,
    pub problems: Vec<Problem>,
    /// In landing/: why it has not landed yet (null: the next tick lands it).
    pub land_waits: Option<String>,
    /// The ticket's worktree on this machine, while it exists.
    pub worktree: Option<String>,
    /// The ticket's branch (`orch/<id>`), once it exists.
    pub branch: Option<String>,
    /// In blocked/: the command, from the repository's top, that sends it
    /// back to todo for a fresh set of attempts.
    pub retry: Option<String>,
    /// Tokens spent, in all and toward the ticket's budget.
    pub usage: crate::commands::status::Usage,
}

#[derive(Debug, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub claimed_at: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub settled_at: Option<String>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    /// Path of the attempt summary on the plan branch, when it exists.
    pub summary: Option<String>,
    /// Path of the full log on this machine, when it exists.
    pub log: Option<String>,
    /// Tokens the attempt spent (input + output), once recorded; 0 when
    /// its agent reported none.
    pub tokens: Option<u64>,
}

impl Attempt {
    fn new(attempt: u32) -> Attempt {
        Attempt {
            attempt,
            claimed_at: None,
            host: None,
            pid: None,
            settled_at: None,
            outcome: None,
            reason: None,
            summary: None,
            log: None,
            tokens: None,
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    crate::ticket::require_id(&args.id)?;
    let (main, layout) = board::open_read(&ctx.cwd)?;
    let board = Board::load(&layout);
    let Some(states) = board.seen.get(&args.id) else {
        return Err(Error::usage(format!("there is no ticket `{}`", args.id))
            .hinted("`orch status` lists the tickets"));
    };
    let state = states[0];
    let path = ticket::rel_path(state, &args.id);
    let problems: Vec<Problem> = board
        .problems
        .iter()
        .filter(|p| {
            states
                .iter()
                .any(|s| p.path == ticket::rel_path(*s, &args.id))
        })
        .cloned()
        .collect();
    let t = board.tickets.get(&args.id);
    let mut attempts: Vec<Attempt> = Vec::new();
    if let Some(t) = t {
        for e in &t.log {
            match e {
                Event::Claim(c) => attempts.push(Attempt {
                    attempt: c.attempt,
                    claimed_at: Some(c.at.clone()),
                    host: c.host.clone(),
                    pid: c.pid,
                    ..Attempt::new(c.attempt)
                }),
                Event::Result(r) => {
                    let slot = match attempts.iter().rposition(|a| a.attempt == r.attempt) {
                        Some(i) => &mut attempts[i],
                        None => {
                            attempts.push(Attempt::new(r.attempt));
                            let last = attempts.len() - 1;
                            &mut attempts[last]
                        }
                    };
                    slot.settled_at = Some(r.at.clone());
                    slot.outcome = Some(r.outcome.as_str().to_string());
                    slot.reason = r.reason.clone();
                    slot.tokens = Some(r.tokens.unwrap_or(0));
                }
                Event::Release { .. }
                | Event::Abort { .. }
                | Event::Retry { .. }
                | Event::Unknown(_) => {}
            }
        }
    }
    for a in &mut attempts {
        let summary = crate::board::layout::summary_rel(&args.id, a.attempt);
        if layout.plan.join(&summary).exists() {
            a.summary = Some(summary);
        }
        let log = layout.log_path(&args.id, a.attempt);
        if log.exists() {
            a.log = Some(log.display().to_string());
        }
    }
    let out = ShowJson {
        version: 1,
        id: args.id.clone(),
        state,
        path,
        valid: !board.invalid.contains(&args.id),
        title: t.map(|t| t.title().to_string()),
        priority: t.map(|t| t.front.priority),
        depends_on: t.map(|t| t.front.depends_on.clone()).unwrap_or_default(),
        body: t.map(|t| t.body().to_string()),
        attempts,
        problems,
        land_waits: (state == State::Landing)
            .then(|| crate::land::why_waiting(&layout, &args.id))
            .flatten(),
        worktree: Some(layout.worktree(&args.id))
            .filter(|w| w.exists())
            .map(|w| w.display().to_string()),
        branch: Some(crate::git::ticket_branch(&args.id)).filter(|b| main.branch_exists(b)),
        retry: (state == State::Blocked).then(|| board::retry_command(&args.id)),
        usage: t
            .map(crate::commands::status::Usage::of)
            .unwrap_or_default(),
    };
    if args.json {
        print_json(&out)?;
    } else {
        print_text(&out);
    }
    Ok(0)
}

/// What comes from the ticket file or an agent is printed through
/// [`visible`] or [`visible_line`]: its control characters are shown,
/// never sent to the terminal.
fn print_text(s: &ShowJson) {
    let st = Style::stdout();
    crate::outln!(
        "{}  {}",
        st.bold(&s.id),
        visible_line(s.title.as_deref().unwrap_or("(no title)"))
    );
    crate::outln!("state     {}", s.state);
    crate::outln!("file      .orch/plan/{}", s.path);
    if let Some(p) = s.priority {
        crate::outln!("priority  {p}");
    }
    if !s.depends_on.is_empty() {
        crate::outln!("depends   {}", visible_line(&s.depends_on.join(", ")));
    }
    if let Some(w) = &s.worktree {
        crate::outln!("worktree  {}", visible_line(w));
    }
    if let Some(b) = &s.branch {
        crate::outln!("branch    {b}");
    }
    if let Some(r) = &s.retry {
        crate::outln!("retry     {r}");
    }
    if s.usage.tokens > 0 {
        crate::outln!("tokens    {}", s.usage);
    }
    if s.state == State::Landing {
        let why = s.land_waits.as_deref().unwrap_or("the next tick lands it");
        crate::outln!("landing   {}", st.yellow(&visible_line(why)));
    }
    for p in &s.problems {
        crate::outln!("{}", st.red(&visible(&p.to_string())));
    }
    if let Some(body) = &s.body
        && !body.trim().is_empty()
    {
        crate::outln!();
        for line in body.trim().lines() {
            crate::outln!("  {}", visible(line));
        }
    }
    if !s.attempts.is_empty() {
        crate::outln!("\n{}", st.bold("attempts"));
        for a in &s.attempts {
            // Only an in-progress ticket has a run going: one moved out
            // by hand while its orch was gone has none, result or not.
            let outcome = a
                .outcome
                .as_deref()
                .unwrap_or(if s.state == State::InProgress {
                    "running"
                } else {
                    "ended (no result recorded)"
                });
            let reason = a
                .reason
                .as_deref()
                .map(|r| format!("  {}", visible_line(r)))
                .unwrap_or_default();
            let tokens = match a.tokens {
                Some(n) if n > 0 => format!("  {n} tokens"),
                _ => String::new(),
            };
            crate::outln!(
                "  #{}  {}  {}  host {}{tokens}{reason}",
                a.attempt,
                visible_line(a.claimed_at.as_deref().unwrap_or("?")),
                outcome,
                visible_line(a.host.as_deref().unwrap_or("?"))
            );
            if let Some(summary) = &a.summary {
                crate::outln!("       summary .orch/plan/{summary}");
            }
            if let Some(log) = &a.log {
                crate::outln!("       log     {}", visible_line(log));
            }
        }
    }
}
