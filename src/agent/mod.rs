//! Running a coding agent: presets, the prompt, and supervision.

pub mod events;
pub mod preset;
pub mod prompt;
pub mod supervise;
pub mod unavailable;
