//! SIGHUP: reload without flaps. The new configuration is applied in place to the running
//! instances — VIPs, priority, advert interval, preemption, authentication, GARP and notify
//! settings — with no transition, no advert gap and no GARP storm: an instance keeps its
//! state and timers, a master adds or removes only the VIPs that changed (GARPs for the new
//! ones only). A configuration that cannot run (a keyword missing its value, an interface
//! that does not exist) is rejected with its errors logged, and the running one is kept.
//!
//! Not yet: changes to what an instance *is* (its name, interface, VRID, address family,
//! version, VMAC, unicast peers or source, routes and rules), to trackers, sync groups or the
//! notify FIFOs, and added or removed instances. Such a reload is refused with the reason,
//! and the running configuration is kept: nothing is half-applied.

use std::time::Duration;

use log::{info, warn};
use serde_json::Value;

use super::{Runtime, Vip};
use crate::{
    config::{
        Loaded,
        diag::Class,
        model::{Config, Instance as InstanceConfig},
    },
    io::timer::monotonic_now,
    notify,
    vrrp::instance::{Params, State},
};

/// `v` as JSON with every `at` (a file:line) removed: definitions compared by content.
fn content<T: serde::Serialize>(v: &T) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("at");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).unwrap_or(Value::Null);
    strip(&mut v);
    v
}

/// What an instance is: changing any of it needs a restart (for now).
fn identity(i: &InstanceConfig) -> Value {
    content(&serde_json::json!({
        "name": i.name,
        "interface": i.interface,
        "vrid": i.virtual_router_id,
        "v6": i.virtual_ipaddress.first().map(|v| v.addr.is_ipv6()),
        "version": i.version,
        "use_vmac": i.use_vmac,
        "vmac_xmit_base": i.vmac_xmit_base,
        "mcast_src_ip": i.mcast_src_ip,
        "unicast_src_ip": i.unicast_src_ip,
        "unicast_peers": i.unicast_peers,
        "unicast_ttl": i.unicast_ttl,
        "virtual_routes": i.virtual_routes,
        "virtual_rules": i.virtual_rules,
        "track_interfaces": i.track_interfaces,
        "track_scripts": i.track_scripts,
        "track_files": i.track_files,
        "track_processes": i.track_processes,
        "track_bfds": i.track_bfds,
        "dont_track_primary": i.dont_track_primary,
        "v3_checksum_as_v2": i.v3_checksum_as_v2,
    }))
}

/// What the whole configuration needs kept as it is for an in-place reload, or why not.
fn same_structure(old: &Config, new: &Config) -> Result<(), String> {
    let names = |c: &Config| {
        c.instances
            .iter()
            .map(|i| i.name.clone())
            .collect::<Vec<_>>()
    };
    if names(old) != names(new) {
        return Err(format!(
            "the list of instances changed ({:?} → {:?})",
            names(old),
            names(new)
        ));
    }
    for (o, n) in old.instances.iter().zip(&new.instances) {
        if identity(o) != identity(n) {
            return Err(format!(
                "({}) its interface, VRID, family, version, VMAC, unicast settings, routes, rules or trackers changed",
                n.name
            ));
        }
    }
    let global = |c: &Config| {
        content(&serde_json::json!({
            "scripts": c.scripts,
            "track_files": c.track_files,
            "track_processes": c.track_processes,
            "sync_groups": c.sync_groups.iter().map(|g| (&g.name, &g.members, &g.track_scripts, &g.track_interfaces, &g.track_files, &g.track_processes, g.sync_group_tracking_weight)).collect::<Vec<_>>(),
            "mcast4": c.global.vrrp_mcast_group4,
            "mcast6": c.global.vrrp_mcast_group6,
            "notify_fifo": (&c.global.notify_fifo, &c.global.notify_fifo_script),
            "vrrp_notify_fifo": (&c.global.vrrp_notify_fifo, &c.global.vrrp_notify_fifo_script),
            "script_user": (&c.global.script_user, &c.global.script_group, c.global.enable_script_security),
        }))
    };
    if global(old) != global(new) {
        return Err(
            "track scripts, files, processes, sync groups, multicast groups, notify FIFOs or the script user changed"
                .into(),
        );
    }
    Ok(())
}

impl Runtime {
    /// Applies a configuration read again on SIGHUP (see the module's doc).
    pub(super) async fn reload(&mut self, loaded: Loaded) {
        let t0 = monotonic_now();
        info!("Reloading");
        for d in &loaded.diags.list {
            warn!("{d}");
        }
        // Reading stopped (a keyword without its value, a missing file), or something the
        // host lacks (an interface): keepalived could not run it either.
        let stopped = loaded.diags.stopped.is_some();
        let cannot_run = loaded
            .diags
            .list
            .iter()
            .any(|d| d.class == Class::CannotRun);
        if stopped || cannot_run {
            warn!(
                "Reload rejected: the configuration cannot run; the running configuration is kept"
            );
            return;
        }
        let new = loaded.config;
        if let Err(why) = same_structure(&self.config, &new) {
            warn!(
                "Reload rejected: {why}, which needs a restart; the running configuration is kept"
            );
            return;
        }
        for k in 0..self.slots.len() {
            if let Err(e) = self.reconfigure(k, &new).await {
                // Checked before anything changed for this instance; the others stay as they are.
                warn!(
                    "({}) reload: {e:#}; this instance keeps its configuration",
                    self.slots[k].name
                );
            }
        }
        self.notifier
            .update(notify::Setup::from_config(&new, self.opts.log_detail).targets);
        self.config = new;
        info!(
            "Reload finished in {} usec",
            (monotonic_now() - t0).as_micros()
        );
    }

    /// One instance in place: parameters, VIPs (a master adds and removes only the ones that
    /// changed), priority through its trackers.
    async fn reconfigure(&mut self, k: usize, new: &Config) -> anyhow::Result<()> {
        let ic = &new.instances[k];
        let mut params = Params::from_config(ic, &new.global)?;
        params.sync_group = self.slots[k].group.is_some();
        // The new addresses resolved before anything changes (a bad `dev` rejects them all).
        let (link, base) = (self.slots[k].rx_link.clone(), self.slots[k].link.index);
        let mut vips = Vec::new();
        for a in &ic.virtual_ipaddress {
            vips.push(self.vip(&link, base, a).await?);
        }
        let mut excluded = Vec::new();
        for a in &ic.virtual_ipaddress_excluded {
            excluded.push(self.vip(&link, base, a).await?);
        }
        let name = self.slots[k].name.clone();
        let master = self.slots[k].inst.state() == State::Master;
        let same = |a: &Vip, b: &Vip| a.addr == b.addr && a.link.index == b.link.index;
        let old: Vec<Vip> = self.slots[k]
            .vips
            .iter()
            .chain(&self.slots[k].excluded)
            .cloned()
            .collect();
        let all_new: Vec<&Vip> = vips.iter().chain(&excluded).collect();
        let removed: Vec<&Vip> = old
            .iter()
            .filter(|o| !all_new.iter().any(|n| same(o, n)))
            .collect();
        let added: Vec<&Vip> = all_new
            .iter()
            .copied()
            .filter(|n| !old.iter().any(|o| same(o, n)))
            .collect();
        // The one step that can fail comes before any change.
        for v in &added {
            self.ensure_frames(v)?;
        }
        if master {
            for v in &removed {
                self.xdp_vip(v, false, &name);
                if let Err(e) = self.netlink.del_address(v.link.index, &v.addr).await {
                    warn!("({name}) {e}");
                }
            }
            for v in &added {
                self.xdp_vip(v, true, &name);
                if let Err(e) = self.netlink.add_address(v.link.index, &v.addr).await {
                    warn!("({name}) {e} on {}", v.link.name);
                }
                // The new address is announced; the others were, when we became master.
                if let Some(f) = self.frames.get(&v.link.index) {
                    for _ in 0..params.garp.repeat.max(1) {
                        let _ = f.announce(v.link.mac, v.addr.addr, self.slots[k].na_router);
                    }
                }
            }
        }
        if !removed.is_empty() || !added.is_empty() {
            info!(
                "({name}) reload: {} VIP(s) added, {} removed{}",
                added.len(),
                removed.len(),
                if master { "" } else { " (applied when master)" }
            );
        }
        let slot = &mut self.slots[k];
        slot.vips = vips;
        slot.excluded = excluded;
        slot.base_priority = params.priority;
        slot.notify_priority = super::notify_priority(new, ic, slot.group);
        slot.garp_interval = Duration::from_secs_f64(if slot.v6 {
            new.global.vrrp_gna_interval
        } else {
            new.global.vrrp_garp_interval
        });
        slot.xdp_entry = crate::xdp::vrid_entry(ic, slot.link.index);
        if let (Some(prog), Some((key, entry))) = (self.xdp.as_mut(), self.slots[k].xdp_entry)
            && let Err(e) = prog.maps.set_vrid(key, entry)
        {
            warn!("({name}) XDP VRID entry: {e}");
        }
        self.slots[k].inst.reconfigure(params);
        // The effective priority follows the new base through the trackers.
        self.track(k).await;
        Ok(())
    }

    fn xdp_vip(&mut self, v: &Vip, arm: bool, name: &str) {
        let Some(prog) = self.xdp.as_mut() else {
            return;
        };
        let std::net::IpAddr::V4(a) = v.addr.addr else {
            return;
        };
        let key = agent_common::VipKey::v4(v.xdp_ifindex, 0, a.octets());
        let r = if arm {
            prog.maps.arm_vip(
                key,
                agent_common::VipValue {
                    mac: v.link.mac,
                    _pad: [0; 2],
                },
            )
        } else {
            prog.maps.disarm_vip(&key)
        };
        if let Err(e) = r {
            warn!("({name}) XDP VIP {a}: {e}");
        }
    }

    fn ensure_frames(&mut self, v: &Vip) -> anyhow::Result<()> {
        use anyhow::Context as _;
        if let std::collections::hash_map::Entry::Vacant(e) = self.frames.entry(v.link.index) {
            e.insert(std::sync::Arc::new(
                super::FrameSocket::open(v.link.index)
                    .with_context(|| format!("opening a packet socket on {}", v.link.name))?,
            ));
        }
        Ok(())
    }
}
