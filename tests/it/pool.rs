//! The worktree pool: a finished ticket's worktree is recycled for the
//! next ticket, its ignored build output warm, its tracked files exactly
//! the next ticket's start, and nothing of one ticket's work reaching the
//! next; a kill -9 at each pool step is repaired by the next tick.

use std::path::Path;

use crate::env::{TestEnv, crash_at, stderr, stdout};

/// What each run saw when it started, written outside the worktree, then
/// a build output in the ignored `target/` and a note as the agent's work.
const AGENT: &str = r#"F="$FLAGS"
git status --porcelain > "$F/status-$ORCH_TICKET"
git rev-parse HEAD > "$F/head-$ORCH_TICKET"
ls -A > "$F/ls-$ORCH_TICKET"
if [ -f target/marker ]; then cp target/marker "$F/seen-$ORCH_TICKET"; fi
mkdir -p target && echo "$ORCH_TICKET" > target/marker
echo "$ORCH_TICKET" > "note-$ORCH_TICKET.txt"
echo done"#;

fn ready(env: &TestEnv, extra: &str) {
    ready_with(env, extra, "");
}

/// [`ready`] with more for the agent to do after its note.
fn ready_with(env: &TestEnv, extra: &str, script: &str) {
    env.init();
    let body = AGENT
        .replace("$FLAGS", &env.flags_dir().display().to_string())
        .replace("echo done", &format!("{script}\necho done"));
    let agent = env.agent("agent", &body);
    env.configure(&agent, &format!("max_in_progress: 1\n{extra}"));
}

fn tick(env: &TestEnv) -> String {
    let out = env.tick();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn ticket(env: &TestEnv, id: &str) {
    env.write_ticket("todo", id, &format!("---\ntitle: Ticket {id}\n---\n"));
}

/// A commit on main, so each ticket starts somewhere else.
fn advance_main(env: &TestEnv, file: &str) -> String {
    std::fs::write(env.repo.join(file), format!("{file}\n")).expect("write");
    env.git(&["add", file]);
    env.git(&["commit", "-q", "-m", file]);
    env.git(&["rev-parse", "HEAD"]).trim().to_string()
}

fn flag(env: &TestEnv, name: &str) -> Option<String> {
    std::fs::read_to_string(env.flag(name)).ok()
}

fn pool_slots(env: &TestEnv) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(env.repo.join(".orch/pool")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

fn two_tickets(env: &TestEnv) -> String {
    ticket(env, "a");
    let out = tick(env);
    assert!(out.contains("a: success"), "{out}");
    assert!(!env.repo.join(".orch/worktrees/a").exists());
    assert_eq!(pool_slots(env), ["0"], "a's worktree is a free slot");
    let start = advance_main(env, "second.txt");
    ticket(env, "b");
    let out = tick(env);
    assert!(out.contains("b: success"), "{out}");
    assert_eq!(pool_slots(env), ["0"], "b took the slot and gave it back");
    // The tracked files are exactly b's start: nothing of a's branch.
    assert_eq!(flag(env, "status-b").as_deref(), Some(""));
    assert_eq!(
        flag(env, "head-b").map(|h| h.trim().to_string()),
        Some(start)
    );
    let ls = flag(env, "ls-b").unwrap_or_default();
    assert!(ls.contains("second.txt"), "{ls}");
    assert!(!ls.contains("note-a.txt"), "{ls}");
    ls
}

#[test]
fn a_second_ticket_reuses_the_slot_with_its_build_output_warm() {
    let env = TestEnv::new();
    ready(&env, "");
    two_tickets(&env);
    assert_eq!(
        flag(&env, "seen-b").as_deref(),
        Some("a\n"),
        "target/ of a stayed for b"
    );
    assert_no_leak(&env);
}

#[test]
fn clean_all_removes_the_build_output_too() {
    let env = TestEnv::new();
    ready(&env, "pool: {size: 1, clean: all}");
    two_tickets(&env);
    assert_eq!(flag(&env, "seen-b"), None, "clean: all leaves no target/");
    assert_no_leak(&env);
}

#[test]
fn size_zero_turns_the_pool_off() {
    let env = TestEnv::new();
    ready(&env, "pool: {size: 0}");
    ticket(&env, "a");
    tick(&env);
    assert!(pool_slots(&env).is_empty());
    assert!(!env.repo.join(".orch/worktrees/a").exists());
}

#[test]
fn a_typo_in_the_pool_table_is_refused() {
    let env = TestEnv::new();
    ready(&env, "pool: {sise: 1}");
    ticket(&env, "a");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did you mean `size`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn untracked_work_is_kept_before_the_slot_is_reused() {
    let env = TestEnv::new();
    ready(&env, "");
    // a fails once and is blocked: its worktree stays for a person.
    env.write_ticket(
        "todo",
        "a",
        "---\ntitle: Ticket a\nmax_attempts: 1\nverify: [\"false\"]\n---\n",
    );
    tick(&env);
    assert_eq!(env.state_of("a"), "blocked");
    // The person leaves a file in it and moves the ticket to done by hand.
    let wt = env.repo.join(".orch/worktrees/a");
    std::fs::write(wt.join("scratch.txt"), "a person's note\n").expect("write");
    std::fs::rename(
        env.ticket_path("blocked", "a"),
        env.ticket_path("done", "a"),
    )
    .expect("move by hand");
    ticket(&env, "b");
    let out = tick(&env);
    assert!(out.contains("b: success"), "{out}");
    assert_eq!(
        env.kept_file("a", "scratch.txt").as_deref(),
        Some("a person's note\n"),
        "a kept ref for a's worktree"
    );
    let ls = flag(&env, "ls-b").unwrap_or_default();
    assert!(!ls.contains("scratch.txt"), "{ls}");
    assert!(!ls.contains("note-a.txt"), "{ls}");
    assert_eq!(flag(&env, "status-b").as_deref(), Some(""));
    assert_eq!(pool_slots(&env), ["0"]);
    assert_no_leak(&env);
}

#[test]
fn work_left_in_a_free_slot_is_kept_before_a_ticket_gets_it() {
    let env = TestEnv::new();
    ready(&env, "");
    ticket(&env, "a");
    tick(&env);
    std::fs::write(env.repo.join(".orch/pool/0/stray.txt"), "stray\n").expect("write");
    ticket(&env, "b");
    let out = tick(&env);
    assert!(out.contains("b: success"), "{out}");
    assert_eq!(
        env.kept_file("b", "stray.txt").as_deref(),
        Some("stray\n"),
        "the slot's stray work is kept"
    );
    let ls = flag(&env, "ls-b").unwrap_or_default();
    assert!(!ls.contains("stray.txt"), "{ls}");
    assert_no_leak(&env);
}

/// git sees no empty directory, so neither the status nor the move to
/// the next start touches those an agent leaves; the slot's return takes
/// them, and the next ticket's worktree looks as a fresh one would.
#[test]
fn empty_directories_an_agent_leaves_do_not_reach_the_next_ticket() {
    let env = TestEnv::new();
    ready_with(
        &env,
        "",
        "mkdir -p \"hollow-$ORCH_TICKET/deeper\" \"src-$ORCH_TICKET\"",
    );
    let ls = two_tickets(&env);
    assert!(!ls.contains("hollow-a"), "{ls}");
    assert!(!ls.contains("src-a"), "{ls}");
    assert_eq!(
        flag(&env, "seen-b").as_deref(),
        Some("a\n"),
        "target/ stays warm"
    );
    assert_no_leak(&env);
}

/// A file one ticket's own .gitignore hid (deep in a directory only its
/// branch has) is untracked under the next ticket's start: it goes, and
/// never becomes that ticket's work.
#[test]
fn a_file_only_the_last_tickets_ignore_rules_hid_is_not_the_next_tickets() {
    let env = TestEnv::new();
    ready_with(
        &env,
        "",
        "if [ \"$ORCH_TICKET\" = a ]; then mkdir -p deep/er && echo '*.tmp' > deep/er/.gitignore && echo a > deep/er/scratch.tmp; fi",
    );
    let ls = two_tickets(&env);
    assert_eq!(env.git(&["show", "orch/a:deep/er/.gitignore"]), "*.tmp\n");
    assert!(!ls.contains("deep"), "{ls}");
    assert_no_leak(&env);
}

/// A person who checks out their own branch in a free slot and edits a
/// tracked file there: the edit is kept on a ref, the branch stays where
/// it was, and the next ticket starts clean at its own start.
#[test]
fn a_branch_and_an_edit_in_a_free_slot_are_left_and_kept() {
    let env = TestEnv::new();
    ready(&env, "");
    std::fs::write(env.repo.join("shared.txt"), "as committed\n").expect("write");
    env.git(&["add", "shared.txt"]);
    env.git(&["commit", "-q", "-m", "shared"]);
    ticket(&env, "a");
    tick(&env);
    env.git(&["branch", "side"]);
    let side = env.git(&["rev-parse", "side"]);
    let slot = env.repo.join(".orch/pool/0");
    env.git_in(&slot, &["switch", "-q", "side"]);
    std::fs::write(slot.join("shared.txt"), "a person's edit\n").expect("write");
    ticket(&env, "b");
    let out = tick(&env);
    assert!(out.contains("b: success"), "{out}");
    assert_eq!(env.git(&["rev-parse", "side"]), side, "side moved");
    assert_eq!(
        env.kept_file("b", "shared.txt").as_deref(),
        Some("a person's edit\n"),
        "the edit is kept"
    );
    assert_eq!(flag(&env, "status-b").as_deref(), Some(""));
    assert_eq!(env.git(&["show", "orch/b:shared.txt"]), "as committed\n");
    assert_no_leak(&env);
}

/// An edit git was told not to look at (`--assume-unchanged`) is seen by
/// neither the status nor a move that writes only the paths that differ:
/// the next ticket still gets the file as its start has it.
#[test]
fn an_edit_hidden_from_git_does_not_reach_the_next_ticket() {
    let env = TestEnv::new();
    ready_with(
        &env,
        "",
        "cp shared.txt \"$F/shared-$ORCH_TICKET\"\nif [ \"$ORCH_TICKET\" = a ]; then echo hidden > shared.txt && git update-index --assume-unchanged shared.txt; fi",
    );
    std::fs::write(env.repo.join("shared.txt"), "as committed\n").expect("write");
    env.git(&["add", "shared.txt"]);
    env.git(&["commit", "-q", "-m", "shared"]);
    two_tickets(&env);
    assert_eq!(flag(&env, "shared-b").as_deref(), Some("as committed\n"));
    assert_no_leak(&env);
}

/// Every registered worktree has its directory, each directory names its
/// own registration (no slot is two worktrees), and nothing else is left.
fn assert_no_leak(env: &TestEnv) {
    let list = env.git(&["worktree", "list", "--porcelain"]);
    assert!(!list.contains("prunable"), "{list}");
    let regs: Vec<String> = std::fs::read_dir(env.repo.join(".git/worktrees"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = vec![env.plan()];
    for sub in [".orch/pool", ".orch/worktrees"] {
        if let Ok(d) = std::fs::read_dir(env.repo.join(sub)) {
            dirs.extend(d.flatten().map(|e| e.path()));
        }
    }
    let mut named: Vec<String> = dirs.iter().map(|d| gitdir_name(d)).collect();
    named.sort();
    let before = named.len();
    named.dedup();
    assert_eq!(named.len(), before, "two directories share a registration");
    let mut regs = regs;
    regs.sort();
    assert_eq!(
        named, regs,
        "directories and registrations match one to one"
    );
    for slot in pool_slots(env) {
        let dir = env.repo.join(".orch/pool").join(&slot);
        assert_eq!(gitdir_name(&dir), format!("orch-pool-{slot}"));
        assert_eq!(env.git_in(&dir, &["status", "--porcelain"]), "");
    }
    let fsck = std::process::Command::new("git")
        .args(["fsck", "--no-progress"])
        .current_dir(&env.repo)
        .output()
        .expect("fsck runs");
    assert!(fsck.status.success(), "{}", stderr(&fsck));
}

fn gitdir_name(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(".git")).unwrap_or_default();
    Path::new(text.trim().trim_start_matches("gitdir: "))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// kill -9 at `point`, then ticks until the board is quiet: each ticket
/// done with one success, its work on its branch, the kept work still
/// there, and the slots and worktrees whole.
fn survives_a_crash_at(point: &str, before: &[&str], crashed: &str, after: &[&str]) {
    let env = TestEnv::new();
    ready(&env, "");
    for id in before {
        ticket(&env, id);
        tick(&env);
    }
    // Work a person left in a finished worktree is kept before any of it
    // reaches the pool; the crash must not lose that either.
    let kept_before = env.git(&["for-each-ref", "refs/orch/kept/"]);
    ticket(&env, crashed);
    crash_at(&env, point);
    for id in after {
        ticket(&env, id);
    }
    for _ in 0..4 {
        tick(&env);
    }
    let all: Vec<&str> = before
        .iter()
        .chain([&crashed])
        .chain(after)
        .copied()
        .collect();
    for id in &all {
        assert_eq!(env.state_of(id), "done", "{id}");
        let text = std::fs::read_to_string(env.ticket_path("done", id)).expect("ticket");
        let successes = text
            .lines()
            .filter(|l| l.contains(" result ") && l.contains("success"))
            .count();
        assert_eq!(successes, 1, "{id} done once:\n{text}");
        assert_eq!(
            env.git(&["show", &format!("orch/{id}:note-{id}.txt")]),
            format!("{id}\n")
        );
        // Each run started clean, on its own start.
        assert_eq!(
            flag(&env, &format!("status-{id}")).as_deref(),
            Some(""),
            "{id}"
        );
        let ls = flag(&env, &format!("ls-{id}")).unwrap_or_default();
        assert!(
            !ls.contains("note-"),
            "{id} saw another ticket's work: {ls}"
        );
    }
    let kept_after = env.git(&["for-each-ref", "refs/orch/kept/"]);
    for line in kept_before.lines() {
        assert!(kept_after.contains(line), "{line} lost");
    }
    assert!(env.agent_processes().is_empty());
    assert!(!env.repo.join(".git/orch/pool-move").exists());
    assert_eq!(pool_slots(&env), ["0"], "one slot, neither leaked nor lost");
    assert_no_leak(&env);
}

#[test]
fn a_crash_while_taking_a_slot_is_repaired() {
    survives_a_crash_at("pool-take", &["a"], "b", &["c"]);
}

#[test]
fn a_crash_while_resetting_a_slot_is_repaired() {
    survives_a_crash_at("pool-reset", &["a"], "b", &["c"]);
}

#[test]
fn a_crash_while_returning_a_slot_is_repaired() {
    survives_a_crash_at("pool-return", &[], "a", &["b", "c"]);
}

/// A recycled worktree is the ticket's own under the sandbox: the agent
/// writes and commits there, and nowhere else (not in the pool beside it).
#[test]
fn a_recycled_worktree_works_under_the_sandbox() {
    if !orch::agent::sandbox::supported() {
        eprintln!("no Landlock on this kernel: nothing to check here");
        return;
    }
    let env = TestEnv::new();
    env.init();
    let flags = env.flags_dir().display().to_string();
    let body = format!(
        "{}\nif echo x > \"$ORCH_WORKTREE/../../pool/escape.txt\" 2>/dev/null; then touch \"{flags}/escaped-$ORCH_TICKET\"; fi\ngit add -A && git commit -q -m \"work of $ORCH_TICKET\"",
        AGENT.replace("$FLAGS", &flags).replace("echo done", "")
    );
    let agent = env.agent("agent", &body);
    env.configure(&agent, "max_in_progress: 1\npool: {size: 2}");
    ticket(&env, "a");
    tick(&env);
    // b runs in a slot, with the pool directory beside its worktree.
    ticket(&env, "b");
    let out = tick(&env);
    assert!(out.contains("b: success"), "{out}");
    assert_eq!(
        flag(&env, "seen-b").as_deref(),
        Some("a\n"),
        "b ran in a's slot"
    );
    assert_eq!(env.git(&["show", "orch/b:note-b.txt"]), "b\n");
    assert!(
        !env.flag("escaped-b").exists(),
        "the sandbox let b write in the pool"
    );
    assert!(!env.repo.join(".orch/pool/escape.txt").exists());
    assert_no_leak(&env);
}
