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
        message: message.map(str::to_string),
    };
    let text = serde_json::to_string(&body)
        .map_err(|e| Error::other(format!("cannot render the result: {e}")))?;
    crate::board::write_atomic(Path::new(&path), text.as_bytes())
}

/// What the agent submitted, if it wrote a result file that parses. A
/// status this version does not know is read as no status, with the
/// message kept for the summary.
pub fn read_submission(path: &Path) -> Option<Submission> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    let status = serde_json::from_value(value.get("status")?.clone()).ok();
    let message = value
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    Some(Submission { status, message })
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
}
