//! lab: a real Kubernetes-style cluster network on one Linux machine.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod controller;
pub mod daemon;
pub mod ipam;
pub mod model;
pub mod store;

// TEMPORARY type-check stubs (replaced by the real modules).
pub mod agnhost {
    pub fn main(_a: &[String]) -> i32 {
        1
    }
}
pub mod shim;
pub mod sys {
    pub mod iproute;
    pub mod process;
    pub mod tun;
}
