//! The number of the next ticket `orch new` makes.
//!
//! Numbers are never reused while anything of an earlier ticket with that
//! number exists: its file, its branch (here or on the remote), its kept
//! refs, its summaries under `runs/` or its local logs and state. A new
//! ticket that took an old number would continue on the old ticket's branch
//! and overwrite its logs.
//!
//! The plan file `next-id` keeps the number after the last one orch gave,
//! so numbering follows orch's own ids only: a ticket named `2024-x.md` by
//! hand does not make the next one `2025-...`. A board without the file
//! (made by an older orch, or the file deleted) starts after the highest
//! number in use.

use std::collections::BTreeSet;

use super::{Board, Layout};
use crate::git::MainRepo;

/// The plan file that keeps the next number, relative to the plan.
pub const NEXT_ID_REL: &str = "next-id";

/// The number the next ticket takes: the kept counter (or, without one, the
/// highest number in use plus one), moved past every number still in use.
pub fn next_number(layout: &Layout, main: &MainRepo, board: &Board) -> u32 {
    let used = numbers_in_use(layout, main, board);
    let mut n = kept_counter(layout)
        .unwrap_or_else(|| used.last().map_or(1, |n| n.saturating_add(1)))
        .max(1);
    while used.contains(&n) {
        n = n.saturating_add(1);
    }
    n
}

/// The text of `next-id` after `number` was given.
pub fn render_counter(number: u32) -> String {
    format!(
        "# The number the next `orch new` gives. orch keeps this file; raise the\n\
         # number to skip some, never lower it.\n{}\n",
        number.saturating_add(1)
    )
}

fn kept_counter(layout: &Layout) -> Option<u32> {
    let text = std::fs::read_to_string(layout.plan.join(NEXT_ID_REL)).ok()?;
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))?
        .parse()
        .ok()
}

/// The number of an id in orch's form `NNNN-slug` (at least four digits,
/// then a hyphen), or None for any other name.
pub fn number_of(id: &str) -> Option<u32> {
    let digits = id.bytes().take_while(u8::is_ascii_digit).count();
    if digits < 4 || id.as_bytes().get(digits) != Some(&b'-') {
        return None;
    }
    id[..digits].parse().ok()
}

fn numbers_in_use(layout: &Layout, main: &MainRepo, board: &Board) -> BTreeSet<u32> {
    let mut names: Vec<String> = board.seen.keys().cloned().collect();
    // Branches and kept refs: the last component of `refs/heads/orch/<id>`
    // and the component after `refs/orch/kept/`.
    for name in main.ref_names("refs/heads/orch/") {
        names.extend(name.rsplit('/').next().map(str::to_string));
    }
    for name in main.ref_names("refs/remotes/") {
        if let Some((_, rest)) = name.split_once("/orch/") {
            names.push(rest.to_string());
        }
    }
    for name in main.ref_names("refs/orch/kept/") {
        names.extend(name.split('/').nth(3).map(str::to_string));
    }
    for dir in [
        layout.plan.join("runs"),
        layout.local.join("logs"),
        layout.local.join("state"),
        layout.orch.join("worktrees"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            names.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok()),
            );
        }
    }
    names.iter().filter_map(|n| number_of(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orch_shaped_ids_have_numbers() {
        assert_eq!(number_of("0007-fix-it"), Some(7));
        assert_eq!(number_of("12345-big"), Some(12345));
        assert_eq!(number_of("007-short"), None);
        assert_eq!(number_of("0007"), None);
        assert_eq!(number_of("fix-0007-x"), None);
        assert_eq!(number_of("plan"), None);
    }

    #[test]
    fn the_counter_file_says_the_next_number() {
        let text = render_counter(41);
        let last = text.lines().next_back().unwrap_or_default();
        assert_eq!(last, "42");
    }
}
