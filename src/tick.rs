//! One tick: reconcile, pick, claim, run, settle.
//!
//! The board lock is held only to read and commit the board: once to
//! reconcile and claim, and once per finished ticket to settle it; never
//! while an agent runs. Each claimed ticket also has a run lock, taken
//! before its claim is committed and held by its supervisor until its
//! result is committed. A free run lock on an in-progress ticket therefore
//! means its supervisor died, and the next tick settles it as `abandoned`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::agent::prompt::{self, PromptVars};
use crate::agent::supervise::{self, Control, Ended, Report, Spec};
use crate::agent::{preset, unavailable};
use crate::board::{self, Board, Change, Layout, Readiness, Session};
use crate::config::{AgentSpec, Config};
use crate::error::{Error, Result, render_chain};
use crate::failpoint;
use crate::git::{self, CommitInfo, MainRepo};
use crate::lock::RunLock;
use crate::process;
use crate::summary::{self, AttemptSummary};
use crate::ticket::{self, LogEntry, State, Ticket};
use crate::workspace;

/// How long a supervisor waits for the board lock to record a result. Far
/// longer than `--lock-timeout`: giving up here would strand a finished
/// attempt until the next tick reconciles it.
const SETTLE_LOCK_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: Option<u32>,
    pub only: Option<String>,
    pub lock_timeout: Duration,
}

/// Where a tick reports what it does. The command decides how it looks
/// (live on a terminal, timestamped lines for cron).
pub trait Reporter: Send + Sync {
    /// Something happened, about a ticket or the board.
    fn event(&self, ticket: Option<&str>, text: &str);
    /// A problem the user should fix (an invalid ticket, a warning).
    fn problem(&self, text: &str);
    /// Worth showing a person watching, not worth a cron mail.
    fn info(&self, text: &str);
    /// A ticket's agent started; `control.last_line` shows its output.
    fn started(&self, ticket: &str, control: &Control);
    fn stopped(&self, ticket: &str);
}

/// The outcome of one attempt, before it is recorded.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub outcome: String,
    pub reason: String,
    /// Where the ticket goes when attempts remain (blocked when they don't).
    pub retry: bool,
    pub to: Option<State>,
    /// Whether this attempt uses up one of the ticket's attempts.
    pub counts: bool,
    /// Further plan files written in the same commit: (path, content).
    pub extra_files: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct TickResult {
    pub reconciled: Vec<(String, String)>,
    pub settled: Vec<(String, String)>,
    pub claimed: Vec<String>,
}

/// What a claimed ticket carries from the claim phase to its run.
struct Claim {
    ticket: Ticket,
    attempt: u32,
    run_id: String,
    run_lock: RunLock,
    claimed_at: String,
}

/// Settings for one ticket: orch.yaml overridden by its front matter.
#[derive(Debug, Clone)]
pub struct Effective {
    pub agent: AgentSpec,
    pub timeout: Duration,
    pub no_output_timeout: Duration,
    pub kill_grace: Duration,
    pub max_attempts: u32,
    pub verify: Vec<String>,
    pub max_log: u64,
    pub env_remove: Vec<String>,
    pub agent_cooldown: Duration,
    pub no_progress_timeout: Option<Duration>,
}

pub fn effective(config: &Config, t: &Ticket) -> Effective {
    Effective {
        agent: t
            .front
            .agent
            .clone()
            .unwrap_or_else(|| config.agent.clone()),
        timeout: t.front.timeout.unwrap_or(config.timeout),
        no_output_timeout: t
            .front
            .no_output_timeout
            .unwrap_or(config.no_output_timeout),
        kill_grace: config.kill_grace,
        max_attempts: t.front.max_attempts.unwrap_or(config.max_attempts),
        verify: t
            .front
            .verify
            .clone()
            .unwrap_or_else(|| config.verify.clone()),
        max_log: config.max_log_size,
        env_remove: config.env_remove.clone(),
        agent_cooldown: config.agent_cooldown,
        no_progress_timeout: config.no_progress_timeout,
    }
}

fn lease(e: &Effective) -> String {
    // Generous: a lease only matters for claims of another host, whose run
    // lock this host cannot see.
    let runs = 1 + e.verify.len() as u32;
    let secs = (e.timeout + e.kill_grace).as_secs() * runs as u64 + 600;
    let at = jiff::Timestamp::now().as_second() + secs as i64;
    jiff::Timestamp::from_second(at)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn run_id(attempt: u32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}-{attempt}", std::process::id())
}

/// Run one tick.
pub fn tick(
    root: &Path,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<TickResult> {
    let mut result = TickResult::default();
    let (claims, layout, config) = {
        let session = Session::open(root, opts.lock_timeout)?;
        for note in &session.notes {
            reporter.event(None, note);
        }
        let mut board = session.load();
        let config = board.config()?.clone();
        for w in &board.config_warnings {
            reporter.event(
                None,
                &format!(
                    "warning: orch.yaml{}: {}",
                    w.line.map(|l| format!(":{l}")).unwrap_or_default(),
                    w.message
                ),
            );
        }
        // Name what this tick skips: invalid tickets it could otherwise
        // have run. Warnings and problems of settled tickets are left to
        // `orch status`, so cron does not mail them every few minutes.
        for p in board.errors() {
            if !(p.path.starts_with("tickets/done/") || p.path.starts_with("tickets/blocked/")) {
                reporter.problem(&p.to_string());
            }
        }
        result.reconciled = reconcile(&session, &board, &config, reporter)?;
        if !result.reconciled.is_empty() {
            board = session.load();
        }
        if let Some(only) = &opts.only
            && !board.seen.contains_key(only)
        {
            return Err(Error::usage(format!("there is no ticket `{only}`"))
                .hinted("`orch status` lists the tickets"));
        }
        let claims = if interrupt.load(Ordering::SeqCst) {
            Vec::new()
        } else {
            claim(&session, &board, &config, opts, reporter)?
        };
        (claims, session.layout.clone(), config)
    };
    result.claimed = claims.iter().map(|c| c.ticket.id.clone()).collect();
    if claims.is_empty() {
        return Ok(result);
    }
    let base = git::open_main(&layout.root)?.resolve_commit(&config.base);
    let settled: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = claims
            .into_iter()
            .map(|c| {
                let layout = &layout;
                let config = &config;
                let base = base.as_ref().map_err(|e| render_chain(e));
                let interrupt = interrupt.clone();
                scope.spawn(move || {
                    let id = c.ticket.id.clone();
                    match run_and_settle(
                        layout,
                        config,
                        base.copied(),
                        c,
                        opts,
                        interrupt,
                        reporter,
                    ) {
                        Ok(outcome) => (id, outcome),
                        Err(e) => {
                            reporter.problem(&format!("{id}: {}", render_chain(&e)));
                            (id, "error".to_string())
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    result.settled = settled;
    Ok(result)
}

/// Settle in-progress tickets whose supervisor is gone. Holds the board lock.
fn reconcile(
    session: &Session,
    board: &Board,
    config: &Config,
    reporter: &dyn Reporter,
) -> Result<Vec<(String, String)>> {
    let mut settled = Vec::new();
    let stranded = board.stranded.iter().filter(|t| {
        board
            .seen
            .get(&t.id)
            .is_some_and(|s| s == &[State::InProgress])
    });
    for t in board.in_state(State::InProgress).chain(stranded) {
        let Some(claim) = t.open_claim().cloned() else {
            // In progress without a claim: moved there by hand, or a crash
            // between the move and the claim line. Nothing ran; back to todo.
            let entry = LogEntry::new("release").with(
                "reason",
                "in progress without a claim by orch; returned to todo",
            );
            let paths = session.move_ticket(
                &t.id,
                State::InProgress,
                State::Todo,
                &t.text_with_entry(&entry),
            )?;
            session.commit(
                &paths,
                &Change::new(format!("orch: release {} (no claim)", t.id))
                    .trailer("Orch-Ticket", &t.id)
                    .trailer("Orch-Event", "release"),
            )?;
            reporter.event(
                Some(&t.id),
                "was in progress without a claim: returned to todo",
            );
            settled.push((t.id.clone(), "released".into()));
            continue;
        };
        let claim_host = claim.get("host").unwrap_or("").to_string();
        // A run lock file here means the run was supervised on this machine,
        // whatever name the host had then (ORCH_HOST may differ under cron).
        let ours = claim_host.is_empty()
            || claim_host == session.host
            || session.layout.run_lock(&t.id).exists();
        let mut notes = Vec::new();
        let _run_lock = if ours {
            match RunLock::try_acquire(&session.layout.run_lock(&t.id))? {
                Some(l) => Some(l),
                None => continue, // its supervisor is alive
            }
        } else {
            let expired = claim
                .get("lease")
                .and_then(|l| l.parse::<jiff::Timestamp>().ok())
                .is_some_and(|l| l < jiff::Timestamp::now());
            if !expired {
                continue;
            }
            notes.push(format!("the lease of host {claim_host} expired"));
            None
        };
        let reason = if ours {
            "its supervising orch died (no live run lock)".to_string()
        } else {
            format!("host {claim_host} did not settle it before its lease expired")
        };
        let settlement = Settlement {
            outcome: "abandoned".into(),
            reason,
            retry: true,
            to: None,
            counts: true,
            extra_files: Vec::new(),
        };
        let (to, reason) = settle_dead_run(session, config, t, &claim, ours, &settlement, notes)?;
        reporter.event(
            Some(&t.id),
            &format!(
                "abandoned (attempt {}): {}; moved to {to}",
                claim.attempt().unwrap_or(0),
                reason
            ),
        );
        settled.push((t.id.clone(), "abandoned".into()));
    }
    sweep_done_worktrees(session, board, reporter);
    Ok(settled)
}

/// Remove worktrees of done tickets that no run holds: a crash between
/// recording a success and removing its worktree leaves one behind.
fn sweep_done_worktrees(session: &Session, board: &Board, reporter: &dyn Reporter) {
    let Ok(entries) = std::fs::read_dir(session.layout.orch.join("worktrees")) else {
        return;
    };
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if board.seen.get(&id).is_none_or(|s| s != &[State::Done]) {
            continue;
        }
        let Ok(Some(_lock)) = RunLock::try_acquire(&session.layout.run_lock(&id)) else {
            continue;
        };
        if workspace::remove(&session.main, &session.layout, &id).is_ok() {
            reporter.event(
                Some(&id),
                "removed the worktree of a done ticket left by an earlier tick",
            );
        }
    }
}

/// Settle a run whose supervisor is gone: kill what is left of it, keep its
/// uncommitted work on the ticket branch, record the outcome. The caller
/// holds the board lock and, for a run of this host, its run lock.
pub fn settle_dead_run(
    session: &Session,
    config: &Config,
    t: &Ticket,
    claim: &LogEntry,
    ours: bool,
    settlement: &Settlement,
    mut notes: Vec<String>,
) -> Result<(State, String)> {
    let attempt = claim.attempt().unwrap_or(0);
    let run = claim.get("run").unwrap_or("").to_string();
    if ours && !run.is_empty() {
        let killed = process::kill_run(&run);
        if killed > 0 {
            notes.push(format!("killed {killed} leftover process(es) of the run"));
        }
    }
    failpoint::hit("reconcile-after-kill");
    let main = git::open_main(&session.layout.root)?;
    if ours {
        let wt_path = session.layout.worktree(&t.id);
        if wt_path.join(".git").exists()
            && let Ok(wt) = git::Worktree::open(&wt_path)
        {
            // The run's processes are dead: their git locks are stale.
            wt.clear_stale_index_lock();
            match workspace::keep_work(
                &main,
                &wt,
                &t.id,
                attempt,
                &work_message(&t.id, attempt, "abandoned"),
            ) {
                Ok(Some(note)) => notes.push(note),
                Ok(None) => {}
                Err(e) => notes.push(format!(
                    "cannot commit the run's uncommitted work: {}",
                    render_chain(&e)
                )),
            }
        }
        workspace::unlock(&main, &t.id);
    }
    let eff = effective(config, t);
    // A run whose orch died before the agent started (it has no log) was
    // never given a chance: it does not use up an attempt.
    let mut settlement = settlement.clone();
    if ours
        && settlement.outcome == "abandoned"
        && !session.layout.log_path(&t.id, attempt).exists()
    {
        settlement.counts = false;
        settlement.reason = "its orch died before the agent started".into();
    }
    let settlement = &settlement;
    let used = t.attempts_used() + u32::from(settlement.counts);
    let sum = AttemptSummary {
        id: t.id.clone(),
        attempt,
        outcome: settlement.outcome.clone(),
        reason: settlement.reason.clone(),
        agent: eff.agent.label(),
        host: claim.get("host").unwrap_or("").to_string(),
        started: claim.at.clone(),
        finished: ticket::now_rfc3339(),
        branch: git::ticket_branch(&t.id),
        tip: main
            .branch_tip(&git::ticket_branch(&t.id))
            .map(|o| o.to_string()),
        notes,
        log: log_field(&session.layout, &t.id, attempt),
        tail: local_tail(&session.layout, &t.id, attempt),
        ..Default::default()
    };
    let (to, reason) = record(
        session,
        t,
        attempt,
        &run,
        settlement,
        used,
        eff.max_attempts,
        &sum,
    )?;
    let _ = std::fs::remove_file(session.layout.abort_request(&t.id));
    let _ = std::fs::remove_file(session.layout.run_info(&t.id));
    Ok((to, reason))
}

fn claim(
    session: &Session,
    board: &Board,
    config: &Config,
    opts: &Options,
    reporter: &dyn Reporter,
) -> Result<Vec<Claim>> {
    let in_progress = board.count(State::InProgress) as u32;
    let cap = config.max_in_progress.saturating_sub(in_progress);
    let jobs = opts.jobs.unwrap_or(config.max_in_progress).max(1);
    let room = cap.min(jobs) as usize;
    let mut queue = board.ready_queue();
    if let Some(only) = &opts.only {
        queue.retain(|t| &t.id == only);
        if queue.is_empty() {
            let why = match board.tickets.get(only) {
                Some(t) if t.state != State::Todo => format!("it is in {}", t.state),
                Some(t) => match board.readiness(t) {
                    Readiness::Waiting(on) => format!("it waits on {}", on.join(", ")),
                    Readiness::Invalid(why) => format!("it is invalid: {why}"),
                    Readiness::Ready => "it is not ready".into(),
                },
                None => "it is invalid".into(),
            };
            reporter.event(Some(only), &format!("not claimed: {why}"));
            return Ok(Vec::new());
        }
    }
    if queue.is_empty() {
        return Ok(Vec::new());
    }
    if room == 0 {
        reporter.info(&format!(
            "{} ticket(s) ready, none claimed: {in_progress} in progress, max_in_progress is {}",
            queue.len(),
            config.max_in_progress
        ));
        return Ok(Vec::new());
    }
    // A base or agent that does not resolve is a configuration error:
    // claim nothing rather than spend every ticket's attempts on it.
    session.main.resolve_commit(&config.base)?;
    agent_program(&config.agent)?;
    let mut claims = Vec::new();
    for t in queue {
        if claims.len() >= room {
            break;
        }
        let eff = effective(config, t);
        if let Some(pause) = unavailable::active(&session.layout.plan, &eff.agent.label()) {
            reporter.info(&format!(
                "{}: not claimed: agent `{}` is paused until {} ({})",
                t.id, pause.agent, pause.until, pause.reason
            ));
            continue;
        }
        if let Err(e) = agent_program(&eff.agent) {
            // A ticket's own agent that cannot start: skip it, keep its slot.
            reporter.problem(&format!("{}: {}", t.rel_path(), render_chain(&e)));
            continue;
        }
        let Some(run_lock) = RunLock::try_acquire(&session.layout.run_lock(&t.id))? else {
            reporter.event(
                Some(&t.id),
                "skipped: its run lock is held by another process",
            );
            continue;
        };
        let attempt = t.attempts_started() + 1;
        let run = run_id(attempt);
        let entry = LogEntry::new("claim")
            .with("attempt", attempt)
            .with("host", &session.host)
            .with("pid", std::process::id())
            .with("run", &run)
            .with("lease", lease(&eff));
        let text = t.text_with_entry(&entry);
        // An abort request left from an earlier run must not stop this one.
        let _ = std::fs::remove_file(session.layout.abort_request(&t.id));
        let paths = session.move_ticket(&t.id, State::Todo, State::InProgress, &text)?;
        failpoint::hit("claim-after-move");
        session.commit(
            &paths,
            &Change::new(format!("orch: claim {} (attempt {attempt})", t.id))
                .trailer("Orch-Ticket", &t.id)
                .trailer("Orch-Attempt", attempt)
                .trailer("Orch-Event", "claim")
                .trailer("Orch-Run", &run)
                .trailer("Orch-Agent", eff.agent.label()),
        )?;
        failpoint::hit("claim-after-commit");
        let mut ticket = t.clone();
        ticket.state = State::InProgress;
        ticket.text = text;
        reporter.event(
            Some(&t.id),
            &format!("claimed (attempt {attempt}): {}", t.title()),
        );
        claims.push(Claim {
            ticket,
            attempt,
            run_id: run,
            run_lock,
            claimed_at: entry.at,
        });
    }
    Ok(claims)
}

/// The agent's program must exist before anything is claimed for it, or
/// every ticket would spend its attempts on a missing binary (a short PATH
/// under cron is the usual cause).
fn agent_program(agent: &AgentSpec) -> Result<()> {
    let argv = preset::resolve(agent)?.argv;
    let Some(program) = argv.first() else {
        return Err(Error::usage("the agent command is empty"));
    };
    let path = path_with_orch().unwrap_or_default();
    if preset::locate(program, std::ffi::OsStr::new(&path)).is_some() {
        return Ok(());
    }
    Err(Error::Config {
        path: PathBuf::from(".orch/plan/orch.yaml"),
        line: None,
        message: format!("the agent program `{program}` cannot be found or is not executable"),
        hint: Some(format!(
            "install it, or give its absolute path in `agent:`; cron runs with a short PATH (PATH here: {path})"
        )),
    })
}

/// Everything a finished run knows, gathered for classification.
struct RunFacts {
    report: Option<Report>,
    result_file: Option<(String, Option<String>)>,
    commits: Vec<CommitInfo>,
    tip: Option<String>,
    verify: Vec<(String, String)>,
    verify_failed: Option<String>,
    verify_ended: Option<Ended>,
    notes: Vec<String>,
    setup_error: Option<String>,
    interrupted_early: bool,
    /// agent-unavailable results that end the ticket's log, in a row.
    unavailable_in_a_row: usize,
}

fn run_and_settle(
    layout: &Layout,
    config: &Config,
    base: std::result::Result<git2::Oid, String>,
    claim: Claim,
    opts: &Options,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<String> {
    let t = &claim.ticket;
    let eff = effective(config, t);
    let main = git::open_main(&layout.root)?;
    let facts = run_attempt(layout, &main, &eff, base, &claim, interrupt, reporter);
    let settlement = classify(&facts, &eff);
    let used = t.attempts_used() + u32::from(settlement.counts);
    let report = facts.report.as_ref();
    let sum = AttemptSummary {
        id: t.id.clone(),
        attempt: claim.attempt,
        outcome: settlement.outcome.clone(),
        reason: settlement.reason.clone(),
        agent: eff.agent.label(),
        host: board::host_name(),
        started: claim.claimed_at.clone(),
        finished: ticket::now_rfc3339(),
        duration: report
            .map(|r| crate::duration::display(Duration::from_millis(r.duration.as_millis() as u64)))
            .unwrap_or_default(),
        exit: report.map(Report::exit_text).unwrap_or_default(),
        branch: git::ticket_branch(&t.id),
        tip: facts.tip.clone(),
        commits: facts.commits.clone(),
        verify: facts.verify.clone(),
        agent_message: facts.result_file.as_ref().and_then(|(_, m)| m.clone()),
        notes: facts.notes.clone(),
        activity: report.map(|r| r.activity.clone()).unwrap_or_default(),
        log: log_field(layout, &t.id, claim.attempt),
        tail: report.map(|r| r.tail.clone()).unwrap_or_default(),
    };

    // Record under the board lock, if the claim is still ours.
    let session = Session::open_in(
        git::open_main(&layout.root)?,
        layout.clone(),
        SETTLE_LOCK_WAIT.max(opts.lock_timeout),
    )?;
    let path = ticket::path_in(&layout.plan, State::InProgress, &t.id);
    // The claim is read from the log section alone: a person who broke the
    // front matter meanwhile must not strand the result.
    let current = std::fs::read(&path).ok().map(|bytes| {
        ticket::parse(&t.id, State::InProgress, &bytes)
            .0
            .or_else(|| ticket::parse_lenient(&t.id, State::InProgress, &bytes))
    });
    let still_ours = current
        .as_ref()
        .and_then(|c| c.as_ref())
        .and_then(|c| {
            c.open_claim()
                .map(|e| e.get("run") == Some(claim.run_id.as_str()))
        })
        .unwrap_or(false);
    let outcome = if still_ours {
        let current = current.flatten().unwrap_or_else(|| t.clone());
        let (to, reason) = record(
            &session,
            &current,
            claim.attempt,
            &claim.run_id,
            &settlement,
            used,
            eff.max_attempts,
            &sum,
        )?;
        reporter.event(
            Some(&t.id),
            &format!(
                "{} (attempt {}): {}; moved to {to}",
                settlement.outcome, claim.attempt, reason
            ),
        );
        if to == State::Done {
            if let Err(e) = workspace::remove(&main, layout, &t.id) {
                reporter.problem(&format!(
                    "{}: cannot remove the worktree: {}",
                    t.id,
                    render_chain(&e)
                ));
            }
        } else {
            workspace::unlock(&main, &t.id);
        }
        settlement.outcome.clone()
    } else {
        // Someone settled and perhaps reclaimed this ticket meanwhile. The
        // work stays on the branch; the result is only recorded.
        let rel = format!("runs/{}/{}.stale.md", t.id, claim.attempt);
        let mut stale = sum.clone();
        stale
            .notes
            .push("refused: the claim was no longer this run's when it finished".into());
        board::write_atomic(&layout.plan.join(&rel), stale.render().as_bytes())?;
        session.commit(
            &[rel],
            &Change::new(format!(
                "orch: refuse stale result of {} (attempt {})",
                t.id, claim.attempt
            ))
            .trailer("Orch-Ticket", &t.id)
            .trailer("Orch-Attempt", claim.attempt)
            .trailer("Orch-Outcome", "stale")
            .trailer("Orch-Run", &claim.run_id),
        )?;
        reporter.event(
            Some(&t.id),
            "result refused: the ticket was settled by another tick meanwhile",
        );
        "stale".into()
    };
    drop(session);
    let _ = std::fs::remove_file(layout.abort_request(&t.id));
    let _ = std::fs::remove_file(layout.run_info(&t.id));
    drop(claim.run_lock);
    Ok(outcome)
}

fn run_attempt(
    layout: &Layout,
    main: &MainRepo,
    eff: &Effective,
    base: std::result::Result<git2::Oid, String>,
    claim: &Claim,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> RunFacts {
    let t = &claim.ticket;
    let mut facts = RunFacts {
        report: None,
        result_file: None,
        commits: Vec::new(),
        tip: None,
        verify: Vec::new(),
        verify_failed: None,
        verify_ended: None,
        notes: Vec::new(),
        setup_error: None,
        interrupted_early: false,
        unavailable_in_a_row: t
            .log
            .iter()
            .rev()
            .filter(|e| e.event == "result")
            .take_while(|e| e.get("outcome") == Some("agent-unavailable"))
            .count(),
    };
    if interrupt.load(Ordering::SeqCst) {
        facts.interrupted_early = true;
        return facts;
    }
    let base = match base {
        Ok(b) => b,
        Err(e) => {
            facts.setup_error = Some(e);
            return facts;
        }
    };
    let prepared = match workspace::prepare(main, layout, &t.id, base) {
        Ok(p) => p,
        Err(e) => {
            facts.setup_error = Some(format!("cannot prepare the worktree: {}", render_chain(&e)));
            return facts;
        }
    };
    facts.notes.extend(prepared.notes.iter().cloned());
    let preset::Resolved {
        argv,
        env: agent_env,
        stdin: use_stdin,
        events,
    } = match preset::resolve(&eff.agent) {
        Ok(r) => r,
        Err(e) => {
            facts.setup_error = Some(render_chain(&e));
            return facts;
        }
    };
    let prompt_path = layout.prompt_file(&t.id, claim.attempt);
    let result_path = layout.result_file(&t.id, claim.attempt);
    let _ = std::fs::remove_file(&result_path);
    let prompt_text = render_prompt(layout, t, claim.attempt, eff);
    if let Err(e) = board::write_atomic(&prompt_path, prompt_text.as_bytes()) {
        facts.setup_error = Some(render_chain(&e));
        return facts;
    }
    let wt = prepared.path.display().to_string();
    let mut vars: BTreeMap<&str, String> = BTreeMap::new();
    vars.insert("prompt_file", prompt_path.display().to_string());
    vars.insert("worktree", wt.clone());
    vars.insert("ticket", t.id.clone());
    vars.insert("attempt", claim.attempt.to_string());
    vars.insert("branch", prepared.branch.clone());
    vars.insert("state_dir", layout.state_dir(&t.id).display().to_string());
    let argv = preset::expand(&argv, &vars);
    let mut env: Vec<(String, String)> = vec![
        ("ORCH_TICKET".into(), t.id.clone()),
        ("ORCH_ATTEMPT".into(), claim.attempt.to_string()),
        ("ORCH_WORKTREE".into(), wt.clone()),
        ("ORCH_BRANCH".into(), prepared.branch.clone()),
        ("ORCH_PROMPT_FILE".into(), prompt_path.display().to_string()),
        ("ORCH_RESULT_FILE".into(), result_path.display().to_string()),
    ];
    if let Some(path) = path_with_orch() {
        env.push(("PATH".into(), path));
    }
    env.extend(agent_env);
    let mut env_remove = eff.env_remove.clone();
    // The agent works in its worktree, whatever git environment orch ran in.
    env_remove.extend(["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"].map(String::from));
    let log_path = layout.log_path(&t.id, claim.attempt);
    let spec = Spec {
        argv,
        cwd: prepared.path.clone(),
        env: env.clone(),
        env_remove: env_remove.clone(),
        stdin: use_stdin.then(|| prompt_text.into_bytes()),
        log_path: log_path.clone(),
        log_append: false,
        max_log: eff.max_log,
        timeout: eff.timeout,
        no_output_timeout: eff.no_output_timeout,
        kill_grace: eff.kill_grace,
        run_id: claim.run_id.clone(),
        events,
        no_progress_timeout: eff.no_progress_timeout,
    };
    let control = Control {
        interrupt: interrupt.clone(),
        abort_file: Some(layout.abort_request(&t.id)),
        last_line: Default::default(),
    };
    let _ = std::fs::write(
        layout.run_info(&t.id),
        serde_json::json!({"run": claim.run_id, "attempt": claim.attempt, "orch_pid": std::process::id()}).to_string(),
    );
    // What is already changed outside the worktree, to tell afterwards what
    // the agent touched there.
    let plan_before = plan_changes(layout);
    let checkout_before = main.checkout_changes();
    reporter.started(&t.id, &control);
    let report = supervise::run(&spec, &control);
    reporter.stopped(&t.id);
    if report.ended == Ended::SpawnFailed && prepared.created_branch {
        // Nothing ran: leave no half-made worktree or branch behind.
        if let Err(e) = workspace::discard(main, layout, &t.id) {
            facts.notes.push(format!(
                "cannot remove the unused worktree: {}",
                render_chain(&e)
            ));
        }
        facts.report = Some(report);
        return facts;
    }
    if report.leftovers_stopped > 0 {
        facts.notes.push(format!(
            "stopped {} process(es) the agent left running",
            report.leftovers_stopped
        ));
    }
    facts.result_file = read_result_file(&result_path);

    // Keep whatever the agent left uncommitted, whatever the outcome.
    match git::Worktree::open(&prepared.path) {
        Ok(w) => {
            // The agent's processes are all gone: a lock its git left is stale.
            w.clear_stale_index_lock();
            match workspace::keep_work(
                main,
                &w,
                &t.id,
                claim.attempt,
                &work_message(&t.id, claim.attempt, "agent"),
            ) {
                Ok(Some(note)) if !note.starts_with("committed") => facts.notes.push(note),
                Ok(_) => {}
                Err(e) => facts.notes.push(format!(
                    "cannot commit the agent's changes: {}",
                    render_chain(&e)
                )),
            }
        }
        Err(_) => facts.notes.push("the agent deleted its worktree".into()),
    }
    failpoint::hit("settle-after-work-commit");
    for (place, before, after) in [
        (
            "the plan worktree (.orch/plan)",
            plan_before,
            plan_changes(layout),
        ),
        ("your checkout", checkout_before, main.checkout_changes()),
    ] {
        let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
        if !new.is_empty() {
            let list: Vec<&str> = new.iter().take(10).map(|s| s.as_str()).collect();
            let text = format!(
                "while the agent ran, {} path(s) changed in {place}, outside its worktree: {}; they are not part of the ticket's work",
                new.len(),
                list.join(", ")
            );
            reporter.event(Some(&t.id), &text);
            facts.notes.push(text);
        }
    }
    let tip = main.branch_tip(&prepared.branch);
    facts.tip = tip.map(|o| o.to_string());
    if let Some(tip) = tip {
        if !main.contains(tip, prepared.start) {
            // The agent rewound or rewrote its branch (reset --hard, rebase):
            // keep the earlier tip reachable, so no attempt's work is lost.
            let kept = format!("refs/orch/kept/{}/{}", t.id, claim.attempt);
            match main.keep(&kept, prepared.start, "orch: the agent rewound its branch") {
                Ok(()) => facts.notes.push(format!(
                    "the agent rewound {} from {}; that commit is kept as {kept}",
                    prepared.branch,
                    short(&prepared.start.to_string())
                )),
                Err(e) => facts.notes.push(render_chain(&e)),
            }
        }
        facts.commits = main
            .commits_between(Some(prepared.start), tip)
            .unwrap_or_default();
    }

    let clean_exit = report.success()
        && !matches!(
            facts.result_file.as_ref().map(|r| r.0.as_str()),
            Some("blocked" | "failed")
        );
    if clean_exit && !facts.commits.is_empty() && !eff.verify.is_empty() && prepared.path.exists() {
        for cmd in &eff.verify {
            let vspec = Spec {
                argv: vec!["sh".into(), "-c".into(), cmd.clone()],
                log_append: true,
                stdin: None,
                // The same run id: a verify command orphaned by a dead
                // supervisor is found and killed like the agent.
                run_id: claim.run_id.clone(),
                events: None,
                ..spec.clone()
            };
            if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&log_path) {
                use std::io::Write;
                let _ = writeln!(f, "\n[orch: verify: {cmd}]");
            }
            let v = supervise::run(&vspec, &control);
            let text = match v.ended {
                Ended::Exited if v.success() => "passed".to_string(),
                Ended::Exited | Ended::SpawnFailed => format!("failed ({})", v.exit_text()),
                Ended::Timeout => "timed out".into(),
                Ended::Stalled | Ended::NoProgress => "stalled (no output)".into(),
                Ended::Interrupted => "interrupted".into(),
                Ended::Aborted => "aborted".into(),
            };
            facts.verify.push((cmd.clone(), text.clone()));
            if !v.success() {
                facts.verify_failed = Some(format!("verify `{cmd}` {text}"));
                facts.verify_ended = Some(v.ended);
                break;
            }
        }
    }
    facts.report = Some(report);
    facts
}

fn classify_run(f: &RunFacts, eff: &Effective) -> Settlement {
    let s = |outcome: &str, reason: String, retry: bool, to: Option<State>| Settlement {
        outcome: outcome.into(),
        reason,
        retry,
        to,
        counts: ticket::outcome_counts_as_attempt(outcome),
        extra_files: Vec::new(),
    };
    if f.interrupted_early {
        return s(
            "interrupted",
            "orch was stopped before the agent started".into(),
            true,
            Some(State::Todo),
        );
    }
    if let Some(e) = &f.setup_error {
        return s("failed", e.clone(), true, None);
    }
    let Some(r) = &f.report else {
        return s("failed", "the agent did not run".into(), true, None);
    };
    let said = f.result_file.as_ref().map(|(s, _)| s.as_str());
    let message = f.result_file.as_ref().and_then(|(_, m)| m.clone());
    let with_message = |base: String| match &message {
        Some(m) if !m.trim().is_empty() => {
            format!("{base}: {}", m.lines().next().unwrap_or("").trim())
        }
        _ => base,
    };
    let ended = match (r.ended, f.verify_ended) {
        (Ended::Exited, Some(v @ (Ended::Interrupted | Ended::Aborted))) => v,
        (e, _) => e,
    };
    match ended {
        Ended::Interrupted => {
            return s(
                "interrupted",
                "orch was stopped by a signal".into(),
                true,
                Some(State::Todo),
            );
        }
        Ended::Aborted => {
            return s(
                "aborted",
                "stopped by `orch abort`".into(),
                false,
                Some(State::Blocked),
            );
        }
        Ended::NoProgress => {
            return s(
                "stalled",
                format!(
                    "no progress for {} (only retry messages or idle output)",
                    crate::duration::display(eff.no_progress_timeout.unwrap_or_default())
                ),
                true,
                None,
            );
        }
        Ended::Timeout => {
            return s(
                "timeout",
                format!(
                    "still running after the hard timeout of {}",
                    crate::duration::display(eff.timeout)
                ),
                true,
                None,
            );
        }
        Ended::Stalled => {
            return s(
                "stalled",
                format!(
                    "no output for {}",
                    crate::duration::display(eff.no_output_timeout)
                ),
                true,
                None,
            );
        }
        Ended::SpawnFailed => {
            // Checked before the claim, so this is a race with an uninstall:
            // a configuration problem, not the ticket's failure.
            let mut settlement = s("failed", r.exit_text(), true, None);
            settlement.counts = false;
            return settlement;
        }
        Ended::Exited => {}
    }
    if said == Some("blocked") {
        return s(
            "blocked",
            with_message("the agent asked for a person".into()),
            false,
            Some(State::Blocked),
        );
    }
    if said == Some("failed") {
        return s(
            "failed",
            with_message(format!("the agent reported failure ({})", r.exit_text())),
            true,
            None,
        );
    }
    if !r.success() {
        return s("failed", with_message(r.exit_text()), true, None);
    }
    if f.commits.is_empty() {
        if said == Some("done") {
            return s(
                "success",
                with_message("the agent reported done with no changes needed".into()),
                false,
                Some(State::Done),
            );
        }
        return s(
            "no-changes",
            "the agent exited 0 without changing anything".into(),
            true,
            None,
        );
    }
    if let Some(v) = &f.verify_failed {
        return s("verify-failed", v.clone(), true, None);
    }
    let n = f.commits.len();
    s(
        "success",
        with_message(format!(
            "{n} commit{} on the ticket branch",
            if n == 1 { "" } else { "s" }
        )),
        false,
        Some(State::Done),
    )
}

/// The run's outcome, unless its output says the agent could not use its
/// model at all: then the attempt says nothing about the ticket.
fn classify(f: &RunFacts, eff: &Effective) -> Settlement {
    let settlement = classify_run(f, eff);
    let may_be_outage = matches!(
        settlement.outcome.as_str(),
        "failed" | "timeout" | "stalled" | "no-changes"
    );
    let tail = f.report.as_ref().map(|r| r.tail.as_slice()).unwrap_or(&[]);
    match unavailable::recognise(tail) {
        Some(reason) if may_be_outage && f.setup_error.is_none() => {
            let until = jiff::Timestamp::from_second(
                jiff::Timestamp::now().as_second() + eff.agent_cooldown.as_secs() as i64,
            )
            .map(|t| t.to_string())
            .unwrap_or_default();
            let agent = eff.agent.label();
            let cooldown = unavailable::Cooldown {
                agent: agent.clone(),
                until,
                reason: reason.clone(),
            };
            Settlement {
                outcome: "agent-unavailable".into(),
                reason,
                retry: true,
                to: None,
                // The third in a row counts after all (see UNCOUNTED_IN_A_ROW).
                counts: f.unavailable_in_a_row + 1 >= unavailable::UNCOUNTED_IN_A_ROW,
                extra_files: vec![(
                    unavailable::rel_path(&agent),
                    unavailable::render(&cooldown),
                )],
            }
        }
        _ => settlement,
    }
}

/// Append the result, move the ticket, write the summary, commit once.
#[allow(clippy::too_many_arguments)]
fn record(
    session: &Session,
    t: &Ticket,
    attempt: u32,
    run: &str,
    settlement: &Settlement,
    used: u32,
    max_attempts: u32,
    sum: &AttemptSummary,
) -> Result<(State, String)> {
    let (to, reason) = match settlement.to {
        Some(to) => (to, settlement.reason.clone()),
        None if settlement.retry && used < max_attempts => (State::Todo, settlement.reason.clone()),
        None => (
            State::Blocked,
            format!(
                "attempts used up ({used} of {max_attempts}); last: {}: {}",
                settlement.outcome, settlement.reason
            ),
        ),
    };
    let mut entry = LogEntry::new("result")
        .with("attempt", attempt)
        .with("outcome", &settlement.outcome)
        .with("reason", truncate(&reason, 300));
    if settlement.counts != ticket::outcome_counts_as_attempt(&settlement.outcome) {
        entry = entry.with("counted", if settlement.counts { "yes" } else { "no" });
    }
    entry = entry.with("to", to);
    // The summary first: a crash after it leaves the ticket in progress,
    // which the next tick settles, rather than a moved ticket without one.
    let rel = format!("runs/{}/{attempt}.md", t.id);
    let mut sum = sum.clone();
    if reason != settlement.reason {
        sum.notes.push(format!("moved to blocked: {reason}"));
    }
    board::write_atomic(&session.layout.plan.join(&rel), sum.render().as_bytes())?;
    for (path, content) in &settlement.extra_files {
        board::write_atomic(&session.layout.plan.join(path), content.as_bytes())?;
    }
    failpoint::hit("settle-after-summary");
    let mut paths =
        session.move_ticket(&t.id, State::InProgress, to, &t.text_with_entry(&entry))?;
    failpoint::hit("settle-after-move");
    paths.push(rel);
    paths.extend(settlement.extra_files.iter().map(|(p, _)| p.clone()));
    let mut change = Change::new(format!(
        "orch: {} {} (attempt {attempt})",
        settlement.outcome, t.id
    ))
    .line(truncate(&reason, 300))
    .trailer("Orch-Ticket", &t.id)
    .trailer("Orch-Attempt", attempt)
    .trailer("Orch-Outcome", &settlement.outcome)
    .trailer("Orch-State", to);
    if !run.is_empty() {
        change = change.trailer("Orch-Run", run);
    }
    if let Some(tip) = &sum.tip {
        change = change.trailer("Orch-Commit", tip);
    }
    session.commit(&paths, &change)?;
    Ok((to, reason))
}

fn render_prompt(layout: &Layout, t: &Ticket, attempt: u32, eff: &Effective) -> String {
    let last = t.last_result();
    let previous_outcome = last.map(|r| {
        format!(
            "{}{}",
            r.get("outcome").unwrap_or("unknown"),
            r.get("reason")
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        )
    });
    let previous_tail = match last.and_then(LogEntry::attempt) {
        Some(prev) => {
            let local = local_tail(layout, &t.id, prev);
            if local.is_empty() {
                std::fs::read_to_string(layout.plan.join(format!("runs/{}/{prev}.md", t.id)))
                    .map(|s| summary::tail_of(&s))
                    .unwrap_or_default()
            } else {
                local
            }
        }
        None => Vec::new(),
    };
    let n = previous_tail.len();
    let vars = PromptVars {
        id: t.id.clone(),
        title: t.title().to_string(),
        body: t.body().to_string(),
        branch: git::ticket_branch(&t.id),
        attempt,
        max_attempts: eff.max_attempts,
        verify: eff.verify.clone(),
        previous_outcome,
        previous_tail: previous_tail[n.saturating_sub(20)..].to_vec(),
    };
    prompt::render(&prompt::template(&layout.plan), &vars)
}

fn plan_changes(layout: &Layout) -> Vec<String> {
    git::Worktree::open(&layout.plan)
        .and_then(|w| w.changed_paths())
        .unwrap_or_default()
}

/// The last lines of an attempt's local log, if this host has it.
fn local_tail(layout: &Layout, id: &str, attempt: u32) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(layout.log_path(id, attempt)) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let skip = usize::from(start > 0); // the first line may be cut
    let from = lines.len().saturating_sub(supervise::TAIL_LINES).max(skip);
    lines[from.min(lines.len())..].to_vec()
}

fn log_field(layout: &Layout, id: &str, attempt: u32) -> String {
    let path = layout.log_path(id, attempt);
    match std::fs::metadata(&path) {
        Ok(m) => format!(
            ".orch/logs/{id}/{attempt}.log ({} bytes, on host {})",
            m.len(),
            board::host_name()
        ),
        Err(_) => String::new(),
    }
}

fn read_result_file(path: &Path) -> Option<(String, Option<String>)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let status = v.get("status")?.as_str()?.to_string();
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string);
    Some((status, message))
}

fn work_message(id: &str, attempt: u32, who: &str) -> String {
    let what = if who == "abandoned" {
        "uncommitted work of an abandoned run"
    } else {
        "uncommitted work of the agent"
    };
    format!(
        "orch: {what} on {id} (attempt {attempt})\n\nOrch-Ticket: {id}\nOrch-Attempt: {attempt}\nOrch-Event: commit-work\nOrch-Host: {}\n",
        board::host_name()
    )
}

/// PATH with the directory of the running orch appended, so an agent can
/// call `orch submit` even when orch is not installed on PATH.
fn path_with_orch() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let current = std::env::var_os("PATH").unwrap_or_default();
    let mut parts: Vec<PathBuf> = std::env::split_paths(&current).collect();
    if !parts.contains(&dir) {
        parts.push(dir);
    }
    std::env::join_paths(parts).ok()?.into_string().ok()
}

fn truncate(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

/// `--explain`: what a tick would do with every ticket, and why. Reads the
/// files only; changes nothing.
pub fn explain(layout: &Layout, opts: &Options) -> Result<Vec<(String, String, String)>> {
    let board = Board::load(layout);
    let config = board.config()?.clone();
    let host = board::host_name();
    let mut out = Vec::new();
    let mut running = 0u32;
    for t in board.in_state(State::InProgress) {
        let why = match t.open_claim() {
            None => "would return to todo: in progress without a claim".to_string(),
            Some(c) if c.get("host").is_none_or(|h| h == host) => {
                if RunLock::is_held(&layout.run_lock(&t.id))? {
                    running += 1;
                    format!(
                        "running (attempt {}), supervised by a live orch",
                        c.attempt().unwrap_or(0)
                    )
                } else {
                    "would settle as abandoned: its supervising orch is gone".to_string()
                }
            }
            Some(c) => {
                running += 1;
                format!("running on host {}", c.get("host").unwrap_or("?"))
            }
        };
        out.push((t.id.clone(), "in-progress".into(), why));
    }
    let cap = config.max_in_progress.saturating_sub(running);
    let room = cap.min(opts.jobs.unwrap_or(config.max_in_progress).max(1)) as usize;
    let queue = board.ready_queue();
    for (i, t) in queue.iter().enumerate() {
        let paused = unavailable::active(&layout.plan, &effective(&config, t).agent.label());
        let why = if opts.only.as_ref().is_some_and(|o| o != &t.id) {
            "ready, but --ticket names another".to_string()
        } else if let Some(p) = paused {
            format!(
                "ready, not claimed: agent `{}` is paused until {}",
                p.agent, p.until
            )
        } else if i < room {
            format!(
                "would claim: ready, priority {}, attempt {}",
                t.front.priority,
                t.attempts_started() + 1
            )
        } else if cap == 0 {
            format!(
                "ready, not claimed: over the cap (max_in_progress {})",
                config.max_in_progress
            )
        } else {
            format!("ready, not claimed: this tick runs {room} (--jobs / max_in_progress)")
        };
        out.push((t.id.clone(), "todo".into(), why));
    }
    for t in board.in_state(State::Todo) {
        match board.readiness(t) {
            Readiness::Ready => {}
            Readiness::Waiting(on) => out.push((
                t.id.clone(),
                "todo".into(),
                format!("waiting on {}", on.join(", ")),
            )),
            Readiness::Invalid(why) => out.push((
                t.id.clone(),
                "todo".into(),
                format!("skipped, invalid: {why}"),
            )),
        }
    }
    for t in board.in_state(State::Blocked) {
        let why = t
            .last_result()
            .and_then(|r| r.get("reason"))
            .unwrap_or("needs a person");
        out.push((t.id.clone(), "blocked".into(), format!("blocked: {why}")));
    }
    for p in board.errors() {
        let id = Path::new(&p.path)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !out.iter().any(|(i, _, _)| *i == id) {
            out.push((id, "invalid".into(), format!("skipped: {p}")));
        }
    }
    Ok(out)
}
