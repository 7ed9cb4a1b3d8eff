//! `orch demo`: the whole loop in one command, with no API key.
//!
//! A sandbox repository, the example tickets from `tickets/` (embedded),
//! and a demo agent bundled in this binary that makes real edits by
//! following `file` blocks in the ticket. Ticks run until the board is
//! settled; then the board, the branches and the audit log are shown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::board::{self, BoardTxn};
use crate::error::{Error, Result};
use crate::git;
use crate::tick::{self, Options};
use crate::ui::Style;

use super::Ctx;

const EXAMPLES: &[(&str, &str)] = &[
    (
        "0001-add-greeting",
        include_str!("../../tickets/0001-add-greeting.md"),
    ),
    (
        "0002-document-greeting",
        include_str!("../../tickets/0002-document-greeting.md"),
    ),
    (
        "0003-flaky-change",
        include_str!("../../tickets/0003-flaky-change.md"),
    ),
    (
        "0004-needs-a-person",
        include_str!("../../tickets/0004-needs-a-person.md"),
    ),
    (
        "0005-greet-by-name",
        include_str!("../../tickets/0005-greet-by-name.md"),
    ),
];

/// Run orch on a sandbox repository with example tickets and a bundled demo
/// agent (no API key), until the board is settled; then show the board,
/// the branches and the audit log.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to make the sandbox [default: a new directory under the
    /// system's temporary directory]. It must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub lock: crate::cli::LockArgs,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<i32> {
    let st = Style::stdout();
    let dir = match args.dir {
        Some(d) if d.is_absolute() => d,
        Some(d) => ctx.cwd.join(d),
        None => std::env::temp_dir().join(format!("orch-demo-{}", std::process::id())),
    };
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(
            Error::usage(format!("{} exists and is not empty", dir.display()))
                .hinted("give a new directory with --dir"),
        );
    }
    let exe =
        std::env::current_exe().map_err(|e| Error::io("cannot find the orch binary", "orch", e))?;

    section(&st, "1. A sandbox repository");
    make_sandbox(&dir)?;
    crate::outln!("{}", dir.display());

    section(&st, "2. orch init");
    let demo_ctx = Ctx {
        cwd: dir.clone(),
        lock_timeout: ctx.lock_timeout,
    };
    super::init::run(
        &demo_ctx,
        super::init::Args {
            base: Some("main".into()),
            no_fetch: true,
            // The wait comes with `demo_ctx`.
            lock: crate::cli::LockArgs { lock_timeout: None },
        },
    )?;

    section(&st, "3. Example tickets and the demo agent");
    let layout = board::Layout::new(&dir, &dir.join(".git"));
    let yaml = std::fs::read_to_string(layout.config_path())
        .map_err(|e| Error::io("cannot read", layout.config_path(), e))?;
    let agent = format!(
        "agent:\n  command: [{}, \"demo-agent\"]",
        serde_json::Value::String(exe.display().to_string())
    );
    let yaml = yaml
        .replacen("\nagent: codex\n", &format!("\n{agent}\n"), 1)
        .replacen("\ntimeout: 60m\n", "\ntimeout: 2m\n", 1)
        .replacen(
            "\nno_output_timeout: 10m\n",
            "\nno_output_timeout: 30s\n",
            1,
        )
        .replacen("\nkill_grace: 10s\n", "\nkill_grace: 2s\n", 1);
    board::write_atomic(&layout.config_path(), yaml.as_bytes())?;
    for (id, text) in EXAMPLES {
        let path = layout.plan.join(format!("tickets/todo/{id}.md"));
        board::write_atomic(&path, text.as_bytes())?;
        crate::outln!("tickets/todo/{id}.md");
    }
    // The next board change adopts these edits in a commit of their own.
    drop(BoardTxn::open(&dir, ctx.lock_timeout)?);

    section(&st, "4. orch tick, until the board is settled");
    let opts = Options {
        jobs: None,
        only: None,
        lock_timeout: ctx.lock_timeout,
    };
    let reporter = crate::ui::report::Plain;
    for round in 1..=8 {
        crate::outln!("{}", st.dim(&format!("-- tick {round}")));
        let result = tick::tick(&dir, &opts, Arc::new(AtomicBool::new(false)), &reporter)?;
        // As `orch tick` does, so that the status below has a last tick.
        let beat = crate::heartbeat::Beat::now(0, &super::tick::summary(&result, false));
        if let Err(e) = crate::heartbeat::record(&layout, &beat) {
            crate::ui::warn(&crate::error::render_chain(&e));
        }
        if result.claimed.is_empty()
            && result.reconciled.is_empty()
            && result.landed.landed.is_empty()
            && result.landed.handed_back.is_empty()
        {
            crate::outln!("nothing left to do");
            break;
        }
    }

    section(&st, "5. orch status");
    super::status::run(&demo_ctx, super::status::Args { json: false })?;

    section(&st, "6. Ticket branches (the work, kept per ticket)");
    let main = git::open_main(&dir)?;
    let branches = main.ticket_branches();
    for (name, summary) in branches {
        crate::outln!("  {}  {summary}", st.cyan(&name));
    }

    section(&st, "7. What landed: git log --first-parent main");
    for line in
        crate::gitcli::run(&dir, ["log", "--first-parent", "--format=%h %s", "main"])?.lines()
    {
        crate::outln!("  {line}");
    }

    section(&st, "8. The audit log: git log orch/plan");
    super::history::run(
        &demo_ctx,
        super::history::Args {
            id: None,
            limit: Some(30),
            json: false,
        },
    )?;

    crate::outln!();
    crate::outln!("Explore it yourself:");
    crate::outln!("  cd {}", dir.display());
    crate::outln!("  orch status                      # the board");
    crate::outln!("  orch show 0003-flaky-change      # a ticket and its attempts");
    crate::outln!("  git log --format='%s%n%b' orch/plan   # every change, with Orch-* trailers");
    crate::outln!("  git log -p orch/0001-add-greeting     # the work on a ticket branch");
    crate::outln!("  orch show 0005-greet-by-name     # a conflict handed back, then landed");
    Ok(0)
}

fn section(st: &Style, title: &str) {
    crate::outln!("\n{}", st.bold(&format!("== {title}")));
}

fn make_sandbox(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let readme = "# demo project\n\nA sandbox made by `orch demo`.\n";
    git::init_with_files(dir, &[("README.md", readme.as_bytes())], "initial commit")
}
