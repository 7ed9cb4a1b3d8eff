use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
