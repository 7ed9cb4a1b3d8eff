//! Attempt logs on this host: `.orch/logs/<id>/<attempt>.log`, the full
//! output of each attempt. The plan branch holds only their tails.

use std::io::{Read, Seek, SeekFrom};

use crate::agent::supervise::TAIL_LINES;
use crate::board::{Layout, host_name};

/// How much of the end of a log is read for its tail.
const TAIL_BYTES: u64 = 16 * 1024;

/// Longest line of a tail: the tail is quoted in the retry prompt and the
/// attempt summary, one output line per line (the live tail in
/// `agent::supervise` keeps the same 400 bytes).
const TAIL_LINE_BYTES: usize = 400;

/// The last lines of an attempt's local log, if this host has it: at most
/// [`TAIL_LINES`] of at most [`TAIL_LINE_BYTES`] each. Only a regular file
/// is read (a fifo left in its place must not hang a tick).
pub fn tail(layout: &Layout, id: &str, attempt: u32) -> Vec<String> {
    let Ok(Some(mut f)) = crate::safe_read::open(&layout.log_path(id, attempt)) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = usize::from(start > 0); // the first line may be cut
    let from = lines.len().saturating_sub(TAIL_LINES).max(skip);
    lines[from.min(lines.len())..]
        .iter()
        .map(|l| crate::safe_read::cut(l, TAIL_LINE_BYTES, 0))
        .collect()
}

/// Where the log is, for the attempt summary ("" when this host has none).
pub fn summary_field(layout: &Layout, id: &str, attempt: u32) -> String {
    let path = layout.log_path(id, attempt);
    match std::fs::metadata(&path) {
        Ok(m) => format!(
            "{} ({} bytes, on host {})",
            layout.display_local(&path),
            m.len(),
            host_name()
        ),
        Err(_) => String::new(),
    }
}
