//! vrrp-agent: a drop-in replacement for keepalived's VRRP side, with an XDP data path.
//!
//! Layers (arrows point down only): `xdp` holds the kernel program and its maps. The config,
//! protocol engine (`vrrp`, sans-IO), tracking (`track`) and notifications (`notify`) sit on
//! top; `io` runs them all (ARCHITECTURE.md).

pub mod config;
pub mod iface;
pub mod io;
pub mod logging;
pub mod lvs;
pub mod netlink;
pub mod notify;
pub mod ops;
#[cfg(test)]
mod test_rng;
pub mod track;
pub mod vrrp;
pub mod xdp;
