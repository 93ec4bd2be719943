//! The VRRP protocol, sans-IO: the packet codec, one instance's state machine (RFC 5798 §6),
//! and the translation of a parsed `vrrp_instance` into its parameters.

pub mod instance;
pub mod packet;
pub mod params;
#[cfg(test)]
mod sim;
