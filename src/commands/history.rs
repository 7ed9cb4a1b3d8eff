//! `orch history`: the audit log, read from the trailers of orch/plan.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::board;
use crate::board::Trailer;
use crate::error::Result;
use crate::git::{self, Worktree};
use crate::text::visible_line;
use crate::ui::Style;

use super::{Ctx, print_json};

/// Show the audit log: every board change, newest first, from the Orch-*
/// trailers of the commits on orch/plan.
///
/// The same data is in `git log orch/plan`; for example
/// `git log orch/plan --grep '^Orch-Outcome: failed'` finds failed attempts.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the changes of this ticket.
    pub id: Option<String>,
    /// At most this many entries.
    #[arg(long, short = 'n', value_name = "N")]
    pub limit: Option<usize>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Entry {
    pub commit: String,
    pub time: String,
    pub summary: String,
    pub ticket: Option<String>,
    pub attempt: Option<u32>,
    pub host: Option<String>,
    pub outcome: Option<String>,
    pub trailers: BTreeMap<String, String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let (_main, layout) = board::open_read(&ctx.cwd)?;
    let plan = Worktree::open(&layout.plan)?;
    let mut entries = Vec::new();
    plan.history(|c| {
        let trailers: BTreeMap<String, String> = git::trailers(&c.message).into_iter().collect();
        let ticket = trailers.get(Trailer::Ticket.key()).cloned();
        if args.id.is_some() && ticket != args.id {
            return true;
        }
        let time = jiff::Timestamp::from_second(c.time)
            .map(|t| t.to_string())
            .unwrap_or_default();
        entries.push(Entry {
            commit: c.id.clone(),
            time,
            summary: c.summary.clone(),
            attempt: trailers
                .get(Trailer::Attempt.key())
                .and_then(|a| a.parse().ok()),
            host: trailers.get(Trailer::Host.key()).cloned(),
            outcome: trailers.get(Trailer::Outcome.key()).cloned(),
            ticket,
            trailers,
        });
        args.limit.is_none_or(|n| entries.len() < n)
    })?;
    if args.json {
        print_json(&entries)?;
        return Ok(0);
    }
    // Anyone can commit on orch/plan: a subject is shown, never obeyed.
    let st = Style::stdout();
    for e in &entries {
        let outcome = e
            .outcome
            .as_deref()
            .map(|o| format!("  [{}]", visible_line(o)))
            .unwrap_or_default();
        crate::outln!(
            "{}  {}  {}{}",
            st.yellow(&e.commit[..10.min(e.commit.len())]),
            st.dim(&e.time),
            visible_line(&e.summary),
            outcome
        );
    }
    Ok(0)
}
