//! The typed configuration: what `vrrp-agent` will run, with keepalived's defaults applied.
//! Field names are the stable JSON of `--dump-config`.
//!
//! Keywords keepalived accepts whose behaviour arrives with a later layer are kept, as written,
//! in the `other` map of their block, so nothing in a config is silently dropped and the dump
//! shows everything that was read.

use std::{collections::BTreeMap, net::IpAddr};

use serde::Serialize;

use super::diag::Loc;

/// Keywords read but not modelled yet: keyword → the argument lists of each occurrence.
pub type Other = BTreeMap<String, Vec<Vec<String>>>;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Config {
    pub global: GlobalDefs,
    pub scripts: Vec<VrrpScript>,
    pub track_files: Vec<TrackFile>,
    pub track_processes: Vec<TrackProcess>,
    pub sync_groups: Vec<SyncGroup>,
    pub instances: Vec<Instance>,
    /// The `bfd_instance` blocks, as written (what `track_bfd` may name; run by a later layer).
    pub bfd_instances: Vec<RawBlock>,
    /// Interfaces whose link state is polled (`linkbeat_interfaces`); each must exist.
    pub linkbeat_interfaces: Vec<InterfaceRef>,
    /// The top-level `instance NAME` (keepalived's instance name: `data_use_instance` puts it
    /// in the data dump's file name).
    pub instance: Option<String>,
    /// The top-level `SSL` block: SSL_GET's client certificate.
    pub ssl: Option<Ssl>,
    /// LVS side, run by the XDP balancer (`crate::lvs`).
    pub virtual_server_groups: Vec<RawBlock>,
    pub virtual_servers: Vec<VirtualServer>,
}

/// keepalived's `SSL { password ca certificate key }`: the files SSL_GET's TLS context
/// loads (the client certificate chain and its key; `ca` is loaded but, as in keepalived,
/// verifies nothing).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ssl {
    pub at: Loc,
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
}

/// An interface named somewhere in the config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InterfaceRef {
    pub name: String,
    pub at: Loc,
}

/// A block kept as written (LVS side, and blocks later layers will model).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RawBlock {
    pub keyword: String,
    pub args: Vec<String>,
    pub at: Loc,
    pub children: Vec<RawBlock>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GlobalDefs {
    pub router_id: Option<String>,
    pub notification_email: Vec<String>,
    pub notification_email_from: Option<String>,
    pub smtp_server: Option<SmtpServer>,
    pub smtp_helo_name: Option<String>,
    /// Seconds (keepalived default 30).
    pub smtp_connect_timeout: u32,
    /// `smtp_alert` as written (None: not written, which keepalived tells apart from false:
    /// a real server's alerts then default to on, for backwards compatibility).
    pub smtp_alert: Option<bool>,
    pub smtp_alert_vrrp: bool,
    /// `smtp_alert_checker` (None: not written): the checkers' alerts.
    pub smtp_alert_checker: Option<bool>,
    /// `no_checker_emails`: a checker's alert only when its real server's state changes.
    pub no_checker_emails: bool,
    /// `checker_log_all_failures`: every checker logs each failed check while its server
    /// is up, as the checker keyword `log_all_failures`.
    pub checker_log_all_failures: bool,
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    pub enable_script_security: bool,
    /// 2 or 3 (default 2).
    pub vrrp_version: u8,
    pub vrrp_strict: bool,
    pub vrrp_mcast_group4: IpAddr,
    pub vrrp_mcast_group6: IpAddr,
    pub vrrp_garp_master_delay: u32,
    pub vrrp_garp_master_repeat: u32,
    pub vrrp_garp_master_refresh: u32,
    pub vrrp_garp_master_refresh_repeat: u32,
    pub vrrp_garp_lower_prio_delay: Option<u32>,
    pub vrrp_garp_lower_prio_repeat: Option<u32>,
    /// Seconds between gratuitous ARPs of one burst (fractional).
    pub vrrp_garp_interval: f64,
    pub vrrp_gna_interval: f64,
    pub vrrp_min_garp: bool,
    pub vrrp_lower_prio_no_advert: bool,
    pub vrrp_higher_prio_send_advert: bool,
    pub vrrp_check_unicast_src: bool,
    pub vrrp_skip_check_adv_addr: bool,
    /// Master_Down_Interval in adverts (RFC 5798: 3).
    pub vrrp_down_timer_adverts: u32,
    /// Seconds (fractional).
    pub vrrp_startup_delay: f64,
    pub notify_fifo: Option<String>,
    /// `notify_fifo_script "CMD ARGS" [USER [GROUP]]`.
    pub notify_fifo_script: Option<NotifyScript>,
    pub vrrp_notify_fifo: Option<String>,
    pub vrrp_notify_fifo_script: Option<NotifyScript>,
    pub other: Other,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_helo_name: None,
            smtp_connect_timeout: 30,
            smtp_alert: None,
            smtp_alert_vrrp: false,
            smtp_alert_checker: None,
            no_checker_emails: false,
            checker_log_all_failures: false,
            script_user: None,
            script_group: None,
            enable_script_security: false,
            vrrp_version: 2,
            vrrp_strict: false,
            vrrp_mcast_group4: IpAddr::V4([224, 0, 0, 18].into()),
            vrrp_mcast_group6: "ff02::12".parse().expect("literal"),
            vrrp_garp_master_delay: 5,
            vrrp_garp_master_repeat: 5,
            vrrp_garp_master_refresh: 0,
            vrrp_garp_master_refresh_repeat: 1,
            vrrp_garp_lower_prio_delay: None,
            vrrp_garp_lower_prio_repeat: None,
            vrrp_garp_interval: 0.0,
            vrrp_gna_interval: 0.0,
            vrrp_min_garp: false,
            vrrp_lower_prio_no_advert: false,
            vrrp_higher_prio_send_advert: false,
            vrrp_check_unicast_src: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_down_timer_adverts: 3,
            vrrp_startup_delay: 0.0,
            notify_fifo: None,
            notify_fifo_script: None,
            vrrp_notify_fifo: None,
            vrrp_notify_fifo_script: None,
            other: Other::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VrrpScript {
    pub name: String,
    pub at: Loc,
    /// argv as keepalived splits it (quotes respected).
    pub script: Vec<String>,
    /// Seconds between runs (default 1).
    pub interval: f64,
    /// Seconds before the run is killed and counts as a failure (default: interval).
    pub timeout: Option<f64>,
    /// Priority change while the script succeeds (weight > 0) or fails (weight < 0).
    pub weight: i32,
    pub weight_reverse: bool,
    /// Successes needed to go from failed to OK (default 1).
    pub rise: u32,
    /// Failures needed to go from OK to failed (default 1).
    pub fall: u32,
    pub init_fail: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub other: Other,
}

impl VrrpScript {
    /// Defined the same way, wherever it was written.
    pub fn same_as(&self, other: &VrrpScript) -> bool {
        VrrpScript {
            at: other.at.clone(),
            ..self.clone()
        } == *other
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackFile {
    pub name: String,
    pub at: Loc,
    pub file: Option<String>,
    pub weight: i32,
    pub weight_reverse: bool,
    pub init_file: Option<(i64, bool)>,
    pub other: Other,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackProcess {
    pub name: String,
    pub at: Loc,
    pub process: Vec<String>,
    pub weight: i32,
    pub weight_reverse: bool,
    pub quorum: u32,
    pub quorum_max: Option<u32>,
    pub delay: Option<f64>,
    pub other: Other,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SyncGroup {
    pub name: String,
    pub at: Loc,
    pub members: Vec<String>,
    pub track_scripts: Vec<Tracked>,
    pub track_interfaces: Vec<Tracked>,
    pub track_files: Vec<Tracked>,
    pub track_processes: Vec<Tracked>,
    pub track_bfds: Vec<Tracked>,
    pub notify: Notify,
    pub smtp_alert: bool,
    pub sync_group_tracking_weight: bool,
    pub other: Other,
}

/// A tracker reference with its weight: `NAME [weight W [reverse]]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Tracked {
    pub name: String,
    /// None: the tracker's own weight (scripts, files) or 0 (interfaces).
    pub weight: Option<i32>,
    /// `reverse` / `noreverse` (None: the tracker's own setting).
    pub reverse: Option<bool>,
    pub at: Loc,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Notify {
    pub master: Option<NotifyScript>,
    pub backup: Option<NotifyScript>,
    pub fault: Option<NotifyScript>,
    pub stop: Option<NotifyScript>,
    /// `notify_deleted` with no script: deletion is reported as DELETED, not FAULT.
    pub deleted: Option<NotifyScript>,
    pub master_rx_lower_pri: Option<NotifyScript>,
    /// `notify`: called with TYPE NAME STATE PRIORITY appended.
    pub generic: Option<NotifyScript>,
}

/// `notify_X "COMMAND ARGS" [USER [GROUP]]`: keepalived splits the (quoted) first argument into
/// argv; the second and third name who it runs as.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NotifyScript {
    pub argv: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum State {
    Master,
    Backup,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Auth {
    None,
    /// Password, at most 8 bytes (longer ones are cut, as keepalived does).
    Pass(String),
    Ah(String),
}

/// A virtual address line: `ADDR[/PREFIX] [brd ADDR] [dev IF] [scope SCOPE] [label LABEL]
/// [peer ADDR] [no_track] ...`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualAddress {
    pub addr: IpAddr,
    pub prefix: u8,
    pub brd: Option<IpAddr>,
    pub dev: Option<String>,
    pub scope: Option<String>,
    pub label: Option<String>,
    pub peer: Option<IpAddr>,
    pub no_track: bool,
    /// `preferred_lft N|forever` (forever: u32::MAX, the kernel's infinity). Without it an
    /// IPv6 /128 VIP is added deprecated (0), as keepalived adds it, so connections from
    /// this node (health checks) do not take it as their source; other IPv6 VIPs forever.
    pub preferred_lft: Option<u32>,
    /// Options read but not modelled yet (e.g. `home`, `-nodad`).
    pub other: Vec<String>,
    pub at: Loc,
}

impl VirtualAddress {
    /// The same address line, wherever it was written.
    pub fn same_as(&self, other: &VirtualAddress) -> bool {
        VirtualAddress {
            at: other.at.clone(),
            ..self.clone()
        } == *other
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnicastPeer {
    pub addr: IpAddr,
    pub min_ttl: Option<u8>,
    pub max_ttl: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Instance {
    pub name: String,
    pub at: Loc,
    /// The state asked for at start-up (default BACKUP).
    pub state: State,
    pub interface: Option<String>,
    pub virtual_router_id: Option<u8>,
    /// 1..255; keepalived's default 100, or 255 for `state MASTER` without a priority.
    pub priority: u8,
    /// Whether `priority` was written (the MASTER → 255 rule needs to know).
    pub priority_set: bool,
    /// Centiseconds (v2: whole seconds × 100).
    pub advert_int_cs: u32,
    /// 2 or 3; default the global vrrp_version (3 for an IPv6 instance).
    pub version: u8,
    /// `state` / `version` were written (keepalived derives them otherwise).
    #[serde(skip)]
    pub state_set: bool,
    #[serde(skip)]
    pub version_set: bool,
    /// Instance overrides of the global defaults (None: the global value).
    pub down_timer_adverts: Option<u32>,
    pub lower_prio_no_advert: Option<bool>,
    pub higher_prio_send_advert: Option<bool>,
    pub nopreempt: bool,
    /// Seconds.
    pub preempt_delay: f64,
    pub auth: Auth,
    pub virtual_ipaddress: Vec<VirtualAddress>,
    pub virtual_ipaddress_excluded: Vec<VirtualAddress>,
    pub virtual_routes: Vec<RawBlock>,
    pub virtual_rules: Vec<RawBlock>,
    pub track_interfaces: Vec<Tracked>,
    pub track_scripts: Vec<Tracked>,
    pub track_files: Vec<Tracked>,
    pub track_processes: Vec<Tracked>,
    pub track_bfds: Vec<Tracked>,
    pub dont_track_primary: bool,
    pub mcast_src_ip: Option<IpAddr>,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peers: Vec<UnicastPeer>,
    /// vrrp-agent's extension `allowed_peers { ADDR ... }`: a multicast instance accepts
    /// adverts only from these sources (checked in the XDP filter and the state machine), as
    /// `check_unicast_src` does for unicast peers.
    pub allowed_peers: Vec<IpAddr>,
    pub unicast_ttl: u8,
    pub use_vmac: Option<String>,
    pub vmac_xmit_base: bool,
    pub accept: Option<bool>,
    pub garp_master_delay: Option<u32>,
    pub garp_master_repeat: Option<u32>,
    pub garp_master_refresh: Option<u32>,
    pub garp_master_refresh_repeat: Option<u32>,
    pub garp_lower_prio_delay: Option<u32>,
    pub garp_lower_prio_repeat: Option<u32>,
    pub notify: Notify,
    pub smtp_alert: bool,
    pub strict_mode: Option<bool>,
    pub skip_check_adv_addr: Option<bool>,
    pub check_unicast_src: bool,
    pub v3_checksum_as_v2: bool,
    pub other: Other,
}

impl Instance {
    pub fn new(name: String, at: Loc, version: u8) -> Self {
        Instance {
            name,
            at,
            state: State::Backup,
            interface: None,
            virtual_router_id: None,
            priority: 100,
            priority_set: false,
            advert_int_cs: 100,
            version,
            state_set: false,
            version_set: false,
            down_timer_adverts: None,
            lower_prio_no_advert: None,
            higher_prio_send_advert: None,
            nopreempt: false,
            preempt_delay: 0.0,
            auth: Auth::None,
            virtual_ipaddress: Vec::new(),
            virtual_ipaddress_excluded: Vec::new(),
            virtual_routes: Vec::new(),
            virtual_rules: Vec::new(),
            track_interfaces: Vec::new(),
            track_scripts: Vec::new(),
            track_files: Vec::new(),
            track_processes: Vec::new(),
            track_bfds: Vec::new(),
            dont_track_primary: false,
            mcast_src_ip: None,
            unicast_src_ip: None,
            unicast_peers: Vec::new(),
            allowed_peers: Vec::new(),
            unicast_ttl: 255,
            use_vmac: None,
            vmac_xmit_base: false,
            accept: None,
            garp_master_delay: None,
            garp_master_repeat: None,
            garp_master_refresh: None,
            garp_master_refresh_repeat: None,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            notify: Notify::default(),
            smtp_alert: false,
            strict_mode: None,
            skip_check_adv_addr: None,
            check_unicast_src: false,
            v3_checksum_as_v2: false,
            other: Other::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualServer {
    /// `IP PORT`, `fwmark N` or `group NAME`, as written.
    pub address: Vec<String>,
    pub at: Loc,
    pub real_servers: Vec<RawBlock>,
    pub other: Vec<RawBlock>,
}
