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
    // Neither named nor spelled `dir`: that is `orch demo`'s own flag, and
    // a global of the same name took its value too (`orch demo --dir y`
    // ran in y and made the sandbox at y/y).
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    /// Before the command: the form of earlier releases, kept for scripts.
    /// Each command that takes the board lock has its own --lock-timeout.
    #[arg(long, hide = true, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,

    /// When to colour the output: auto (on a terminal, unless NO_COLOR is
    /// set), always (even through a pipe, and despite NO_COLOR), never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// More detail: `tick` also prints what it decided not to do (no room
    /// under max_in_progress, a paused agent) and a closing line, even
    /// through a pipe.
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// `--color`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
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
    Retry(commands::retry::Args),
    Edit(commands::edit::Args),
    Rm(commands::rm::Args),
    Doctor(commands::doctor::Args),
    Gc(commands::gc::Args),
    Watch(commands::watch::Args),
    Completions(commands::completions::CompletionsArgs),
    Man(commands::completions::ManArgs),
    #[command(hide = true)]
    DemoAgent(commands::demo_agent::Args),
    #[command(hide = true, name = "sandbox-exec")]
    SandboxExec(commands::sandbox_exec::Args),
}

/// How long a command that changes the board waits for its lock: only
/// those take it, so only those have the flag.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LockArgs {
    /// How long to wait for the board lock before exiting with code 75
    /// [default: 30s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
}

/// The board lock's wait when no flag sets it.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

impl Command {
    /// The --lock-timeout given to the command, if it takes the lock.
    pub fn lock_timeout(&self) -> Option<Duration> {
        match self {
            Command::Demo(a) => a.lock.lock_timeout,
            Command::Init(a) => a.lock.lock_timeout,
            Command::New(a) => a.lock.lock_timeout,
            Command::Tick(a) => a.lock.lock_timeout,
            Command::Abort(a) => a.lock.lock_timeout,
            Command::Retry(a) => a.lock.lock_timeout,
            Command::Edit(a) => a.lock.lock_timeout,
            Command::Doctor(a) => a.lock.lock_timeout,
            Command::Rm(a) => a.lock.lock_timeout,
            Command::Gc(a) => a.lock.lock_timeout,
            Command::Status(_)
            | Command::Show(_)
            | Command::Watch(_)
            | Command::History(_)
            | Command::Submit(_)
            | Command::Log(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::DemoAgent(_)
            | Command::SandboxExec(_) => None,
        }
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse(text)
}
