//! One attempt, from a won claim to the facts [`classify`] needs: prepare
//! the worktree, render the prompt, run the agent under supervision, keep
//! whatever it left uncommitted, notice writes outside its worktree and a
//! rewound branch, run `verify`. Nothing here touches the board.
//!
//! [`classify`]: super::classify::classify

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::agent::contract::{self, RunInfo, SubmitStatus};
use crate::agent::launch;
use crate::agent::prompt::{self, PromptVars};
use crate::agent::supervise::{self, Control, Ended, Report, Spec};
use crate::board::layout::summary_rel;
use crate::board::{CommitMessage, Layout, Trailer, host_name};
use crate::config::CommitHooks;
use crate::error::render_chain;
use crate::failpoint;
use crate::git::{self, MainRepo, Oid, Worktree};
use crate::gitcli;
use crate::runlog;
use crate::summary;
use crate::text::short_oid;
use crate::tick::checkout_watch::CheckoutWatch;
use crate::ticket::Ticket;
use crate::workspace::{self, Prepared};

use super::classify::RunFacts;
use super::event::{Event, Reporter};
use super::settings::RunSettings;

/// A claim this tick won, and what its attempt runs with.
pub struct Won<'a> {
    pub ticket: &'a Ticket,
    pub attempt: u32,
    pub run_id: &'a str,
    pub base: Oid,
    pub settings: &'a RunSettings,
    pub remote: Option<&'a crate::remote::Remote>,
}

/// Run one attempt and gather its facts. Failures of orch's own steps end
/// up in `setup_error`, never as a panic or an early return without facts.
pub fn run(
    layout: &Layout,
    main: &MainRepo,
    won: &Won<'_>,
    interrupt: Arc<AtomicBool>,
    reporter: &dyn Reporter,
) -> RunFacts {
    let t = won.ticket;
    let mut facts = RunFacts {
        unavailable_in_a_row: t.unavailable_in_a_row(),
        unavailable_since: t.unavailable_since().map(str::to_string),
        last_cooldown: crate::agent::unavailable::last(&layout.plan, &won.settings.agent.label()),
        orch_failures_in_a_row: t.orch_failures_in_a_row(),
        ticket_tokens_before: t.tokens_spent(),
        ..RunFacts::default()
    };
    if interrupt.load(Ordering::SeqCst) {
        facts.interrupted_early = true;
        return facts;
    }
    // A first attempt has no branch on any host yet: one fetch saved.
    if let Some(remote) = won.remote.filter(|_| won.attempt > 1) {
        match workspace::take_remote_branch(main, remote, &t.id) {
            Ok(notes) => facts.notes.extend(notes),
            Err(e) => {
                facts.setup_error = Some(format!(
                    "cannot fetch the ticket branch: {}",
                    render_chain(&e)
                ));
                return facts;
            }
        }
    }
    let plain = unsupervised_hooks(layout, main, &t.id, won.settings);
    // The claim just made is the ticket's only one: a first attempt.
    let first = t.claims().count() <= 1;
    let prepared = match workspace::prepare(
        main,
        layout,
        &t.id,
        won.base,
        first,
        &hooks(won.settings, &plain),
    ) {
        Ok(p) => p,
        Err(e) => {
            facts.setup_error = Some(format!("cannot prepare the worktree: {}", render_chain(&e)));
            return facts;
        }
    };
    facts.notes.extend(prepared.notes.iter().cloned());
    let control = Control {
        interrupt,
        abort_file: Some(layout.abort_request(&t.id)),
        ticket_file: Some(layout.plan.join(crate::ticket::rel_path(
            crate::ticket::State::InProgress,
            &t.id,
        ))),
        last_line: Default::default(),
        head_file: Some(
            main.registration(&Layout::worktree_name(&t.id))
                .join("HEAD"),
        ),
        last_head: Default::default(),
    };
    let mut spec = match launch_agent(layout, main, won, &prepared, &mut facts) {
        Some(spec) => spec,
        None => return facts,
    };
    let budget = &won.settings.budget;
    if spec.events.is_some() && budget.is_set() {
        // The day as the board has it now: attempts running beside this
        // one are not counted until they are recorded.
        let day = if budget.tokens_per_day.is_some() {
            crate::budget::read_day(&layout.plan).tokens
        } else {
            0
        };
        facts.budget_limit = budget.attempt_limit(t.tokens_spent(), day);
        spec.token_limit = facts.budget_limit.as_ref().map(|l| l.tokens);
    }
    // What is already changed outside the worktree, to tell afterwards what
    // the agent touched there. Inside the sandbox the kernel refuses the
    // agent any write to the checkout, the plan and the refs: nothing to
    // look for, and no scan of a large checkout per ticket.
    let sandboxed = spec.sandbox.is_some();
    let (plan_before, checkout_before, branches_before) = if sandboxed {
        Default::default()
    } else {
        (
            plan_look(layout, main),
            CheckoutLook::start(main),
            main.user_branches(),
        )
    };
    // A second early: file times may be coarser than the clock.
    let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
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
    facts.submission = contract::read_submission(&layout.result_file(&t.id, won.attempt));
    let last_head = control.last_head.lock().ok().and_then(|h| h.clone());
    let seen = Seen {
        last_head: last_head.as_deref(),
        since: started,
    };
    take_agent_work(main, layout, &prepared, won, &spec, &seen, &mut facts);
    failpoint::hit("settle-after-work-commit");
    let mut outside = Vec::new();
    if !sandboxed {
        outside.extend(set_aside_plan_changes(layout, main, &plan_before, won));
        let (before, after) = checkout_before.finish(main);
        outside.extend(outside_writes("your checkout", &before, &after));
        outside.extend(moved_branches(&branches_before, &main.user_branches()));
    }
    for text in outside {
        reporter.report(&Event::OutsideWrites {
            id: t.id.clone(),
            text: text.clone(),
        });
        facts.notes.push(text);
    }
    if agent_finished_cleanly(&report, &facts)
        && !facts.commits.is_empty()
        && facts.hooks_refused.is_none()
    {
        run_verify(won, &spec, &control, &prepared, &mut facts);
    }
    facts.report = Some(report);
    facts
}

/// Write the prompt and the run file and build the agent's command. None
/// (with `setup_error` set) when orch cannot.
fn launch_agent(
    layout: &Layout,
    main: &MainRepo,
    won: &Won<'_>,
    prepared: &Prepared,
    facts: &mut RunFacts,
) -> Option<Spec> {
    let t = won.ticket;
    let prompt_path = layout.prompt_file(&t.id, won.attempt);
    let result_path = layout.result_file(&t.id, won.attempt);
    let setup = || -> crate::Result<Spec> {
        super::pending::reserve(&super::pending::path(layout, &t.id, won.attempt))?;
        match std::fs::remove_file(&result_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::Error::io("cannot remove", &result_path, e)),
        }
        let prompt_text = render_prompt(layout, t, won.attempt, won.settings);
        crate::board::write_atomic(&prompt_path, prompt_text.as_bytes())?;
        let identity = gitcli::Identity::of(&main.repo);
        let spec = launch::agent_spec(&launch::Attempt {
            layout,
            settings: won.settings,
            id: &t.id,
            attempt: won.attempt,
            run_id: won.run_id,
            worktree: &prepared.path,
            branch: &prepared.branch,
            prompt_file: &prompt_path,
            result_file: &result_path,
            prompt_text: &prompt_text,
            git_dir: &main.git_dir,
            identity: &identity,
        })?;
        // `orch abort` finds the live run through this file: without it,
        // the run could not be aborted, so it must not start.
        contract::write_run_info(
            &layout.run_info(&t.id),
            &RunInfo {
                run: won.run_id.to_string(),
                attempt: won.attempt,
                orch_pid: std::process::id(),
            },
        )?;
        Ok(spec)
    };
    match setup() {
        Ok(spec) => Some(spec),
        Err(e) => {
            facts.setup_error = Some(render_chain(&e));
            None
        }
    }
}

/// Take whatever the agent left, committed or not, onto the ticket branch,
/// whatever the outcome (see [`workspace::take_work`]), and gather the
/// attempt's commits. A worktree whose link to the repository the agent
/// changed is refused: nothing in it is committed anywhere.
fn take_agent_work(
    main: &MainRepo,
    layout: &Layout,
    prepared: &Prepared,
    won: &Won<'_>,
    agent: &Spec,
    seen: &Seen<'_>,
    facts: &mut RunFacts,
) {
    let id = &won.ticket.id;
    let name = Layout::worktree_name(id);
    let who = gitcli::Identity::of(&main.repo);
    let supervised = |argv: &[String]| {
        mark_log(&agent.log_path, "git commit, with the repository's hooks");
        // Not under the run's interrupt or abort: the work is being kept
        // either way, and the timeouts bound the hooks.
        verdict(&supervise::run(
            &launch::hook_spec(agent, argv, &who),
            &Control::default(),
        ))
    };
    let take = || -> crate::Result<Option<workspace::Taken>> {
        if std::fs::symlink_metadata(&prepared.path).is_err() {
            return Ok(None);
        }
        if let Some(problem) = main.worktree_link_problem(&name, &prepared.path) {
            return Err(crate::Error::other(problem));
        }
        let config_note = workspace::restore_own_config(main, layout, id)?;
        let wt = main.open_worktree(&name, &prepared.path)?;
        // The agent's processes are all gone: a lock its git left is stale.
        wt.clear_stale_index_lock();
        let message = work_message(id, won.attempt, WorkOf::Agent);
        workspace::take_work(
            main,
            &wt,
            id,
            prepared.start,
            workspace::Move::Rewrite,
            won.attempt,
            &workspace::WorkCommit {
                message: &message,
                hooks: &hooks(won.settings, &supervised),
            },
        )
        .map(|mut taken| {
            taken.notes.extend(config_note);
            Some(taken)
        })
    };
    let tip = match take() {
        Ok(Some(taken)) => {
            // That orch committed what the agent left is in the commit list.
            let refused = taken.refused.clone();
            facts.notes.extend(
                taken
                    .notes
                    .into_iter()
                    .filter(|n| !n.starts_with("committed") && Some(n) != refused.as_ref()),
            );
            facts.moved_by_other = taken.moved_by_other;
            facts.hooks_refused = taken.refused;
            taken.tip
        }
        Ok(None) => {
            let registered = main.registration(&name).exists();
            facts.notes.push(if registered {
                "the agent deleted its worktree".into()
            } else {
                "the worktree was removed from git while the agent ran".into()
            });
            let tip = main.branch_tip(&prepared.branch);
            facts.notes.extend(keep_lost_work(
                main,
                id,
                won.attempt,
                seen,
                prepared.start,
                tip,
            ));
            tip
        }
        Err(e) if main.worktree_link_problem(&name, &prepared.path).is_some() => {
            facts.contained = Some(format!(
                "the agent changed its worktree's link to the repository ({}); nothing in it was committed",
                render_chain(&e)
            ));
            return;
        }
        Err(e) => {
            facts.work_error = Some(format!(
                "orch could not commit the agent's work, which stays in its worktree for the next attempt: {}",
                render_chain(&e)
            ));
            main.branch_tip(&prepared.branch)
        }
    };
    let Some(tip) = tip else { return };
    facts.tip = Some(tip.to_string());
    if facts.moved_by_other.is_none() {
        facts.commits = main
            .commits_between(Some(prepared.start), tip)
            .unwrap_or_default();
    }
}

/// What the supervisor saw of the agent's worktree.
struct Seen<'a> {
    /// The last commit its HEAD pointed at.
    last_head: Option<&'a str>,
    /// When the agent started.
    since: std::time::SystemTime,
}

/// Keep the commits of a worktree that is gone, unless the ticket branch
/// already has them: removing a worktree removes its HEAD, the only ref
/// to the agent's detached commits. The last HEAD the supervisor saw, and
/// (for a commit made just before the removal) the commits written since
/// the agent started that descend from its start and nothing reaches.
fn keep_lost_work(
    main: &MainRepo,
    id: &str,
    attempt: u32,
    seen: &Seen<'_>,
    start: crate::git::Oid,
    tip: Option<crate::git::Oid>,
) -> Vec<String> {
    let mut lost: Vec<crate::git::Oid> = seen
        .last_head
        .and_then(|h| crate::git::Oid::from_str(h).ok())
        .filter(|&oid| main.repo.find_commit(oid).is_ok())
        .into_iter()
        .collect();
    for oid in main.unreachable_commits_since(seen.since, start) {
        if !lost.iter().any(|&l| main.contains(l, oid)) {
            lost.push(oid);
        }
    }
    lost.retain(|&oid| !tip.is_some_and(|tip| main.contains(tip, oid)));
    lost.into_iter()
        .map(|oid| {
            match main.keep(
                &format!("refs/orch/kept/{id}/{attempt}-removed"),
                oid,
                "orch: work of a removed worktree",
            ) {
                Ok(kept) => format!("its commit {oid} is kept on {kept}"),
                Err(e) => format!("cannot keep its commit {oid}: {}", render_chain(&e)),
            }
        })
        .collect()
}

fn agent_finished_cleanly(report: &Report, facts: &RunFacts) -> bool {
    report.success()
        && !matches!(
            facts.submission.as_ref().and_then(|s| s.status),
            Some(SubmitStatus::Blocked | SubmitStatus::Failed)
        )
}

/// Run the ticket's `verify` commands in order, stopping at the first failure.
fn run_verify(
    won: &Won<'_>,
    agent: &Spec,
    control: &Control,
    prepared: &Prepared,
    facts: &mut RunFacts,
) {
    if won.settings.verify.is_empty() || !prepared.path.exists() {
        return;
    }
    for cmd in &won.settings.verify {
        let spec = launch::verify_spec(agent, cmd);
        mark_log(&agent.log_path, &format!("verify: {cmd}"));
        let v = supervise::run(&spec, control);
        let text = match v.ended {
            Ended::Exited if v.success() => "passed".to_string(),
            Ended::Exited | Ended::SpawnFailed => format!("failed ({})", v.exit_text()),
            _ => how_it_ended(&v),
        };
        facts.verify.push((cmd.clone(), text.clone()));
        if !v.success() {
            facts.verify_failed = Some(format!("verify `{cmd}` {text}"));
            facts.verify_ended = Some(v.ended);
            break;
        }
    }
}

/// A marker in the agent's log before what orch runs after it; it only
/// helps a reader of the log.
fn mark_log(log: &std::path::Path, what: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        use std::io::Write;
        let _ = writeln!(f, "\n[orch: {what}]");
    }
}

/// The [`workspace::Hooks`] `settings` ask for, running through `run`.
pub fn hooks<'a>(
    settings: &RunSettings,
    run: &'a dyn Fn(&[String]) -> workspace::Verdict,
) -> workspace::Hooks<'a> {
    match settings.commit_hooks {
        CommitHooks::Run => workspace::Hooks::Run(run),
        CommitHooks::Skip => workspace::Hooks::Skip,
    }
}

/// How a command orch ran beside the agent (a verify, a hooked commit) ended.
fn how_it_ended(report: &Report) -> String {
    match report.ended {
        Ended::Exited | Ended::SpawnFailed => report.exit_text(),
        Ended::Timeout => "timed out".into(),
        Ended::OverBudget => "stopped: token budget passed".into(),
        Ended::Stalled | Ended::NoProgress => "stalled (no output)".into(),
        Ended::Interrupted => "interrupted".into(),
        Ended::Aborted => "aborted".into(),
        Ended::Moved => "stopped: the ticket was moved".into(),
        Ended::WorktreeRemoved => "stopped: the worktree was removed".into(),
    }
}

/// What a hooked `git commit` came to, from its supervision report.
fn verdict(report: &Report) -> workspace::Verdict {
    let how = how_it_ended(report);
    let output = report
        .tail
        .iter()
        .rev()
        .take(5)
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join(" | ");
    workspace::Verdict {
        ok: report.success(),
        why: format!(
            "the repository's commit hooks refused orch's commit of the agent's work ({how}){}",
            if output.is_empty() {
                String::new()
            } else {
                format!(": {output}")
            }
        ),
    }
}

/// The hooks of a commit orch makes outside a supervised run (work an
/// interrupted run left, found on reconcile or before a retry): the same
/// hooks, under the ticket's timeouts, outside the sandbox (no agent is
/// running), logged to `hooks.log` beside the ticket's attempts.
pub fn unsupervised_hooks<'a>(
    layout: &'a Layout,
    main: &MainRepo,
    id: &'a str,
    settings: &'a RunSettings,
) -> impl Fn(&[String]) -> workspace::Verdict + 'a {
    let who = gitcli::Identity::of(&main.repo);
    move |argv: &[String]| {
        let (mut env, env_remove) = gitcli::env_for_supervised();
        env.extend(who.env());
        let log_path = layout.log_dir(id).join("hooks.log");
        let _ = std::fs::create_dir_all(layout.log_dir(id));
        let spec = Spec {
            argv: argv.to_vec(),
            cwd: layout.worktree(id),
            env,
            env_remove,
            stdin: None,
            log_path,
            log_append: true,
            max_log: settings.max_log,
            timeout: settings.timeout,
            no_output_timeout: settings.no_output_timeout,
            sandbox: None,
            kill_grace: settings.kill_grace,
            run_id: super::settings::run_id(0),
            events: None,
            no_progress_timeout: None,
            token_limit: None,
        };
        verdict(&supervise::run(&spec, &Control::default()))
    }
}

/// The note for the user's branches that moved while the agent ran. orch
/// cannot tell the agent's hand from the user's there, so it only reports:
/// inside the sandbox the agent cannot move them.
fn moved_branches(before: &[(String, Oid)], after: &[(String, Oid)]) -> Option<String> {
    let short = |o: &Oid| short_oid(&o.to_string()).to_string();
    let mut moved = Vec::new();
    for (name, was) in before {
        match after.iter().find(|(n, _)| n == name) {
            Some((_, now)) if now != was => {
                moved.push(format!("{name} {} -> {}", short(was), short(now)))
            }
            Some(_) => {}
            None => moved.push(format!("{name} deleted (was {})", short(was))),
        }
    }
    for (name, now) in after {
        if !before.iter().any(|(n, _)| n == name) {
            moved.push(format!("{name} created at {}", short(now)));
        }
    }
    if moved.is_empty() {
        return None;
    }
    Some(format!(
        "while the agent ran, your branches changed: {}; orch did not make these changes and left them as they are",
        moved.join(", ")
    ))
}

/// How writes to the user's checkout during a run are seen: by inotify,
/// or where the kernel will not watch, by a status scan before and after.
#[derive(Default)]
enum CheckoutLook {
    #[default]
    None,
    Watch(CheckoutWatch),
    Scan(Vec<String>),
}

impl CheckoutLook {
    fn start(main: &MainRepo) -> CheckoutLook {
        match CheckoutWatch::start(main) {
            Some(w) => CheckoutLook::Watch(w),
            None => CheckoutLook::Scan(main.checkout_changes()),
        }
    }

    /// (paths changed before, paths changed after) for [`outside_writes`].
    fn finish(self, main: &MainRepo) -> (Vec<String>, Vec<String>) {
        match self {
            CheckoutLook::None => (Vec::new(), Vec::new()),
            CheckoutLook::Watch(w) => (Vec::new(), w.finish(main)),
            CheckoutLook::Scan(before) => (before, main.checkout_changes()),
        }
    }
}

/// The note for paths that changed in `place` while the agent ran.
fn outside_writes(place: &str, before: &[String], after: &[String]) -> Option<String> {
    let new: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    if new.is_empty() {
        return None;
    }
    let list: Vec<&str> = new.iter().take(10).map(|s| s.as_str()).collect();
    Some(format!(
        "while the agent ran, {} path(s) changed in {place}, outside its worktree: {}; they are not part of the ticket's work",
        new.len(),
        list.join(", ")
    ))
}

/// The plan as it was before the agent started: its uncommitted paths and
/// the tip of orch/plan.
#[derive(Default)]
struct PlanLook {
    changed: Vec<String>,
    tip: Option<Oid>,
}

/// Look at the plan under the board lock: another ticket's settle writes
/// its files and commits them while holding it, so a look at any other
/// moment could take them for this agent's.
fn plan_look(layout: &Layout, main: &MainRepo) -> PlanLook {
    let lock = layout.lock_board(PLAN_LOOK_WAIT);
    if lock.is_err() {
        // Without the lock no honest answer can be had: report nothing.
        return PlanLook::default();
    }
    PlanLook {
        changed: Worktree::open(&layout.plan)
            .and_then(|w| w.changed_paths())
            .unwrap_or_default(),
        tip: main.ref_target(git::PLAN_REF),
    }
}

/// Whether a change to `path` on the board is a transition a run must not
/// make: a ticket file appearing in in-progress/, done/ or blocked/ or
/// disappearing (`gone`), or orch's own runs/, cooldown/ and budget/ records. The
/// running ticket's own file is left out when `own_too` is false: its
/// settle writes it anyway.
fn is_transition(path: &str, gone: bool, own: &str, own_too: bool) -> bool {
    let is_own = is_own(path, own);
    let ticket = path.starts_with("tickets/")
        && (own_too || !is_own)
        && (gone
            || ["tickets/in-progress/", "tickets/done/", "tickets/blocked/"]
                .iter()
                .any(|d| path.starts_with(d)))
        && !(is_own && !gone && path.starts_with("tickets/in-progress/"));
    ticket
        || path.starts_with("runs/")
        || path.starts_with("cooldown/")
        || path.starts_with(crate::budget::DIR)
}

/// Whether `path` is the running ticket's own file (in any state).
fn is_own(path: &str, own: &str) -> bool {
    path.starts_with("tickets/")
        && std::path::Path::new(path)
            .file_stem()
            .is_some_and(|s| s.to_string_lossy() == own)
}

/// Board transitions that appeared while the agent ran are never taken as
/// a person's: without the sandbox, the agent may have made them. Under the
/// board lock, commits made on orch/plan during the run that carry
/// transitions are moved aside (see [`set_aside_plan_commits`]); then other
/// tickets' files that appeared in in-progress/, done/ or blocked/ or
/// disappeared anywhere, and orch's own runs/ and cooldown/ files, are
/// committed aside on `refs/orch/kept/plan/<run>` (moving no branch) and
/// put back as orch/plan has them. What a person does while runs go on
/// (new tickets in todo/, edits, orch.yaml, the running ticket's own file)
/// is left to be adopted. Only for an agent outside the sandbox: inside
/// it, the agent cannot write the plan. Returns the notes.
fn set_aside_plan_changes(
    layout: &Layout,
    main: &MainRepo,
    before: &PlanLook,
    won: &Won<'_>,
) -> Vec<String> {
    let Ok(_lock) = layout.lock_board(PLAN_LOOK_WAIT) else {
        return Vec::new();
    };
    let Ok(plan) = Worktree::open(&layout.plan) else {
        return Vec::new();
    };
    let mut notes: Vec<String> = set_aside_plan_commits(main, &plan, before.tip, won)
        .into_iter()
        .collect();
    let after = plan.changed_paths().unwrap_or_default();
    let changed: Vec<String> = after
        .into_iter()
        .filter(|p| !before.changed.contains(p))
        .collect();
    if changed.is_empty() {
        return notes;
    }
    let new: Vec<String> = changed
        .iter()
        .filter(|p| {
            let gone = !layout.plan.join(p).exists();
            is_transition(p, gone, &won.ticket.id, false)
        })
        .cloned()
        .collect();
    if new.is_empty() {
        // The ticket's own file is its settle's to judge.
        let others: Vec<String> = changed
            .iter()
            .filter(|p| !is_own(p, &won.ticket.id))
            .cloned()
            .collect();
        notes.extend(outside_writes(
            "the plan worktree (.orch/plan)",
            &before.changed,
            &others,
        ));
        return notes;
    }
    let run_id = won.run_id;
    let listed = {
        let list: Vec<&str> = new.iter().take(10).map(|s| s.as_str()).collect();
        format!(
            "{} path(s) changed in the plan worktree (.orch/plan): {}",
            new.len(),
            list.join(", ")
        )
    };
    let kept = format!("refs/orch/kept/plan/{run_id}");
    let set_aside = || -> crate::Result<String> {
        let head = plan.head()?;
        plan.stage_paths(&new)?;
        let commit = plan.commit_staged_on(head, "orch: board edits made while an agent ran")?;
        let kept = match commit {
            Some(commit) => {
                main.keep(&kept, commit, "orch: board edits made while an agent ran")?
            }
            None => kept.clone(),
        };
        plan.follow_head(head, &new)?;
        Ok(kept)
    };
    notes.push(match set_aside() {
        Ok(kept) => format!(
            "while the agent ran, {listed}; orch did not take them as board changes: they are kept as {kept} and the plan is as orch left it (if you made them, `git -C .orch/plan checkout {kept} -- <path>` brings them back)"
        ),
        Err(e) => format!(
            "while the agent ran, {listed}; orch could not set them aside ({}): check them before the next board change adopts them",
            render_chain(&e)
        ),
    });
    notes
}

/// Commits made on orch/plan while an unsandboxed agent ran, by anyone but
/// orch, that carry board transitions (see [`is_transition`], the running
/// ticket's own moves included): orch/plan goes back to the newer of its
/// tip before the run and the last board orch published, and the commits
/// are kept on `refs/orch/kept/plan/<run>-commits`. Commits that only add
/// or edit tickets in todo/ are a person's and stay. Returns the note.
fn set_aside_plan_commits(
    main: &MainRepo,
    plan: &Worktree,
    before: Option<Oid>,
    won: &Won<'_>,
) -> Option<String> {
    let tip = main.ref_target(git::PLAN_REF)?;
    let before = before?;
    if main.contains(before, tip) {
        return None;
    }
    let last = crate::board::journal::last_published(main).unwrap_or(before);
    let base = if main.contains(before, last) {
        before
    } else if main.contains(last, before) {
        last
    } else {
        return None;
    };
    // A rewound orch/plan is the journal's to put back.
    if tip == base || !main.contains(tip, base) {
        return None;
    }
    let paths = main.paths_between(base, tip).ok()?;
    let tip_tree = main.repo.find_commit(tip).and_then(|c| c.tree()).ok()?;
    let suspect: Vec<&String> = paths
        .iter()
        .filter(|p| {
            let gone = tip_tree.get_path(std::path::Path::new(p)).is_err();
            is_transition(p, gone, &won.ticket.id, true)
        })
        .collect();
    if suspect.is_empty() {
        return None;
    }
    let list: Vec<&str> = suspect.iter().take(10).map(|s| s.as_str()).collect();
    let listed = format!(
        "commits on orch/plan ({}..{}) changed {} board path(s): {}",
        short_oid(&base.to_string()),
        short_oid(&tip.to_string()),
        suspect.len(),
        list.join(", ")
    );
    let kept = format!("refs/orch/kept/plan/{}-commits", won.run_id);
    let undo = || -> crate::Result<String> {
        let kept = main.keep(&kept, tip, "orch: board commits made while an agent ran")?;
        main.set_ref(
            git::PLAN_REF,
            base,
            "orch: undo board commits made while an agent ran",
        )?;
        crate::board::journal::record(main, base);
        if plan.head_ref().as_deref() == Some(git::PLAN_REF) {
            plan.follow_head(tip, &[])?;
        }
        Ok(kept)
    };
    Some(match undo() {
        Ok(kept) => format!(
            "while the agent ran, {listed}; orch did not take them as board changes: orch/plan is back at {} and the commits are kept as {kept} (if you made them, `git -C .orch/plan cherry-pick ..{kept}` brings them back)",
            short_oid(&base.to_string())
        ),
        Err(e) => format!(
            "while the agent ran, {listed}; orch could not undo them ({}): check them before the next tick",
            render_chain(&e)
        ),
    })
}

/// How long a look at the plan waits for the board lock.
const PLAN_LOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

pub fn render_prompt(layout: &Layout, t: &Ticket, attempt: u32, settings: &RunSettings) -> String {
    let last = t.last_result();
    let previous_outcome = last.map(|r| {
        format!(
            "{}{}",
            r.outcome,
            r.reason
                .as_deref()
                .map(|x| format!(" ({x})"))
                .unwrap_or_default()
        )
    });
    let previous_tail = match last.map(|r| r.attempt) {
        Some(prev) => {
            let local = runlog::tail(layout, &t.id, prev);
            if local.is_empty() {
                crate::safe_read::regular_file_in(
                    &layout.plan,
                    std::path::Path::new(&summary_rel(&t.id, prev)),
                    summary::MAX_SUMMARY_BYTES as u64 + 4096,
                )
                .ok()
                .flatten()
                .map(|b| summary::tail_of(&String::from_utf8_lossy(&b)))
                .unwrap_or_default()
            } else {
                local
            }
        }
        None => Vec::new(),
    };
    let n = previous_tail.len();
    let landing = last.and_then(|r| {
        match r.outcome {
        crate::outcome::Outcome::Conflict => Some(
            "That work was finished, but landing it conflicted with what reached the target since. \
             Bring the target into this branch with the `git merge` command above, resolve the \
             conflicts in the paths named, commit the merge, and make sure the ticket's change \
             still does what it asks."
                .to_string(),
        ),
        crate::outcome::Outcome::LandFailed => Some(
            "That work passed its checks alone, but they failed once it was merged onto the \
             target (output below). Bring the target into this branch (`git merge` it), fix what \
             broke, and commit."
                .to_string(),
        ),
        _ => None,
    }
    });
    let vars = PromptVars {
        id: t.id.clone(),
        title: t.title().to_string(),
        body: t.body().to_string(),
        branch: git::ticket_branch(&t.id),
        attempt,
        // Attempts that did not count (interrupted, handed back by
        // landing, an outage) are added, so the count never reads
        // "attempt 4 of 3".
        max_attempts: settings
            .max_attempts
            .saturating_add(attempt.saturating_sub(1).saturating_sub(t.attempts_used())),
        verify: settings.verify.clone(),
        previous_outcome,
        previous_tail: previous_tail[n.saturating_sub(20)..].to_vec(),
        landing,
    };
    prompt::render(&prompt::template(&layout.plan), &vars)
}

/// Whose uncommitted work orch commits on a ticket branch.
#[derive(Debug, Clone, Copy)]
pub enum WorkOf {
    Agent,
    AbandonedRun,
}

pub fn work_message(id: &str, attempt: u32, of: WorkOf) -> String {
    let what = match of {
        WorkOf::AbandonedRun => "uncommitted work of an abandoned run",
        WorkOf::Agent => "uncommitted work of the agent",
    };
    CommitMessage::new(format!("orch: {what} on {id} (attempt {attempt})"))
        .trailer(Trailer::Ticket, id)
        .trailer(Trailer::Attempt, attempt)
        .trailer(Trailer::Event, "commit-work")
        .render(&host_name())
}
