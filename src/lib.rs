//! lab: a real Kubernetes-style cluster network on one Linux machine.

pub mod controller;
pub mod ipam;
pub mod model;
pub mod shim {
    pub mod proto;
}
pub mod store;
