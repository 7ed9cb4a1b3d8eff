//! Attempt logs on this host: `.orch/logs/<id>/<attempt>.log`, the full
//! output of each attempt. The plan branch holds only their tails.

use std::io::{Read, Seek, SeekFrom};

use crate::agent::supervise::TAIL_LINES;
use crate::board::{Layout, host_name};

/// How much of the end of a log is read for its tail.
const TAIL_BYTES: u64 = 16 * 1024;

/// The last lines of an attempt's local log, if this host has it.
pub fn tail(layout: &Layout, id: &str, attempt: u32) -> Vec<String> {
    let Ok(mut f) = std::fs::File::open(layout.log_path(id, attempt)) else {
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
    lines[from.min(lines.len())..].to_vec()
}

/// Where the log is, for the attempt summary ("" when this host has none).
pub fn summary_field(layout: &Layout, id: &str, attempt: u32) -> String {
    match std::fs::metadata(layout.log_path(id, attempt)) {
        Ok(m) => format!(
            ".orch/logs/{id}/{attempt}.log ({} bytes, on host {})",
            m.len(),
            host_name()
        ),
        Err(_) => String::new(),
    }
}
