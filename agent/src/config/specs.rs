//! What the arguments of keywords kept as written must look like, and what keepalived 2.2.7
//! says when they do not (from its parsers: global_parser.c, vrrp_parser.c, vrrp_track.c).
//! Keywords with a grammar of their own (lvs_sync_daemon, lvs_timeouts, umask, ...) are not
//! listed: they are kept as written, as keepalived accepts them.

use super::{diag::Diags, tree::Stmt};

/// The argument a keyword takes.
#[derive(Clone, Copy, Debug)]
pub enum Spec {
    /// Optional true/on/yes or false/off/no (no word: true).
    Bool,
    /// An integer in the range.
    Int(i64, i64),
    /// A decimal number (seconds) in the range.
    Decimal(f64, f64),
    /// One word of any text.
    Word,
    /// An IP address.
    Addr,
    /// One of these words.
    Enum(&'static [&'static str]),
    /// One of these words in any case (keepalived's strcasecmp).
    EnumCi(&'static [&'static str]),
}

/// What keepalived does when the argument is missing.
#[derive(Clone, Copy, Debug)]
pub enum Missing {
    /// The argument is optional.
    Allowed,
    /// keepalived's "missing a parameter": reading stops, exit 2.
    Fatal,
    /// Reported with this message (keepalived's), the keyword ignored.
    Error(&'static str),
}

/// (block, keyword, argument, keepalived's message for a bad value with `%s` for the value and
/// `(%s)` for the owner, what a missing argument does).
#[rustfmt::skip]
pub const SPECS: &[(&str, &str, Spec, &str, Missing)] = &[
    ("global_defs", "lvs_netlink_cmd_rcv_bufs", Spec::Int(0, 4294967295), "lvs_netlink_cmd_rcv_bufs size (%s) invalid", Missing::Error("lvs_netlink_cmd_rcv_bufs size missing")),
    ("global_defs", "lvs_netlink_cmd_rcv_bufs_force", Spec::Bool, "Invalid value '%s' for global lvs_netlink_cmd_rcv_bufs_force specified", Missing::Allowed),
    ("global_defs", "lvs_netlink_monitor_rcv_bufs", Spec::Int(0, 4294967295), "lvs_netlink_monitor_rcv_bufs size (%s) invalid", Missing::Error("lvs_netlink_monitor_rcv_bufs size missing")),
    ("global_defs", "lvs_netlink_monitor_rcv_bufs_force", Spec::Bool, "Invalid value '%s' for global lvs_netlink_monitor_rcv_bufs_force specified", Missing::Allowed),
    ("global_defs", "checker_log_all_failures", Spec::Bool, "Invalid value for checker_log_all_failures specified", Missing::Allowed),
    ("global_defs", "smtp_alert_checker", Spec::Bool, "Invalid value '%s' for global smtp_alert_checker specified", Missing::Allowed),
    ("global_defs", "checker_process_name", Spec::Word, "Process name %s more than %d characters, truncating", Missing::Fatal),
    ("global_defs", "vrrp_process_name", Spec::Word, "Process name %s more than %d characters, truncating", Missing::Fatal),
    ("global_defs", "bfd_process_name", Spec::Word, "Process name %s more than %d characters, truncating", Missing::Fatal),
    ("global_defs", "vrrp_priority", Spec::Int(-20, 19), "Invalid vrrp process priority specified", Missing::Error("No vrrp process priority specified")),
    ("global_defs", "checker_priority", Spec::Int(-20, 19), "Invalid checker process priority specified", Missing::Error("No checker process priority specified")),
    ("global_defs", "bfd_priority", Spec::Int(-20, 19), "Invalid bfd process priority specified", Missing::Error("No bfd process priority specified")),
    ("global_defs", "vrrp_rt_priority", Spec::Int(-2147483648, 2147483647), "vrrp process real-time priority '%s' invalid", Missing::Error("No vrrp process real-time priority specified")),
    ("global_defs", "checker_rt_priority", Spec::Int(-2147483648, 2147483647), "checker process real-time priority '%s' invalid", Missing::Error("No checker process real-time priority specified")),
    ("global_defs", "bfd_rt_priority", Spec::Int(-2147483648, 2147483647), "bfd process real-time priority '%s' invalid", Missing::Error("No bfd process real-time priority specified")),
    ("global_defs", "vrrp_rlimit_rtime", Spec::Int(1, 4294967295), "Invalid vrrp real-time limit - %s", Missing::Fatal),
    ("global_defs", "checker_rlimit_rtime", Spec::Int(1, 4294967295), "Invalid checker real-time limit - %s", Missing::Fatal),
    ("global_defs", "bfd_rlimit_rtime", Spec::Int(1, 4294967295), "Invalid bfd real-time limit - %s", Missing::Fatal),
    ("global_defs", "nftables_priority", Spec::Int(-2147483648, 2147483647), "invalid nftables chain priority '%s'", Missing::Fatal),
    ("global_defs", "vrrp_netlink_cmd_rcv_bufs", Spec::Int(0, 4294967295), "vrrp_netlink_cmd_rcv_bufs size (%s) invalid", Missing::Error("vrrp_netlink_cmd_rcv_bufs size missing")),
    ("global_defs", "vrrp_netlink_cmd_rcv_bufs_force", Spec::Bool, "Invalid value '%s' for global vrrp_netlink_cmd_rcv_bufs_force specified", Missing::Allowed),
    ("global_defs", "vrrp_netlink_monitor_rcv_bufs", Spec::Int(0, 4294967295), "vrrp_netlink_monitor_rcv_bufs size (%s) invalid", Missing::Error("vrrp_netlink_monitor_rcv_bufs size missing")),
    ("global_defs", "vrrp_netlink_monitor_rcv_bufs_force", Spec::Bool, "Invalid value '%s' for global vrrp_netlink_monitor_rcv_bufs_force specified", Missing::Allowed),
    ("global_defs", "vrrp_rx_bufs_multiplier", Spec::Int(1, 4294967295), "Invalid vrrp_rx_bufs_multiplier %s", Missing::Error("")),
    ("global_defs", "max_auto_priority", Spec::Int(-1, 99), "max_auto_priority '%s' must be in [0, %d] (or -1 to disable) - ignoring", Missing::Allowed),
    ("global_defs", "min_auto_priority_delay", Spec::Int(1, 10000000), "min_auto_priority_delay '%s' must be in [1, 10000000] - ignoring", Missing::Error("min_auto_priority_delay requires delay time")),
    ("global_defs", "random_seed", Spec::Int(0, 4294967295), "random_seed %s invalid", Missing::Fatal),
    ("global_defs", "reload_check_config", Spec::Word, "", Missing::Allowed),
    ("global_defs", "reload_time_file", Spec::Word, "reload_time_file invalid", Missing::Error("")),
    ("global_defs", "reload_file", Spec::Word, "", Missing::Allowed),
    ("global_defs", "config_save_dir", Spec::Word, "Unable to find config_save_dir %s", Missing::Fatal),
    ("global_defs", "data_use_instance", Spec::Bool, "Invalid value '%s' for global date_use_instance specified", Missing::Allowed),
    ("global_defs", "tmp_config_directory", Spec::Word, "%s already specified - ignoring", Missing::Error("tmp_config_directory missing directory name")),
    ("global_defs", "startup_script_timeout", Spec::Int(1, 1000), "startup_script_timeout '%s' must be in [1, 1000] - ignoring", Missing::Error("startup_script_timeout requires value")),
    ("global_defs", "shutdown_script_timeout", Spec::Int(1, 1000), "shutdown_script_timeout '%s' must be in [1, 1000] - ignoring", Missing::Error("shutdown_script_timeout requires value")),
    ("global_defs", "snmp_socket", Spec::Word, "Too many parameters specified for snmp_socket - ignoring", Missing::Error("")),
    ("global_defs", "vrrp_notify_priority_changes", Spec::Bool, "Invalid value '%s' for global vrrp_notify_priority_changes specified", Missing::Allowed),
    ("global_defs", "default_interface", Spec::Word, "default_interface requires interface name", Missing::Error("")),
    ("global_defs", "process_name", Spec::Word, "Process name %s more than %d characters, truncating", Missing::Fatal),
    ("global_defs", "lvs_process_name", Spec::Word, "Process name %s more than %d characters, truncating", Missing::Fatal),
    ("global_defs", "vrrp_rlimit_rttime", Spec::Int(1, 4294967295), "Invalid vrrp real-time limit - %s", Missing::Fatal),
    ("global_defs", "checker_rlimit_rttime", Spec::Int(1, 4294967295), "Invalid checker real-time limit - %s", Missing::Fatal),
    ("global_defs", "bfd_rlimit_rttime", Spec::Int(1, 4294967295), "Invalid bfd real-time limit - %s", Missing::Fatal),
    ("global_defs", "nftables_ipvs_priority", Spec::Int(-2147483648, 2147483647), "invalid ipvs nftables chain priority '%s'", Missing::Fatal),
    ("global_defs", "nftables_ipvs_start_fwmark", Spec::Int(1, 4294967295), "invalid ipvs nftables start_fwmark priority '%s'", Missing::Fatal),
    ("global_defs", "process_monitor_rcv_bufs", Spec::Int(0, 4294967295), "process_monitor_rcv_bufs size (%s) invalid", Missing::Error("process_monitor_rcv_bufs size missing")),
    ("global_defs", "process_monitor_rcv_bufs_force", Spec::Bool, "Invalid value '%s' for global process_monitor_rcv_bufs_force specified", Missing::Allowed),
    ("global_defs", "rs_init_notifies", Spec::Bool, "Invalid value '%s' for global rs_init_notifies specified", Missing::Allowed),
    ("global_defs", "no_checker_emails", Spec::Bool, "Invalid value '%s' for global no_checker_emails specified", Missing::Allowed),
    ("global_defs", "vmac_prefix", Spec::Word, "vmac prefix has already been specified - ignoring %s", Missing::Fatal),
    ("global_defs", "vmac_addr_prefix", Spec::Word, "vmac_addr prefix has already been specified - ignoring %s", Missing::Fatal),
    ("global_defs", "dbus_service_name", Spec::Word, "dbus_service_name missing - ignoring", Missing::Error("")),
    ("vrrp_instance", "debug", Spec::Int(0, 4), "(%s) Debug value '%s' not valid; must be between 0-4", Missing::Fatal),
    ("vrrp_instance", "kernel_rx_buf_size", Spec::Int(0, 4294967295), "(%s) invalid kernel_rx_buf_size specified", Missing::Error("")),
    ("vrrp_instance", "notify_priority_changes", Spec::Bool, "(%s) Invalid value '%s' for notify_priority_changes specified", Missing::Allowed),
    ("vrrp_instance", "mcast_dst_ip", Spec::Addr, "(%s) malformed mcast dest address %s. Skipping...", Missing::Fatal),
    ("vrrp_instance", "vrf", Spec::Word, "(%s) VRF interface name '%s' too long - ignoring", Missing::Fatal),
    ("vrrp_track_process", "terminate_delay", Spec::Decimal(1e-06, 3600.0), "terminate_delay (%s) for vrrp_track_process %s must be between [0.000001..3600] inclusive. Ignoring...", Missing::Fatal),
    ("vrrp_track_process", "fork_delay", Spec::Decimal(1e-06, 3600.0), "fork_delay (%s) for vrrp_track_process %s must be between [0.000001..3600] inclusive. Ignoring...", Missing::Fatal),
    ("vrrp_sync_group", "notify_priority_changes", Spec::Bool, "(%s) Invalid value '%s' for sync group notify_priority_changes specified", Missing::Allowed),
];

/// Checks `stmt`'s argument against its spec (or its grammar), reporting as keepalived does.
pub fn check(block: &str, owner: &str, stmt: &Stmt, diags: &mut Diags) {
    if !check_in(SPECS, block, owner, stmt, diags) {
        special(block, owner, stmt, diags);
    }
}

/// Checks `stmt` against its entry in `table`, if it has one (returns whether it had).
pub fn check_in(
    table: &[(&str, &str, Spec, &str, Missing)],
    block: &str,
    owner: &str,
    stmt: &Stmt,
    diags: &mut Diags,
) -> bool {
    let Some((_, kw, spec, message, missing)) = table
        .iter()
        .find(|(b, k, ..)| *b == block && *k == stmt.keyword)
    else {
        return false;
    };
    // `%d` in keepalived's texts is the upper bound of the range.
    let bound = match spec {
        Spec::Int(_, max) => max.to_string(),
        _ => String::new(),
    };
    let say = |value: &str| {
        message
            .replacen("(%s)", &format!("({owner})"), 1)
            .replacen("%s", value, 1)
            .replace("%d", &bound)
    };
    let Some(word) = stmt.args.first() else {
        match (spec, missing) {
            (Spec::Bool, _) | (_, Missing::Allowed) => {}
            (_, Missing::Fatal) => diags.stop(
                super::diag::EXIT_MISSING_PARAMETER,
                Some(&stmt.loc),
                format!("*** Configuration line starting `{kw}` is missing a parameter after keyword `{kw}` at word position 2"),
            ),
            (_, Missing::Error(text)) => {
                let text = if text.is_empty() { format!("{kw} requires a value - ignoring") } else { text.to_string() };
                diags.config(Some(&stmt.loc), text);
            }
        }
        return true;
    };
    let value = word.text.as_str();
    let problem = match spec {
        Spec::Bool => {
            (!matches!(value, "true" | "on" | "yes" | "false" | "off" | "no")).then(String::new)
        }
        Spec::Int(min, max) => match value.parse::<i64>() {
            Ok(v) if (*min..=*max).contains(&v) => None,
            Ok(_) => Some(format!("number '{value}' outside range [{min}, {max}]")),
            Err(_) => Some(format!("invalid number '{value}'")),
        },
        Spec::Decimal(min, max) => match value.parse::<f64>() {
            Ok(v) if v >= *min && v <= *max => None,
            Ok(_) => Some(format!(
                "number '{value}' outside range [{min:.6}, {max:.6}]"
            )),
            Err(_) => Some(format!("invalid number '{value}'")),
        },
        Spec::Word => None,
        Spec::Enum(words) => (!words.contains(&value)).then(String::new),
        Spec::EnumCi(words) => {
            (!words.iter().any(|w| w.eq_ignore_ascii_case(value))).then(String::new)
        }
        Spec::Addr => value
            .split(['-', '/'])
            .next()
            .unwrap_or("")
            .parse::<std::net::IpAddr>()
            .is_err()
            .then(String::new),
    };
    if let Some(generic) = problem {
        if !generic.is_empty() {
            diags.value(&stmt.loc, word.col, generic);
        }
        let specific = if message.is_empty() {
            format!("{kw} '{value}' invalid - ignoring")
        } else {
            say(value)
        };
        diags.value(&stmt.loc, word.col, specific);
    }
    true
}

/// Keywords whose arguments have a grammar of their own (keepalived 2.2.7's handlers).
fn special(block: &str, owner: &str, stmt: &Stmt, diags: &mut Diags) {
    let kw = stmt.keyword.as_str();
    let words: Vec<&str> = stmt.args.iter().map(|a| a.text.as_str()).collect();
    let first = words.first().copied();
    let col = |i: usize| stmt.args.get(i).map_or(0, |a| a.col);
    match (block, kw) {
        ("global_defs", "lvs_flush_on_stop" | "lvs_flush_onstop") => {
            if let Some(w) = first.filter(|w| *w != "VS") {
                diags.value(
                    &stmt.loc,
                    col(0),
                    format!("Unknown lvs_flush_on_stop type {w}"),
                );
            }
        }
        ("global_defs", "dynamic_interfaces") => {
            if let Some(w) = first.filter(|w| *w != "allow_if_changes") {
                diags.value(
                    &stmt.loc,
                    col(0),
                    format!("Unknown dynamic_interfaces option '{w}'"),
                );
            }
        }
        ("global_defs", "vrrp_cpu_affinity" | "checker_cpu_affinity" | "bfd_cpu_affinity") => {
            let process = kw.trim_end_matches("_cpu_affinity");
            if words.is_empty() {
                diags.config(
                    Some(&stmt.loc),
                    format!("No {process} cpu_id set specified"),
                );
                return;
            }
            // CPUs online on this host, as keepalived checks them.
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
            let invalid = |w: &&str| !w.parse::<i64>().is_ok_and(|c| (0..cpus).contains(&c));
            if let Some((i, w)) = words.iter().enumerate().find(|(_, w)| invalid(w)) {
                let id = w.parse::<i64>().unwrap_or(0);
                diags.value(
                    &stmt.loc,
                    col(i),
                    format!("Invalid cpu_id:{id} specified for {process} process"),
                );
            }
        }
        ("global_defs", "umask") => umask(stmt, &words, diags),
        ("global_defs", "vrrp_garp_extra_if") | ("vrrp_instance", "garp_extra_if") => {
            let (min, prefix) = if block == "global_defs" {
                (1, String::new())
            } else {
                (0, format!("({owner}): "))
            };
            let mut time = false;
            for (i, w) in words.iter().enumerate() {
                if *w == "all" {
                    continue;
                }
                if w.parse::<u64>().is_ok_and(|t| (min..=86400).contains(&t)) {
                    time = true;
                } else {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("{prefix}{kw} '{w}' invalid - ignoring"),
                    );
                    return;
                }
            }
            if !time {
                diags.config(
                    Some(&stmt.loc),
                    format!("{prefix}{kw} specified without time - ignoring"),
                );
            }
        }
        ("global_defs", "nftables" | "nftables_ipvs") if first.is_some_and(|t| t.len() >= 32) => {
            diags.value(
                &stmt.loc,
                col(0),
                format!("{kw} table name too long - ignoring"),
            );
        }
        ("global_defs", "include_check") => {
            for (i, w) in words.iter().enumerate() {
                let name = w.trim_start_matches(['+', '-']);
                if !matches!(name, "read" | "match" | "wildcard_match" | "brace_match") {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("Unknown include_check type '{name}' - ignoring"),
                    );
                }
            }
        }
        ("global_defs", "lvs_timeouts") => {
            if words.len() < 2 {
                diags.config(Some(&stmt.loc), "lvs_timeouts requires at least one option");
                return;
            }
            let mut i = 0;
            while i < words.len() {
                let option = words[i];
                if !matches!(option, "tcp" | "tcpfin" | "udp") {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("Unknown option {option} specified for lvs_timeouts"),
                    );
                    i += 1;
                    continue;
                }
                match words.get(i + 1) {
                    None => diags.config(
                        Some(&stmt.loc),
                        format!("No value specified for lvs_timeout {option} - ignoring"),
                    ),
                    Some(v) if !v.parse::<u64>().is_ok_and(|t| t <= 86400 * 31) => {
                        diags.value(
                            &stmt.loc,
                            col(i + 1),
                            format!("Invalid lvs_timeout {option} ({v}) - ignoring"),
                        );
                    }
                    Some(_) => {}
                }
                i += 2;
            }
        }
        ("vrrp_instance", "old_unicast_checksum") => {
            if let Some(w) = first.filter(|w| *w != "never") {
                diags.value(
                    &stmt.loc,
                    col(0),
                    format!("({owner}) Unknown old_unicast_chksum mode {w} - ignoring"),
                );
            }
        }
        ("vrrp_track_process", "param_match") => {
            if let Some(w) = first.filter(|w| !matches!(*w, "initial" | "partial")) {
                diags.value(
                    &stmt.loc,
                    col(0),
                    format!("Invalid param_match type {w} - ignoring"),
                );
            }
        }
        ("global_defs", "lvs_sync_daemon") => lvs_sync_daemon(stmt, &words, diags),
        ("global_defs", "vrrp_rx_bufs_policy") => {
            if words.is_empty() {
                diags.config(Some(&stmt.loc), "vrrp_rx_bufs_policy missing");
                return;
            }
            let (mut mtu, mut advert, mut size) = (false, false, false);
            for (i, w) in words.iter().enumerate() {
                if w.eq_ignore_ascii_case("MTU") {
                    mtu = true;
                } else if w.eq_ignore_ascii_case("ADVERT") {
                    advert = true;
                } else if words[0].parse::<u32>().is_ok() {
                    // keepalived reads the size from the first word whichever word this is.
                    size = true;
                } else {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("Invalid vrrp_rx_bufs_policy {w}"),
                    );
                }
            }
            if size && (mtu || advert) {
                diags.config(
                    Some(&stmt.loc),
                    "Cannot set vrrp_rx_bufs_policy size and policy, ignoring policy",
                );
            } else if mtu && advert {
                diags.config(
                    Some(&stmt.loc),
                    "Cannot set both vrrp_rx_bufs_policy MTU and ADVERT, ignoring ADVERT",
                );
            }
        }
        ("global_defs", "startup_script" | "shutdown_script") if words.is_empty() => {
            let which = kw.trim_end_matches("_script");
            diags.config(Some(&stmt.loc), format!("{which} script missing"));
        }
        ("global_defs", "lvs_notify_fifo") if words.is_empty() => {
            diags.config(Some(&stmt.loc), "No lvs_notify_fifo name specified");
        }
        ("global_defs", "lvs_notify_fifo_script") if words.is_empty() => {
            diags.config(Some(&stmt.loc), "No lvs_notify_fifo_script specified");
        }
        ("vrrp_instance", "use_ipvlan") => {
            let (mut kind, mut name) = (None, None);
            for (i, w) in words.iter().enumerate() {
                if matches!(*w, "bridge" | "private" | "vepa") {
                    if kind.replace(*w).is_some() {
                        diags.value(
                            &stmt.loc,
                            col(i),
                            format!("({owner}) ipvlan type already specified - ignoring '{w}'"),
                        );
                    }
                } else if w.contains([':', '.'])
                    && w.split('/')
                        .next()
                        .is_some_and(|a| a.parse::<std::net::IpAddr>().is_ok())
                {
                    // The address; its family is checked against the instance's.
                } else if w.len() >= 16 {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("({owner}) IPVLAN interface name '{w}' too long - ignoring"),
                    );
                } else if name.replace(*w).is_some() {
                    diags.value(
                        &stmt.loc,
                        col(i),
                        format!("({owner}) IPVLAN interface already specified - ignoring '{w}'"),
                    );
                }
            }
        }
        _ => {}
    }
}

/// `lvs_sync_daemon IFNAME [inst INSTANCE] [id 0..255] [maxlen 1..65507] [port 1..65535]
/// [ttl 1..255] [group MCAST]`, or the old positional `IFNAME INSTANCE [SYNCID]`.
fn lvs_sync_daemon(stmt: &Stmt, words: &[&str], diags: &mut Diags) {
    let col = |i: usize| stmt.args.get(i).map_or(0, |a| a.col);
    let Some(ifname) = words.first() else {
        diags.config(Some(&stmt.loc), "lvs_sync_daemon requires interface");
        return;
    };
    if ifname.len() >= 16 {
        diags.value(
            &stmt.loc,
            col(0),
            format!("lvs_sync_daemon interface name '{ifname}' too long - ignoring"),
        );
        return;
    }
    let mut i = 1;
    while i < words.len() {
        let option = words[i];
        let range = match option {
            "inst" => None,
            "id" => Some((0, 255)),
            "maxlen" => Some((1, 65507)),
            "port" => Some((1, 65535)),
            "ttl" => Some((1, 255)),
            "group" => None,
            _ if i == 1 => {
                // The old positional form: the instance name, then perhaps the sync id.
                if let Some(id) = words.get(2) {
                    if !id.parse::<u32>().is_ok_and(|v| v <= 255) {
                        diags.value(
                            &stmt.loc,
                            col(2),
                            format!("Invalid syncid ({id}) - defaulting to vrid"),
                        );
                    } else {
                        diags.config(
                            Some(&stmt.loc),
                            "Please use keyword \"id\" before lvs_sync_daemon SYNCID",
                        );
                    }
                }
                return;
            }
            _ => {
                diags.value(
                    &stmt.loc,
                    col(i),
                    format!("Unknown option {option} specified for lvs_sync_daemon"),
                );
                i += 1;
                continue;
            }
        };
        let Some(value) = words.get(i + 1) else {
            if option == "inst" {
                diags.stop(
                    super::diag::EXIT_MISSING_PARAMETER,
                    Some(&stmt.loc),
                    "*** Configuration line starting `lvs_sync_daemon` is missing a parameter after keyword `inst` at word position 3",
                );
            } else if option == "id" {
                diags.config(
                    Some(&stmt.loc),
                    "No value specified for lvs_sync_daemon id, defaulting to vrid",
                );
            } else {
                diags.config(
                    Some(&stmt.loc),
                    format!("No value specified for lvs_sync_daemon {option} - ignoring"),
                );
            }
            return;
        };
        match (option, range) {
            ("group", _) => match value
                .split(['-', '/'])
                .next()
                .unwrap_or("")
                .parse::<std::net::IpAddr>()
            {
                Ok(a) if a.is_multicast() => {}
                Ok(_) => diags.value(
                    &stmt.loc,
                    col(i + 1),
                    format!("lvs_sync_daemon group address {value} is not multicast - ignoring"),
                ),
                Err(_) => diags.value(
                    &stmt.loc,
                    col(i + 1),
                    format!("Invalid lvs_sync_daemon group ({value}) - ignoring"),
                ),
            },
            (_, Some((min, max)))
                if !value.parse::<u32>().is_ok_and(|v| (min..=max).contains(&v)) =>
            {
                let message = if option == "id" {
                    format!("Invalid syncid ({value}) - defaulting to vrid")
                } else {
                    format!("Invalid lvs_sync_daemon {option} ({value}) - ignoring")
                };
                diags.value(&stmt.loc, col(i + 1), message);
            }
            _ => {}
        }
        i += 2;
    }
}

/// `umask 022` (octal, hex or decimal, at most 0777) or `umask IWGRP|IWOTH` (symbolic bits).
fn umask(stmt: &Stmt, words: &[&str], diags: &mut Diags) {
    let col = stmt.args.first().map_or(0, |a| a.col);
    let Some(first) = words.first() else {
        diags.stop(
            super::diag::EXIT_MISSING_PARAMETER,
            Some(&stmt.loc),
            "*** Configuration line starting `umask` is missing a parameter after keyword `umask` at word position 2",
        );
        return;
    };
    if first.starts_with(|c: char| c.is_ascii_digit()) {
        let value = if let Some(hex) = first.strip_prefix("0x") {
            u32::from_str_radix(hex, 16).ok()
        } else if first.len() > 1 && first.starts_with('0') {
            u32::from_str_radix(&first[1..], 8).ok()
        } else {
            first.parse::<u32>().ok()
        };
        if value.is_none_or(|v| v > 0o777) {
            diags.value(&stmt.loc, col, format!("invalid umask value {first}"));
        } else if words.len() > 1 {
            diags.config(Some(&stmt.loc), "Extra parameter(s) to umask option");
        }
        return;
    }
    const BITS: [&str; 9] = [
        "IRUSR", "IWUSR", "IXUSR", "IRGRP", "IWGRP", "IXGRP", "IROTH", "IWOTH", "IXOTH",
    ];
    let joined: String = words.concat();
    if joined.ends_with('|') {
        diags.config(Some(&stmt.loc), "umask missing bit value");
        return;
    }
    if let Some(bit) = joined.split('|').find(|bit| !BITS.contains(bit)) {
        diags.value(&stmt.loc, col, format!("Unknown umask bit {bit}"));
    }
}
