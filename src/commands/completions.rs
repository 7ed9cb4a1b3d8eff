//! `orch completions` and `orch man`: generated from the command
//! definitions, so they never drift from `--help`.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// Print a shell completion script.
///
/// bash: `orch completions bash > ~/.local/share/bash-completion/completions/orch`;
/// zsh: `orch completions zsh > ~/.zfunc/_orch` (with `fpath+=~/.zfunc`);
/// fish: `orch completions fish > ~/.config/fish/completions/orch.fish`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Print the man page, or write one page per command into a directory.
///
/// `orch man > ~/.local/share/man/man1/orch.1`, or
/// `orch man --dir ~/.local/share/man/man1` for `man orch-tick` too.
#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write orch.1 and orch-<command>.1 here instead of printing orch.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: CompletionsArgs) -> Result<i32> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "orch", &mut out);
    write_stdout(&out)?;
    Ok(0)
}

pub fn man(args: ManArgs) -> Result<i32> {
    let cmd = Cli::command();
    match args.dir {
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut out)
                .map_err(|e| Error::other(format!("cannot render the man page: {e}")))?;
            write_stdout(&out)?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io("cannot create the man page directory", &dir, e))?;
            clap_mangen::generate_to(cmd, &dir)
                .map_err(|e| Error::io("cannot write the man pages", &dir, e))?;
            crate::outln!("wrote the man pages to {}", dir.display());
        }
    }
    Ok(0)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        // A reader that went away (`| head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("cannot write to stdout", "-", e))
        }
        _ => Ok(()),
    }
}
