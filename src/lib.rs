//! lab: a real Kubernetes-style cluster network on one Linux machine.

pub mod agnhost;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod daemon;
pub mod dataplane;
pub mod dns;
pub mod ipam;
pub mod model;
pub mod store;

pub mod shim;
pub mod sys {
    pub mod iproute;
    pub mod net;
    pub mod netns;
    pub mod process;
    pub mod security;
    pub mod tun;
}
