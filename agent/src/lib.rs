//! vrrp-agent: a drop-in replacement for keepalived's VRRP side, with an XDP data path.
//!
//! Layers (arrows point down only): `xdp` holds the kernel program and its maps. The config,
//! protocol engine, tracking and operations layers arrive with their issues (ARCHITECTURE.md).

pub mod config;
pub mod iface;
pub mod io;
pub mod logging;
pub mod netlink;
#[cfg(test)]
mod test_rng;
pub mod vrrp;
pub mod xdp;
