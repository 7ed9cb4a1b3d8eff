//! One error type for the library, and the exit codes it maps to.
//!
//! Every error carries the message a user reads and, where one exists, a hint
//! that says what to do next. `main` prints both and exits with
//! [`Error::exit_code`]; nothing else in the crate decides an exit code.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Exit codes, documented in the README. Scripts depend on them.
pub mod exit {
    /// Done, including "nothing to do" and attempts whose failure was recorded.
    pub const OK: i32 = 0;
    /// orch itself failed.
    pub const FAILED: i32 = 1;
    /// Usage or configuration error.
    pub const USAGE: i32 = 2;
    /// The board lock stayed busy past `--lock-timeout` (EX_TEMPFAIL).
    pub const LOCK_BUSY: i32 = 75;
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or the situation it was run in is wrong.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// orch.yaml (or another configuration input) cannot be used.
    #[error("{}: {message}", location(path, *line))]
    Config {
        path: PathBuf,
        line: Option<u64>,
        message: String,
        hint: Option<String>,
    },
    /// Another process holds the board lock.
    #[error("the board lock {} is still held after {} by {}", path.display(), crate::duration::display(*waited), holder.as_deref().unwrap_or("another process (not found in /proc/locks)"))]
    LockBusy {
        path: PathBuf,
        waited: Duration,
        /// The holding process, as /proc shows it: `pid 123 (orch tick)`.
        holder: Option<String>,
    },
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error("{context}: {}", path.display())]
    Io {
        context: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Other {
        message: String,
        hint: Option<String>,
    },
    /// An error of a kind without a hint of its own, with one added. The
    /// error stays the source, so its chain and exit code are kept.
    #[error("{inner}")]
    Hinted {
        #[source]
        inner: Box<Error>,
        hint: String,
    },
}

fn location(path: &Path, line: Option<u64>) -> String {
    match line {
        Some(line) => format!("{}:{line}", path.display()),
        None => path.display().to_string(),
    }
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub fn other(message: impl Into<String>) -> Self {
        Error::Other {
            message: message.into(),
            hint: None,
        }
    }

    pub fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            context: context.into(),
            path: path.into(),
            source,
        }
    }

    /// Attach a hint, replacing any earlier one.
    pub fn hinted(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        match &mut self {
            Error::Usage { hint, .. } | Error::Config { hint, .. } | Error::Other { hint, .. } => {
                *hint = Some(text)
            }
            Error::Hinted { hint, .. } => *hint = text,
            // Variants without a hint field keep their source and exit code.
            Error::LockBusy { .. } | Error::Git(_) | Error::Io { .. } => {
                return Error::Hinted {
                    inner: Box::new(self),
                    hint: text,
                };
            }
        }
        self
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. } | Error::Config { hint, .. } | Error::Other { hint, .. } => {
                hint.clone()
            }
            Error::LockBusy { .. } => Some(
                "another command is working on this board; try again when it is done, or raise --lock-timeout"
                    .into(),
            ),
            Error::Hinted { hint, .. } => Some(hint.clone()),
            Error::Git(e) => e.hint().map(str::to_string),
            Error::Io { .. } => None,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::Config { .. } => exit::USAGE,
            Error::LockBusy { .. } => exit::LOCK_BUSY,
            Error::Hinted { inner, .. } => inner.exit_code(),
            Error::Git { .. } | Error::Io { .. } | Error::Other { .. } => exit::FAILED,
        }
    }
}

/// The error and its sources, once each, joined with ": ".
pub fn render_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Adds context to io and git results without a closure at every call site.
pub trait Context<T> {
    fn context_path(self, context: &str, path: &Path) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn context_path(self, context: &str, path: &Path) -> Result<T> {
        self.map_err(|e| Error::io(context, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_keeps_the_source_and_the_exit_code() {
        let io = std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device");
        let e = Error::io("cannot write", "/x/y", io).hinted("free some space");
        assert_eq!(e.hint().as_deref(), Some("free some space"));
        assert_eq!(e.exit_code(), exit::FAILED);
        assert_eq!(
            render_chain(&e),
            "cannot write: /x/y: No space left on device"
        );
        let busy = Error::LockBusy {
            path: "/l".into(),
            waited: Duration::from_secs(1),
            holder: None,
        }
        .hinted("wait");
        assert_eq!(busy.exit_code(), exit::LOCK_BUSY);
    }
}
