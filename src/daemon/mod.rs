//! The cluster daemon.

pub mod dataplane;
pub mod podspec;
pub mod runtime;
pub mod services;
pub mod state;
