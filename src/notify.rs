//! `notify:` in orch.yaml: commands of the user's own run after board
//! events (a claim, a result, a landing, a tick that failed), to post to a
//! chat webhook or send mail.
//!
//! A notifier runs on a worker thread, after the commit its event reports,
//! so a slow webhook never holds the board lock or delays an agent. Each
//! runs from its argv (no shell unless the user writes `sh -c`), in its own
//! process group, with the event in its environment and as one JSON object
//! on its stdin; the whole group is killed at its time limit. Its output
//! goes to `<git dir>/orch/notify.log`. A notifier that fails or is killed
//! is one line in the tick's output and never changes the tick's exit code:
//! telling people about the work must not stop the work.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::agent::supervise::Control;
use crate::board::Layout;
use crate::config::{Config, Notifier};
use crate::outcome::Outcome;
use crate::tick::{Event, Reporter};
use crate::ticket::State;

/// Every event a notifier can ask for: each outcome by its name, and the
/// moves and failures people watch for.
pub const EVENTS: &[&str] = &[
    "claimed",
    "done",
    "blocked",
    "landed",
    "conflict",
    "land-failed",
    "success",
    "failed",
    "timeout",
    "stalled",
    "no-changes",
    "verify-failed",
    "aborted",
    "interrupted",
    "abandoned",
    "agent-unavailable",
    "over-budget",
    "stale",
    "released",
    "budget-spent",
    "tick-failed",
];

/// The word for every event, in `on:`.
pub const ALL: &str = "all";

/// The largest notify.log kept before it is rotated to `notify.log.1`.
const MAX_LOG_BYTES: u64 = 1 << 20;

/// One board event as notifiers see it.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// The names this event answers to, the most specific first: a
    /// success that reached done is `success`, then `done`.
    #[serde(skip)]
    pub names: Vec<&'static str>,
    /// The name an entry was run for (filled per entry).
    pub event: String,
    pub ticket: Option<String>,
    pub attempt: Option<u32>,
    pub outcome: Option<String>,
    /// The attempt's summary file in the plan worktree, when there is one.
    pub summary: Option<PathBuf>,
    /// One line for a person.
    pub text: String,
    pub host: String,
    /// The repository's checkout.
    pub repository: PathBuf,
}

impl Notice {
    fn new(
        names: Vec<&'static str>,
        ticket: Option<&str>,
        text: String,
        layout: &Layout,
    ) -> Notice {
        Notice {
            event: names.first().map(|n| n.to_string()).unwrap_or_default(),
            names,
            ticket: ticket.map(str::to_string),
            attempt: None,
            outcome: None,
            summary: None,
            text,
            host: crate::board::host_name(),
            repository: layout.root.clone(),
        }
    }

    /// A tick that ended with an error.
    pub fn tick_failed(layout: &Layout, text: &str) -> Notice {
        Notice::new(
            vec!["tick-failed"],
            None,
            format!("orch tick failed: {text}"),
            layout,
        )
    }

    /// The name `entry` runs for, if any.
    fn matches(&self, entry: &Notifier) -> Option<&'static str> {
        if entry.on.iter().any(|o| o == ALL) {
            return self.names.first().copied();
        }
        self.names
            .iter()
            .copied()
            .find(|n| entry.on.iter().any(|o| o == n))
    }
}

/// The notice of a tick event, if notifiers hear of it.
pub fn notice_of(layout: &Layout, event: &Event) -> Option<Notice> {
    let line = crate::ui::report::line(event);
    let text = match &line.id {
        Some(id) => format!("{id}: {}", line.text),
        None => line.text.clone(),
    };
    let with_result = |mut n: Notice, id: &str, attempt: u32, outcome: Outcome| {
        n.attempt = Some(attempt);
        n.outcome = Some(outcome.as_str().to_string());
        let summary = layout
            .plan
            .join(crate::board::layout::summary_rel(id, attempt));
        n.summary = summary.is_file().then_some(summary);
        n
    };
    let moved = |outcome: Outcome, to: State| {
        let mut names = vec![outcome.as_str()];
        match to {
            State::Done => names.push("done"),
            State::Blocked => names.push("blocked"),
            _ => {}
        }
        names.dedup();
        names
    };
    Some(match event {
        Event::Claimed { id, attempt, .. } => {
            let mut n = Notice::new(vec!["claimed"], Some(id), text, layout);
            n.attempt = Some(*attempt);
            n
        }
        Event::Settled {
            id,
            attempt,
            outcome,
            to,
            ..
        } => with_result(
            Notice::new(moved(*outcome, *to), Some(id), text, layout),
            id,
            *attempt,
            *outcome,
        ),
        Event::Abandoned {
            id, attempt, to, ..
        } => with_result(
            Notice::new(moved(Outcome::Abandoned, *to), Some(id), text, layout),
            id,
            *attempt,
            Outcome::Abandoned,
        ),
        Event::Deleted {
            id,
            attempt,
            outcome,
        } => with_result(
            Notice::new(vec![outcome.as_str()], Some(id), text, layout),
            id,
            *attempt,
            *outcome,
        ),
        Event::Refused { id } => Notice::new(vec!["stale"], Some(id), text, layout),
        Event::Released { id } => Notice::new(vec!["released"], Some(id), text, layout),
        Event::Landed { id, .. } => {
            let mut n = Notice::new(vec!["landed", "done"], Some(id), text, layout);
            n.outcome = Some(Outcome::Landed.as_str().to_string());
            n
        }
        Event::HandedBack {
            id, outcome, to, ..
        } => {
            let mut n = Notice::new(moved(*outcome, *to), Some(id), text, layout);
            n.outcome = Some(outcome.as_str().to_string());
            n
        }
        Event::BudgetSpent { id, .. } => {
            Notice::new(vec!["budget-spent"], id.as_deref(), text, layout)
        }
        _ => return None,
    })
}

/// A reporter that passes every event on and sends the ones notifiers ask
/// for to a worker thread, once the tick has read orch.yaml
/// ([`Reporter::configured`]).
pub struct Notifying {
    inner: Arc<dyn Reporter>,
    worker: Mutex<Option<Worker>>,
    /// Whether `configured` has run (a tick reads orch.yaml once).
    started: Mutex<bool>,
}

struct Worker {
    layout: Layout,
    tx: mpsc::Sender<Notice>,
    handle: JoinHandle<()>,
}

impl Notifying {
    pub fn new(inner: Arc<dyn Reporter>) -> Notifying {
        Notifying {
            inner,
            worker: Mutex::new(None),
            started: Mutex::new(false),
        }
    }

    /// Start the worker for `config`'s notifiers (once; none, no thread).
    pub fn start(&self, layout: &Layout, config: &Config) {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if *started {
            return;
        }
        *started = true;
        if config.notify.is_empty() {
            return;
        }
        let (tx, rx) = mpsc::channel::<Notice>();
        let entries = config.notify.clone();
        let default_timeout = config.notify_timeout;
        let inner = self.inner.clone();
        let worker_layout = layout.clone();
        let handle = std::thread::spawn(move || {
            for notice in rx {
                for entry in &entries {
                    let Some(name) = notice.matches(entry) else {
                        continue;
                    };
                    let mut notice = notice.clone();
                    notice.event = name.to_string();
                    let limit = entry.timeout.unwrap_or(default_timeout);
                    if let Err(why) = run(&worker_layout, entry, &notice, limit) {
                        inner.report(&Event::NotifyFailed {
                            id: notice.ticket.clone(),
                            text: why,
                        });
                    }
                }
            }
        });
        *self.worker.lock().unwrap_or_else(|e| e.into_inner()) = Some(Worker {
            layout: layout.clone(),
            tx,
            handle,
        });
    }

    /// Send a notice built outside the tick's events (a failed tick).
    pub fn send(&self, notice: Notice) {
        if let Some(w) = &*self.worker.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = w.tx.send(notice);
        }
    }

    /// Whether notifiers were started (orch.yaml was read and has some).
    pub fn is_started(&self) -> bool {
        *self.started.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for every notice sent so far to be run (each under its limit).
    pub fn finish(&self) {
        let worker = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = worker {
            drop(w.tx);
            let _ = w.handle.join();
        }
    }
}

impl Reporter for Notifying {
    fn report(&self, event: &Event) {
        self.inner.report(event);
        let guard = self.worker.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(w) = &*guard
            && let Some(notice) = notice_of(&w.layout, event)
        {
            let _ = w.tx.send(notice);
        }
    }
    fn started(&self, ticket: &str, control: &Control) {
        self.inner.started(ticket, control);
    }
    fn stopped(&self, ticket: &str) {
        self.inner.stopped(ticket);
    }
    fn configured(&self, layout: &Layout, config: &Config) {
        self.start(layout, config);
    }
}

/// Where notifiers' output goes.
pub fn log_path(layout: &Layout) -> PathBuf {
    layout.local.join("notify.log")
}

/// Run one notifier for `notice`; `Err` is the line the tick reports.
fn run(layout: &Layout, entry: &Notifier, notice: &Notice, limit: Duration) -> Result<(), String> {
    let program = entry.command.first().map(String::as_str).unwrap_or("");
    let shown = format!(
        "notifier `{}` for {}",
        crate::text::visible_line(program),
        notice.event
    );
    let log_path = log_path(layout);
    let log = open_log(&log_path, &shown).map_err(|e| {
        format!(
            "{shown} not run: cannot write {}: {e}",
            layout.display_local(&log_path)
        )
    })?;
    let json = serde_json::to_string(notice).unwrap_or_default();
    let mut cmd = std::process::Command::new(program);
    cmd.args(&entry.command[1..])
        .current_dir(&layout.root)
        .env("ORCH_EVENT", &notice.event)
        .env("ORCH_TEXT", &notice.text)
        .env("ORCH_HOST", &notice.host)
        .env("ORCH_REPOSITORY", &notice.repository)
        .env_remove(crate::process::RUN_ID_VAR)
        .stdin(Stdio::piped())
        .process_group(0);
    for (key, value) in [
        ("ORCH_TICKET", notice.ticket.clone()),
        ("ORCH_ATTEMPT", notice.attempt.map(|a| a.to_string())),
        ("ORCH_OUTCOME", notice.outcome.clone()),
        (
            "ORCH_SUMMARY",
            notice.summary.as_ref().map(|p| p.display().to_string()),
        ),
    ] {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    match (log.try_clone(), log.try_clone()) {
        (Ok(out), Ok(err)) => {
            cmd.stdout(out).stderr(err);
        }
        _ => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let mut child = crate::process::spawn_registered(&mut cmd, "orch-notify")
        .map_err(|e| format!("{shown} could not start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A notifier that never reads its stdin must not block orch: the
        // object is far smaller than a pipe's buffer, and a closed pipe
        // is the notifier's choice.
        let _ = stdin.write_all(json.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let status = crate::process::wait_or_kill_group(&mut child, limit);
    let see = format!("(its output is in {})", layout.display_local(&log_path));
    let mut log = log;
    match status {
        Some(s) if s.success() => {
            let _ = writeln!(log, "-- exit 0");
            Ok(())
        }
        Some(s) => {
            let _ = writeln!(log, "-- {s}");
            Err(format!("{shown} failed ({s}) {see}"))
        }
        None => {
            let _ = writeln!(log, "-- killed after {}", crate::duration::display(limit));
            Err(format!(
                "{shown} did not finish within {}; stopped it {see}",
                crate::duration::display(limit)
            ))
        }
    }
}

/// notify.log, opened to append, with a header for this run; rotated once
/// it passes [`MAX_LOG_BYTES`] so a chatty notifier cannot fill the disk.
fn open_log(path: &Path, shown: &str) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(
        file,
        "== {} {}",
        jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        crate::text::visible_line(shown)
    )?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_an_event_name() {
        for o in Outcome::ALL {
            assert!(EVENTS.contains(&o.as_str()), "{o:?}");
        }
    }

    #[test]
    fn an_entry_runs_once_for_the_most_specific_name_it_asks_for() {
        let layout = Layout::new(Path::new("/r"), Path::new("/r/.git"));
        let n = Notice::new(vec!["success", "done"], Some("T1"), "t".into(), &layout);
        let entry = |on: &[&str]| Notifier {
            on: on.iter().map(|s| s.to_string()).collect(),
            command: vec!["true".into()],
            timeout: None,
        };
        assert_eq!(n.matches(&entry(&["done"])), Some("done"));
        assert_eq!(n.matches(&entry(&["done", "success"])), Some("success"));
        assert_eq!(n.matches(&entry(&["all"])), Some("success"));
        assert_eq!(n.matches(&entry(&["blocked"])), None);
    }
}
