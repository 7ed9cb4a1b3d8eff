//! `orch submit`: how an agent reports its result from inside its worktree.

use crate::error::{Error, Result};

use super::Ctx;

/// Report the result of this attempt (for the agent, inside its worktree).
///
/// Writes $ORCH_RESULT_FILE, which orch reads when the agent exits:
/// `done` means the work is finished (it still has to pass verify),
/// `blocked` sends the ticket to a person, `failed` ends the attempt as a
/// failure (retried while attempts remain).
#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_enum)]
    pub status: SubmitStatus,
    /// One line for the person reading the board.
    #[arg(long, short = 'm', value_name = "TEXT")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
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

pub fn run(_ctx: &Ctx, args: Args) -> Result<i32> {
    write(args.status, args.message.as_deref())?;
    crate::outln!("orch: recorded {}", args.status.as_str());
    Ok(0)
}

/// Write the result file named by $ORCH_RESULT_FILE.
pub fn write(status: SubmitStatus, message: Option<&str>) -> Result<()> {
    let Some(path) = std::env::var_os("ORCH_RESULT_FILE") else {
        return Err(Error::usage(
            "ORCH_RESULT_FILE is not set: `orch submit` is for agents that `orch tick` runs",
        )
        .hinted("to change a ticket by hand, move its file in .orch/plan/tickets/"));
    };
    let body = serde_json::json!({ "status": status.as_str(), "message": message });
    crate::board::write_atomic(std::path::Path::new(&path), body.to_string().as_bytes())
}
