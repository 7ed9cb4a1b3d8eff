//! Spawn one command in its own process group and watch it: drain its
//! output into the log without ever letting a full pipe block it, enforce
//! the hard and no-output timeouts, honour interrupts and abort requests,
//! and leave no process of it behind.
//!
//! Termination is SIGTERM to the whole group, `kill_grace` while output is
//! still drained, then SIGKILL. When the leader exits on its own, whatever
//! it left in its group (or, by run id, outside it) is stopped the same way:
//! a finished attempt never leaves a process editing the worktree.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::agent::events::{self, Activity, Format};
use crate::process;

/// What to run and under which limits.
#[derive(Debug, Clone)]
pub struct Spec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Variables to set, after `env_remove` is applied to orch's own.
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub log_path: PathBuf,
    /// Append to the log instead of starting it (verify after the agent).
    pub log_append: bool,
    pub max_log: u64,
    pub timeout: Duration,
    pub no_output_timeout: Duration,
    /// Run inside the kernel sandbox with this policy.
    pub sandbox: Option<crate::agent::sandbox::Policy>,
    pub kill_grace: Duration,
    pub run_id: String,
    /// The agent's machine-readable output format on stdout, if any.
    pub events: Option<Format>,
    /// Stop the agent when its events show no real progress for this long.
    pub no_progress_timeout: Option<Duration>,
    /// Stop the agent once its events report more tokens than this.
    pub token_limit: Option<u64>,
}

/// Shared between the supervisor and whoever wants to stop it.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Set by SIGINT/SIGTERM to orch: stop and settle as interrupted.
    pub interrupt: Arc<AtomicBool>,
    /// Present while `orch abort` asks for this run to stop.
    pub abort_file: Option<PathBuf>,
    /// The ticket's file in `tickets/in-progress/` of the plan: a person
    /// who moves or deletes it while the run goes on ends the run.
    pub ticket_file: Option<PathBuf>,
    /// The last line of output, for live progress.
    pub last_line: Arc<Mutex<String>>,
    /// The agent worktree's HEAD in the git directory. Each commit it
    /// points at is noted in `last_head`, so work committed in a worktree
    /// that a person then removes (`git worktree remove -f -f`) can still
    /// be kept; a registration gone for good ends the run.
    pub head_file: Option<PathBuf>,
    pub last_head: Arc<Mutex<Option<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The command exited by itself.
    Exited,
    Timeout,
    Stalled,
    /// Output went on, but no progress event came within no_progress_timeout.
    NoProgress,
    /// Its events reported more tokens than `token_limit`.
    OverBudget,
    Interrupted,
    Aborted,
    /// A person moved the ticket out of in-progress (or deleted it).
    Moved,
    /// The worktree's registration was removed while the run went on.
    WorktreeRemoved,
    /// It could not be started.
    SpawnFailed,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub ended: Ended,
    pub status: Option<ExitStatus>,
    pub duration: Duration,
    /// The last lines of output, at most [`TAIL_LINES`].
    pub tail: Vec<String>,
    pub log_bytes: u64,
    pub log_truncated: bool,
    /// Processes still alive after the leader exited that orch stopped.
    pub leftovers_stopped: usize,
    pub spawn_error: Option<String>,
    /// The process group id, for run bookkeeping.
    pub pgid: Option<i32>,
    /// What the agent's events say it did.
    pub activity: Activity,
}

impl Report {
    /// The report of a command that has not started (yet).
    fn not_started() -> Report {
        Report {
            ended: Ended::SpawnFailed,
            status: None,
            duration: Duration::ZERO,
            tail: Vec::new(),
            log_bytes: 0,
            log_truncated: false,
            leftovers_stopped: 0,
            spawn_error: None,
            pgid: None,
            activity: Activity::default(),
        }
    }

    pub fn success(&self) -> bool {
        self.ended == Ended::Exited && self.status.is_some_and(|s| s.success())
    }

    /// `exit status 3`, `killed by SIGKILL`, or why it never ran.
    pub fn exit_text(&self) -> String {
        if let Some(e) = &self.spawn_error {
            return format!("could not start: {e}");
        }
        match self.status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit status {c}"),
                (None, Some(sig)) => format!("killed by {}", process::signal_name(sig)),
                _ => "unknown exit".into(),
            },
            None => "still running".into(),
        }
    }
}

#[cfg(test)]
impl Report {
    /// A report of a run that ended as `ended`, with exit `code` if it exited.
    pub fn for_tests(ended: Ended, code: Option<i32>, tail: &[&str]) -> Report {
        Report {
            ended,
            status: code.map(|c| ExitStatus::from_raw(c << 8)),
            tail: tail.iter().map(|l| l.to_string()).collect(),
            ..Report::not_started()
        }
    }
}

pub const TAIL_LINES: usize = 40;
const TAIL_LINE_BYTES: usize = 400;
const TAIL_WINDOW: usize = TAIL_LINES * TAIL_LINE_BYTES;
const POLL: Duration = Duration::from_millis(25);
/// After the group is gone, how long to wait for pipes held by escaped
/// processes before giving up on them. Without an escapee the end of
/// output comes at once; this only bounds the wait for one, and is long
/// enough that a reader thread starved on a loaded machine is not taken
/// for one (its output says why the agent stopped).
const LEAK_WAIT: Duration = Duration::from_secs(2);

enum Chunk {
    /// Output, and whether it came from stdout.
    Data(bool, Vec<u8>),
    Eof,
}

/// The live output tail: whole lines plus the partial last one.
struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, mut data: &[u8]) {
        // Only the end of a large chunk can reach the tail; skipping the rest
        // keeps a flood of output cheap to drain.
        if data.len() > TAIL_WINDOW {
            data = &data[data.len() - TAIL_WINDOW..];
            self.partial.clear();
            self.lines.clear();
        }
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.lines.push_back(line);
                if self.lines.len() > TAIL_LINES {
                    self.lines.pop_front();
                }
            } else if self.partial.len() < TAIL_LINE_BYTES {
                self.partial.push(b);
            }
        }
    }

    fn last_line(&self) -> String {
        if !self.partial.is_empty() {
            return String::from_utf8_lossy(&self.partial).into_owned();
        }
        self.lines.back().cloned().unwrap_or_default()
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.lines
                .push_back(String::from_utf8_lossy(&self.partial).into_owned());
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
        self.lines.into_iter().map(|l| strip_ansi(&l)).collect()
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        } else {
            out.push(c);
        }
    }
    out
}

struct Log {
    file: Option<File>,
    written: u64,
    max: u64,
    truncated: bool,
}

impl Log {
    fn write(&mut self, data: &[u8]) {
        let Some(f) = self.file.as_mut() else { return };
        let room = self.max.saturating_sub(self.written);
        let take = (data.len() as u64).min(room) as usize;
        if take > 0 && f.write_all(&data[..take]).is_ok() {
            self.written += take as u64;
        }
        if take < data.len() && !self.truncated {
            self.truncated = true;
            let _ = writeln!(
                f,
                "\n[orch: log truncated at {} bytes (max_log_size); output still drained]",
                self.max
            );
        }
    }

    fn note(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "\n[orch: {text}]");
        }
    }
}

fn reader(mut pipe: impl Read + Send + 'static, is_stdout: bool, tx: mpsc::SyncSender<Chunk>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(Chunk::Data(is_stdout, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(Chunk::Eof);
    });
}

/// Run `spec` to the end. Never returns while a process of the run is alive
/// (processes that escaped the group are found by run id and killed).
pub fn run(spec: &Spec, control: &Control) -> Report {
    let start = Instant::now();
    let mut log = Log {
        file: open_log(spec),
        written: 0,
        max: spec.max_log,
        truncated: false,
    };
    let mut report = Report::not_started();
    let mut child = match spawn(spec) {
        Ok(c) => c,
        Err(text) => {
            log.note(&format!("could not start {text}"));
            report.spawn_error = Some(text);
            report.duration = start.elapsed();
            return report;
        }
    };
    let pgid = child.id() as i32;
    report.pgid = Some(pgid);
    crate::failpoint::hit("run-after-spawn");
    let rx = start_io(&mut child, spec);
    let mut w = Watch::new(start);
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Chunk::Data(is_stdout, data)) => {
                w.output(
                    spec,
                    control,
                    &mut log,
                    &mut report.activity,
                    is_stdout,
                    &data,
                );
                // Keep draining, but check the limits at least every POLL:
                // output that never pauses must not disable them.
                if w.last_check.elapsed() < POLL {
                    continue;
                }
            }
            Ok(Chunk::Eof) => w.eofs += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes are closed but the run goes on: wait, don't spin.
                w.eofs = 2;
                std::thread::sleep(POLL);
            }
        }
        w.last_check = Instant::now();
        note_head(control, &mut w);
        if w.status.is_none()
            && let Ok(Some(s)) = child.try_wait()
        {
            w.status = Some(s);
            w.ended.get_or_insert(Ended::Exited);
        }
        let now = Instant::now();
        if w.ended.is_none()
            && let Some(why) = limit_reached(spec, control, &mut w, now)
        {
            w.ended = Some(why);
            log.note(stop_note(why));
        }
        // Once the run is over (by itself or by a limit), stop the group.
        if w.ended.is_some() && w.stop_group(spec, pgid, now, &mut report) {
            break;
        }
    }
    // What the readers took from the pipes but this loop had not yet
    // handled: on a loaded machine the last lines (the ones that say why
    // the agent stopped) can still be in the channel when the wait ends.
    while let Ok(chunk) = rx.try_recv() {
        if let Chunk::Data(is_stdout, data) = chunk {
            w.output(
                spec,
                control,
                &mut log,
                &mut report.activity,
                is_stdout,
                &data,
            );
        }
    }
    process::forget_spawned(pgid);
    report.ended = w.ended.unwrap_or(Ended::Exited);
    report.status = w.status;
    if spec.sandbox.is_some()
        && report.ended == Ended::Exited
        && let Some(text) = sandbox_exec_failure(report.status, &w.tail.last_line())
    {
        // The sandbox's wrapper could not become the agent: to the tick,
        // the same as a command that could not be spawned.
        report.ended = Ended::SpawnFailed;
        report.spawn_error = Some(text);
    }
    report.duration = start.elapsed();
    report.log_bytes = log.written;
    report.log_truncated = log.truncated;
    report.tail = w.tail.finish();
    if report.leftovers_stopped > 0 {
        log.note(&format!(
            "stopped {} process(es) the command left running",
            report.leftovers_stopped
        ));
    }
    report
}

/// What `orch sandbox-exec` said when it could not exec the agent.
fn sandbox_exec_failure(status: Option<ExitStatus>, last_line: &str) -> Option<String> {
    use crate::agent::sandbox::{EXEC_FAILED_CODE, EXEC_FAILED_MARK};
    if status.and_then(|s| s.code()) != Some(EXEC_FAILED_CODE) {
        return None;
    }
    last_line
        .trim()
        .strip_prefix(EXEC_FAILED_MARK)
        .map(str::to_string)
}

/// Start the command in a process group of its own, with the run id in
/// its environment. The error names the program.
fn spawn(spec: &Spec) -> Result<std::process::Child, String> {
    let wrapped;
    let argv = match &spec.sandbox {
        Some(policy) => {
            // The program is looked up here: inside the wrapper, a missing
            // one would look like the agent's own failure.
            let program = spec.argv.first().ok_or("the command is empty")?;
            let path = spec
                .env
                .iter()
                .rev()
                .find(|(k, _)| k == "PATH")
                .map(|(_, v)| std::ffi::OsString::from(v))
                .or_else(|| std::env::var_os("PATH"))
                .unwrap_or_default();
            let cwd_program = spec.cwd.join(program);
            let found = crate::agent::preset::locate(program, &path).or_else(|| {
                program
                    .contains('/')
                    .then(|| cwd_program.clone())
                    .filter(|p| p.is_file())
            });
            if found.is_none() {
                return Err(format!("{program}: No such file or directory (os error 2)"));
            }
            wrapped = crate::agent::sandbox::wrap(&spec.argv, policy)
                .ok_or("cannot find orch's own executable for the sandbox")?;
            &wrapped
        }
        None => &spec.argv,
    };
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&spec.cwd)
        .process_group(0)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in &spec.env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    cmd.env(process::RUN_ID_VAR, &spec.run_id);
    process::become_subreaper();
    process::spawn_registered(&mut cmd, &spec.run_id).map_err(|e| format!("{program}: {e}"))
}

/// Feed stdin and start draining stdout and stderr into one channel.
fn start_io(child: &mut std::process::Child, spec: &Spec) -> mpsc::Receiver<Chunk> {
    if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), spec.stdin.clone()) {
        // A separate thread: an agent that never reads stdin must not block orch.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&bytes);
        });
    }
    // Bounded: an agent that writes faster than orch drains is slowed by its
    // own full pipe, instead of growing orch's memory.
    let (tx, rx) = mpsc::sync_channel(64);
    if let Some(out) = child.stdout.take() {
        reader(out, true, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        reader(err, false, tx);
    }
    rx
}

/// What the supervisor loop knows about the run so far.
struct Watch {
    start: Instant,
    tail: Tail,
    eofs: u32,
    last_output: Instant,
    last_progress: Instant,
    last_check: Instant,
    status: Option<ExitStatus>,
    ended: Option<Ended>,
    /// When termination started (SIGTERM sent); SIGKILL follows after the grace.
    term_started: Option<Instant>,
    group_gone_at: Option<Instant>,
    event_line: Vec<u8>,
    /// Tokens the events reported so far, input and output.
    tokens: u64,
    /// Since when the ticket's file has been missing from in-progress.
    ticket_gone_since: Option<Instant>,
    worktree_gone_since: Option<Instant>,
}

impl Watch {
    fn new(start: Instant) -> Watch {
        // The output and progress clocks start when the command has started.
        let now = Instant::now();
        Watch {
            start,
            tail: Tail {
                lines: VecDeque::new(),
                partial: Vec::new(),
            },
            eofs: 0,
            last_output: now,
            last_progress: now,
            last_check: now,
            status: None,
            ended: None,
            term_started: None,
            group_gone_at: None,
            event_line: Vec::new(),
            tokens: 0,
            ticket_gone_since: None,
            worktree_gone_since: None,
        }
    }

    /// Log a chunk of output, track progress events, show the last line.
    fn output(
        &mut self,
        spec: &Spec,
        control: &Control,
        log: &mut Log,
        activity: &mut Activity,
        is_stdout: bool,
        data: &[u8],
    ) {
        self.last_output = Instant::now();
        log.write(data);
        self.tail.push(data);
        let mut shown = None;
        if let (Some(format), true) = (spec.events, is_stdout) {
            for &b in data {
                if b != b'\n' {
                    // A line longer than this is no event of interest.
                    if self.event_line.len() < 1 << 20 {
                        self.event_line.push(b);
                    }
                    continue;
                }
                let line = String::from_utf8_lossy(&self.event_line).into_owned();
                self.event_line.clear();
                let (progress, human) = events::parse_line(format, &line, activity);
                if progress {
                    self.last_progress = Instant::now();
                }
                shown = human.or(shown);
            }
            self.tokens = activity.input_tokens.saturating_add(activity.output_tokens);
        }
        if let Ok(mut l) = control.last_line.lock() {
            match shown {
                Some(h) => *l = strip_ansi(&h),
                None if spec.events.is_none() => *l = strip_ansi(&self.tail.last_line()),
                None => {}
            }
        }
    }

    /// Signal what is left of the group: SIGTERM once, then SIGKILL after
    /// the grace, repeated while members remain. True once the group is
    /// gone, the leader reaped and the pipes closed (or left to leakers).
    fn stop_group(&mut self, spec: &Spec, pgid: i32, now: Instant, report: &mut Report) -> bool {
        let members = process::group_members(pgid);
        match self.term_started {
            None => {
                if !members.is_empty() {
                    if self.status.is_some() {
                        report.leftovers_stopped = members.len();
                    }
                    process::signal_group(pgid, Signal::TERM);
                }
                self.term_started = Some(now);
            }
            // Repeated while members remain: nothing may outlive the run.
            Some(t) if now.duration_since(t) >= spec.kill_grace && !members.is_empty() => {
                process::signal_group(pgid, Signal::KILL);
            }
            _ => {}
        }
        if !members.is_empty() || self.status.is_none() {
            return false;
        }
        let gone = *self.group_gone_at.get_or_insert_with(|| {
            // Processes that left the group but kept the run id, then those
            // that left it and cleared their environment too: re-parented
            // to orch, the subreaper, once their parent died.
            report.leftovers_stopped += process::kill_run(&spec.run_id);
            report.leftovers_stopped += process::kill_orphans(&spec.run_id);
            now
        });
        self.eofs >= 2 || now.duration_since(gone) >= LEAK_WAIT
    }
}

/// Which limit, signal or request ends a run that is still going, if any.
fn limit_reached(spec: &Spec, control: &Control, w: &mut Watch, now: Instant) -> Option<Ended> {
    if control.interrupt.load(Ordering::SeqCst) {
        Some(Ended::Interrupted)
    } else if ticket_moved(control, w, now) {
        Some(Ended::Moved)
    } else if worktree_removed(w, now) {
        Some(Ended::WorktreeRemoved)
    } else if control.abort_file.as_ref().is_some_and(|p| {
        // Honoured only when it names this run: a request written for an
        // earlier run must not stop a later one.
        p.exists() && std::fs::read_to_string(p).is_ok_and(|c| c.trim() == spec.run_id)
    }) {
        Some(Ended::Aborted)
    } else if spec.token_limit.is_some_and(|limit| w.tokens > limit) {
        Some(Ended::OverBudget)
    } else if now.duration_since(w.start) >= spec.timeout {
        Some(Ended::Timeout)
    } else if now.duration_since(w.last_output) >= spec.no_output_timeout {
        Some(Ended::Stalled)
    } else if spec.events.is_some()
        && spec
            .no_progress_timeout
            .is_some_and(|limit| now.duration_since(w.last_progress) >= limit)
    {
        Some(Ended::NoProgress)
    } else {
        None
    }
}

/// Whether the ticket's file has been gone from in-progress for
/// [`MOVED_GRACE`], in a plan that is there (a plan worktree deleted
/// whole is orch's to recreate, not a person's move).
fn ticket_moved(control: &Control, w: &mut Watch, now: Instant) -> bool {
    let Some(file) = &control.ticket_file else {
        return false;
    };
    let plan_there = file
        .parent()
        .and_then(|d| d.parent())
        .is_some_and(|tickets| tickets.is_dir());
    if !plan_there || std::fs::symlink_metadata(file).is_ok() {
        w.ticket_gone_since = None;
        return false;
    }
    let since = *w.ticket_gone_since.get_or_insert(now);
    now.duration_since(since) >= MOVED_GRACE
}

/// Note the commit the worktree's HEAD points at, and since when its
/// registration has been gone.
fn note_head(control: &Control, w: &mut Watch) {
    let Some(file) = &control.head_file else {
        return;
    };
    let mut bytes = [0u8; 128];
    let read = std::fs::File::open(file).and_then(|mut f| f.read(&mut bytes));
    match read {
        Ok(n) => {
            w.worktree_gone_since = None;
            let text = String::from_utf8_lossy(&bytes[..n]);
            let oid = text.trim();
            if (oid.len() == 40 || oid.len() == 64)
                && oid.bytes().all(|b| b.is_ascii_hexdigit())
                && let Ok(mut last) = control.last_head.lock()
            {
                *last = Some(oid.to_string());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            w.worktree_gone_since.get_or_insert_with(Instant::now);
        }
        Err(_) => {}
    }
}

/// Whether the worktree's registration has been gone for [`MOVED_GRACE`]
/// (git rewrites HEAD through a lock and a rename, never removing it).
fn worktree_removed(w: &Watch, now: Instant) -> bool {
    w.worktree_gone_since
        .is_some_and(|since| now.duration_since(since) >= MOVED_GRACE)
}

/// How long a ticket's file must stay gone before its run is stopped: a
/// moment's absence is a `git checkout` or an editor's save, not a move.
const MOVED_GRACE: Duration = Duration::from_millis(1000);

fn stop_note(why: Ended) -> &'static str {
    match why {
        Ended::Moved => "the ticket was moved out of in-progress: stopping the agent",
        Ended::WorktreeRemoved => "the worktree was removed from git: stopping the agent",
        Ended::Interrupted => "orch was interrupted: stopping the agent",
        Ended::Aborted => "abort requested: stopping the agent",
        Ended::Timeout => "hard timeout reached: stopping the agent",
        Ended::NoProgress => "no progress within no_progress_timeout: stopping the agent",
        Ended::OverBudget => "token budget passed: stopping the agent",
        Ended::Stalled | Ended::Exited | Ended::SpawnFailed => {
            "no output within no_output_timeout: stopping the agent"
        }
    }
}

fn open_log(spec: &Spec) -> Option<File> {
    if let Some(dir) = spec.log_path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true);
    if spec.log_append {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    // A log that cannot be written (read-only or full disk) does not stop
    // the run: output is still drained and the tail still recorded.
    opts.open(&spec.log_path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &std::path::Path, script: &str) -> Spec {
        Spec {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: Vec::new(),
            env_remove: Vec::new(),
            stdin: None,
            log_path: dir.join("log"),
            log_append: false,
            max_log: 1 << 20,
            timeout: Duration::from_secs(20),
            no_output_timeout: Duration::from_secs(20),
            sandbox: None,
            kill_grace: Duration::from_millis(200),
            run_id: format!("unit-{}-{}", std::process::id(), script.len()),
            events: None,
            no_progress_timeout: None,
            token_limit: None,
        }
    }

    #[test]
    fn exit_codes_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let r = run(
            &spec(dir.path(), "echo one; echo two >&2; exit 3"),
            &Control::default(),
        );
        assert_eq!(r.ended, Ended::Exited);
        assert_eq!(r.exit_text(), "exit status 3");
        assert!(r.tail.contains(&"one".to_string()) && r.tail.contains(&"two".to_string()));
    }

    #[test]
    fn stall_is_detected_and_the_group_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "trap '' TERM; sleep 30 & echo started; wait");
        s.no_output_timeout = Duration::from_millis(200);
        let r = run(&s, &Control::default());
        assert_eq!(r.ended, Ended::Stalled);
        assert!(r.duration < Duration::from_secs(5));
        assert!(process::group_members(r.pgid.unwrap()).is_empty());
    }

    #[test]
    fn log_is_capped_but_output_drained() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo end",
        );
        s.max_log = 1000;
        let r = run(&s, &Control::default());
        assert!(r.success());
        assert!(r.log_truncated);
        assert_eq!(r.tail.last().map(String::as_str), Some("end"));
        let len = std::fs::metadata(dir.path().join("log")).unwrap().len();
        assert!(len < 2000, "{len}");
    }

    #[test]
    fn retry_chatter_is_not_progress() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "while true; do echo '{\"type\":\"error\",\"message\":\"Reconnecting... 1/5\"}'; sleep 0.02; done",
        );
        s.events = Some(Format::CodexJson);
        s.no_progress_timeout = Some(Duration::from_millis(300));
        let r = run(&s, &Control::default());
        assert_eq!(r.ended, Ended::NoProgress);
        assert!(r.duration < Duration::from_secs(5));
    }

    #[test]
    fn an_agent_past_its_token_limit_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(
            dir.path(),
            "for i in 1 2 3 4 5; do echo '{\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":60,\"output_tokens\":40}}'; done; sleep 30",
        );
        s.events = Some(Format::CodexJson);
        s.token_limit = Some(250);
        let r = run(&s, &Control::default());
        assert_eq!(r.ended, Ended::OverBudget);
        assert!(r.duration < Duration::from_secs(5), "{:?}", r.duration);
        assert_eq!(r.activity.input_tokens + r.activity.output_tokens, 500);
        assert!(process::group_members(r.pgid.unwrap()).is_empty());
    }

    #[test]
    fn output_that_never_pauses_still_meets_the_hard_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "yes chatter");
        s.timeout = Duration::from_millis(400);
        s.max_log = 4096;
        let r = run(&s, &Control::default());
        assert_eq!(r.ended, Ended::Timeout);
        assert!(r.duration < Duration::from_secs(5), "{:?}", r.duration);
    }

    #[test]
    fn spawn_failure_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), "");
        s.argv = vec!["/nonexistent/agent".into()];
        let r = run(&s, &Control::default());
        assert_eq!(r.ended, Ended::SpawnFailed);
        assert!(r.exit_text().contains("could not start"));
    }
}
