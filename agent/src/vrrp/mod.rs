//! The VRRP protocol, sans-IO: packets now; the per-instance state machine (RFC 5798 §6)
//! arrives with the rest of the VRRP engine issue.

pub mod packet;
