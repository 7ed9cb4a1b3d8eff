//! `orch tick` with fake agents that really misbehave.

use std::process::Stdio;

use predicates::prelude::*;

use crate::env::{TestEnv, stderr, stdout, wait_for};

fn no_agent_left(env: &TestEnv) {
    let left = env.agent_processes();
    assert!(left.is_empty(), "agent processes left running: {left:?}");
}

#[test]
fn success_commits_the_work_and_removes_the_worktree() {
    let env = TestEnv::new();
    env.ready(
        "echo \"working on $ORCH_TICKET\"\necho hello > hello.txt",
        "",
    );
    env.orch()
        .args(["new", "Say hello", "-b", "Write hello.txt."])
        .assert()
        .success();
    let out = env.tick_ok();
    assert!(out.contains("0001-say-hello: success (attempt 1)"), "{out}");
    assert_eq!(env.state_of("0001-say-hello"), "done");
    assert_eq!(
        env.git(&["show", "orch/0001-say-hello:hello.txt"]),
        "hello\n"
    );
    assert!(!env.repo.join(".orch/worktrees/0001-say-hello").exists());
    assert!(!env.git(&["worktree", "list"]).contains("0001-say-hello"));
    let summary = std::fs::read_to_string(env.plan().join("runs/0001-say-hello/1.md")).unwrap();
    assert!(summary.contains("- outcome: success"), "{summary}");
    assert!(summary.contains("working on 0001-say-hello"), "{summary}");
    let msg = &env.plan_messages()[0];
    assert!(
        msg.starts_with("orch: success 0001-say-hello (attempt 1)"),
        "{msg}"
    );
    assert!(msg.contains("Orch-Outcome: success"), "{msg}");
    assert!(msg.contains("Orch-State: done"), "{msg}");
    let ticket = std::fs::read_to_string(env.ticket_path("done", "0001-say-hello")).unwrap();
    assert!(
        ticket.contains("result attempt=1") && ticket.contains("outcome=success"),
        "{ticket}"
    );
    // The user's checkout never sees the work.
    assert!(!env.repo.join("hello.txt").exists());
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert_eq!(env.plan_dirt(), "");
    no_agent_left(&env);
}

#[test]
fn the_agent_gets_its_contract() {
    let env = TestEnv::new();
    let env_file = env.flag("env.txt");
    env.ready(&format!("env | grep '^ORCH_' | sort > {}\ncat > stdin.txt\ncp \"$ORCH_PROMPT_FILE\" prompt.txt\npwd > pwd.txt\necho \"$SECRET_TOKEN\" > secret.txt", env_file.display()),
        "env_remove: [SECRET_TOKEN]\n",
    );
    env.write_ticket(
        "todo",
        "contract",
        "---\ntitle: Check the contract\n---\nThe body; $(rm -rf /) stays text.\n",
    );
    let out = env
        .orch()
        .arg("tick")
        .env("SECRET_TOKEN", "hunter2")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let show = |f: &str| env.git(&["show", &format!("orch/contract:{f}")]);
    assert!(show("stdin.txt").contains("The body; $(rm -rf /) stays text."));
    assert_eq!(show("stdin.txt"), show("prompt.txt"));
    assert!(show("pwd.txt").trim().ends_with(".orch/worktrees/contract"));
    assert_eq!(
        show("secret.txt"),
        "\n",
        "env_remove keeps the token from the agent"
    );
    let vars = std::fs::read_to_string(&env_file).unwrap();
    for v in [
        "ORCH_ATTEMPT=1",
        "ORCH_BRANCH=orch/contract",
        "ORCH_PROMPT_FILE=",
        "ORCH_RESULT_FILE=",
        "ORCH_TICKET=contract",
        "ORCH_WORKTREE=",
    ] {
        assert!(vars.contains(v), "{v} missing in {vars}");
    }
}

#[test]
fn a_failed_attempt_is_retried_from_the_branch_tip() {
    let env = TestEnv::new();
    env.ready("if [ \"$ORCH_ATTEMPT\" = 1 ]; then echo partial > part1.txt; echo 'error: tests broke' >&2; exit 3; fi\ntest -f part1.txt && echo 'continued' > part2.txt",
        "",
    );
    env.write_ticket("todo", "retry", "---\ntitle: Retry me\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("retry: failed (attempt 1): exit status 3; moved to todo"),
        "{out}"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/retry/1.md")).unwrap();
    assert!(summary.contains("error: tests broke"), "{summary}");
    // The retry prompt carries the previous outcome and output.
    let out = env.tick_ok();
    assert!(out.contains("retry: success (attempt 2)"), "{out}");
    let prompt =
        std::fs::read_to_string(env.repo.join(".git/orch/state/retry/prompt-2.md")).unwrap();
    assert!(
        prompt.contains("It ended as: failed (exit status 3)"),
        "{prompt}"
    );
    assert!(prompt.contains("error: tests broke"), "{prompt}");
    assert_eq!(env.git(&["show", "orch/retry:part1.txt"]), "partial\n");
    assert_eq!(env.git(&["show", "orch/retry:part2.txt"]), "continued\n");
}

#[test]
fn attempts_used_up_moves_the_ticket_to_blocked() {
    let env = TestEnv::new();
    env.ready("exit 1", "");
    env.write_ticket(
        "todo",
        "doomed",
        "---\ntitle: Doomed\nmax_attempts: 2\n---\n",
    );
    env.tick_ok();
    assert_eq!(env.state_of("doomed"), "todo");
    env.tick_ok();
    assert_eq!(env.state_of("doomed"), "blocked");
    let status = env.status();
    let reason = status["blocked"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("attempts used up (2 of 2)"), "{reason}");
    let out = env.tick_ok();
    assert!(
        !out.contains("claimed"),
        "a blocked ticket is not claimed again: {out}"
    );
}

#[test]
fn exit_zero_without_changes_is_no_changes() {
    let env = TestEnv::new();
    env.ready("echo looked around", "");
    env.write_ticket("todo", "idle", "---\ntitle: Idle\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("idle: no-changes (attempt 1)"), "{out}");
    assert_eq!(env.state_of("idle"), "todo");
}

#[test]
fn submit_blocked_and_done_are_honoured() {
    let env = TestEnv::new();
    env.ready("case \"$ORCH_TICKET\" in\n  ask) orch submit blocked -m 'Which license?' ;;\n  check) orch submit done -m 'already correct' ;;\nesac",
        "",
    );
    env.write_ticket("todo", "ask", "---\ntitle: Ask\n---\n");
    env.write_ticket("todo", "check", "---\ntitle: Check\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("ask"), "blocked");
    assert_eq!(env.state_of("check"), "done");
    let status = env.status();
    assert!(
        status["blocked"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("Which license?")
    );
    env.orch()
        .args(["submit", "done"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ORCH_RESULT_FILE is not set"));
}

#[test]
fn an_agent_that_commits_by_itself_succeeds() {
    let env = TestEnv::new();
    env.ready("echo a > a.txt && git add a.txt && git -c user.name=Agent -c user.email=agent@example.com commit -q -m 'agent: add a'",
        "",
    );
    env.write_ticket("todo", "selfcommit", "---\ntitle: Commit yourself\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("selfcommit"), "done");
    let log = env.git(&["log", "--format=%s", "orch/selfcommit"]);
    assert!(log.starts_with("agent: add a\n"), "{log}");
}

#[test]
fn verify_failure_and_success() {
    let env = TestEnv::new();
    env.ready("echo \"$ORCH_ATTEMPT\" > attempt.txt", "");
    env.write_ticket(
        "todo",
        "checked",
        "---\ntitle: Checked\nverify: [\"grep -q 2 attempt.txt\"]\n---\n",
    );
    let out = env.tick_ok();
    assert!(out.contains("checked: verify-failed (attempt 1)"), "{out}");
    let summary = std::fs::read_to_string(env.plan().join("runs/checked/1.md")).unwrap();
    assert!(
        summary.contains("`grep -q 2 attempt.txt`: failed (exit status 1)"),
        "{summary}"
    );
    let out = env.tick_ok();
    assert!(out.contains("checked: success (attempt 2)"), "{out}");
}

#[test]
fn a_silent_hang_is_stalled_and_killed() {
    let env = TestEnv::new();
    env.ready("echo started\nexec sleep 300", "no_output_timeout: 300ms\n");
    env.write_ticket("todo", "hang", "---\ntitle: Hang\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("hang: stalled (attempt 1): no output for 300ms"),
        "{out}"
    );
    assert_eq!(env.state_of("hang"), "todo");
    no_agent_left(&env);
}

#[test]
fn chatter_past_the_hard_timeout_is_timeout() {
    let env = TestEnv::new();
    env.ready(
        "while true; do echo still busy; sleep 0.05; done",
        "timeout: 500ms\n",
    );
    env.write_ticket("todo", "busy", "---\ntitle: Busy\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("busy: timeout (attempt 1)"), "{out}");
    no_agent_left(&env);
}

#[test]
fn ignoring_sigterm_and_forking_a_grandchild_is_survived() {
    let env = TestEnv::new();
    // The grandchild keeps stdout open and ignores SIGTERM too.
    env.ready("trap '' TERM\n(trap '' TERM; while true; do sleep 1; done) &\necho forked\nwhile true; do sleep 1; done",
        "no_output_timeout: 300ms\n",
    );
    env.write_ticket("todo", "stubborn", "---\ntitle: Stubborn\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("stubborn: stalled"), "{out}");
    let log = std::fs::read_to_string(env.repo.join(".git/orch/logs/stubborn/1.log")).unwrap();
    assert!(log.contains("forked"), "{log}");
    no_agent_left(&env);
}

#[test]
fn a_grandchild_left_behind_after_a_clean_exit_is_stopped() {
    let env = TestEnv::new();
    env.ready(
        "echo x > x.txt\n(setsid sleep 300 >/dev/null 2>&1 &)\nsleep 300 >/dev/null 2>&1 &\nexit 0",
        "",
    );
    env.write_ticket("todo", "leaky", "---\ntitle: Leaky\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("leaky"), "done");
    let summary = std::fs::read_to_string(env.plan().join("runs/leaky/1.md")).unwrap();
    assert!(summary.contains("the agent left running"), "{summary}");
    no_agent_left(&env);
}

#[test]
fn a_flood_of_output_is_drained_and_the_log_capped() {
    let env = TestEnv::new();
    env.ready(
        "head -c 20000000 /dev/zero | tr '\\0' 'y'\necho\necho done flooding\necho f > f.txt",
        "max_log_size: 1MiB\n",
    );
    env.write_ticket("todo", "flood", "---\ntitle: Flood\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("flood"), "done");
    let len = std::fs::metadata(env.repo.join(".git/orch/logs/flood/1.log"))
        .unwrap()
        .len();
    assert!(len < 1_100_000, "log is {len} bytes");
    let summary = std::fs::read_to_string(env.plan().join("runs/flood/1.md")).unwrap();
    assert!(
        summary.contains("done flooding"),
        "the tail is kept past the cap"
    );
    assert!(
        summary.len() < 16 * 1024,
        "summary is bounded: {}",
        summary.len()
    );
}

#[test]
fn a_missing_agent_program_claims_nothing_and_spends_no_attempt() {
    let env = TestEnv::new();
    env.init();
    env.configure(&env.dir.path().join("no-such-agent"), "");
    env.write_ticket("todo", "nostart", "---\ntitle: No start\n---\n");
    env.orch()
        .arg("tick")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the agent program"))
        .stderr(predicate::str::contains(
            "cannot be found or is not executable",
        ))
        .stderr(predicate::str::contains("cron runs with a short PATH"));
    assert_eq!(env.state_of("nostart"), "todo");
    assert!(
        !env.git(&["branch", "--list", "orch/nostart"])
            .contains("nostart")
    );
}

#[test]
fn a_command_that_cannot_start_leaves_no_worktree_or_branch() {
    let env = TestEnv::new();
    env.init();
    // Executable, so it is found, but its interpreter does not exist.
    let agent = env.agent("broken", "");
    std::fs::write(&agent, "#!/nonexistent/interpreter\n").unwrap();
    env.configure(&agent, "");
    env.write_ticket("todo", "nostart", "---\ntitle: No start\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("nostart: failed (attempt 1): could not start"),
        "{out}"
    );
    assert!(!env.repo.join(".orch/worktrees/nostart").exists());
    assert!(
        !env.git(&["branch", "--list", "orch/nostart"])
            .contains("nostart")
    );
    assert!(!env.git(&["worktree", "list"]).contains("nostart"));
    let status = env.status();
    assert_eq!(
        status["ready"][0]["attempts_used"], 0,
        "not the ticket's failure"
    );
}

#[test]
fn a_ticket_with_an_unknown_preset_is_invalid_and_takes_no_slot() {
    let env = TestEnv::new();
    env.ready("echo > \"f-$ORCH_TICKET\"", "max_in_progress: 1\n");
    env.write_ticket(
        "todo",
        "typo",
        "---\ntitle: Typo\npriority: 0\nagent: codx\n---\n",
    );
    env.write_ticket("todo", "fine", "---\ntitle: Fine\n---\n");
    let status = env.status();
    assert_eq!(env.ids(&status, "ready"), ["fine"]);
    let invalid = status["invalid"].to_string();
    assert!(
        invalid.contains("tickets/todo/typo.md") && invalid.contains("\"line\":4"),
        "{invalid}"
    );
    assert!(invalid.contains("unknown agent preset `codx`"), "{invalid}");
    let out = env.tick_ok();
    assert!(out.contains("fine: success"), "{out}");
}

#[test]
fn zero_timeouts_are_refused() {
    let env = TestEnv::new();
    env.ready("true", "timeout: 0s\n");
    env.orch()
        .arg("tick")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("timeout must be more than 0s"));
    env.write_ticket(
        "todo",
        "zero",
        "---\ntitle: Zero\nno_output_timeout: 0s\n---\n",
    );
    let status = env.status_of_broken_config();
    assert!(
        status["invalid"]
            .to_string()
            .contains("no_output_timeout must be more than 0s")
    );
}

#[test]
fn a_blocked_ticket_moved_back_to_todo_gets_fresh_attempts() {
    let env = TestEnv::new();
    env.ready("exit 1", "max_attempts: 2\n");
    env.write_ticket("todo", "again", "---\ntitle: Again\n---\n");
    env.tick_ok();
    env.tick_ok();
    assert_eq!(env.state_of("again"), "blocked");
    assert_eq!(env.status()["blocked"][0]["attempts_used"], 2);
    std::fs::rename(
        env.ticket_path("blocked", "again"),
        env.ticket_path("todo", "again"),
    )
    .unwrap();
    assert_eq!(env.status()["ready"][0]["attempts_used"], 0);
    let out = env.tick_ok();
    assert!(out.contains("again: failed (attempt 3)"), "{out}");
    assert!(out.contains("moved to todo"), "a fresh set of 2: {out}");
    let out = env.tick_ok();
    assert!(out.contains("attempts used up (2 of 2)"), "{out}");
}

#[test]
fn cron_output_is_quiet_about_warnings_and_a_full_board() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "max_in_progress: 1\n");
    env.write_ticket("todo", "a", "---\ntitle: A\nowner: me\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    std::fs::write(env.plan().join("tickets/todo/notes.txt"), "stray").unwrap();
    let first = env.spawn_tick();
    wait_for(&env.flag("started-a"));
    let out = env.tick();
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "",
        "nothing happened, nothing is wrong: no mail"
    );
    std::fs::write(env.flag("go"), "").unwrap();
    first.wait_with_output().unwrap();
}

#[test]
fn a_tick_whose_output_is_gone_still_settles_its_tickets() {
    let env = TestEnv::new();
    env.ready("echo > out.txt", "");
    env.write_ticket("todo", "quiet", "---\ntitle: Quiet\n---\n");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut cmd);
    let mut child = cmd
        .current_dir(&env.repo)
        .arg("tick")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(env.state_of("quiet"), "done");
}

#[test]
fn an_unknown_preset_claims_nothing() {
    let env = TestEnv::new();
    env.init();
    std::fs::write(env.plan().join("orch.yaml"), "agent: nosuchagent\n").unwrap();
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    env.orch()
        .arg("tick")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown agent preset `nosuchagent`",
        ));
    assert_eq!(env.state_of("t"), "todo");
}

/// cron's `PATH` is short, and the hint says to give the agent's absolute
/// path in `agent:`: a path is a command, or, when its file name is a
/// preset's program, that preset run as this program.
#[test]
fn an_agent_given_by_its_path_runs_as_a_command_or_as_its_program_s_preset() {
    let env = TestEnv::new();
    env.init();
    let bin = env.dir.path().join("opt/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let codex = bin.join("codex");
    std::fs::write(
        &codex,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{}'\necho codex > codex.txt\n",
            env.flag("codex-argv").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&codex, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mine = env.agent("my-agent", "echo mine > mine.txt");
    env.configure(&mine, &format!("agent: {}", codex.display()));
    env.write_ticket("todo", "preset", "---\ntitle: Preset\n---\n");
    env.write_ticket(
        "todo",
        "command",
        &format!("---\ntitle: Command\nagent: {}\n---\n", mine.display()),
    );
    let text = env.tick_ok();
    assert!(text.contains("preset: success"), "{text}");
    assert!(text.contains("command: success"), "{text}");
    let argv = std::fs::read_to_string(env.flag("codex-argv")).unwrap();
    let argv: Vec<&str> = argv.lines().collect();
    assert_eq!(argv.first(), Some(&codex.to_str().unwrap()), "{argv:?}");
    assert_eq!(argv.get(1), Some(&"exec"), "codex's command line: {argv:?}");
    assert_eq!(argv.last(), Some(&"-"), "the prompt on stdin: {argv:?}");
}

#[test]
fn explain_says_why_and_changes_nothing() {
    let env = TestEnv::new();
    env.ready("true", "max_in_progress: 1\n");
    env.write_ticket("todo", "a", "---\ntitle: A\npriority: 1\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    env.write_ticket("todo", "c", "---\ntitle: C\ndepends_on: [a]\n---\n");
    env.write_ticket("todo", "bad", "---\ntitle: [\n---\n");
    let before = env.git(&["rev-parse", "orch/plan"]);
    let out = env.orch().args(["tick", "--explain"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("would claim: ready, priority 1"), "{text}");
    assert!(
        text.contains("ready, not claimed: this tick runs 1"),
        "{text}"
    );
    assert!(text.contains("waiting on a"), "{text}");
    assert!(
        text.contains("skipped: tickets/todo/bad.md:2: invalid front matter"),
        "{text}"
    );
    assert_eq!(env.git(&["rev-parse", "orch/plan"]), before);
}

/// Seen with the first release: `--explain` reported another host's
/// expired claim as running and counted it against max_in_progress, while
/// a real tick settled it and claimed the next ticket.
#[test]
fn explain_agrees_with_the_tick_about_an_expired_claim_of_another_host() {
    let env = TestEnv::new();
    env.ready("echo done > \"f-$ORCH_TICKET\"", "max_in_progress: 1\n");
    env.write_ticket(
        "in-progress",
        "gone",
        "---\ntitle: Gone\n---\n\n<!-- orch: the lines below are appended by orch; write above this line -->\n\
         - 2026-01-01T00:00:00Z claim attempt=1 host=elsewhere lease=2026-01-01T01:00:00Z pid=1 run=1-1-1\n",
    );
    env.write_ticket("todo", "next", "---\ntitle: Next\npriority: 1\n---\n");
    let out = env.orch().args(["tick", "--explain"]).output().unwrap();
    let text = stdout(&out);
    assert!(
        text.contains("would settle as abandoned: the lease of host elsewhere expired"),
        "{text}"
    );
    assert!(text.contains("would claim: ready"), "{text}");
    let status = env.orch().arg("status").output().unwrap();
    assert!(
        stdout(&status).contains("lease expired: the next tick settles it"),
        "{}",
        stdout(&status)
    );
    let tick = env.tick_ok();
    assert!(tick.contains("gone: abandoned (attempt 1)"), "{tick}");
    assert!(tick.contains("next: claimed (attempt 1)"), "{tick}");
}

#[test]
fn every_tick_names_the_invalid_tickets_it_skips() {
    let env = TestEnv::new();
    env.ready("true", "");
    env.write_ticket("todo", "x", "---\ntitle: X\ndepends_on: [y]\n---\n");
    env.write_ticket("todo", "y", "---\ntitle: Y\ndepends_on: [x]\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("skipped: tickets/todo/x.md:3: dependency cycle: x -> y -> x"),
        "{out}"
    );
}

#[test]
fn max_in_progress_caps_claims() {
    let env = TestEnv::new();
    env.ready("echo > \"f-$ORCH_TICKET\"", "max_in_progress: 2\n");
    for id in ["a", "b", "c"] {
        env.write_ticket("todo", id, &format!("---\ntitle: {id}\n---\n"));
    }
    let out = env.tick_ok();
    assert_eq!(out.matches("claimed").count(), 2, "{out}");
    assert_eq!(env.state_of("c"), "todo");
}

/// An agent that announces itself, then waits for the test's go-ahead.
fn waiting_agent(env: &TestEnv) -> String {
    format!(
        "touch \"{dir}/started-$ORCH_TICKET\" \"{dir}/started-$ORCH_TICKET-$ORCH_ATTEMPT\"\necho \"work of $ORCH_TICKET\" > \"work-$ORCH_ATTEMPT.txt\"\nwhile [ ! -f \"{dir}/go\" ]; do sleep 0.02; done\necho finished",
        dir = env.flags_dir().display()
    )
}

#[test]
fn sigterm_to_a_tick_settles_its_tickets_as_interrupted() {
    let env = TestEnv::new();
    env.ready(&format!("trap '' TERM\n{}", waiting_agent(&env)), "");
    env.write_ticket("todo", "long", "---\ntitle: Long\n---\n");
    let child = env.spawn_tick();
    wait_for(&env.flag("started-long"));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("long: interrupted (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.state_of("long"), "todo");
    assert_eq!(
        env.git(&["show", "orch/long:work-1.txt"]),
        "work of long\n",
        "work kept"
    );
    no_agent_left(&env);
    // Interrupted attempts do not count: the next one is attempt 2 of 3 with 0 used.
    let status = env.status();
    assert_eq!(status["ready"][0]["attempts_used"], 0);
}

#[test]
fn a_killed_tick_is_reconciled_as_abandoned_by_the_next() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "");
    env.write_ticket("todo", "orphan", "---\ntitle: Orphan\n---\n");
    let mut child = env.spawn_tick();
    wait_for(&env.flag("started-orphan"));
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert_eq!(env.state_of("orphan"), "in-progress");
    assert!(
        !env.agent_processes().is_empty(),
        "the agent outlived its supervisor"
    );
    let status = env.status();
    assert_eq!(status["in_progress"][0]["supervised"], false);

    // The next tick finds the run lock free while the orphan still runs.
    let next = env.spawn_tick();
    wait_for(&env.flag("started-orphan-2"));
    std::fs::write(env.flag("go"), "").unwrap();
    let out = next.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = stdout(&out);
    assert!(out.contains("orphan: abandoned (attempt 1)"), "{out}");
    // It settled, killed the leftover, kept the work, then retried.
    assert!(out.contains("orphan: success (attempt 2)"), "{out}");
    assert_eq!(
        env.git(&["show", "orch/orphan:work-1.txt"]),
        "work of orphan\n"
    );
    assert_eq!(
        env.git(&["show", "orch/orphan:work-2.txt"]),
        "work of orphan\n"
    );
    let summary = std::fs::read_to_string(env.plan().join("runs/orphan/1.md")).unwrap();
    assert!(
        summary.contains("leftover process(es) of the run"),
        "{summary}"
    );
    assert!(
        summary.contains("committed the uncommitted work"),
        "{summary}"
    );
    no_agent_left(&env);
}

#[test]
fn overlapping_ticks_claim_different_tickets() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "max_in_progress: 4\n");
    for id in ["t1", "t2", "t3", "t4"] {
        env.write_ticket("todo", id, &format!("---\ntitle: {id}\n---\n"));
    }
    let cmd = |jobs: &str| {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
        env.apply_env(&mut c);
        c.current_dir(&env.repo)
            .args(["tick", "--jobs", jobs])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = cmd("2");
    let b = cmd("2");
    for id in ["t1", "t2", "t3", "t4"] {
        wait_for(&env.flag(&format!("started-{id}")));
    }
    std::fs::write(env.flag("go"), "").unwrap();
    let mut said = String::new();
    for c in [a, b] {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&stderr(&out));
    }
    let claims: Vec<String> = env
        .plan_messages()
        .into_iter()
        .filter(|m| m.contains("Orch-Event: claim"))
        .collect();
    assert_eq!(claims.len(), 4, "each ticket claimed exactly once");
    for id in ["t1", "t2", "t3", "t4"] {
        assert_eq!(env.state_of(id), "done", "{said}");
    }
    no_agent_left(&env);
}

#[test]
fn abort_from_another_shell_stops_the_agent() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "");
    env.write_ticket("todo", "stopme", "---\ntitle: Stop me\n---\n");
    let child = env.spawn_tick();
    wait_for(&env.flag("started-stopme"));
    env.orch()
        .args(["abort", "stopme"])
        .assert()
        .success()
        .stdout(predicate::str::contains("now in blocked"));
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("stopme: aborted (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.state_of("stopme"), "blocked");
    no_agent_left(&env);
    // A todo ticket can be aborted too; done ones cannot.
    env.write_ticket("todo", "later", "---\ntitle: Later\n---\n");
    env.orch().args(["abort", "later"]).assert().success();
    assert_eq!(env.state_of("later"), "blocked");
}

#[test]
fn a_result_for_a_ticket_moved_meanwhile_is_recorded_where_it_is() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "");
    env.write_ticket("todo", "moved", "---\ntitle: Moved\n---\n");
    let child = env.spawn_tick();
    wait_for(&env.flag("started-moved"));
    // A person pulls the ticket back while the agent runs.
    std::fs::rename(
        env.ticket_path("in-progress", "moved"),
        env.ticket_path("todo", "moved"),
    )
    .unwrap();
    std::fs::write(env.flag("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("left in todo where a person moved it"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.state_of("moved"), "todo");
    assert!(env.plan().join("runs/moved/1.md").exists());
    let show = stdout(&env.orch().args(["show", "moved"]).output().unwrap());
    assert!(!show.contains("running"), "{show}");
    assert_eq!(
        env.git(&["show", "orch/moved:work-1.txt"]),
        "work of moved\n",
        "work kept"
    );
}

#[test]
fn orch_log_prints_the_attempt_output() {
    let env = TestEnv::new();
    env.ready("echo line one\necho line two >&2\nexit 1", "");
    env.write_ticket("todo", "logged", "---\ntitle: Logged\n---\n");
    env.tick_ok();
    env.orch()
        .args(["log", "logged"])
        .assert()
        .success()
        .stdout(predicate::str::contains("line one").and(predicate::str::contains("line two")));
    env.orch().args(["log", "nothing"]).assert().code(2);
    let out = env
        .orch()
        .args(["show", "logged", "--json"])
        .output()
        .unwrap();
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["attempts"][0]["outcome"], "failed");
    assert_eq!(show["attempts"][0]["summary"], "runs/logged/1.md");
}

#[test]
fn the_plan_branch_can_override_the_prompt_template() {
    let env = TestEnv::new();
    env.ready("cat > prompt.txt", "");
    env.write_plan_file(
        "templates/prompt.md",
        "Custom prompt for {{id}} ({{title}}), attempt {{attempt}}.\n{{body}}\n",
    );
    env.write_ticket(
        "todo",
        "custom",
        "---\ntitle: Custom\n---\nDo the custom thing.\n",
    );
    env.tick_ok();
    assert_eq!(
        env.git(&["show", "orch/custom:prompt.txt"]),
        "Custom prompt for custom (Custom), attempt 1.\nDo the custom thing.\n"
    );
}

#[test]
fn tick_ticket_runs_only_that_ticket_or_says_why_not() {
    let env = TestEnv::new();
    env.ready("echo > \"f-$ORCH_TICKET\"", "");
    env.write_ticket("todo", "first", "---\ntitle: First\npriority: 1\n---\n");
    env.write_ticket("todo", "second", "---\ntitle: Second\n---\n");
    env.write_ticket(
        "todo",
        "third",
        "---\ntitle: Third\ndepends_on: [first]\n---\n",
    );
    let out = stdout(
        &env.orch()
            .args(["tick", "--ticket", "second"])
            .output()
            .unwrap(),
    );
    assert!(out.contains("second: success"), "{out}");
    assert_eq!(env.state_of("first"), "todo");
    let out = stdout(
        &env.orch()
            .args(["tick", "--ticket", "third"])
            .output()
            .unwrap(),
    );
    assert!(
        out.contains("third: not claimed: it waits on first"),
        "{out}"
    );
    env.orch()
        .args(["tick", "--ticket", "nope"])
        .assert()
        .code(2);
}

#[test]
fn files_the_agent_deletes_are_deleted_on_the_branch() {
    let env = TestEnv::new();
    env.ready("rm README.md", "");
    env.write_ticket("todo", "cleanup", "---\ntitle: Remove the README\n---\n");
    env.tick_ok();
    assert_eq!(env.state_of("cleanup"), "done");
    let files = env.git(&["ls-tree", "--name-only", "orch/cleanup"]);
    assert!(!files.contains("README.md"), "{files}");
    assert!(
        env.repo.join("README.md").exists(),
        "the user's checkout keeps it"
    );
}

#[test]
fn log_follow_streams_until_the_run_ends() {
    let env = TestEnv::new();
    env.ready(&format!("echo first line\n{}", waiting_agent(&env)), "");
    env.write_ticket("todo", "followed", "---\ntitle: Followed\n---\n");
    let tick = env.spawn_tick();
    wait_for(&env.flag("started-followed"));
    let mut follow = std::process::Command::new(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut follow);
    let follow = follow
        .current_dir(&env.repo)
        .args(["log", "followed", "--follow"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(env.flag("go"), "").unwrap();
    let out = follow.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("first line"), "{text}");
    assert!(
        text.contains("finished"),
        "the whole log, through the end of the run: {text}"
    );
    tick.wait_with_output().unwrap();
}

#[test]
fn a_front_matter_broken_during_a_run_does_not_strand_the_ticket() {
    let env = TestEnv::new();
    env.ready(&waiting_agent(&env), "");
    env.write_ticket("todo", "typo", "---\ntitle: Typo\n---\nBody.\n");
    let tick = env.spawn_tick();
    wait_for(&env.flag("started-typo"));
    // A person edits the running ticket and breaks its YAML; the log stays.
    let path = env.ticket_path("in-progress", "typo");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("title: Typo", "title: [Typo")).unwrap();
    std::fs::write(env.flag("go"), "").unwrap();
    let out = tick.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("typo: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.state_of("typo"), "done");
    let text = std::fs::read_to_string(env.ticket_path("done", "typo")).unwrap();
    assert!(
        text.contains("title: [Typo"),
        "the person's text is kept as written"
    );
}

#[test]
fn a_stale_abort_request_does_not_stop_a_later_run() {
    let env = TestEnv::new();
    env.ready("echo work > work.txt", "");
    env.write_ticket("todo", "later", "---\ntitle: Later\n---\n");
    let state = env.repo.join(".git/orch/state/later");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("abort"), "12345-1-1").unwrap();
    let out = env.tick_ok();
    assert!(out.contains("later: success (attempt 1)"), "{out}");
}

/// A worktree orch cannot prepare is orch's failure, not the agent's: the
/// first release spent an attempt on it. Until it persists (three in a row)
/// it uses none; then the ticket ends in blocked instead of retrying for ever.
#[test]
fn a_worktree_orch_cannot_prepare_uses_no_attempt_until_it_persists() {
    let env = TestEnv::new();
    env.ready("echo work > w.txt", "max_attempts: 1\n");
    env.write_ticket("todo", "w", "---\ntitle: W\n---\n");
    // A branch orch/w/x: the ticket branch orch/w cannot be created.
    env.git(&["branch", "orch/w/x"]);
    for round in 1..=2 {
        let out = env.tick_ok();
        assert!(
            out.contains(&format!(
                "w: failed (attempt {round}): cannot prepare the worktree"
            )),
            "{out}"
        );
        assert_eq!(env.state_of("w"), "todo", "round {round}");
        let status = env.status();
        assert_eq!(status["ready"][0]["attempts_used"], 0, "{status}");
    }
    let out = env.tick_ok();
    assert!(out.contains("moved to blocked"), "{out}");
    assert_eq!(env.state_of("w"), "blocked");
    // Cleared by a person and retried: the work gets done.
    env.git(&["branch", "-D", "orch/w/x"]);
    std::fs::rename(
        env.ticket_path("blocked", "w"),
        env.ticket_path("todo", "w"),
    )
    .unwrap();
    let out = env.tick_ok();
    assert!(out.contains("w: success (attempt 4)"), "{out}");
}

/// Seen with the first release: this timeout made every tick panic (exit
/// 101) after claiming, again and again.
#[test]
fn a_duration_too_long_to_add_to_a_clock_is_refused_and_the_others_run() {
    let env = TestEnv::new();
    env.ready("echo done > \"f-$ORCH_TICKET\"", "");
    env.write_ticket(
        "todo",
        "huge",
        "---\ntitle: Huge\ntimeout: 18446744073709551615s\n---\n",
    );
    env.write_ticket("todo", "fine", "---\ntitle: Fine\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("skipped: tickets/todo/huge.md:3:") && out.contains("longer than 365d"),
        "{out}"
    );
    assert!(out.contains("fine: success (attempt 1)"), "{out}");
    assert_eq!(env.state_of("huge"), "todo");
}

/// A result that cannot be written for a moment (a disk full, something in
/// the way) is tried again by the tick that has it, which records it with
/// the true outcome once it can: no "abandoned" for the next tick to say.
#[test]
fn a_settle_that_fails_for_a_moment_is_tried_again() {
    use std::io::BufRead;
    let env = TestEnv::new();
    env.ready("echo work > w.txt", "");
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    let plan = env.plan();
    env.git_in(&plan, &["rm", "-rq", "tickets/done"]);
    std::fs::write(plan.join("tickets/done"), "in the way\n").unwrap();
    env.git_in(&plan, &["add", "tickets/done"]);
    env.git_in(&plan, &["commit", "-qm", "in the way"]);
    let mut tick = env.spawn_tick();
    let mut lines = std::io::BufReader::new(tick.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains("cannot record the result yet") {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("cannot record the result yet")),
        "{seen:#?}"
    );
    // The obstacle goes; the tick's next try records the result. Under the
    // board lock, so that this commit and orch's try do not meet.
    let lock = std::fs::File::open(env.repo.join(".git/orch/lock")).unwrap();
    lock.lock().unwrap();
    env.git_in(&plan, &["rm", "-q", "tickets/done"]);
    std::fs::create_dir_all(plan.join("tickets/done")).unwrap();
    std::fs::write(plan.join("tickets/done/.gitkeep"), "").unwrap();
    env.git_in(&plan, &["add", "tickets/done"]);
    env.git_in(&plan, &["commit", "-qm", "out of the way"]);
    drop(lock);
    seen.extend(lines.map(|l| l.unwrap()));
    let status = tick.wait().unwrap();
    assert!(status.success(), "{seen:#?}");
    assert!(
        seen.iter().any(|l| l.contains("t: success (attempt 1)")),
        "{seen:#?}"
    );
    assert_eq!(env.state_of("t"), "done");
}

/// Seen with the first release: a result that could not be recorded ended
/// the tick with exit 0, so cron never said anything. Here the agent puts
/// a file where tickets/done goes, so the ticket cannot move there.
#[test]
fn a_tick_that_cannot_record_a_result_exits_non_zero() {
    let env = TestEnv::new();
    env.ready("echo work > w.txt", "");
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");
    // A commit by hand on orch/plan puts a file where the done directory
    // was.
    let plan = env.plan();
    env.git_in(&plan, &["rm", "-rq", "tickets/done"]);
    std::fs::write(plan.join("tickets/done"), "in the way\n").unwrap();
    env.git_in(&plan, &["add", "tickets/done"]);
    env.git_in(&plan, &["commit", "-qm", "in the way"]);
    let out = env.tick();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("error: t: "), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("could not record the result of t"),
        "{}",
        stderr(&out)
    );
    // The work is kept on the ticket branch.
    assert_eq!(env.git(&["show", "orch/t:w.txt"]), "work\n");
}

/// Seen with the first release: a file named `runs` in the plan made every
/// settle fail, and every later tick failed in reconcile and claimed
/// nothing. Now the result is recorded without its summary, and the board
/// goes on.
#[test]
fn a_summary_that_cannot_be_written_does_not_stop_the_board() {
    let env = TestEnv::new();
    env.ready(
        "if [ \"$ORCH_TICKET\" = t ]; then echo in the way > \"$ORCH_WORKTREE/../../plan/runs\"; fi; echo work > w.txt",
        "sandbox: off",
    );
    env.write_ticket("todo", "t", "---\ntitle: T\npriority: 1\n---\n");
    let out = env.tick_ok();
    assert!(
        out.contains("t: success (attempt 1)")
            && out.contains("could not write the attempt summary"),
        "{out}"
    );
    assert_eq!(env.state_of("t"), "done");
    env.write_ticket("todo", "u", "---\ntitle: U\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("u: success (attempt 1)"), "{out}");
    assert_eq!(env.state_of("u"), "done");
}

/// Seen with the first release: one ticket that could not be settled made
/// every later tick fail in reconcile and claim nothing. It is now
/// reported, and the other tickets run.
#[test]
fn a_ticket_reconcile_cannot_settle_does_not_stop_the_others() {
    let env = TestEnv::new();
    env.ready("echo work > w.txt", "");
    env.write_ticket(
        "in-progress",
        "dead",
        "---\ntitle: Dead\nmax_attempts: 1\n---\n\n<!-- orch: the lines below are appended by orch; write above this line -->\n\
         - 2026-01-01T00:00:00Z claim attempt=1 host=test-host lease=2026-01-01T01:00:00Z pid=1 run=1-1-1\n",
    );
    // It ran (it has a log), so abandoning it uses its one attempt and
    // sends it to blocked, where a file is in the way.
    std::fs::create_dir_all(env.repo.join(".git/orch/logs/dead")).unwrap();
    std::fs::write(env.repo.join(".git/orch/logs/dead/1.log"), "output\n").unwrap();
    let blocked = env.plan().join("tickets/blocked");
    std::fs::remove_dir_all(&blocked).unwrap();
    std::fs::write(&blocked, "in the way\n").unwrap();
    env.write_ticket("todo", "next", "---\ntitle: Next\n---\n");
    let out = env.tick();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("error: dead: cannot settle it"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("next: success (attempt 1)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(env.state_of("dead"), "in-progress");
}
