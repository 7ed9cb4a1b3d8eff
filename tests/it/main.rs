//! Integration tests: the real `orch` binary on real git repositories in
//! temporary directories, with fake agents that are real processes.

mod board;
mod bounds;
mod budget;
mod by_hand;
mod cache;
mod cli_flags;
mod contain;
mod crash;
mod demo;
mod disk_full;
mod doctor;
mod durable;
mod env;
mod format;
mod gc;
mod heartbeat;
mod hostile;
mod identity;
mod land;
mod local_state;
mod misbehave;
mod model_server;
mod new_ticket;
mod newcomer;
mod notify;
mod operator;
mod plan_files;
mod real_agents;
mod recipes;
mod remote;
mod repo_features;
mod terminal;
mod tick;
mod typos_and_stuck;
mod unavailable;
