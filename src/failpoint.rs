//! Test-only crash points. With `ORCH_FAILPOINT=<name>[,<name>...]` in its
//! environment, orch kills itself with SIGKILL when it reaches a named
//! point, exactly as `kill -9` would at that instant. The crash tests use
//! them to stop orch between the steps of every board transition and check
//! that the next tick repairs the board. Without the variable, a check is
//! one comparison against an empty list.

use std::sync::OnceLock;

/// Every point, in the order a tick reaches them.
pub const POINTS: &[&str] = &[
    "reconcile-after-kill",
    "claim-after-move",
    "claim-after-commit",
    "pool-take",
    "pool-reset",
    "run-after-spawn",
    "settle-after-work-commit",
    "settle-after-summary",
    "settle-after-move",
    "pool-return",
];

fn armed() -> &'static [String] {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED.get_or_init(|| {
        std::env::var("ORCH_FAILPOINT")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Die here if this point is armed.
pub fn hit(name: &str) {
    if armed().iter().any(|a| a == name) {
        let me = rustix::process::getpid();
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; this line is never reached.
        std::process::abort();
    }
}
