//! The command line. Doc comments here are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::commands;

/// orch: a file-system-native orchestrator for coding agents.
///
/// Tickets are markdown files on the branch orch/plan, checked out at
/// .orch/plan. `orch tick`, run by cron, CI or a person, claims ready
/// tickets, runs a coding agent for each in its own git worktree under hard
/// and no-output timeouts, and commits every result. Git history is the
/// audit log; there is no daemon and no database.
///
/// Exit codes: 0 done (failed attempts are recorded, not errors), 1 orch
/// failed, 2 usage or configuration error, 75 the board lock stayed busy.
#[derive(Debug, Parser)]
#[command(name = "orch", version, max_term_width = 100)]
pub struct Cli {
    /// Run as if orch was started in DIR.
    #[arg(short = 'C', long = "dir", global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// How long to wait for the board lock before exiting with code 75.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Demo(commands::demo::Args),
    Init(commands::init::Args),
    New(commands::new::Args),
    Status(commands::status::Args),
    Show(commands::show::Args),
    History(commands::history::Args),
    Tick(commands::tick::Args),
    Submit(commands::submit::Args),
    Log(commands::log::Args),
    Abort(commands::abort::Args),
    Doctor(commands::doctor::Args),
    #[command(hide = true)]
    DemoAgent(commands::demo_agent::Args),
    #[command(hide = true, name = "sandbox-exec")]
    SandboxExec(commands::sandbox_exec::Args),
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}
