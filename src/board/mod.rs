//! The board: the plan worktree at `.orch/plan` on the branch orch/plan.
//!
//! [`Board`] is the read model: every ticket, its problems and readiness,
//! read from the files in one pass. Changes go through one door,
//! [`txn::BoardTxn`] (read at commit C, decide, commit on C, publish with
//! the expected old value C), and only [`transition`] decides what a change
//! writes.

pub mod cache;
pub mod inflight;
pub mod journal;
pub mod layout;
pub mod message;
pub mod numbering;
pub mod transition;
pub mod txn;

pub use layout::{Layout, PLAN_WORKTREE_NAME};
pub use message::{CommitMessage, Trailer};
pub use txn::BoardTxn;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use crate::config::{Config, Warning};
use crate::error::{Context, Error, Result};
use crate::git::{self, MainRepo};
use crate::safe_read;
use crate::ticket::{self, Problem, Severity, State, Ticket};

/// This machine's name in claims and trailers (`ORCH_HOST` overrides it).
pub fn host_name() -> String {
    if let Ok(h) = std::env::var("ORCH_HOST")
        && !h.trim().is_empty()
    {
        return h.trim().to_string();
    }
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// Find the repository and its board from a directory inside it.
pub fn discover(start: &Path) -> Result<(MainRepo, Layout)> {
    let main = git::open_main(start)?;
    let layout = Layout::new(&main.root, &main.git_dir);
    Ok((main, layout))
}

/// For commands that only read: the board as it is, or an error that says
/// how to get one. They never create a lock, a branch or a worktree.
pub fn open_read(start: &Path) -> Result<(MainRepo, Layout)> {
    let (main, layout) = discover(start)?;
    if !main.branch_exists(git::PLAN_BRANCH)
        && journal::last_published(&main).is_none()
        && main.remote_plan_tip().is_some()
    {
        // A fresh clone of a repository with a board: use that board, as
        // `orch init` would, rather than say there is none.
        let _lock = layout.lock_board(std::time::Duration::from_secs(10))?;
        ensure_plan_worktree(&main, &layout)?;
    }
    if !main.branch_exists(git::PLAN_BRANCH) {
        let hint = if let Some(oid) = journal::last_published(&main) {
            format!(
                "orch/plan was deleted; `orch init` or the next tick restores it to {}, the last board orch published",
                crate::text::short_oid(&oid.to_string())
            )
        } else if main.remote_plan_tip().is_some() {
            "the board is on the remote: run `orch init` to check it out here".to_string()
        } else {
            "run `orch init` to create one".to_string()
        };
        return Err(Error::usage(format!(
            "{} has no board (no branch orch/plan)",
            main.root.display()
        ))
        .hinted(hint));
    }
    if !layout.plan.join(".git").exists() {
        return Err(Error::usage(format!(
            "the plan worktree {} is missing",
            layout.plan.display()
        ))
        .hinted("run `orch init` to check out orch/plan there again"));
    }
    Ok((main, layout))
}

/// Make sure the plan worktree exists; recreate it from orch/plan if it was
/// deleted. Returns true when it had to be created.
pub fn ensure_plan_worktree(main: &MainRepo, layout: &Layout) -> Result<bool> {
    if !main.branch_exists(git::PLAN_BRANCH) {
        if let Some((remote, oid)) = main.remote_plan_tip() {
            main.create_branch_at(git::PLAN_BRANCH, oid)?;
            let _ = remote;
        } else {
            return Err(Error::usage(format!(
                "{} has no board: the branch orch/plan does not exist",
                main.root.display()
            ))
            .hinted("run `orch init` in this repository first"));
        }
    }
    // Private, as the README promises: worktrees hold the agents' work
    // and the plan its prompts.
    crate::lock::private_dir(&layout.orch)?;
    if layout.plan.join(".git").exists() {
        return Ok(false);
    }
    if layout.plan.exists() {
        let not_empty = std::fs::read_dir(&layout.plan)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true);
        if not_empty {
            return Err(Error::other(format!(
                "{} exists but is not a git worktree",
                layout.plan.display()
            ))
            .hinted("move it aside, then run `orch init` to check out orch/plan there again"));
        }
        std::fs::remove_dir(&layout.plan).context_path("cannot remove", &layout.plan)?;
    }
    main.exclude_orch_dir()?;
    main.add_worktree(PLAN_WORKTREE_NAME, &layout.plan, git::PLAN_BRANCH)?;
    Ok(true)
}

/// Write through a temporary file and rename, so a reader never sees half
/// a file, and sync both the file and its directory before returning, so
/// a power loss cannot leave an empty file where the board has content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dir).context_path("cannot create", dir)?;
    let tmp = dir.join(format!(".{name}{TMP_MARK}{}", std::process::id()));
    let written = write_synced(&tmp, bytes)
        .context_path("cannot write", &tmp)
        .and_then(|()| std::fs::rename(&tmp, path).context_path("cannot write", path))
        .and_then(|()| sync_dir(dir));
    if written.is_err() {
        // A full disk leaves a partial temporary file: never leave it to
        // be mistaken for content. The write's own error is the one to report.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Make the entries of `dir` (a file renamed into or out of it) survive a
/// power loss. Where directories cannot be opened for syncing (some
/// network file systems), the rename stands without it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    match std::fs::File::open(dir) {
        Ok(d) => match d.sync_all() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => Ok(()),
            Err(e) => Err(crate::error::Error::io("cannot sync", dir, e)),
        },
        Err(_) => Ok(()),
    }
}

/// Part of the name of [`write_atomic`]'s temporary files.
pub const TMP_MARK: &str = ".orch-tmp-";

/// orch.yaml, relative to the plan.
pub const CONFIG_REL: &str = "orch.yaml";

/// The plan's .gitignore, relative to the plan, and what `orch init`
/// writes there: the files editors and file managers leave beside tickets.
pub const GITIGNORE_REL: &str = ".gitignore";
pub const PLAN_GITIGNORE: &str = include_str!("../../templates/plan-gitignore");

/// Whether a plan path is a file an editor or a file manager left (a vim
/// swap file, an Emacs backup or lock, `.DS_Store`): never a board change.
pub fn is_editor_litter(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let swap = name.starts_with('.') && ext.len() == 3 && ext.starts_with("sw");
    swap || name.ends_with(".swp")
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || name == "4913"
        || name == ".DS_Store"
        || name.starts_with("._")
        || name == "Thumbs.db"
        || name == "desktop.ini"
        || rel.starts_with(".idea/")
        || rel.starts_with(".vscode/")
}

/// Why a todo ticket is or is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(Vec<String>),
    Invalid(String),
}

/// A todo ticket that waits on a ticket that needs a person.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stuck {
    /// The ticket, then each dependency on the way to the one that needs a
    /// person: `[c, b, a]` is "c waits on b, which waits on a".
    /// At most [`Stuck::SHOWN`] ids and the last one.
    pub chain: Vec<String>,
    /// Tickets of a longer chain left out before the last one.
    pub more: usize,
    /// Why the last one of the chain cannot finish.
    pub end: StuckOn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StuckOn {
    Blocked,
    Invalid,
}

impl Stuck {
    /// Ids of a chain shown before its last one.
    pub const SHOWN: usize = 8;

    /// The ticket that needs a person.
    pub fn on(&self) -> &str {
        self.chain.last().map(String::as_str).unwrap_or("")
    }

    /// "stuck: waits on b, which waits on a, which is blocked; retry it
    /// with ...": the same words in `status`, `--explain` and the tick.
    pub fn describe(&self) -> String {
        let mut text = String::from("stuck: waits on ");
        let (on, way) = self.chain[1..]
            .split_last()
            .unwrap_or((&self.chain[0], &[]));
        for id in way {
            text.push_str(&format!("{id}, which waits on "));
        }
        if self.more > 0 {
            text.push_str(&format!("{} more, then ", self.more));
        }
        text.push_str(on);
        match self.end {
            StuckOn::Blocked => text.push_str(&format!(
                ", which is blocked; retry it with `{}`",
                retry_command(on)
            )),
            StuckOn::Invalid => text.push_str(&format!(
                ", which is invalid; `orch show {on}` says what to fix"
            )),
        }
        text
    }
}

/// How a person sends a blocked ticket back to todo.
pub fn retry_command(id: &str) -> String {
    format!("orch retry {id}")
}

/// Everything read from the plan worktree in one pass.
#[derive(Debug)]
pub struct Board {
    pub tickets: BTreeMap<String, Ticket>,
    /// Every id seen, valid or not, with the states it was seen in.
    pub seen: BTreeMap<String, Vec<State>>,
    pub problems: Vec<Problem>,
    /// Ids with an error: they are never claimed.
    pub invalid: BTreeSet<String>,
    /// In-progress tickets whose front matter does not parse, seen through
    /// their log only, so a run under way can still be settled.
    pub stranded: Vec<Ticket>,
    /// The configuration, or why orch.yaml cannot be used: (line, message).
    pub config: std::result::Result<Config, (Option<u64>, String)>,
    pub config_warnings: Vec<Warning>,
    /// Done tickets as `status` lists them, in id order, when the board
    /// was read by [`Board::load_summary`]; they are then not in `tickets`.
    pub finished: Vec<Finished>,
}

/// A done ticket in the few words `orch status` gives it. A board of
/// 100,000 tickets is mostly done ones; held as these, not as whole
/// tickets with their text and log, it takes a fraction of the memory.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Finished {
    pub id: Box<str>,
    pub title: Box<str>,
    pub attempts_used: u32,
    /// The last outcome: `landed`, or `success` where nothing lands.
    pub outcome: Option<crate::outcome::Outcome>,
    /// Tokens of every attempt, and of those `tokens_per_ticket` counts.
    pub tokens: u64,
    pub tokens_toward_budget: u64,
}

impl Finished {
    pub fn of(t: &Ticket) -> Finished {
        Finished {
            id: t.id.as_str().into(),
            title: t.title().into(),
            attempts_used: t.attempts_used(),
            outcome: t.last_result().map(|r| r.outcome),
            tokens: t.tokens_total(),
            tokens_toward_budget: t.tokens_spent(),
        }
    }
}

impl Finished {
    /// The JSON `status` gives a done ticket.
    pub fn serialize_json<S: serde::Serializer>(
        &self,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::Serialize;
        #[derive(serde::Serialize)]
        struct Usage {
            tokens: u64,
            tokens_toward_budget: u64,
        }
        #[derive(serde::Serialize)]
        struct Entry<'a> {
            id: &'a str,
            title: &'a str,
            attempts_used: u32,
            outcome: Option<&'static str>,
            usage: Usage,
        }
        Entry {
            id: &self.id,
            title: &self.title,
            attempts_used: self.attempts_used,
            outcome: self.outcome.map(|o| o.as_str()),
            usage: Usage {
                tokens: self.tokens,
                tokens_toward_budget: self.tokens_toward_budget,
            },
        }
        .serialize(s)
    }
}

impl Board {
    /// Every ticket, read and checked: what `status` shows.
    pub fn load(layout: &Layout) -> Board {
        Board::load_scoped(layout, Scope::All)
    }

    /// What a tick acts on: the tickets in todo, in-progress and landing,
    /// read and checked; those in done and blocked seen by their file name
    /// alone (their state is all a dependency or a new id needs). A large
    /// history costs a tick a directory listing, not a read per file.
    pub fn load_active(layout: &Layout) -> Board {
        Board::load_scoped(layout, Scope::Active)
    }

    /// What `status` shows: every ticket read and checked, done ones kept
    /// only as [`Finished`] summaries (in `finished`, not in `tickets`).
    pub fn load_summary(layout: &Layout) -> Board {
        Board::load_scoped(layout, Scope::Summary)
    }

    fn load_scoped(layout: &Layout, scope: Scope) -> Board {
        let mut board = Board {
            tickets: BTreeMap::new(),
            seen: BTreeMap::new(),
            problems: Vec::new(),
            invalid: BTreeSet::new(),
            stranded: Vec::new(),
            config: Ok(Config::defaults()),
            config_warnings: Vec::new(),
            finished: Vec::new(),
        };
        // The board cache is decoded while the directories are listed and
        // the files looked at, one thread per state.
        let cached: Vec<(State, cache::Stream<FileResult>)> = State::ALL
            .into_iter()
            .filter(|s| scope.reads(*s))
            .map(|s| (s, cache::stream(scope.cache(layout, s))))
            .collect();
        match Config::load(&layout.config_path()) {
            Ok((c, w)) => {
                board.config = Ok(c);
                board.config_warnings = w;
            }
            Err(Error::Config { line, message, .. }) => board.config = Err((line, message)),
            Err(e) => board.config = Err((None, crate::error::render_chain(&e))),
        }
        if let Err(message) = crate::agent::prompt::plan_template(&layout.plan) {
            board.problem(
                crate::agent::prompt::TEMPLATE_REL.into(),
                None,
                message,
                Some("make .orch/plan/templates/prompt.md a regular file (a copy, not a symbolic link), or remove it to use the built-in prompt"),
            );
        }
        board.read_tickets(layout, scope, cached);
        board.check_duplicates();
        board.check_dependencies();
        board
    }

    fn problem(&mut self, path: String, line: Option<u64>, message: String, hint: Option<&str>) {
        self.problems.push(Problem {
            path,
            line,
            severity: Severity::Error,
            message,
            hint: hint.map(str::to_string),
        });
    }

    /// List the four ticket directories, then read and parse the files on
    /// a few threads. Results merge in (state, name) order, so the board is
    /// the same whatever the scheduling.
    fn read_tickets(&mut self, layout: &Layout, scope: Scope, cached: CacheStreams) {
        let mut files: Vec<Listed> = Vec::new();
        let mut dirs: Vec<(State, std::fs::File)> = Vec::new();
        for state in State::ALL {
            let dir = layout.plan.join(state.rel_dir());
            // A linked directory would lead out of the plan: its files are
            // not read at all (each file is also opened without following
            // links, in `read_one`).
            if let Some(via) = linked_dir(&layout.plan, &state.rel_dir()) {
                self.problem(
                    state.rel_dir(),
                    None,
                    format!(
                        "`{via}` is a symbolic link or not a directory; no ticket in it is read"
                    ),
                    Some("make it a plain directory inside .orch/plan (move the tickets into it)"),
                );
                continue;
            }
            // Opened once: each file is looked at relative to it.
            if let Ok(fd) = std::fs::File::open(&dir) {
                dirs.push((state, fd));
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.problem(
                        state.rel_dir(),
                        None,
                        format!("cannot read the directory: {e}"),
                        None,
                    );
                    continue;
                }
            };
            let first = files.len();
            files.extend(entries.flatten().map(|e| Listed {
                state,
                name: e.file_name().to_string_lossy().into(),
                // The directory entry's type needs no stat, and is not
                // followed.
                is_file: e.file_type().map(|t| t.is_file()).unwrap_or(false),
            }));
            files[first..].sort_by(|a, b| a.name.cmp(&b.name));
            if !scope.reads(state) {
                // Seen by name: what `read_one` would say of the id.
                for f in files.drain(first..) {
                    let name = &f.name;
                    if let Some(id) = name.strip_suffix(".md").filter(|_| !name.starts_with('.')) {
                        self.seen.entry(id.to_string()).or_default().push(state);
                    }
                }
            }
        }
        let results = read_files(layout, scope, &files, &dirs, cached);
        // The maps are built in bulk from sorted runs: much cheaper than
        // inserting 100,000 entries one by one.
        let mut seen: Vec<(String, State)> = Vec::with_capacity(results.len());
        let whole = results.iter().filter(|r| r.ticket.is_some()).count();
        let mut tickets: Vec<(String, Ticket)> = Vec::with_capacity(whole);
        self.finished
            .reserve_exact(results.iter().filter(|r| r.finished.is_some()).count());
        for (r, f) in results.into_iter().zip(&files) {
            let mut finished = r.finished;
            let id = f.name.strip_suffix(".md").filter(|_| r.seen);
            if let Some((id, state)) = id.map(|id| (id.to_string(), f.state)) {
                if let Some(f) = finished.as_mut() {
                    f.id = id.as_str().into();
                }
                if r.invalid {
                    self.invalid.insert(id.clone());
                }
                seen.push((id, state));
            }
            self.problems.extend(r.problems);
            if let Some(t) = r.ticket {
                tickets.push((t.id.clone(), *t));
            }
            if let Some(t) = r.stranded {
                self.stranded.push(*t);
            }
            if let Some(f) = finished {
                self.finished.push(*f);
            }
        }
        // Stable sorts: a duplicate keeps the first copy read (both are
        // reported), and an id's states stay in listing order.
        tickets.sort_by(|a, b| a.0.cmp(&b.0));
        tickets.dedup_by(|later, first| later.0 == first.0);
        // As for whole tickets: an id also read in an earlier state keeps
        // that copy only.
        self.finished.retain(|f| {
            tickets
                .binary_search_by(|t| t.0.as_str().cmp(&f.id))
                .is_err()
        });
        self.finished.sort_by(|a, b| a.id.cmp(&b.id));
        self.finished.dedup_by(|later, first| later.id == first.id);
        self.tickets = tickets.into_iter().collect();
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        let mut grouped: Vec<(String, Vec<State>)> = Vec::with_capacity(seen.len());
        for (id, state) in seen {
            match grouped.last_mut() {
                Some((last, states)) if *last == id => states.push(state),
                _ => grouped.push((id, vec![state])),
            }
        }
        if self.seen.is_empty() {
            self.seen = grouped.into_iter().collect();
        } else {
            // Ids seen by name only (done, blocked) join in state order.
            for (id, states) in grouped {
                let all = self.seen.entry(id).or_default();
                all.extend(states);
                all.sort();
            }
        }
    }

    fn check_duplicates(&mut self) {
        let dups: Vec<(String, Vec<State>)> = self
            .seen
            .iter()
            .filter(|(_, states)| states.len() > 1)
            .map(|(id, s)| (id.clone(), s.clone()))
            .collect();
        for (id, states) in dups {
            let paths: Vec<String> = states.iter().map(|s| ticket::rel_path(*s, &id)).collect();
            for p in &paths {
                let others: Vec<&str> = paths
                    .iter()
                    .filter(|o| *o != p)
                    .map(String::as_str)
                    .collect();
                self.problem(
                    p.clone(),
                    None,
                    format!("the id `{id}` is also used by {}", others.join(", ")),
                    Some("ticket ids are unique across todo, in-progress, done and blocked; remove or rename one copy"),
                );
            }
            self.invalid.insert(id);
        }
    }

    fn check_dependencies(&mut self) {
        let mut missing = Vec::new();
        // As in `cycles`: a finished ticket's dependencies are history.
        // (Done tickets are not even read as whole tickets by `status`.)
        let waiting = self
            .tickets
            .values()
            .filter(|t| !matches!(t.state, State::Done | State::Blocked));
        for t in waiting {
            for dep in &t.front.depends_on {
                if !self.seen.contains_key(dep) {
                    missing.push((t.id.clone(), t.rel_path(), dep.clone(), dep_line(t, dep)));
                }
            }
        }
        for (id, path, dep, line) in missing {
            self.invalid.insert(id);
            self.problem(
                path,
                line,
                format!("depends on `{dep}`, which is not a ticket"),
                Some("create that ticket or remove it from depends_on"),
            );
        }
        for cycle in self.cycles() {
            let text = cycle.join(" -> ");
            for id in &cycle[..cycle.len() - 1] {
                let Some(t) = self.tickets.get(id) else {
                    continue;
                };
                let path = t.rel_path();
                let line = dep_line(t, &cycle[1]);
                self.invalid.insert(id.clone());
                self.problem(
                    path,
                    line,
                    format!("dependency cycle: {text}"),
                    Some("remove one of these dependencies so the tickets can run in order"),
                );
            }
        }
    }

    /// Each dependency cycle once, as `[a, b, ..., a]`.
    fn cycles(&self) -> Vec<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Finished,
        }
        let mut marks: HashMap<&str, Mark> = self
            .tickets
            .keys()
            .map(|k| (k.as_str(), Mark::New))
            .collect();
        let mut cycles = Vec::new();
        for start in self.tickets.keys() {
            if marks.get(start.as_str()) != Some(&Mark::New) {
                continue;
            }
            // Iterative DFS: (node, next dependency index). Deep chains of
            // tickets must not overflow the stack.
            let mut stack: Vec<(&str, usize)> = vec![(start.as_str(), 0)];
            marks.insert(start.as_str(), Mark::Active);
            while let Some((node, idx)) = stack.last().copied() {
                // A finished ticket's dependencies are history: they
                // hold nothing back, so they close no cycle (and a tick,
                // which does not read finished tickets, decides the same).
                let deps = self
                    .tickets
                    .get(node)
                    .filter(|t| !matches!(t.state, State::Done | State::Blocked))
                    .map(|t| t.front.depends_on.as_slice())
                    .unwrap_or(&[]);
                if idx >= deps.len() {
                    marks.insert(node, Mark::Finished);
                    stack.pop();
                    continue;
                }
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let dep = deps[idx].as_str();
                match marks.get(dep).copied() {
                    Some(Mark::New) => {
                        marks.insert(dep, Mark::Active);
                        stack.push((dep, 0));
                    }
                    Some(Mark::Active) => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| n.to_string()).collect();
                        cycle.push(dep.to_string());
                        cycles.push(cycle);
                    }
                    _ => {}
                }
            }
        }
        cycles
    }

    pub fn in_state(&self, state: State) -> impl Iterator<Item = &Ticket> {
        self.tickets.values().filter(move |t| t.state == state)
    }

    pub fn count(&self, state: State) -> usize {
        self.seen.values().filter(|s| s.contains(&state)).count()
    }

    pub fn readiness(&self, t: &Ticket) -> Readiness {
        if self.invalid.contains(&t.id) {
            let why = self
                .problems
                .iter()
                .find(|p| p.severity == Severity::Error && p.path == t.rel_path())
                .map(|p| p.message.clone())
                .unwrap_or_else(|| "invalid".into());
            return Readiness::Invalid(why);
        }
        let waiting: Vec<String> = t
            .front
            .depends_on
            .iter()
            .filter(|d| self.seen.get(*d).is_none_or(|s| s != &[State::Done]))
            .cloned()
            .collect();
        if waiting.is_empty() {
            Readiness::Ready
        } else {
            Readiness::Waiting(waiting)
        }
    }

    /// Todo tickets that can never run as the board stands, by id: each
    /// waits, directly or through other todo tickets, on a ticket that
    /// needs a person (blocked, or invalid). A missing dependency makes the
    /// waiting ticket itself invalid, so it is not here.
    pub fn stuck(&self) -> BTreeMap<String, Stuck> {
        enum Dep {
            /// Done, or on its way (in progress, landing): no reason to wait for ever.
            Fine,
            NeedsPerson,
            Todo,
        }
        let kind = |d: &str| match self.seen.get(d).map(Vec::as_slice) {
            Some([State::Done]) => Dep::Fine,
            _ if self.invalid.contains(d) => Dep::NeedsPerson,
            Some([State::Blocked]) => Dep::NeedsPerson,
            Some([State::Todo]) if self.tickets.contains_key(d) => Dep::Todo,
            _ => Dep::Fine,
        };
        // The dependency each todo ticket is stuck through, or None. An
        // explicit stack: a chain of thousands of tickets must not
        // overflow the thread's.
        let mut via: HashMap<&str, Option<&str>> = HashMap::new();
        for t in self.in_state(State::Todo) {
            if self.invalid.contains(&t.id) || via.contains_key(t.id.as_str()) {
                continue;
            }
            let mut stack: Vec<(&str, usize)> = vec![(t.id.as_str(), 0)];
            let mut on_stack: std::collections::HashSet<&str> = [t.id.as_str()].into();
            while let Some(&(id, next)) = stack.last() {
                let deps = self
                    .tickets
                    .get(id)
                    .map(|t| t.front.depends_on.as_slice())
                    .unwrap_or(&[]);
                let top = stack.len() - 1;
                let Some(d) = deps.get(next).map(String::as_str) else {
                    via.insert(id, None);
                    on_stack.remove(id);
                    stack.pop();
                    continue;
                };
                let stuck_through = match kind(d) {
                    Dep::Fine => false,
                    Dep::NeedsPerson => true,
                    Dep::Todo => match via.get(d) {
                        Some(found) => found.is_some(),
                        // A cycle: its tickets are invalid already.
                        None if on_stack.contains(d) => false,
                        None => {
                            on_stack.insert(d);
                            stack.push((d, 0));
                            continue;
                        }
                    },
                };
                if stuck_through {
                    via.insert(id, Some(d));
                    on_stack.remove(id);
                    stack.pop();
                } else {
                    stack[top].1 += 1;
                }
            }
        }
        // Where each chain ends and how long it is, memoised: chains share
        // their tails, and a board may hold thousands of tickets in one.
        let mut ends: HashMap<&str, (&str, usize)> = HashMap::new();
        for (&id, first) in &via {
            let Some(first) = *first else { continue };
            let mut path = vec![id];
            let mut cur = first;
            let (end, mut len) = loop {
                if let Some(&known) = ends.get(cur) {
                    break known;
                }
                match via.get(cur) {
                    Some(Some(next)) if path.len() <= via.len() => {
                        path.push(cur);
                        cur = next;
                    }
                    _ => break (cur, 0),
                }
            };
            for step in path.into_iter().rev() {
                len += 1;
                ends.insert(step, (end, len));
            }
        }
        let mut out = BTreeMap::new();
        for (&id, &(end, len)) in &ends {
            let mut chain = vec![id.to_string()];
            let mut cur = id;
            while chain.len() < Stuck::SHOWN {
                match via.get(cur) {
                    Some(Some(next)) if *next != end => {
                        chain.push(next.to_string());
                        cur = next;
                    }
                    _ => break,
                }
            }
            // The ticket, the shown steps and the end are not "more".
            let more = len.saturating_sub(chain.len());
            chain.push(end.to_string());
            let end = if self.invalid.contains(end) {
                StuckOn::Invalid
            } else {
                StuckOn::Blocked
            };
            out.insert(id.to_string(), Stuck { chain, more, end });
        }
        out
    }

    /// Todo tickets a tick may claim, in the order it takes them.
    pub fn ready_queue(&self) -> Vec<&Ticket> {
        let mut ready: Vec<&Ticket> = self
            .in_state(State::Todo)
            .filter(|t| self.readiness(t) == Readiness::Ready)
            .collect();
        ready.sort_by(|a, b| (a.front.priority, &a.id).cmp(&(b.front.priority, &b.id)));
        ready
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn config(&self) -> Result<&Config> {
        self.config
            .as_ref()
            .map_err(|(line, message)| Error::Config {
                path: PathBuf::from(layout::CONFIG_DISPLAY),
                line: *line,
                message: message.clone(),
                hint: Some(if message == crate::config::MISSING {
                    crate::config::MISSING_HINT.into()
                } else {
                    "fix orch.yaml in .orch/plan; orch commits your edit on its next command".into()
                }),
            })
    }
}

/// What reading one directory entry gave.
/// Which ticket files a board read parses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    All,
    Active,
    /// All, done tickets as [`Finished`] summaries.
    Summary,
}

impl Scope {
    fn reads(self, state: State) -> bool {
        self != Scope::Active || !matches!(state, State::Done | State::Blocked)
    }

    fn summarises(self, state: State) -> bool {
        self == Scope::Summary && state == State::Done
    }

    /// Summaries and whole tickets are cached apart.
    fn cache(self, layout: &Layout, state: State) -> PathBuf {
        if self.summarises(state) {
            layout.board_summary_cache(state)
        } else {
            layout.board_cache(state)
        }
    }
}

/// The board cache of each state read, as a stream.
type CacheStreams = Vec<(State, cache::Stream<FileResult>)>;

/// A file of a ticket directory, as listed.
struct Listed {
    state: State,
    name: Box<str>,
    is_file: bool,
}

impl Listed {
    /// The path in the plan, as the cache names it.
    fn rel(&self) -> String {
        let dir = self.state.rel_dir();
        let mut rel = String::with_capacity(dir.len() + 1 + self.name.len());
        rel.push_str(&dir);
        rel.push('/');
        rel.push_str(&self.name);
        rel
    }
}

/// What one file gave. Tickets are boxed: a board of 100,000 files holds
/// all of these at once before they go into the maps.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct FileResult {
    /// Whether the file is a ticket file: its id is its name without
    /// `.md` (not kept here: 100,000 of them would be held twice).
    seen: bool,
    invalid: bool,
    ticket: Option<Box<Ticket>>,
    stranded: Option<Box<Ticket>>,
    problems: Vec<Problem>,
    /// Set by [`FileResult::summarised`], in place of `ticket`.
    finished: Option<Box<Finished>>,
}

impl FileResult {
    /// The ticket kept only as its summary.
    fn summarised(mut self) -> FileResult {
        if let Some(t) = self.ticket.take() {
            let mut f = Finished::of(&t);
            // Given back from `seen` when the board is put together: not
            // held twice while 100,000 files are read.
            f.id = Box::default();
            self.finished = Some(Box::new(f));
        }
        self
    }
}

/// Read every listed file: from the board cache when its identity is
/// unchanged, else parsed on a few threads. Results come back in listing
/// order, so the board is the same whatever the scheduling or the cache.
fn read_files(
    layout: &Layout,
    scope: Scope,
    files: &[Listed],
    dirs: &[(State, std::fs::File)],
    mut cached: CacheStreams,
) -> Vec<FileResult> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4);
    let chunk = files.len().div_ceil(threads).max(256);
    let now = std::time::SystemTime::now();
    // Caches to write again: they hold records for files gone or changed,
    // or lack a parse they could hold.
    let mut stale: Vec<State> = Vec::new();
    // The files are looked at on a few threads, then the cache (decoded
    // meanwhile) is merged with the listing by name.
    let mut ids: Vec<Option<cache::Identity>> = vec![None; files.len()];
    std::thread::scope(|scope| {
        // Each thread fills its own part of `ids`.
        let handles: Vec<_> = files
            .chunks(chunk)
            .zip(ids.chunks_mut(chunk))
            .map(|(part, out)| {
                scope.spawn(move || {
                    for (f, id) in part.iter().zip(out) {
                        *id = (|| {
                            let (_, dir) = dirs.iter().find(|(s, _)| *s == f.state)?;
                            // Not followed if it is a link.
                            let st = rustix::fs::statat(
                                dir,
                                &*f.name,
                                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                            )
                            .ok()?;
                            rustix::fs::FileType::from_raw_mode(st.st_mode)
                                .is_file()
                                .then(|| cache::Identity::of_stat(&st))
                        })();
                    }
                })
            })
            .collect();
        for h in handles {
            // A thread that panicked leaves its files unlooked-at: parsed.
            let _ = h.join();
        }
    });
    let mut slots: Vec<Option<FileResult>> = Vec::with_capacity(files.len());
    for (f, id) in files.iter().zip(&ids) {
        let Some((_, stream)) = cached.iter_mut().find(|(s, _)| *s == f.state) else {
            slots.push(None);
            continue;
        };
        slots.push(match stream.take(&f.rel()) {
            Some((cached_at, r)) if Some(cached_at) == *id => Some(r),
            Some(_) => {
                // A record of another version of the file.
                if !stale.contains(&f.state) {
                    stale.push(f.state);
                }
                None
            }
            None => None,
        });
    }
    for (state, stream) in &mut cached {
        if stream.finish() && !stale.contains(state) {
            stale.push(*state);
        }
    }
    let misses: Vec<usize> = (0..files.len()).filter(|&i| slots[i].is_none()).collect();
    let plan = layout.plan.as_path();
    let parsed: Vec<(usize, FileResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = misses
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&i| {
                            let f = &files[i];
                            (i, read_one(plan, f.state, &f.name, f.is_file))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    for (i, r) in parsed {
        if ids[i].is_some_and(|id| id.settled(now)) && !stale.contains(&files[i].state) {
            stale.push(files[i].state);
        }
        slots[i] = Some(r);
    }
    for (slot, f) in slots.iter_mut().zip(files) {
        if scope.summarises(f.state) {
            *slot = slot.take().map(FileResult::summarised);
        }
    }
    // Never written for files too fresh to cache.
    for state in stale {
        cache::save(
            &scope.cache(layout, state),
            slots.iter().enumerate().filter_map(|(i, r)| {
                let id = ids[i].filter(|id| id.settled(now) && files[i].state == state)?;
                Some((files[i].rel(), id, r.as_ref()?))
            }),
        );
    }
    // Collected in place: the two vectors are never held at once.
    slots.into_iter().map(Option::unwrap_or_default).collect()
}

/// The first of `rel`'s components under `plan` that exists but is a
/// symbolic link or not a directory.
fn linked_dir(plan: &Path, rel: &str) -> Option<String> {
    let mut path = plan.to_path_buf();
    let mut walked = PathBuf::new();
    for part in Path::new(rel).components() {
        path.push(part);
        walked.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Some(walked.display().to_string()),
            Err(_) => return None,
        }
    }
    None
}

fn read_one(plan: &Path, state: State, name: &str, is_file: bool) -> FileResult {
    let mut r = FileResult::default();
    let rel = format!("{}/{name}", state.rel_dir());
    let error = |message: String, hint: &str| Problem {
        path: rel.clone(),
        line: None,
        severity: Severity::Error,
        message,
        hint: (!hint.is_empty()).then(|| hint.to_string()),
    };
    if name.starts_with('.') || is_editor_litter(name) {
        return r; // .gitkeep, editor swap and backup files, orch's own temp files
    }
    let Some(id) = name.strip_suffix(".md") else {
        r.problems.push(Problem {
            path: rel,
            line: None,
            severity: Severity::Warning,
            message: "not a ticket: ticket files end in .md".into(),
            hint: Some("rename it to <id>.md or move it out of tickets/".into()),
        });
        return r;
    };
    r.seen = true;
    if !is_file {
        r.invalid = true;
        r.problems.push(error(
            "not a regular file (symlinks and directories are not followed)".into(),
            "replace it with a plain file",
        ));
        return r;
    }
    // Opened again without following a link, and checked to be a regular
    // file once open: what was listed may have been replaced since.
    let bytes = match safe_read::regular_file_in(plan, Path::new(&rel), ticket::MAX_TICKET_BYTES) {
        Ok(Some(bytes)) => bytes,
        // Removed since it was listed: as if never seen.
        Ok(None) => return FileResult::default(),
        Err(safe_read::Refused::TooLarge { .. }) => {
            r.invalid = true;
            r.problems.push(error(
                format!(
                    "the file is larger than {} bytes, the limit for a ticket",
                    ticket::MAX_TICKET_BYTES
                ),
                "move long material into the repository and refer to it from the ticket",
            ));
            return r;
        }
        Err(e @ safe_read::Refused::NotRegular { .. }) => {
            r.invalid = true;
            r.problems.push(error(
                format!("cannot read: {e}"),
                "replace it with a plain file",
            ));
            return r;
        }
        Err(e) => {
            r.invalid = true;
            r.problems.push(error(format!("cannot read: {e}"), ""));
            return r;
        }
    };
    let (parsed, problems) = ticket::parse(id, state, &bytes);
    if parsed.is_none() && state == State::InProgress {
        r.stranded = ticket::parse_lenient(id, state, &bytes).map(Box::new);
    }
    r.invalid = parsed.is_none() || problems.iter().any(|p| p.severity == Severity::Error);
    r.problems = problems;
    r.ticket = parsed.map(Box::new);
    r
}

fn dep_line(t: &Ticket, dep: &str) -> Option<u64> {
    t.text
        .lines()
        .take_while(|l| !l.starts_with(ticket::LOG_MARKER))
        .position(|l| {
            l.contains("depends_on") || l.trim_start().starts_with("- ") && l.contains(dep)
        })
        .map(|i| i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Board) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), &dir.path().join(".git"));
        for (path, text) in files {
            let p = layout.plan.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let board = Board::load(&layout);
        (dir, board)
    }

    #[test]
    fn ready_queue_orders_by_priority_then_id() {
        let (_d, b) = board_with(&[
            ("tickets/todo/b.md", "---\ntitle: b\npriority: 1\n---\n"),
            ("tickets/todo/a.md", "---\ntitle: a\npriority: 1\n---\n"),
            ("tickets/todo/c.md", "---\ntitle: c\npriority: 0\n---\n"),
            ("tickets/todo/d.md", "---\ntitle: d\ndepends_on: [e]\n---\n"),
            ("tickets/in-progress/e.md", "---\ntitle: e\n---\n"),
        ]);
        let ids: Vec<&str> = b.ready_queue().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        let d = &b.tickets["d"];
        assert_eq!(b.readiness(d), Readiness::Waiting(vec!["e".into()]));
    }

    #[test]
    fn a_tick_and_status_read_the_same_readiness() {
        // A finished ticket's dependencies close no cycle: the tick, which
        // knows done and blocked tickets by name only, decides the same.
        let files: &[(&str, &str)] = &[
            ("tickets/todo/x.md", "---\ntitle: x\ndepends_on: [d]\n---\n"),
            ("tickets/done/d.md", "---\ntitle: d\ndepends_on: [x]\n---\n"),
            ("tickets/todo/w.md", "---\ntitle: w\ndepends_on: [b]\n---\n"),
            (
                "tickets/blocked/b.md",
                "---\ntitle: b\ndepends_on: [w]\n---\n",
            ),
            ("tickets/done/broken.md", "---\ntitle: [\n---\n"),
        ];
        let (d, full) = board_with(files);
        let layout = Layout::new(d.path(), &d.path().join(".git"));
        let active = Board::load_active(&layout);
        for b in [&full, &active] {
            let ids: Vec<&str> = b.ready_queue().iter().map(|t| t.id.as_str()).collect();
            assert_eq!(ids, ["x"]);
            assert_eq!(
                b.readiness(&b.tickets["w"]),
                Readiness::Waiting(vec!["b".into()])
            );
            assert_eq!(b.seen["d"], [State::Done]);
            assert_eq!(b.seen["broken"], [State::Done]);
        }
        assert!(
            !active.tickets.contains_key("d"),
            "done tickets are not read"
        );
        assert!(full.tickets.contains_key("d"));
    }

    #[test]
    fn stuck_tickets_name_the_chain() {
        let (_d, b) = board_with(&[
            ("tickets/blocked/a.md", "---\ntitle: a\n---\n"),
            ("tickets/todo/b.md", "---\ntitle: b\ndepends_on: [a]\n---\n"),
            (
                "tickets/todo/c.md",
                "---\ntitle: c\ndepends_on: [x, b]\n---\n",
            ),
            ("tickets/todo/x.md", "---\ntitle: x\n---\n"),
            ("tickets/todo/bad.md", "---\ntitle: [\n---\n"),
            (
                "tickets/todo/d.md",
                "---\ntitle: d\ndepends_on: [bad]\n---\n",
            ),
            ("tickets/in-progress/r.md", "---\ntitle: r\n---\n"),
            ("tickets/todo/e.md", "---\ntitle: e\ndepends_on: [r]\n---\n"),
        ]);
        let stuck = b.stuck();
        let chains: Vec<(&str, Vec<&str>, StuckOn)> = stuck
            .iter()
            .map(|(id, s)| {
                (
                    id.as_str(),
                    s.chain.iter().map(String::as_str).collect(),
                    s.end,
                )
            })
            .collect();
        assert_eq!(
            chains,
            [
                ("b", vec!["b", "a"], StuckOn::Blocked),
                ("c", vec!["c", "b", "a"], StuckOn::Blocked),
                ("d", vec!["d", "bad"], StuckOn::Invalid),
            ]
        );
        assert_eq!(
            stuck["c"].describe(),
            "stuck: waits on b, which waits on a, which is blocked; retry it with \
             `orch retry a`"
        );
    }

    #[test]
    fn a_long_stuck_chain_does_not_overflow() {
        let n = 5000;
        let mut files: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("tickets/todo/t{i}.md"),
                    format!("---\ntitle: t\ndepends_on: [t{}]\n---\n", i + 1),
                )
            })
            .collect();
        files.push((
            format!("tickets/blocked/t{n}.md"),
            "---\ntitle: t\n---\n".into(),
        ));
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let (_d, b) = board_with(&refs);
        let stuck = b.stuck();
        assert_eq!(stuck.len(), n);
        let t0 = &stuck["t0"];
        assert_eq!(t0.chain.len(), Stuck::SHOWN + 1);
        assert_eq!(t0.more + t0.chain.len(), n + 1);
        assert_eq!(t0.on(), format!("t{n}"));
        assert!(
            t0.describe()
                .starts_with("stuck: waits on t1, which waits on t2, "),
            "{}",
            t0.describe()
        );
        assert!(
            t0.describe()
                .contains("t7, which waits on 4992 more, then t5000, which is blocked"),
            "{}",
            t0.describe()
        );
    }

    #[test]
    fn cycles_are_named_whole() {
        let (_d, b) = board_with(&[
            ("tickets/todo/x.md", "---\ntitle: x\ndepends_on: [y]\n---\n"),
            ("tickets/todo/y.md", "---\ntitle: y\ndepends_on: [x]\n---\n"),
            ("tickets/todo/s.md", "---\ntitle: s\ndepends_on: [s]\n---\n"),
            ("tickets/todo/ok.md", "---\ntitle: ok\n---\n"),
        ]);
        let messages: Vec<String> = b.errors().map(|p| p.to_string()).collect();
        assert!(
            messages.iter().any(|m| m.contains("x -> y -> x")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("s -> s")),
            "{messages:?}"
        );
        let ids: Vec<&str> = b.ready_queue().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["ok"]);
    }

    #[test]
    fn long_chain_cycle_does_not_overflow() {
        let n = 5000;
        let files: Vec<(String, String)> = (0..n)
            .map(|i| {
                (
                    format!("tickets/todo/t{i}.md"),
                    format!("---\ntitle: t\ndepends_on: [t{}]\n---\n", (i + 1) % n),
                )
            })
            .collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let (_d, b) = board_with(&refs);
        assert_eq!(b.invalid.len(), n);
    }

    #[test]
    fn duplicates_and_missing_dependencies() {
        let (_d, b) = board_with(&[
            ("tickets/todo/a.md", "---\ntitle: a\n---\n"),
            ("tickets/done/a.md", "---\ntitle: a\n---\n"),
            (
                "tickets/todo/b.md",
                "---\ntitle: b\ndepends_on: [nope]\n---\n",
            ),
        ]);
        let messages: Vec<String> = b.errors().map(|p| p.to_string()).collect();
        assert!(
            messages
                .iter()
                .any(|m| m
                    .contains("tickets/done/a.md: the id `a` is also used by tickets/todo/a.md")),
            "{messages:?}"
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("tickets/todo/b.md:4") || m.contains("`nope`")),
            "{messages:?}"
        );
        assert!(b.ready_queue().is_empty());
    }
}
