//! Durable across power loss: every file orch (or the git it runs) puts in
//! place for the board, a ref or a result is synced before the rename that
//! publishes it, and orch syncs the directory after. Power loss cannot be
//! staged in a test, so this one watches the system calls of a real tick
//! with strace, process by process, and checks their order.

use std::collections::HashMap;
use std::path::Path;

use crate::env::TestEnv;

/// One traced process: its system calls in order, one per line.
struct Proc {
    lines: Vec<String>,
}

fn strace_available() -> bool {
    let ok = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("ORCH_TEST_REQUIRE_STRACE").is_none(),
            "strace is not installed, and the test is required"
        );
        eprintln!("skipped: strace is not installed");
    }
    ok
}

/// The string arguments of a traced call, in order.
fn quoted(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        out.push(after[..end].to_string());
        rest = &after[end + 1..];
    }
    out
}

fn call(line: &str) -> &str {
    line.split('(').next().unwrap_or("")
}

/// The fd a call returned (`... = 5`), or the fd it takes as its first argument.
fn returned_fd(line: &str) -> Option<i64> {
    line.rsplit_once(" = ")?
        .1
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn first_arg_fd(line: &str) -> Option<i64> {
    let inner = line.split_once('(')?.1;
    inner
        .split([',', ')'])
        .next()?
        .trim()
        .split('<')
        .next()?
        .parse()
        .ok()
}

fn opened_path(line: &str) -> Option<String> {
    match call(line) {
        "openat" | "open" | "creat" => quoted(line).into_iter().next(),
        _ => None,
    }
}

/// Whether `fd`, opened at line `from` of `p`, is synced before line `to`
/// (and not closed first).
fn synced_between(p: &Proc, fd: i64, from: usize, to: usize) -> bool {
    for line in &p.lines[from + 1..to] {
        match call(line) {
            "fsync" | "fdatasync" if first_arg_fd(line) == Some(fd) => return true,
            "close" if first_arg_fd(line) == Some(fd) => return false,
            _ => {}
        }
    }
    false
}

/// Whether the directory `dir` is opened and synced after line `from`.
fn dir_synced_after(p: &Proc, dir: &str, from: usize) -> bool {
    p.lines.iter().enumerate().skip(from + 1).any(|(i, line)| {
        opened_path(line).is_some_and(|path| path.trim_end_matches('/') == dir)
            && returned_fd(line)
                .is_some_and(|fd| fd >= 0 && synced_between(p, fd, i, p.lines.len()))
    })
}

fn parent(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn what_the_board_refs_and_results_depend_on_is_synced_before_it_is_published() {
    if !strace_available() {
        return;
    }
    let env = TestEnv::new();
    // The agent leaves work uncommitted: orch commits it with git.
    env.ready("echo done > work.txt", "");
    env.write_ticket("todo", "t1", "---\ntitle: one\n---\nDo it.\n");
    env.orch().arg("status").assert().success();

    let traces = env.dir.path().join("trace");
    std::fs::create_dir_all(&traces).expect("trace dir");
    let mut cmd = std::process::Command::new("strace");
    env.apply_env(&mut cmd);
    let out = cmd
        .current_dir(&env.repo)
        .args(["-f", "-ff", "-qq", "-s", "4096", "-o"])
        .arg(traces.join("t"))
        .arg("-e")
        .arg("trace=execve,open,openat,creat,close,fsync,fdatasync,rename,renameat,renameat2,link,linkat")
        .arg(assert_cmd::cargo::cargo_bin!("orch"))
        .arg("tick")
        .output()
        .expect("strace runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.state_of("t1"), "done");

    let git_dir = env.repo.join(".git").to_string_lossy().into_owned();
    let plan_tickets = env.plan().join("tickets").to_string_lossy().into_owned();
    let orch_bin = assert_cmd::cargo::cargo_bin!("orch")
        .to_string_lossy()
        .into_owned();
    let mut procs = HashMap::new();
    for entry in std::fs::read_dir(&traces).expect("traces") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("trace");
        procs.insert(
            path.display().to_string(),
            Proc {
                lines: text.lines().map(str::to_string).collect(),
            },
        );
    }

    let mut problems = Vec::new();
    let mut checked: HashMap<&str, usize> = HashMap::new();
    for (name, p) in &procs {
        // Which program is running changes at each execve.
        let mut program = String::from("orch");
        for (i, line) in p.lines.iter().enumerate() {
            if call(line) == "execve" && !line.contains("= -1") {
                let exe = quoted(line).into_iter().next().unwrap_or_default();
                program = if exe == orch_bin { "orch".into() } else { exe };
                continue;
            }
            if !matches!(
                call(line),
                "rename" | "renameat" | "renameat2" | "link" | "linkat"
            ) {
                continue;
            }
            let args = quoted(line);
            let (Some(src), Some(dst)) = (args.first(), args.get(1)) else {
                continue;
            };
            if line.contains("= -1") {
                continue;
            }
            let is_git = program.ends_with("/git");
            let kind = if dst.starts_with(&format!("{git_dir}/objects/")) {
                "object"
            } else if dst.starts_with(&format!("{git_dir}/refs/")) {
                "ref"
            } else if !is_git && dst.starts_with(&plan_tickets) {
                "ticket file"
            } else if !is_git && dst.starts_with(&format!("{git_dir}/orch/cache/")) {
                // The board cache is advisory: a torn one is rebuilt, and
                // deleting it changes no result, so it is not synced.
                continue;
            } else if !is_git && dst.starts_with(&format!("{git_dir}/orch/")) {
                "orch record"
            } else {
                continue;
            };
            let who = if is_git { "git" } else { "orch" };
            // A file this process wrote (not one it only read, a ticket
            // being moved) must be synced before it is put in place.
            let opened = p.lines[..i].iter().enumerate().rev().find(|(_, l)| {
                opened_path(l).as_deref() == Some(src.as_str())
                    && (call(l) == "creat" || l.contains("O_WRONLY") || l.contains("O_RDWR"))
            });
            if let Some((at, open_line)) = opened {
                match returned_fd(open_line) {
                    Some(fd) if fd >= 0 && synced_between(p, fd, at, i) => {}
                    _ => problems.push(format!(
                        "{who} put {dst} in place before syncing it ({name}: {line})"
                    )),
                }
            }
            // orch then syncs the directory, so the new name survives too
            // (git's own commits keep git's guarantee, as `git commit` would).
            if !is_git && !dir_synced_after(p, &parent(dst), i) {
                problems.push(format!(
                    "orch did not sync the directory of {dst} after {line} ({name})"
                ));
            }
            *checked.entry(kind).or_default() += 1;
            if is_git {
                *checked.entry("by git").or_default() += 1;
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The check cannot pass by seeing nothing: each kind of write was seen.
    for kind in ["object", "ref", "ticket file", "orch record", "by git"] {
        assert!(
            checked.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} write was traced: {checked:?}"
        );
    }
}
