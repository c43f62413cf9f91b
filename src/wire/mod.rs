//! Wire types: what one lab process hands another, kept apart from both
//! sides so neither depends on the other's internals (the daemon and the
//! controllers read what a pod's shim reports without reaching into the
//! shim).

pub mod shim;
