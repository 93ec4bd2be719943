//! The I/O edges around the sans-IO state machine: VRRP sockets, gratuitous ARP / NA frames,
//! and the runtime loop that joins them with netlink and the XDP maps.

pub mod garp;
pub mod ratelimit;
pub mod runtime;
pub mod socket;
pub mod sockfilter;
pub mod timer;
pub mod tracking;
