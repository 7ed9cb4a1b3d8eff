//! The board cache (`.git/orch/cache/board-<state>`): advisory, exact,
//! invisible.
//!
//! These tests set `ORCH_CACHE_SETTLE_MS=0`, so files they have just
//! written are cached at once and the file identity alone decides.

use crate::env::{TestEnv, stdout};

fn cache_dir(env: &TestEnv) -> std::path::PathBuf {
    env.repo.join(".git/orch/cache")
}

fn cache_path(env: &TestEnv) -> std::path::PathBuf {
    cache_dir(env).join("board-todo")
}

/// Each state's cache file and when it was last written.
fn cache_files(env: &TestEnv) -> Vec<(String, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(cache_dir(env))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().modified().unwrap())
        })
        .collect();
    out.sort();
    out
}

/// `orch status --json` with the cache taking files as soon as written.
fn status_text(env: &TestEnv) -> String {
    let out = env
        .orch()
        .env("ORCH_CACHE_SETTLE_MS", "0")
        .args(["status", "--json"])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", crate::env::stderr(&out));
    // The one field that moves with the clock.
    let mut v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    for t in v["in_progress"].as_array_mut().into_iter().flatten() {
        t["elapsed_secs"] = serde_json::Value::Null;
    }
    serde_json::to_string_pretty(&v).expect("JSON")
}

fn titles(text: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
    let mut out: Vec<String> = ["ready", "waiting", "blocked", "done"]
        .iter()
        .flat_map(|s| v[*s].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["title"].as_str().map(str::to_string))
        .collect();
    out.sort();
    out
}

/// Write `text` in place (the same inode if the file exists) and set its
/// modification time to `mtime`.
fn write_with_mtime(path: &std::path::Path, text: &str, mtime: std::time::SystemTime) {
    std::fs::write(path, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

#[test]
fn an_edit_that_keeps_the_size_and_puts_the_mtime_back_is_seen() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0001-a", "---\ntitle: Alpha\n---\nBody.\n");
    // Adopted, then read into the cache.
    assert_eq!(titles(&status_text(&env)), ["Alpha"]);
    assert_eq!(titles(&status_text(&env)), ["Alpha"]);
    assert!(cache_path(&env).exists(), "the board was cached");

    // In place (same inode), same size, and the modification time put
    // back to the nanosecond: only the change time tells.
    let path = env.ticket_path("todo", "0001-a");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    write_with_mtime(&path, "---\ntitle: Omega\n---\nBody.\n", mtime);
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    assert_eq!(titles(&status_text(&env)), ["Omega"]);

    // Replaced by another file of the same size and times: a new inode.
    let other = env.dir.path().join("other.md");
    write_with_mtime(&other, "---\ntitle: Delta\n---\nBody.\n", mtime);
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(titles(&status_text(&env)), ["Delta"]);
}

#[test]
fn a_file_written_just_now_is_read_not_trusted_to_its_identity() {
    // Without the override, nothing changed in the last two seconds is
    // cached: an edit inside the file system's clock tick cannot hide.
    let env = TestEnv::new();
    env.init();
    env.write_ticket("todo", "0001-a", "---\ntitle: Alpha\n---\n");
    env.status();
    let path = env.ticket_path("todo", "0001-a");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    write_with_mtime(&path, "---\ntitle: Omega\n---\n", mtime);
    let v = env.status();
    assert_eq!(v["ready"][0]["title"], "Omega");
}

#[test]
fn deleting_or_garbling_the_cache_changes_no_result() {
    let env = TestEnv::new();
    env.init();
    env.write_ticket(
        "todo",
        "0001-a",
        "---\ntitle: A\npriority: 2\ndepends_on: [0002-b]\nagent: {command: [sh, -c, 'true'], env: {X: \"1\"}}\ntimeout: 5m\nland: {command: [echo, hi]}\n---\nBody.\n",
    );
    env.write_ticket("todo", "0002-b", "---\ntitle: B\n---\n");
    env.write_ticket("todo", "0003-broken", "---\ntitle: [unclosed\n---\n");
    // Every kind of log line orch writes, from the first release's board.
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/board-v1/tickets");
    for state in ["todo", "in-progress", "done", "blocked"] {
        for e in std::fs::read_dir(fixture.join(state)).unwrap() {
            let e = e.unwrap();
            let to = env.plan().join("tickets").join(state).join(e.file_name());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(e.path(), to).unwrap();
        }
    }
    env.write_ticket("blocked", "0005-x", "---\ntitle: X\n---\n");
    env.write_plan_file("tickets/todo/notes.txt", "not a ticket\n");

    let first = status_text(&env);
    let cached = status_text(&env);
    assert_eq!(first, cached);
    let written = cache_files(&env);
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    // `status` keeps done tickets as summaries, in a cache of their own.
    for name in ["todo", "in-progress", "done-summary", "blocked"] {
        assert!(
            names.contains(&format!("board-{name}").as_str()),
            "{names:?}"
        );
    }
    // Every file was a hit: no cache was written again.
    let again = status_text(&env);
    assert_eq!(again, first);
    assert_eq!(
        cache_files(&env),
        written,
        "a board read with nothing changed rewrote the cache"
    );

    std::fs::remove_dir_all(cache_dir(&env)).unwrap();
    assert_eq!(status_text(&env), first, "without the cache");

    for garbage in [
        &b""[..],
        b"orch-board-cache",
        b"\xff\xfe\x00garbage\n\x01\x02",
    ] {
        for (name, _) in cache_files(&env) {
            std::fs::write(cache_dir(&env).join(name), garbage).unwrap();
        }
        assert_eq!(status_text(&env), first, "with a garbled cache");
    }
    // And it was written anew.
    let rebuilt = std::fs::read(cache_path(&env)).unwrap();
    assert!(rebuilt.starts_with(b"orch-board-cache "), "rebuilt");

    // A cache cut short anywhere gives the same answer.
    for cut in [20, rebuilt.len() / 3, rebuilt.len() / 2, rebuilt.len() - 1] {
        std::fs::write(cache_path(&env), &rebuilt[..cut]).unwrap();
        assert_eq!(status_text(&env), first, "with a cache cut at {cut}");
    }
}

#[test]
fn a_tick_decides_from_the_files_not_the_cache() {
    // The cache says todo; a person moved the file to blocked meanwhile.
    let env = TestEnv::new();
    env.init();
    let agent = env.agent("touch", "echo x > done.txt\n");
    env.configure(&agent, "");
    env.write_ticket("todo", "0001-a", "---\ntitle: A\n---\n");
    status_text(&env);
    status_text(&env);
    std::fs::create_dir_all(env.plan().join("tickets/blocked")).unwrap();
    std::fs::rename(
        env.ticket_path("todo", "0001-a"),
        env.ticket_path("blocked", "0001-a"),
    )
    .unwrap();
    let out = env
        .orch()
        .env("ORCH_CACHE_SETTLE_MS", "0")
        .arg("tick")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::env::stderr(&out));
    assert_eq!(env.state_of("0001-a"), "blocked");
    assert!(!env.dir.path().join("repo/done.txt").exists());
}

#[test]
fn status_sees_each_change_to_done_tickets_through_their_summary_cache() {
    // `status` holds done tickets as summaries, cached apart from whole
    // tickets. Each change below must show, from the cache and without it.
    let env = TestEnv::new();
    env.init();
    for (id, title) in [
        ("0001-a", "Alpha"),
        ("0002-b", "Bravo"),
        ("0003-c", "Charlie"),
    ] {
        env.write_ticket("done", id, &format!("---\ntitle: {title}\n---\nBody.\n"));
    }
    assert_eq!(titles(&status_text(&env)), ["Alpha", "Bravo", "Charlie"]);
    let first = status_text(&env);
    let done_cache = cache_dir(&env).join("board-done-summary");
    assert!(done_cache.exists(), "done tickets were cached");

    // One gone, one edited in place with its times put back, one new.
    std::fs::remove_file(env.ticket_path("done", "0001-a")).unwrap();
    let path = env.ticket_path("done", "0003-c");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    write_with_mtime(&path, "---\ntitle: Chaplin\n---\nBody.\n", mtime);
    env.write_ticket("done", "0004-d", "---\ntitle: Delta\n---\nBody.\n");
    let expected = ["Bravo", "Chaplin", "Delta"];
    let changed = status_text(&env);
    assert_eq!(titles(&changed), expected);
    // Read back from the rewritten cache, then with no cache at all.
    let cached = status_text(&env);
    assert_eq!(cached, changed);
    std::fs::remove_dir_all(cache_dir(&env)).unwrap();
    assert_eq!(status_text(&env), changed);
    assert_ne!(first, changed);
}
