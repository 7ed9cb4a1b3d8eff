//! `orch gc`: real boards with done, landed, blocked, deleted and running
//! tickets; what goes, what stays, and that no commit is ever lost.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::env::{TestEnv, stdout, wait_for};

/// Done tickets commit their own file; `stuck` and `byhand` fail (leaving
/// a file), so their worktrees stay.
const AGENT: &str = r#"
case "$ORCH_TICKET" in
  stuck|byhand) echo half > half.txt; exit 1 ;;
esac
echo "$ORCH_TICKET" > "$ORCH_TICKET.txt"
git add -A
git commit -q -m "work of $ORCH_TICKET"
"#;

fn ticket(env: &TestEnv, id: &str, extra: &str) {
    env.write_ticket(
        "todo",
        id,
        &format!("---\ntitle: Ticket {id}\n{extra}---\nDo {id}.\n"),
    );
}

fn gc(env: &TestEnv, args: &[&str]) -> String {
    let out = env.orch().arg("gc").args(args).output().expect("gc runs");
    assert!(
        out.status.success(),
        "gc failed: {}\n{}",
        stdout(&out),
        crate::env::stderr(&out)
    );
    stdout(&out)
}

fn refs(env: &TestEnv) -> String {
    env.git(&["for-each-ref", "--format=%(refname) %(objectname)"])
}

fn tip(env: &TestEnv, name: &str) -> String {
    env.git(&["rev-parse", name]).trim().to_string()
}

fn branch_exists(env: &TestEnv, name: &str) -> bool {
    !env.git(&["branch", "--list", name]).trim().is_empty()
}

/// Every commit reachable from a ref or a worktree's HEAD.
fn reachable(env: &TestEnv) -> BTreeSet<String> {
    env.git(&["rev-list", "--all"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn unreachable_commits(env: &TestEnv) -> BTreeSet<String> {
    env.git(&["fsck", "--unreachable", "--no-reflogs", "--no-progress"])
        .lines()
        .filter_map(|l| l.strip_prefix("unreachable commit "))
        .map(str::to_string)
        .collect()
}

/// Set the modification time of everything under `path` to `days` ago.
fn age(path: &Path, days: u64) {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "find \"$1\" -exec touch -h -d @$(( $(date +%s) - {} )) {{}} +",
            days * 86400
        ))
        .arg("sh")
        .arg(path)
        .status()
        .expect("touch runs");
    assert!(status.success());
}

/// Every file under orch's directories with its size, and every ref: what
/// `--dry-run` must leave as it was. The board cache is left out: reading
/// the board refreshes it, as `orch status` does.
fn snapshot(env: &TestEnv) -> (String, BTreeSet<(PathBuf, u64)>) {
    fn walk(dir: &Path, out: &mut BTreeSet<(PathBuf, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if path.ends_with("cache") {
                continue;
            }
            if meta.is_dir() {
                walk(&path, out);
            } else {
                out.insert((path, meta.len()));
            }
        }
    }
    let mut files = BTreeSet::new();
    walk(&env.repo.join(".orch/worktrees"), &mut files);
    walk(&env.repo.join(".git/orch/logs"), &mut files);
    walk(&env.repo.join(".git/orch/state"), &mut files);
    (refs(env), files)
}

/// A board with one of each: `landed` (done, on main), `byhand` (blocked,
/// then moved to done by a person, with a fix of theirs uncommitted in
/// its worktree), `stuck` (blocked, its logs old), and `gone` (no ticket,
/// a branch 40 days old whose commit no other ref has).
fn board_with_litter() -> (TestEnv, String) {
    let env = TestEnv::new();
    env.ready(AGENT, "land: merge\nmax_attempts: 1");
    ticket(&env, "landed", "");
    ticket(&env, "byhand", "");
    ticket(&env, "stuck", "");
    let out = env.tick_ok();
    assert_eq!(env.state_of("landed"), "done", "{out}");
    assert_eq!(env.state_of("byhand"), "blocked", "{out}");
    assert_eq!(env.state_of("stuck"), "blocked", "{out}");
    let byhand = env.repo.join(".orch/worktrees/byhand");
    assert!(
        byhand.join(".git").exists(),
        "a failed attempt keeps its worktree"
    );
    std::fs::write(byhand.join("person.txt"), "a fix of mine\n").unwrap();
    std::fs::rename(
        env.ticket_path("blocked", "byhand"),
        env.ticket_path("done", "byhand"),
    )
    .unwrap();

    let tree = env.git(&["rev-parse", "main^{tree}"]);
    let main = tip(&env, "main");
    let mut cmd = std::process::Command::new("git");
    env.apply_env(&mut cmd);
    let old = format!("@{} +0000", now_secs() - 40 * 86400);
    let commit = cmd
        .current_dir(&env.repo)
        .args([
            "commit-tree",
            tree.trim(),
            "-p",
            &main,
            "-m",
            "work of a deleted ticket",
        ])
        .env("GIT_COMMITTER_DATE", &old)
        .env("GIT_AUTHOR_DATE", &old)
        .output()
        .expect("commit-tree");
    assert!(commit.status.success());
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_string();
    env.git(&["branch", "orch/gone", &commit]);

    for id in ["landed", "stuck"] {
        age(&env.repo.join(".git/orch/logs").join(id), 40);
        age(&env.repo.join(".git/orch/state").join(id), 40);
    }
    (env, commit)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn gc_removes_what_finished_tickets_left_and_never_the_only_copy_of_a_commit() {
    let (env, gone_commit) = board_with_litter();
    let landed_tip = tip(&env, "orch/landed");
    let stuck_tip = tip(&env, "orch/stuck");
    let before = reachable(&env);
    let unreachable_before = unreachable_commits(&env);
    let landed_log = std::fs::read_to_string(env.repo.join(".git/orch/logs/landed/1.log")).unwrap();

    let out = gc(&env, &[]);

    // What goes.
    assert!(
        out.contains("removed branch orch/landed (landed on main)"),
        "{out}"
    );
    assert!(!branch_exists(&env, "orch/landed"), "{out}");
    assert!(
        out.contains("removed worktree .orch/worktrees/byhand (done"),
        "{out}"
    );
    assert!(!env.repo.join(".orch/worktrees/byhand").exists(), "{out}");
    assert!(
        out.contains("removed branch orch/gone (not on the board for 40d)"),
        "{out}"
    );
    assert!(!branch_exists(&env, "orch/gone"), "{out}");
    assert!(out.contains("removed logs .git/orch/logs/landed"), "{out}");
    assert!(!env.repo.join(".git/orch/logs/landed").exists(), "{out}");
    // The full log existed nowhere else: it is kept on a ref, and said.
    assert!(
        out.contains("kept compressed as refs/orch/kept/landed/gc-logs"),
        "{out}"
    );
    assert_eq!(
        env.git(&["show", "refs/orch/kept/landed/gc-logs:1.log"]),
        landed_log
    );
    assert!(
        out.contains("removed run state .git/orch/state/landed"),
        "{out}"
    );
    assert!(out.contains("freed "), "{out}");

    // What stays: a blocked ticket whatever its age, a done ticket's
    // branch that never landed, within retention.
    assert!(
        env.repo.join(".orch/worktrees/stuck/.git").exists(),
        "{out}"
    );
    assert_eq!(tip(&env, "orch/stuck"), stuck_tip);
    assert!(env.repo.join(".git/orch/logs/stuck").exists(), "{out}");
    assert!(branch_exists(&env, "orch/byhand"), "{out}");
    assert!(!out.contains("stuck"), "{out}");

    // The person's uncommitted fix is kept on a ref, and said.
    let kept = env.git(&[
        "for-each-ref",
        "--format=%(refname)",
        "refs/orch/kept/byhand/",
    ]);
    let kept = kept
        .lines()
        .find(|l| l.contains("/gc-"))
        .unwrap_or_else(|| {
            panic!("no gc-kept ref for byhand: {kept}\n{out}");
        });
    assert!(out.contains(kept), "{out}");
    assert_eq!(
        env.git(&["show", &format!("{kept}:person.txt")]),
        "a fix of mine\n"
    );

    // The deleted ticket's commit is kept, and named.
    let gone_kept = format!("refs/orch/kept/gone/gc-{}", &gone_commit[..12]);
    assert!(out.contains(&gone_kept), "{out}");
    assert_eq!(tip(&env, &gone_kept), gone_commit);

    // Each removed branch's old tip is on another ref.
    for old in [&landed_tip, &gone_commit] {
        let holders = env.git(&["for-each-ref", "--contains", old]);
        assert!(!holders.trim().is_empty(), "{old} is on no ref\n{out}");
    }
    // Nothing reachable before became unreachable.
    let after = reachable(&env);
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(lost.is_empty(), "commits lost: {lost:?}\n{out}");
    let newly: Vec<_> = unreachable_commits(&env)
        .difference(&unreachable_before)
        .cloned()
        .collect();
    assert!(newly.is_empty(), "unreachable after gc: {newly:?}\n{out}");

    // A second gc finds nothing more.
    let again = gc(&env, &[]);
    assert!(!again.contains("removed"), "{again}");
    assert!(again.contains("freed 0 bytes"), "{again}");
}

#[test]
fn dry_run_says_what_gc_would_do_and_changes_nothing() {
    let (env, _) = board_with_litter();
    let before = snapshot(&env);
    let dry = gc(&env, &["--dry-run"]);
    assert_eq!(snapshot(&env), before, "{dry}");
    assert!(dry.contains("would remove branch orch/gone"), "{dry}");
    assert!(
        dry.contains("would be kept on refs/orch/kept/byhand/"),
        "{dry}"
    );
    assert!(dry.contains("would free "), "{dry}");

    let out = gc(&env, &[]);
    let said = |text: &str, verb: &str| -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(verb))
            // Worktrees are measured as they are then; the name and reason
            // must be the same.
            .map(|l| l.split(", ").next().unwrap_or(l).to_string())
            .collect()
    };
    let would = said(&dry, "would remove ");
    assert!(would.len() >= 5, "{dry}");
    assert_eq!(would, said(&out, "removed "), "{dry}\n---\n{out}");
}

#[test]
fn a_done_branch_that_never_landed_goes_after_retention_kept_on_a_ref() {
    let env = TestEnv::new();
    env.ready(AGENT, "land: none\nretention: 0s");
    ticket(&env, "kept", "");
    let out = env.tick_ok();
    assert_eq!(env.state_of("kept"), "done", "{out}");
    let old = tip(&env, "orch/kept");
    assert!(
        !env.git(&["branch", "--contains", &old, "main"])
            .contains("main"),
        "the test needs work main lacks"
    );
    let out = gc(&env, &[]);
    assert!(out.contains("removed branch orch/kept (done for"), "{out}");
    assert!(!branch_exists(&env, "orch/kept"), "{out}");
    let kept = format!("refs/orch/kept/kept/gc-{}", &old[..12]);
    assert!(out.contains(&kept), "{out}");
    assert_eq!(tip(&env, &kept), old);
}

#[test]
fn a_running_tickets_worktree_and_branch_are_untouched() {
    let env = TestEnv::new();
    let started = env.flag("started");
    let release = env.flag("release");
    env.ready(
        &format!(
            "echo mine > mine.txt\ntouch '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done",
            started.display(),
            release.display()
        ),
        "retention: 0s",
    );
    ticket(&env, "busy", "");
    let mut tick = env.spawn_tick();
    wait_for(&started);
    let worktree = env.repo.join(".orch/worktrees/busy");
    let branch = tip(&env, "orch/busy");
    age(&env.repo.join(".git/orch/logs/busy"), 40);

    let out = gc(&env, &[]);

    assert!(!out.contains("busy"), "{out}");
    assert_eq!(
        std::fs::read_to_string(worktree.join("mine.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(tip(&env, "orch/busy"), branch);
    assert!(env.repo.join(".git/orch/logs/busy").exists(), "{out}");
    std::fs::write(&release, "").unwrap();
    let status = tick.wait().expect("tick ends");
    assert!(status.success());
    assert_eq!(env.state_of("busy"), "done");
}

#[test]
fn doctor_names_what_gc_would_collect_as_a_note_and_forgets_it_after_gc() {
    let (env, _) = board_with_litter();
    let doctor = |env: &TestEnv| -> serde_json::Value {
        let out = env.orch().args(["doctor", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{v}");
        v
    };
    let find = |v: &serde_json::Value, check: &str| -> Option<serde_json::Value> {
        v["findings"]
            .as_array()?
            .iter()
            .find(|f| f["check"] == check)
            .cloned()
    };
    let v = doctor(&env);
    let gc_note = find(&v, "gc").unwrap_or_else(|| panic!("no gc finding: {v}"));
    assert_eq!(gc_note["severity"], "info", "{v}");
    let what = gc_note["what"].as_str().unwrap_or_default();
    assert!(
        what.contains("1 worktree") && what.contains("2 branches"),
        "{v}"
    );
    assert!(
        gc_note["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("orch gc"),
        "{v}"
    );
    let disk = find(&v, "disk").unwrap_or_else(|| panic!("no disk finding: {v}"));
    assert!(
        disk["what"]
            .as_str()
            .unwrap_or_default()
            .contains("ticket worktrees"),
        "{v}"
    );

    gc(&env, &[]);
    let v = doctor(&env);
    assert!(find(&v, "gc").is_none(), "{v}");
    assert!(
        find(&v, "disk").is_some(),
        "the blocked ticket's worktree stays: {v}"
    );
}
