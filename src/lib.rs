//! lab: a real Kubernetes-style cluster network on one Linux machine.

pub mod cluster;
pub mod controller;
pub mod daemon;
pub mod ipam;
pub mod model;
pub mod shim {
    pub mod proto;
}
pub mod store;
