//! lab: a real Kubernetes-style cluster network on one Linux machine.

pub mod model;
