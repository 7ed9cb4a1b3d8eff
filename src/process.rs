//! Finding and killing an agent's processes.
//!
//! Every agent runs in its own process group and carries `ORCH_RUN_ID` in its
//! environment, inherited by everything it starts. The group is how orch
//! signals a live run; the run id is how orch finds what is left of a run
//! whose supervisor died, even a grandchild that left the group with
//! setsid, without ever touching an unrelated process that reused a pid.
//! Linux only: both come from /proc.

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

pub const RUN_ID_VAR: &str = "ORCH_RUN_ID";

/// A live process as /proc shows it.
struct Proc {
    pid: i32,
    state: char,
    ppid: i32,
    pgrp: i32,
    /// The controlling terminal (0: none).
    tty: i32,
    /// When it started, in clock ticks after boot.
    start_ticks: u64,
}

/// The children orch started itself and has not reaped yet, with the run
/// each belongs to. Every other child of orch is an orphan it adopted as a
/// subreaper: a process an agent left behind, whatever its session or
/// environment.
static SPAWNED: Mutex<BTreeMap<i32, String>> = Mutex::new(BTreeMap::new());

fn spawned() -> MutexGuard<'static, BTreeMap<i32, String>> {
    // A panic while the map was held leaves it consistent (one insert or
    // remove): go on with it.
    SPAWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Make orch the reaper of every process its agents leave behind
/// (`PR_SET_CHILD_SUBREAPER`): a grandchild that leaves the session and
/// clears its environment is re-parented to orch instead of init, so the
/// sweep after each run still finds it. Once per process.
pub fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Unsupported (not Linux, or an old kernel): the run-id scan
        // still finds what kept its environment.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    });
}

/// Spawn `cmd` for `run_id` and remember the child as orch's own, all under
/// the registry's lock, so that a sweep running in another thread cannot
/// take it for an orphan between the fork and the bookkeeping.
pub fn spawn_registered(cmd: &mut Command, run_id: &str) -> std::io::Result<Child> {
    let mut map = spawned();
    let child = cmd.spawn()?;
    map.insert(child.id() as i32, run_id.to_string());
    Ok(child)
}

/// Wait for `child`, the leader of its own process group, for at most
/// `limit`; past it the whole group is killed. None when it was killed
/// (or could not be waited for). The child is forgotten either way.
pub fn wait_or_kill_group(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let pid = child.id() as i32;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                signal_group(pid, Signal::KILL);
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => break None,
        }
    };
    forget_spawned(pid);
    status
}

/// Forget a child orch has reaped.
pub fn forget_spawned(pid: i32) {
    spawned().remove(&pid);
}

/// Kill every orphan orch adopted (see [`become_subreaper`]) that does not
/// carry the run id of another live run of this process, repeating while
/// new ones appear, and reap them. Returns how many were killed.
pub fn kill_orphans(run_id: &str) -> usize {
    let me = std::process::id() as i32;
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = {
            let map = spawned();
            let others: Vec<String> = map
                .values()
                .filter(|r| r.as_str() != run_id)
                .map(|r| format!("{RUN_ID_VAR}={r}"))
                .collect();
            let orphans: Vec<Proc> = all_processes()
                .into_iter()
                .filter(|p| p.ppid == me && !map.contains_key(&p.pid))
                .collect();
            let mut found = 0;
            for orphan in orphans {
                let pid = orphan.pid;
                let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                let theirs = environ
                    .split(|b| *b == 0)
                    .any(|kv| others.iter().any(|o| o.as_bytes() == kv));
                if theirs {
                    continue;
                }
                if !orphan.zombie() {
                    signal_pid(pid, Signal::KILL);
                    found += 1;
                }
                // Reap it (now or on a later pass): only this pid, never a
                // child std's `Child` still waits for.
                if let Some(p) = Pid::from_raw(pid) {
                    let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
                }
            }
            found
        };
        killed += found;
        if found == 0 || Instant::now() > deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every live (not zombie) process, with its process group. Zombies are
/// left out: they hold no resources, and an init that does not reap them
/// must not make a finished run look alive.
fn live_processes() -> Vec<Proc> {
    all_processes()
        .into_iter()
        .filter(|p| !p.zombie())
        .collect()
}

impl Proc {
    fn zombie(&self) -> bool {
        self.state == 'Z' || self.state == 'X'
    }
}

fn all_processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may contain spaces.
            let rest = &stat[stat.rfind(')')? + 1..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // After the name: state, ppid, pgrp, session, tty_nr, ... and
            // starttime, the 22nd field of the line (proc(5)).
            Some(Proc {
                pid,
                state: fields.first()?.chars().next()?,
                ppid: fields.get(1)?.parse().ok()?,
                pgrp: fields.get(2)?.parse().ok()?,
                tty: fields.get(4)?.parse().ok()?,
                start_ticks: fields.get(19)?.parse().ok()?,
            })
        })
        .collect()
}

/// Processes that have `path` open, from their /proc/<pid>/fd links: how a
/// git lock file held by a live git (a person's `git commit` waiting in an
/// editor) is told from one a killed process left behind.
pub fn holders_of(path: &std::path::Path) -> Vec<i32> {
    let want = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    live_processes()
        .into_iter()
        .filter(|p| {
            std::fs::read_dir(format!("/proc/{}/fd", p.pid)).is_ok_and(|fds| {
                fds.flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == want))
            })
        })
        .map(|p| p.pid)
        .collect()
}

/// Processes that escaped a run whose orch died: they left its session and
/// cleared its environment, and no subreaper was left to adopt them. They
/// are told by where they work: their directory or an open file inside
/// `dir` (the run's worktree), no controlling terminal (a person's shell or
/// editor there has one), and started at `since` (the run's start) or
/// later. One that moved out of the worktree and closed its files there is
/// not found.
pub fn strays_in(dir: &std::path::Path, since: std::time::SystemTime) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let Some(since_ticks) = ticks_after_boot(since) else {
        return Vec::new();
    };
    let inside = |link: std::path::PathBuf| link.starts_with(&dir);
    live_processes()
        .into_iter()
        .filter(|p| p.pid != me && p.tty == 0 && p.start_ticks >= since_ticks)
        .filter(|p| {
            std::fs::read_link(format!("/proc/{}/cwd", p.pid)).is_ok_and(inside)
                || std::fs::read_dir(format!("/proc/{}/fd", p.pid)).is_ok_and(|fds| {
                    fds.flatten()
                        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(inside))
                })
        })
        .map(|p| p.pid)
        .collect()
}

/// SIGKILL the [`strays_in`] `dir`, repeating while new ones appear.
/// Returns how many were killed.
pub fn kill_strays_in(dir: &std::path::Path, since: std::time::SystemTime) -> usize {
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = strays_in(dir, since);
        for pid in &pids {
            signal_pid(*pid, Signal::KILL);
        }
        killed += pids.len();
        if pids.is_empty() || Instant::now() > deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process that started by `at` (a second's slack:
/// a pid reused since `at` started long after it).
pub fn started_by(pid: i32, at: std::time::SystemTime) -> bool {
    let Some(limit) = ticks_after_boot(at + Duration::from_secs(2)) else {
        return false;
    };
    live_processes()
        .into_iter()
        .any(|p| p.pid == pid && p.start_ticks <= limit)
}

/// `at` in clock ticks after boot, as /proc/<pid>/stat counts start times.
/// Rounded down a second, so a process started in the same second counts.
fn ticks_after_boot(at: std::time::SystemTime) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let at = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    let after = at.saturating_sub(boot).saturating_sub(1);
    Some(after * rustix::param::clock_ticks_per_second())
}

/// `pid 123 (git commit -q)`: a process as a person would recognise it.
pub fn describe(pid: i32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .take(4)
        .map(|a| {
            String::from_utf8_lossy(a)
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect::<String>()
        })
        .collect();
    if command.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid} ({})", command.join(" "))
    }
}

/// Live processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    live_processes()
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .map(|p| p.pid)
        .collect()
}

/// Live processes (other than this one) with an environment variable for
/// which `matches(name_and_value)` holds.
pub fn processes_with_env(matches: impl Fn(&[u8]) -> bool) -> Vec<i32> {
    scan_env(matches).found
}

/// What one look at every process's environment found.
struct EnvScan {
    found: Vec<i32>,
    /// Some process's environment read as empty or failed for a reason
    /// other than permission: a process caught mid-exec reads so for an
    /// instant, so the look may have missed it.
    unsure: bool,
}

fn scan_env(matches: impl Fn(&[u8]) -> bool) -> EnvScan {
    let me = std::process::id() as i32;
    let mut scan = EnvScan {
        found: Vec::new(),
        unsure: false,
    };
    for p in live_processes() {
        // Kernel threads (kthreadd and its children) have no environment.
        if p.pid == me || p.pid == KTHREADD || p.ppid == KTHREADD {
            continue;
        }
        match std::fs::read(format!("/proc/{}/environ", p.pid)) {
            Ok(env) if env.is_empty() => scan.unsure = true,
            Ok(env) => {
                if env.split(|b| *b == 0).any(&matches) {
                    scan.found.push(p.pid);
                }
            }
            // Another user's process never reads (it cannot have inherited
            // a run's environment without changing user), and one that
            // exited meanwhile is gone.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotFound
                ) || e.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {}
            Err(_) => scan.unsure = true,
        }
    }
    scan
}

/// The pid of the kernel's thread creator, parent of every kernel thread.
const KTHREADD: i32 = 2;

pub fn signal_group(pgid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

pub fn signal_pid(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// SIGKILL everything carrying `run_id`, repeating while new ones appear
/// (a process may fork while we look). Returns how many were killed.
pub fn kill_run(run_id: &str) -> usize {
    let needle = format!("{RUN_ID_VAR}={run_id}");
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut empty_scans = 0;
    loop {
        let scan = scan_env(|kv| kv == needle.as_bytes());
        if scan.found.is_empty() {
            // A process forked during the look descends from one the look
            // found (and so is looked for again) unless the look missed its
            // parent, which only a process caught mid-exec makes possible:
            // then a second look, a moment apart.
            empty_scans += 1;
            if !scan.unsure || empty_scans >= 2 {
                return killed;
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        empty_scans = 0;
        // Kill what was found before looking at the clock: a slow scan on a
        // busy machine must not leave the processes it found alive.
        for pid in &scan.found {
            signal_pid(*pid, Signal::KILL);
        }
        killed += scan.found.len();
        if Instant::now() > deadline {
            return killed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The conventional name of a signal number, e.g. `SIGTERM`.
pub fn signal_name(sig: i32) -> String {
    let name = match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("signal {sig}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for_exec(child: &Child, program: &str) {
        // The environment is only readable once the child has exec'd.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        for _ in 0..500 {
            if std::fs::read(&cmdline).is_ok_and(|c| c.starts_with(program.as_bytes())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("{program} never started");
    }

    #[test]
    fn a_process_with_an_empty_environment_makes_the_look_unsure() {
        let mut child = Command::new("sleep")
            .arg("30")
            .env_clear()
            .spawn()
            .expect("sleep runs");
        wait_for_exec(&child, "sleep");
        let scan = scan_env(|_| false);
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            scan.unsure,
            "a process whose environment reads empty may be one caught mid-exec"
        );
    }

    #[test]
    fn kill_run_kills_a_process_carrying_the_run_id_and_nothing_else() {
        let run = format!("test-{}", std::process::id());
        let mut ours = Command::new("sleep")
            .arg("30")
            .env(RUN_ID_VAR, &run)
            .spawn()
            .expect("sleep runs");
        let mut other = Command::new("sleep")
            .arg("30")
            .env(RUN_ID_VAR, format!("{run}-other"))
            .spawn()
            .expect("sleep runs");
        wait_for_exec(&ours, "sleep");
        wait_for_exec(&other, "sleep");
        assert_eq!(kill_run(&run), 1);
        let status = ours.wait().expect("waited");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(
            other.try_wait().expect("polled").is_none(),
            "another run's process lives"
        );
        let _ = other.kill();
        let _ = other.wait();
    }
}
