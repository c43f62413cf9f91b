//! The Services data plane core: a pure, sans-I/O NAT with per-flow
//! conntrack and kube-proxy's load-balancing semantics. Packets go in as
//! byte slices (a virtio-net header followed by an IPv4 packet), a
//! [`Verdict`] comes out; time is passed in. The device loop that owns the
//! TUN lives in `daemon::dataplane`.

pub mod checksum;
pub mod conntrack;
pub mod nat;
pub mod table;
pub mod vnet;

pub use conntrack::{Counters, ServiceCounters};
pub use nat::{DropReason, Nat, Verdict};
pub use table::{Backend, Proto, ServicePort, ServiceTable};
