//! `notify:`: real notifier commands run by the real binary after board
//! events: a real `curl` posting to an HTTP receiver on loopback, a
//! notifier that hangs (killed with its child at its limit), one that
//! fails, and the environment each gets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::env::{TestEnv, stdout};

/// An HTTP server on 127.0.0.1 answering 200 to every request; each
/// request's path and body arrive on the channel.
fn receiver() -> (u16, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let _ = tx.send((path, String::from_utf8_lossy(&body).into_owned()));
        }
    });
    (port, rx)
}

/// A board with one ticket whose agent succeeds, and `notify` as orch.yaml's.
fn board_with(notify: &str) -> TestEnv {
    let env = TestEnv::new();
    env.ready("echo hello > hello.txt", &format!("notify: {notify}"));
    env.write_ticket(
        "todo",
        "T1",
        "---\ntitle: Say hello\n---\nWrite hello.txt.\n",
    );
    env
}

#[test]
fn a_real_curl_post_reaches_a_loopback_receiver_for_claimed_and_done() {
    let (port, requests) = receiver();
    let env = board_with(&format!(
        "[{{on: [claimed, done], command: [curl, -sS, -f, -H, \"Content-Type: application/json\", --data-binary, \"@-\", \"http://127.0.0.1:{port}/hook\"]}}]"
    ));
    let out = env.tick_ok();
    assert!(!out.contains("notifier"), "no notifier failed: {out}");
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let (path, body) = requests
            .recv_timeout(Duration::from_secs(20))
            .expect("curl posted");
        assert_eq!(path, "/hook");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
        bodies.push(json);
    }
    assert_eq!(bodies[0]["event"], "claimed", "{bodies:?}");
    assert_eq!(bodies[0]["ticket"], "T1");
    assert_eq!(bodies[0]["attempt"], 1);
    assert_eq!(bodies[1]["event"], "done", "{bodies:?}");
    assert_eq!(bodies[1]["ticket"], "T1");
    assert_eq!(bodies[1]["outcome"], "success");
    assert_eq!(bodies[1]["host"], "test-host");
    let summary = bodies[1]["summary"].as_str().expect("a summary path");
    assert!(summary.ends_with("runs/T1/1.md"), "{summary}");
    assert!(
        bodies[1]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("T1: success (attempt 1)")),
        "{bodies:?}"
    );
    // Only the events asked for: nothing more arrives.
    assert!(requests.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn a_hanging_notifier_is_killed_with_its_child_and_the_tick_goes_on() {
    let env = TestEnv::new();
    let child_pid = env.flag("child.pid");
    env.ready(
        "echo hello > hello.txt",
        &format!(
            "notify: [{{on: [claimed], timeout: 300ms, command: [sh, -c, \"sleep 60 & echo $! > {}; sleep 60\"]}}]",
            child_pid.display()
        ),
    );
    env.write_ticket("todo", "T1", "---\ntitle: Say hello\n---\nWrite it.\n");
    let start = Instant::now();
    let out = env.tick_ok();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        out.contains(
            "T1: warning: notifier `sh` for claimed did not finish within 300ms; stopped it"
        ),
        "{out}"
    );
    assert_eq!(env.state_of("T1"), "done");
    let pid: i32 = std::fs::read_to_string(&child_pid)
        .expect("the notifier started its child")
        .trim()
        .parse()
        .expect("a pid");
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.rsplit(')').next().unwrap_or("").trim().starts_with('Z'))
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone() {
        assert!(
            Instant::now() < deadline,
            "the notifier's child {pid} lives on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_failing_notifier_is_logged_and_the_exit_code_is_unchanged() {
    let env = board_with(
        "[{on: [claimed, done], command: [sh, -c, \"echo oops-from-notifier >&2; exit 1\"]}]",
    );
    let out = env.tick();
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("T1: warning: notifier `sh` for claimed failed (exit status: 1)"),
        "{text}"
    );
    assert!(text.contains("for done failed"), "{text}");
    assert_eq!(env.state_of("T1"), "done");
    let log = std::fs::read_to_string(env.repo.join(".git/orch/notify.log")).expect("notify.log");
    assert!(log.contains("oops-from-notifier"), "{log}");
    assert!(log.contains("-- exit status: 1"), "{log}");
}

#[test]
fn a_notifier_gets_the_event_in_its_environment() {
    let env = TestEnv::new();
    let seen = env.flag("env");
    env.ready(
        "echo hello > hello.txt",
        &format!(
            "notify: [{{on: [done], command: [sh, -c, \"env | grep ^ORCH_ > {}; cat > {}.json\"]}}]",
            seen.display(),
            seen.display()
        ),
    );
    env.write_ticket("todo", "T1", "---\ntitle: Say hello\n---\nWrite it.\n");
    env.tick_ok();
    let vars = std::fs::read_to_string(&seen).expect("the notifier ran");
    for want in [
        "ORCH_EVENT=done",
        "ORCH_TICKET=T1",
        "ORCH_OUTCOME=success",
        "ORCH_ATTEMPT=1",
        "ORCH_HOST=test-host",
        "ORCH_TEXT=T1: success (attempt 1)",
    ] {
        assert!(vars.contains(want), "{want} in {vars}");
    }
    let summary = vars
        .lines()
        .find_map(|l| l.strip_prefix("ORCH_SUMMARY="))
        .expect("ORCH_SUMMARY");
    assert!(
        std::fs::read_to_string(summary).is_ok_and(|s| s.contains("- outcome: success")),
        "{summary}"
    );
    // Not a run: a notifier that calls orch is not taken for an agent.
    assert!(!vars.contains("ORCH_RUN_ID"), "{vars}");
    let stdin = std::fs::read_to_string(format!("{}.json", seen.display())).expect("stdin");
    let json: serde_json::Value = serde_json::from_str(&stdin).expect("one JSON object");
    assert_eq!(json["event"], "done");
    assert_eq!(json["ticket"], "T1");
}

#[test]
fn a_failed_tick_is_notified() {
    let env = TestEnv::new();
    let seen = env.flag("failed");
    env.ready(
        "true",
        &format!(
            "base: renamed-away\nnotify: [{{on: [tick-failed], command: [sh, -c, \"echo $ORCH_EVENT: $ORCH_TEXT > {}\"]}}]",
            seen.display()
        ),
    );
    env.write_ticket("todo", "T1", "---\ntitle: Anything\n---\nDo it.\n");
    let out = env.tick();
    assert_eq!(out.status.code(), Some(2));
    let said = std::fs::read_to_string(&seen).expect("the notifier ran");
    assert!(
        said.starts_with("tick-failed: orch tick failed: the base `renamed-away`"),
        "{said}"
    );
}

#[test]
fn an_unknown_event_or_key_in_notify_is_named_with_a_suggestion() {
    let env = TestEnv::new();
    env.ready("true", "notify: [{on: [claimd], command: [\"true\"]}]");
    let status = env.status_of_broken_config();
    let e = status["config_error"].as_str().unwrap_or("");
    assert!(
        e.contains("unknown event `claimd`: did you mean `claimed`?"),
        "{e}"
    );
    env.configure(
        &env.agent("agent", "true"),
        "notify: [{on: [all], comand: [\"true\"]}]",
    );
    let status = env.status_of_broken_config();
    let e = status["config_error"].as_str().unwrap_or("");
    assert!(
        e.contains("unknown key `notify.comand`: did you mean `command`?"),
        "{e}"
    );
    // `budget-spent` is an event name like the others.
    env.configure(
        &env.agent("agent", "true"),
        "notify: [{on: [budget-spent], command: [\"true\"]}]",
    );
    env.status();
}

#[test]
fn every_notify_example_is_a_valid_orch_yaml() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/notify");
    for name in ["slack.yaml", "ntfy.yaml", "mail.yaml"] {
        let env = TestEnv::new();
        env.ready("true", "");
        let lines = std::fs::read_to_string(examples.join(name)).expect("example");
        let yaml = env.plan().join("orch.yaml");
        let mut config = std::fs::read_to_string(&yaml).expect("orch.yaml");
        config.push_str(&lines);
        std::fs::write(&yaml, config).expect("write orch.yaml");
        let status = env.status();
        assert!(status["config_error"].is_null(), "{name}: {status}");
        assert!(
            status["warnings"].as_array().is_some_and(Vec::is_empty),
            "{name}: {status}"
        );
    }
}
