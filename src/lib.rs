//! orch: a file-system-native orchestrator for coding agents.
//!
//! Tickets are markdown files on the branch orch/plan; a short-lived
//! `orch tick` claims ready ones, runs a coding agent for each in its own
//! worktree under timeouts, and commits every result. The binary in
//! `src/main.rs` only parses arguments and maps errors to exit codes; this
//! library holds the rest.

#![forbid(unsafe_code)]

pub mod agent;
pub mod board;
pub mod budget;
pub mod cli;
pub mod commands;
pub mod config;
pub mod duration;
pub mod error;
pub mod failpoint;
pub mod gc;
pub mod git;
pub mod gitcli;
pub mod heartbeat;
pub mod land;
pub mod lock;
pub mod notify;
pub mod outcome;
pub mod process;
pub mod remote;
pub mod runlog;
pub mod safe_read;
pub mod summary;
#[cfg(test)]
mod testing;
pub mod text;
pub mod tick;
pub mod ticket;
pub mod ui;
pub mod workspace;

pub use error::{Error, Result};
