//! SIGHUP: reload without flaps. The new configuration is compared with the running one,
//! instance by instance (by name):
//!
//! - an instance whose identity is unchanged (interface, VRID, family, version, VMAC, unicast
//!   settings, multicast group, routes, rules, sync group) keeps running: its state, timers and
//!   counters stay; the rest — VIPs, priority, advert interval, preemption, authentication, GARP
//!   and notify settings, trackers — is applied in place with no transition, no advert gap and
//!   no GARP storm (a master adds or removes only the VIPs that changed, GARPs the new ones);
//! - a removed instance gives up mastership with a priority-0 advert and releases its VIPs, and
//!   is notified as keepalived does (FAULT, or DELETED with `notify_deleted`);
//! - an instance with a changed identity is removed so, then started as new; an added one
//!   starts (INIT, then BACKUP or FAULT as at start-up);
//! - trackers are rebuilt when their definitions or the instances' lists changed; a script
//!   defined the same way keeps its result (keepalived's clear_diff_script).
//!
//! Nothing is half-applied: a configuration that cannot run (a keyword missing its value, an
//! interface that does not exist), and new instances that cannot be set up (no source address,
//! a VMAC name still used otherwise, a VRID used twice), are rejected with the reason logged
//! before anything running changes, and the running configuration is kept.

use std::time::Duration;

use anyhow::{Result, bail};
use log::{info, warn};
use serde_json::Value;

use super::{Group, Runtime, Slot, Vip};
use crate::{
    config::{
        diag::Class,
        model::{Config, Instance as InstanceConfig},
    },
    io::{timer::monotonic_now, tracking::Tracking},
    notify,
    vrrp::instance::{Event, Params, State},
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

/// The instance's address family, as its first VIP says.
fn is_v6(i: &InstanceConfig) -> bool {
    i.virtual_ipaddress
        .first()
        .is_some_and(|v| v.addr.is_ipv6())
}

/// What an instance is: changing any of it re-creates the instance.
fn identity(c: &Config, i: &InstanceConfig) -> Value {
    let group = c.sync_groups.iter().find(|g| g.members.contains(&i.name));
    let v6 = is_v6(i);
    let mcast = i.unicast_peers.is_empty().then_some(if v6 {
        c.global.vrrp_mcast_group6
    } else {
        c.global.vrrp_mcast_group4
    });
    content(&serde_json::json!({
        "name": i.name,
        "interface": i.interface,
        "vrid": i.virtual_router_id,
        "v6": v6,
        "version": i.version,
        "use_vmac": i.use_vmac,
        "vmac_xmit_base": i.vmac_xmit_base,
        "mcast_src_ip": i.mcast_src_ip,
        "unicast_src_ip": i.unicast_src_ip,
        "unicast_peers": i.unicast_peers,
        "unicast_ttl": i.unicast_ttl,
        "mcast_group": mcast,
        "virtual_routes": i.virtual_routes,
        "virtual_rules": i.virtual_rules,
        "dont_track_primary": i.dont_track_primary,
        "v3_checksum_as_v2": i.v3_checksum_as_v2,
        "sync_group": group.map(|g| (&g.name, &g.members)),
    }))
}

/// Everything the trackers are built from.
fn trackers(c: &Config) -> Value {
    content(&serde_json::json!({
        "scripts": c.scripts,
        "track_files": c.track_files,
        "track_processes": c.track_processes,
        "script_user": (&c.global.script_user, &c.global.script_group, c.global.enable_script_security),
        "instances": c.instances.iter().map(|i| (&i.name, &i.track_interfaces, &i.track_scripts, &i.track_files, &i.track_processes, &i.track_bfds)).collect::<Vec<_>>(),
        "sync_groups": c.sync_groups.iter().map(|g| (&g.name, &g.members, &g.track_scripts, &g.track_interfaces, &g.track_files, &g.track_processes, g.sync_group_tracking_weight)).collect::<Vec<_>>(),
    }))
}

/// Why the running instances change.
#[derive(Clone, Copy)]
enum Change<'a> {
    /// SIGHUP.
    Reload,
    /// These interfaces were deleted and created again.
    Follow(&'a str),
}

/// How the running instances map onto the new configuration's.
struct Plan {
    /// For each new instance, the running slot it continues (same name, same identity).
    kept: Vec<Option<usize>>,
    /// Running slots that do not continue: removed, or re-created with a changed identity.
    removed: Vec<usize>,
    /// The trackers are rebuilt.
    tracking: bool,
}

impl Plan {
    fn new(old: &Config, new: &Config) -> Plan {
        let kept: Vec<Option<usize>> = new
            .instances
            .iter()
            .map(|n| {
                let id = identity(new, n);
                old.instances
                    .iter()
                    .position(|o| o.name == n.name && identity(old, o) == id)
            })
            .collect();
        let removed = (0..old.instances.len())
            .filter(|j| !kept.contains(&Some(*j)))
            .collect();
        let names = |c: &Config| {
            c.instances
                .iter()
                .map(|i| &i.name)
                .cloned()
                .collect::<Vec<_>>()
        };
        Plan {
            tracking: trackers(old) != trackers(new) || names(old) != names(new),
            kept,
            removed,
        }
    }

    /// The running configuration again, with the `stale` slots re-created and the trackers
    /// rebuilt.
    fn renew(config: &Config, stale: &[usize]) -> Plan {
        Plan {
            kept: (0..config.instances.len())
                .map(|k| (!stale.contains(&k)).then_some(k))
                .collect(),
            removed: stale.to_vec(),
            tracking: true,
        }
    }

    fn created(&self) -> Vec<usize> {
        (0..self.kept.len())
            .filter(|k| self.kept[*k].is_none())
            .collect()
    }
}

impl Runtime {
    /// Applies a configuration read again on SIGHUP (see the module's doc).
    pub(super) async fn reload(&mut self, loaded: crate::config::Loaded) {
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
        if new.instances.is_empty() {
            warn!(
                "Reload rejected: no vrrp_instance configured; the running configuration is kept"
            );
            return;
        }
        let plan = Plan::new(&self.config, &new);
        if let Err(e) = self.apply_plan(&plan, new, Change::Reload).await {
            warn!("Reload rejected: {e:#}; the running configuration is kept");
            return;
        }
        info!(
            "Reload finished in {} usec",
            (monotonic_now() - t0).as_micros()
        );
    }

    /// Interfaces deleted and created again under the same name (a veth or VLAN re-created,
    /// a driver reloaded): the instances on them, and the trackers, follow the new interface
    /// — re-created from the running configuration as a reload re-creates an instance. Those
    /// whose interface is not back yet, or cannot be set up yet (no address), stay in FAULT
    /// and are tried again on the next link change and every second.
    pub(super) async fn follow_interfaces(&mut self) {
        let names: Vec<String> = self.recreated.iter().cloned().collect();
        let mut now: Vec<(String, u32)> = Vec::new();
        for n in &names {
            // An error: not back yet.
            if let Ok(l) = self.netlink.link(n).await {
                now.push((n.clone(), l.index));
            }
        }
        let moved = |name: &str, index: u32| now.iter().any(|(n, i)| n == name && *i != index);
        let stale: Vec<usize> = (0..self.slots.len())
            .filter(|&k| {
                let s = &self.slots[k];
                moved(&s.link.name, s.link.index)
                    || s.vips
                        .iter()
                        .chain(&s.excluded)
                        .any(|v| moved(&v.link.name, v.link.index))
            })
            .collect();
        let trackers = now
            .iter()
            .any(|(n, i)| self.tracking.tracks_other_index(n, *i));
        if stale.is_empty() && !trackers {
            // Nothing uses an old index of these names any more.
            self.recreated.retain(|n| !now.iter().any(|(m, _)| m == n));
            return;
        }
        let plan = Plan::renew(&self.config, &stale);
        let config = self.config.clone();
        let what = now
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        match self.apply_plan(&plan, config, Change::Follow(&what)).await {
            Ok(()) => {
                if stale.is_empty() {
                    // Only trackers used the old index: no instance restarted.
                    info!("Interface {what} re-created: tracked again");
                } else {
                    info!(
                        "Interface {what} re-created: {} instance(s) started on it",
                        stale.len()
                    );
                }
                self.recreated.retain(|n| !now.iter().any(|(m, _)| m == n));
                self.follow_warned = false;
            }
            Err(e) if !self.follow_warned => {
                warn!(
                    "Interface {what} re-created, but its instances cannot start yet: {e:#}; trying again"
                );
                self.follow_warned = true;
            }
            Err(e) => log::debug!("Interface {what}: still cannot start its instances: {e:#}"),
        }
    }

    /// Moves from the running configuration to `new` along `plan`: everything that can fail
    /// first (nothing running changes if it does), then removals, the new order, trackers,
    /// notifier, the kept instances reconfigured, XDP, and the new instances started.
    async fn apply_plan(&mut self, plan: &Plan, new: Config, change: Change<'_>) -> Result<()> {
        let (created, tracking) = self.prepare(plan, &new).await?;
        if matches!(change, Change::Reload) && (!plan.removed.is_empty() || !created.is_empty()) {
            info!(
                "Reload: {} instance(s) kept, {} removed, {} started",
                plan.kept.iter().flatten().count(),
                plan.removed.len(),
                created.len()
            );
        }
        for &j in &plan.removed {
            match change {
                Change::Reload => info!("({}) removed by the reload", self.slots[j].name),
                Change::Follow(iface) => info!(
                    "({}) moves to the new {iface}: stopped on the old one",
                    self.slots[j].name
                ),
            }
            self.remove_instance(j, &created).await;
        }
        let created_ks = plan.created();
        let new_groups = self.install(plan, created, &new);
        if let Some(mut t) = tracking {
            t.carry(&self.tracking, &self.config, &new);
            self.tracking = t;
        }
        self.notifier
            .update(notify::Setup::from_config(&new, self.opts.log_detail));
        for k in 0..self.slots.len() {
            if plan.kept[k].is_none() {
                continue;
            }
            if let Err(e) = self.reconfigure(k, &new).await {
                // Checked before anything changed for this instance; the others stay as they are.
                warn!(
                    "({}) reload: {e:#}; this instance keeps its configuration",
                    self.slots[k].name
                );
            }
        }
        self.xdp_follow(&created_ks);
        // Receive sockets of interfaces no instance uses any more (a removed VMAC) close.
        let slots = &self.slots;
        self.rx_sockets.retain(|&(ifindex, v6), (_, task)| {
            let used = slots
                .iter()
                .any(|s| s.rx_link.index == ifindex && s.v6 == v6);
            if !used {
                task.abort();
            }
            used
        });
        // Packet sockets of interfaces gone.
        let slots = &self.slots;
        self.frames.retain(|index, _| {
            slots.iter().any(|s| {
                s.vips
                    .iter()
                    .chain(&s.excluded)
                    .any(|v| v.link.index == *index)
            })
        });
        self.refresh_socket_filters();
        // The virtual servers changed, or what they are read with (their groups, the
        // track_files of FILE_CHECKs, global_defs: mail alerts, lvs_timeouts,
        // checker_log_all_failures), the SSL block, or the VIPs some of them follow: a new
        // balancer takes over (its checkers too). What the running checkers know goes on in the new ones
        // (keepalived migrates them), and the services and real servers that stay keep their
        // places in the maps (their flows, persistence and counts).
        let vips = self.vips();
        let lvs_changed = self.config.virtual_servers != new.virtual_servers
            || self.config.virtual_server_groups != new.virtual_server_groups
            || self.config.track_files != new.track_files
            || self.config.global != new.global
            // keepalived sets its SSL context up again on a reload.
            || self.config.ssl != new.ssl
            || self
                .lvs
                .as_ref()
                .is_some_and(|l| l.follows_changed(|a| vips.contains(&a)));
        self.config = new;
        if let (false, Some(lvs), Some(prog)) = (lvs_changed, self.lvs.as_mut(), &self.xdp) {
            // The same balancer: it hears of interfaces the program runs on now (NAT's
            // warning about replies that would not be translated looks there).
            lvs.set_xdp_ifaces(prog.attachments().iter().map(|a| a.ifindex).collect());
        }
        if lvs_changed {
            let old = self.lvs.take();
            let carried = old.as_ref().map(|l| l.carried()).unwrap_or_default();
            self.start_lvs(&carried);
            if let Some(old) = old {
                old.retire(self.xdp.as_mut().map(|p| &mut p.maps), self.lvs.as_ref());
            }
        }
        self.start(&created_ks, &new_groups).await;
        // A changed lvs_sync_daemon: the daemon is started again with it (keepalived stops
        // and starts it when ipvs_syncd_changed).
        let wanted = crate::lvs::syncd::SyncConfig::of(&self.config);
        if wanted.as_ref() != self.syncd.as_ref().map(|s| s.config()) {
            if let Some(s) = self.syncd.take() {
                s.stop();
            }
            self.start_syncd();
        }
        Ok(())
    }

    /// The new instances set up (sockets, VMACs; nothing sent, no address touched) and the
    /// new trackers started, or why the reload cannot be applied. On failure, what was set up
    /// is undone.
    async fn prepare(
        &mut self,
        plan: &Plan,
        new: &Config,
    ) -> Result<(Vec<(usize, Slot)>, Option<Tracking>)> {
        // A re-created instance that keeps its VMAC's name with another virtual MAC or base
        // would need the running one's interface changed under it.
        for k in plan.created() {
            let ic = &new.instances[k];
            let Some(name) = &ic.use_vmac else { continue };
            for &j in &plan.removed {
                let old = &self.config.instances[j];
                if old.use_vmac.as_ref() == Some(name)
                    && (old.virtual_router_id != ic.virtual_router_id
                        || old.interface != ic.interface
                        || is_v6(old) != is_v6(ic))
                {
                    bail!(
                        "({}) use_vmac {name} is the running ({})'s VMAC with another VRID, family or interface: name it differently, or restart",
                        ic.name,
                        old.name
                    );
                }
            }
        }
        let mut created: Vec<(usize, Slot)> = Vec::new();
        let mut result = Ok(());
        for k in plan.created() {
            let ic = &new.instances[k];
            match self.slot(new, ic).await {
                Ok(slot) => {
                    let listening = self.listen(new, ic, &slot);
                    created.push((k, slot));
                    if let Err(e) = listening {
                        result = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            let all: Vec<&Slot> = (0..plan.kept.len())
                .filter_map(|k| match plan.kept[k] {
                    Some(j) => Some(&self.slots[j]),
                    None => created.iter().find(|(c, _)| *c == k).map(|(_, s)| s),
                })
                .collect();
            result = super::shared_vrid(&all);
        }
        let tracking = match result {
            Ok(()) if plan.tracking => {
                Tracking::new(new, &self.netlink, &self.helpers, Some(&self.config))
                    .await
                    .map(Some)
            }
            Ok(()) => Ok(None),
            Err(e) => Err(e),
        };
        match tracking {
            Ok(t) => Ok((created, t)),
            Err(e) => {
                for (_, slot) in created {
                    self.drop_vmac(&slot, &[]).await;
                }
                Err(e)
            }
        }
    }

    /// A running instance that the new configuration removes (or re-creates): priority 0 if
    /// master, VIPs released, then keepalived's notification — FAULT, or DELETED with
    /// `notify_deleted` (none if it was in FAULT already, unless `notify_deleted`).
    async fn remove_instance(&mut self, j: usize, created: &[(usize, Slot)]) {
        let name = self.slots[j].name.clone();
        let was_fault = self.slots[j].inst.state() == State::Fault;
        self.slots[j].deleting = true;
        while self.slots[j].inst.state() != State::Init {
            self.event(j, Event::Stop).await;
        }
        let deleted = self.config.instances[j].notify.deleted.is_some();
        if deleted || !was_fault {
            self.notifier.send(notify::Note {
                target: j,
                state: if deleted {
                    notify::State::Deleted
                } else {
                    notify::State::Fault
                },
                priority: self.slots[j].inst.priority(),
            });
        }
        if let (Some(prog), Some((key, _))) = (self.xdp.as_mut(), self.slots[j].xdp_entry)
            && let Err(e) = prog.maps.remove_vrid(&key)
        {
            warn!("({name}) XDP VRID entry: {e}");
        }
        let reused: Vec<u32> = created
            .iter()
            .filter_map(|(_, s)| s.vmac.as_ref().map(|v| v.link.index))
            .collect();
        // A VMAC the re-created instance reuses stays with this slot until `install` hands
        // it over.
        if let Some(v) = &self.slots[j].vmac
            && !reused.contains(&v.link.index)
        {
            self.drop_vmac_link(v, &[], &name).await;
        }
    }

    /// A slot that will not run: its VMAC goes if this run created it.
    async fn drop_vmac(&self, slot: &Slot, keep: &[u32]) {
        if let Some(v) = &slot.vmac {
            self.drop_vmac_link(v, keep, &slot.name).await;
        }
    }

    async fn drop_vmac_link(&self, v: &super::Vmac, keep: &[u32], name: &str) {
        if v.created
            && !keep.contains(&v.link.index)
            && let Err(e) = self.netlink.delete_link(v.link.index).await
        {
            warn!("({name}) {}: removing the VMAC: {e}", v.link.name);
        }
    }

    /// The new order of instances and sync groups in place; returns the groups to start.
    fn install(&mut self, plan: &Plan, created: Vec<(usize, Slot)>, new: &Config) -> Vec<usize> {
        let mut old: Vec<Option<Slot>> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(Some)
            .collect();
        let mut created: Vec<Option<(usize, Slot)>> = created.into_iter().map(Some).collect();
        // A VMAC this run made and a re-created instance reuses is still ours to remove (at
        // exit, or at a later reload).
        let made: Vec<u32> = old
            .iter()
            .flatten()
            .filter_map(|s| s.vmac.as_ref().filter(|v| v.created).map(|v| v.link.index))
            .collect();
        for (k, ic) in new.instances.iter().enumerate() {
            let group = new
                .sync_groups
                .iter()
                .position(|g| g.members.contains(&ic.name));
            let mut slot = match plan.kept[k] {
                Some(j) => old[j].take().expect("each running slot continues once"),
                None => {
                    let c = created
                        .iter_mut()
                        .find(|c| c.as_ref().is_some_and(|(n, _)| *n == k))
                        .and_then(Option::take)
                        .expect("every new instance was prepared");
                    c.1
                }
            };
            if let Some(v) = slot.vmac.as_mut()
                && made.contains(&v.link.index)
            {
                v.created = true;
            }
            slot.group = group;
            self.slots.push(slot);
        }
        let old_groups = std::mem::replace(&mut self.groups, Group::all(new));
        let mut start = Vec::new();
        for (g, group) in self.groups.iter_mut().enumerate() {
            let members: Vec<&str> = group
                .members
                .iter()
                .map(|&m| new.instances[m].name.as_str())
                .collect();
            let same = old_groups.iter().find(|o| {
                o.name == group.name
                    && o.members.len() == members.len()
                    && o.members
                        .iter()
                        .zip(&members)
                        .all(|(&om, n)| self.config.instances[om].name == *n)
            });
            match same {
                // Its members kept running (their identity names the group): so does it.
                Some(o) if group.members.iter().all(|&m| plan.kept[m].is_some()) => {
                    group.target = o.target;
                    group.notified = o.notified;
                }
                _ => start.push(g),
            }
        }
        self.instances = new.instances.len();
        start
    }

    /// The XDP program follows: attached to new instances' interfaces, their VRIDs entered,
    /// and detached from interfaces no instance uses any more.
    fn xdp_follow(&mut self, created: &[usize]) {
        let Some(mut prog) = self.xdp.take() else {
            return;
        };
        // Interfaces no instance uses, or deleted (one re-created under the same name has
        // another index).
        let unused: Vec<(u32, String)> = prog
            .attachments()
            .iter()
            .filter(|a| !self.slots.iter().any(|s| s.link.index == a.ifindex))
            .map(|a| (a.ifindex, a.iface.clone()))
            .collect();
        for (index, name) in unused {
            let gone = self.slots.iter().any(|s| s.link.name == name);
            if let Err(e) = prog.detach(index)
                && !gone
            {
                warn!("{name}: detaching XDP: {e}");
            }
            if let Err(e) = prog.maps.remove_iface(index) {
                warn!("{name}: XDP interface entry: {e}");
            }
        }
        if let Err(e) = self.xdp_add(&mut prog, created) {
            warn!("{e:#}: the new instances run without the XDP filter");
        }
        self.xdp = Some(prog);
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
        // Compared by content: a line that only moved in the file is the same address.
        let same = |a: &Vip, b: &Vip| a.addr.same_as(&b.addr) && a.link.index == b.link.index;
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
        slot.xdp_entry = crate::xdp::vrid_entry(ic, &new.global, slot.link.index);
        slot.xdp_peers = crate::xdp::peer_addrs(ic, &new.global);
        let slot = &self.slots[k];
        if let (Some(prog), Some((key, entry))) = (self.xdp.as_mut(), slot.xdp_entry)
            && let Err(e) = prog
                .maps
                .set_peers(key, &slot.xdp_peers)
                .and_then(|()| prog.maps.set_vrid(key, entry))
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
        let a = v.addr.addr;
        let key = match a {
            std::net::IpAddr::V4(a) => agent_common::VipKey::v4(v.xdp_ifindex, 0, a.octets()),
            std::net::IpAddr::V6(a) => agent_common::VipKey::v6(v.xdp_ifindex, 0, a.octets()),
        };
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
