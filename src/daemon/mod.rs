//! The cluster daemon.

pub mod podspec;
pub mod state;
