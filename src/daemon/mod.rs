//! The cluster daemon.

pub mod podspec;
pub mod runtime;
pub mod state;
