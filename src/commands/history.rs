//! `orch history`: the audit log, read from the trailers of orch/plan.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::board;
use crate::board::Trailer;
use crate::error::{Error, Result};
use crate::git::{self, Worktree};
use crate::text::visible_line;
use crate::ticket::State;
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
    /// The commit's author, `Name <email>`: for a change by hand, what is
    /// known of who made it (an edit orch adopted carries the identity of
    /// the orch that adopted it; its host is in `host`).
    pub author: String,
    /// For a commit that is not one of orch's transitions but changed the
    /// ticket asked for: what it did to it ("moved from blocked to todo").
    pub by_hand: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if let Some(id) = &args.id {
        crate::ticket::require_id(id)?;
    }
    let (_main, layout) = board::open_read(&ctx.cwd)?;
    let plan = Worktree::open(&layout.plan)?;
    let board = args.id.as_ref().map(|_| board::Board::load_active(&layout));
    // Where the ticket can have been: every state directory.
    let paths: Vec<String> = args
        .id
        .iter()
        .flat_map(|id| State::ALL.map(|s| crate::ticket::rel_path(s, id)))
        .collect();
    let mut entries = Vec::new();
    let mut found = false;
    let mut walk_error = None;
    plan.history(|c| {
        let trailers: BTreeMap<String, String> = git::trailers(&c.message).into_iter().collect();
        let ticket = trailers.get(Trailer::Ticket.key()).cloned();
        let mut by_hand = None;
        if let Some(id) = &args.id {
            if ticket.is_none() {
                // A person's commit, or orch's adoption of a person's edit:
                // not one of orch's transitions, so only its paths say
                // whether it touched the ticket.
                match plan.path_changes(&c.id, &paths) {
                    Ok(changes) => by_hand = describe(&changes),
                    Err(e) => {
                        walk_error = Some(e);
                        return false;
                    }
                }
                if by_hand.is_none() {
                    return true;
                }
            } else if ticket.as_ref() != Some(id) {
                return true;
            }
        }
        found = true;
        if args.limit.is_some_and(|n| entries.len() >= n) {
            return false;
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
            author: format!("{} <{}>", c.author, c.email),
            by_hand,
        });
        args.limit.is_none_or(|n| entries.len() < n)
    })?;
    if let Some(e) = walk_error {
        return Err(e);
    }
    if let (Some(id), Some(board)) = (&args.id, &board)
        && !found
        && !board.seen.contains_key(id)
    {
        let ids: Vec<&str> = board.seen.keys().map(String::as_str).collect();
        let hint = match similar_ids(id, &ids) {
            similar if similar.is_empty() => "`orch status` lists the tickets".to_string(),
            similar => format!("did you mean {}?", similar.join(", ")),
        };
        return Err(Error::usage(format!(
            "there is no ticket `{id}` on the board or in its history"
        ))
        .hinted(hint));
    }
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
        let adopted = e.trailers.contains_key(Trailer::Adopted.key());
        let by = match (&e.by_hand, adopted) {
            (Some(what), true) => format!(
                "  [by hand: {what}; adopted by {} on {}]",
                visible_line(&e.author),
                visible_line(e.host.as_deref().unwrap_or("?"))
            ),
            (Some(what), false) => {
                format!("  [by hand: {what}; by {}]", visible_line(&e.author))
            }
            (None, _) => String::new(),
        };
        crate::outln!(
            "{}  {}  {}{}{by}",
            st.yellow(&e.commit[..10.min(e.commit.len())]),
            st.dim(&e.time),
            visible_line(&e.summary),
            outcome
        );
    }
    Ok(0)
}

/// What a commit did to a ticket's file, from the paths it changed.
fn describe(changes: &[git::PathChange]) -> Option<String> {
    let state = |path: &str| {
        path.strip_prefix("tickets/")
            .and_then(|r| r.split_once('/'))
            .map(|(s, _)| s.to_string())
            .unwrap_or_default()
    };
    let gone: Vec<String> = changes
        .iter()
        .filter(|c| c.before && !c.after)
        .map(|c| state(&c.path))
        .collect();
    let new: Vec<String> = changes
        .iter()
        .filter(|c| !c.before && c.after)
        .map(|c| state(&c.path))
        .collect();
    let edited: Vec<String> = changes
        .iter()
        .filter(|c| c.before && c.after)
        .map(|c| state(&c.path))
        .collect();
    Some(match (gone.as_slice(), new.as_slice(), edited.as_slice()) {
        ([], [], []) => return None,
        ([from], [to], []) => format!("moved from {from} to {to}"),
        ([], [to], []) => format!("added to {to}"),
        ([from], [], []) => format!("deleted from {from}"),
        ([], [], [in_]) => format!("edited in {in_}"),
        _ => {
            let mut parts = Vec::new();
            if !gone.is_empty() {
                parts.push(format!("removed from {}", gone.join(", ")));
            }
            if !new.is_empty() {
                parts.push(format!("added to {}", new.join(", ")));
            }
            if !edited.is_empty() {
                parts.push(format!("edited in {}", edited.join(", ")));
            }
            parts.join("; ")
        }
    })
}

/// Ids a mistyped one may have meant: within two edits, or one that
/// contains it (`history 0003` for `0003-flaky-change`), a few at most.
pub(crate) fn similar_ids(id: &str, ids: &[&str]) -> Vec<String> {
    let mut close: Vec<(usize, &str)> = ids
        .iter()
        .filter_map(|&other| {
            let d = crate::text::edit_distance(id, other);
            (d <= 2 || other.contains(id)).then_some((d, other))
        })
        .collect();
    close.sort();
    close
        .into_iter()
        .take(5)
        .map(|(_, other)| format!("`{other}`"))
        .collect()
}
