//! The Services data plane core: a pure, sans-I/O NAT with per-flow
//! conntrack and kube-proxy's load-balancing semantics. Packets go in as
//! byte slices (a virtio-net header followed by an IPv4 packet), a
//! [`Verdict`] comes out; time is passed in. No syscalls, no allocation per
//! packet on established flows. The device loop that owns the TUN lives in
//! `daemon::dataplane`.
//!
//! - [`checksum`]: RFC 1624 incremental and partial (offload) updates.
//! - [`vnet`]: the 10-byte `virtio_net_hdr`.
//! - [`table`]: the service table the control plane swaps in whole.
//! - [`conntrack`]: the flow table (both directions, fixed capacity, TCP
//!   states with nf_conntrack's timeouts).
//! - [`affinity`]: `sessionAffinity: ClientIP`.
//! - [`counters`]: global, per-service-port and per-service counters.
//! - [`fault`]: injected faults (`lab fault svc/…`), decided per flow and
//!   per packet.
//! - [`gro`]: UDP trains coalesced into one GSO write (an option of the
//!   queue loop).
//! - [`nat`]: [`Nat::process`] and friends.
//! - [`shard`]: [`Sharded`], the NAT split by client (address, port) so
//!   several queues run without a global lock.
//! - [`snapshot`]: the compact binary flow-table snapshot.

pub mod affinity;
pub mod checksum;
pub mod conntrack;
pub mod counters;
pub mod events;
pub mod fault;
pub mod gro;
pub mod nat;
pub mod shard;
pub mod snapshot;
pub mod table;
pub mod vnet;

pub use conntrack::{Flow, TcpState, Tuple};
pub use counters::{Counters, DropReason, ServiceCounters};
pub use nat::{Nat, RestoreError, Verdict};
pub use shard::{Sharded, SnapshotStats, Worker};
pub use table::{Backend, Proto, ServicePort, ServiceTable};
pub use vnet::VnetHdr;
