//! `orch watch`: the board, live. It reads what `orch status` reads, again
//! whenever a file of the board or this host's run state and logs changes
//! (inotify, through the `notify` crate), and at least every `--interval`
//! for the elapsed times. Like status it takes no lock and writes nothing
//! but the board cache, so it can run beside cron's ticks for days.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::Watcher;

use crate::board::{self, Board, Layout};
use crate::error::{Error, Result};
use crate::text::visible_line;
use crate::ticket::State;

use super::Ctx;

/// Watch the board: on a terminal, `orch status` redrawn whenever a
/// ticket, the run state or a log changes, with the last lines of each
/// running agent's output; through a pipe, one line per change (a ticket
/// added, moved or removed, a tick ended), for a log or a script.
///
/// Ends on Ctrl-C or SIGTERM, with exit 0.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Redraw at least this often, so elapsed times move.
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub interval: Duration,

    /// One line per change even on a terminal.
    #[arg(long)]
    pub plain: bool,
}

/// Changes closer together than this are shown as one: a tick writes a
/// handful of files per step.
const SETTLE: Duration = Duration::from_millis(150);

/// How long a vanished ticket is looked for before it is called removed.
const MOVE_GRACE: Duration = Duration::from_secs(1);

/// Lines of each running agent's output under the board.
const TAIL_LINES: usize = 3;

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let (_main, layout) = board::open_read(&ctx.cwd)?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Error::other(format!("cannot handle signal {signal}: {e}")))?;
    }
    let (tx, rx) = mpsc::channel();
    let _watcher = watch(&layout, tx)?;
    let terminal = !args.plain && std::io::stdout().is_terminal();
    let mut view: Box<dyn View> = if terminal {
        Box::new(Screen::enter())
    } else {
        Box::new(Lines::default())
    };
    view.show(&layout);
    while !stop.load(Ordering::Relaxed) {
        // A signal interrupts nothing here, so wait in short steps.
        let deadline = Instant::now() + args.interval;
        let mut changed = false;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if reader_gone() {
                // `orch watch | head`: the reader has what it wanted.
                return Ok(0);
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => {
                    changed = true;
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::other("the file watch ended"));
                }
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if changed {
            std::thread::sleep(SETTLE);
            while rx.try_recv().is_ok() {}
        }
        view.show(&layout);
    }
    drop(view);
    Ok(0)
}

/// Whether stdout is a pipe whose reader went away. A watch with nothing
/// to say writes nothing, so it would learn of it only at the next change.
fn reader_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Watch the plan and this host's state, logs and heartbeat. The board
/// cache is left out: reading the board rewrites it, and a watch that saw
/// its own writes would never rest.
fn watch(layout: &Layout, tx: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
    let ignore: Vec<PathBuf> = vec![layout.local.join("cache"), layout.plan.join(".git")];
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => {
                !matches!(e.kind, notify::EventKind::Access(_))
                    && e.paths
                        .iter()
                        .any(|p| !ignore.iter().any(|i| p.starts_with(i)))
            }
            // An overflowed queue lost events: read everything again.
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    })
    .map_err(|e| watch_error(&layout.plan, e))?;
    for dir in [&layout.plan, &layout.local] {
        watcher
            .watch(dir, notify::RecursiveMode::Recursive)
            .map_err(|e| watch_error(dir, e))?;
    }
    Ok(watcher)
}

fn watch_error(dir: &Path, e: notify::Error) -> Error {
    Error::other(format!("cannot watch {} for changes: {e}", dir.display())).hinted(
        "on Linux, too many watches: raise fs.inotify.max_user_watches \
         (sysctl), or use `orch status` in a loop",
    )
}

trait View {
    fn show(&mut self, layout: &Layout);
}

/// The terminal: the alternate screen, redrawn whole, given back on exit.
struct Screen;

impl Screen {
    fn enter() -> Screen {
        write_raw("\x1b[?1049h\x1b[?25l");
        Screen
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        write_raw("\x1b[?25h\x1b[?1049l");
    }
}

impl View for Screen {
    fn show(&mut self, layout: &Layout) {
        let mut board = Board::load_summary(layout);
        let status = super::status::collect(layout, &mut board);
        let now = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        let mut frame = format!(
            "orch watch  {}  {now}  (Ctrl-C to quit)\n\n",
            layout.root.display()
        );
        frame.push_str(&crate::ui::capture(|| super::status::print_text(&status)));
        for t in &status.in_progress {
            let Some(attempt) = t.attempt else { continue };
            let tail = log_tail(&layout.log_path(&t.id, attempt), TAIL_LINES);
            if tail.is_empty() {
                continue;
            }
            frame.push_str(&format!("\n{} attempt {attempt}, last output:\n", t.id));
            for line in tail {
                frame.push_str(&format!("  {}\n", visible_line(&line)));
            }
        }
        // Home, the frame, then clear what an older, longer frame left.
        let frame = frame.replace('\n', "\x1b[K\n");
        write_raw(&format!("\x1b[H{frame}\x1b[J"));
    }
}

/// The last `n` lines of a log, reading only its end.
fn log_tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(4096);
    if f.seek(SeekFrom::Start(from)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .skip(usize::from(from > 0))
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(200).collect())
        .collect();
    let keep = lines.len().saturating_sub(n);
    lines.drain(..keep);
    lines
}

fn write_raw(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

/// Without a terminal: a line per change since the last look.
#[derive(Default)]
struct Lines {
    /// None until the first look, which prints the counts instead.
    seen: Option<Snapshot>,
}

#[derive(Default, Clone, PartialEq)]
struct Snapshot {
    tickets: BTreeMap<String, Seen>,
    /// When the newest tick ended, and its line.
    last_tick: Option<(String, String)>,
    config_error: Option<String>,
}

#[derive(Clone, PartialEq)]
struct Seen {
    /// The state directory, or `invalid`.
    state: String,
    title: String,
    /// What moved it last, in words: the claim or the result.
    detail: String,
}

impl Snapshot {
    fn take(layout: &Layout) -> Snapshot {
        // Whole tickets: a done one's line names its last result.
        let mut board = Board::load(layout);
        let status = super::status::collect(layout, &mut board);
        let mut tickets = BTreeMap::new();
        for (id, states) in &board.seen {
            let t = board.tickets.get(id);
            let state = if board.invalid.contains(id) {
                "invalid".to_string()
            } else {
                states
                    .first()
                    .map(|s| s.dir().to_string())
                    .unwrap_or_default()
            };
            tickets.insert(
                id.clone(),
                Seen {
                    state,
                    title: t.map(|t| t.title().to_string()).unwrap_or_default(),
                    detail: t.map(detail).unwrap_or_default(),
                },
            );
        }
        Snapshot {
            tickets,
            last_tick: status.ticks.last.map(|b| {
                (
                    b.at.clone(),
                    format!("tick on {}: {}: {}", b.host, b.result, b.summary),
                )
            }),
            config_error: status.config_error,
        }
    }
}

/// The newest event of a ticket's log, in a few words.
fn detail(t: &crate::ticket::Ticket) -> String {
    if t.state == State::InProgress
        && let Some(c) = t.open_claim()
    {
        let host = c.host.as_deref().unwrap_or("?");
        return format!("attempt {} on {host}", c.attempt);
    }
    match t.last_result() {
        Some(r) => match &r.reason {
            Some(reason) if !reason.is_empty() => {
                format!("attempt {}: {}: {reason}", r.attempt, r.outcome.as_str())
            }
            _ => format!("attempt {}: {}", r.attempt, r.outcome.as_str()),
        },
        None => String::new(),
    }
}

impl View for Lines {
    fn show(&mut self, layout: &Layout) {
        let mut now = Snapshot::take(layout);
        if let Some(before) = &self.seen {
            // A ticket moved by a checkout is deleted before its new file
            // is written, and a busy machine can put the look between the
            // two. A ticket that vanished is looked for again before it is
            // called removed, so a move reads as a move.
            let deadline = Instant::now() + MOVE_GRACE;
            while Instant::now() < deadline
                && before
                    .tickets
                    .keys()
                    .any(|id| !now.tickets.contains_key(id))
            {
                std::thread::sleep(SETTLE);
                now = Snapshot::take(layout);
            }
        }
        let time = jiff::Zoned::now().strftime("%H:%M:%S").to_string();
        match &self.seen {
            None => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for s in now.tickets.values() {
                    *counts.entry(s.state.as_str()).or_default() += 1;
                }
                let counts: Vec<String> = [
                    "todo",
                    "in-progress",
                    "landing",
                    "done",
                    "blocked",
                    "invalid",
                ]
                .iter()
                .map(|s| format!("{s} {}", counts.get(s).copied().unwrap_or(0)))
                .collect();
                crate::outln!("{time} board: {}", counts.join("  "));
                if let Some(e) = &now.config_error {
                    crate::outln!("{time} config error: {}", visible_line(e));
                }
            }
            Some(before) => {
                for line in changes(before, &now) {
                    crate::outln!("{time} {}", visible_line(&line));
                }
            }
        }
        self.seen = Some(now);
    }
}

/// What changed between two looks, a line each, in id order.
fn changes(before: &Snapshot, now: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    if before.config_error != now.config_error {
        match &now.config_error {
            Some(e) => lines.push(format!("config error: {e}")),
            None => lines.push("orch.yaml is valid again".into()),
        }
    }
    for (id, t) in &now.tickets {
        let detail = if t.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.detail)
        };
        match before.tickets.get(id) {
            None => lines.push(format!("{id} added to {}: {}", t.state, t.title)),
            Some(old) if old.state != t.state => {
                lines.push(format!("{id} {} -> {}{detail}", old.state, t.state));
            }
            Some(old) if old.detail != t.detail && !t.detail.is_empty() => {
                lines.push(format!("{id} {}{detail}", t.state));
            }
            Some(_) => {}
        }
    }
    for (id, old) in &before.tickets {
        if !now.tickets.contains_key(id) {
            lines.push(format!("{id} removed (was in {})", old.state));
        }
    }
    if now.last_tick != before.last_tick
        && let Some((_, line)) = &now.last_tick
    {
        lines.push(line.clone());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: &str, detail: &str) -> Seen {
        Seen {
            state: state.into(),
            title: "T".into(),
            detail: detail.into(),
        }
    }

    #[test]
    fn a_move_an_addition_a_removal_and_a_tick_are_each_a_line() {
        let mut before = Snapshot::default();
        before.tickets.insert("a".into(), seen("todo", ""));
        before.tickets.insert("gone".into(), seen("done", ""));
        let mut now = Snapshot::default();
        now.tickets
            .insert("a".into(), seen("in-progress", "attempt 1 on h"));
        now.tickets.insert("b".into(), seen("todo", ""));
        now.last_tick = Some(("t1".into(), "tick on h: ok: 1 claimed".into()));
        assert_eq!(
            changes(&before, &now),
            vec![
                "a todo -> in-progress (attempt 1 on h)",
                "b added to todo: T",
                "gone removed (was in done)",
                "tick on h: ok: 1 claimed",
            ]
        );
        assert!(changes(&now, &now).is_empty());
    }

    #[test]
    fn a_new_claim_in_the_same_state_is_a_line() {
        let mut before = Snapshot::default();
        before
            .tickets
            .insert("a".into(), seen("in-progress", "attempt 1 on h"));
        let mut now = before.clone();
        now.tickets
            .insert("a".into(), seen("in-progress", "attempt 2 on h"));
        assert_eq!(
            changes(&before, &now),
            vec!["a in-progress (attempt 2 on h)"]
        );
    }

    #[test]
    fn a_tail_reads_the_last_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.log");
        let mut text = String::new();
        for i in 0..2000 {
            text.push_str(&format!("line {i}\n"));
        }
        std::fs::write(&path, text).unwrap();
        assert_eq!(log_tail(&path, 2), vec!["line 1998", "line 1999"]);
        assert!(log_tail(&dir.path().join("none"), 2).is_empty());
    }
}
