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
pub const SPECS: &[(&str, &str, Spec, &str, Missing)] = &[
    (
        "global_defs",
        "lvs_netlink_cmd_rcv_bufs",
        Spec::Int(0, 4294967295),
        "lvs_netlink_cmd_rcv_bufs size (%s) invalid",
        Missing::Error("lvs_netlink_cmd_rcv_bufs size missing"),
    ),
    (
        "global_defs",
        "lvs_netlink_cmd_rcv_bufs_force",
        Spec::Bool,
        "Invalid value '%s' for global lvs_netlink_cmd_rcv_bufs_force specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "lvs_netlink_monitor_rcv_bufs",
        Spec::Int(0, 4294967295),
        "lvs_netlink_monitor_rcv_bufs size (%s) invalid",
        Missing::Error("lvs_netlink_monitor_rcv_bufs size missing"),
    ),
    (
        "global_defs",
        "lvs_netlink_monitor_rcv_bufs_force",
        Spec::Bool,
        "Invalid value '%s' for global lvs_netlink_monitor_rcv_bufs_force specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "checker_log_all_failures",
        Spec::Bool,
        "Invalid value for checker_log_all_failures specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "smtp_alert_checker",
        Spec::Bool,
        "Invalid value '%s' for global smtp_alert_checker specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "checker_process_name",
        Spec::Word,
        "Process name %s more than %d characters, truncating",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "vrrp_process_name",
        Spec::Word,
        "Process name %s more than %d characters, truncating",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "bfd_process_name",
        Spec::Word,
        "Process name %s more than %d characters, truncating",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "vrrp_priority",
        Spec::Int(-20, 19),
        "Invalid vrrp process priority specified",
        Missing::Error("No vrrp process priority specified"),
    ),
    (
        "global_defs",
        "checker_priority",
        Spec::Int(-20, 19),
        "Invalid checker process priority specified",
        Missing::Error("No checker process priority specified"),
    ),
    (
        "global_defs",
        "bfd_priority",
        Spec::Int(-20, 19),
        "Invalid bfd process priority specified",
        Missing::Error("No bfd process priority specified"),
    ),
    (
        "global_defs",
        "vrrp_rt_priority",
        Spec::Int(-2147483648, 2147483647),
        "vrrp process real-time priority '%s' invalid",
        Missing::Error("No vrrp process real-time priority specified"),
    ),
    (
        "global_defs",
        "checker_rt_priority",
        Spec::Int(-2147483648, 2147483647),
        "checker process real-time priority '%s' invalid",
        Missing::Error("No checker process real-time priority specified"),
    ),
    (
        "global_defs",
        "bfd_rt_priority",
        Spec::Int(-2147483648, 2147483647),
        "bfd process real-time priority '%s' invalid",
        Missing::Error("No bfd process real-time priority specified"),
    ),
    (
        "global_defs",
        "vrrp_rlimit_rtime",
        Spec::Int(1, 4294967295),
        "Invalid vrrp real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "checker_rlimit_rtime",
        Spec::Int(1, 4294967295),
        "Invalid checker real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "bfd_rlimit_rtime",
        Spec::Int(1, 4294967295),
        "Invalid bfd real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "nftables_priority",
        Spec::Int(-2147483648, 2147483647),
        "invalid nftables chain priority '%s'",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "vrrp_netlink_cmd_rcv_bufs",
        Spec::Int(0, 4294967295),
        "vrrp_netlink_cmd_rcv_bufs size (%s) invalid",
        Missing::Error("vrrp_netlink_cmd_rcv_bufs size missing"),
    ),
    (
        "global_defs",
        "vrrp_netlink_cmd_rcv_bufs_force",
        Spec::Bool,
        "Invalid value '%s' for global vrrp_netlink_cmd_rcv_bufs_force specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "vrrp_netlink_monitor_rcv_bufs",
        Spec::Int(0, 4294967295),
        "vrrp_netlink_monitor_rcv_bufs size (%s) invalid",
        Missing::Error("vrrp_netlink_monitor_rcv_bufs size missing"),
    ),
    (
        "global_defs",
        "vrrp_netlink_monitor_rcv_bufs_force",
        Spec::Bool,
        "Invalid value '%s' for global vrrp_netlink_monitor_rcv_bufs_force specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "vrrp_rx_bufs_multiplier",
        Spec::Int(1, 4294967295),
        "Invalid vrrp_rx_bufs_multiplier %s",
        Missing::Error(""),
    ),
    (
        "global_defs",
        "max_auto_priority",
        Spec::Int(-1, 99),
        "max_auto_priority '%s' must be in [0, %d] (or -1 to disable) - ignoring",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "min_auto_priority_delay",
        Spec::Int(1, 10000000),
        "min_auto_priority_delay '%s' must be in [1, 10000000] - ignoring",
        Missing::Error("min_auto_priority_delay requires delay time"),
    ),
    (
        "global_defs",
        "random_seed",
        Spec::Int(0, 4294967295),
        "random_seed %s invalid",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "reload_check_config",
        Spec::Word,
        "",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "reload_time_file",
        Spec::Word,
        "reload_time_file invalid",
        Missing::Error(""),
    ),
    (
        "global_defs",
        "reload_file",
        Spec::Word,
        "",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "config_save_dir",
        Spec::Word,
        "Unable to find config_save_dir %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "data_use_instance",
        Spec::Bool,
        "Invalid value '%s' for global date_use_instance specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "tmp_config_directory",
        Spec::Word,
        "%s already specified - ignoring",
        Missing::Error("tmp_config_directory missing directory name"),
    ),
    (
        "global_defs",
        "startup_script_timeout",
        Spec::Int(1, 1000),
        "startup_script_timeout '%s' must be in [1, 1000] - ignoring",
        Missing::Error("startup_script_timeout requires value"),
    ),
    (
        "global_defs",
        "shutdown_script_timeout",
        Spec::Int(1, 1000),
        "shutdown_script_timeout '%s' must be in [1, 1000] - ignoring",
        Missing::Error("shutdown_script_timeout requires value"),
    ),
    (
        "global_defs",
        "snmp_socket",
        Spec::Word,
        "Too many parameters specified for snmp_socket - ignoring",
        Missing::Error(""),
    ),
    (
        "global_defs",
        "vrrp_notify_priority_changes",
        Spec::Bool,
        "Invalid value '%s' for global vrrp_notify_priority_changes specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "default_interface",
        Spec::Word,
        "default_interface requires interface name",
        Missing::Error(""),
    ),
    (
        "global_defs",
        "process_name",
        Spec::Word,
        "Process name %s more than %d characters, truncating",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "lvs_process_name",
        Spec::Word,
        "Process name %s more than %d characters, truncating",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "vrrp_rlimit_rttime",
        Spec::Int(1, 4294967295),
        "Invalid vrrp real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "checker_rlimit_rttime",
        Spec::Int(1, 4294967295),
        "Invalid checker real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "bfd_rlimit_rttime",
        Spec::Int(1, 4294967295),
        "Invalid bfd real-time limit - %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "nftables_ipvs_priority",
        Spec::Int(-2147483648, 2147483647),
        "invalid ipvs nftables chain priority '%s'",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "nftables_ipvs_start_fwmark",
        Spec::Int(1, 4294967295),
        "invalid ipvs nftables start_fwmark priority '%s'",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "process_monitor_rcv_bufs",
        Spec::Int(0, 4294967295),
        "process_monitor_rcv_bufs size (%s) invalid",
        Missing::Error("process_monitor_rcv_bufs size missing"),
    ),
    (
        "global_defs",
        "process_monitor_rcv_bufs_force",
        Spec::Bool,
        "Invalid value '%s' for global process_monitor_rcv_bufs_force specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "rs_init_notifies",
        Spec::Bool,
        "Invalid value '%s' for global rs_init_notifies specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "no_checker_emails",
        Spec::Bool,
        "Invalid value '%s' for global no_checker_emails specified",
        Missing::Allowed,
    ),
    (
        "global_defs",
        "vmac_prefix",
        Spec::Word,
        "vmac prefix has already been specified - ignoring %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "vmac_addr_prefix",
        Spec::Word,
        "vmac_addr prefix has already been specified - ignoring %s",
        Missing::Fatal,
    ),
    (
        "global_defs",
        "dbus_service_name",
        Spec::Word,
        "dbus_service_name missing - ignoring",
        Missing::Error(""),
    ),
    (
        "vrrp_instance",
        "debug",
        Spec::Int(0, 4),
        "(%s) Debug value '%s' not valid; must be between 0-4",
        Missing::Fatal,
    ),
    (
        "vrrp_instance",
        "kernel_rx_buf_size",
        Spec::Int(0, 4294967295),
        "(%s) invalid kernel_rx_buf_size specified",
        Missing::Error(""),
    ),
    (
        "vrrp_instance",
        "notify_priority_changes",
        Spec::Bool,
        "(%s) Invalid value '%s' for notify_priority_changes specified",
        Missing::Allowed,
    ),
    (
        "vrrp_instance",
        "mcast_dst_ip",
        Spec::Addr,
        "(%s) malformed mcast dest address %s. Skipping...",
        Missing::Fatal,
    ),
    (
        "vrrp_instance",
        "vrf",
        Spec::Word,
        "(%s) VRF interface name '%s' too long - ignoring",
        Missing::Fatal,
    ),
    (
        "vrrp_track_process",
        "terminate_delay",
        Spec::Decimal(1e-06, 3600.0),
        "terminate_delay (%s) for vrrp_track_process %s must be between [0.000001..3600] inclusive. Ignoring...",
        Missing::Fatal,
    ),
    (
        "vrrp_track_process",
        "fork_delay",
        Spec::Decimal(1e-06, 3600.0),
        "fork_delay (%s) for vrrp_track_process %s must be between [0.000001..3600] inclusive. Ignoring...",
        Missing::Fatal,
    ),
    (
        "vrrp_sync_group",
        "notify_priority_changes",
        Spec::Bool,
        "(%s) Invalid value '%s' for sync group notify_priority_changes specified",
        Missing::Allowed,
    ),
];

/// Checks `stmt`'s argument against its spec, if it has one, reporting as keepalived does.
pub fn check(block: &str, owner: &str, stmt: &Stmt, diags: &mut Diags) {
    let Some((_, kw, spec, message, missing)) = SPECS
        .iter()
        .find(|(b, k, ..)| *b == block && *k == stmt.keyword)
    else {
        return;
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
        return;
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
}
