//! The rules keepalived applies once the whole configuration is read: across blocks (trackers,
//! sync groups, duplicate VRIDs), keepalived's corrections (owner priority, VRRPv3 and strict
//! mode without authentication, preempt rules), and for the config test what the host must
//! provide (interfaces, scripts). Messages are keepalived's, so operators recognise them.

use std::{
    collections::{HashMap, HashSet},
    os::unix::fs::PermissionsExt,
    path::Path,
};

use super::{diag::Diags, model::*};

/// What the host offers, so the checks are testable without one.
pub trait Host {
    fn interface_exists(&self, name: &str) -> bool;
    /// The file exists and can be executed (by root, as keepalived checks it).
    fn executable(&self, path: &str) -> bool;
    fn user_exists(&self, name: &str) -> bool;
    fn group_exists(&self, _name: &str) -> bool {
        true
    }
    /// keepalived's check_script_secure for a script run as root: the path that anyone but
    /// root could change (the script or a directory above it), if any.
    fn insecure(&self, path: &str) -> Option<String>;
}

/// The machine (its current network namespace).
pub struct System;

impl Host for System {
    fn interface_exists(&self, name: &str) -> bool {
        crate::iface::index(name).is_some()
    }

    fn executable(&self, path: &str) -> bool {
        Path::new(path)
            .metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }

    fn user_exists(&self, name: &str) -> bool {
        let Ok(c) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: valid C string; getpwnam's result is only tested for NULL.
        !unsafe { libc::getpwnam(c.as_ptr()) }.is_null()
    }

    fn group_exists(&self, name: &str) -> bool {
        let Ok(c) = std::ffi::CString::new(name) else {
            return false;
        };
        // SAFETY: valid C string; getgrnam's result is only tested for NULL.
        !unsafe { libc::getgrnam(c.as_ptr()) }.is_null()
    }

    fn insecure(&self, path: &str) -> Option<String> {
        use crate::track::security::{Insecure, check};
        match check(path) {
            Ok(()) => None,
            Err(Insecure::NotFound(_)) => None,
            Err(Insecure::WrongType(p) | Insecure::Writable(p)) => Some(p.display().to_string()),
        }
    }
}

/// A host that has every interface, script and user: only the text is judged (fuzzing, tests
/// of the language itself).
pub struct Unchecked;

impl Host for Unchecked {
    fn interface_exists(&self, _: &str) -> bool {
        true
    }

    fn executable(&self, _: &str) -> bool {
        true
    }

    fn user_exists(&self, _: &str) -> bool {
        true
    }

    fn insecure(&self, _: &str) -> Option<String> {
        None
    }
}

/// keepalived's default user for scripts when `script_user` is not set.
pub const DEFAULT_SCRIPT_USER: &str = "keepalived_script";

/// Applies keepalived's post-parse rules to `config` (changing it as keepalived does) and
/// reports what it finds.
pub fn validate(config: &mut Config, host: &dyn Host, diags: &mut Diags) {
    let strict = config.global.vrrp_strict;
    for InterfaceRef { name, at } in &config.linkbeat_interfaces {
        if !host.interface_exists(name) {
            diags.cannot_run(
                Some(at),
                format!("unknown interface {name} specified for linkbeat interface"),
            );
        }
    }
    // A script whose user or group does not exist cannot be run: keepalived drops it while
    // reading (it never falls back to root).
    config.scripts.retain(|s| {
        let path = s.script.first().map_or("", String::as_str);
        let bad_user = s.user.as_ref().is_some_and(|u| !host.user_exists(u));
        let bad_group = s.group.as_ref().is_some_and(|g| !host.group_exists(g));
        if bad_user || bad_group {
            diags.config(
                Some(&s.at),
                format!("Unable to set uid/gid for script '{path}'"),
            );
            return false;
        }
        true
    });
    // A track_file needs its file.
    config.track_files.retain(|t| {
        if t.file.is_none() {
            diags.config(
                Some(&t.at),
                format!("No file set for track_file {} - ignoring", t.name),
            );
            return false;
        }
        true
    });
    // Who scripts run as when they name nobody: root unless script_user (or the user
    // keepalived_script) exists.
    let default_user = config
        .global
        .script_user
        .as_deref()
        .unwrap_or(DEFAULT_SCRIPT_USER);
    let default_root = default_user == "root" || !host.user_exists(default_user);
    let security = config.global.enable_script_security;
    // keepalived's check_vrrp_script_security: a script that cannot be run, or (with
    // enable_script_security) one run as root that others could change, is disabled and
    // silently taken out of every instance and group that tracks it.
    let mut disabled = HashSet::new();
    let mut insecure_scripts = false;
    config.scripts.retain(|s| {
        let path = s.script.first().map(String::as_str).unwrap_or("");
        if path.is_empty() || !host.executable(path) {
            diags.config(
                None,
                format!(
                    "Disabling track script {} since not found/accessible",
                    s.name
                ),
            );
            disabled.insert(s.name.clone());
            return false;
        }
        let as_root = match s.user.as_deref() {
            Some(u) => u == "root",
            None => default_root,
        };
        if as_root && let Some(bad) = host.insecure(path) {
            insecure_scripts = true;
            let _ = bad;
            if security {
                diags.config(
                    None,
                    format!("Unsafe permissions found for script '{path}' - disabling."),
                );
                diags.config(
                    None,
                    format!("Disabling track script {} due to insecure", s.name),
                );
                disabled.insert(s.name.clone());
                return false;
            }
            diags.config(
                None,
                format!("Unsafe permissions found for script '{path}'."),
            );
        }
        true
    });
    // Notify scripts (and the FIFO readers) run as root under the same rule.
    let notifies = config
        .instances
        .iter_mut()
        .map(|i| &mut i.notify)
        .chain(config.sync_groups.iter_mut().map(|g| &mut g.notify));
    let mut slots: Vec<&mut Option<NotifyScript>> = Vec::new();
    for n in notifies {
        slots.extend([
            &mut n.master,
            &mut n.backup,
            &mut n.fault,
            &mut n.stop,
            &mut n.deleted,
            &mut n.master_rx_lower_pri,
            &mut n.generic,
        ]);
    }
    slots.push(&mut config.global.notify_fifo_script);
    slots.push(&mut config.global.vrrp_notify_fifo_script);
    {
        for slot in slots {
            let Some(script) = slot else { continue };
            let Some(path) = script.argv.first().cloned() else {
                continue;
            };
            // `notify_X SCRIPT USER [GROUP]`: a user or group that does not exist drops the
            // script (it never falls back to root).
            if let Some(user) = script.user.clone()
                && !host.user_exists(&user)
            {
                diags.config(
                    None,
                    format!("Unable to resolve script username '{user}' - ignoring"),
                );
                *slot = None;
                continue;
            }
            if let Some(group) = script.group.clone()
                && !host.group_exists(&group)
            {
                diags.config(
                    None,
                    format!("Unable to resolve script group name '{group}' - ignoring"),
                );
                *slot = None;
                continue;
            }
            let as_root = match script.user.as_deref() {
                Some(u) => u == "root",
                None => default_root,
            };
            if as_root && host.executable(&path) && host.insecure(&path).is_some() {
                insecure_scripts = true;
                if security {
                    diags.config(
                        None,
                        format!("Unsafe permissions found for script '{path}' - disabling."),
                    );
                    *slot = None;
                } else {
                    diags.config(
                        None,
                        format!("Unsafe permissions found for script '{path}'."),
                    );
                }
            }
        }
    }
    for g in &mut config.sync_groups {
        g.track_scripts.retain(|t| !disabled.contains(&t.name));
    }
    let script_names: Vec<String> = config.scripts.iter().map(|s| s.name.clone()).collect();

    // Duplicate instance names: the later one is dropped.
    let mut seen = HashSet::new();
    config.instances.retain(|i| {
        if !seen.insert(i.name.clone()) {
            diags.config(
                Some(&i.at),
                format!("vrrp instance {} already defined", i.name),
            );
            return false;
        }
        true
    });

    // Members of sync groups that do not allow weighted tracking.
    let unweighted_members: Vec<String> = config
        .sync_groups
        .iter()
        .filter(|g| !g.sync_group_tracking_weight && !g.other.contains_key("global_tracking"))
        .flat_map(|g| g.members.iter().cloned())
        .collect();
    let mut dropped = Vec::new();
    for i in &mut config.instances {
        let loc = i.at.clone();
        let name = i.name.clone();
        if i.virtual_router_id.is_none() {
            diags.config(None, format!("({name}) the virtual router id must be set"));
        }
        match &i.interface {
            None => diags.config(None, format!("({name}) Unknown interface!")),
            Some(ifname) if !host.interface_exists(ifname) => {
                diags.config(
                    Some(&loc),
                    format!("WARNING - interface {ifname} for vrrp_instance {name} doesn't exist"),
                );
                diags.cannot_run(None, "Non-existent interface specified in configuration");
            }
            Some(_) => {}
        }
        // vrrp-agent's `allowed_peers`: multicast instances, addresses of their family.
        if !i.allowed_peers.is_empty() {
            if !i.unicast_peers.is_empty() {
                diags.config(
                    Some(&loc),
                    format!("({name}) allowed_peers is for multicast instances; a unicast instance checks its unicast_peer list with check_unicast_src - ignoring allowed_peers"),
                );
                i.allowed_peers.clear();
            }
            let v6 = i
                .virtual_ipaddress
                .first()
                .is_some_and(|v| v.addr.is_ipv6());
            let before = i.allowed_peers.len();
            i.allowed_peers.retain(|a| a.is_ipv6() == v6);
            if i.allowed_peers.len() != before {
                diags.config(
                    Some(&loc),
                    format!("({name}) allowed_peers of the other address family - ignoring them"),
                );
            }
        }
        let strict = i.strict_mode.unwrap_or(strict);
        // An IPv6 instance is VRRPv3 unless `version 2` is written (and then only outside
        // strict mode).
        if i.virtual_ipaddress
            .first()
            .is_some_and(|v| v.addr.is_ipv6())
        {
            if i.version_set && i.version == 2 && strict {
                diags.config(
                    Some(&loc),
                    format!("({name}) cannot use IPv6 with VRRP version 2; setting version 3"),
                );
                i.version = 3;
            } else if !i.version_set {
                i.version = 3;
            }
        }
        if i.virtual_ipaddress.is_empty() {
            if i.version == 3 || strict {
                diags.config(
                    Some(&loc),
                    format!("({name}) No VIP specified; at least one is required"),
                );
                dropped.push(name.clone());
                continue;
            }
            diags.config(
                Some(&loc),
                format!("({name}) No VIP specified; at least one is sensible"),
            );
        }
        // RFC 5798 §5.2.4: a router owning the addresses has priority 255; keepalived makes
        // `state MASTER` without a priority the owner, and the owner without a state MASTER.
        if i.state == State::Master && !i.priority_set {
            i.priority = 255;
        }
        let owner = i.priority == 255;
        if !i.state_set {
            i.state = if owner { State::Master } else { State::Backup };
        } else if strict && (i.state == State::Master) != owner {
            diags.config(
                Some(&loc),
                format!("({name}) State MASTER must match being address owner"),
            );
            i.state = if owner { State::Master } else { State::Backup };
        }
        if i.version == 3 && i.auth != Auth::None {
            diags.config(
                Some(&loc),
                format!("({name}) VRRP version 3 does not support authentication. Ignoring."),
            );
            i.auth = Auth::None;
        } else if (strict || i.strict_mode == Some(true)) && i.auth != Auth::None {
            diags.config(
                Some(&loc),
                format!("({name}) Strict mode does not support authentication. Ignoring."),
            );
            i.auth = Auth::None;
        }
        if i.nopreempt && i.state == State::Master {
            diags.config(Some(&loc), format!("({name}) Warning - nopreempt will not work with initial state MASTER - clearing"));
            i.nopreempt = false;
        }
        if strict && i.preempt_delay > 0.0 {
            diags.config(
                Some(&loc),
                format!("({name}) preempt_delay is incompatible with strict mode - resetting"),
            );
            i.preempt_delay = 0.0;
        }
        if i.nopreempt && i.preempt_delay > 0.0 {
            diags.config(
                Some(&loc),
                format!("({name}) preempt_delay is incompatible with nopreempt mode - resetting"),
            );
            i.preempt_delay = 0.0;
        }
        if strict {
            strict_mode(i, diags);
        }
        // Tracked scripts must exist; an address owner (255) ignores weighted ones.
        i.track_scripts.retain(|t| {
            if disabled.contains(&t.name) {
                return false;
            }
            if !script_names.contains(&t.name) {
                diags.config(
                    Some(&t.at),
                    format!("({name}) track script {} not found, ignoring...", t.name),
                );
                return false;
            }
            true
        });
        // A tracked BFD must be one of the config's bfd_instance blocks.
        let bfds = &config.bfd_instances;
        i.track_bfds.retain(|t| {
            if bfds.iter().any(|b| b.args.first() == Some(&t.name)) {
                return true;
            }
            diags.config(
                Some(&t.at),
                format!("({name}) track bfd {} not found, ignoring...", t.name),
            );
            false
        });
        // keepalived's vrrp_complete_instance: a sync-group member (unless the group allows
        // weights) and the address owner cannot have their priority moved by trackers.
        let reason = if unweighted_members.contains(&i.name) {
            Some("SYNC group")
        } else if i.priority == 255 {
            Some("address_owner")
        } else {
            None
        };
        if let Some(reason) = reason {
            drop_weighted_trackers(i, reason, &config.scripts, &config.track_files, diags);
        }
        if let Some(own) = i.interface.clone() {
            i.track_interfaces.retain(|t| {
                if t.name == own {
                    diags.config(
                        Some(&t.at),
                        format!("({name}) Ignoring track_interface {own} since own interface"),
                    );
                    return false;
                }
                true
            });
        }
        // VIPs must be of the instance's family: the first address decides it.
        let family_v4 = i.virtual_ipaddress.first().map(|v| v.addr.is_ipv4());
        if let Some(v4) = family_v4 {
            i.virtual_ipaddress.retain(|v| {
                if v.addr.is_ipv4() != v4 {
                    diags.config(
                        Some(&v.at),
                        format!(
                            "({name}): address family must match VRRP instance [{}] - ignoring",
                            v.addr
                        ),
                    );
                    return false;
                }
                true
            });
        }
        for v in &i.virtual_ipaddress {
            if let Some(dev) = &v.dev
                && !host.interface_exists(dev)
            {
                diags.config(
                    Some(&v.at),
                    format!(
                        "WARNING - interface {dev} for ip address {} doesn't exist",
                        v.addr
                    ),
                );
            }
        }
    }

    config.instances.retain(|i| !dropped.contains(&i.name));

    // Two instances with one VRID on the same interface and family cannot both work.
    let mut vrids: HashMap<(String, u8, bool), String> = HashMap::new();
    for i in &config.instances {
        let (Some(ifname), Some(vrid)) = (&i.interface, i.virtual_router_id) else {
            continue;
        };
        let v4 = i.virtual_ipaddress.first().is_none_or(|v| v.addr.is_ipv4());
        if let Some(other) = vrids.insert((ifname.clone(), vrid, v4), i.name.clone()) {
            let family = if v4 { "IPv4" } else { "IPv6" };
            diags.config(
                Some(&i.at),
                format!(
                    "{other} and {} both use VRID {vrid} with {family} on interface {ifname}",
                    i.name
                ),
            );
        }
    }

    let instance_names: Vec<String> = config.instances.iter().map(|i| i.name.clone()).collect();
    let mut grouped: HashSet<String> = HashSet::new();
    for g in &mut config.sync_groups {
        let name = g.name.clone();
        g.members.retain(|m| {
            if instance_names.contains(m) && !grouped.insert(m.clone()) {
                diags.config(
                    None,
                    format!("Virtual router {m} cannot exist in more than one sync group; ignoring {name}"),
                );
                return false;
            }
            if !instance_names.contains(m) {
                diags.config(
                    None,
                    format!(
                        "Virtual router {m} specified in sync group {name} doesn't exist - ignoring"
                    ),
                );
                return false;
            }
            true
        });
        if g.members.len() == 1 {
            diags.config(None, format!("Sync group {name} has only 1 virtual router(s) - this probably isn't what you want"));
        }
    }

    // Scripts: a script that cannot be run is disabled (keepalived's config test fails).
    // One with its own (existing) user does not run as root.
    let mut root_scripts = false;
    for s in &config.scripts {
        if s.user.as_deref().is_none_or(|u| u == "root") {
            root_scripts = true;
        }
    }
    let notify_scripts = config
        .instances
        .iter()
        .map(|i| &i.notify)
        .chain(config.sync_groups.iter().map(|g| &g.notify))
        .flat_map(|n| {
            [
                &n.master,
                &n.backup,
                &n.fault,
                &n.stop,
                &n.deleted,
                &n.master_rx_lower_pri,
                &n.generic,
            ]
        })
        .flatten()
        .any(|n| n.argv.first().is_some_and(|p| host.executable(p)));
    // Scripts run as root unless a user is given and exists; keepalived refuses that unless
    // script security is enabled.
    if (root_scripts || notify_scripts) && default_root && !security {
        diags.security(
            None,
            format!(
                "SECURITY VIOLATION - scripts are being executed but script_security not enabled.{}",
                if insecure_scripts { " There are insecure scripts." } else { "" }
            ),
        );
    }

    // startup_script / shutdown_script run as root too unless given an existing user.
    let start_stop_as_root = ["startup_script", "shutdown_script"]
        .iter()
        .filter_map(|kw| config.global.other.get(*kw))
        .flatten()
        .any(|args| {
            let command = args
                .first()
                .map(|c| super::lexer::tokenize(c))
                .unwrap_or_default();
            let runnable = command.first().is_some_and(|p| host.executable(&p.text));
            let user = args.get(1).map_or(default_user, String::as_str);
            runnable && (user == "root" || !host.user_exists(user))
        });
    if start_stop_as_root && !config.global.enable_script_security {
        diags.security(None, "SECURITY VIOLATION - start/shutdown scripts are being executed but script_security not enabled.");
    }
    // LVS check scripts: MISC_CHECK, notify_up/down of real servers, quorum_up/down.
    let runs_as_root = |command: &str, script_user: Option<&str>| {
        let words = super::lexer::tokenize(command);
        let runnable = words.first().is_some_and(|p| host.executable(&p.text));
        let user = script_user.unwrap_or(default_user);
        runnable && (user == "root" || !host.user_exists(user))
    };
    let mut check_scripts_as_root = false;
    for vs in &config.virtual_servers {
        for b in vs
            .other
            .iter()
            .filter(|b| matches!(b.keyword.as_str(), "quorum_up" | "quorum_down"))
        {
            check_scripts_as_root |= b.args.first().is_some_and(|c| runs_as_root(c, None));
        }
        for rs in &vs.real_servers {
            for b in &rs.children {
                match b.keyword.as_str() {
                    "notify_up" | "notify_down" => {
                        check_scripts_as_root |=
                            b.args.first().is_some_and(|c| runs_as_root(c, None))
                    }
                    "MISC_CHECK" => {
                        let field = |k: &str| b.children.iter().find(|c| c.keyword == k);
                        let user = field("user")
                            .and_then(|u| u.args.first())
                            .map(String::as_str);
                        if let Some(path) = field("misc_path").and_then(|p| p.args.first()) {
                            check_scripts_as_root |= runs_as_root(path, user);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if check_scripts_as_root && !config.global.enable_script_security {
        diags.security(None, "SECURITY VIOLATION - check scripts are being executed but script_security not enabled.");
    }
}

/// What `vrrp_strict` / `strict_mode` changes in an instance beyond authentication and
/// preempt_delay (keepalived's vrrp_complete_instance, in its order and words).
fn strict_mode(i: &mut Instance, diags: &mut Diags) {
    let (name, loc) = (i.name.clone(), i.at.clone());
    if i.down_timer_adverts.is_some_and(|d| d != 3) {
        diags.config(
            Some(&loc),
            format!("({name}) down_timer_adverts is incompatible with strict mode - resetting"),
        );
        i.down_timer_adverts = Some(3);
    }
    // RFC 3768 has no accept mode: only the address owner accepts (default no_accept).
    let owner = i.priority == 255;
    let accept = i.accept.unwrap_or(owner);
    if accept && !owner && i.version == 2 {
        diags.config(Some(&loc), format!("({name}) warning - accept mode for VRRP version 2 does not comply with RFC3768 - resetting"));
        i.accept = Some(false);
    } else {
        i.accept = Some(accept);
    }
    if i.garp_lower_prio_repeat.is_some_and(|r| r != 0) {
        diags.config(
            Some(&loc),
            format!("({name}) Strict mode requires no repeat garps. resetting"),
        );
    }
    i.garp_lower_prio_repeat = Some(0);
    if i.garp_lower_prio_delay.is_some_and(|d| d != 0) {
        diags.config(
            Some(&loc),
            format!("({name}) Strict mode requires no repeat garp delay. resetting"),
        );
    }
    i.garp_lower_prio_delay = Some(0);
    if i.lower_prio_no_advert == Some(false) {
        diags.config(
            Some(&loc),
            format!("({name}) Strict mode requires no lower priority advert. resetting"),
        );
    }
    i.lower_prio_no_advert = Some(true);
    if i.higher_prio_send_advert == Some(true) {
        diags.config(
            Some(&loc),
            format!("({name}) strict mode requires higher_prio_send_advert to be clear. resetting"),
        );
    }
    i.higher_prio_send_advert = Some(false);
    if i.use_vmac.is_some() && i.vmac_xmit_base {
        diags.config(
            Some(&loc),
            format!("({name}) xmit_base is incompatible with strict mode - resetting"),
        );
        i.vmac_xmit_base = false;
    }
}

/// Removes (or makes unweighted) the trackers that would move the priority of an instance
/// that must not move: `reason` is "SYNC group" or "address_owner", as in keepalived's texts.
fn drop_weighted_trackers(
    i: &mut Instance,
    reason: &str,
    scripts: &[VrrpScript],
    files: &[TrackFile],
    diags: &mut Diags,
) {
    let name = i.name.clone();
    let owner = reason == "address_owner";
    i.track_interfaces.retain_mut(|t| {
        if t.weight.unwrap_or(0) == 0 {
            return true;
        }
        if owner {
            diags.config(
                Some(&t.at),
                format!(
                    "({name}) ignoring {} tracked interface due to address owner",
                    t.name
                ),
            );
            return false;
        }
        diags.config(
            Some(&t.at),
            format!(
                "({name}) ignoring {} tracked interface weight due to SYNC group",
                t.name
            ),
        );
        t.weight = Some(0);
        true
    });
    i.track_scripts.retain(|t| {
        let weight = t.weight.unwrap_or_else(|| {
            scripts
                .iter()
                .find(|s| s.name == t.name)
                .map_or(0, |s| s.weight)
        });
        if weight == 0 {
            return true;
        }
        diags.config(
            Some(&t.at),
            format!(
                "({name}) ignoring tracked script {} with weights due to {reason}",
                t.name
            ),
        );
        false
    });
    i.track_bfds.retain(|t| match t.weight {
        Some(w) if w != 0 => {
            diags.config(
                Some(&t.at),
                format!(
                    "({name}) ignoring tracked bfd {} with weight {w} due to {reason}",
                    t.name
                ),
            );
            false
        }
        _ => true,
    });
    i.track_files.retain_mut(|t| {
        let weight = t.weight.unwrap_or_else(|| files.iter().find(|f| f.name == t.name).map_or(1, |f| f.weight));
        match weight {
            0 => true,
            // The default weight: the file becomes a fault tracker.
            1 => {
                diags.config(Some(&t.at), format!("({name}) ignoring weight from tracked file {} due to {reason}. specify weight 0", t.name));
                t.weight = Some(0);
                true
            }
            w => {
                diags.config(Some(&t.at), format!("({name}) ignoring tracked file {} with weight {w} due to {reason}", t.name));
                false
            }
        }
    });
}
