//! The cluster daemon.

pub(crate) mod capture;
pub mod dataplane;
pub(crate) mod faults;
pub(crate) mod flows;
pub(crate) mod kube;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub mod nodes;
pub(crate) mod observe;
pub mod podspec;
pub(crate) mod queueio;
pub(crate) mod repair;
pub(crate) mod routing;
pub mod runtime;
pub mod services;
pub mod state;
pub(crate) mod tunhold;
