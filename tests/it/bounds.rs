//! Bounds on what orch reads and writes: files in the plan are read only as
//! regular files (no link out of the plan, no fifo, no device) and only up
//! to a cap; an agent's message, a summary and a prompt are cut, saying so.

use std::path::Path;
use std::process::{Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use crate::env::{TestEnv, stderr, stdout};

const SECRET: &str = "hunter2-do-not-leak";

/// A file outside the plan that must never be read through it.
fn secret_file(env: &TestEnv) -> std::path::PathBuf {
    let path = env.dir.path().join("secret.txt");
    std::fs::write(&path, format!("{SECRET}\nline two {SECRET}\n")).unwrap();
    path
}

/// `orch <args>` that must end on its own within 20 s (it is killed after,
/// so the test fails rather than hangs), with at most 2 GB of address
/// space so a runaway read fails fast instead of taking the machine.
fn orch_bounded(env: &TestEnv, args: &[&str]) -> Output {
    let out_path = env.dir.path().join("bounded.out");
    let err_path = env.dir.path().join("bounded.err");
    let mut cmd = StdCommand::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 2000000 && exec \"$0\" \"$@\"")
        .arg(assert_cmd::cargo::cargo_bin!("orch"))
        .args(args);
    env.apply_env(&mut cmd);
    cmd.current_dir(&env.repo)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().expect("orch starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`orch {}` did not finish within 20 s; stderr so far: {}",
                args.join(" "),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

fn longest_line(text: &str) -> usize {
    text.lines().map(str::len).max().unwrap_or(0)
}

#[test]
fn a_100_mb_message_is_cut_in_the_summary_and_the_output() {
    let env = TestEnv::new();
    // The message goes straight into the result file, as anything able to
    // write $ORCH_RESULT_FILE could: `orch submit -m` takes one argument,
    // and the kernel refuses an argument of 100 MB.
    env.ready(
        "f=\"$ORCH_RESULT_FILE\"\n\
         printf '{\"status\":\"failed\",\"message\":\"' > \"$f\"\n\
         head -c 100000000 /dev/zero | tr '\\0' a >> \"$f\"\n\
         printf '\"}' >> \"$f\"",
        "",
    );
    env.write_ticket("todo", "big", "---\ntitle: Big message\n---\nSay a lot.\n");
    let out = env.tick_ok();
    assert!(
        out.contains("big: failed (attempt 1)"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(
        longest_line(&out) < 8 * 1024,
        "a line of {} bytes in the tick's output",
        longest_line(&out)
    );
    let summary_path = env.plan().join("runs/big/1.md");
    let len = std::fs::metadata(&summary_path).unwrap().len();
    assert!(len < 300 * 1024, "the summary is {len} bytes");
    let summary = std::fs::read_to_string(&summary_path).unwrap();
    assert!(summary.contains("… [cut: "), "{summary}");
    assert!(summary.contains("aaaa"), "{summary}");
    assert!(summary.contains(" MB more]"), "{summary}");
}

#[test]
fn orch_submit_cuts_a_long_message_before_writing_it() {
    let env = TestEnv::new();
    let copy = env.flag("result.json");
    env.ready(
        &format!(
            "orch submit failed -m \"$(head -c 120000 /dev/zero | tr '\\0' b)\"\ncp \"$ORCH_RESULT_FILE\" '{}'",
            copy.display()
        ),
        "",
    );
    env.write_ticket("todo", "long", "---\ntitle: Long message\n---\n");
    let out = env.tick_ok();
    assert!(out.contains("long: failed (attempt 1)"), "{out}");
    let written = std::fs::read_to_string(&copy).unwrap();
    assert!(written.len() < 70 * 1024, "{} bytes", written.len());
    assert!(written.contains("… [cut: "), "{written}");
}

#[test]
fn a_symlinked_prompt_template_is_refused_and_its_target_never_reaches_the_agent() {
    let env = TestEnv::new();
    let secret = secret_file(&env);
    let copy = env.flag("prompt.md");
    env.ready(
        &format!("cp \"$ORCH_PROMPT_FILE\" '{}'", copy.display()),
        "",
    );
    std::fs::create_dir_all(env.plan().join("templates")).unwrap();
    std::os::unix::fs::symlink(&secret, env.plan().join("templates/prompt.md")).unwrap();
    env.write_ticket("todo", "tmpl", "---\ntitle: Template\n---\nThe body.\n");
    let out = env.tick();
    let text = format!("{}\n{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("templates/prompt.md") && text.contains("symbolic link"),
        "the tick names the template: {text}"
    );
    assert!(!text.contains(SECRET), "{text}");
    let prompt = std::fs::read_to_string(&copy).expect("the agent ran");
    assert!(
        !prompt.contains(SECRET),
        "the secret reached the agent: {prompt}"
    );
    assert!(prompt.contains("The body."), "{prompt}");
    let status = env.status();
    let invalid = status["invalid"].to_string();
    assert!(invalid.contains("templates/prompt.md"), "{status}");
    assert!(!status.to_string().contains(SECRET));
}

fn config_error_names_orch_yaml(env: &TestEnv) -> (String, String) {
    let tick = orch_bounded(env, &["tick"]);
    let tick_text = format!("{}\n{}", stdout(&tick), stderr(&tick));
    assert_eq!(tick.status.code(), Some(2), "{tick_text}");
    assert!(stderr(&tick).contains("orch.yaml"), "{tick_text}");
    let status = orch_bounded(env, &["status"]);
    let status_text = format!("{}\n{}", stdout(&status), stderr(&status));
    assert!(status_text.contains("orch.yaml"), "{status_text}");
    (tick_text, status_text)
}

#[test]
fn an_orch_yaml_linked_to_a_secret_is_refused_unread() {
    let env = TestEnv::new();
    env.ready("true", "");
    let secret = secret_file(&env);
    let yaml = env.plan().join("orch.yaml");
    std::fs::remove_file(&yaml).unwrap();
    std::os::unix::fs::symlink(&secret, &yaml).unwrap();
    let (tick, status) = config_error_names_orch_yaml(&env);
    for text in [&tick, &status] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains("symbolic link"), "{text}");
    }
}

fn fifo_for_orch_yaml(env: &TestEnv) {
    env.ready("true", "");
    let yaml = env.plan().join("orch.yaml");
    std::fs::remove_file(&yaml).unwrap();
    let made = StdCommand::new("mkfifo").arg(&yaml).status().unwrap();
    assert!(made.success());
}

#[test]
fn an_orch_yaml_that_is_a_fifo_does_not_hang_status() {
    let env = TestEnv::new();
    fifo_for_orch_yaml(&env);
    let status = orch_bounded(&env, &["status"]);
    let text = format!("{}\n{}", stdout(&status), stderr(&status));
    assert!(
        text.contains("orch.yaml") && text.contains("fifo"),
        "{text}"
    );
    let json = orch_bounded(&env, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("status JSON");
    let err = json["config_error"].as_str().unwrap_or_default();
    assert!(err.contains("orch.yaml") && err.contains("fifo"), "{json}");
}

/// Still hangs: before the board is read, `BoardTxn::open` adopts what is
/// uncommitted in the plan, and `git::Worktree::stage_paths` (libgit2's
/// `git_index_add_bypath`) opens the fifo to hash it, blocking for ever
/// with the board lock held. The fix belongs there (stage no fifo, device
/// or socket), outside this change.
#[test]
fn an_orch_yaml_that_is_a_fifo_does_not_hang_tick() {
    let env = TestEnv::new();
    fifo_for_orch_yaml(&env);
    // `status` only reads: it names the file and what is wrong with it.
    let status = orch_bounded(&env, &["status"]);
    let status_text = format!("{}\n{}", stdout(&status), stderr(&status));
    assert!(status_text.contains("orch.yaml"), "{status_text}");
    // A board change puts back the committed orch.yaml in its place.
    let tick = orch_bounded(&env, &["tick"]);
    let tick_text = format!("{}\n{}", stdout(&tick), stderr(&tick));
    assert!(tick.status.success(), "{tick_text}");
    assert!(
        tick_text.contains("replaced orch.yaml in the plan worktree, which was not a regular file"),
        "{tick_text}"
    );
    assert!(env.plan().join("orch.yaml").is_file());
}

#[test]
fn an_orch_yaml_linked_to_dev_zero_is_refused() {
    let env = TestEnv::new();
    env.ready("true", "");
    let yaml = env.plan().join("orch.yaml");
    std::fs::remove_file(&yaml).unwrap();
    std::os::unix::fs::symlink(Path::new("/dev/zero"), &yaml).unwrap();
    let (tick, _) = config_error_names_orch_yaml(&env);
    assert!(tick.contains("symbolic link"), "{tick}");
}
