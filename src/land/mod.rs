//! Landing: tickets whose attempt succeeded wait in `tickets/landing/`;
//! each tick merges them onto the target in order of success, checks the
//! merged result, and moves the target with its old value as the expected
//! one. A conflict or a red result goes back to an agent; the target never
//! receives a tree that failed its checks, and no checkout with local
//! changes is touched.
//!
//! Order of steps for one candidate (each a failpoint for the crash tests):
//! trial merge in memory, checks in a scratch worktree, the journal, the
//! target's compare-and-swap, then one board commit. A crash after the
//! target moved is recognised by the journal (or, on another host, by the
//! target already holding the ticket's changes) and recorded as landed,
//! never landed twice.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::agent::supervise::Control;
use crate::board::transition::{self, LandResult};
use crate::board::{BoardTxn, CommitMessage, Layout, Trailer, host_name};
use crate::config::{Config, Land};
use crate::error::{Result, render_chain};
use crate::git::land::{Trial, Way};
use crate::git::{self, MainRepo, Oid};
use crate::lock::RunLock;
use crate::outcome::Outcome;
use crate::remote::Remote;
use crate::text::short_oid;
use crate::tick::{Event, Reporter};
use crate::ticket::{State, Ticket};
use crate::workspace;

pub mod advance;
pub mod check;
pub mod command;

use advance::Advanced;

/// How often a landing merges again after the target moved under it.
const MAX_RACES: u32 = 8;

/// What one landing run did, for the tick's result and the tests.
#[derive(Debug, Default, Clone)]
pub struct Landed {
    pub landed: Vec<String>,
    pub handed_back: Vec<(String, Outcome)>,
    pub waiting: Vec<String>,
    /// Check commands run on merged results.
    pub check_runs: u32,
}

/// One ticket waiting to land, as this run sees it.
#[derive(Debug, Clone)]
struct Waiting {
    ticket: Ticket,
    attempt: u32,
    /// The tip of `orch/<id>`.
    branch: Oid,
    way: Way,
}

/// Everything a landing run needs beside the tickets.
struct Ctx<'a> {
    layout: &'a Layout,
    main: MainRepo,
    config: Config,
    remote: Option<Remote>,
    sign: bool,
    control: Control,
    reporter: &'a dyn Reporter,
    out: Landed,
}

/// Land what waits in `tickets/landing/`. Only one process lands per
/// repository at a time; a second returns at once.
pub fn land_waiting(
    layout: &Layout,
    lock_timeout: Duration,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> Result<Landed> {
    let Some(_lock) = RunLock::try_acquire(&layout.land_lock())? else {
        return Ok(Landed::default());
    };
    let (board, config, remote, sign) = {
        let txn = BoardTxn::open(&layout.root, lock_timeout)?;
        let board = txn.load_active();
        let config = board.config()?.clone();
        (board, config, txn.remote().cloned(), txn.signs())
    };
    let mut waiting: Vec<&Ticket> = board.in_state(State::Landing).collect();
    let main = git::open_main(&layout.root)?;
    if waiting.is_empty() {
        check::clear_scratch(&main, layout)?;
        return Ok(Landed::default());
    }
    waiting.sort_by(|a, b| (a.succeeded_at(), &a.id).cmp(&(b.succeeded_at(), &b.id)));
    let mut ctx = Ctx {
        layout,
        main,
        config,
        remote,
        sign,
        control: Control {
            interrupt,
            ..Control::default()
        },
        reporter,
        out: Landed::default(),
    };
    check::clear_scratch(&ctx.main, layout)?;
    let mut queue: Vec<Waiting> = Vec::new();
    for t in waiting {
        let attempt = t.results().next_back().map(|r| r.attempt).unwrap_or(0);
        let land = t
            .front
            .land
            .clone()
            .unwrap_or_else(|| ctx.config.land.clone());
        let way = match land {
            Land::None => {
                ctx.record(
                    t,
                    attempt,
                    &LandResult::Off,
                    &format!(
                        "landing is off (land: none); the work stays on {}",
                        git::ticket_branch(&t.id)
                    ),
                );
                continue;
            }
            Land::Command(argv) => {
                ctx.land_by_command(t, attempt, &argv);
                continue;
            }
            Land::Merge => Way::Merge,
            Land::Squash => Way::Squash,
            Land::Rebase => Way::Rebase,
        };
        match ctx.branch_tip(&t.id) {
            Ok(Some(branch)) => queue.push(Waiting {
                ticket: t.clone(),
                attempt,
                branch,
                way,
            }),
            Ok(None) => {
                let why = format!(
                    "its branch {} is gone; nothing to land",
                    git::ticket_branch(&t.id)
                );
                ctx.record(
                    t,
                    attempt,
                    &LandResult::HandedBack {
                        outcome: Outcome::LandFailed,
                    },
                    &why,
                );
            }
            Err(e) => {
                let why = render_chain(&e);
                ctx.note_wait(&t.id, &why);
                ctx.wait(Some(&t.id), why);
            }
        }
    }
    let batch = ctx.config.land_batch.max(1) as usize;
    let mut rest = queue.as_slice();
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        match ctx.land_set(now, false) {
            Ok(Some(_)) => {}
            Ok(None) => {
                // The target cannot move now (a checkout in the way):
                // the others wait with it, in order.
                for w in rest {
                    ctx.note_wait(&w.ticket.id, "behind tickets that wait to land");
                    ctx.out.waiting.push(w.ticket.id.clone());
                }
                break;
            }
            Err(e) => {
                // Every ticket not landed says why, not an older reason.
                let why = render_chain(&e);
                for w in now.iter().chain(rest) {
                    if !ctx.out.landed.contains(&w.ticket.id) {
                        ctx.note_wait(&w.ticket.id, &why);
                    }
                }
                ctx.wait(None, why);
                break;
            }
        }
    }
    Ok(ctx.out)
}

impl Ctx<'_> {
    /// The ticket branch's tip: the remote's when it is ahead of this
    /// host's (another host ran the attempt).
    fn branch_tip(&self, id: &str) -> Result<Option<Oid>> {
        let name = git::ticket_branch(id);
        let local = self.main.branch_tip(&name);
        let Some(remote) = &self.remote else {
            return Ok(local);
        };
        let theirs = remote.fetch_branch(&name)?;
        Ok(match (local, theirs) {
            (Some(l), Some(r)) if l != r && self.main.contains(r, l) => Some(r),
            (None, r) => r,
            (l, _) => l,
        })
    }

    /// Land `set` together onto the target, checking the result once;
    /// when the checks fail, split it and land each half in turn, so the
    /// tickets that break it are found and the others land. `known_bad`:
    /// the set is known to fail (its left sibling passed), so it is split
    /// without a run, and a lone ticket is handed back without one.
    /// Returns whether some ticket failed the checks, or None when the
    /// target cannot move now.
    fn land_set(&mut self, set: &[Waiting], known_bad: bool) -> Result<Option<bool>> {
        let mut races = 0;
        'race: loop {
            let target = self.config.target().to_string();
            let tip = advance::target_tip(&self.main, &target, self.remote.as_ref())?;
            let mut chain: Vec<(&Waiting, Oid)> = Vec::new();
            let mut cur = tip;
            for w in set {
                if self.already_landed(w, tip)? {
                    continue;
                }
                match self.trial(cur, w)? {
                    Trial::Clean(c) => {
                        chain.push((w, c));
                        cur = c;
                    }
                    Trial::AlreadyIn => {
                        self.landed(w, None, &format!("{target} has its changes already"));
                    }
                    Trial::Conflicts(paths) if cur == tip => self.conflict(w, tip, &paths),
                    Trial::Conflicts(_) => match self.trial(tip, w)? {
                        Trial::Conflicts(paths) => self.conflict(w, tip, &paths),
                        // It conflicts only with another ticket of this
                        // set: it waits for a set of its own.
                        _ => {
                            self.note_wait(
                                &w.ticket.id,
                                "conflicts with a ticket landing before it",
                            );
                            self.out.waiting.push(w.ticket.id.clone());
                        }
                    },
                }
            }
            if chain.is_empty() {
                return Ok(Some(false));
            }
            // Landing cannot move a checkout with local changes: learn
            // that before spending a run of the checks.
            if let Some(why) = self.checkout_blocks(&target, tip, cur)? {
                for (w, _) in &chain {
                    self.note_wait(&w.ticket.id, &why);
                    self.out.waiting.push(w.ticket.id.clone());
                }
                self.wait(None, why);
                return Ok(None);
            }
            crate::failpoint::hit("land-after-trial");
            // Known to fail, and more than one: split without a run.
            let known = known_bad && chain.len() == set.len();
            if known && chain.len() > 1 {
                return self.split(&chain);
            }
            let commands = self.checks_for(&chain);
            let log = self.check_log(&chain);
            let checked = if known && !commands.is_empty() {
                check::Checked {
                    failed: Some("the checks failed with it merged (found by splitting a batch whose other tickets passed)".into()),
                    tail: Vec::new(),
                    runs: 0,
                }
            } else {
                let checked = check::run(
                    &self.main,
                    self.layout,
                    &self.config,
                    cur,
                    &commands,
                    &log,
                    &self.control,
                )?;
                self.out.check_runs += u32::from(!commands.is_empty());
                checked
            };
            crate::failpoint::hit("land-after-check");
            if let Some(failed) = checked.failed {
                if chain.len() == 1 {
                    let (w, _) = chain[0];
                    self.append_to_attempt_log(w, &log, &checked.tail);
                    let why = format!(
                        "checks failed on {} merged onto {target} ({}): {failed}",
                        git::ticket_branch(&w.ticket.id),
                        short_oid(&tip.to_string())
                    );
                    self.record(
                        &w.ticket,
                        w.attempt,
                        &LandResult::HandedBack {
                            outcome: Outcome::LandFailed,
                        },
                        &why,
                    );
                    return Ok(Some(true));
                }
                return self.split(&chain);
            }
            for (w, c) in &chain {
                self.journal(w, *c);
            }
            match advance::advance(&self.main, &target, tip, cur, self.remote.as_ref())? {
                Advanced::Moved { notes } => {
                    crate::failpoint::hit("land-after-advance");
                    for note in notes {
                        self.reporter.report(&Event::Note(note));
                    }
                    for (w, c) in &chain {
                        self.landed(
                            w,
                            Some(*c),
                            &format!("landed on {target} as {}", short_oid(&c.to_string())),
                        );
                    }
                    return Ok(Some(false));
                }
                Advanced::Waits(why) => {
                    for (w, _) in &chain {
                        self.forget_journal(w);
                        self.note_wait(&w.ticket.id, &why);
                        self.out.waiting.push(w.ticket.id.clone());
                    }
                    self.wait(None, why);
                    return Ok(None);
                }
                Advanced::Raced => {
                    for (w, _) in &chain {
                        self.forget_journal(w);
                    }
                    races += 1;
                    if races >= MAX_RACES {
                        self.wait(
                            None,
                            format!(
                                "{target} kept moving while orch landed; the next tick tries again"
                            ),
                        );
                        return Ok(None);
                    }
                    crate::board::txn::backoff(races);
                    continue 'race;
                }
            }
        }
    }

    /// A set that failed its checks, landed half by half: when the left
    /// half passes, the right one is known to hold what failed.
    fn split(&mut self, chain: &[(&Waiting, Oid)]) -> Result<Option<bool>> {
        let owned: Vec<Waiting> = chain.iter().map(|(w, _)| (*w).clone()).collect();
        let (left, right) = owned.split_at(owned.len() / 2);
        let Some(left_failed) = self.land_set(left, false)? else {
            return Ok(None);
        };
        self.land_set(right, !left_failed).map(|r| r.map(|_| true))
    }

    /// Why a checkout of the target would stop the move from `old` to
    /// `new`, before any check runs. With a remote the landing goes to the
    /// remote, and only this host's branch waits.
    fn checkout_blocks(&self, target: &str, old: Oid, new: Oid) -> Result<Option<String>> {
        if self.remote.is_some() || self.main.branch_tip(target) != Some(old) {
            return Ok(None);
        }
        let writes = self.main.paths_between(old, new)?;
        for checkout in self.main.checkouts_of(target) {
            if let Some(why) = git::land::checkout_in_the_way(&checkout, &writes)? {
                return Ok(Some(format!(
                    "{why}; it lands once the checkout is clean or on another branch"
                )));
            }
        }
        Ok(None)
    }

    /// Whether a landing of `w` that a killed tick began already reached
    /// the target (its journal names a commit the target holds): then it
    /// is recorded, not landed again.
    fn already_landed(&mut self, w: &Waiting, tip: Oid) -> Result<bool> {
        let path = self.layout.land_journal(&w.ticket.id);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(false);
        };
        let Ok(commit) = Oid::from_str(text.trim()) else {
            self.forget_journal(w);
            return Ok(false);
        };
        if commit == tip || self.main.contains(tip, commit) {
            let target = self.config.target().to_string();
            self.landed(
                w,
                Some(commit),
                &format!("landed on {target} as {}", short_oid(&commit.to_string())),
            );
            return Ok(true);
        }
        self.forget_journal(w);
        Ok(false)
    }

    fn trial(&self, onto: Oid, w: &Waiting) -> Result<Trial> {
        let message = landing_message(&self.config, w);
        self.main
            .trial_land(onto, w.branch, w.way, &message, self.sign)
    }

    /// The checks of a set: `land_verify`, else each ticket's `verify`
    /// (its own, else orch.yaml's), each command once, in order.
    fn checks_for(&self, chain: &[(&Waiting, Oid)]) -> Vec<String> {
        if let Some(v) = &self.config.land_verify {
            return v.clone();
        }
        let mut out: Vec<String> = Vec::new();
        for (w, _) in chain {
            let own = w
                .ticket
                .front
                .verify
                .clone()
                .unwrap_or_else(|| self.config.verify.clone());
            for cmd in own {
                if !out.contains(&cmd) {
                    out.push(cmd);
                }
            }
        }
        out
    }

    /// Where the checks' output goes: the attempt's own log for one
    /// ticket (its next prompt shows the tail from there), a landing log
    /// for a set.
    fn check_log(&self, chain: &[(&Waiting, Oid)]) -> std::path::PathBuf {
        match chain {
            [(w, _)] => self.layout.log_path(&w.ticket.id, w.attempt),
            _ => self.layout.local.join("logs").join("landing.log"),
        }
    }

    fn append_to_attempt_log(&self, w: &Waiting, log: &Path, tail: &[String]) {
        let own = self.layout.log_path(&w.ticket.id, w.attempt);
        if own == log || tail.is_empty() {
            return;
        }
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&own)
        {
            let _ = writeln!(f, "\n[orch: checks on the merged result failed]");
            for line in tail {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    fn conflict(&mut self, w: &Waiting, tip: Oid, paths: &[String]) {
        let target = self.config.target();
        let short = short_oid(&tip.to_string()).to_string();
        let why = format!(
            "merging {} onto {target} ({short}) conflicts in: {}; bring {target} into the branch with `git merge {tip}`, resolve the conflicts and commit",
            git::ticket_branch(&w.ticket.id),
            crate::text::list_some(paths, 10),
        );
        self.record(
            &w.ticket,
            w.attempt,
            &LandResult::HandedBack {
                outcome: Outcome::Conflict,
            },
            &why,
        );
    }

    fn landed(&mut self, w: &Waiting, commit: Option<Oid>, why: &str) {
        let result = LandResult::Landed {
            commit: commit.map(|c| c.to_string()),
        };
        self.record(&w.ticket, w.attempt, &result, why);
    }

    /// Record on the board what landing did with `t`, and say it.
    fn record(&mut self, t: &Ticket, attempt: u32, result: &LandResult, why: &str) {
        let id = &t.id;
        let once = || -> Result<Option<State>> {
            let mut txn = BoardTxn::open(&self.layout.root, RECORD_LOCK_WAIT)?;
            transition::land(&mut txn, id, attempt, result, why, self.config.land_retries)
        };
        match once() {
            Ok(Some(to)) => {
                let _ = std::fs::remove_file(self.layout.land_wait(id));
                let _ = std::fs::remove_file(self.layout.land_journal(id));
                match result {
                    LandResult::Landed { .. } | LandResult::Off => {
                        self.reporter.report(&Event::Landed {
                            id: id.clone(),
                            text: format!("{why}; moved to {to}"),
                        });
                        self.out.landed.push(id.clone());
                        if to == State::Done {
                            self.remove_worktree(id);
                        }
                    }
                    LandResult::HandedBack { outcome } => {
                        self.reporter.report(&Event::HandedBack {
                            id: id.clone(),
                            outcome: *outcome,
                            reason: why.to_string(),
                            to,
                        });
                        self.out.handed_back.push((id.clone(), *outcome));
                    }
                }
            }
            // A person moved it out of landing/ meanwhile: their move stands.
            Ok(None) => {
                let _ = std::fs::remove_file(self.layout.land_wait(id));
            }
            Err(e) => self.reporter.report(&Event::error(
                id,
                format!(
                    "cannot record the landing ({}); the next tick records it",
                    render_chain(&e)
                ),
            )),
        }
    }

    fn remove_worktree(&self, id: &str) {
        let Ok(Some(_run)) = RunLock::try_acquire(&self.layout.run_lock(id)) else {
            return;
        };
        match workspace::remove(&self.main, self.layout, id) {
            Ok(kept) => {
                for text in kept {
                    self.reporter.report(&Event::Cleaned {
                        id: id.to_string(),
                        text,
                    });
                }
            }
            Err(e) => self.reporter.report(&Event::error(
                id,
                format!("cannot remove the worktree: {}", render_chain(&e)),
            )),
        }
    }

    fn land_by_command(&mut self, t: &Ticket, attempt: u32, argv: &[String]) {
        match command::run(self.layout, &self.config, t, attempt, argv, &self.control) {
            command::Ran::Landed(url) => {
                let why = match url {
                    Some(url) => format!("landed by the land command: {url}"),
                    None => "landed by the land command".to_string(),
                };
                self.record(t, attempt, &LandResult::Landed { commit: None }, &why);
            }
            command::Ran::Failed(why) => {
                self.note_wait(&t.id, &why);
                self.out.waiting.push(t.id.clone());
                self.wait(Some(&t.id), why);
            }
        }
    }

    fn journal(&self, w: &Waiting, commit: Oid) {
        let path = self.layout.land_journal(&w.ticket.id);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::board::write_atomic(&path, format!("{commit}\n").as_bytes());
    }

    fn forget_journal(&self, w: &Waiting) {
        let _ = std::fs::remove_file(self.layout.land_journal(&w.ticket.id));
    }

    /// Keep why `id` waits, for `orch status` and `orch show`.
    fn note_wait(&self, id: &str, why: &str) {
        let path = self.layout.land_wait(id);
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(path, format!("{why}\n"));
    }

    fn wait(&mut self, id: Option<&str>, text: String) {
        self.reporter.report(&Event::LandWaits {
            id: id.map(str::to_string),
            text,
        });
    }
}

/// How long recording a landing waits for the board lock.
const RECORD_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Why `id` waits to land, as the last landing run on this host saw it.
pub fn why_waiting(layout: &Layout, id: &str) -> Option<String> {
    std::fs::read_to_string(layout.land_wait(id))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The message of the commit that lands `w`.
fn landing_message(config: &Config, w: &Waiting) -> String {
    let id = &w.ticket.id;
    let summary = match w.way {
        Way::Merge => format!(
            "Merge {} into {}: {}",
            git::ticket_branch(id),
            config.target(),
            w.ticket.title()
        ),
        Way::Squash | Way::Rebase => w.ticket.title().to_string(),
    };
    CommitMessage::new(summary)
        .trailer(Trailer::Ticket, id)
        .trailer(Trailer::Attempt, w.attempt)
        .trailer(Trailer::Event, "land")
        .render(&host_name())
}
