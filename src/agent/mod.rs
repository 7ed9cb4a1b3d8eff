//! Running a coding agent: presets, the prompt, the contract, the launch
//! and its supervision.

pub mod contract;
pub mod events;
pub mod launch;
pub mod preset;
pub mod prompt;
pub mod sandbox;
pub mod supervise;
pub mod unavailable;
