//! Who commits: the user's git identity, or, on a host where git has none,
//! orch's own, said once and given to the agent so its commits work too.

use std::path::Path;
use std::process::Command as StdCommand;

use crate::env::{TestEnv, stderr, stdout};

/// An agent that commits its work itself.
const COMMITTING_AGENT: &str =
    "echo \"$ORCH_TICKET\" > work.txt\ngit add work.txt\ngit commit -q -m \"agent: $ORCH_TICKET\"";

const NOTE: &str = "git has no identity here";

/// `program` in `dir` with the test's environment less every identity,
/// and git told not to guess one from the host name (a host with a full
/// domain name would give it one).
fn without_identity(env: &TestEnv, program: &Path, dir: &Path) -> StdCommand {
    let mut cmd = StdCommand::new(program);
    env.apply_env(&mut cmd);
    for v in [
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "user.useConfigOnly")
        .env("GIT_CONFIG_VALUE_0", "true")
        .current_dir(dir);
    cmd
}

fn orch() -> &'static Path {
    Path::new(assert_cmd::cargo::cargo_bin!("orch"))
}

#[test]
fn without_a_git_identity_the_agent_s_own_commits_work_and_orch_says_so_once() {
    let env = TestEnv::new();
    env.ready(COMMITTING_AGENT, "");
    env.write_ticket("todo", "a", "---\ntitle: A\n---\n");
    env.write_ticket("todo", "b", "---\ntitle: B\n---\n");
    let out = without_identity(&env, orch(), &env.repo)
        .arg("tick")
        .output()
        .expect("orch runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("a: success"), "{text}\n{}", stderr(&out));
    assert!(text.contains("b: success"), "{text}\n{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.matches(NOTE).count(), 1, "said once: {err}");
    assert!(err.contains("git config --global user.name"), "{err}");
    let orch_identity = "orch <orch@test-host.invalid>";
    assert!(err.contains(orch_identity), "{err}");
    for id in ["a", "b"] {
        let work = env.git(&[
            "log",
            "-1",
            "--format=%an <%ae>|%cn <%ce>|%s",
            &format!("orch/{id}"),
        ]);
        assert_eq!(
            work.trim(),
            format!("{orch_identity}|{orch_identity}|agent: {id}"),
            "the agent's own commit"
        );
    }
    let board = env.git(&["log", "-1", "--format=%an <%ae>", "orch/plan"]);
    assert_eq!(board.trim(), orch_identity);
}

#[test]
fn a_user_s_identity_is_orch_s_and_the_agent_s_untouched() {
    let env = TestEnv::new();
    env.ready(COMMITTING_AGENT, "");
    env.write_ticket("todo", "mine", "---\ntitle: Mine\n---\n");
    // The identity is the environment's (GIT_AUTHOR_*, GIT_COMMITTER_*), as
    // CI jobs set it: git commits with it, and so does orch.
    let out = env.tick();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("mine: success"), "{}", stdout(&out));
    assert!(!stderr(&out).contains(NOTE), "{}", stderr(&out));
    let user = "Test Author <author@example.com>";
    for rev in ["orch/plan", "orch/mine"] {
        let who = env.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", rev]);
        assert_eq!(who.trim(), format!("{user}|{user}"), "{rev}");
    }
}

#[test]
fn init_s_first_commit_advice_works_as_pasted_without_a_git_identity() {
    let env = TestEnv::new();
    let empty = env.dir.path().join("empty");
    env.git_in(
        env.dir.path(),
        &["init", "-q", empty.to_str().expect("utf-8")],
    );
    // Where `git config --global` writes, in place of ~/.gitconfig.
    let global = env.dir.path().join("gitconfig");
    let out = without_identity(&env, orch(), &empty)
        .env("GIT_CONFIG_GLOBAL", &global)
        .arg("init")
        .output()
        .expect("orch runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let advice = err
        .split_once("e.g. `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(cmd, _)| cmd)
        .unwrap_or_else(|| panic!("a command to paste: {err}"));
    let pasted = without_identity(&env, Path::new("sh"), &empty)
        .env("GIT_CONFIG_GLOBAL", &global)
        .args(["-c", advice])
        .output()
        .expect("sh runs");
    assert!(pasted.status.success(), "{advice}: {}", stderr(&pasted));
    let out = without_identity(&env, orch(), &empty)
        .env("GIT_CONFIG_GLOBAL", &global)
        .arg("init")
        .output()
        .expect("orch runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains(NOTE), "{}", stderr(&out));
}
