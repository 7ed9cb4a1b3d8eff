use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    durable_git_writes();
    let cli = orch::cli::Cli::parse();
    let code = match orch::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            orch::ui::print_error(&err);
            err.exit_code()
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// libgit2 writes objects and refs without syncing them unless told (git2
/// has no safe call for it): orch reports a board change, a kept ref or a
/// result only once what it depends on is on the disk, so it must survive
/// a power loss, not only a kill.
#[allow(unsafe_code)]
fn durable_git_writes() {
    libgit2_sys::init();
    // SAFETY: this option takes exactly one int, and it is set once,
    // before any thread starts or any repository is opened.
    let rc = unsafe {
        libgit2_sys::git_libgit2_opts(
            libgit2_sys::GIT_OPT_ENABLE_FSYNC_GITDIR as std::ffi::c_int,
            1 as std::ffi::c_int,
        )
    };
    debug_assert!(rc >= 0, "libgit2 refused its fsync option");
}
