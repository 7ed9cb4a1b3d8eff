//! Ticket ids as people type them: the whole id, its number (`42` for
//! `0042-fix-login`), or the start of one id that no other shares.

use std::path::Path;

use crate::error::{Error, Result};
use crate::ticket::State;

/// The id `given` stands for on the board at `start`. An id that is on the
/// board, or that names no ticket at all, is returned as given: the
/// command says what it says about it (a deleted ticket still has a
/// history). Several tickets matching is a usage error listing them.
pub fn expand(start: &Path, given: &str) -> Result<String> {
    let Ok((_, layout)) = crate::board::discover(start) else {
        return Ok(given.to_string());
    };
    let ids = board_ids(&layout.plan);
    match pick(given, &ids) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Ok(given.to_string()),
        Err(several) => {
            let mut shown: Vec<&str> = several.iter().map(String::as_str).take(8).collect();
            if several.len() > shown.len() {
                shown.push("…");
            }
            Err(Error::usage(format!(
                "`{given}` matches {} tickets: {}",
                several.len(),
                shown.join(", ")
            ))
            .hinted("give more of the id"))
        }
    }
}

/// The ids of the ticket files in every state directory of the plan.
/// Names only: nothing is parsed, so this costs a directory listing.
fn board_ids(plan: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    for state in State::ALL {
        let Ok(entries) = std::fs::read_dir(plan.join(state.rel_dir())) else {
            continue;
        };
        for entry in entries.flatten() {
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".md"))
            {
                ids.push(id.to_string());
            }
        }
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Which of `ids` `given` means: itself when it is one of them; else the
/// ids it starts, and for a number the ids with that number. None when it
/// matches nothing; the candidates when it matches more than one.
pub fn pick(given: &str, ids: &[String]) -> std::result::Result<Option<String>, Vec<String>> {
    if given.is_empty() || ids.iter().any(|id| id == given) {
        return Ok(None);
    }
    let number = given
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| given.parse::<u32>().ok())
        .flatten();
    let matches: Vec<String> = ids
        .iter()
        .filter(|id| {
            id.starts_with(given)
                || number.is_some_and(|n| crate::board::numbering::number_of(id) == Some(n))
        })
        .cloned()
        .collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(matches.into_iter().next()),
        _ => Err(matches),
    }
}

#[cfg(test)]
mod tests {
    use super::pick;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_number_a_unique_start_or_the_whole_id() {
        let board = ids(&[
            "0004-fix-login",
            "0040-docs",
            "0041-docs-more",
            "auth",
            "auth-2",
        ]);
        assert_eq!(pick("4", &board), Ok(Some("0004-fix-login".into())));
        assert_eq!(pick("0004", &board), Ok(Some("0004-fix-login".into())));
        assert_eq!(pick("40", &board), Ok(Some("0040-docs".into())));
        assert_eq!(pick("0041-d", &board), Ok(Some("0041-docs-more".into())));
        // The whole id wins over a longer one it starts.
        assert_eq!(pick("auth", &board), Ok(None));
        assert_eq!(pick("auth-", &board), Ok(Some("auth-2".into())));
        assert_eq!(
            pick("004", &board),
            Err(ids(&["0004-fix-login", "0040-docs", "0041-docs-more"])),
            "a start several share is no answer"
        );
        assert_eq!(pick("zzz", &board), Ok(None));
        assert_eq!(pick("", &board), Ok(None));
    }
}
