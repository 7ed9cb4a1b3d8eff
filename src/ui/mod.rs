//! Terminal output: colour only on a terminal and never under NO_COLOR, and
//! errors printed once with their whole chain and a hint.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::cli::ColorChoice;

use crate::error::{Error, render_chain};

pub mod report;

/// The command line's `--color` and `-v`, set once before the command runs.
static COLOR: OnceLock<ColorChoice> = OnceLock::new();
static VERBOSE: AtomicU8 = AtomicU8::new(0);

/// Take the command line's choices of colour and detail.
pub fn configure(color: ColorChoice, verbose: u8) {
    let _ = COLOR.set(color);
    VERBOSE.store(verbose, Ordering::Relaxed);
}

/// How many `-v` were given.
pub fn verbose() -> u8 {
    VERBOSE.load(Ordering::Relaxed)
}

/// `--color always` wins over NO_COLOR, as a per-command choice should
/// (no-color.org); `auto` colours a terminal unless NO_COLOR is set.
fn color_for(terminal: bool) -> bool {
    match COLOR.get().copied().unwrap_or(ColorChoice::Auto) {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && terminal,
    }
}

/// Whether to emit ANSI styling on stdout.
pub fn color_stdout() -> bool {
    color_for(std::io::stdout().is_terminal())
}

fn color_stderr() -> bool {
    color_for(std::io::stderr().is_terminal())
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn stdout() -> Style {
        Style {
            color: color_stdout(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn red(&self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn cyan(&self, text: &str) -> String {
        self.paint("36", text)
    }
}

pub fn print_error(err: &Error) {
    let style = Style {
        color: color_stderr(),
    };
    // Errors quote orch.yaml, tickets and file names: nothing in them may
    // drive the terminal.
    eprintln!(
        "{} {}",
        style.red("error:"),
        crate::text::visible(&render_chain(err))
    );
    if let Some(hint) = err.hint() {
        eprintln!("{} {}", style.cyan("hint:"), crate::text::visible(&hint));
    }
}

pub fn warn(text: &str) {
    let style = Style {
        color: color_stderr(),
    };
    eprintln!(
        "{} {}",
        style.yellow("warning:"),
        crate::text::visible(text)
    );
}

/// Print a line on stdout. A reader that went away (`orch status | head`)
/// ends the command quietly with success, as ripgrep does; other write
/// errors are ignored, since there is nowhere left to report them.
pub fn write_out(args: std::fmt::Arguments<'_>) {
    let captured = CAPTURE.with_borrow_mut(|c| match c {
        Some(buf) => {
            let _ = std::fmt::Write::write_fmt(buf, args);
            buf.push('\n');
            true
        }
        None => false,
    });
    if captured {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|_| out.write_all(b"\n"))
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// What `f` prints with [`outln!`], as a string instead of on stdout: a
/// screen that redraws (`orch watch`) writes each frame in one go, so the
/// terminal never shows half of one.
pub fn capture(f: impl FnOnce()) -> String {
    CAPTURE.with_borrow_mut(|c| *c = Some(String::new()));
    f();
    CAPTURE.with_borrow_mut(|c| c.take()).unwrap_or_default()
}

/// Print a line on stdout and never fail: for `orch tick`, which must
/// settle its tickets whatever happened to its output.
pub fn emit(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|_| out.write_all(b"\n"));
}

/// `println!` for commands: see [`write_out`].
#[macro_export]
macro_rules! outln {
    () => { $crate::ui::write_out(format_args!("")) };
    ($($arg:tt)*) => { $crate::ui::write_out(format_args!($($arg)*)) };
}

/// `println!` for the tick's progress: see [`emit`].
#[macro_export]
macro_rules! emitln {
    () => { $crate::ui::emit(format_args!("")) };
    ($($arg:tt)*) => { $crate::ui::emit(format_args!($($arg)*)) };
}
