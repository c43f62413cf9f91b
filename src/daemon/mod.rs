//! The cluster daemon.

pub mod podspec;
pub mod runtime;
pub mod services;
pub mod state;
