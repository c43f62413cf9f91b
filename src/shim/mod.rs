//! The pod shim: `lab shim --spec FILE` becomes PID 1 of a pod's PID
//! namespace inside its network namespace, starts the containers, reaps
//! every process, runs probes, restarts with back-off, reports status on a
//! Unix socket and stops the pod gracefully. It outlives the daemon that
//! started it. See [`crate::wire::shim`] for the contract with the daemon.
//!
//! Layout: [`pod`], [`backoff`] and [`probe`] are the pure state machines;
//! `runtime` is the event loop that carries out their decisions; `start`
//! sets up the namespaces and holds the daemon-side helpers ([`spawn`],
//! [`is_alive`], [`enter_and_exec`]).

pub mod backoff;
mod logs;
pub mod pod;
pub mod probe;
mod runtime;
mod start;
pub mod time;

pub use start::{Error, enter_and_exec, is_alive, run, spawn};
