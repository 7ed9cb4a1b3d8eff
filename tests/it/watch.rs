//! `orch watch`: the live board, on a terminal and through a pipe. Each
//! test drives real ticks beside a real `orch watch` and waits for what it
//! prints, never for a fixed time.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::env::{TestEnv, wait_for};

/// What a child prints, as it prints it.
struct Output {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Output {
    fn of(child: &mut Child) -> Output {
        let mut out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Output {
            rx,
            seen: String::new(),
        }
    }

    /// Wait until the output holds `needle` after what earlier waits
    /// consumed; the text up to and including it is consumed.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.seen.find(needle) {
                let upto: String = self.seen.drain(..at + needle.len()).collect();
                return upto;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("never printed {needle:?}; printed:\n{}", self.seen),
            }
        }
    }

    /// Everything until the child closes its output.
    fn rest(&mut self) -> String {
        while let Ok(bytes) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push_str(&String::from_utf8_lossy(&bytes));
        }
        std::mem::take(&mut self.seen)
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(pid).expect("a pid");
    rustix::process::kill_process(pid, sig).expect("signal the watch");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "orch watch did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `orch watch` through a pipe, with an hour's interval: every line it
/// prints comes from a file event.
fn plain_watch(env: &TestEnv) -> (Child, Output) {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin!("orch"));
    env.apply_env(&mut cmd);
    let mut watch = cmd
        .current_dir(&env.repo)
        .args(["watch", "--interval", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch starts");
    let out = Output::of(&mut watch);
    (watch, out)
}

/// An agent that says hello, waits for the test's `go`, then commits.
fn gated_agent(env: &TestEnv) {
    let started = env.flag("started");
    let go = env.flag("go");
    env.ready(
        &format!(
            "echo hello from the agent; touch '{}'\n\
             while [ ! -e '{}' ]; do sleep 0.02; done\n\
             echo done > out.txt && git add out.txt && git commit -qm work",
            started.display(),
            go.display()
        ),
        "",
    );
}

#[test]
fn through_a_pipe_each_change_is_one_line() {
    let env = TestEnv::new();
    gated_agent(&env);
    env.write_ticket("todo", "alpha", "---\ntitle: Alpha\n---\nDo alpha.\n");

    let (mut watch, mut out) = plain_watch(&env);
    out.wait_for("board: todo 1  in-progress 0  landing 0  done 0  blocked 0  invalid 0\n");

    // The interval is an hour: every line below comes from a file event.
    let mut tick = env.spawn_tick();
    wait_for(&env.flag("started"));
    out.wait_for("alpha todo -> in-progress (attempt 1 on ");
    std::fs::write(env.flag("go"), "").unwrap();
    assert!(tick.wait().unwrap().success());
    out.wait_for("alpha in-progress -> done (attempt 1: success");
    out.wait_for("tick on ");

    let added = env
        .orch()
        .args(["new", "Beta", "--body", "Do beta."])
        .output()
        .unwrap();
    assert!(added.status.success());
    out.wait_for("0001-beta added to todo: Beta\n");
    std::fs::remove_file(env.ticket_path("todo", "0001-beta")).unwrap();
    out.wait_for("0001-beta removed (was in todo)\n");

    signal(watch.id() as i32, rustix::process::Signal::TERM);
    let status = wait_exit(&mut watch);
    assert!(status.success(), "SIGTERM ends a watch cleanly: {status:?}");
    let rest = out.rest();
    assert!(
        !rest.contains('\x1b'),
        "no escapes through a pipe: {rest:?}"
    );
}

#[test]
fn on_a_terminal_the_board_is_redrawn_with_the_agents_output_and_the_screen_given_back() {
    let env = TestEnv::new();
    gated_agent(&env);
    env.write_ticket("todo", "alpha", "---\ntitle: Alpha\n---\nDo alpha.\n");
    let pidfile = env.flag("watch.pid");
    let orch = assert_cmd::cargo::cargo_bin!("orch");
    // script(1) gives the watch a terminal; the shell records its pid.
    let mut cmd = Command::new("script");
    env.apply_env(&mut cmd);
    let mut script = cmd
        .current_dir(&env.repo)
        .args(["-qfec"])
        .arg(format!(
            "'{}' watch --interval 1h & echo $! > '{}'; wait",
            orch.display(),
            pidfile.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) starts");
    let mut out = Output::of(&mut script);
    out.wait_for("\x1b[?1049h");
    out.wait_for("Alpha");

    let mut tick = env.spawn_tick();
    wait_for(&env.flag("started"));
    // Redrawn from the log's change: the running ticket and what its agent
    // printed last.
    out.wait_for("in progress");
    out.wait_for("alpha attempt 1, last output:");
    out.wait_for("hello from the agent");
    std::fs::write(env.flag("go"), "").unwrap();
    assert!(tick.wait().unwrap().success());
    out.wait_for("done 1");

    wait_for(&pidfile);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .expect("a pid");
    signal(pid, rustix::process::Signal::INT);
    let rest = out.rest();
    assert!(
        rest.contains("\x1b[?1049l"),
        "Ctrl-C gives the screen back: {rest:?}"
    );
    wait_exit(&mut script);
}

/// `orch watch | head -1`: the watch ends when its reader does, although
/// nothing changes on the board to make it write again.
#[test]
fn a_watch_ends_with_exit_0_when_its_reader_goes_away() {
    let env = TestEnv::new();
    env.ready("exit 0", "");
    let code = env.flag("watch.code");
    let orch = assert_cmd::cargo::cargo_bin!("orch");
    let mut cmd = Command::new("sh");
    env.apply_env(&mut cmd);
    let mut sh = cmd
        .current_dir(&env.repo)
        .arg("-c")
        .arg(format!(
            "{{ '{}' watch --interval 1h; echo $? > '{}'; }} | head -1",
            orch.display(),
            code.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("sh runs");
    let mut out = Output::of(&mut sh);
    out.wait_for(" board: todo 0");
    wait_exit(&mut sh);
    assert_eq!(std::fs::read_to_string(&code).unwrap().trim(), "0");
}

#[test]
fn a_ticket_deleted_and_written_again_elsewhere_moments_later_is_a_move() {
    // A checkout or an editor moves a file by deleting it and writing it
    // anew; on a busy machine the watch can look between the two.
    let env = TestEnv::new();
    env.ready("true", "");
    let body = "---\ntitle: Alpha\n---\nDo alpha.\n";
    env.write_ticket("todo", "alpha", body);
    let (mut watch, mut out) = plain_watch(&env);
    out.wait_for("board: todo 1  ");

    std::fs::remove_file(env.ticket_path("todo", "alpha")).unwrap();
    // Longer than the watch waits for a burst of changes to settle.
    std::thread::sleep(Duration::from_millis(400));
    env.write_ticket("done", "alpha", body);
    let upto = out.wait_for("alpha todo -> done");
    assert!(!upto.contains("removed"), "a move is not a removal: {upto}");

    signal(watch.id() as i32, rustix::process::Signal::TERM);
    assert!(wait_exit(&mut watch).success());
    let rest = out.rest();
    assert!(!rest.contains("added"), "a move is not an addition: {rest}");
}
