//! `orch doctor`: what is wrong with the board and its surroundings, why
//! it matters, and the fix. It only reads: it never takes the board lock
//! or changes a ref, except with `--fix`, which makes the repairs a tick's
//! reconcile would, under the lock, before looking.

use serde::Serialize;

use crate::board::{self, Layout, journal};
use crate::config::Config;
use crate::error::Result;
use crate::gc::Kind;
use crate::git::{self, MainRepo, Worktree};
use crate::safe_read::size;
use crate::text::{short_oid, visible_line};
use crate::ui::Style;

use super::{Ctx, print_json};

/// Check the board and its surroundings: the plan branch and worktree,
/// versions of the board or of a ticket's work that orch kept aside,
/// whether the agent sandbox works on this machine, git's identity, the
/// agent on PATH and on cron's, the base and target branches, the remote,
/// and claims no run holds.
///
/// Exits 0 when nothing needs a person, 1 when something does, 2 when
/// orch.yaml is missing or invalid (no tick can run).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// First make the repairs a tick's reconcile would (settle runs that
    /// are gone, release claims nobody holds), saying each; nothing else.
    #[arg(long)]
    pub fix: bool,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

/// How much a finding asks of a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to do.
    Info,
    /// A person should look.
    Problem,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub severity: Severity,
    pub what: String,
    pub why: String,
    pub fix: String,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    healthy: bool,
    findings: &'a [Finding],
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    if args.fix {
        fix(ctx)?;
    }
    let (main, layout) = board::discover(&ctx.cwd)?;
    let mut findings = Vec::new();
    let config_error = configuration(&layout, &mut findings);
    plan_branch(&main, &layout, &mut findings);
    kept_refs(&main, &mut findings);
    sandbox(&layout, &mut findings);
    super::checkup::surroundings(&main, &layout, &mut findings);
    litter(&main, &layout, &mut findings);
    disk(&layout, &mut findings);
    let healthy = !findings.iter().any(|f| f.severity == Severity::Problem);
    if args.json {
        print_json(&Output {
            healthy,
            findings: &findings,
        })?;
    } else {
        print_text(&findings, healthy);
    }
    Ok(if config_error {
        2
    } else if healthy {
        0
    } else {
        1
    })
}

/// The reconcile step of a tick, alone: each repair is printed as a tick
/// prints it, and nothing is claimed.
fn fix(ctx: &Ctx) -> Result<()> {
    let mut txn = board::BoardTxn::open(&ctx.cwd, ctx.lock_timeout)?;
    let board = txn.load_active();
    let config = board.config()?.clone();
    let done =
        crate::tick::reconcile::reconcile(&mut txn, &board, &config, &crate::ui::report::Plain)?;
    if done.is_empty() {
        crate::outln!("nothing to repair");
    }
    Ok(())
}

/// orch.yaml missing or invalid: no tick can run, as the exit code 2 of
/// `status` and `tick` says too. Returns whether it is.
fn configuration(layout: &Layout, findings: &mut Vec<Finding>) -> bool {
    // Without a plan worktree there is no orch.yaml to read: the plan
    // check says what is missing.
    if !layout.plan.is_dir() {
        return false;
    }
    let Err(e) = Config::load(&layout.config_path()) else {
        return false;
    };
    let (what, fix) = match &e {
        crate::error::Error::Config {
            path,
            line,
            message,
            hint,
        } => (
            match line {
                Some(line) => format!("{}:{line}: {message}", layout.display_local(path)),
                None => format!("{}: {message}", layout.display_local(path)),
            },
            hint.clone().unwrap_or_else(|| "fix orch.yaml".into()),
        ),
        other => (crate::error::render_chain(other), "fix orch.yaml".into()),
    };
    findings.push(Finding {
        check: "config",
        severity: Severity::Problem,
        what,
        why: "every tick stops on it (exit 2): no ticket runs until it is fixed".into(),
        fix,
    });
    true
}

fn print_text(findings: &[Finding], healthy: bool) {
    let st = Style::stdout();
    for f in findings {
        let mark = match f.severity {
            Severity::Problem => st.red("problem"),
            Severity::Info => st.dim("note"),
        };
        crate::outln!("{mark} [{}] {}", f.check, visible_line(&f.what));
        crate::outln!("  why: {}", f.why);
        crate::outln!("  fix: {}", f.fix);
    }
    if healthy {
        crate::outln!("{}", st.bold("nothing needs you"));
    }
}

/// orch/plan against the record of what orch last published, and the plan
/// worktree against orch/plan.
fn plan_branch(main: &MainRepo, layout: &Layout, out: &mut Vec<Finding>) {
    let tip = main.ref_target(git::PLAN_REF);
    let last = journal::last_published(main);
    let short = |o: git::Oid| short_oid(&o.to_string()).to_string();
    match (tip, last) {
        (None, None) => out.push(Finding {
            check: "board",
            severity: Severity::Problem,
            what: format!("{} has no board (no branch orch/plan)", main.root.display()),
            why: "orch has nothing to run here".into(),
            fix: "run `orch init`".into(),
        }),
        (None, Some(last)) => out.push(Finding {
            check: "board",
            severity: Severity::Problem,
            what: "the branch orch/plan was deleted".into(),
            why: "the board and its audit history are not on any branch".into(),
            fix: format!(
                "run `orch init` or the next tick: either restores orch/plan to {}, the last board orch published",
                short(last)
            ),
        }),
        (Some(tip), Some(last)) if !main.contains(tip, last) => out.push(Finding {
            check: "board",
            severity: Severity::Problem,
            what: format!(
                "orch/plan is at {}, whose history lacks {}, the last board orch published",
                short(tip),
                short(last)
            ),
            why: "someone rewound or rewrote orch/plan: claims and results orch recorded are off the branch".into(),
            fix: "the next tick puts orch/plan back and keeps this version under refs/orch/kept/plan/".into(),
        }),
        _ => {}
    }
    if tip.is_none() {
        return;
    }
    if !layout.plan.join(".git").exists() {
        out.push(Finding {
            check: "plan-worktree",
            severity: Severity::Info,
            what: format!("the plan worktree {} is missing", layout.plan.display()),
            why: "`orch status` cannot read the board without it".into(),
            fix: "run `orch init` or the next tick: either checks it out again".into(),
        });
        return;
    }
    match Worktree::open(&layout.plan).map(|w| w.head_ref()) {
        Ok(Some(head)) if head == git::PLAN_REF => {}
        Ok(head) => out.push(Finding {
            check: "plan-worktree",
            severity: Severity::Problem,
            what: format!(
                "the plan worktree {} is on {}, not on orch/plan",
                layout.plan.display(),
                head.as_deref().unwrap_or("a detached HEAD")
            ),
            why: "orch changes nothing on the board until it is back".into(),
            fix: "git -C .orch/plan checkout orch/plan".into(),
        }),
        Err(e) => out.push(Finding {
            check: "plan-worktree",
            severity: Severity::Problem,
            what: format!("cannot open the plan worktree: {e}"),
            why: "orch cannot read or change the board".into(),
            fix: "move .orch/plan aside and run `orch init` to check it out again".into(),
        }),
    }
}

/// Versions orch set aside instead of losing them: board changes it would
/// not take as a person's, and ticket work an agent rewound or someone
/// else's branch move displaced.
fn kept_refs(main: &MainRepo, out: &mut Vec<Finding>) {
    for (name, oid) in main.refs_under("refs/orch/kept/") {
        let short = short_oid(&oid.to_string()).to_string();
        let finding = if name.starts_with("refs/orch/kept/plan/") {
            Finding {
                check: "kept-board",
                severity: Severity::Problem,
                what: format!("{name} ({short}): board changes orch did not take"),
                why: "they were made on orch/plan while an agent ran, or orch/plan was rewound; if a person made them, they are not on the board".into(),
                fix: format!(
                    "look with `git log -p orch/plan..{name}`; bring back what is yours with `git -C .orch/plan cherry-pick` or `checkout {name} -- <path>`, then `git update-ref -d {name}`"
                ),
            }
        } else {
            Finding {
                check: "kept-work",
                severity: Severity::Info,
                what: format!("{name} ({short}): a ticket's earlier work, kept"),
                why: "an agent rewound its branch, or the branch was moved under it; the commits stay reachable here".into(),
                fix: format!(
                    "look with `git log {name}`; when it is not needed, `git update-ref -d {name}`"
                ),
            }
        };
        out.push(finding);
    }
}

/// Whether the sandbox the board asks for can be had on this kernel.
fn sandbox(layout: &Layout, out: &mut Vec<Finding>) {
    let enabled = Config::load(&layout.config_path())
        .map(|(c, _)| c.sandbox.enabled)
        .unwrap_or(true);
    if !enabled {
        out.push(Finding {
            check: "sandbox",
            severity: Severity::Info,
            what: "the agent sandbox is off (`sandbox: off` in orch.yaml)".into(),
            why: "an agent can write anywhere you can; orch only notices and reports what it changed outside its worktree".into(),
            fix: "remove `sandbox: off` from orch.yaml to have the kernel refuse those writes".into(),
        });
        return;
    }
    if let Some(why) = crate::agent::sandbox::unsupported_reason() {
        out.push(Finding {
            check: "sandbox",
            severity: Severity::Problem,
            what: why,
            why: "an agent can write anywhere you can: the user's checkout, the plan, other refs".into(),
            fix: "run orch on a kernel with Landlock (5.13 or later, `lsm=landlock` among the LSMs), or set `sandbox: off` in orch.yaml to say you know".into(),
        });
    }
}

/// What `orch gc` would remove now: worth knowing, never a failure (the
/// board runs as well with it), so a note.
fn litter(main: &MainRepo, layout: &Layout, out: &mut Vec<Finding>) {
    if !layout.plan.join(".git").exists() {
        return;
    }
    let board = board::Board::load(layout);
    let config = board.config.clone().unwrap_or_else(|_| Config::defaults());
    let Ok(plan) = crate::gc::plan(main, layout, &board, &config) else {
        return;
    };
    if plan.items.is_empty() {
        return;
    }
    let count = |kind: Kind, one: &str, many: &str| match plan.count(kind) {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    let parts: Vec<String> = [
        count(Kind::Worktree, "worktree", "worktrees"),
        count(Kind::Branch, "branch", "branches"),
        count(Kind::Logs, "log directory", "log directories"),
        count(
            Kind::RunState,
            "run state directory",
            "run state directories",
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let kept = plan.items.iter().filter(|i| i.unique.is_some()).count();
    out.push(Finding {
        check: "gc",
        severity: Severity::Info,
        what: format!(
            "`orch gc` would remove {} ({}), of tickets that are done or no longer on the board",
            parts.join(", "),
            size(plan.bytes())
        ),
        why: if kept == 0 {
            format!(
                "they only take space: the branches are landed or untouched for {}, the rest is held elsewhere",
                crate::duration::display(plan.retention)
            )
        } else {
            format!(
                "they only take space; {kept} of them hold work no other ref has, which gc keeps on refs/orch/kept/ first"
            )
        },
        fix: "run `orch gc` (`orch gc --dry-run` lists each)".into(),
    });
}

/// How much of this disk orch's own things take: ticket worktrees, logs
/// and run state.
fn disk(layout: &Layout, out: &mut Vec<Finding>) {
    let used = crate::gc::Usage::measure(layout);
    if used.total() == 0 {
        return;
    }
    out.push(Finding {
        check: "disk",
        severity: Severity::Info,
        what: format!(
            "orch uses {} here: ticket worktrees {}, logs {}, run state {}",
            size(used.total()),
            size(used.worktrees),
            size(used.logs),
            size(used.state)
        ),
        why: "worktrees of running and blocked tickets, and logs and run state for `retention:`, stay on purpose".into(),
        fix: "`orch gc` removes what is no longer needed; a shorter `retention:` in orch.yaml keeps less".into(),
    });
}
