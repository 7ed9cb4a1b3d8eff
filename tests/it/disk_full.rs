//! A full disk: the repository on a small tmpfs that an agent fills.

use std::path::{Path, PathBuf};

use crate::env::{TestEnv, stderr, stdout};

/// A tmpfs mounted for one test, unmounted when dropped. Mounting needs
/// root (or CAP_SYS_ADMIN); CI has it and sets `ORCH_TEST_REQUIRE_TMPFS=1`,
/// so there the test cannot be skipped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var_os("ORCH_TEST_REQUIRE_TMPFS").is_none(),
                "cannot mount a tmpfs here, and the test is required"
            );
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// Seen with the first release: a settle that failed on a full disk left
/// the tick exiting 0 and the ticket in progress; the next tick committed
/// orch's own temporary file into orch/plan and recorded the run as
/// "abandoned: its supervising orch died", which was false.
#[test]
fn a_disk_that_fills_during_a_run_loses_nothing_and_records_the_true_reason() {
    let dir = tempfile::Builder::new()
        .prefix("orch-test-")
        .tempdir()
        .expect("temp dir");
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "16m") else {
        return;
    };
    let env = TestEnv::with_repo_at(dir, disk.path.join("repo"));
    let fill = disk.path.join("fill");
    std::fs::create_dir_all(&fill).expect("fill dir");
    let filled = env.flag("filled");
    env.ready(
        &format!(
            "echo \"work $ORCH_ATTEMPT\" > work.txt\n\
             if [ ! -e {filled} ]; then touch {filled}; dd if=/dev/zero of={fill}/big bs=64k 2>/dev/null; fi\n\
             true",
            filled = filled.display(),
            fill = fill.display()
        ),
        &format!(
            "sandbox: {{writable: [\"{}\", \"{}\"]}}",
            env.flags_dir().display(),
            fill.display()
        ),
    );
    env.write_ticket("todo", "t", "---\ntitle: T\n---\n");

    let first = env.tick();
    assert!(
        !first.status.success(),
        "a tick that could not record its result must fail\n{}{}",
        stdout(&first),
        stderr(&first)
    );
    assert_eq!(
        env.state_of("t"),
        "in-progress",
        "{}{}",
        stdout(&first),
        stderr(&first)
    );

    // While the disk stays full, ticks fail plainly and change nothing.
    let plan_before = env.git(&["rev-parse", "orch/plan"]);
    let second = env.tick();
    assert!(!second.status.success());
    let said = format!("{}{}", stdout(&second), stderr(&second));
    assert!(said.contains("No space left on device"), "{said}");
    assert_eq!(env.git(&["rev-parse", "orch/plan"]), plan_before);
    assert_eq!(env.state_of("t"), "in-progress");
    assert!(
        env.repo.join(".orch/worktrees/t/work.txt").exists(),
        "the agent's work"
    );

    // Space returns: everything settles without a person.
    std::fs::remove_file(fill.join("big")).expect("free the disk");
    let third = env.tick();
    assert!(
        third.status.success(),
        "{}{}",
        stdout(&third),
        stderr(&third)
    );
    assert_eq!(env.state_of("t"), "done", "{}", stdout(&third));
    let first_result = std::fs::read_to_string(env.plan().join("runs/t/1.md")).expect("summary");
    assert!(
        first_result.contains("could not commit the agent's work"),
        "{first_result}"
    );
    assert!(!first_result.contains("orch died"), "{first_result}");
    let ticket = std::fs::read_to_string(env.ticket_path("done", "t")).expect("ticket");
    assert!(
        ticket.contains("counted: no") || !ticket.contains("attempt 1 of"),
        "{ticket}"
    );
    let tree = env.git(&["ls-tree", "-r", "--name-only", "orch/plan"]);
    assert!(
        !tree.contains("orch-tmp"),
        "orch's temporary file was committed: {tree}"
    );
    assert_eq!(env.git(&["show", "orch/t:work.txt"]), "work 2\n");
    env.git(&["fsck", "--no-progress"]);
}
