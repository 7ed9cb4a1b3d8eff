//! Hostile input: broken tickets, odd names, symlinks, cycles, a broken
//! orch.yaml, a full disk. Each gets a clear message; nothing else suffers.

use std::path::Path;

use crate::env::{TestEnv, stderr, stdout};

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn ready(env: &TestEnv) {
    env.init();
    let agent = env.agent("agent", "echo ok > \"ran-$ORCH_TICKET.txt\"");
    env.configure(&agent, "");
    env.write_ticket(
        "todo",
        "good",
        "---\ntitle: The good ticket\n---\nStill runs.\n",
    );
}

/// Problems of `orch status --json` as "path:line: message (hint)" lines.
fn invalid(env: &TestEnv) -> Vec<String> {
    let status = env.status();
    status["invalid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p["hint"].is_string(), "every error has a hint: {p}");
            format!(
                "{}:{}: {}",
                p["path"].as_str().unwrap(),
                p["line"],
                p["message"].as_str().unwrap()
            )
        })
        .collect()
}

fn has(lines: &[String], needle: &str) {
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "missing {needle:?} in {lines:#?}"
    );
}

fn good_ticket_runs(env: &TestEnv) {
    let out = env
        .orch()
        .args(["tick", "--ticket", "good"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(env.state_of("good"), "done", "{}", stdout(&out));
}

#[test]
fn the_committed_corpus() {
    let env = TestEnv::new();
    ready(&env);
    for entry in std::fs::read_dir(corpus()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        std::fs::copy(
            entry.path(),
            env.ticket_path("todo", name.trim_end_matches(".md")),
        )
        .unwrap();
    }
    let start = std::time::Instant::now();
    let lines = invalid(&env);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "a YAML bomb must not hang orch"
    );
    has(&lines, "tickets/todo/yaml-bomb.md:");
    has(
        &lines,
        "tickets/todo/duplicate-keys.md:4: invalid front matter: duplicate mapping key",
    );
    has(
        &lines,
        "tickets/todo/never-closes.md:1: the front matter never closes",
    );
    has(
        &lines,
        "tickets/todo/no-front-matter.md:1: the file has no front matter",
    );
    has(
        &lines,
        "tickets/todo/wrong-types.md:3: invalid front matter",
    );
    has(
        &lines,
        "tickets/todo/title-is-a-map.md:2: invalid front matter",
    );
    good_ticket_runs(&env);
}

#[test]
fn bytes_sizes_and_nesting() {
    let env = TestEnv::new();
    ready(&env);
    std::fs::write(
        env.ticket_path("todo", "utf8"),
        b"---\ntitle: ok\n---\nline\n\xc3\x28 bad\n",
    )
    .unwrap();
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(env.ticket_path("todo", "junk"), junk).unwrap();
    let mut big = b"---\ntitle: Big\n---\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 10 << 20));
    std::fs::write(env.ticket_path("todo", "big"), big).unwrap();
    let deep = format!(
        "---\ntitle: Deep\nverify: {}{}\n---\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    std::fs::write(env.ticket_path("todo", "deep"), deep).unwrap();
    std::fs::write(env.ticket_path("todo", "empty"), b"").unwrap();
    let lines = invalid(&env);
    has(
        &lines,
        "tickets/todo/utf8.md:5: the file is not valid UTF-8",
    );
    has(&lines, "tickets/todo/junk.md:");
    has(
        &lines,
        "tickets/todo/big.md:null: the file is larger than 4194304 bytes",
    );
    has(&lines, "tickets/todo/deep.md:");
    has(
        &lines,
        "tickets/todo/empty.md:1: the file has no front matter",
    );
    good_ticket_runs(&env);
}

#[test]
fn names_symlinks_and_clashing_ids() {
    let env = TestEnv::new();
    ready(&env);
    let todo = env.plan().join("tickets/todo");
    for name in [
        "with space",
        "a..b",
        "ünïcode",
        "-leading",
        "plan",
        "x.lock",
        "trailing.",
    ] {
        std::fs::write(
            todo.join(format!("{name}.md")),
            "---\ntitle: Odd name\n---\n",
        )
        .unwrap();
    }
    let outside = env.dir.path().join("outside.md");
    std::fs::write(&outside, "---\ntitle: Outside the plan\n---\n").unwrap();
    std::os::unix::fs::symlink(&outside, todo.join("link.md")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", todo.join("passwd.md")).unwrap();
    env.write_ticket("todo", "clash", "---\ntitle: Clash\n---\n");
    env.write_ticket("blocked", "clash", "---\ntitle: Clash\n---\n");
    let lines = invalid(&env);
    has(
        &lines,
        "tickets/todo/with space.md:null: the ticket id `with space` contains ' '",
    );
    has(
        &lines,
        "tickets/todo/a..b.md:null: the ticket id `a..b` cannot name a git branch",
    );
    has(
        &lines,
        "tickets/todo/ünïcode.md:null: the ticket id `ünïcode` contains 'ü'",
    );
    has(
        &lines,
        "tickets/todo/-leading.md:null: the ticket id `-leading` must start with a letter or digit",
    );
    has(
        &lines,
        "tickets/todo/plan.md:null: the ticket id `plan` is reserved",
    );
    has(
        &lines,
        "tickets/todo/x.lock.md:null: the ticket id `x.lock` cannot name a git branch",
    );
    has(
        &lines,
        "tickets/todo/trailing..md:null: the ticket id `trailing.` cannot name a git branch",
    );
    has(
        &lines,
        "tickets/todo/link.md:null: not a regular file (symlinks and directories are not followed)",
    );
    has(&lines, "tickets/todo/passwd.md:null: not a regular file");
    has(
        &lines,
        "tickets/todo/clash.md:null: the id `clash` is also used by tickets/blocked/clash.md",
    );
    good_ticket_runs(&env);
    // Nothing was created outside .orch for any of them.
    let branches = env.git(&["branch", "--list", "orch/*"]);
    assert_eq!(
        branches.lines().count(),
        2,
        "only orch/plan and orch/good: {branches}"
    );
}

#[test]
fn dependency_cycles_of_length_one_to_fifty() {
    let env = TestEnv::new();
    ready(&env);
    for len in 1..=50usize {
        for i in 0..len {
            let id = format!("c{len}-{i}");
            let next = format!("c{len}-{}", (i + 1) % len);
            env.write_ticket(
                "todo",
                &id,
                &format!("---\ntitle: Cycle\ndepends_on: [{next}]\n---\n"),
            );
        }
    }
    let lines = invalid(&env);
    has(
        &lines,
        "tickets/todo/c1-0.md:3: dependency cycle: c1-0 -> c1-0",
    );
    has(&lines, "dependency cycle: c2-0 -> c2-1 -> c2-0");
    let fifty: Vec<String> = (0..50)
        .map(|i| format!("c50-{i}"))
        .chain(["c50-0".into()])
        .collect();
    has(&lines, &format!("dependency cycle: {}", fifty.join(" -> ")));
    assert_eq!(env.status()["counts"]["invalid"], (1..=50).sum::<usize>());
    good_ticket_runs(&env);
}

#[test]
fn a_broken_orch_yaml_stops_the_tick_with_its_line() {
    let env = TestEnv::new();
    ready(&env);
    std::fs::write(
        env.plan().join("orch.yaml"),
        "base: main\nmax_in_progress: [2]\ncolour: blue\n",
    )
    .unwrap();
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains(".orch/plan/orch.yaml:2: "), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(env.state_of("good"), "todo", "nothing claimed");
    std::fs::write(
        env.plan().join("orch.yaml"),
        "base: main\ncolour: blue\nagent: {command: [\"true\"]}\n",
    )
    .unwrap();
    let out = env.tick();
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("unknown key `colour` is ignored"),
        "{}",
        stdout(&out)
    );
}

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_logs_does_not_stop_a_run() {
    let env = TestEnv::new();
    env.init();
    let agent = env.agent(
        "agent",
        "head -c 1000000 /dev/zero | tr '\\0' q\necho\necho still here\necho > out.txt",
    );
    env.configure(&agent, "");
    env.write_ticket("todo", "full", "---\ntitle: Full disk\n---\n");
    let logs = env.repo.join(".git/orch/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&logs)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root): {other:?}");
            return;
        }
    }
    let _mount = Mount(logs.clone());
    let out = env.tick();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(env.state_of("full"), "done", "{}", stdout(&out));
    let summary = std::fs::read_to_string(env.plan().join("runs/full/1.md")).unwrap();
    assert!(
        summary.contains("still here"),
        "the tail survives a full disk: {summary}"
    );
}

#[test]
fn ticket_text_never_reaches_a_shell_and_ids_never_leave_orch() {
    let env = TestEnv::new();
    env.init();
    let marker = env.dir.path().join("pwned");
    let agent = env.agent("agent", "cat > prompt.txt");
    env.configure(&agent, "");
    let evil = format!(
        "$(touch {m}) `touch {m}` ; touch {m} | touch {m}",
        m = marker.display()
    );
    let out = env
        .orch()
        .args(["new", &evil, "--body", &evil])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().to_string();
    let out = env.tick();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!marker.exists(), "ticket text was run by a shell");
    let prompt = env.git(&["show", &format!("orch/{id}:prompt.txt")]);
    assert!(prompt.contains(&evil), "{prompt}");
    for args in [
        vec!["log", "../../../etc"],
        vec!["show", "../x"],
        vec!["abort", "../../x"],
        vec!["tick", "--ticket", "../x"],
    ] {
        env.orch().args(&args).assert().code(2);
    }
}
