//! Containment: whatever an agent does inside its run, only its own
//! worktree, its own branch and orch's record of the attempt change. Each
//! fake agent here really does the careless thing.

use std::path::Path;
use std::process::Stdio;

use crate::env::{TestEnv, stderr, stdout, wait_for};

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("X");
        state != "Z" && state != "X"
    })
}

fn read_pid(path: &Path) -> i32 {
    wait_for(path);
    // The writer may not have finished the line yet.
    for _ in 0..100 {
        if let Ok(pid) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return pid;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} holds no pid", path.display());
}

#[test]
fn a_grandchild_that_leaves_the_session_and_clears_its_environment_is_stopped() {
    let env = TestEnv::new();
    let pid_file = env.flag("escapee.pid");
    let planted = env.flag("planted");
    // A double fork into a new session with an empty environment: neither
    // the process group nor ORCH_RUN_ID finds it. It plants a file later.
    env.ready(
        &format!(
            "(setsid env -i /bin/sh -c 'echo $$ > {pid}; sleep 3; touch {planted} planted.txt' </dev/null >/dev/null 2>&1 &)\n\
             while [ ! -s {pid} ]; do sleep 0.01; done\necho work > work.txt",
            pid = pid_file.display(),
            planted = planted.display()
        ),
        "",
    );
    env.write_ticket("todo", "esc", "---\ntitle: Escape\n---\n");
    let out = env.tick_ok();
    let pid = read_pid(&pid_file);
    assert!(
        !alive(pid),
        "the escaped grandchild {pid} outlived the tick"
    );
    assert!(out.contains("esc: success (attempt 1)"), "{out}");
    let summary = std::fs::read_to_string(env.plan().join("runs/esc/1.md")).unwrap();
    assert!(
        summary.contains("process(es) the agent left running"),
        "{summary}"
    );
    std::thread::sleep(std::time::Duration::from_millis(3500));
    assert!(!planted.exists(), "the escapee ran on after the tick");
}

fn spawn_tick(env: &TestEnv) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut cmd);
    cmd.current_dir(&env.repo)
        .arg("tick")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn a_signal_settles_as_interrupted(sig: rustix::process::Signal, name: &str) {
    let env = TestEnv::new();
    // Quiet and deaf to SIGTERM: only orch's kill ends it.
    env.ready(
        &format!(
            "trap '' TERM\ntouch {}\nwhile true; do sleep 0.05; done",
            env.flag("started").display()
        ),
        "",
    );
    env.write_ticket("todo", "quiet", "---\ntitle: Quiet\n---\n");
    let child = spawn_tick(&env);
    wait_for(&env.flag("started"));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        sig,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name}: {}", stderr(&out));
    assert!(
        stdout(&out).contains("quiet: interrupted (attempt 1)"),
        "{name}: {}",
        stdout(&out)
    );
    assert_eq!(env.state_of("quiet"), "todo", "{name}");
    assert!(env.agent_processes().is_empty(), "{name}: agent left");
    assert_eq!(env.status()["ready"][0]["attempts_used"], 0, "{name}");
}

#[test]
fn sighup_to_a_tick_settles_its_tickets_as_interrupted() {
    a_signal_settles_as_interrupted(rustix::process::Signal::HUP, "SIGHUP");
}

#[test]
fn sigquit_to_a_tick_settles_its_tickets_as_interrupted() {
    a_signal_settles_as_interrupted(rustix::process::Signal::QUIT, "SIGQUIT");
}

#[test]
fn an_agent_cannot_tick_the_board_from_inside_its_run() {
    let env = TestEnv::new();
    let code = env.flag("inner-code");
    let said = env.flag("inner-said");
    env.ready(
        &format!(
            "orch tick > {said} 2>&1; echo $? > {code}\n\
             (cd / && env -u ORCH_RUN_ID orch -C \"$ORCH_WORKTREE\" tick >> {said} 2>&1; echo $? >> {code})\n\
             echo work > \"work-$ORCH_TICKET.txt\"",
            said = said.display(),
            code = code.display()
        ),
        "max_in_progress: 1",
    );
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("a: success (attempt 1)"), "{out}");
    assert_eq!(
        std::fs::read_to_string(&code).unwrap(),
        "2\n2\n",
        "{}",
        std::fs::read_to_string(&said).unwrap()
    );
    let said = std::fs::read_to_string(&said).unwrap();
    assert!(
        said.contains("`orch tick` cannot run inside the agent run"),
        "{said}"
    );
    assert!(said.contains("in a ticket's worktree"), "{said}");
    assert_eq!(env.state_of("b"), "todo", "the agent ran another ticket");
}
