//! A ticket written in the person's editor: on a draft outside the board,
//! so a tick never reads half-written text, and checked before it goes on
//! the board, so a broken ticket is never left there.

use std::path::{Path, PathBuf};

use crate::board::Layout;
use crate::error::{Error, Result};
use crate::ticket::{self, Severity, State};

/// What came back from the editor.
pub enum Edited {
    /// The text saved is the text the editor opened with.
    Unchanged,
    /// A valid ticket. Its draft stays until the caller's change is made,
    /// so a change that fails still leaves the person's text somewhere.
    Changed {
        text: String,
        title: String,
        draft: PathBuf,
    },
}

/// Open `$VISUAL`/`$EDITOR` on a draft named `name` holding `start`, and
/// check what was saved as ticket `id` in `state`. `undone` says what did
/// not happen when it is invalid ("nothing was added").
pub fn edit_ticket(
    layout: &Layout,
    name: &str,
    id: &str,
    start: &str,
    state: State,
    undone: &str,
) -> Result<Edited> {
    let dir = layout.local.join("drafts");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io("cannot create the drafts directory", &dir, e))?;
    let draft = dir.join(name);
    std::fs::write(&draft, start)
        .map_err(|e| Error::io("cannot write the draft ticket", &draft, e))?;
    let kept = kept_hint(&draft);
    if let Err(e) = open_editor(&draft, undone) {
        return Err(e.hinted(kept));
    }
    let text = std::fs::read_to_string(&draft)
        .map_err(|e| Error::io("cannot read the draft ticket", &draft, e))?;
    if text == start {
        let _ = std::fs::remove_file(&draft);
        return Ok(Edited::Unchanged);
    }
    let (parsed, problems) = ticket::parse(id, state, text.as_bytes());
    let errors: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .map(|p| {
            let mut p = p.clone();
            p.path = draft.display().to_string();
            p.to_string()
        })
        .collect();
    match parsed {
        Some(ticket) if errors.is_empty() => Ok(Edited::Changed {
            text,
            title: ticket.title().to_string(),
            draft,
        }),
        _ => Err(Error::usage(format!(
            "the edited ticket is not valid; {undone}:\n  {}",
            errors.join("\n  ")
        ))
        .hinted(kept)),
    }
}

/// Where the person's text is, for a message that leaves it there.
pub fn kept_hint(draft: &Path) -> String {
    format!("your text is kept in {}", draft.display())
}

fn open_editor(path: &Path, undone: &str) -> Result<()> {
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .unwrap_or_else(|_| "vi".into());
    // The editor setting may carry arguments ("code --wait"), so it goes
    // through sh; the path is passed as "$1", never spliced into the script.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(path)
        .status()
        .map_err(|e| Error::io("cannot start the editor", path, e))?;
    if !status.success() {
        return Err(Error::other(format!(
            "the editor `{editor}` exited with {status}; {undone}"
        )));
    }
    Ok(())
}
