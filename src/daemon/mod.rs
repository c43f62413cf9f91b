//! The cluster daemon.

pub mod state;
