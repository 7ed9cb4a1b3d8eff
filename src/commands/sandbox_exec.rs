//! `orch sandbox-exec` (hidden): how orch starts an agent inside the
//! sandbox. It restricts itself with Landlock, then becomes the agent with
//! exec: same process, group and environment.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::agent::sandbox::{self, Policy};
use crate::error::{Error, Result};

use super::Ctx;

/// Run a command with writes allowed only beneath the given paths.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A place the command may write beneath (repeatable).
    #[arg(long = "write", value_name = "PATH")]
    pub write: Vec<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn run(_ctx: &Ctx, args: Args) -> Result<i32> {
    let policy = Policy {
        writable: args.write,
    };
    sandbox::restrict_self(&policy).map_err(Error::other)?;
    let Some((program, rest)) = args.command.split_first() else {
        return Err(Error::usage("sandbox-exec needs a command"));
    };
    // exec returns only on failure.
    let e = std::process::Command::new(program).args(rest).exec();
    eprintln!("{}{program}: {e}", sandbox::EXEC_FAILED_MARK);
    Ok(sandbox::EXEC_FAILED_CODE)
}
