//! `orch tick`: one pass over the board, for cron, CI or a person.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::board;
use crate::error::{Error, Result};
use crate::heartbeat::Beat;
use crate::notify::{Notice, Notifying};
use crate::tick::{self, Options, Reporter};
use crate::ui::Style;
use crate::ui::report::{Live, Plain};

use super::Ctx;

/// Reconcile, claim ready tickets, run the agent for each, commit results.
///
/// Reconciles what earlier ticks left behind, claims ready tickets (by
/// priority, then id, up to --jobs and max_in_progress), runs the agent for
/// each in its own worktree under the hard and no-output timeouts, and
/// commits every result on orch/plan. The board lock is held only while
/// reading and committing, so overlapping ticks claim different tickets.
///
/// On a terminal it shows live progress; otherwise it prints timestamped
/// lines fit for cron mail, and nothing at all when there was nothing to do
/// and nothing is wrong. SIGINT, SIGTERM, SIGHUP or SIGQUIT stops the
/// agents, settles their tickets as interrupted (back to todo) and exits 0.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run up to N claimed tickets at once [default: max_in_progress].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<u32>,
    /// Only consider this ticket.
    #[arg(long, value_name = "ID")]
    pub ticket: Option<String>,
    /// Print what the tick would do with every ticket and why; change nothing.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if args.jobs == Some(0) {
        return Err(Error::usage("--jobs must be at least 1"));
    }
    if let Some(id) = &args.ticket {
        crate::ticket::require_id(id)?;
    }
    let opts = Options {
        jobs: args.jobs,
        only: args.ticket.clone(),
        lock_timeout: ctx.lock_timeout,
    };
    if args.explain {
        let (_main, layout) = board::open_read(&ctx.cwd)?;
        let st = Style::stdout();
        let rows = tick::explain(&layout, &opts)?;
        if rows.is_empty() {
            crate::emitln!("no tickets");
        }
        let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (id, state, why) in rows {
            // Ids of invalid tickets come from file names, reasons from
            // ticket text and agent output.
            let id = crate::text::visible_line(&id);
            crate::emitln!(
                "{}  {:<11}  {}",
                st.cyan(&format!("{id:<width$}")),
                state,
                crate::text::visible_line(&why)
            );
        }
        return Ok(0);
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    // SIGHUP and SIGQUIT too: a cron or ssh session going away must stop
    // the agents and settle their tickets, not kill orch outright and leave
    // a quiet agent running past its limits.
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
        signal_hook::consts::SIGQUIT,
    ] {
        signal_hook::flag::register(sig, interrupt.clone())
            .map_err(|e| Error::io("cannot install a signal handler", "", e))?;
    }
    let (main, layout) = board::discover(&ctx.cwd)?;
    let inner: Arc<dyn Reporter> = if std::io::stdout().is_terminal() {
        Arc::new(Live::start())
    } else {
        Arc::new(Plain)
    };
    let began = std::time::Instant::now();
    let notifying = Notifying::new(inner);
    let result = tick::tick(&main.root, &opts, interrupt.clone(), &notifying);
    let result = result.and_then(|r| {
        let unsettled: Vec<&str> = r
            .settled
            .iter()
            .filter(|(_, end)| matches!(end, tick::RunEnd::Error(_)))
            .map(|(id, _)| id.as_str())
            .chain(r.reconciled.failed.iter().map(String::as_str))
            .collect();
        if unsettled.is_empty() {
            return Ok(r);
        }
        // Each error was reported as it happened; the exit code tells cron.
        Err(Error::other(format!(
            "could not record the result of {}",
            unsettled.join(", ")
        ))
        .hinted("the next tick settles them; the work is on their ticket branches"))
    });
    let beat = match &result {
        Ok(r) => Beat::now(0, &summary(r, interrupt.load(Ordering::SeqCst))),
        Err(e) => Beat::now(e.exit_code(), &crate::error::render_chain(e)),
    };
    if beat.failed() {
        if !notifying.is_started()
            && let Ok((config, _)) = crate::config::Config::load(&layout.config_path())
        {
            notifying.start(&layout, &config);
        }
        notifying.send(Notice::tick_failed(&layout, &beat.summary));
    }
    notifying.finish();
    heartbeat(&main, &layout, &beat, &result, &notifying);
    drop(notifying);
    let result = result?;
    let verbose = crate::ui::verbose() > 0;
    if (verbose || std::io::stdout().is_terminal())
        && result.claimed.is_empty()
        && result.reconciled.is_empty()
    {
        crate::emitln!("nothing to do (see `orch tick --explain` for why)");
    }
    if verbose {
        crate::emitln!(
            "tick over in {} ms: {} claimed, {} settled",
            began.elapsed().as_millis(),
            result.claimed.len(),
            result.settled.len()
        );
    }
    if interrupt.load(Ordering::SeqCst) {
        let _ = writeln!(
            std::io::stderr(),
            "orch: interrupted; running tickets were settled as interrupted"
        );
    }
    Ok(0)
}

/// Record the tick locally and, with a remote board, on the remote. A
/// heartbeat that cannot be written is said, never a failed tick.
fn heartbeat(
    main: &crate::git::MainRepo,
    layout: &board::Layout,
    beat: &Beat,
    result: &Result<tick::TickResult>,
    reporter: &dyn Reporter,
) {
    let warn = |text: String| {
        reporter.report(&tick::Event::ConfigWarning(text));
    };
    if let Err(e) = crate::heartbeat::record(layout, beat) {
        warn(crate::error::render_chain(&e));
    }
    let Some(remote) = board::txn::shared_through(main, layout) else {
        return;
    };
    // A tick that could not reach the remote would only wait for it again.
    if let Err(e) = result
        && crate::remote::is_unreachable(e)
    {
        return;
    }
    if !crate::heartbeat::worth_publishing(layout, beat) {
        return;
    }
    if let Err(e) = crate::heartbeat::publish(layout, &remote.name, beat, remote.timeout) {
        warn(format!(
            "could not publish this tick's heartbeat to `{}`: {}",
            remote.name,
            crate::error::render_chain(&e)
        ));
    }
}

/// The heartbeat's line for a tick that ended well.
pub(crate) fn summary(r: &tick::TickResult, interrupted: bool) -> String {
    let mut parts = Vec::new();
    if !r.claimed.is_empty() {
        parts.push(format!("claimed {}", r.claimed.join(", ")));
    }
    let results: Vec<String> = r
        .settled
        .iter()
        .map(|(id, end)| match end {
            tick::RunEnd::Settled(o) => format!("{id} {o}"),
            tick::RunEnd::Stale => format!("{id} stale"),
            tick::RunEnd::Error(_) => format!("{id} not recorded"),
        })
        .collect();
    if !results.is_empty() {
        parts.push(format!("results: {}", results.join(", ")));
    }
    if !r.reconciled.is_empty() {
        parts.push("settled what earlier ticks left".into());
    }
    if !r.landed.landed.is_empty() {
        parts.push(format!("landed {}", r.landed.landed.join(", ")));
    }
    if interrupted {
        parts.push("interrupted".into());
    }
    if parts.is_empty() {
        "nothing to do".into()
    } else {
        parts.join("; ")
    }
}
