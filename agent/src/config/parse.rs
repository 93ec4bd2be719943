//! Statements → the typed model, keyword by keyword, with keepalived's defaults, ranges and
//! messages. Semantic rules that look across blocks (and at the host) are in `validate`.

use std::net::IpAddr;

use super::{
    diag::{Diags, Loc},
    model::*,
    specs,
    tree::Stmt,
};

/// Keywords keepalived accepts in a block that are kept as written (behaviour in a later
/// layer). Anything not listed and not modelled is an unknown keyword.
const GLOBAL_OTHER: &[&str] = &[
    "lvs_sync_daemon",
    "lvs_flush",
    "lvs_flush_onstop",
    "lvs_timeouts",
    "lvs_netlink_cmd_rcv_bufs",
    "lvs_netlink_cmd_rcv_bufs_force",
    "lvs_netlink_monitor_rcv_bufs",
    "lvs_netlink_monitor_rcv_bufs_force",
    "dynamic_interfaces",
    "no_email_faults",
    "checker_process_name",
    "vrrp_process_name",
    "bfd_process_name",
    "process_names",
    "vrrp_priority",
    "checker_priority",
    "bfd_priority",
    "vrrp_no_swap",
    "checker_no_swap",
    "bfd_no_swap",
    "vrrp_rt_priority",
    "checker_rt_priority",
    "bfd_rt_priority",
    "vrrp_rlimit_rtime",
    "checker_rlimit_rtime",
    "bfd_rlimit_rtime",
    "vrrp_cpu_affinity",
    "checker_cpu_affinity",
    "bfd_cpu_affinity",
    "nftables_priority",
    "nftables_ifindex",
    "nftables_counters",
    "vrrp_netlink_cmd_rcv_bufs",
    "vrrp_netlink_cmd_rcv_bufs_force",
    "vrrp_netlink_monitor_rcv_bufs",
    "vrrp_netlink_monitor_rcv_bufs_force",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "max_auto_priority",
    "min_auto_priority_delay",
    "log_unknown_vrids",
    "umask",
    "random_seed",
    "reload_check_config",
    "reload_time_file",
    "reload_repeat",
    "reload_file",
    "config_save_dir",
    "data_use_instance",
    "tmp_config_directory",
    "fifo_write_vrrp_states_on_reload",
    "startup_script",
    "startup_script_timeout",
    "shutdown_script",
    "shutdown_script_timeout",
    "vrrp_garp_extra_if",
    "snmp_socket",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_checker",
    "enable_traps",
    "enable_dbus",
    "vrrp_notify_priority_changes",
    "default_interface",
    "disable_local_igmp",
    "process_name",
    "lvs_process_name",
    "vrrp_rlimit_rttime",
    "checker_rlimit_rttime",
    "bfd_rlimit_rttime",
    "nftables",
    "nftables_ipvs",
    "nftables_ipvs_priority",
    "nftables_ipvs_start_fwmark",
    "process_monitor_rcv_bufs",
    "process_monitor_rcv_bufs_force",
    "rs_init_notifies",
    "lvs_flush_on_stop",
    "include_check",
    "vmac_prefix",
    "vmac_addr_prefix",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "dbus_service_name",
];

const INSTANCE_OTHER: &[&str] = &[
    "native_ipv6",
    "debug",
    "kernel_rx_buf_size",
    "notify_priority_changes",
    "promote_secondaries",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
    "mcast_dst_ip",
    "track_src_ip",
    "garp_extra_if",
    "use_vmac_addr",
    "use_ipvlan",
    "vrf",
];

/// Builds the model. Unknown keywords are warnings, malformed values errors; both located.
pub fn build(stmts: &[Stmt], diags: &mut Diags) -> Config {
    let mut config = Config::default();
    // vrrp_version in global_defs sets the default version of every instance, wherever the
    // instance stands in the file: read global_defs first.
    for stmt in stmts.iter().filter(|s| s.keyword == "global_defs") {
        global_defs(stmt.children(), &mut config.global, diags);
    }
    top_level(stmts, &mut config, diags);
    diags.read_to_end();
    config
}

fn top_level(stmts: &[Stmt], config: &mut Config, diags: &mut Diags) {
    for stmt in stmts {
        match stmt.keyword.as_str() {
            "global_defs" => {}
            "vrrp_script" => {
                if let Some(name) = named(stmt, diags) {
                    config.scripts.push(vrrp_script(name, stmt, diags));
                }
            }
            "vrrp_track_file" | "track_file" => {
                if let Some(name) = named(stmt, diags) {
                    config.track_files.push(track_file(name, stmt, diags));
                }
            }
            "vrrp_track_process" => {
                if let Some(name) = named(stmt, diags) {
                    config
                        .track_processes
                        .push(track_process(name, stmt, diags));
                }
            }
            "vrrp_sync_group" => {
                if let Some(name) = named(stmt, diags) {
                    config.sync_groups.push(sync_group(name, stmt, diags));
                }
            }
            "vrrp_instance" => {
                if let Some(name) = named(stmt, diags) {
                    config
                        .instances
                        .push(instance(name, stmt, config.global.vrrp_version, diags));
                }
            }
            "virtual_server_group" => config.virtual_server_groups.push(raw(stmt)),
            "SSL" => {
                if config.ssl.is_some() {
                    diags.config(Some(&stmt.loc), "SSL context already specified - replacing");
                }
                config.ssl = Some(ssl(stmt, diags));
            }
            "virtual_server" => {
                let names: Vec<String> =
                    config.track_files.iter().map(|t| t.name.clone()).collect();
                super::lvs::virtual_server(stmt, &names, &config.virtual_server_groups, diags);
                config.virtual_servers.push(virtual_server(stmt));
            }
            "bfd_instance" => config.bfd_instances.push(raw(stmt)),
            "instance" => config.instance = stmt.arg(0).map(str::to_string),
            "linkbeat_interfaces" => config
                .linkbeat_interfaces
                .extend(stmt.children().iter().map(|c| InterfaceRef {
                    name: c.keyword.clone(),
                    at: c.loc.clone(),
                })),
            "static_ipaddress"
            | "static_routes"
            | "static_rules"
            | "garp_group"
            | "net_namespace"
            | "net_namespace_ipvs"
            | "use_pid_dir"
            | "namespace_with_ipsets"
            | "interface_up_down_delays"
            | "track_group"
            | "child_wait_time"
            | "linkbeat_use_polling" => {}
            _ => unknown(stmt, diags, |children, diags| {
                top_level(children, config, diags)
            }),
        }
    }
}

/// keepalived's handling of an unknown keyword: warn, and if it opened a block, say so and
/// read the block's lines as if they stood where the keyword is.
fn unknown(stmt: &Stmt, diags: &mut Diags, mut same_level: impl FnMut(&[Stmt], &mut Diags)) {
    diags.config(
        Some(&stmt.loc),
        format!("Unknown keyword '{}'", stmt.keyword),
    );
    if let Some(children) = &stmt.block {
        diags.config(Some(&stmt.loc), "Unexpected '{' - ignoring");
        same_level(children, diags);
    }
}

fn raw(stmt: &Stmt) -> RawBlock {
    RawBlock {
        keyword: stmt.keyword.clone(),
        args: stmt.args.iter().map(|a| a.text.clone()).collect(),
        at: stmt.loc.clone(),
        children: stmt.children().iter().map(raw).collect(),
    }
}

fn keep(other: &mut Other, stmt: &Stmt) {
    other
        .entry(stmt.keyword.clone())
        .or_default()
        .push(stmt.args.iter().map(|a| a.text.clone()).collect());
}

fn missing(stmt: &Stmt, position: usize, diags: &mut Diags) {
    diags.stop(
        super::diag::EXIT_MISSING_PARAMETER,
        Some(&stmt.loc),
        format!(
            "*** Configuration line starting `{}` is missing a parameter after keyword `{}` at word position {}",
            stmt.keyword,
            stmt.args.get(position.wrapping_sub(2)).map_or(stmt.keyword.as_str(), |a| a.text.as_str()),
            position
        ),
    );
}

/// The first argument, or a "missing a parameter" error.
fn arg1<'a>(stmt: &'a Stmt, diags: &mut Diags) -> Option<&'a str> {
    let v = stmt.arg(0);
    if v.is_none() {
        missing(stmt, 2, diags);
    }
    v
}

fn named(stmt: &Stmt, diags: &mut Diags) -> Option<String> {
    arg1(stmt, diags).map(str::to_string)
}

fn all_args(stmt: &Stmt) -> Vec<String> {
    stmt.args.iter().map(|a| a.text.clone()).collect()
}

/// Reports a malformed value `text` of `stmt` at the column of the word that holds it.
fn bad_value(stmt: &Stmt, text: &str, diags: &mut Diags, message: String) {
    match stmt.args.iter().find(|a| a.text == text) {
        Some(word) => diags.value(&stmt.loc, word.col, message),
        None => diags.config(Some(&stmt.loc), message),
    }
}

/// An integer argument in `min..=max`; out of range or not a number is an error naming what
/// was expected.
fn int_in(stmt: &Stmt, what: &str, min: i64, max: i64, diags: &mut Diags) -> Option<i64> {
    let text = arg1(stmt, diags)?;
    match text.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            bad_value(
                stmt,
                text,
                diags,
                format!("{what} '{text}' invalid - must be an integer between {min} and {max}"),
            );
            None
        }
    }
}

/// A decimal number of seconds in `min..=max`.
fn secs_in(stmt: &Stmt, what: &str, min: f64, max: f64, diags: &mut Diags) -> Option<f64> {
    let text = arg1(stmt, diags)?;
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= min && v <= max => Some(v),
        _ => {
            bad_value(
                stmt,
                text,
                diags,
                format!("{what} '{text}' invalid - must be a number between {min} and {max}"),
            );
            None
        }
    }
}

fn addr(stmt: &Stmt, text: &str, what: &str, diags: &mut Diags) -> Option<IpAddr> {
    match text.parse::<IpAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            bad_value(
                stmt,
                text,
                diags,
                format!("{what} '{text}' is not a valid IP address - ignoring"),
            );
            None
        }
    }
}

/// `true` unless the keyword has an argument that says otherwise (keepalived's
/// `get_value_from_word` style booleans: `true/on/yes/1` and `false/off/no/0`).
fn flag(stmt: &Stmt, diags: &mut Diags) -> bool {
    match stmt.arg(0) {
        None => true,
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" | "1" => true,
            "false" | "off" | "no" | "0" => false,
            _ => {
                bad_value(
                    stmt,
                    v,
                    diags,
                    format!(
                        "{} '{v}' invalid - expected true/false, on/off, yes/no",
                        stmt.keyword
                    ),
                );
                true
            }
        },
    }
}

// ===== global_defs =====

fn global_defs(stmts: &[Stmt], g: &mut GlobalDefs, diags: &mut Diags) {
    for stmt in stmts {
        let kw = stmt.keyword.as_str();
        match kw {
            "router_id" => g.router_id = named(stmt, diags),
            "notification_email" => {
                g.notification_email
                    .extend(stmt.children().iter().map(|s| s.keyword.clone()));
                g.notification_email.extend(all_args(stmt));
            }
            "notification_email_from" => g.notification_email_from = named(stmt, diags),
            "smtp_server" => {
                if let Some(host) = arg1(stmt, diags) {
                    let port = match stmt.arg(1).map(str::parse::<u16>) {
                        None => Some(25),
                        Some(Ok(p)) if p > 0 => Some(p),
                        Some(_) => {
                            diags.config(
                                Some(&stmt.loc),
                                format!("smtp_server port '{}' invalid", stmt.arg(1).unwrap_or("")),
                            );
                            None
                        }
                    };
                    if let Some(port) = port {
                        g.smtp_server = Some(SmtpServer {
                            host: host.to_string(),
                            port,
                        });
                    }
                }
            }
            "smtp_helo_name" => g.smtp_helo_name = named(stmt, diags),
            "smtp_connect_timeout" => {
                if let Some(v) = int_in(stmt, "smtp_connect_timeout", 1, i64::from(u32::MAX), diags)
                {
                    g.smtp_connect_timeout = v as u32;
                }
            }
            "smtp_alert" => g.smtp_alert = Some(flag(stmt, diags)),
            "smtp_alert_checker" => g.smtp_alert_checker = Some(flag(stmt, diags)),
            "no_checker_emails" => g.no_checker_emails = flag(stmt, diags),
            // keepalived's check_true_false, its message, and a bad value leaves it off.
            "checker_log_all_failures" => {
                g.checker_log_all_failures = match stmt.arg(0) {
                    None | Some("true" | "on" | "yes") => true,
                    Some("false" | "off" | "no") => false,
                    Some(v) => {
                        let msg = "Invalid value for checker_log_all_failures specified".into();
                        bad_value(stmt, v, diags, msg);
                        false
                    }
                }
            }
            "smtp_alert_vrrp" => g.smtp_alert_vrrp = flag(stmt, diags),
            "script_user" => {
                g.script_user = named(stmt, diags);
                g.script_group = stmt.arg(1).map(str::to_string);
            }
            "enable_script_security" => g.enable_script_security = true,
            "vrrp_version" => {
                if let Some(v) = int_in(stmt, "vrrp_version", 2, 3, diags) {
                    g.vrrp_version = v as u8;
                }
            }
            "vrrp_strict" => g.vrrp_strict = true,
            "vrrp_mcast_group4" | "vrrp_mcast_group6" => {
                if let Some(text) = arg1(stmt, diags) {
                    match (kw, addr(stmt, text, kw, diags)) {
                        ("vrrp_mcast_group4", Some(a @ IpAddr::V4(v4))) if v4.is_multicast() => g.vrrp_mcast_group4 = a,
                        ("vrrp_mcast_group6", Some(a @ IpAddr::V6(v6))) if v6.is_multicast() => g.vrrp_mcast_group6 = a,
                        (_, Some(_)) => diags.config(Some(&stmt.loc), format!("{kw} '{text}' is not a multicast address of the right family - ignoring")),
                        _ => {}
                    }
                }
            }
            "vrrp_garp_master_delay" => {
                set_u32(stmt, kw, 0, 255, &mut g.vrrp_garp_master_delay, diags)
            }
            "vrrp_garp_master_repeat" => {
                set_u32(stmt, kw, 1, 255, &mut g.vrrp_garp_master_repeat, diags)
            }
            "vrrp_garp_master_refresh" => set_u32(
                stmt,
                kw,
                0,
                i64::from(u32::MAX),
                &mut g.vrrp_garp_master_refresh,
                diags,
            ),
            "vrrp_garp_master_refresh_repeat" => set_u32(
                stmt,
                kw,
                1,
                255,
                &mut g.vrrp_garp_master_refresh_repeat,
                diags,
            ),
            "vrrp_garp_lower_prio_delay" => {
                g.vrrp_garp_lower_prio_delay = int_in(stmt, kw, 0, 255, diags).map(|v| v as u32)
            }
            "vrrp_garp_lower_prio_repeat" => {
                g.vrrp_garp_lower_prio_repeat = int_in(stmt, kw, 0, 255, diags).map(|v| v as u32)
            }
            "vrrp_garp_interval" => {
                g.vrrp_garp_interval =
                    secs_in(stmt, kw, 0.0, 1.0, diags).unwrap_or(g.vrrp_garp_interval)
            }
            "vrrp_gna_interval" => {
                g.vrrp_gna_interval =
                    secs_in(stmt, kw, 0.0, 1.0, diags).unwrap_or(g.vrrp_gna_interval)
            }
            "vrrp_min_garp" => g.vrrp_min_garp = flag(stmt, diags),
            "vrrp_lower_prio_no_advert" => g.vrrp_lower_prio_no_advert = flag(stmt, diags),
            "vrrp_higher_prio_send_advert" => g.vrrp_higher_prio_send_advert = flag(stmt, diags),
            "vrrp_check_unicast_src" => g.vrrp_check_unicast_src = true,
            "vrrp_skip_check_adv_addr" => g.vrrp_skip_check_adv_addr = flag(stmt, diags),
            "vrrp_down_timer_adverts" => {
                set_u32(stmt, kw, 1, 100, &mut g.vrrp_down_timer_adverts, diags)
            }
            "vrrp_startup_delay" => {
                g.vrrp_startup_delay = secs_in(stmt, kw, 0.0, 3600.0, diags).unwrap_or(0.0)
            }
            "notify_fifo" => g.notify_fifo = named(stmt, diags),
            "notify_fifo_script" => g.notify_fifo_script = notify_argv(stmt, diags),
            "vrrp_notify_fifo" => g.vrrp_notify_fifo = named(stmt, diags),
            "vrrp_notify_fifo_script" => g.vrrp_notify_fifo_script = notify_argv(stmt, diags),
            "vrrp_vmac_garp_intvl" => {
                diags.config(Some(&stmt.loc), "Keyword \"vrrp_vmac_garp_intvl\" is deprecated - please use \"vrrp_garp_extra_if\"");
                keep(&mut g.other, stmt);
            }
            // Debian's keepalived 2.2.7 is built with nftables and without iptables/ipset.
            "vrrp_iptables" => {
                diags.config(Some(&stmt.loc), "iptables not supported, using nftables instead. Please replace 'vrrp_iptables and 'vrrp_ipsets' with 'nftables' config option");
                keep(&mut g.other, stmt);
            }
            _ if GLOBAL_OTHER.contains(&kw) => {
                specs::check("global_defs", "", stmt, diags);
                keep(&mut g.other, stmt);
            }
            _ => unknown(stmt, diags, |children, diags| {
                global_defs(children, g, diags)
            }),
        }
    }
}

fn set_u32(stmt: &Stmt, what: &str, min: i64, max: i64, field: &mut u32, diags: &mut Diags) {
    if let Some(v) = int_in(stmt, what, min, max, diags) {
        *field = v as u32;
    }
}

// ===== trackers =====

fn weight(stmt: &Stmt, diags: &mut Diags) -> Option<(i32, bool)> {
    let w = int_in(stmt, "weight", -253, 253, diags)? as i32;
    let reverse = stmt.arg(1) == Some("reverse");
    Some((w, reverse))
}

fn vrrp_script(name: String, stmt: &Stmt, diags: &mut Diags) -> VrrpScript {
    let mut s = VrrpScript {
        name,
        at: stmt.loc.clone(),
        script: Vec::new(),
        interval: 1.0,
        timeout: None,
        weight: 0,
        weight_reverse: false,
        rise: 1,
        fall: 1,
        init_fail: false,
        user: None,
        group: None,
        other: Other::new(),
    };
    for c in stmt.children() {
        let kw = c.keyword.as_str();
        match kw {
            "script" => {
                if arg1(c, diags).is_some() {
                    s.script = script_argv(c);
                }
            }
            "interval" => {
                s.interval =
                    secs_in(c, "interval", 0.000_001, 86400.0 * 365.0, diags).unwrap_or(s.interval)
            }
            "timeout" => s.timeout = secs_in(c, "timeout", 0.000_001, 86400.0 * 365.0, diags),
            "weight" => {
                if let Some((w, r)) = weight(c, diags) {
                    (s.weight, s.weight_reverse) = (w, r);
                }
            }
            "rise" => {
                s.rise =
                    int_in(c, "rise", 1, i64::from(u32::MAX), diags).map_or(s.rise, |v| v as u32)
            }
            "fall" => {
                s.fall =
                    int_in(c, "fall", 1, i64::from(u32::MAX), diags).map_or(s.fall, |v| v as u32)
            }
            "init_fail" => s.init_fail = true,
            "user" => {
                s.user = named(c, diags);
                s.group = c.arg(1).map(str::to_string);
            }
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    s
}

/// A script line's argv: a single quoted argument is split on spaces as keepalived does
/// (`script "/bin/x a b"` runs /bin/x with two arguments); several arguments are taken as they
/// are.
fn script_argv(stmt: &Stmt) -> Vec<String> {
    if stmt.args.len() == 1 {
        return split_command(&stmt.args[0].text);
    }
    all_args(stmt)
}

/// A command line as keepalived splits it for execve: words separated by blanks, single or
/// double quotes keeping blanks (and each other) in a word, a backslash escaping the next
/// character. Nothing else is special (`!`, `#` and braces are plain characters here).
pub fn split_command(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        words.push(text.to_string());
    }
    words
}

fn track_file(name: String, stmt: &Stmt, diags: &mut Diags) -> TrackFile {
    let mut t = TrackFile {
        name,
        at: stmt.loc.clone(),
        file: None,
        weight: 1,
        weight_reverse: false,
        init_file: None,
        other: Other::new(),
    };
    for c in stmt.children() {
        match c.keyword.as_str() {
            "file" => t.file = named(c, diags),
            "weight" => {
                if let Some((w, r)) = weight(c, diags) {
                    (t.weight, t.weight_reverse) = (w, r);
                }
            }
            "init_file" => {
                // `init_file [VALUE] [overwrite]`: either may be left out.
                let overwrite = c.args.iter().any(|a| a.text == "overwrite");
                let value = c
                    .arg(0)
                    .filter(|v| *v != "overwrite")
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0);
                t.init_file = Some((value, overwrite));
            }
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    t
}

fn track_process(name: String, stmt: &Stmt, diags: &mut Diags) -> TrackProcess {
    let mut t = TrackProcess {
        name,
        at: stmt.loc.clone(),
        process: Vec::new(),
        weight: 0,
        weight_reverse: false,
        quorum: 1,
        quorum_max: None,
        delay: None,
        other: Other::new(),
    };
    for c in stmt.children() {
        let kw = c.keyword.as_str();
        match kw {
            "process" => {
                if arg1(c, diags).is_some() {
                    t.process = all_args(c);
                }
            }
            "weight" => {
                if let Some((w, r)) = weight(c, diags) {
                    (t.weight, t.weight_reverse) = (w, r);
                }
            }
            "quorum" => {
                t.quorum = int_in(c, "quorum", 1, 65535, diags).map_or(t.quorum, |v| v as u32)
            }
            "quorum_max" => {
                t.quorum_max = int_in(c, "quorum_max", 0, 65535, diags).map(|v| v as u32)
            }
            "delay" => t.delay = secs_in(c, "delay", 0.0, 3600.0, diags),
            "terminate_delay" | "fork_delay" | "full_command" | "param_match" => {
                specs::check("vrrp_track_process", &t.name, c, diags);
                keep(&mut t.other, c);
            }
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    t
}

/// Lines of a `track_*` block: `NAME [weight W [reverse]]`.
fn tracked_list(stmt: &Stmt, owner: &str, what: &str, diags: &mut Diags) -> Vec<Tracked> {
    let mut out = Vec::new();
    for c in stmt.children() {
        let mut t = Tracked {
            name: c.keyword.clone(),
            weight: None,
            reverse: None,
            at: c.loc.clone(),
        };
        let mut args = c.args.iter().map(|a| a.text.as_str());
        let mut ok = true;
        while let Some(word) = args.next() {
            match word {
                "weight" => match args.next().map(str::parse::<i32>) {
                    Some(Ok(w)) if (-254..=254).contains(&w) => t.weight = Some(w),
                    other => {
                        let shown =
                            other.map_or(String::new(), |_| c.arg(1).unwrap_or("").to_string());
                        diags.config(Some(&c.loc), format!("({owner}) {what} {} weight '{shown}' invalid - must be between -254 and 254", t.name));
                        ok = false;
                        break;
                    }
                },
                "reverse" => t.reverse = Some(true),
                "noreverse" => t.reverse = Some(false),
                _ => {
                    diags.config(
                        Some(&c.loc),
                        format!(
                            "({owner}) unknown {what} {} option {word} - ignoring",
                            t.name
                        ),
                    );
                    break;
                }
            }
        }
        if ok {
            out.push(t);
        }
    }
    out
}

fn notify_argv(stmt: &Stmt, diags: &mut Diags) -> Option<NotifyScript> {
    // `notify_deleted` alone: report deletion as DELETED, with no script of its own.
    if stmt.keyword == "notify_deleted" && stmt.args.is_empty() {
        return Some(NotifyScript::default());
    }
    let first = arg1(stmt, diags)?;
    // keepalived's notify_script_init: the first argument is the command line (split on
    // spaces, quotes kept), then the user and the group.
    let argv = split_command(first);
    Some(NotifyScript {
        argv,
        user: stmt.arg(1).map(str::to_string),
        group: stmt.arg(2).map(str::to_string),
    })
}

fn notify(n: &mut Notify, stmt: &Stmt, diags: &mut Diags) -> bool {
    let slot = match stmt.keyword.as_str() {
        "notify_master" => &mut n.master,
        "notify_backup" => &mut n.backup,
        "notify_fault" => &mut n.fault,
        "notify_stop" => &mut n.stop,
        "notify_deleted" => &mut n.deleted,
        "notify_master_rx_lower_pri" => &mut n.master_rx_lower_pri,
        "notify" => &mut n.generic,
        _ => return false,
    };
    *slot = notify_argv(stmt, diags);
    true
}

fn sync_group(name: String, stmt: &Stmt, diags: &mut Diags) -> SyncGroup {
    let mut g = SyncGroup {
        name: name.clone(),
        at: stmt.loc.clone(),
        members: Vec::new(),
        track_scripts: Vec::new(),
        track_interfaces: Vec::new(),
        track_files: Vec::new(),
        track_processes: Vec::new(),
        track_bfds: Vec::new(),
        notify: Notify::default(),
        smtp_alert: false,
        sync_group_tracking_weight: false,
        other: Other::new(),
    };
    for c in stmt.children() {
        match c.keyword.as_str() {
            "group" => {
                g.members
                    .extend(c.children().iter().map(|m| m.keyword.clone()));
                g.members.extend(all_args(c));
            }
            "track_script" => g.track_scripts = tracked_list(c, &name, "track_script", diags),
            "track_interface" => {
                g.track_interfaces = tracked_list(c, &name, "track_interface", diags)
            }
            "track_file" => g.track_files = tracked_list(c, &name, "track_file", diags),
            "track_process" => g.track_processes = tracked_list(c, &name, "track_process", diags),
            "smtp_alert" => g.smtp_alert = flag(c, diags),
            "sync_group_tracking_weight" => g.sync_group_tracking_weight = true,
            "global_tracking" => {
                diags.config(Some(&c.loc), format!("({name}) global_tracking is deprecated. Use track_interface/script/file on the sync group"));
                keep(&mut g.other, c);
            }
            "track_bfd" => g.track_bfds = tracked_list(c, &name, "track bfd", diags),
            "notify_priority_changes" => {
                specs::check("vrrp_sync_group", &name, c, diags);
                keep(&mut g.other, c);
            }
            _ if notify(&mut g.notify, c, diags) => {}
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    g
}

// ===== vrrp_instance =====

fn instance(name: String, stmt: &Stmt, version: u8, diags: &mut Diags) -> Instance {
    let mut i = Instance::new(name.clone(), stmt.loc.clone(), version);
    let mut advert: Option<(f64, Loc)> = None;
    for c in stmt.children() {
        let kw = c.keyword.as_str();
        match kw {
            "state" => {
                i.state_set = true;
                if let Some(s) = arg1(c, diags) {
                    i.state = match s {
                        "MASTER" => State::Master,
                        "BACKUP" => State::Backup,
                        other => {
                            diags.config(
                                Some(&c.loc),
                                format!("({name}) unknown state '{other}', defaulting to BACKUP"),
                            );
                            State::Backup
                        }
                    };
                }
            }
            "interface" => i.interface = named(c, diags),
            "virtual_router_id" => {
                if let Some(text) = arg1(c, diags) {
                    match text.parse::<u16>() {
                        Ok(v) if (1..=255).contains(&v) => i.virtual_router_id = Some(v as u8),
                        _ => bad_value(
                            c,
                            text,
                            diags,
                            format!("({name}): VRID '{text}' not valid - must be between 1 & 255"),
                        ),
                    }
                }
            }
            "priority" => {
                if let Some(text) = arg1(c, diags) {
                    match text.parse::<u16>() {
                        Ok(v) if (1..=255).contains(&v) => {
                            i.priority = v as u8;
                            i.priority_set = true;
                        }
                        Ok(_) => {
                            bad_value(
                                c,
                                text,
                                diags,
                                format!("number '{text}' outside range [1, 255]"),
                            );
                            diags.config(Some(&c.loc), format!("({name}) Priority not valid! must be between 1 & 255. Using default 100"));
                        }
                        Err(_) => {
                            let what = if text.starts_with('-') && text[1..].parse::<u64>().is_ok()
                            {
                                "negative number"
                            } else {
                                "invalid number"
                            };
                            bad_value(c, text, diags, format!("{what} '{text}'"));
                            diags.config(Some(&c.loc), format!("({name}) Priority not valid! must be between 1 & 255. Using default 100"));
                        }
                    }
                }
            }
            "advert_int" => {
                if let Some(text) = arg1(c, diags) {
                    match text.parse::<f64>() {
                        Ok(v) if v.is_finite() && v > 0.0 => advert = Some((v, c.loc.clone())),
                        _ => diags.config(Some(&c.loc), format!("({name}) Advert interval ({text}) not valid! Must be > 0 - ignoring")),
                    }
                }
            }
            "version" => {
                if let Some(v) = int_in(c, "version", 2, 3, diags) {
                    i.version = v as u8;
                    i.version_set = true;
                }
            }
            "nopreempt" => i.nopreempt = true,
            "preempt" => i.nopreempt = false,
            "preempt_delay" => {
                i.preempt_delay = secs_in(c, &format!("({name}) preempt_delay"), 0.0, 1000.0, diags)
                    .unwrap_or(0.0)
            }
            "authentication" => i.auth = authentication(c, &name, diags),
            "virtual_ipaddress" => i.virtual_ipaddress.extend(addresses(c, &name, diags)),
            "virtual_ipaddress_excluded" => i
                .virtual_ipaddress_excluded
                .extend(addresses(c, &name, diags)),
            "virtual_routes" => i.virtual_routes.extend(c.children().iter().map(raw)),
            "virtual_rules" => i.virtual_rules.extend(c.children().iter().map(raw)),
            "track_interface" => {
                i.track_interfaces
                    .extend(tracked_list(c, &name, "track_interface", diags))
            }
            "track_script" => i
                .track_scripts
                .extend(tracked_list(c, &name, "track_script", diags)),
            "track_file" => i
                .track_files
                .extend(tracked_list(c, &name, "track_file", diags)),
            "track_process" => {
                i.track_processes
                    .extend(tracked_list(c, &name, "track_process", diags))
            }
            "track_bfd" => i
                .track_bfds
                .extend(tracked_list(c, &name, "track bfd", diags)),
            "dont_track_primary" => i.dont_track_primary = true,
            "down_timer_adverts" => {
                i.down_timer_adverts = int_in(c, kw, 1, 100, diags).map(|v| v as u32)
            }
            "lower_prio_no_advert" => i.lower_prio_no_advert = Some(flag(c, diags)),
            "higher_prio_send_advert" => i.higher_prio_send_advert = Some(flag(c, diags)),
            "linkbeat_use_polling" => {
                diags.config(Some(&c.loc), format!("({name}) 'linkbeat_use_polling' in vrrp instance deprecated - use linkbeat_interfaces block"));
                keep(&mut i.other, c);
            }
            "lvs_sync_daemon_interface" => {
                diags.config(Some(&c.loc), format!("({name}) Specifying lvs_sync_daemon_interface against a vrrp is deprecated."));
                keep(&mut i.other, c);
            }
            "vmac_garp_intvl" => {
                diags.config(
                    Some(&c.loc),
                    "Keyword \"vmac_garp_intvl\" is deprecated - please use \"garp_extra_if\"",
                );
                keep(&mut i.other, c);
            }
            "mcast_src_ip" | "unicast_src_ip" => {
                if let Some(text) = arg1(c, diags) {
                    let a = addr(c, text, kw, diags);
                    if kw == "mcast_src_ip" {
                        i.mcast_src_ip = a;
                    } else {
                        i.unicast_src_ip = a;
                    }
                }
            }
            "unicast_peer" => {
                for p in c.children() {
                    let Ok(a) = p.keyword.parse::<IpAddr>() else {
                        diags.config(Some(&p.loc), format!("Configuration error: VRRP instance[{name}] malformed unicast peer address[{}]. Skipping...", p.keyword));
                        continue;
                    };
                    {
                        let ttl = |word: &str| {
                            p.args
                                .iter()
                                .position(|t| t.text == word)
                                .and_then(|k| p.arg(k + 1)?.parse().ok())
                        };
                        i.unicast_peers.push(UnicastPeer {
                            addr: a,
                            min_ttl: ttl("min_ttl"),
                            max_ttl: ttl("max_ttl"),
                        });
                    }
                }
            }
            // vrrp-agent's extension. On one line (`allowed_peers ADDR...`) keepalived skips it
            // with a warning; a block would end keepalived's instance at its `}`.
            "allowed_peers" => {
                let words = c
                    .args
                    .iter()
                    .map(|a| (a.text.as_str(), &c.loc))
                    .chain(c.children().iter().map(|p| (p.keyword.as_str(), &p.loc)));
                for (word, loc) in words {
                    match word.parse::<IpAddr>() {
                        Ok(a) => i.allowed_peers.push(a),
                        Err(_) => diags.config(
                            Some(loc),
                            format!(
                                "({name}) allowed_peers: {word} is not an IP address - ignoring it"
                            ),
                        ),
                    }
                }
            }
            "unicast_ttl" => {
                i.unicast_ttl =
                    int_in(c, "unicast_ttl", 1, 255, diags).map_or(i.unicast_ttl, |v| v as u8)
            }
            // Without a name: keepalived's `vrrp.VRID`, named once the block (and its VRID,
            // which may come later) has been read.
            "use_vmac" => i.use_vmac = Some(c.arg(0).unwrap_or_default().to_string()),
            "vmac_xmit_base" => i.vmac_xmit_base = true,
            "accept" => i.accept = Some(true),
            "no_accept" => i.accept = Some(false),
            "garp_master_delay" => {
                i.garp_master_delay = int_in(c, kw, 0, 255, diags).map(|v| v as u32)
            }
            "garp_master_repeat" => {
                i.garp_master_repeat = int_in(c, kw, 1, 255, diags).map(|v| v as u32)
            }
            "garp_master_refresh" => {
                i.garp_master_refresh =
                    int_in(c, kw, 0, i64::from(u32::MAX), diags).map(|v| v as u32)
            }
            "garp_master_refresh_repeat" => {
                i.garp_master_refresh_repeat = int_in(c, kw, 1, 255, diags).map(|v| v as u32)
            }
            "garp_lower_prio_delay" => {
                i.garp_lower_prio_delay = int_in(c, kw, 0, 255, diags).map(|v| v as u32)
            }
            "garp_lower_prio_repeat" => {
                i.garp_lower_prio_repeat = int_in(c, kw, 0, 255, diags).map(|v| v as u32)
            }
            "smtp_alert" => i.smtp_alert = flag(c, diags),
            "strict_mode" => i.strict_mode = Some(flag(c, diags)),
            "skip_check_adv_addr" => i.skip_check_adv_addr = Some(flag(c, diags)),
            "check_unicast_src" => i.check_unicast_src = true,
            "v3_checksum_as_v2" => i.v3_checksum_as_v2 = true,
            _ if notify(&mut i.notify, c, diags) => {}
            _ if INSTANCE_OTHER.contains(&kw) => {
                specs::check("vrrp_instance", &name, c, diags);
                keep(&mut i.other, c);
            }
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    if let Some((secs, loc)) = advert {
        i.advert_int_cs = advert_cs(&name, secs, i.version, &loc, diags);
    }
    if let Some(vmac) = i.use_vmac.as_mut().filter(|v| v.is_empty()) {
        *vmac = format!("vrrp.{}", i.virtual_router_id.unwrap_or(0));
    }
    i
}

/// advert_int in centiseconds for the instance's version: v3 allows 0.01–40.95 s in 10 ms
/// steps (RFC 5798 §5.2.7); v2 whole seconds 1–255 (RFC 3768 §5.3.7).
fn advert_cs(name: &str, secs: f64, version: u8, loc: &Loc, diags: &mut Diags) -> u32 {
    let cs = (secs * 100.0).round();
    if version == 3 {
        // keepalived clamps into the 12-bit centisecond field rather than refusing.
        if cs > 4095.0 {
            diags.config(Some(loc), format!("({name}) VRRPv3 advertisement interval {secs:.2}s is out of range. Must be less than 40.96s. Setting to 40.95s"));
            return 4095;
        }
        return cs.max(1.0) as u32;
    }
    // v2 carries whole seconds: keepalived rounds (half up, at least 1 s) and says so.
    if cs % 100.0 != 0.0 {
        diags.config(
            Some(loc),
            format!(
                "({name}) VRRPv2 advertisement interval {secs:.6}s must be an integer. rounding"
            ),
        );
    }
    let whole = ((cs / 100.0).round() as u32).clamp(1, 255);
    whole * 100
}

fn authentication(stmt: &Stmt, name: &str, diags: &mut Diags) -> Auth {
    let mut kind: Option<&str> = None;
    let mut pass: Option<String> = None;
    for c in stmt.children() {
        match c.keyword.as_str() {
            "auth_type" => match arg1(c, diags) {
                Some(t @ ("PASS" | "AH")) => kind = Some(t),
                Some(other) => diags.config(
                    Some(&c.loc),
                    format!("({name}) unknown authentication type '{other}'"),
                ),
                None => {}
            },
            "auth_pass" => {
                if let Some(p) = arg1(c, diags) {
                    if p.len() > 8 {
                        diags.config(
                            Some(&c.loc),
                            format!("({name}) Truncating auth_pass to 8 characters"),
                        );
                    }
                    pass = Some(p.chars().take(8).collect());
                }
            }
            _ => unknown(c, diags, |_, _| {}),
        }
    }
    match (kind, pass) {
        (Some("PASS"), Some(p)) => Auth::Pass(p),
        (Some("AH"), Some(p)) => Auth::Ah(p),
        (Some(_), None) => {
            diags.config(
                Some(&stmt.loc),
                format!("({name}) authentication type set but no auth_pass given"),
            );
            Auth::None
        }
        _ => Auth::None,
    }
}

/// The lines of a `virtual_ipaddress` block (and `_excluded`).
fn addresses(stmt: &Stmt, owner: &str, diags: &mut Diags) -> Vec<VirtualAddress> {
    let mut out = Vec::new();
    for c in stmt.children() {
        let (text, prefix) = match c.keyword.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (c.keyword.as_str(), None),
        };
        let Ok(address) = text.parse::<IpAddr>() else {
            diags.config(
                Some(&c.loc),
                format!("VRRP parsed invalid IP {}. skipping IP...", c.keyword),
            );
            continue;
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix.map(str::parse::<u8>) {
            None => max,
            Some(Ok(p)) if p <= max => p,
            Some(_) => {
                // keepalived uses the longest prefix of the family and says so.
                diags.config(
                    Some(&c.loc),
                    format!(
                        "Invalid address prefix len {} for address {} - using {max}",
                        prefix.unwrap_or(""),
                        c.keyword
                    ),
                );
                max
            }
        };
        let mut vip = VirtualAddress {
            addr: address,
            prefix,
            brd: None,
            dev: None,
            scope: None,
            label: None,
            peer: None,
            no_track: false,
            preferred_lft: None,
            other: Vec::new(),
            at: c.loc.clone(),
        };
        let mut words = c.args.iter().map(|a| a.text.as_str());
        while let Some(word) = words.next() {
            let mut value = |what: &str, diags: &mut Diags| {
                let v = words.next();
                if v.is_none() {
                    diags.config(
                        Some(&c.loc),
                        format!("({owner}) VIP {}: '{what}' needs a value", c.keyword),
                    );
                }
                v
            };
            match word {
                "brd" | "broadcast" => match value(word, diags) {
                    // `+` / `-`: the broadcast address computed from the prefix (or none).
                    Some(v @ ("+" | "-")) => vip.other.extend([word.to_string(), v.to_string()]),
                    Some(v) => vip.brd = addr(c, v, "brd", diags),
                    None => {}
                },
                "dev" => vip.dev = value(word, diags).map(str::to_string),
                "scope" => vip.scope = value(word, diags).map(str::to_string),
                "label" => vip.label = value(word, diags).map(str::to_string),
                "peer" => vip.peer = value(word, diags).and_then(|v| addr(c, v, "peer", diags)),
                "no_track" => vip.no_track = true,
                "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" | "mngtmpaddr"
                | "use_vmac" => vip.other.push(word.to_string()),
                "preferred_lft" => match value(word, diags) {
                    Some("forever") => vip.preferred_lft = Some(u32::MAX),
                    Some(v) => match v.parse::<u32>() {
                        Ok(n) => vip.preferred_lft = Some(n),
                        // keepalived's words; the address is added as without it.
                        Err(_) => {
                            diags.config(Some(&c.loc), format!("preferred_lft {v} is invalid"))
                        }
                    },
                    None => {}
                },
                "valid_lft" | "metric" | "track_group" => {
                    vip.other.push(word.to_string());
                    if let Some(v) = value(word, diags) {
                        vip.other.push(v.to_string());
                    }
                }
                other => {
                    diags.config(Some(&c.loc), format!("({owner}) Unknown configuration entry '{other}' for ip address - ignoring"));
                }
            }
        }
        out.push(vip);
    }
    out
}

// ===== LVS =====

/// The LVS side is kept as written (running it is a later layer); `lvs` checks it.
fn virtual_server(stmt: &Stmt) -> VirtualServer {
    let (real_servers, other) = stmt
        .children()
        .iter()
        .map(raw)
        .partition(|b| b.keyword == "real_server");
    VirtualServer {
        address: all_args(stmt),
        at: stmt.loc.clone(),
        real_servers,
        other,
    }
}

/// keepalived's check_parser.c SSL handlers: each keyword takes one file (or the password);
/// a missing value or a second one is reported, the second replacing the first.
fn ssl(stmt: &Stmt, diags: &mut Diags) -> super::model::Ssl {
    let mut ssl = super::model::Ssl {
        at: stmt.loc.clone(),
        password: None,
        ca: None,
        certificate: None,
        key: None,
    };
    for c in stmt.children() {
        let (slot, kind) = match c.keyword.as_str() {
            "password" => (&mut ssl.password, "password"),
            "ca" => (&mut ssl.ca, "cafile"),
            "certificate" => (&mut ssl.certificate, "certfile"),
            "key" => (&mut ssl.key, "keyfile"),
            _ => {
                unknown(c, diags, |_, _| {});
                continue;
            }
        };
        let Some(value) = c.arg(0) else {
            diags.config(Some(&c.loc), format!("SSL {kind} missing"));
            continue;
        };
        if slot.is_some() {
            diags.config(
                Some(&c.loc),
                format!("SSL {kind} already specified - replacing"),
            );
        }
        *slot = Some(value.to_string());
    }
    ssl
}

#[cfg(test)]
mod command_tests {
    use super::split_command;

    #[test]
    fn keepalived_splits_a_command_line_on_blanks_with_quotes_and_escapes() {
        assert_eq!(split_command("/bin/x a  b"), ["/bin/x", "a", "b"]);
        assert_eq!(
            split_command("/bin/x 'a b' \"c d\""),
            ["/bin/x", "a b", "c d"]
        );
        assert_eq!(split_command("/bin/x a\\ b"), ["/bin/x", "a b"]);
        // Config comment and brace characters are plain inside a command.
        assert_eq!(
            split_command("/bin/x !1 #2 {3}"),
            ["/bin/x", "!1", "#2", "{3}"]
        );
        assert_eq!(split_command("/bin/x ''"), ["/bin/x", ""]);
    }
}
