//! One module per subcommand: an `Args` struct whose doc comments are the
//! help text, and a `run` that orchestrates library calls and printing.

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Cli, Command};
use crate::error::{Error, Result};

pub mod abort;
pub mod checkup;
pub mod completions;
pub mod demo;
pub mod demo_agent;
pub mod doctor;
pub mod edit;
pub mod editor;
pub mod gc;
pub mod history;
pub mod ids;
pub mod init;
pub mod log;
pub mod new;
pub mod retry;
pub mod rm;
pub mod sandbox_exec;
pub mod show;
pub mod status;
pub mod submit;
pub mod tick;
pub mod watch;

/// What every command gets from the global flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub cwd: PathBuf,
    pub lock_timeout: Duration,
}

pub fn run(cli: Cli) -> Result<i32> {
    crate::ui::configure(cli.color, cli.verbose);
    let cwd = match cli.directory {
        Some(d) => d,
        None => std::env::current_dir()
            .map_err(|e| Error::io("cannot read the current directory", ".", e))?,
    };
    let ctx = Ctx {
        cwd,
        lock_timeout: cli
            .command
            .lock_timeout()
            .or(cli.lock_timeout)
            .unwrap_or(crate::cli::DEFAULT_LOCK_TIMEOUT),
    };
    match &cli.command {
        Command::Init(_) => refuse_inside_run(&ctx, "init")?,
        Command::New(_) => refuse_inside_run(&ctx, "new")?,
        Command::Tick(a) if !a.explain => refuse_inside_run(&ctx, "tick")?,
        Command::Abort(_) => refuse_inside_run(&ctx, "abort")?,
        Command::Retry(_) => refuse_inside_run(&ctx, "retry")?,
        Command::Edit(_) => refuse_inside_run(&ctx, "edit")?,
        Command::Rm(_) => refuse_inside_run(&ctx, "rm")?,
        Command::Gc(a) if !a.dry_run => refuse_inside_run(&ctx, "gc")?,
        _ => {}
    }
    let mut command = cli.command;
    expand_ids(&ctx, &mut command)?;
    match command {
        Command::Init(a) => init::run(&ctx, a),
        Command::New(a) => new::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Show(a) => show::run(&ctx, a),
        Command::History(a) => history::run(&ctx, a),
        Command::Tick(a) => tick::run(&ctx, a),
        Command::Submit(a) => submit::run(&ctx, a),
        Command::Log(a) => log::run(&ctx, a),
        Command::Abort(a) => abort::run(&ctx, a),
        Command::Retry(a) => retry::run(&ctx, a),
        Command::Edit(a) => edit::run(&ctx, a),
        Command::Rm(a) => rm::run(&ctx, a),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => completions::man(a),
        Command::Doctor(a) => doctor::run(&ctx, a),
        Command::Gc(a) => gc::run(&ctx, a),
        Command::Watch(a) => watch::run(&ctx, a),
        Command::Demo(a) => demo::run(&ctx, a),
        Command::DemoAgent(a) => demo_agent::run(&ctx, a),
        Command::SandboxExec(a) => sandbox_exec::run(&ctx, a),
    }
}

/// Wherever a command takes an id, its number or a start no other id
/// shares stands for it.
fn expand_ids(ctx: &Ctx, command: &mut Command) -> Result<()> {
    let id = match command {
        Command::Show(a) => &mut a.id,
        Command::Log(a) => &mut a.id,
        Command::Abort(a) => &mut a.id,
        Command::Retry(a) => &mut a.id,
        Command::Edit(a) => &mut a.id,
        Command::Rm(a) => &mut a.id,
        Command::History(a) => match &mut a.id {
            Some(id) => id,
            None => return Ok(()),
        },
        Command::Tick(a) => match &mut a.ticket {
            Some(id) => id,
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    *id = ids::expand(&ctx.cwd, id)?;
    Ok(())
}

/// Board changes are the supervising orch's alone: an agent that runs
/// `orch tick` would run other tickets inside its own run, under its limits
/// and in its worktree. Known by the run id every agent inherits, or by a
/// directory inside a ticket worktree.
fn refuse_inside_run(ctx: &Ctx, what: &str) -> Result<()> {
    let run = std::env::var(crate::process::RUN_ID_VAR)
        .ok()
        .filter(|v| !v.is_empty());
    let in_worktree = ctx.cwd.canonicalize().ok().is_some_and(|dir| {
        let parts: Vec<_> = dir.components().map(|c| c.as_os_str().to_owned()).collect();
        parts
            .windows(2)
            .any(|w| w[0] == ".orch" && w[1] == "worktrees")
    });
    let why = match (run, in_worktree) {
        (Some(run), _) => format!("inside the agent run {run}"),
        (None, true) => format!("in a ticket's worktree ({})", ctx.cwd.display()),
        (None, false) => return Ok(()),
    };
    Err(
        Error::usage(format!("`orch {what}` cannot run {why}")).hinted(
            "claims, ticks and settles belong to the supervising orch; an agent reports its result with `orch submit`",
        ),
    )
}

/// Print JSON to stdout; a closed pipe is not an error worth a message.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    // Written as it is rendered: the JSON of a large board is not held
    // whole in memory.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(Error::other(format!("cannot write JSON: {e}"))),
    }
}

/// Seconds since an RFC 3339 timestamp, if it parses.
pub fn seconds_since(at: &str) -> Option<i64> {
    let t: jiff::Timestamp = at.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

pub fn human_secs(secs: i64) -> String {
    crate::duration::display(Duration::from_secs(secs.max(0) as u64))
}
