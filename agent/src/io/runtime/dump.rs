//! keepalived's dump files for the VRRP side: SIGUSR1 `keepalived.data` (keepalived's
//! global definitions, VRRP topology, sync groups, scripts and interfaces sections, in its
//! line format, with the lines that apply to what vrrp-agent runs), SIGUSR2 `keepalived.stats` (and SIGRTMAX-1, the same
//! then cleared), and SIGRTMIN+2 `keepalived.json` (keepalived's JSON: an array of
//! `{"data": …, "stats": …}` per instance). All go to `$TMPDIR` (if absolute) or /tmp.

use std::{fmt::Write as _, io::Write as _, time::Duration};

use log::{info, warn};
use serde_json::json;

use super::{Runtime, create_dump_file, dump_dir, stats_text};
use crate::vrrp::{
    instance::{State, Stats},
    packet::{Auth, Version},
};

/// keepalived's numbers for states in its JSON (vrrp.h).
fn state_number(s: State) -> u8 {
    match s {
        State::Init => 0,
        State::Backup => 1,
        State::Master => 2,
        State::Fault => 3,
    }
}

/// A monotonic instant as wall-clock seconds since the epoch.
fn wall(at: Duration, now: Duration) -> f64 {
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    real.saturating_sub(now.saturating_sub(at)).as_secs_f64()
}

/// Written under a temporary name, then renamed: a reader sees the whole file or none (a
/// rename replaces whatever is at the name, never writing through a symlink).
fn write_file(name: &str, text: &str) {
    match create_dump_file(&format!(".{name}.tmp")) {
        Ok((tmp, mut f)) => {
            let r = f
                .write_all(text.as_bytes())
                .and_then(|()| std::fs::rename(&tmp, dump_dir().join(name)));
            if let Err(e) = r {
                warn!("writing {name}: {e}");
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Err(e) => info!(
            "Can't open dump file {} ({}: {e})",
            dump_dir().join(name).display(),
            e.raw_os_error().unwrap_or(0)
        ),
    }
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

impl Runtime {
    /// keepalived's `------< Global definitions >------` (dump_global_data), the lines for
    /// the VRRP side.
    fn global_section(&self) -> String {
        let g = &self.config.global;
        let mut t = String::new();
        let mut w = |line: String| {
            let _ = writeln!(t, "{line}");
        };
        w("------< Global definitions >------".into());
        w(" Network namespace = (default)".into());
        if let Some(id) = &g.router_id {
            w(format!(" Router ID = {id}"));
        }
        if let Some(s) = &g.smtp_server {
            w(format!(" Smtp server = {}", s.host));
            w(format!(" Smtp server port = {}", s.port));
        }
        if let Some(h) = &g.smtp_helo_name {
            w(format!(" Smtp HELO name = {h}"));
        }
        w(format!(
            " Smtp server connection timeout = {}",
            g.smtp_connect_timeout
        ));
        if let Some(from) = &g.notification_email_from {
            w(format!(" Email notification from = {from}"));
            w(" Email notification to:".into());
            for to in &g.notification_email {
                w(format!("   {to}"));
            }
        }
        w(format!(
            " Default smtp_alert = {}",
            on_off(g.smtp_alert == Some(true))
        ));
        w(format!(
            " Default smtp_alert_vrrp = {}",
            on_off(g.smtp_alert_vrrp)
        ));
        w(" Dynamic interfaces = false".into());
        if crate::notify::flag(&g.other, "no_email_faults").unwrap_or(false) {
            w(" Send emails for fault transitions = off".into());
        }
        let fifo = |w: &mut dyn FnMut(String),
                    what: &str,
                    path: &Option<String>,
                    script: &Option<crate::config::model::NotifyScript>| {
            if let Some(p) = path {
                w(format!(" {what} = {p}, uid:gid 0:0"));
                if let Some(s) = script {
                    w(format!(" {what} script = {}", s.argv.join(" ")));
                }
            }
        };
        fifo(
            &mut w,
            "Global notify fifo",
            &g.notify_fifo,
            &g.notify_fifo_script,
        );
        fifo(
            &mut w,
            "VRRP notify fifo",
            &g.vrrp_notify_fifo,
            &g.vrrp_notify_fifo_script,
        );
        w(format!(
            " VRRP notify priority changes = {}",
            crate::notify::flag(&g.other, "vrrp_notify_priority_changes").unwrap_or(false)
        ));
        w(format!(" VRRP IPv4 mcast group = {}", g.vrrp_mcast_group4));
        w(format!(" VRRP IPv6 mcast group = {}", g.vrrp_mcast_group6));
        w(format!(
            " Gratuitous ARP delay = {}",
            g.vrrp_garp_master_delay
        ));
        w(format!(
            " Gratuitous ARP repeat = {}",
            g.vrrp_garp_master_repeat
        ));
        w(format!(
            " Gratuitous ARP refresh timer = {}",
            g.vrrp_garp_master_refresh
        ));
        w(format!(
            " Gratuitous ARP refresh repeat = {}",
            g.vrrp_garp_master_refresh_repeat
        ));
        w(format!(
            " Num adverts before down = {}",
            g.vrrp_down_timer_adverts
        ));
        w(format!(
            " Send advert after receive lower priority advert = {}",
            !g.vrrp_lower_prio_no_advert
        ));
        w(format!(
            " Send advert after receive higher priority advert = {}",
            g.vrrp_higher_prio_send_advert
        ));
        w(format!(
            " Gratuitous ARP interval = {:.6}",
            g.vrrp_garp_interval
        ));
        w(format!(
            " Gratuitous NA interval = {:.6}",
            g.vrrp_gna_interval
        ));
        w(format!(
            " VRRP default protocol version = {}",
            g.vrrp_version
        ));
        w(format!(
            " VRRP check unicast_src = {}",
            g.vrrp_check_unicast_src
        ));
        w(format!(
            " VRRP skip check advert addresses = {}",
            g.vrrp_skip_check_adv_addr
        ));
        w(format!(" VRRP strict mode = {}", g.vrrp_strict));
        w(format!(
            " Script security {}",
            if g.enable_script_security {
                "enabled"
            } else {
                "disabled"
            }
        ));
        let run_as =
            crate::track::exec::default_run_as(g.script_user.as_deref(), g.script_group.as_deref());
        w(format!(
            " Default script uid:gid {}:{}",
            run_as.uid, run_as.gid
        ));
        t
    }

    /// keepalived's `------< VRRP Sync groups >------` and `------< VRRP Scripts >------`.
    fn groups_and_scripts_sections(&self, t: &mut String) {
        let mut w = |line: String| {
            let _ = writeln!(t, "{line}");
        };
        if !self.groups.is_empty() {
            w("------< VRRP Sync groups >------".into());
        }
        for (g, group) in self.groups.iter().enumerate() {
            let sg = &self.config.sync_groups[g];
            w(format!(
                " VRRP Sync Group = {}, {}",
                group.name,
                group.notified.name()
            ));
            let fault = group
                .members
                .iter()
                .filter(|&&m| self.slots[m].inst.state() == State::Fault)
                .count();
            let init = group
                .members
                .iter()
                .filter(|&&m| self.slots[m].inst.state() == State::Init)
                .count();
            w(format!(
                "   Num member fault {fault}, num member init {init}"
            ));
            if !group.members.is_empty() {
                w("   VRRP member instances :".into());
                for &m in &group.members {
                    w(format!("     {}", self.slots[m].name));
                }
            }
            if sg.sync_group_tracking_weight {
                w("   sync group tracking weight set".into());
            }
            w(format!(
                "   Using smtp notification = {}",
                if sg.smtp_alert { "yes" } else { "no" }
            ));
        }
        let scripts = &self.config.scripts;
        if !scripts.is_empty() {
            w("------< VRRP Scripts >------".into());
        }
        for (k, s) in scripts.iter().enumerate() {
            w(format!(" VRRP Script = {}", s.name));
            w(format!("   Command = {}", s.script.join(" ")));
            w(format!("   Interval = {} sec", s.interval as u64));
            w(format!(
                "   Timeout = {} sec",
                s.timeout.unwrap_or(s.interval) as u64
            ));
            w(format!(
                "   Weight = {}{}",
                s.weight,
                if s.weight_reverse { " reverse" } else { "" }
            ));
            w(format!("   Rise = {}", s.rise));
            w(format!("   Fall = {}", s.fall));
            w(format!(
                "   Init state = {}",
                if s.init_fail { "INIT/FAILED" } else { "INIT" }
            ));
            let status = match self.tracking.script_status(k) {
                Some(crate::track::Status::Up(true)) => "GOOD",
                Some(crate::track::Status::Up(false)) => "BAD",
                Some(_) => "INIT",
                None => "not used",
            };
            w(format!("   Status = {status}"));
            let users: Vec<&str> = self
                .slots
                .iter()
                .enumerate()
                .filter(|(k2, _)| {
                    self.config.instances[*k2]
                        .track_scripts
                        .iter()
                        .any(|t| t.name == s.name)
                })
                .map(|(_, slot)| &*slot.name)
                .collect();
            w("   VRRP instances :".into());
            for u in users {
                w(format!("     {u}"));
            }
        }
    }

    /// keepalived's `------< Interfaces >------`: the interfaces the instances use (their own,
    /// their VMACs, their VIPs'), as netlink reports them now.
    async fn interfaces_section(&self, t: &mut String) {
        let mut names: Vec<&str> = Vec::new();
        for s in &self.slots {
            let links = std::iter::once(&s.link)
                .chain(s.vmac.as_ref().map(|v| &v.link))
                .chain(s.vips.iter().chain(&s.excluded).map(|v| &v.link));
            for l in links {
                if !names.contains(&l.name.as_str()) {
                    names.push(&l.name);
                }
            }
        }
        let _ = writeln!(t, "------< Interfaces >------");
        for name in names {
            let Ok(link) = self.netlink.link(name).await else {
                let _ = writeln!(t, " Name = {name}\n   index = 0 (deleted)");
                continue;
            };
            let v4 = self
                .netlink
                .primary_address(link.index, false)
                .await
                .ok()
                .flatten();
            let v6 = self
                .netlink
                .primary_address(link.index, true)
                .await
                .ok()
                .flatten();
            let shown =
                |a: Option<std::net::IpAddr>| a.map_or("(none)".to_string(), |a| a.to_string());
            let _ = writeln!(t, " Name = {}", link.name);
            let _ = writeln!(t, "   index = {}", link.index);
            let _ = writeln!(t, "   IPv4 address = {}", shown(v4));
            let _ = writeln!(t, "   IPv6 address = {}", shown(v6));
            let _ = writeln!(t, "   MAC = {}", crate::netlink::mac_string(link.mac));
            let _ = writeln!(t, "   MAC broadcast = ff:ff:ff:ff:ff:ff");
            let _ = writeln!(
                t,
                "   State = {}",
                if link.up {
                    "UP, RUNNING"
                } else {
                    "not UP, not RUNNING"
                }
            );
            if let Some(v) = self
                .slots
                .iter()
                .filter_map(|s| s.vmac.as_ref())
                .find(|v| v.link.index == link.index)
            {
                let base = self
                    .slots
                    .iter()
                    .find(|s| {
                        s.vmac
                            .as_ref()
                            .is_some_and(|x| x.link.index == v.link.index)
                    })
                    .map(|s| s.link.name.as_str())
                    .unwrap_or("?");
                let _ = writeln!(t, "   VMAC type private, underlying interface = {base}");
                if v.created {
                    let _ = writeln!(t, "   I/f created by keepalived");
                }
            }
            let tracking: Vec<&str> = self
                .slots
                .iter()
                .filter(|s| s.link.index == link.index || s.rx_link.index == link.index)
                .map(|s| &*s.name)
                .collect();
            if !tracking.is_empty() {
                let _ = writeln!(t, "   Tracking VRRP instances :");
                for n in tracking {
                    let _ = writeln!(t, "     {n}");
                }
            }
        }
    }

    /// SIGUSR2 (and STATS_CLEAR, which then zeroes the counters).
    pub(super) fn dump_stats(&mut self, clear: bool) {
        let list: Vec<(&str, &Stats)> = self
            .slots
            .iter()
            .map(|s| (s.inst.name(), s.inst.stats()))
            .collect();
        write_file("keepalived.stats", &stats_text(&list));
        if clear {
            for s in &mut self.slots {
                *s.inst.stats_mut() = Stats::default();
            }
        }
    }

    /// SIGUSR1: keepalived's `dump_data_vrrp` — global definitions, the VRRP topology, sync
    /// groups, scripts, then the interfaces (the lines that apply to what vrrp-agent runs).
    pub(super) async fn dump_data(&self) {
        let now = self.now();
        let mut t = self.global_section();
        let _ = writeln!(t, "------< VRRP Topology >------");
        for s in &self.slots {
            let i = &s.inst;
            let p = i.params();
            let w = |t: &mut String, line: String| {
                let _ = writeln!(t, "{line}");
            };
            w(&mut t, format!(" VRRP Instance = {}", i.name()));
            w(
                &mut t,
                format!(
                    "   VRRP Version = {}",
                    if p.version == Version::V2 { 2 } else { 3 }
                ),
            );
            if let Some(g) = s.group {
                w(&mut t, format!("   Sync group = {}", self.groups[g].name));
            }
            if s.v6 {
                w(&mut t, "   Using Native IPv6".into());
            }
            w(&mut t, format!("   State = {}", i.state().name()));
            if i.state() == State::Backup
                && let Some((addr, prio)) = i.master()
            {
                w(&mut t, format!("   Master router = {addr}"));
                w(&mut t, format!("   Master priority = {prio}"));
            }
            w(&mut t, format!("   Wantstate = {}", i.state().name()));
            if let Some(at) = i.last_transition() {
                w(&mut t, format!("   Last transition = {:.6}", wall(at, now)));
            }
            w(&mut t, format!("   Interface = {}", s.link.name));
            if let Some(v) = &s.vmac {
                w(
                    &mut t,
                    format!(
                        "   Use VMAC, i/f name {}, xmit_base = {}",
                        v.link.name,
                        if s.rx_link.index == s.link.index {
                            "yes"
                        } else {
                            "no"
                        }
                    ),
                );
            }
            if s.dont_track_primary {
                w(&mut t, "   VRRP interface tracking disabled".into());
            }
            w(&mut t, format!("   Using src_ip = {}", i.src()));
            if !p.unicast {
                w(
                    &mut t,
                    format!(
                        "   Multicast address {}",
                        s.dsts.first().map(|a| a.to_string()).unwrap_or_default()
                    ),
                );
            }
            w(
                &mut t,
                format!("   Gratuitous ARP delay = {}", p.garp.delay.as_secs()),
            );
            w(
                &mut t,
                format!("   Gratuitous ARP repeat = {}", p.garp.repeat),
            );
            w(
                &mut t,
                format!("   Gratuitous ARP refresh = {}", p.garp.refresh.as_secs()),
            );
            w(
                &mut t,
                format!(
                    "   Gratuitous ARP refresh repeat = {}",
                    p.garp.refresh_repeat
                ),
            );
            w(
                &mut t,
                format!(
                    "   Gratuitous ARP lower priority delay = {}",
                    p.garp.lower_prio_delay.as_secs()
                ),
            );
            w(
                &mut t,
                format!(
                    "   Gratuitous ARP lower priority repeat = {}",
                    p.garp.lower_prio_repeat
                ),
            );
            w(
                &mut t,
                format!("   Down timer adverts = {}", p.down_timer_adverts),
            );
            w(
                &mut t,
                format!(
                    "   Send advert after receive lower priority advert = {}",
                    !p.lower_prio_no_advert
                ),
            );
            w(
                &mut t,
                format!(
                    "   Send advert after receive higher priority advert = {}",
                    p.higher_prio_send_advert
                ),
            );
            w(&mut t, format!("   Virtual Router ID = {}", p.vrid));
            w(&mut t, format!("   Priority = {}", s.base_priority));
            w(&mut t, format!("   Effective priority = {}", i.priority()));
            w(
                &mut t,
                match p.version {
                    Version::V2 => format!("   Advert interval = {} sec", p.advert_int_cs / 100),
                    Version::V3 => format!(
                        "   Advert interval = {} milli-sec",
                        u32::from(p.advert_int_cs) * 10
                    ),
                },
            );
            if p.version == Version::V3 {
                w(
                    &mut t,
                    format!(
                        "   Master advert interval = {} milli-sec",
                        i.master_adv_int().as_millis()
                    ),
                );
            }
            w(
                &mut t,
                format!(
                    "   Preempt = {}",
                    if p.nopreempt { "disabled" } else { "enabled" }
                ),
            );
            if !p.preempt_delay.is_zero() {
                w(
                    &mut t,
                    format!("   Preempt delay = {} secs", p.preempt_delay.as_secs_f64()),
                );
            }
            match p.auth {
                Auth::Pass(pw) => {
                    w(&mut t, "   Authentication type = SIMPLE_PASSWORD".into());
                    let end = pw.iter().position(|b| *b == 0).unwrap_or(pw.len());
                    w(
                        &mut t,
                        format!("   Password = {}", String::from_utf8_lossy(&pw[..end])),
                    );
                }
                Auth::Ah => w(&mut t, "   Authentication type = IPSEC_AH".into()),
                Auth::None => w(&mut t, "   Authentication type = none".into()),
            }
            if !s.vips.is_empty() {
                w(&mut t, format!("   Virtual IP ({}):", s.vips.len()));
                for v in &s.vips {
                    w(
                        &mut t,
                        format!(
                            "     {}/{} dev {} scope {}",
                            v.addr.addr,
                            v.addr.prefix,
                            v.link.name,
                            v.addr.scope.as_deref().unwrap_or("global")
                        ),
                    );
                }
            }
            if !s.excluded.is_empty() {
                w(&mut t, "   Virtual IP Excluded :".into());
                for v in &s.excluded {
                    w(
                        &mut t,
                        format!(
                            "     {}/{} dev {} scope {}",
                            v.addr.addr,
                            v.addr.prefix,
                            v.link.name,
                            v.addr.scope.as_deref().unwrap_or("global")
                        ),
                    );
                }
            }
            if p.unicast {
                w(
                    &mut t,
                    format!(
                        "   Check unicast src : {}",
                        if p.check_unicast_src { "yes" } else { "no" }
                    ),
                );
                w(&mut t, "   Unicast Peer :".into());
                for peer in &p.peers {
                    w(
                        &mut t,
                        format!(
                            "     {} min_ttl {} max_ttl {}",
                            peer.addr, peer.min_ttl, peer.max_ttl
                        ),
                    );
                }
            }
        }
        self.groups_and_scripts_sections(&mut t);
        self.interfaces_section(&mut t).await;
        // keepalived's `data_use_instance`: keepalived.NAME.data with an `instance NAME`.
        let file = match (
            crate::notify::flag(&self.config.global.other, "data_use_instance").unwrap_or(false),
            &self.config.instance,
        ) {
            (true, Some(name)) if !name.contains('/') => format!("keepalived.{name}.data"),
            _ => "keepalived.data".to_string(),
        };
        write_file(&file, &t);
    }

    /// SIGRTMIN+2: keepalived's `keepalived.json`.
    pub(super) fn dump_json(&self) {
        let now = self.now();
        let list: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let i = &s.inst;
                let p = i.params();
                let trackers = self.tracking.describe(k);
                let tracked = |kind: &str| -> Vec<serde_json::Value> {
                    trackers
                        .iter()
                        .filter(|t| t["kind"] == kind)
                        .map(|t| t["name"].clone())
                        .collect()
                };
                let (auth_type, auth_data) = match p.auth {
                    Auth::None => (0, String::new()),
                    Auth::Pass(pw) => {
                        let end = pw.iter().position(|b| *b == 0).unwrap_or(pw.len());
                        (1, String::from_utf8_lossy(&pw[..end]).into_owned())
                    }
                    Auth::Ah => (2, String::new()),
                };
                let ips = |v: &[super::Vip]| -> Vec<String> {
                    v.iter()
                        .map(|v| format!("{}/{} dev {} scope {}", v.addr.addr, v.addr.prefix, v.link.name, v.addr.scope.as_deref().unwrap_or("global")))
                        .collect()
                };
                json!({
                    "data": {
                        "iname": i.name(),
                        "dont_track_primary": u8::from(s.dont_track_primary),
                        "skip_check_adv_addr": u8::from(p.skip_check_adv_addr),
                        "strict_mode": 0,
                        "vmac_ifname": s.vmac.as_ref().map(|v| v.link.name.clone()).unwrap_or_default(),
                        "ifp_ifname": s.link.name,
                        "master_priority": i.master().map_or(0, |(_, p)| p),
                        "last_transition": i.last_transition().map_or(0.0, |at| wall(at, now)),
                        "garp_delay": p.garp.delay.as_secs_f64(),
                        "garp_refresh": p.garp.refresh.as_secs(),
                        "garp_rep": p.garp.repeat,
                        "garp_refresh_rep": p.garp.refresh_repeat,
                        "garp_lower_prio_delay": p.garp.lower_prio_delay.as_secs(),
                        "garp_lower_prio_rep": p.garp.lower_prio_repeat,
                        "lower_prio_no_advert": u8::from(p.lower_prio_no_advert),
                        "higher_prio_send_advert": u8::from(p.higher_prio_send_advert),
                        "vrid": p.vrid,
                        "base_priority": s.base_priority,
                        "effective_priority": i.priority(),
                        "vipset": i.state() == State::Master,
                        "promote_secondaries": false,
                        "adver_int": f64::from(p.advert_int_cs) / 100.0,
                        "master_adver_int": i.master_adv_int().as_secs_f64(),
                        "accept": 1,
                        "nopreempt": p.nopreempt,
                        "preempt_delay": p.preempt_delay.as_secs(),
                        "state": state_number(i.state()),
                        "wantstate": state_number(i.state()),
                        "version": if p.version == Version::V2 { 2 } else { 3 },
                        "smtp_alert": false,
                        "notify_deleted": false,
                        "vips": ips(&s.vips),
                        "evips": ips(&s.excluded),
                        "vroutes": [],
                        "vrules": [],
                        "track_ifp": tracked("interface"),
                        "track_script": tracked("script"),
                        "auth_type": auth_type,
                        "auth_data": auth_data,
                    },
                    "stats": i.stats(),
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&list).unwrap_or_default();
        write_file("keepalived.json", &text);
    }
}
