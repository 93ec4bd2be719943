//! Operations: what an operator touches besides the config — the control socket and
//! `vrrp-agent status`, the Prometheus endpoint.

pub mod control;
pub mod metrics;
pub mod systemd;
