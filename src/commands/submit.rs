//! `orch submit`: how an agent reports its result from inside its worktree.

use crate::agent::contract::{self, SubmitStatus};
use crate::error::Result;

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

pub fn run(_ctx: &Ctx, args: Args) -> Result<i32> {
    contract::submit(args.status, args.message.as_deref())?;
    crate::outln!("orch: recorded {}", args.status.as_str());
    Ok(0)
}
