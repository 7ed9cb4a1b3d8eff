//! The contract between orch and an agent, both directions in one place:
//! the `ORCH_*` environment an agent gets, the result file it may write
//! with `orch submit`, and the run file `orch abort` reads to reach a
//! running supervisor.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const ENV_TICKET: &str = "ORCH_TICKET";
pub const ENV_ATTEMPT: &str = "ORCH_ATTEMPT";
pub const ENV_WORKTREE: &str = "ORCH_WORKTREE";
pub const ENV_BRANCH: &str = "ORCH_BRANCH";
pub const ENV_PROMPT_FILE: &str = "ORCH_PROMPT_FILE";
pub const ENV_RESULT_FILE: &str = "ORCH_RESULT_FILE";

/// What an agent may report with `orch submit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmitStatus {
    Done,
    Blocked,
    Failed,
}

impl SubmitStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmitStatus::Done => "done",
            SubmitStatus::Blocked => "blocked",
            SubmitStatus::Failed => "failed",
        }
    }
}

/// Longest message kept from `orch submit -m`, when it is written and again
/// when orch reads the result file back (anything may write that file).
/// The message is meant as one line for a person; it is quoted in the
/// attempt summary, the ticket's log and the tick's output, so a runaway
/// one must not reach them whole.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Longest line kept of a message: its first line becomes the reason a
/// tick prints on one line and commits to the plan branch.
pub const MAX_MESSAGE_LINE_BYTES: usize = 2 * 1024;

/// Most of a result file orch reads. A message of [`MAX_MESSAGE_BYTES`]
/// takes at most six times that in JSON (`\u0000` escapes); a bigger file
/// is read only this far, never whole.
pub const MAX_RESULT_FILE_BYTES: u64 = 1 << 20;

/// The content of `$ORCH_RESULT_FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// None for a status this version does not know.
    pub status: Option<SubmitStatus>,
    pub message: Option<String>,
}

/// Write the result file named by `$ORCH_RESULT_FILE` (for `orch submit`).
pub fn submit(status: SubmitStatus, message: Option<&str>) -> Result<()> {
    let Some(path) = std::env::var_os(ENV_RESULT_FILE) else {
        return Err(Error::usage(
            "ORCH_RESULT_FILE is not set: `orch submit` is for agents that `orch tick` runs",
        )
        .hinted("to change a ticket by hand, move its file in .orch/plan/tickets/"));
    };
    let body = Submission {
        status: Some(status),
        message: message.map(|m| bound_message(m, 0)),
    };
    let text = serde_json::to_string(&body)
        .map_err(|e| Error::other(format!("cannot render the result: {e}")))?;
    crate::board::write_atomic(Path::new(&path), text.as_bytes())
}

/// What the agent submitted, if it wrote a result file that parses. A
/// status this version does not know is read as no status, with the
/// message kept for the summary. The file is read only if it is a regular
/// file (not a link, fifo or device), and at most [`MAX_RESULT_FILE_BYTES`]
/// of it; the message is bounded by [`bound_message`].
pub fn read_submission(path: &Path) -> Option<Submission> {
    let head = crate::safe_read::head(path, MAX_RESULT_FILE_BYTES).ok()??;
    let value: serde_json::Value = if head.more == 0 {
        serde_json::from_slice(&head.bytes).ok()?
    } else {
        parse_cut(&head.bytes)?
    };
    let status = serde_json::from_value(value.get("status")?.clone()).ok();
    let message = value
        .get("message")
        .and_then(|m| m.as_str())
        .map(|m| bound_message(m, head.more));
    Some(Submission { status, message })
}

/// The object at the start of a result file that was read only in part.
/// The cut is most likely inside the message, the one long value: close
/// that string (after dropping a half escape such as `\u00`), then the
/// object.
fn parse_cut(bytes: &[u8]) -> Option<serde_json::Value> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok()?,
    };
    let mut head = text;
    // `\uXXX` is the longest piece of an escape a cut can leave.
    for _ in 0..=5 {
        for close in ["\"}", "}"] {
            let mut s = String::with_capacity(head.len() + close.len());
            s.push_str(head);
            s.push_str(close);
            if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(&s) {
                return Some(v);
            }
        }
        let mut chars = head.chars();
        chars.next_back()?;
        head = chars.as_str();
    }
    None
}

/// A message cut to [`MAX_MESSAGE_BYTES`], each line to
/// [`MAX_MESSAGE_LINE_BYTES`], each cut saying how much went (with
/// `already_cut` bytes that were never read added to the last one).
pub fn bound_message(m: &str, already_cut: u64) -> String {
    use crate::safe_read::cut_note;
    let mut out = String::new();
    let mut start = 0;
    let mut lines = m.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let text = line.strip_suffix('\n').unwrap_or(line);
        let room = MAX_MESSAGE_BYTES.saturating_sub(out.len());
        let mut end = text.len().min(MAX_MESSAGE_LINE_BYTES).min(room);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        out.push_str(&text[..end]);
        if lines.peek().is_none() || out.len() >= MAX_MESSAGE_BYTES {
            let after = &m[start + end..];
            if after == "\n" && already_cut == 0 {
                out.push('\n');
            } else if !after.is_empty() || already_cut > 0 {
                out.push_str(&cut_note(after.len() as u64 + already_cut));
            }
            return out;
        }
        if end < text.len() {
            out.push_str(&cut_note((text.len() - end) as u64));
        }
        out.push('\n');
        start += line.len();
    }
    if already_cut > 0 {
        out.push_str(&cut_note(already_cut));
    }
    out
}

/// Written by the supervising tick when an agent starts: which run is
/// live, so `orch abort` can address its request to that run alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub run: String,
    pub attempt: u32,
    pub orch_pid: u32,
}

pub fn write_run_info(path: &Path, info: &RunInfo) -> Result<()> {
    let text = serde_json::to_string(info)
        .map_err(|e| Error::other(format!("cannot render the run file: {e}")))?;
    crate::board::write_atomic(path, text.as_bytes())
}

pub fn read_run_info(path: &Path) -> Option<RunInfo> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_in_the_first_release_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = dir.path().join("run.json");
        let info = RunInfo {
            run: "1-2-3".into(),
            attempt: 3,
            orch_pid: 1,
        };
        write_run_info(&run, &info).expect("write");
        assert_eq!(read_run_info(&run), Some(info));
        let result = dir.path().join("result.json");
        std::fs::write(&result, r#"{"message":null,"status":"blocked"}"#).expect("write");
        assert_eq!(
            read_submission(&result),
            Some(Submission {
                status: Some(SubmitStatus::Blocked),
                message: None
            })
        );
        std::fs::write(&result, r#"{"status":"Done","message":"all fine"}"#).expect("write");
        assert_eq!(
            read_submission(&result),
            Some(Submission {
                status: None,
                message: Some("all fine".into())
            })
        );
    }

    #[test]
    fn messages_are_bounded_with_a_note() {
        assert_eq!(bound_message("", 0), "");
        assert_eq!(bound_message("one\ntwo\n", 0), "one\ntwo\n");
        assert_eq!(bound_message("one", 10), "one… [cut: 10 bytes more]");
        let long = "a".repeat(5000);
        assert_eq!(
            bound_message(&format!("{long}\nnext"), 0),
            format!("{}… [cut: 3.0 kB more]\nnext", &long[..2048])
        );
        // A message of many lines stops at the cap, its rest counted once.
        let many = "x\n".repeat(100_000);
        let b = bound_message(&many, 0);
        assert!(b.len() <= MAX_MESSAGE_BYTES + 40, "{}", b.len());
        assert!(
            b.ends_with("… [cut: 134.5 kB more]"),
            "{}",
            &b[b.len() - 30..]
        );
    }

    #[test]
    fn a_huge_result_file_is_read_only_in_part() {
        let dir = tempfile::tempdir().expect("temp dir");
        let result = dir.path().join("result.json");
        for (escape, status) in [("", Some(SubmitStatus::Failed)), ("\\u0041", None)] {
            let mut text = String::from(r#"{"status":"failed","message":""#);
            text.push_str(escape);
            while text.len() < 3 << 20 {
                text.push_str("ab\\u00e9");
            }
            text.push_str(r#""}"#);
            if status.is_none() {
                text = text.replace("\"status\":\"failed\"", "\"status\":\"odd\"");
            }
            std::fs::write(&result, &text).expect("write");
            let got = read_submission(&result).expect("a submission");
            assert_eq!(got.status, status);
            let m = got.message.expect("a message");
            assert!(m.len() < MAX_MESSAGE_LINE_BYTES + 40, "{}", m.len());
            assert!(m.ends_with(" MB more]"), "{}", &m[m.len() - 30..]);
        }
        // Not a regular file: not read at all.
        std::fs::remove_file(&result).expect("remove");
        std::os::unix::fs::symlink("/dev/zero", &result).expect("symlink");
        assert_eq!(read_submission(&result), None);
    }
}
