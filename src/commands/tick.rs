//! `orch tick`: one pass over the board, for cron, CI or a person.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::agent::supervise::Control;
use crate::board;
use crate::error::{Error, Result};
use crate::tick::{self, Options, Reporter};
use crate::ui::Style;

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
/// and nothing is wrong. SIGINT or SIGTERM stops the agents, settles their
/// tickets as interrupted (back to todo) and exits 0.
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
            crate::emitln!(
                "{}  {:<11}  {why}",
                st.cyan(&format!("{id:<width$}")),
                state
            );
        }
        return Ok(0);
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, interrupt.clone())
            .map_err(|e| Error::io("cannot install a signal handler", "", e))?;
    }
    let (main, _layout) = board::discover(&ctx.cwd)?;
    let reporter: Box<dyn Reporter> = if std::io::stdout().is_terminal() {
        Box::new(Live::start())
    } else {
        Box::new(Plain)
    };
    let result = tick::tick(&main.root, &opts, interrupt.clone(), reporter.as_ref());
    drop(reporter);
    let result = result?;
    if std::io::stdout().is_terminal() && result.claimed.is_empty() && result.reconciled.is_empty()
    {
        crate::emitln!("nothing to do (see `orch tick --explain` for why)");
    }
    if interrupt.load(Ordering::SeqCst) {
        let _ = writeln!(
            std::io::stderr(),
            "orch: interrupted; running tickets were settled as interrupted"
        );
    }
    Ok(0)
}

fn stamp() -> String {
    crate::ticket::now_rfc3339()
}

/// Timestamped lines, for cron mail and CI logs.
pub struct Plain;

impl Reporter for Plain {
    fn event(&self, ticket: Option<&str>, text: &str) {
        match ticket {
            Some(id) => crate::emitln!("{} {id}: {text}", stamp()),
            None => crate::emitln!("{} {text}", stamp()),
        }
    }
    fn problem(&self, text: &str) {
        crate::emitln!("{} skipped: {text}", stamp());
    }
    fn info(&self, _text: &str) {}
    fn started(&self, ticket: &str, _control: &Control) {
        crate::emitln!("{} {ticket}: agent started", stamp());
    }
    fn stopped(&self, _ticket: &str) {}
}

/// Events as lines, and below them one redrawn line per running ticket with
/// its elapsed time and the agent's last line of output.
pub struct Live {
    state: Arc<Mutex<LiveState>>,
    stop: Arc<AtomicBool>,
    painter: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct LiveState {
    running: BTreeMap<String, (Instant, Control)>,
    drawn: usize,
}

impl LiveState {
    fn clear(&mut self, out: &mut impl Write) {
        for _ in 0..self.drawn {
            let _ = write!(out, "\x1b[1A\x1b[2K");
        }
        self.drawn = 0;
    }

    fn draw(&mut self, out: &mut impl Write, st: &Style) {
        for (id, (since, control)) in &self.running {
            let elapsed = crate::duration::display(Duration::from_secs(since.elapsed().as_secs()));
            let mut last = control
                .last_line
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default();
            if last.chars().count() > 70 {
                last = last.chars().take(70).collect::<String>() + "…";
            }
            let _ = writeln!(
                out,
                "  {} {} {}  {}",
                st.cyan("▸"),
                st.bold(id),
                st.dim(&elapsed),
                last
            );
            self.drawn += 1;
        }
        let _ = out.flush();
    }
}

impl Live {
    pub fn start() -> Live {
        let state = Arc::new(Mutex::new(LiveState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let painter = {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let st = Style::stdout();
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(mut s) = state.lock() {
                        let mut out = std::io::stdout().lock();
                        s.clear(&mut out);
                        s.draw(&mut out, &st);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        };
        Live {
            state,
            stop,
            painter: Some(painter),
        }
    }

    fn line(&self, text: &str) {
        if let Ok(mut s) = self.state.lock() {
            let mut out = std::io::stdout().lock();
            s.clear(&mut out);
            let _ = writeln!(out, "{text}");
            s.draw(&mut out, &Style::stdout());
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(p) = self.painter.take() {
            let _ = p.join();
        }
        if let Ok(mut s) = self.state.lock() {
            s.running.clear();
            s.clear(&mut std::io::stdout().lock());
        }
    }
}

impl Reporter for Live {
    fn event(&self, ticket: Option<&str>, text: &str) {
        let st = Style::stdout();
        let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        match ticket {
            Some(id) => self.line(&format!("{} {} {text}", st.dim(&time), st.cyan(id))),
            None => self.line(&format!("{} {text}", st.dim(&time))),
        }
    }
    fn problem(&self, text: &str) {
        let st = Style::stdout();
        self.line(&format!("{} {text}", st.yellow("skipped:")));
    }
    fn info(&self, text: &str) {
        let st = Style::stdout();
        self.line(&st.dim(text));
    }
    fn started(&self, ticket: &str, control: &Control) {
        if let Ok(mut s) = self.state.lock() {
            s.running
                .insert(ticket.to_string(), (Instant::now(), control.clone()));
        }
    }
    fn stopped(&self, ticket: &str) {
        if let Ok(mut s) = self.state.lock() {
            let mut out = std::io::stdout().lock();
            s.clear(&mut out);
            s.running.remove(ticket);
            s.draw(&mut out, &Style::stdout());
        }
    }
}
