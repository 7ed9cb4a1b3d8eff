//! A result decided but not yet on the board. The supervising tick writes
//! it to local state before it tries to record the result; if every try
//! fails (a full disk) and the tick gives up or dies, the next tick
//! records the true outcome instead of "its supervising orch died".
//!
//! The file is reserved at full size before the agent starts, and the
//! record is written over the reservation in place: a disk that filled up
//! while the agent ran has no room for a new file, but overwriting blocks
//! a file already has needs none.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::board::Layout;
use crate::error::{Error, Result};
use crate::outcome::{Outcome, Settlement};

/// Room for the outcome, a reason cut to fit, and the run id.
const RESERVED: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Record {
    run: String,
    outcome: String,
    reason: String,
    counts: bool,
    /// The attempt's tokens and the ticket's spent budget, so that a
    /// result recorded by a later tick still counts them.
    #[serde(default)]
    tokens: u64,
    #[serde(default)]
    budget_spent: Option<String>,
}

pub fn path(layout: &Layout, id: &str, attempt: u32) -> PathBuf {
    // Beside the run directory, not in it: the agent may write there.
    layout.state_dir(id).join(format!("pending-{attempt}"))
}

/// Reserve the record's room, before the agent runs.
pub fn reserve(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    let mut f = std::fs::File::create(path).map_err(|e| Error::io("cannot create", path, e))?;
    f.write_all(&[b' '; RESERVED])
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io("cannot reserve room in", path, e))?;
    match path.parent() {
        Some(dir) => crate::board::sync_dir(dir),
        None => Ok(()),
    }
}

/// Write the decided result over the reservation.
pub fn write(path: &Path, run: &str, settlement: &Settlement) -> Result<()> {
    let mut reason = settlement.reason.clone();
    let mut bytes;
    loop {
        bytes = serde_json::to_vec(&Record {
            run: run.to_string(),
            outcome: settlement.outcome.as_str().to_string(),
            reason: reason.clone(),
            counts: settlement.counts,
            tokens: settlement.tokens,
            budget_spent: settlement.budget_spent.clone(),
        })
        .map_err(|e| Error::other(format!("cannot encode the pending result: {e}")))?;
        if bytes.len() <= RESERVED || reason.is_empty() {
            break;
        }
        let keep = reason.len() / 2;
        let cut = (0..=keep)
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        reason.truncate(cut);
    }
    bytes.resize(RESERVED.max(bytes.len()), b' ');
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("cannot open", path, e))?;
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.write_all(&bytes))
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io("cannot write", path, e))
}

/// The result decided for run `run`, if its tick wrote one.
pub fn read(path: &Path, run: &str) -> Option<Settlement> {
    let bytes = crate::safe_read::regular_file(path, RESERVED as u64 * 2).ok()??;
    let record: Record = serde_json::from_slice(bytes.trim_ascii()).ok()?;
    if record.run != run {
        return None;
    }
    let outcome: Outcome = record.outcome.parse().ok()?;
    Some(Settlement {
        tokens: record.tokens,
        budget_spent: record.budget_spent,
        ..Settlement::new(outcome, record.reason).counting(record.counts)
    })
}

pub fn forget(layout: &Layout, id: &str, attempt: u32) {
    let _ = std::fs::remove_file(path(layout, id, attempt));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fits_its_reservation_and_reads_back_for_its_run_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pending-1");
        reserve(&path).expect("reserve");
        assert_eq!(read(&path, "r1"), None, "a bare reservation is no result");
        let long = "é".repeat(10_000);
        let s = Settlement::new(Outcome::VerifyFailed, long);
        write(&path, "r1", &s).expect("write");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            RESERVED as u64
        );
        let back = read(&path, "r1").expect("read back");
        assert_eq!(back.outcome, Outcome::VerifyFailed);
        assert!(back.reason.starts_with('é') && back.reason.len() < RESERVED);
        assert_eq!(read(&path, "r2"), None, "another run's record");
    }
}
