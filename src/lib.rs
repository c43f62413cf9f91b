//! lab: a real Kubernetes-style cluster network on one Linux machine.
//!
//! Modules are crate-private unless something outside the crate needs them
//! (the binary: `cli`; the shim's integration tests: `shim`; the NAT fuzz
//! target: `dataplane`), so rustc reports code nothing uses.

pub(crate) mod agnhost;
pub(crate) mod api;
pub mod cli;
pub(crate) mod cluster;
pub(crate) mod controller;
pub(crate) mod daemon;
pub mod dataplane;
pub(crate) mod dns;
pub(crate) mod duration;
pub(crate) mod ipam;
pub(crate) mod logfile;
pub(crate) mod logging;
pub(crate) mod model;
pub(crate) mod print;
pub mod proto;
pub mod shim;
pub(crate) mod store;
pub mod wire;

pub(crate) mod sys {
    pub mod lock;
    pub mod net;
    pub mod netns;
    pub mod netwatch;
    pub mod nodenet;
    pub mod packet;
    pub mod pidfd;
    pub mod podexec;
    pub mod process;
    pub mod pty;
    pub mod ready;
    pub mod security;
    pub mod tty;
    pub mod tun;
}
