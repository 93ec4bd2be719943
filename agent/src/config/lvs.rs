//! The LVS side of keepalived.conf (virtual_server_group, virtual_server, real_server and the
//! checkers), checked as keepalived 2.2.7 checks it while reading (check_parser.c, check_*.c,
//! check_data.c): which keywords each block knows, what their values must be, and what a block
//! must have. The blocks themselves are kept as written; running them is a later layer.

use super::{
    diag::Diags,
    model::RawBlock,
    specs::{self, Missing, Spec},
    tree::Stmt,
};

/// Keywords each LVS block knows (checker_common: those every checker block knows).
#[rustfmt::skip]
const KNOWN: &[(&str, &[&str])] = &[
    ("virtual_server_group", &["virtual_server_group"]),
    ("virtual_server", &[ "ip_family", "retry", "delay_before_retry", "warmup", "connect_timeout", "delay_loop", "inhibit_on_failure", "lb_algo", "lvs_sched", "hashed", "ops", "flag-1", "flag-2", "flag-3", "sh-port", "sh-fallback", "mh-port", "mh-fallback", "lb_kind", "lvs_method", "persistence_engine", "persistence_timeout", "persistence_granularity", "protocol", "ha_suspend", "smtp_alert", "virtualhost", "snmp_name", "alpha", "omega", "quorum_up", "quorum_down", "quorum", "hysteresis", "weight", "sorry_server", "sorry_server_inhibit", "sorry_server_lvs_method", "real_server", ]),
    ("real_server", &[ "weight", "lvs_method", "uthreshold", "lthreshold", "inhibit_on_failure", "notify_up", "notify_down", "alpha", "retry", "delay_before_retry", "warmup", "connect_timeout", "delay_loop", "smtp_alert", "virtualhost", "snmp_name", "HTTP_GET", "SSL_GET", "TCP_CHECK", "SMTP_CHECK", "DNS_CHECK", "MISC_CHECK", "BFD_CHECK", "UDP_CHECK", "FILE_CHECK", "PING_CHECK", ]),
    ("checker_common", &[ "connect_ip", "connect_port", "bindto", "bind_port", "bind_if", "connect_timeout", "fwmark", "retry", "delay_before_retry", "warmup", "delay_loop", "alpha", "log_all_failures", ]),
    ("HTTP_GET", &[ "nb_get_retry", "virtualhost", "http_protocol", "enable_sni", "fast_recovery", "url", ]),
    ("url", &[ "path", "digest", "status_code", "virtualhost", "regex", "regex_no_match", "regex_options", "regex_min_offset", "regex_max_offset", "regex_stack", ]),
    ("MISC_CHECK", &["misc_path", "misc_timeout", "misc_dynamic", "user"]),
    ("DNS_CHECK", &["type", "name"]),
    ("SMTP_CHECK", &["helo_name", "host"]),
    ("UDP_CHECK", &[ "payload", "require_reply", "min_reply_length", "max_reply_length", ]),
    ("FILE_CHECK", &["track_file", "weight"]),
    ("BFD_CHECK", &["name", "alpha"]),
    ("PING_CHECK", &[]),
    ("SSL", &["SSL", "password", "ca", "certificate", "key"]),
];

/// Values, as `specs::SPECS`.
#[rustfmt::skip]
const SPECS: &[(&str, &str, Spec, &str, Missing)] = &[
    ("virtual_server", "ip_family", Spec::Enum(&["inet", "inet6"]), "unknown address family %s", Missing::Fatal),
    ("virtual_server", "retry", Spec::Int(1, 4294967295), "retry value invalid - %s", Missing::Fatal),
    ("virtual_server", "delay_before_retry", Spec::Decimal(0.0, 18446744073709.55), "virtual server delay before retry '%s' invalid - ignoring", Missing::Fatal),
    ("virtual_server", "warmup", Spec::Decimal(0.0, 18446744073709.55), "virtual server warmup '%s' invalid - ignoring", Missing::Fatal),
    ("virtual_server", "connect_timeout", Spec::Decimal(1e-06, 4294.967295), "virtual server connect_timeout %s invalid - ignoring", Missing::Fatal),
    ("virtual_server", "delay_loop", Spec::Decimal(1e-06, 18446744073709.55), "virtual server delay loop '%s' invalid - ignoring", Missing::Fatal),
    ("virtual_server", "lb_algo", Spec::Enum(&[ "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos", ]), "Invalid lvs_scheduler '%s' - ignoring", Missing::Fatal),
    ("virtual_server", "lvs_sched", Spec::Enum(&[ "rr", "wrr", "lc", "wlc", "lblc", "sh", "mh", "dh", "fo", "ovf", "lblcr", "sed", "nq", "twos", ]), "Invalid lvs_scheduler '%s' - ignoring", Missing::Fatal),
    ("virtual_server", "persistence_timeout", Spec::Int(1, 2678400), "persistence_timeout invalid", Missing::Allowed),
    ("virtual_server", "protocol", Spec::EnumCi(&["TCP", "UDP", "SCTP"]), "Unknown protocol %s - ignoring", Missing::Fatal),
    ("virtual_server", "smtp_alert", Spec::Bool, "Invalid virtual_server smtp_alert parameter %s", Missing::Error("")),
    ("virtual_server", "quorum", Spec::Int(1, 4294967295), "Quorum %s must be in [1, %u]. Setting to 1.", Missing::Fatal),
    ("virtual_server", "hysteresis", Spec::Int(0, 4294967295), "Hysteresis %s must be in [0, %u] - ignoring", Missing::Fatal),
    ("virtual_server", "weight", Spec::Int(1, 2147483647), "Virtual server weight %s is outside range 1-%d", Missing::Fatal),
    ("real_server", "weight", Spec::Int(0, 2147483647), "Real server weight %s is outside range 0-%d", Missing::Fatal),
    ("real_server", "uthreshold", Spec::Int(0, 4294967295), "Invalid real_server uthreshold '%s' - ignoring", Missing::Fatal),
    ("real_server", "lthreshold", Spec::Int(0, 4294967295), "Invalid real_server lthreshold '%s' - ignoring", Missing::Fatal),
    ("real_server", "inhibit_on_failure", Spec::Bool, "Invalid inhibit_on_failure parameter %s", Missing::Error("")),
    ("real_server", "alpha", Spec::Bool, "Invalid alpha parameter %s", Missing::Error("")),
    ("real_server", "retry", Spec::Int(1, 4294967295), "retry value invalid - %s", Missing::Fatal),
    ("real_server", "delay_before_retry", Spec::Decimal(0.0, 18446744073709.55), "real server delay_before_retry '%s' invalid - ignoring", Missing::Fatal),
    ("real_server", "warmup", Spec::Decimal(0.0, 18446744073709.55), "real server warmup '%s' invalid - ignoring", Missing::Fatal),
    ("real_server", "connect_timeout", Spec::Decimal(1e-06, 4294.967295), "real server connect_timeout %s invalid - ignoring", Missing::Fatal),
    ("real_server", "delay_loop", Spec::Decimal(1e-06, 18446744073709.55), "real server delay_loop '%s' invalid - ignoring", Missing::Fatal),
    ("real_server", "smtp_alert", Spec::Bool, "Invalid real_server smtp_alert parameter %s", Missing::Error("")),
    ("checker_common", "connect_ip", Spec::Addr, "Invalid connect_ip address %s - ignoring", Missing::Fatal),
    ("checker_common", "connect_port", Spec::Int(1, 65535), "Invalid checker connect_port '%s'", Missing::Fatal),
    ("checker_common", "bindto", Spec::Addr, "Invalid bindto address %s - ignoring", Missing::Fatal),
    ("checker_common", "bind_port", Spec::Int(1, 65535), "Invalid checker bind_port '%s'", Missing::Fatal),
    ("checker_common", "connect_timeout", Spec::Decimal(1e-06, 4294.967295), "connect_timeout %s invalid - ignoring", Missing::Fatal),
    ("checker_common", "fwmark", Spec::Int(0, 4294967295), "Invalid fwmark connection value '%s'", Missing::Fatal),
    ("checker_common", "retry", Spec::Int(0, 4294967295), "Invalid retry connection value '%s'", Missing::Fatal),
    ("checker_common", "delay_before_retry", Spec::Decimal(0.0, 18446744073709.55), "Invalid delay_before_retry connection value '%s'", Missing::Fatal),
    ("checker_common", "warmup", Spec::Decimal(0.0, 18446744073709.55), "Invalid warmup connection value '%s'", Missing::Fatal),
    ("checker_common", "delay_loop", Spec::Decimal(1e-06, 18446744073709.55), "delay_loop '%s' is invalid - ignoring", Missing::Fatal),
    ("checker_common", "alpha", Spec::Bool, "Invalid alpha parameter %s", Missing::Error("")),
    ("checker_common", "log_all_failures", Spec::Bool, "Invalid log_all_failures parameter %s", Missing::Error("")),
    ("HTTP_GET", "nb_get_retry", Spec::Int(0, 4294967295), "nb_get_retry is deprecated - please use 'retry'", Missing::Fatal),
    ("HTTP_GET", "http_protocol", Spec::Enum(&["1.0", "1.1", "1.0C", "1.0c"]), "Missing http_protocol version", Missing::Error("")),
    ("HTTP_GET", "enable_sni", Spec::Bool, "Invalid enable_sni parameter %s", Missing::Error("")),
    ("HTTP_GET", "fast_recovery", Spec::Bool, "Invalid fast_recovery parameter %s", Missing::Error("")),
    ("MISC_CHECK", "misc_timeout", Spec::Int(0, 4294), "Invalid misc_timeout value '%s'", Missing::Fatal),
    ("DNS_CHECK", "type", Spec::Enum(&[ "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA", "RRSIG", "DNSKEY", ]), "Unknown DNS check type %s - ignoring", Missing::Fatal),
    ("UDP_CHECK", "min_reply_length", Spec::Int(0, 65535), "UDP_CHECK min length %s not valid - must be between 0 & %d", Missing::Fatal),
    ("UDP_CHECK", "max_reply_length", Spec::Int(0, 65535), "UDP_CHECK max length %s not valid - must be between 0 & %d", Missing::Fatal),
    ("BFD_CHECK", "alpha", Spec::Bool, "Invalid alpha parameter %s", Missing::Error("")),
];

const CHECKERS: &[&str] = &[
    "HTTP_GET",
    "SSL_GET",
    "TCP_CHECK",
    "MISC_CHECK",
    "DNS_CHECK",
    "SMTP_CHECK",
    "UDP_CHECK",
    "FILE_CHECK",
    "BFD_CHECK",
    "PING_CHECK",
];

/// SSL_GET reads exactly like HTTP_GET: its rows are HTTP_GET's.
fn table_name(block: &str) -> &str {
    if block == "SSL_GET" {
        "HTTP_GET"
    } else {
        block
    }
}

fn knows(block: &str, keyword: &str) -> bool {
    let block = table_name(block);
    let listed = |b: &str| {
        KNOWN
            .iter()
            .any(|(kb, kws)| *kb == b && kws.contains(&keyword))
    };
    listed(block) || (CHECKERS.contains(&block) && listed("checker_common"))
}

/// keepalived's svr_forwarding_handler: the method, then for TUN its options (`type
/// ipip|gue|gre`, `port N` for gue, `nocsum|csum|remcsum`): what it says before it stops
/// at the first problem. `server`: "virtual", "real" or "sorry", as keepalived names them.
fn forwarding_errors(args: &[&str], server: &str) -> Vec<String> {
    let one = |e: String| vec![e];
    let Some(&method) = args.first() else {
        return Vec::new();
    };
    if !matches!(method, "NAT" | "DR" | "TUN") {
        return one(format!(
            "PARSER : unknown [{method}] routing method for {server} server."
        ));
    }
    let (mut kind, mut port, mut csum) = ("ipip", 0i64, "nocsum");
    let mut i = 1;
    while i < args.len() {
        match args[i] {
            "type" => {
                let Some(&t) = args.get(i + 1) else {
                    return one(format!("Missing tunnel type for {server} server."));
                };
                if !matches!(t, "ipip" | "gue" | "gre") {
                    return one(format!("Unknown tunnel type {t} for {server} server."));
                }
                kind = t;
                i += 1;
            }
            "port" => {
                let Some(&p) = args.get(i + 1) else {
                    return one(format!("Missing port for {server} server gue tunnel."));
                };
                // keepalived's read_unsigned_strvec says why first.
                let why = match p.parse::<i64>() {
                    Ok(n @ 1..=65535) => {
                        port = n;
                        None
                    }
                    Ok(n) if n < 0 => Some(format!("negative number '{p}'")),
                    Ok(_) => Some(format!("number '{p}' outside range [1, 65535]")),
                    Err(_) => Some(format!("invalid number '{p}'")),
                };
                if let Some(why) = why {
                    return vec![
                        why,
                        format!("Invalid gue tunnel port {p} for {server} server."),
                    ];
                }
                i += 1;
            }
            c @ ("nocsum" | "csum" | "remcsum") => csum = c,
            other => {
                return one(format!(
                    "Invalid tunnel option {other} for {server} server."
                ));
            }
        }
        i += 1;
    }
    if (kind == "gue") != (port != 0) {
        return one("gue tunnels require port, otherwise cannot have port.".into());
    }
    if kind == "ipip" && csum != "nocsum" {
        return one("ipip tunnels do not support checksum option.".into());
    }
    if kind == "gre" && csum == "remcsum" {
        return one("gre tunnels do not support remote checksum option.".into());
    }
    Vec::new()
}

/// Checks the statements of an LVS `block` (recursively), as keepalived reads them.
/// `track_files`: the names of the `track_file` blocks read so far (a FILE_CHECK can name
/// only those, as keepalived looks them up while it reads).
fn block_contents(
    block: &str,
    owner: &str,
    stmts: &[Stmt],
    track_files: &[String],
    diags: &mut Diags,
) {
    for stmt in stmts {
        let kw = stmt.keyword.as_str();
        if !knows(block, kw) {
            diags.config(Some(&stmt.loc), format!("Unknown keyword '{kw}'"));
            continue;
        }
        let block_name = table_name(block);
        let table_block = if CHECKERS.contains(&block)
            && !SPECS.iter().any(|(b, k, ..)| *b == block_name && *k == kw)
        {
            "checker_common"
        } else {
            block_name
        };
        specs::check_in(SPECS, table_block, owner, stmt, diags);
        match kw {
            "lb_kind" | "lvs_method" | "sorry_server_lvs_method" => {
                let server = match (kw, table_name(block)) {
                    ("sorry_server_lvs_method", _) => "sorry",
                    (_, "real_server") => "real",
                    _ => "virtual",
                };
                let args: Vec<&str> = (0..).map_while(|i| stmt.arg(i)).collect();
                for e in forwarding_errors(&args, server) {
                    diags.config(Some(&stmt.loc), e);
                }
            }
            "nb_get_retry" => diags.config(
                Some(&stmt.loc),
                "nb_get_retry is deprecated - please use 'retry'",
            ),
            "real_server" => real_server(stmt, track_files, diags),
            "url" => {
                block_contents("url", owner, stmt.children(), track_files, diags);
                // keepalived's url_check: the digest 32 hex digits (another one is ignored).
                if let Some(d) = stmt.children().iter().find(|c| c.keyword == "digest")
                    && let Some(why) = digest_error(d.arg(0).unwrap_or_default())
                {
                    diags.config(Some(&d.loc), why);
                }
                // Checked at the block's end, as keepalived's url_end_handler.
                if !stmt.children().iter().any(|c| c.keyword == "path") {
                    diags.config(
                        Some(stmt.end.as_ref().unwrap_or(&stmt.loc)),
                        "HTTP/SSL_GET checker url has no path - ignoring",
                    );
                }
            }
            _ if CHECKERS.contains(&kw) => {
                // A real server's checkers connect to it (its address the owner's first word).
                let server = (block == "real_server")
                    .then(|| owner.split_whitespace().next()?.parse().ok())
                    .flatten();
                checker(stmt, server, track_files, diags)
            }
            _ => {}
        }
    }
}

fn real_server(stmt: &Stmt, track_files: &[String], diags: &mut Diags) {
    let owner = stmt
        .args
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    block_contents("real_server", &owner, stmt.children(), track_files, diags);
}

/// What a checker block must have once it is read.
/// `server`: the real server's address, where the checker connects unless told otherwise.
fn checker(
    stmt: &Stmt,
    server: Option<std::net::IpAddr>,
    track_files: &[String],
    diags: &mut Diags,
) {
    let kw = stmt.keyword.as_str();
    block_contents(kw, kw, stmt.children(), track_files, diags);
    let has = |k: &str| stmt.children().iter().any(|c| c.keyword == k);
    // keepalived's check_api.c: a connect_ip and a bindto of different families, the later
    // one skipped. SMTP_CHECK's own connection starts aimed nowhere, its `host` blocks at
    // the real server.
    let mut endpoints = |children: &[Stmt], server| {
        let (.., skipped) = crate::lvs::model::endpoints(
            server,
            children.iter().map(|c| (c.keyword.as_str(), c.arg(0))),
        );
        for (i, line) in skipped {
            diags.config(Some(&children[i].loc), line);
        }
    };
    let smtp = kw == "SMTP_CHECK";
    for c in stmt.children() {
        if smtp && c.keyword == "host" {
            endpoints(c.children(), server);
        }
    }
    endpoints(stmt.children(), if smtp { None } else { server });
    // keepalived's check_file.c: the track_file must be one read already; the weight an int
    // with an optional reverse / noreverse.
    let mut file_known = false;
    if kw == "FILE_CHECK" {
        for c in stmt.children() {
            match (c.keyword.as_str(), c.arg(0)) {
                ("track_file", Some(name)) if track_files.iter().any(|t| t == name) => {
                    file_known = true
                }
                ("track_file", Some(name)) => {
                    diags.config(Some(&c.loc), format!("track_file {name} not found"))
                }
                ("weight", None) => diags.config(Some(&c.loc), "track file weight missing"),
                ("weight", Some(w)) => {
                    if !w
                        .parse::<i64>()
                        .is_ok_and(|w| w.abs() <= i64::from(i32::MAX))
                    {
                        diags.config(
                            Some(&c.loc),
                            "weight for track file must be in [-2147483647..2147483647] inclusive. Ignoring...",
                        );
                    } else if let Some(o) =
                        c.arg(1).filter(|o| !matches!(*o, "reverse" | "noreverse"))
                    {
                        diags.config(
                            Some(&c.loc),
                            format!("unknown track file weight option {o} - ignoring"),
                        );
                    }
                }
                _ => {}
            }
        }
    }
    // keepalived's end handlers: a url without a path does not count.
    let has_url = stmt
        .children()
        .iter()
        .any(|c| c.keyword == "url" && c.children().iter().any(|p| p.keyword == "path"));
    let missing = match kw {
        "HTTP_GET" | "SSL_GET" if !has_url => {
            Some("HTTP/SSL_GET checker has no urls specified - ignoring".to_string())
        }
        "MISC_CHECK" if !has("misc_path") => {
            Some("No script path has been specified for MISC_CHECKER - skipping".to_string())
        }
        "FILE_CHECK" if !file_known => {
            Some("FILE_CHECK has no track_file specified - ignoring".to_string())
        }
        "BFD_CHECK" if !has("name") => {
            Some("(BFD_CHECK) No name has been specified for BFD_CHECKER - skipping".to_string())
        }
        _ => None,
    };
    if let Some(message) = missing {
        // At the block's end, where keepalived's end handler says it.
        diags.config(Some(stmt.end.as_ref().unwrap_or(&stmt.loc)), message);
    }
    if kw == "UDP_CHECK" {
        // keepalived's check_udp.c: hex strings, and lengths that cannot both hold.
        for c in stmt.children() {
            let text = c
                .args
                .iter()
                .map(|a| a.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let message = match c.keyword.as_str() {
                "payload" if c.args.is_empty() => "UDP_CHECK payload requires a payload",
                "payload" if crate::lvs::model::hex_str(&text, false).is_none() => {
                    "Invalid hex string for UDP_CHECK payload"
                }
                "require_reply"
                    if !c.args.is_empty() && crate::lvs::model::hex_str(&text, true).is_none() =>
                {
                    "Invalid hex string for UDP_CHECK reply"
                }
                _ => continue,
            };
            diags.config(Some(&c.loc), message.to_string());
        }
        let len = |k: &str| {
            stmt.children()
                .iter()
                .rev()
                .find(|c| c.keyword == k)
                .and_then(|c| c.args.first()?.text.parse::<u32>().ok())
                .filter(|l| *l <= 65535)
        };
        let (min, max) = (
            len("min_reply_length").unwrap_or(0),
            len("max_reply_length").unwrap_or(255),
        );
        if min > max {
            // keepalived checks it at the block's end.
            diags.config(
                Some(stmt.end.as_ref().unwrap_or(&stmt.loc)),
                format!(
                    "UDP_CHECK min_reply length {min} > max_reply_length {max} - will always fail"
                ),
            );
        }
    }
}

/// What keepalived says of a url's `digest` it ignores: it must be 32 hexadecimal digits
/// (an MD5 sum).
pub(crate) fn digest_error(digest: &str) -> Option<String> {
    if digest.len() != 32 {
        return Some(format!(
            "digest '{digest}' character length should be 32 rather than {}",
            digest.len()
        ));
    }
    let bad = digest.bytes().position(|b| !b.is_ascii_hexdigit())? / 2 * 2;
    Some(format!(
        "Unable to interpret hex digit in '{digest}' at offset {bad}/{}",
        bad + 1
    ))
}

/// keepalived's FMT_VS: `[ADDR]:PROTO:PORT` (its protocol; `unset` without one: `none`
/// before keepalived defaults it to UDP, `udp` after), `[GROUP]:0`, `FWM N`.
fn fmt_vs(stmt: &Stmt, unset: &str) -> String {
    match (stmt.arg(0), stmt.arg(1)) {
        (Some("group"), Some(g)) => format!("[{g}]:0"),
        (Some("fwmark"), Some(m)) => format!("FWM {m}"),
        (Some(a), port) => trio(a, port, &proto_of(stmt, unset)),
        (None, _) => String::new(),
    }
}

/// A virtual server's `protocol` as keepalived prints it (`unset` without one, or with one
/// it ignored as unknown).
fn proto_of(stmt: &Stmt, unset: &str) -> String {
    protocol(stmt).map_or_else(|| unset.to_string(), str::to_ascii_lowercase)
}

/// A virtual server's `protocol`, the last one keepalived knew (in any case).
fn protocol(stmt: &Stmt) -> Option<&str> {
    stmt.children()
        .iter()
        .filter(|c| c.keyword == "protocol")
        .filter_map(|c| c.arg(0))
        .rfind(|p| {
            ["TCP", "UDP", "SCTP"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(p))
        })
}

/// keepalived's inet_sockaddrtotrio: `[ADDR]:PROTO:PORT`.
fn trio(addr: &str, port: Option<&str>, proto: &str) -> String {
    format!("[{}]:{proto}:{}", canonical(addr), port.unwrap_or("0"))
}

/// An address as keepalived prints it (inet_ntop: `2001:DB8::0200` is `2001:db8::200`); as
/// written when it is none.
fn canonical(a: &str) -> String {
    a.parse::<std::net::IpAddr>()
        .map_or_else(|_| a.to_string(), |ip| ip.to_string())
}

/// A `virtual_server` block: its keywords, its real servers and checkers, and what keepalived
/// completes or refuses once it is read.
pub fn virtual_server(stmt: &Stmt, track_files: &[String], groups: &[RawBlock], diags: &mut Diags) {
    let name = stmt
        .args
        .iter()
        .map(|a| a.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    block_contents("virtual_server", &name, stmt.children(), track_files, diags);
    // keepalived's lbflags_handler: a scheduler flag is looked at against the scheduler set
    // so far; under neither sh nor mh it is ignored with this line.
    let mut sched: Option<&str> = None;
    for c in stmt.children() {
        match c.keyword.as_str() {
            "lb_algo" | "lvs_sched" => sched = c.arg(0).or(sched),
            k @ ("sh-port" | "sh-fallback" | "mh-port" | "mh-fallback")
                if !matches!(sched, Some("sh" | "mh")) =>
            {
                diags.config(
                    Some(&c.loc),
                    format!("{k} only applies to sh scheduler - ignoring"),
                );
            }
            _ => {}
        }
    }
    let header: Vec<&str> = stmt.args.iter().map(|a| a.text.as_str()).collect();
    if matches!(header.first(), Some(&"fwmark" | &"group")) && header.len() < 2 {
        // keepalived 2.2.7 crashes here; we say what is missing instead.
        diags.config(
            Some(&stmt.loc),
            format!("virtual_server {} needs a value", header[0]),
        );
        return;
    }
    let has = |k: &[&str]| {
        stmt.children()
            .iter()
            .any(|c| k.contains(&c.keyword.as_str()))
    };
    let reals: Vec<&Stmt> = stmt
        .children()
        .iter()
        .filter(|c| c.keyword == "real_server")
        .collect();
    // keepalived's check_data.c says it after reading the file (no line), in FMT_VS.
    let no_reals = |diags: &mut Diags| {
        diags.after_reading(format!(
            "Virtual server {} has no real servers - ignoring",
            fmt_vs(stmt, "none")
        ));
    };
    if reals.is_empty() {
        no_reals(diags);
        return;
    }
    let child_arg = |s: &Stmt, k: &str| {
        s.children()
            .iter()
            .rfind(|c| c.keyword == k)
            .and_then(|c| c.arg(0).map(str::to_string))
    };
    let family = |a: Option<&str>| a?.parse::<std::net::IpAddr>().ok().map(|a| a.is_ipv6());
    // keepalived's virtual server family: its address's (a group's or fwmark's comes from
    // its servers, not checked here).
    let vs6 = if header.len() >= 2 && !matches!(header[0], "fwmark" | "group") {
        family(header.first().copied())
    } else {
        None
    };
    // keepalived's rs_end_handler, while it reads: a server of the other family is dropped
    // (a tunnelled one may differ). A virtual server left with none is dropped before the
    // checks below.
    let mut reals = reals;
    reals.retain(|rs| {
        let method = child_arg(rs, "lvs_method")
            .or_else(|| child_arg(stmt, "lb_kind"))
            .or_else(|| child_arg(stmt, "lvs_method"));
        let other = method.as_deref() != Some("TUN")
            && matches!((vs6, family(rs.arg(0))), (Some(v), Some(r)) if v != r);
        if other {
            diags.config(
                Some(rs.end.as_ref().unwrap_or(&rs.loc)),
                format!(
                    "Address family of virtual server and real server {} don't match - skipping real server.",
                    canonical(rs.arg(0).unwrap_or_default())
                ),
            );
        }
        !other
    });
    let sorry = stmt
        .children()
        .iter()
        .rfind(|c| c.keyword == "sorry_server");
    let sorry_method = child_arg(stmt, "sorry_server_lvs_method")
        .or_else(|| child_arg(stmt, "lb_kind"))
        .or_else(|| child_arg(stmt, "lvs_method"));
    // keepalived's vs_end_handler: a sorry server of the other family is dropped.
    if let Some(sorry) = sorry
        && sorry_method.as_deref() != Some("TUN")
        && let (Some(vs6), Some(s6)) = (vs6, family(sorry.arg(0)))
        && vs6 != s6
    {
        diags.config(
            Some(stmt.end.as_ref().unwrap_or(&stmt.loc)),
            format!(
                "Address family of virtual server and sorry server {} don't match - skipping sorry server.",
                canonical(sorry.arg(0).unwrap_or_default())
            ),
        );
    }
    if reals.is_empty() {
        no_reals(diags);
        return;
    }
    // What follows is keepalived's check_data.c, after the file is read: no line, the
    // virtual server in FMT_VS (its protocol `none` until it is defaulted) and real servers
    // in FMT_RS.
    let vs = fmt_vs(stmt, "udp");
    // Marks: `virtual_server fwmark N`, or a group (defined before) with fwmark entries, and
    // whether that group has addresses too.
    let group = match header.as_slice() {
        ["group", name, ..] => groups
            .iter()
            .rev()
            .find(|g| g.args.first().is_some_and(|a| a == name)),
        _ => None,
    };
    let group_marks = group.is_some_and(|g| g.children.iter().any(|e| e.keyword == "fwmark"));
    let group_addrs = group.is_some_and(|g| g.children.iter().any(|e| e.keyword != "fwmark"));
    let fwmark = header.first() == Some(&"fwmark");
    // keepalived resets the protocol of a service of marks only to none.
    let marks_only = fwmark || (group_marks && !group_addrs);
    let rs_proto = if marks_only {
        "none".to_string()
    } else {
        proto_of(stmt, "udp")
    };
    let fmt_rs = |address: &[&str]| {
        trio(
            address.first().copied().unwrap_or_default(),
            address.get(1).copied(),
            &rs_proto,
        )
    };
    if has(&["ha_suspend"]) && (fwmark || group_marks) {
        diags.after_reading(format!(
            "Virtual server {vs}: cannot use ha_suspend with fwmarks - clearing ha_suspend"
        ));
    }
    if header
        .first()
        .is_some_and(|h| !matches!(*h, "fwmark" | "group"))
    {
        if protocol(stmt).is_none() {
            diags.after_reading(format!(
                "Virtual server {}: no protocol set - defaulting to UDP",
                fmt_vs(stmt, "none")
            ));
        }
        // Without a protocol keepalived has made it UDP by now.
        if has(&["ops"]) && protocol(stmt).is_some_and(|p| !p.eq_ignore_ascii_case("UDP")) {
            diags.after_reading(format!(
                "Virtual server {vs}: one packet scheduling requires UDP - resetting"
            ));
        }
        if header.get(1).is_none_or(|p| *p == "0")
            && !has(&["persistence_timeout", "persistence_granularity"])
        {
            diags.after_reading(format!(
                "Virtual server {vs}: zero port only valid for persistent services - setting"
            ));
        }
    }
    if marks_only && protocol(stmt).is_some() {
        diags.after_reading(format!(
            "Warning: Virtual server {vs}: protocol specified for fwmark - protocol will be ignored"
        ));
    }
    if !has(&["lb_algo", "lvs_sched"]) {
        diags.after_reading(format!(
            "Virtual server {vs}: no scheduler set, setting default 'wlc'"
        ));
    }
    // keepalived defaults the method when a real (or the sorry) server has none of its own
    // and the virtual server none it knew (an unknown one was ignored).
    let method_set = |s: &Stmt, keys: &[&str]| {
        s.children().iter().any(|c| {
            keys.contains(&c.keyword.as_str()) && matches!(c.arg(0), Some("DR" | "NAT" | "TUN"))
        })
    };
    let server_without = reals.iter().any(|r| !method_set(r, &["lvs_method"]))
        || (sorry.is_some() && !method_set(stmt, &["sorry_server_lvs_method"]));
    if !method_set(stmt, &["lb_kind", "lvs_method"]) && server_without {
        diags.after_reading(format!(
            "Virtual server {vs}: no forwarding method set, setting default NAT"
        ));
    }
    let mut seen: Vec<Vec<&str>> = Vec::new();
    for rs in &reals {
        let address: Vec<&str> = rs.args.iter().map(|a| a.text.as_str()).collect();
        if seen.contains(&address) {
            diags.after_reading(format!(
                "VS {vs}: real server {} is duplicated - removing second rs",
                fmt_rs(&address)
            ));
        }
        // keepalived's check_data.c: a real server forwarded without NAT keeps the virtual
        // server's port, and one written with another is reset to it.
        let method = child_arg(rs, "lvs_method")
            .or_else(|| child_arg(stmt, "lb_kind"))
            .or_else(|| child_arg(stmt, "lvs_method"));
        if header.len() >= 2
            && !matches!(header[0], "fwmark" | "group")
            && method.as_deref().is_some_and(|m| m != "NAT")
            && let Some(rport) = address.get(1)
            && *rport != "0"
            && *rport != header[1]
        {
            diags.after_reading(format!(
                "WARNING - virtual server {vs} and real server {} ports don't match - resetting",
                fmt_rs(&address)
            ));
        }
        // Under a mark, a server forwarded without NAT has no port of its own.
        if (fwmark || group_marks)
            && method.as_deref().is_some_and(|m| m != "NAT")
            && address.get(1).is_some_and(|p| *p != "0")
        {
            diags.after_reading(format!(
                "WARNING - fwmark virtual server {vs}, real server {} has port specified - {}",
                fmt_rs(&address),
                if fwmark {
                    "clearing"
                } else {
                    "port will be ignored"
                }
            ));
        }
        seen.push(address);
    }
    if let Some(sorry) = sorry
        && (fwmark || group_marks)
        && sorry_method.as_deref().is_some_and(|m| m != "NAT")
        && sorry.arg(1).is_some_and(|p| p != "0")
    {
        diags.after_reading(if fwmark {
            format!("WARNING - virtual server {vs}, sorry server has port specified - clearing")
        } else {
            format!(
                "WARNING - fwmark virtual server {vs}, sorry server has port specified - port will be ignored"
            )
        });
    }
    if let Some(sorry) = sorry
        && header.len() >= 2
        && !matches!(header[0], "fwmark" | "group")
        && sorry_method.as_deref().is_some_and(|m| m != "NAT")
        && let Some(p) = sorry.arg(1)
        && p != "0"
        && p != header[1]
    {
        diags.after_reading(format!(
            "WARNING - virtual server {vs} and sorry server ports don't match - resetting"
        ));
    }
}
