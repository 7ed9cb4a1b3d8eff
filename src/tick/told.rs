//! What a tick says once: invalid tickets it skips, warnings about single
//! tickets and about orch.yaml, and tickets stuck behind one that needs a
//! person.
//!
//! Cron mails every output, so a condition that stands for days must not
//! be said every few minutes. Each is said by the tick that first finds
//! it, and again only after it changed: it went away and came back, or
//! reads differently (another key, another line, a longer chain). What was
//! said is kept in `<git dir>/orch/told`, one line each. The record is
//! advisory: lost or unwritable, a line is said again, never missed.

use std::collections::BTreeSet;

use crate::board::{Board, Layout};
use crate::ticket::{Problem, Severity};

use super::{Event, Reporter};

/// What a board calls for saying, each with the text that identifies it.
pub fn notices(board: &Board) -> Vec<(String, Event)> {
    let mut out = Vec::new();
    for w in &board.config_warnings {
        let text = format!(
            "orch.yaml{}: {}",
            w.line.map(|l| format!(":{l}")).unwrap_or_default(),
            w.message
        );
        out.push((text.clone(), Event::ConfigWarning(text)));
    }
    // A tick reads the tickets it may act on; a finished ticket's warning
    // is history, and `orch status` leaves it out too.
    for p in board
        .problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .filter(|p| !p.path.starts_with("tickets/done/"))
    {
        // Known by the ticket, not its directory: a warning said while the
        // ticket waited in todo is not said again when it is claimed.
        let key = match p
            .path
            .strip_prefix("tickets/")
            .and_then(|r| r.split_once('/'))
        {
            Some((_, file)) => Problem {
                path: format!("tickets/*/{file}"),
                ..p.clone()
            }
            .to_string(),
            None => p.to_string(),
        };
        out.push((key, Event::Warning(p.clone())));
    }
    // Invalid tickets this tick skips, though it could otherwise have run
    // them (problems of settled tickets are left to `orch status`).
    for p in board.errors().filter(|p| {
        !(p.path.starts_with("tickets/done/") || p.path.starts_with("tickets/blocked/"))
    }) {
        out.push((p.to_string(), Event::Invalid(p.clone())));
    }
    for (id, stuck) in board.stuck() {
        let text = stuck.describe();
        out.push((format!("{id}: {text}"), Event::Stuck { id, text }));
    }
    out
}

/// Report the notices not said before, and record the ones that stand.
pub fn say_once(layout: &Layout, reporter: &dyn Reporter, notices: Vec<(String, Event)>) {
    let path = layout.local.join("told");
    // Bounded like any file orch reads; a record too large to read is said
    // over, once.
    let before: BTreeSet<String> = crate::safe_read::regular_file(&path, 16 << 20)
        .ok()
        .flatten()
        .map(|b| {
            String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut now = BTreeSet::new();
    for (text, event) in notices {
        // One line each in the record, whatever the text holds.
        let key = text.replace(['\n', '\r'], " ");
        if !before.contains(&key) {
            reporter.report(&event);
        }
        now.insert(key);
    }
    if now != before {
        let mut bytes = Vec::new();
        for k in &now {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(b'\n');
        }
        // Advisory (see the module doc): a record not written only means
        // the next tick says these lines again.
        let _ = crate::board::write_atomic(&path, &bytes);
    }
}
