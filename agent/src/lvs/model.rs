//! The virtual servers the XDP balancer runs, read from the blocks the config reader kept
//! (`config::model::VirtualServer`, already checked as keepalived checks them), with
//! keepalived's defaults. What the XDP backend does not run is refused per virtual server
//! with the reason, and the rest of the configuration runs.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use crate::config::model::{RawBlock, VirtualServer};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    /// A service of marks only: keepalived ignores its protocol (and prints `none`).
    None,
}

impl Proto {
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::None => 0,
        }
    }

    /// As keepalived writes it in `[192.168.11.113]:tcp:80`.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::None => "none",
        }
    }
}

/// `lb_algo` / `lvs_sched`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    /// Each up real server in turn.
    Rr,
    /// In turn, each as often as its weight (IPVS's interleaved sequence).
    Wrr,
    /// Source hashing: the client's address picks the server (Maglev table).
    Sh,
    /// Maglev hashing (IPVS `mh`): the same, its table built by weight.
    Mh,
    /// Least connections: the server with the fewest open flows.
    Lc,
    /// Weighted least connections (keepalived's default): fewest open flows for its weight.
    Wlc,
    /// Shortest expected delay: fewest (open flows + 1) for its weight.
    Sed,
    /// Never queue: an idle server if any, else as sed.
    Nq,
    /// Weighted failover: the heaviest server that is up takes everything.
    Fo,
    /// Overflow: the heaviest server until its open flows reach its weight, then the next.
    Ovf,
    /// Destination hashing: the destination address picks the server (Maglev table).
    Dh,
    /// Two random choices, the less loaded for its weight.
    Twos,
    /// Locality-based least connections: each destination address keeps a server (IPVS:
    /// wlc's choice; here the less loaded of two drawn by weight) while it is up and not
    /// overloaded.
    Lblc,
    /// The same with a set of servers per destination, growing when it is overloaded.
    Lblcr,
}

impl Algo {
    /// As `lb_algo` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Algo::Rr => "rr",
            Algo::Wrr => "wrr",
            Algo::Sh => "sh",
            Algo::Mh => "mh",
            Algo::Lc => "lc",
            Algo::Wlc => "wlc",
            Algo::Sed => "sed",
            Algo::Nq => "nq",
            Algo::Fo => "fo",
            Algo::Ovf => "ovf",
            Algo::Dh => "dh",
            Algo::Twos => "twos",
            Algo::Lblc => "lblc",
            Algo::Lblcr => "lblcr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    Tcp,
    /// `HTTP_GET`: each url's path, answered with a status in `status` (default 200–299).
    Http(Vec<Url>),
    /// `SSL_GET`: HTTP_GET over TLS (the server's certificate is not verified, as keepalived
    /// does not without a `ca`); each url says the name it sends as SNI under `enable_sni`.
    Https(Vec<Url>),
    /// `SMTP_CHECK` with its `helo_name`.
    Smtp(String),
    /// `DNS_CHECK`.
    Dns(DnsQuery),
    /// `MISC_CHECK`: a script; exit 0 is up. With `dynamic` (`misc_dynamic`), exit 2–255 is up
    /// with weight (code − 2), and 1 is down.
    Misc(Misc),
    /// `PING_CHECK`: an ICMP echo answered within `connect_timeout`.
    Ping,
    /// `UDP_CHECK`.
    Udp(UdpCheck),
    /// `FILE_CHECK`: a `track_file`'s number.
    File(FileCheck),
}

/// `FILE_CHECK`: the number in a `track_file`'s file, re-read when the file is written,
/// moved or deleted. Weight 0: a number other than 0 (0 under `reverse`) takes the server
/// down. Otherwise the number times the weight (negated under `reverse`) is added to the
/// server's weight (never below 0), as keepalived's track_file does for real servers; a
/// server's FILE_CHECKs (and a `misc_dynamic` script) add up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileCheck {
    pub path: std::path::PathBuf,
    pub weight: i64,
    pub reverse: bool,
}

/// `UDP_CHECK`: a datagram to the server; up unless the server's host says it is unreachable
/// (an ICMP destination unreachable) or, under `require_reply`, no fitting reply comes within
/// `connect_timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpCheck {
    /// `payload` (default keepalived's: 32 bytes of "keepalived check - " over and over).
    pub payload: Vec<u8>,
    /// `require_reply`: a reply is needed; with hex data, the reply's first bytes must match
    /// it, as (value, mask of wildcard half-bytes) pairs (`x` in the hex).
    pub require_reply: Option<Vec<(u8, u8)>>,
    /// `min_reply_length` / `max_reply_length` (default 0 and 255), checked with reply data.
    pub min_reply: usize,
    pub max_reply: usize,
}

/// keepalived's filler for probes (layer4.c): "keepalived check - " over and over.
pub fn filler(len: usize) -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}

/// keepalived's read_hex_str: hex digits in groups separated by spaces or tabs, two to an
/// octet (a lone last digit of a group is an octet of its own); with `wildcard`, `x` or `X`
/// matches any half-byte. Pairs of (value, mask of the wildcard bits). None: empty or not
/// hex (keepalived then ignores the value).
pub fn hex_str(text: &str, wildcard: bool) -> Option<Vec<(u8, u8)>> {
    let digit = |c: char| -> Option<(u8, u8)> {
        match c {
            'x' | 'X' if wildcard => Some((0, 0x0f)),
            _ => c.to_digit(16).map(|d| (d as u8, 0)),
        }
    };
    let mut out = Vec::new();
    for group in text.split([' ', '\t']).filter(|g| !g.is_empty()) {
        let chars: Vec<char> = group.chars().collect();
        for pair in chars.chunks(2) {
            let (hi, hm) = digit(pair[0])?;
            out.push(match pair.get(1) {
                Some(&c) => {
                    let (lo, lm) = digit(c)?;
                    ((hi << 4) | lo, (hm << 4) | lm)
                }
                None => (hi, hm),
            });
        }
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsQuery {
    /// `name` (default the root, as keepalived).
    pub name: String,
    /// `type`, as a DNS type number (default SOA, as keepalived).
    pub qtype: u16,
}

/// keepalived's DNS_CHECK types.
fn dns_type(t: &str) -> Option<u16> {
    Some(match t {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misc {
    pub argv: Vec<String>,
    /// `misc_timeout`, default the virtual server's `delay_loop`.
    pub timeout: Duration,
    pub dynamic: bool,
    /// `user USER [GROUP]` (default: the global script user).
    pub user: Option<(String, Option<String>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub path: String,
    /// Inclusive ranges of accepted status codes.
    pub status: Vec<(u16, u16)>,
    /// `digest`: the MD5 of the page's body, lowercase hex (keepalived's genhash output).
    pub digest: Option<String>,
    /// `regex` and its companions: the body must (or, under `regex_no_match`, must not)
    /// match.
    pub regex: Option<UrlRegex>,
    /// The request's `Host:`: the first `virtualhost` of the url, the HTTP_GET, the real
    /// server, the virtual server (keepalived's order); without one, `ADDR:PORT`.
    pub virtualhost: Option<String>,
    /// The url's own `virtualhost` (keepalived names the url by it in its length-mismatch
    /// line).
    pub own_virtualhost: Option<String>,
    /// SSL_GET under `enable_sni`: the first `virtualhost` of the url, the SSL_GET, the
    /// virtual server (keepalived's order for SNI: not the real server's).
    pub sni: Option<String>,
    /// The HTTP_GET's `http_protocol`.
    pub protocol: HttpProtocol,
}

/// `http_protocol`: `1.0` (keepalived's default), `1.0C` (1.0 with `Connection: close`),
/// `1.1` (with `Connection: close`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpProtocol {
    #[default]
    V10,
    V10C,
    V11,
}

/// A checker's generic connection options where it originates: `bindto`, `bind_port`,
/// `bind_if`, and `fwmark` (SO_MARK on its packets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Source {
    pub addr: Option<IpAddr>,
    pub port: Option<u16>,
    pub interface: Option<String>,
    pub fwmark: Option<u32>,
}

/// A checker's `connect_ip` and `bindto` as keepalived reads them, in the block's order
/// (`keywords`: each keyword and its first argument), the connection first aimed at the real
/// server (`server`): one of the other family than the other one is skipped. The
/// `connect_ip` and `bindto` that stand, and for each one skipped its position and
/// keepalived's line.
pub(crate) fn endpoints<'a>(
    server: Option<IpAddr>,
    keywords: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> (Option<IpAddr>, Option<IpAddr>, Vec<(usize, String)>) {
    let (mut connect, mut bind) = (None::<IpAddr>, None::<IpAddr>);
    // Where the checker connects so far: the real server until a connect_ip says otherwise
    // (or is skipped: then none, and any bindto goes).
    let mut dst = server;
    let mut skipped = Vec::new();
    let differ = |a: IpAddr, b: Option<IpAddr>| b.is_some_and(|b| b.is_ipv6() != a.is_ipv6());
    for (i, (keyword, value)) in keywords.enumerate() {
        let Some(a) = value.and_then(|v| v.parse::<IpAddr>().ok()) else {
            continue;
        };
        // keepalived prints the address as written.
        let shown = value.unwrap_or_default();
        match keyword {
            "connect_ip" if differ(a, bind) => {
                skipped.push((i, format!("connect_ip address {shown} does not match address family of bindto - skipping")));
                (connect, dst) = (None, None);
            }
            "connect_ip" => (connect, dst) = (Some(a), Some(a)),
            "bindto" if differ(a, dst) => {
                skipped.push((i, format!("bindto address {shown} does not match address family of connect_ip - skipping")));
                bind = None;
            }
            "bindto" => bind = Some(a),
            _ => {}
        }
    }
    (connect, bind, skipped)
}

impl Source {
    /// `server`: where the checker connects before its own `connect_ip` (see [`endpoints`]).
    fn from_block(c: &[RawBlock], server: Option<IpAddr>) -> Source {
        let (_, bindto, _) = endpoints(server, c.iter().map(|b| (b.keyword.as_str(), arg(b, 0))));
        Source {
            addr: bindto,
            port: int(c, "bind_port")
                .filter(|p| (1..=65535).contains(p))
                .map(|p| p as u16),
            interface: find(c, "bind_if")
                .and_then(|b| arg(b, 0))
                .map(str::to_string),
            fwmark: int(c, "fwmark")
                .filter(|m| *m <= u64::from(u32::MAX))
                .map(|m| m as u32),
        }
    }
}

/// keepalived's url `regex` (PCRE2 there; Rust's `regex` here, on bytes): a match must start
/// at `min_offset` or later and at `max_offset` or before.
#[derive(Clone, Debug)]
pub struct UrlRegex {
    /// The pattern after keepalived's escape processing (`\\d` in the file is `\d`).
    pub pattern: String,
    /// The `regex_options` that change matching here.
    pub options: Vec<String>,
    pub no_match: bool,
    pub min_offset: usize,
    pub max_offset: Option<usize>,
    pub re: regex::bytes::Regex,
}

impl PartialEq for UrlRegex {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.pattern,
            &self.options,
            self.no_match,
            self.min_offset,
            self.max_offset,
        ) == (
            &other.pattern,
            &other.options,
            other.no_match,
            other.min_offset,
            other.max_offset,
        )
    }
}

impl Eq for UrlRegex {}

impl UrlRegex {
    /// Whether a page's body passes: a match where one may start, or none under
    /// `regex_no_match` (keepalived's `req->regex_matched != url->regex_no_match`).
    pub fn passes(&self, body: &[u8]) -> bool {
        // `firstline`: the match starts on the first line (at its newline at the latest).
        let first_line = self
            .options
            .iter()
            .any(|o| o == "firstline")
            .then(|| body.iter().position(|b| *b == b'\n').unwrap_or(body.len()));
        let found = |subject: &[u8]| {
            self.min_offset <= subject.len()
                && self.re.find_at(subject, self.min_offset).is_some_and(|m| {
                    self.max_offset.is_none_or(|max| m.start() <= max)
                        && first_line.is_none_or(|end| m.start() <= end)
                })
        };
        // PCRE2's `$` also matches before a final newline (Rust's only at the end), unless
        // `dollar_endonly` or `multiline`: the page is tried without it too.
        let pcre_dollar = !self
            .options
            .iter()
            .any(|o| o == "dollar_endonly" || o == "multiline");
        let matched = found(body)
            || (pcre_dollar && body.last() == Some(&b'\n') && found(&body[..body.len() - 1]));
        matched != self.no_match
    }
}

/// PCRE2 options keepalived takes (`regex_options`) that change what matches here; the
/// others tune PCRE2 itself and change nothing here.
const REGEX_OPTIONS: &[&str] = &[
    "allow_empty_class",
    "alt_bsux",
    "auto_callout",
    "caseless",
    "dollar_endonly",
    "dotall",
    "dupnames",
    "extended",
    "firstline",
    "match_unset_backref",
    "multiline",
    "never_ucp",
    "never_utf",
    "no_auto_capture",
    "no_auto_possess",
    "no_dotstar_anchor",
    "no_start_optimize",
    "ucp",
    "ungreedy",
    "utf",
    "never_backslash_c",
    "alt_circumflex",
    "alt_verbnames",
    "use_offset_limit",
];

/// keepalived's escapes in a quoted-and-escaped line (`alloc_strvec_quoted_escaped`): `\xHH`,
/// `\cX`, octal `\ooo`, `\a \b \E \f \n \r \t \v`, and any other character for
/// itself (so `\\` is one backslash).
pub fn unescape(text: &str) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        let c = b[i];
        if c == b'x' && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) {
            i += 1;
            let mut v: u8 = 0;
            while let Some(d) = b.get(i).and_then(|d| (*d as char).to_digit(16)) {
                v = (v << 4) | d as u8;
                i += 1;
            }
            out.push(v);
        } else if c == b'c' && i + 1 < b.len() {
            out.push(b[i + 1] & 0x1f);
            i += 2;
        } else if (b'0'..=b'7').contains(&c) {
            let mut v: u8 = 0;
            for _ in 0..3 {
                match b.get(i) {
                    Some(d @ b'0'..=b'7') => {
                        v = (v << 3).wrapping_add(d - b'0');
                        i += 1;
                    }
                    _ => break,
                }
            }
            out.push(v);
        } else {
            out.push(match c {
                b'a' => 0x07,
                b'b' => 0x08,
                b'E' => 0x1b,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                other => other,
            });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A url block's `regex` with its companions, as keepalived's url end handler settles them.
fn url_regex(u: &RawBlock) -> Result<Option<UrlRegex>, String> {
    let c = &u.children;
    let options: Vec<String> = c
        .iter()
        .filter(|b| b.keyword == "regex_options")
        .flat_map(|b| b.args.iter())
        .filter(|o| {
            let known = REGEX_OPTIONS.contains(&o.as_str());
            if !known {
                log::warn!("Unknown regex option {o} - ignoring");
            }
            known
        })
        .cloned()
        .collect();
    let offset = |k: &str| find(c, k).and_then(|b| arg(b, 0)?.parse::<usize>().ok());
    let (mut min_offset, mut max_offset) = (offset("regex_min_offset"), offset("regex_max_offset"));
    let no_match = find(c, "regex_no_match").is_some();
    let pattern = match c.iter().rev().find(|b| b.keyword == "regex") {
        Some(b) if b.args.len() == 1 => unescape(&b.args[0]),
        Some(_) => {
            log::warn!("regex missing or too many fields");
            return Ok(None);
        }
        None => {
            if !options.is_empty() || no_match || min_offset.is_some() || max_offset.is_some() {
                log::warn!("regex parameters specified without regex");
            }
            return Ok(None);
        }
    };
    if let (Some(min), Some(max)) = (min_offset, max_offset)
        && min > max
    {
        log::warn!("regex min offset {min} > regex_max_offset {max} - ignoring");
        (min_offset, max_offset) = (None, None);
    }
    let on = |o: &str| options.iter().any(|x| x == o);
    let re = regex::bytes::RegexBuilder::new(&pattern)
        // PCRE2 without utf/ucp matches bytes, `\w` and classes ASCII only.
        .unicode(on("utf") || on("ucp"))
        .case_insensitive(on("caseless"))
        .dot_matches_new_line(on("dotall"))
        .multi_line(on("multiline"))
        .ignore_whitespace(on("extended"))
        .swap_greed(on("ungreedy"))
        .build()
        .map_err(|e| {
            format!(
                "regex '{pattern}' cannot be used here (Rust's regex syntax: no look-around or back-references): {}",
                e.to_string().lines().last().unwrap_or_default()
            )
        })?;
    Ok(Some(UrlRegex {
        pattern,
        options,
        no_match,
        min_offset: min_offset.unwrap_or(0),
        max_offset,
        re,
    }))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub kind: CheckKind,
    /// `connect_ip`/`connect_port`, default the real server's.
    pub addr: IpAddr,
    pub port: u16,
    /// `bindto`, `bind_port`, `bind_if`, `fwmark`.
    pub source: Source,
    /// The virtual server's protocol (how keepalived names the checker).
    pub proto: Proto,
    pub connect_timeout: Duration,
    /// Tries after a failure before the server is declared down (`retry`, `nb_get_retry`).
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    /// `alpha` (on the checker, its real server or the virtual server): the server starts
    /// down until a check succeeds.
    pub alpha: bool,
    /// `warmup`: the first check waits a random time up to this (keepalived's default: the
    /// delay_loop; 0: at once).
    pub warmup: Duration,
    /// The real server's configured weight, which a `misc_dynamic` script's exit code
    /// replaces (by its share, see [`super::check::Report::share`]).
    pub weight: u32,
    /// `log_all_failures` (or the global `checker_log_all_failures`): each failed check is
    /// logged while the server is up, not only the one that takes it down.
    pub log_all_failures: bool,
    /// HTTP_GET / SSL_GET's `fast_recovery`: a server not yet checked, or down with no url
    /// failing, is checked again at once rather than after `delay_loop`.
    pub fast_recovery: bool,
    /// Its server is reached through an IPIP tunnel: the MAC it reports is the next hop's.
    pub tunnel: bool,
}

impl Check {
    /// The same checker apart from its server's weight: a reload that changes only the
    /// weight keeps the checker's state, as keepalived's migrate_checkers.
    pub fn same_probe(&self, other: &Check) -> bool {
        Check {
            weight: other.weight,
            ..self.clone()
        } == *other
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RealServer {
    pub addr: IpAddr,
    pub port: u16,
    pub weight: u32,
    pub inhibit_on_failure: bool,
    pub checks: Vec<Check>,
    /// Run when the server comes up / goes down (keepalived's `notify_up`/`notify_down`).
    pub notify_up: Option<Vec<String>>,
    pub notify_down: Option<Vec<String>>,
    /// `uthreshold` / `lthreshold` (0: none): IPVS takes a server with that many connections
    /// out of the schedule, until it is down to the lower threshold (3/4 of the upper one
    /// without it).
    pub uthreshold: u32,
    pub lthreshold: u32,
    /// Reached by NAT (`lb_kind NAT`, or its own `lvs_method NAT`): its address and port
    /// replace the virtual server's, and its replies come back through this node.
    pub nat: bool,
    /// Reached through a tunnel (`lb_kind TUN`, or its own `lvs_method TUN`): the packet is
    /// wrapped for it, and it answers the client directly.
    pub tun: Option<Tunnel>,
    /// IPVS's tunnel checksum flags (`TUN … csum` 1, `remcsum` 2; the XDP balancer sends
    /// tunnels without checksums only).
    pub tun_flags: u16,
    /// Its own `smtp_alert`, if written.
    pub smtp_alert: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    /// The first (or only) address and port: what checks and sorry servers default to.
    pub addr: IpAddr,
    pub port: u16,
    /// Every address and port it answers on: one, or a `virtual_server_group`'s entries
    /// (ranges expanded), all of one family.
    pub entries: Vec<(IpAddr, u16)>,
    /// `virtual_server fwmark N`, or a group's `fwmark N` entries (IPVS only).
    pub fwmarks: Vec<u32>,
    /// `virtual_server group NAME`.
    pub group: Option<String>,
    pub proto: Proto,
    pub algo: Algo,
    /// `sh-port` / `mh-port`: the client's port is hashed too.
    pub hash_port: bool,
    pub persistence: Option<Duration>,
    /// `persistence_granularity`: an IPv4 netmask (255.255.255.255 without it), or for an
    /// IPv6 service a prefix length as the mask (all ones without it).
    pub persist_mask: IpAddr,
    pub reals: Vec<RealServer>,
    /// Weight of live real servers the service needs (keepalived's `quorum`, default 1) and
    /// the margin around it (`hysteresis`, default 0).
    pub quorum: u64,
    pub hysteresis: u64,
    /// Run when quorum is gained / lost (`quorum_up` / `quorum_down`).
    pub quorum_up: Option<Vec<String>>,
    pub quorum_down: Option<Vec<String>>,
    /// `sorry_server IP PORT`: takes the traffic while quorum is lost.
    pub sorry: Option<(IpAddr, u16)>,
    /// The sorry server is reached by NAT (`sorry_server_lvs_method`, else `lb_kind`).
    pub sorry_nat: bool,
    /// The sorry server is reached through a tunnel.
    pub sorry_tun: Option<Tunnel>,
    /// IPVS's checksum flags for a tunnelled sorry server.
    pub sorry_tun_flags: u16,
    /// `sh-fallback` / `mh-fallback` (IPVS's SCHED1 flag; the XDP balancer skips a down
    /// server's slot anyway).
    pub hash_fallback: bool,
    /// `persistence_engine NAME` (IPVS's, sip).
    pub persistence_engine: Option<String>,
    /// `sorry_server_inhibit`: keepalived's wording for it (Enabling/Disabling).
    pub sorry_inhibit: bool,
    /// `omega`: at shutdown, `notify_down` for each live server and `quorum_down` run.
    pub omega: bool,
    /// `ha_suspend`: its checkers run only while this node holds its address (a VRRP
    /// instance's VIP).
    pub ha_suspend: bool,
    /// `ops` on a UDP service: each datagram is scheduled on its own (IPVS's one-packet
    /// scheduling), no flow is kept.
    pub ops: bool,
    /// Its own `smtp_alert` (quorum changes), if written.
    pub smtp_alert: Option<bool>,
}

impl VirtualService {
    /// `[192.168.11.200]:tcp:80`, keepalived's FMT_VS (`[NAME]:0` for a group, as
    /// keepalived prints it).
    pub fn name(&self) -> String {
        match (&self.group, self.fwmarks.first()) {
            (Some(g), _) => format!("[{g}]:0"),
            // keepalived's FMT_VS for a mark.
            (None, Some(m)) => format!("FWM {m}"),
            (None, None) => trio(self.addr, self.proto, self.port),
        }
    }

    /// Whether a real server or the sorry server is reached by NAT (then replies are looked
    /// for in the data path).
    pub fn uses_nat(&self) -> bool {
        self.reals.iter().any(|r| r.nat) || (self.sorry.is_some() && self.sorry_nat)
    }

    pub fn real_name(&self, r: &RealServer) -> String {
        trio(r.addr, self.proto, r.port)
    }
}

/// keepalived's `inet_sockaddrtotrio`: `[ADDR]:PROTO:PORT`.
pub fn trio(addr: IpAddr, proto: Proto, port: u16) -> String {
    format!("[{addr}]:{}:{port}", proto.name())
}

/// How a server is reached (IPVS's forwarding methods).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Direct routing: only the destination MAC changes.
    Dr,
    /// Masquerading: its address and port replace the virtual server's.
    Nat,
    /// A tunnel to it.
    Tun(Tunnel),
}

/// IPVS's tunnel types (keepalived's `type`), without checksums.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tunnel {
    /// IPv4 in IPv4 (RFC 2003), keepalived's default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to this UDP port (the packet behind a UDP header and a
    /// 4-byte GUE header).
    Gue(u16),
    /// GRE (RFC 2784) with no key, sequence or checksum.
    Gre,
}

impl Tunnel {
    /// IPVS's number for it (IP_VS_CONN_F_TUNNEL_TYPE_*), as the XDP program reads it.
    pub fn number(self) -> u16 {
        match self {
            Tunnel::Ipip => 0,
            Tunnel::Gue(_) => 1,
            Tunnel::Gre => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tunnel::Ipip => "IPIP",
            Tunnel::Gue(_) => "GUE",
            Tunnel::Gre => "GRE",
        }
    }
}

/// A server's method as its `lb_kind` / `lvs_method` / `sorry_server_lvs_method` line says
/// (keepalived's `TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`), else `default`.
/// Err: why the XDP backend does not run it (after the keyword); what keepalived itself
/// refuses (a gue tunnel without a port, …) the config check reports.
fn method(line: Option<&RawBlock>, default: Method, ipvs: bool) -> Result<Method, String> {
    let Some(b) = line else {
        return Ok(default);
    };
    match arg(b, 0) {
        None => Ok(default),
        Some("DR") => Ok(Method::Dr),
        Some("NAT") => Ok(Method::Nat),
        Some("TUN") => {
            // keepalived takes the last of each option.
            let (mut kind, mut port, mut csum) = ("ipip", None, "nocsum");
            let mut args = b.args.iter().skip(1).map(String::as_str);
            while let Some(a) = args.next() {
                match a {
                    "type" => kind = args.next().unwrap_or(""),
                    "port" => port = args.next().and_then(|p| p.parse::<u16>().ok()),
                    "nocsum" | "csum" | "remcsum" => csum = a,
                    other => return Err(format!("TUN option {other} is not known")),
                }
            }
            if csum != "nocsum" && !ipvs {
                return Err(format!(
                    "TUN {csum} is not supported by the XDP backend (tunnels without checksums only)"
                ));
            }
            match (kind, port) {
                ("ipip", None) => Ok(Method::Tun(Tunnel::Ipip)),
                ("gre", None) => Ok(Method::Tun(Tunnel::Gre)),
                ("gue", Some(p)) if p != 0 => Ok(Method::Tun(Tunnel::Gue(p))),
                ("gue", _) => Err("TUN type gue wants a port from 1 to 65535".into()),
                ("ipip" | "gre", Some(_)) => Err(format!("TUN type {kind} takes no port")),
                (t, _) => Err(format!("TUN type {t} is not known (ipip, gue or gre)")),
            }
        }
        Some(m) => Err(format!("{m} is not supported by the XDP backend")),
    }
}

/// IPVS's tunnel checksum flags for a `TUN … csum|remcsum` line (the last one written).
fn tun_flags(line: Option<&RawBlock>) -> u16 {
    match line.map(|b| &b.args[..]).unwrap_or_default() {
        [first, rest @ ..] if first == "TUN" => {
            match rest
                .iter()
                .rfind(|a| ["nocsum", "csum", "remcsum"].contains(&a.as_str()))
                .map(String::as_str)
            {
                Some("csum") => 1,
                Some("remcsum") => 2,
                _ => 0,
            }
        }
        _ => 0,
    }
}

/// The port a real or sorry server is reached on: under NAT its own (0: the virtual
/// server's); under direct routing the virtual server's, as keepalived resets another one
/// (warned by the config check; its checkers connect there too), except in a group, whose
/// entries have ports of their own.
fn server_port(nat: bool, grouped: bool, written: u16, vs_port: u16) -> u16 {
    match (nat, grouped) {
        (true, _) if written != 0 => written,
        (false, true) => written,
        _ => vs_port,
    }
}

fn arg(b: &RawBlock, i: usize) -> Option<&str> {
    b.args.get(i).map(String::as_str)
}

fn find<'a>(blocks: &'a [RawBlock], keyword: &str) -> Option<&'a RawBlock> {
    blocks.iter().rev().find(|b| b.keyword == keyword)
}

fn secs(blocks: &[RawBlock], keyword: &str) -> Option<Duration> {
    let v: f64 = arg(find(blocks, keyword)?, 0)?.parse().ok()?;
    // A value the reader reported out of range is still in the block: never trust it to fit.
    Duration::try_from_secs_f64(v).ok()
}

/// A duration above 0, or None.
fn positive(d: Option<Duration>) -> Option<Duration> {
    d.filter(|d| !d.is_zero())
}

/// A keyword that is a switch: present alone or with a true value (keepalived's
/// get_value_or_default boolean).
fn flag(blocks: &[RawBlock], keyword: &str) -> Option<bool> {
    let b = find(blocks, keyword)?;
    Some(!matches!(arg(b, 0), Some("false" | "no" | "off" | "0")))
}

fn int(blocks: &[RawBlock], keyword: &str) -> Option<u64> {
    arg(find(blocks, keyword)?, 0)?.parse().ok()
}

fn status_ranges(list: &[&str]) -> Vec<(u16, u16)> {
    list.iter()
        .filter_map(|s| match s.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => s.parse().ok().map(|c| (c, c)),
        })
        .collect()
}

/// A script line as keepalived reads it: one quoted argument holding the whole command
/// (`misc_path "/bin/check 10.0.0.2"`), or the command and its arguments.
fn command(args: &[String]) -> Vec<String> {
    match args {
        [one] => one.split_whitespace().map(str::to_string).collect(),
        many => many.to_vec(),
    }
}

/// The virtual server as the XDP backend runs it, or why it cannot.
/// One `IP PORT` line: the address and port.
fn entry(a: &str, p: &str) -> Result<(IpAddr, u16), String> {
    Ok((
        a.parse::<IpAddr>()
            .map_err(|_| format!("address {a} is not an IP address"))?,
        p.parse::<u16>()
            .map_err(|_| format!("port {p} is not a port"))?,
    ))
}

/// A `virtual_server_group`'s entries: `IP PORT`, and keepalived's ranges `A.B.C.D-E PORT`
/// (the last octet from D to E) and `X:..:Y-Z PORT` (the last group, hexadecimal), and its
/// `fwmark N` entries (which IPVS runs: XDP cannot see marks).
fn group_entries(group: &RawBlock, ipvs: bool) -> Result<Entries, String> {
    let mut out = Vec::new();
    let mut marks = Vec::new();
    for e in &group.children {
        if e.keyword == "fwmark" {
            if !ipvs {
                return Err(
                    "fwmark entries are not run by the XDP backend (marks are set after it)".into(),
                );
            }
            marks.push(fwmark(arg(e, 0))?);
            continue;
        }
        let port = arg(e, 0).unwrap_or("0");
        match e.keyword.split_once('-') {
            Some((first, last)) => {
                let (start, port) = entry(first, port)?;
                let before = || format!("range {}: the end is before the start", e.keyword);
                match start {
                    IpAddr::V4(start) => {
                        let last: u8 = last
                            .parse()
                            .map_err(|_| format!("range {}: the end is not 0-255", e.keyword))?;
                        let [a, b, c, d] = start.octets();
                        if last < d {
                            return Err(before());
                        }
                        for o in d..=last {
                            out.push((Ipv4Addr::new(a, b, c, o).into(), port));
                        }
                    }
                    IpAddr::V6(start) => {
                        let last = u16::from_str_radix(last, 16)
                            .map_err(|_| format!("range {}: the end is not 0-ffff", e.keyword))?;
                        let mut seg = start.segments();
                        if last < seg[7] {
                            return Err(before());
                        }
                        // Each address is an entry of the balancer's maps: a range past
                        // their size is refused before it is expanded.
                        let max = agent_common::LB_SERVICES_MAX as usize;
                        if out.len() + usize::from(last - seg[7]) >= max {
                            return Err(format!(
                                "range {}: the group has more than {max} addresses",
                                e.keyword
                            ));
                        }
                        for g in seg[7]..=last {
                            seg[7] = g;
                            out.push((Ipv6Addr::from(seg).into(), port));
                        }
                    }
                }
            }
            None => out.push(entry(&e.keyword, port)?),
        }
    }
    if out.is_empty() && marks.is_empty() {
        return Err("the group has no entries".into());
    }
    if out.iter().any(|(a, _)| a.is_ipv6() != out[0].0.is_ipv6()) {
        return Err("the group has IPv4 and IPv6 entries: one family per virtual server".into());
    }
    Ok((out, marks))
}

/// `sh-port`/`mh-port` and `sh-fallback`/`mh-fallback` as keepalived's lbflags_handler takes
/// them: each against the scheduler written before it, `sh-*` under sh and `mh-*` under mh
/// (others ignored).
fn sched_flags(o: &[RawBlock]) -> (bool, bool) {
    let (mut sched, mut port, mut fallback) = (None, false, false);
    for b in o {
        match (b.keyword.as_str(), sched) {
            ("lb_algo" | "lvs_sched", _) => sched = arg(b, 0).or(sched),
            ("sh-port", Some("sh")) | ("mh-port", Some("mh")) => port = true,
            ("sh-fallback", Some("sh")) | ("mh-fallback", Some("mh")) => fallback = true,
            _ => {}
        }
    }
    (port, fallback)
}

/// A virtual server's addresses and ports, and its marks.
type Entries = (Vec<(IpAddr, u16)>, Vec<u32>);

/// A firewall mark: keepalived takes 1..=2^32-1.
fn fwmark(v: Option<&str>) -> Result<u32, String> {
    v.and_then(|m| m.parse::<u32>().ok())
        .filter(|m| *m != 0)
        .ok_or_else(|| format!("fwmark {} is not a mark", v.unwrap_or("")))
}

/// Where a virtual server is run: the XDP balancer, or IPVS (more of keepalived's options,
/// where the kernel has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Xdp,
    Ipvs,
}

pub fn service(
    vs: &VirtualServer,
    groups: &[RawBlock],
    track_files: &[crate::config::model::TrackFile],
    backend: Backend,
) -> Result<VirtualService, String> {
    let ipvs = backend == Backend::Ipvs;
    let o = &vs.other;
    let ((entries, fwmarks), group) = match vs.address.as_slice() {
        [kind, name] if kind == "group" => {
            let g = groups
                .iter()
                .rev()
                .find(|g| arg(g, 0) == Some(name.as_str()))
                .ok_or_else(|| format!("virtual_server_group {name} is not configured"))?;
            (group_entries(g, ipvs)?, Some(name.clone()))
        }
        [kind, ..] if kind == "fwmark" && !ipvs => {
            return Err(
                "virtual_server fwmark is not run by the XDP backend (marks are set after it)"
                    .to_string(),
            );
        }
        [kind, mark] if kind == "fwmark" => ((Vec::new(), vec![fwmark(Some(mark))?]), None),
        [a, p] => ((vec![entry(a, p)?], Vec::new()), None),
        _ => return Err("virtual_server wants IP PORT".to_string()),
    };
    // A service of marks only has the family its `ip_family` says, else its first real
    // server's (as keepalived decides it).
    let (addr, port) = match entries.first() {
        Some(e) => *e,
        None => {
            let first_real = vs
                .real_servers
                .iter()
                .find_map(|r| arg(r, 0)?.parse::<IpAddr>().ok());
            let v6 = match find(o, "ip_family").and_then(|b| arg(b, 0)) {
                Some(f) => f == "inet6",
                None => first_real.is_some_and(|a| a.is_ipv6()),
            };
            let any: IpAddr = if v6 {
                Ipv6Addr::UNSPECIFIED.into()
            } else {
                Ipv4Addr::UNSPECIFIED.into()
            };
            (any, 0)
        }
    };
    // keepalived's proto_handler: any case; an unknown one ignored ("Unknown protocol …
    // - ignoring"), so the last known one stands.
    let known = o
        .iter()
        .filter(|b| b.keyword == "protocol")
        .filter_map(|b| arg(b, 0))
        .rfind(|p| {
            ["TCP", "UDP", "SCTP"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(p))
        });
    let proto = match known.map(str::to_ascii_uppercase).as_deref() {
        // keepalived: "protocol specified for fwmark - protocol will be ignored".
        _ if entries.is_empty() => Proto::None,
        Some("TCP") => Proto::Tcp,
        // keepalived: "no protocol set - defaulting to UDP" (the kernel's default).
        Some("UDP") | None => Proto::Udp,
        Some(p) => return Err(format!("protocol {p} is not run by the XDP backend")),
    };
    // keepalived's default method is NAT.
    let vs_method = method(
        find(o, "lb_kind").or_else(|| find(o, "lvs_method")),
        Method::Nat,
        ipvs,
    )
    .map_err(|why| format!("lb_kind {why}"))?;
    // IPVS's one-packet scheduling: UDP only (keepalived resets it on TCP with a warning).
    // (A service of marks only keeps it whatever the protocol.)
    let ops = matches!(proto, Proto::Udp | Proto::None) && find(o, "ops").is_some();
    let algo_name = find(o, "lb_algo")
        .or_else(|| find(o, "lvs_sched"))
        .and_then(|b| arg(b, 0))
        .unwrap_or("wlc");
    let algo = match algo_name {
        "rr" => Algo::Rr,
        "wrr" => Algo::Wrr,
        "sh" => Algo::Sh,
        "mh" => Algo::Mh,
        "lc" => Algo::Lc,
        "wlc" => Algo::Wlc,
        "sed" => Algo::Sed,
        "nq" => Algo::Nq,
        "fo" => Algo::Fo,
        "ovf" => Algo::Ovf,
        "dh" => Algo::Dh,
        "twos" => Algo::Twos,
        "lblc" => Algo::Lblc,
        "lblcr" => Algo::Lblcr,
        other => {
            return Err(format!(
                "lb_algo {other} is not run by the XDP backend (rr, wrr, lc, wlc, sed, nq, fo, ovf, twos, sh, mh, dh, lblc, lblcr are)"
            ));
        }
    };
    let (hash_port, hash_fallback) = sched_flags(o);
    // keepalived's pgr_handler: an IPv4 netmask (not necessarily solid, as ipvsadm takes it);
    // one it reports invalid is ignored.
    let granularity = find(o, "persistence_granularity").and_then(|b| arg(b, 0));
    let persist_mask = match addr {
        IpAddr::V4(_) => granularity
            .and_then(|g| g.parse::<Ipv4Addr>().ok())
            .unwrap_or(Ipv4Addr::BROADCAST)
            .into(),
        // keepalived's pgr_handler for IPv6: a prefix length 1..=128.
        IpAddr::V6(_) => {
            let bits = granularity
                .and_then(|g| g.parse::<u32>().ok())
                .filter(|b| (1..=128).contains(b))
                .unwrap_or(128);
            Ipv6Addr::from(u128::MAX << (128 - bits)).into()
        }
    };
    let v6 = addr.is_ipv6();
    // The XDP backend forwards IPv6 by direct routing or NAT, not through tunnels.
    let no_tunnel6 = |m: Method, whose: &str| -> Result<(), String> {
        if v6 && !ipvs && matches!(m, Method::Tun(_)) {
            return Err(format!(
                "{whose}: IPv6 virtual servers are run by direct routing or NAT only by the XDP backend (lb_kind DR or NAT)"
            ));
        }
        Ok(())
    };
    let persistence = find(o, "persistence_timeout").map(|b| {
        // keepalived: the keyword alone means 6 minutes.
        Duration::from_secs(arg(b, 0).and_then(|v| v.parse().ok()).unwrap_or(360))
    });
    // Checker settings a real server or a checker does not set come from the virtual server.
    // Values the reader reported invalid are still in the blocks: keepalived ignores them,
    // so a delay_loop or connect_timeout of 0 (a busy loop, every server down) is never used.
    let vs_delay_loop = positive(secs(o, "delay_loop")).unwrap_or(Duration::from_secs(60));
    let mut reals = Vec::new();
    for rb in &vs.real_servers {
        let (Some(a), p) = (arg(rb, 0), arg(rb, 1)) else {
            continue;
        };
        let raddr: IpAddr = a
            .parse()
            .map_err(|_| format!("real_server {a} is not an IP address"))?;
        let rc = &rb.children;
        // A real server's own forwarding method (IPVS takes one per server).
        let m = method(find(rc, "lvs_method"), vs_method, ipvs)
            .map_err(|why| format!("real_server {a}: lvs_method {why}"))?;
        if raddr.is_ipv6() != v6 {
            // keepalived: "Address family of virtual server and real server … don't match -
            // skipping real server." (the config check says it); a tunnelled one it keeps.
            if matches!(m, Method::Tun(_)) {
                return Err(format!(
                    "real_server {a}: a tunnel to a server of the other address family is not run"
                ));
            }
            continue;
        }
        let rport: u16 = p.map_or(Ok(port), |p| {
            p.parse().map_err(|_| format!("real_server port {p}"))
        })?;
        no_tunnel6(m, &format!("real_server {a}"))?;
        let nat = m == Method::Nat;
        let tun = match m {
            Method::Tun(t) => Some(t),
            _ => None,
        };
        // keepalived clears a DR server's port under a mark, after its checkers took the
        // written one.
        let check_port = if entries.is_empty() {
            rport
        } else {
            server_port(nat, group.is_some(), rport, port)
        };
        let rport = server_port(nat, group.is_some(), rport, port);
        let weight = int(rc, "weight").unwrap_or(1).min(u64::from(u32::MAX)) as u32;
        let inhibit_on_failure = find(rc, "inhibit_on_failure")
            .is_some_and(|b| !matches!(arg(b, 0), Some("false" | "no" | "off")));
        let delay_loop = positive(secs(rc, "delay_loop")).unwrap_or(vs_delay_loop);
        let mut checks = Vec::new();
        for cb in rc {
            let kind = match cb.keyword.as_str() {
                "TCP_CHECK" => CheckKind::Tcp,
                "HTTP_GET" | "SSL_GET" => {
                    let urls = cb
                        .children
                        .iter()
                        .filter(|u| u.keyword == "url")
                        .filter_map(|u| {
                            let path = arg(find(&u.children, "path")?, 0)?.to_string();
                            let regex = url_regex(u)
                                .map_err(|e| format!("real_server {a}: url {path}: {e}"));
                            let codes: Vec<&str> = find(&u.children, "status_code")
                                .map(|b| b.args.iter().map(String::as_str).collect())
                                .unwrap_or_default();
                            let mut status = status_ranges(&codes);
                            if status.is_empty() {
                                status.push((200, 299));
                            }
                            // keepalived ignores a digest that is not 32 hex digits (the
                            // config check says why).
                            let digest = find(&u.children, "digest")
                                .and_then(|b| arg(b, 0))
                                .filter(|d| crate::config::lvs::digest_error(d).is_none())
                                .map(str::to_ascii_lowercase);
                            let vhost = |blocks: &[&[RawBlock]]| {
                                blocks
                                    .iter()
                                    .find_map(|b| find(b, "virtualhost").and_then(|v| arg(v, 0)))
                                    .map(str::to_string)
                            };
                            let c = &cb.children[..];
                            let virtualhost = vhost(&[&u.children, c, rc, o]);
                            let sni = (cb.keyword == "SSL_GET"
                                && flag(c, "enable_sni").unwrap_or(false))
                            .then(|| vhost(&[&u.children, c, o]))
                            .flatten();
                            let protocol = match find(c, "http_protocol").and_then(|b| arg(b, 0)) {
                                Some("1.1") => HttpProtocol::V11,
                                Some("1.0C" | "1.0c") => HttpProtocol::V10C,
                                _ => HttpProtocol::V10,
                            };
                            Some(regex.map(|regex| Url {
                                path,
                                status,
                                digest,
                                regex,
                                own_virtualhost: vhost(&[&u.children]),
                                virtualhost,
                                sni,
                                protocol,
                            }))
                        })
                        .collect::<Result<Vec<Url>, String>>()?;
                    if cb.keyword == "SSL_GET" {
                        CheckKind::Https(urls)
                    } else {
                        CheckKind::Http(urls)
                    }
                }
                "MISC_CHECK" => {
                    let c = &cb.children;
                    let Some(path) = find(c, "misc_path") else {
                        return Err(format!("real_server {a}: MISC_CHECK without misc_path"));
                    };
                    CheckKind::Misc(Misc {
                        argv: command(&path.args),
                        timeout: int(c, "misc_timeout")
                            .filter(|t| *t > 0)
                            .map_or(vs_delay_loop, Duration::from_secs),
                        dynamic: find(c, "misc_dynamic").is_some(),
                        user: find(c, "user").and_then(|u| {
                            Some((arg(u, 0)?.to_string(), arg(u, 1).map(str::to_string)))
                        }),
                    })
                }
                "SMTP_CHECK" => CheckKind::Smtp(
                    find(&cb.children, "helo_name")
                        .and_then(|b| arg(b, 0))
                        .unwrap_or("smtpchecker.keepalived.org")
                        .to_string(),
                ),
                "DNS_CHECK" => {
                    let c = &cb.children;
                    let qtype = match find(c, "type").and_then(|b| arg(b, 0)) {
                        None => 6,
                        Some(t) => dns_type(t)
                            .ok_or_else(|| format!("real_server {a}: DNS_CHECK type {t}"))?,
                    };
                    CheckKind::Dns(DnsQuery {
                        name: find(c, "name")
                            .and_then(|b| arg(b, 0))
                            .unwrap_or("")
                            .to_string(),
                        qtype,
                    })
                }
                "PING_CHECK" => CheckKind::Ping,
                "UDP_CHECK" => {
                    let c = &cb.children;
                    let hex = |b: &RawBlock, wildcard: bool| hex_str(&b.args.join(" "), wildcard);
                    // Values keepalived reports as invalid are ignored, as it ignores them.
                    let len = |k: &str| int(c, k).filter(|l| *l <= 65535).map(|l| l as usize);
                    CheckKind::Udp(UdpCheck {
                        payload: find(c, "payload")
                            .and_then(|b| hex(b, false))
                            .map_or_else(|| filler(32), |h| h.iter().map(|(v, _)| *v).collect()),
                        require_reply: find(c, "require_reply")
                            .map(|b| hex(b, true).unwrap_or_default()),
                        min_reply: len("min_reply_length").unwrap_or(0),
                        max_reply: len("max_reply_length").unwrap_or(255),
                    })
                }
                "FILE_CHECK" => {
                    let c = &cb.children;
                    // keepalived drops a FILE_CHECK whose track_file is missing or unknown (the
                    // config check says so).
                    let Some(tf) = find(c, "track_file")
                        .and_then(|b| arg(b, 0))
                        .and_then(|n| track_files.iter().find(|t| t.name == n))
                    else {
                        continue;
                    };
                    let Some(file) = &tf.file else { continue };
                    let own = find(c, "weight").and_then(|b| {
                        let w: i64 = arg(b, 0)?.parse().ok()?;
                        let reverse = match arg(b, 1) {
                            None | Some("noreverse") => false,
                            Some("reverse") => true,
                            Some(_) => return None,
                        };
                        (w.abs() <= i64::from(i32::MAX)).then_some((w, reverse))
                    });
                    let (by, reverse) = own.unwrap_or((i64::from(tf.weight), tf.weight_reverse));
                    CheckKind::File(FileCheck {
                        path: file.into(),
                        weight: by,
                        reverse,
                    })
                }
                "BFD_CHECK" => {
                    return Err(format!(
                        "real_server {a}: {} is not run (there is no BFD here; TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK, SMTP_CHECK, DNS_CHECK, PING_CHECK, UDP_CHECK and FILE_CHECK are)",
                        cb.keyword
                    ));
                }
                _ => continue,
            };
            let c = &cb.children;
            let (default_retry, default_delay) = match kind {
                CheckKind::Http(_) | CheckKind::Https(..) => (1, Duration::from_secs(3)),
                CheckKind::Tcp => (1, Duration::from_secs(1)),
                // keepalived: MISC_CHECK does not retry unless told to; DNS_CHECK 3 times.
                CheckKind::Misc(_) => (0, Duration::from_secs(1)),
                CheckKind::Smtp(_) | CheckKind::Ping | CheckKind::Udp(_) | CheckKind::File(_) => {
                    (1, Duration::from_secs(1))
                }
                // keepalived's DNS_CHECK waits a delay_loop before a retry.
                CheckKind::Dns(_) => (3, secs(c, "delay_loop").unwrap_or(delay_loop)),
            };
            // keepalived's smtp_check_handler starts its own connection aimed nowhere (its
            // `host` blocks at the real server): any bindto goes there.
            let aimed = (cb.keyword != "SMTP_CHECK").then_some(raddr);
            let check = Check {
                addr: endpoints(aimed, c.iter().map(|b| (b.keyword.as_str(), arg(b, 0))))
                    .0
                    .unwrap_or(raddr),
                port: int(c, "connect_port").map_or(check_port, |p| p as u16),
                source: Source::from_block(c, aimed),
                proto,
                connect_timeout: positive(secs(c, "connect_timeout"))
                    .or_else(|| positive(secs(rc, "connect_timeout")))
                    .or_else(|| positive(secs(o, "connect_timeout")))
                    .unwrap_or(Duration::from_secs(5)),
                retry: int(c, "retry")
                    .or_else(|| int(c, "nb_get_retry"))
                    .or_else(|| int(rc, "retry"))
                    .or_else(|| int(o, "retry"))
                    .map_or(default_retry, |r| r.min(u64::from(u32::MAX)) as u32),
                delay_before_retry: secs(c, "delay_before_retry")
                    .or_else(|| secs(rc, "delay_before_retry"))
                    .or_else(|| secs(o, "delay_before_retry"))
                    .unwrap_or(default_delay),
                delay_loop: positive(secs(c, "delay_loop")).unwrap_or(delay_loop),
                warmup: secs(c, "warmup")
                    .or_else(|| secs(rc, "warmup"))
                    .or_else(|| secs(o, "warmup"))
                    .unwrap_or_else(|| secs(c, "delay_loop").unwrap_or(delay_loop)),
                // keepalived forces alpha off for FILE_CHECK: the file says from the start.
                alpha: !matches!(kind, CheckKind::File(_))
                    && flag(c, "alpha")
                        .or_else(|| flag(rc, "alpha"))
                        .or_else(|| flag(o, "alpha"))
                        .unwrap_or(false),
                kind,
                weight,
                // keepalived's check_true_false: no value is true, a bad one (already
                // reported) leaves it off.
                log_all_failures: find(c, "log_all_failures")
                    .is_some_and(|b| matches!(arg(b, 0), None | Some("true" | "on" | "yes"))),
                fast_recovery: find(c, "fast_recovery")
                    .is_some_and(|b| matches!(arg(b, 0), None | Some("true" | "on" | "yes"))),
                tunnel: tun.is_some(),
            };
            // keepalived's deprecated SMTP_CHECK `host` blocks: a checker per host, each with
            // the host's connect_ip / connect_port (default the real server's) and
            // connect_timeout (default the real or virtual server's, not the SMTP_CHECK's),
            // the rest from the SMTP_CHECK; the SMTP_CHECK's own connection is checked too
            // only when it sets one of its options (keepalived's smtp_check_end_handler).
            let hosts: Vec<&RawBlock> = c.iter().filter(|b| b.keyword == "host").collect();
            if hosts.is_empty() {
                checks.push(check);
                continue;
            }
            let own = [
                "connect_ip",
                "connect_port",
                "bindto",
                "bind_port",
                "bind_if",
                "fwmark",
                "connect_timeout",
            ]
            .iter()
            .any(|k| find(c, k).is_some());
            let server_timeout = positive(secs(rc, "connect_timeout"))
                .or_else(|| positive(secs(o, "connect_timeout")))
                .unwrap_or(Duration::from_secs(5));
            let per_host: Vec<Check> = hosts
                .iter()
                .map(|h| {
                    let hc = &h.children;
                    Check {
                        addr: endpoints(
                            Some(raddr),
                            hc.iter().map(|b| (b.keyword.as_str(), arg(b, 0))),
                        )
                        .0
                        .unwrap_or(raddr),
                        port: int(hc, "connect_port").map_or(check_port, |p| p as u16),
                        source: Source::from_block(hc, Some(raddr)),
                        connect_timeout: positive(secs(hc, "connect_timeout"))
                            .unwrap_or(server_timeout),
                        ..check.clone()
                    }
                })
                .collect();
            if own {
                checks.push(check);
            }
            checks.extend(per_host);
        }
        let notify = |k: &str| find(rc, k).map(|b| command(&b.args));
        reals.push(RealServer {
            addr: raddr,
            port: rport,
            nat,
            tun,
            tun_flags: tun_flags(
                find(rc, "lvs_method")
                    .or_else(|| find(o, "lb_kind").or_else(|| find(o, "lvs_method"))),
            ),
            weight,
            inhibit_on_failure,
            checks,
            notify_up: notify("notify_up"),
            notify_down: notify("notify_down"),
            uthreshold: int(rc, "uthreshold").map_or(0, |t| t.min(u64::from(u32::MAX)) as u32),
            lthreshold: int(rc, "lthreshold").map_or(0, |t| t.min(u64::from(u32::MAX)) as u32),
            smtp_alert: flag(rc, "smtp_alert"),
        });
    }
    // keepalived drops a virtual server left without real servers ("has no real servers -
    // ignoring", said by the config check).
    if reals.is_empty() {
        return Err("it has no real servers".to_string());
    }
    // A method of a sorry server that is not there changes nothing.
    let sorry_method = match method(find(o, "sorry_server_lvs_method"), vs_method, ipvs) {
        Ok(m) => m,
        Err(why) if find(o, "sorry_server").is_some() => {
            return Err(format!("sorry_server_lvs_method {why}"));
        }
        Err(_) => Method::Dr,
    };
    let sorry_nat = sorry_method == Method::Nat;
    let sorry_tun = match sorry_method {
        Method::Tun(t) => Some(t),
        _ => None,
    };
    let sorry = match find(o, "sorry_server") {
        Some(b) => {
            let (Some(a), Some(p)) = (arg(b, 0), arg(b, 1)) else {
                return Err("sorry_server wants IP PORT".to_string());
            };
            let a: IpAddr = a
                .parse()
                .map_err(|_| format!("sorry_server {a} is not an IP address"))?;
            let p: u16 = p.parse().map_err(|_| format!("sorry_server port {p}"))?;
            // keepalived: "Address family of virtual server and sorry server … don't match -
            // skipping sorry server." (the config check says it); a tunnelled one it keeps.
            if a.is_ipv6() != v6 {
                if matches!(sorry_method, Method::Tun(_)) {
                    return Err(format!(
                        "sorry_server {a}: a tunnel to a server of the other address family is not run"
                    ));
                }
                None
            } else {
                no_tunnel6(sorry_method, &format!("sorry_server {a}"))?;
                Some((a, server_port(sorry_nat, group.is_some(), p, port)))
            }
        }
        None => None,
    };
    Ok(VirtualService {
        entries,
        fwmarks,
        sorry_tun_flags: tun_flags(
            find(o, "sorry_server_lvs_method")
                .or_else(|| find(o, "lb_kind").or_else(|| find(o, "lvs_method"))),
        ),
        hash_fallback,
        persistence_engine: find(o, "persistence_engine")
            .and_then(|b| arg(b, 0))
            .map(str::to_string),
        group,
        // keepalived's ranges: quorum 1..=2^32-1 (else 1), hysteresis 0..=2^32-1 (else 0).
        quorum: int(o, "quorum")
            .filter(|q| (1..=u64::from(u32::MAX)).contains(q))
            .unwrap_or(1),
        hysteresis: int(o, "hysteresis")
            .filter(|h| *h <= u64::from(u32::MAX))
            .unwrap_or(0),
        quorum_up: find(o, "quorum_up").map(|b| command(&b.args)),
        quorum_down: find(o, "quorum_down").map(|b| command(&b.args)),
        sorry,
        sorry_nat,
        sorry_tun,
        sorry_inhibit: find(o, "sorry_server_inhibit").is_some(),
        omega: flag(o, "omega").unwrap_or(false),
        ha_suspend: find(o, "ha_suspend").is_some(),
        ops,
        smtp_alert: flag(o, "smtp_alert"),
        addr,
        port,
        proto,
        algo,
        hash_port,
        persistence,
        persist_mask,
        reals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ReadOptions, validate::Unchecked};

    fn services(text: &str) -> Vec<Result<VirtualService, String>> {
        let loaded = config::load_str(
            std::path::Path::new("/t/k.conf"),
            text.as_bytes(),
            &ReadOptions::default(),
            &Unchecked,
        );
        let groups = &loaded.config.virtual_server_groups;
        loaded
            .config
            .virtual_servers
            .iter()
            .map(|v| service(v, groups, &loaded.config.track_files, Backend::Xdp))
            .collect()
    }

    /// keepalived's check_true_false for `log_all_failures`: no value or true/on/yes.
    #[test]
    fn log_all_failures_per_checker() {
        let vs = services(
            "virtual_server 10.0.0.1 80 {\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.2 80 {\n    TCP_CHECK {\n      log_all_failures\n    }\n    TCP_CHECK {\n      log_all_failures off\n    }\n    TCP_CHECK {\n    }\n    TCP_CHECK {\n      log_all_failures yes\n    }\n  }\n}\n",
        );
        let checks = &vs[0].as_ref().unwrap().reals[0].checks;
        assert_eq!(
            checks
                .iter()
                .map(|c| c.log_all_failures)
                .collect::<Vec<_>>(),
            [true, false, false, true]
        );
    }

    /// keepalived's `TUN [type ipip|gue|gre] [port N] [nocsum]`: a tunnel, at the virtual
    /// server's port (a port written otherwise is reset, as for DR); its checkers know their
    /// frames go to the next hop.
    #[test]
    fn tun_servers() {
        let vs = services(
            "virtual_server 10.0.0.1 80 {\n  lb_kind TUN\n  protocol TCP\n  sorry_server 10.0.0.9 8080\n  sorry_server_lvs_method TUN type gre\n  real_server 10.0.0.2 8080 {\n    TCP_CHECK {\n    }\n  }\n  real_server 10.0.0.3 80 {\n    lvs_method DR\n  }\n  real_server 10.0.0.4 80 {\n    lvs_method TUN type ipip nocsum\n  }\n  real_server 10.0.0.5 80 {\n    lvs_method TUN type gue port 6080 nocsum\n  }\n}\n",
        );
        let v = vs[0].as_ref().unwrap();
        assert_eq!(
            v.reals
                .iter()
                .map(|r| (r.tun, r.nat, r.port))
                .collect::<Vec<_>>(),
            [
                (Some(Tunnel::Ipip), false, 80),
                (None, false, 80),
                (Some(Tunnel::Ipip), false, 80),
                (Some(Tunnel::Gue(6080)), false, 80)
            ]
        );
        assert!(v.reals[0].checks[0].tunnel);
        assert_eq!(
            (v.sorry, v.sorry_tun),
            (Some(("10.0.0.9".parse().unwrap(), 80)), Some(Tunnel::Gre))
        );
    }

    #[test]
    fn granularity_thresholds_and_forwarding_methods() {
        let vs = services(
            "virtual_server 10.0.0.1 80 {\n  lb_kind DR\n  persistence_timeout 60\n  persistence_granularity 255.255.255.0\n  real_server 10.0.0.2 80 {\n    uthreshold 100\n    lthreshold 50\n  }\n  real_server 10.0.0.3 80 {\n  }\n}\n\
             virtual_server 10.0.0.1 81 {\n  lb_kind DR\n  real_server 10.0.0.2 81 {\n    lvs_method TUN type gue\n  }\n}\n\
             virtual_server 10.0.0.1 82 {\n  lb_kind DR\n  sorry_server 10.0.0.9 8082\n  sorry_server_lvs_method NAT\n  real_server 10.0.0.2 82 {\n    lvs_method DR\n  }\n}\n\
             virtual_server 10.0.0.1 83 {\n  lb_kind NAT\n  sorry_server 10.0.0.9 8083\n  sorry_server_lvs_method TUN csum\n  real_server 10.0.0.2 83 {\n  }\n}\n\
             virtual_server 10.0.0.1 84 {\n  real_server 10.0.0.2 8084 {\n  }\n  real_server 10.0.0.3 8085 {\n    lvs_method DR\n  }\n  real_server 10.0.0.4 0 {\n  }\n}\n",
        );
        let first = vs[0].as_ref().unwrap();
        assert_eq!(first.persist_mask, Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(first.persist_mask, IpAddr::from([255, 255, 255, 0]));
        assert_eq!(
            (first.reals[0].uthreshold, first.reals[0].lthreshold),
            (100, 50)
        );
        assert_eq!(
            (first.reals[1].uthreshold, first.reals[1].lthreshold),
            (0, 0)
        );
        assert_eq!(
            vs[1].as_ref().unwrap_err(),
            "real_server 10.0.0.2: lvs_method TUN type gue wants a port from 1 to 65535"
        );
        // A NAT sorry server keeps its port; a DR real server in the same virtual server
        // keeps the virtual server's.
        let v = vs[2].as_ref().unwrap();
        assert_eq!(
            (v.sorry, v.sorry_nat),
            (Some(("10.0.0.9".parse().unwrap(), 8082)), true)
        );
        assert!(!v.reals[0].nat);
        assert_eq!(
            vs[3].as_ref().unwrap_err(),
            "sorry_server_lvs_method TUN csum is not supported by the XDP backend (tunnels without checksums only)"
        );
        // No lb_kind: NAT (keepalived's default); each server its own port, DR the VS's, a
        // port of 0 the VS's.
        let v = vs[4].as_ref().unwrap();
        assert_eq!(
            v.reals.iter().map(|r| (r.nat, r.port)).collect::<Vec<_>>(),
            [(true, 8084), (false, 84), (true, 84)]
        );
    }

    #[test]
    fn the_seed_lvs_dr_director_runs_with_keepalived_s_defaults() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/configs/seed-lvs-dr-master.conf"
        ))
        .unwrap();
        let s = services(&text);
        let vs = s[0].as_ref().unwrap();
        assert_eq!(vs.name(), "[192.168.11.200]:tcp:80");
        assert_eq!(
            (vs.algo, vs.persistence),
            (Algo::Rr, Some(Duration::from_secs(50)))
        );
        assert_eq!(vs.reals.len(), 2);
        let r = &vs.reals[0];
        assert_eq!(vs.real_name(r), "[192.168.11.113]:tcp:80");
        assert_eq!(r.weight, 1);
        let c = &r.checks[0];
        assert_eq!(
            c.kind,
            CheckKind::Http(vec![Url {
                path: "/".into(),
                status: vec![(200, 299)],
                digest: None,
                regex: None,
                virtualhost: None,
                own_virtualhost: None,
                sni: None,
                protocol: HttpProtocol::V10,
            }])
        );
        // nb_get_retry 3, delay_before_retry 3, connect_timeout 3, the VS's delay_loop 6.
        assert_eq!(c.retry, 3);
        assert_eq!(c.delay_before_retry, Duration::from_secs(3));
        assert_eq!(c.connect_timeout, Duration::from_secs(3));
        assert_eq!(c.delay_loop, Duration::from_secs(6));
        assert_eq!(
            c.warmup,
            Duration::from_secs(6),
            "keepalived: warmup defaults to delay_loop"
        );
        assert_eq!((c.addr, c.port), (r.addr, 80));
    }

    #[test]
    fn a_virtual_server_group_answers_on_each_entry_and_range() {
        let s = services(
            "virtual_server_group web {\n 10.0.0.1 80\n 10.0.0.10-12 8080\n}\n\
             virtual_server group web {\n lb_kind DR\n lb_algo rr\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n }\n}\n\
             virtual_server group nope {\n lb_kind DR\n lb_algo rr\n real_server 10.0.0.2 80 {\n }\n}\n",
        );
        let vs = s[0].as_ref().unwrap();
        assert_eq!(vs.name(), "[web]:0", "keepalived's FMT_VS for a group");
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            vs.entries,
            [
                (a("10.0.0.1"), 80),
                (a("10.0.0.10"), 8080),
                (a("10.0.0.11"), 8080),
                (a("10.0.0.12"), 8080)
            ]
        );
        assert_eq!(
            s[1].as_ref().unwrap_err(),
            "virtual_server_group nope is not configured"
        );
    }

    /// IPv6 virtual servers: direct routing or NAT (keepalived's default; TUN refused
    /// with the reason), `persistence_granularity` a prefix length, real servers of the
    /// other family skipped as keepalived skips them, a group's IPv6 range over its last
    /// group (hexadecimal), one family per group.
    #[test]
    fn ipv6_virtual_servers() {
        let s = services(
            "virtual_server 2001:db8::200 80 {\n lb_kind DR\n protocol TCP\n persistence_timeout 60\n persistence_granularity 48\n sorry_server 2001:db8::9 80\n real_server 2001:db8::2 80 {\n  PING_CHECK {\n   bindto 2001:db8::1\n  }\n }\n real_server 10.0.0.3 80 {\n }\n}\n\
             virtual_server 2001:db8::200 81 {\n real_server 2001:db8::2 81 {\n }\n}\n\
             virtual_server 2001:db8::200 82 {\n lb_kind DR\n real_server 2001:db8::2 82 {\n  lvs_method TUN\n }\n}\n\
             virtual_server 2001:db8::200 83 {\n lb_kind DR\n sorry_server 10.0.0.9 83\n real_server 2001:db8::2 83 {\n }\n}\n\
             virtual_server_group six {\n 2001:db8::a-c 80\n}\n\
             virtual_server group six {\n lb_kind DR\n real_server 2001:db8::2 80 {\n }\n}\n\
             virtual_server_group mixed {\n 2001:db8::a 80\n 10.0.0.1 80\n}\n\
             virtual_server group mixed {\n lb_kind DR\n real_server 2001:db8::2 80 {\n }\n}\n\
             virtual_server 2001:db8::200 84 {\n lb_kind DR\n persistence_granularity 129\n real_server 2001:db8::2 84 {\n }\n}\n",
        );
        let v = s[0].as_ref().unwrap();
        assert_eq!(v.name(), "[2001:db8::200]:tcp:80");
        assert_eq!(
            v.persist_mask,
            "ffff:ffff:ffff::".parse::<IpAddr>().unwrap(),
            "a /48"
        );
        assert_eq!(v.reals.len(), 1, "10.0.0.3 skipped");
        assert_eq!(v.real_name(&v.reals[0]), "[2001:db8::2]:tcp:80");
        let check = &v.reals[0].checks[0];
        assert_eq!(check.kind, CheckKind::Ping);
        assert_eq!(check.addr, "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(check.source.addr, "2001:db8::1".parse().ok());
        assert_eq!(v.sorry, Some(("2001:db8::9".parse().unwrap(), 80)));
        // keepalived's default method, NAT, is run; a tunnel is not.
        assert!(s[1].as_ref().unwrap().reals[0].nat);
        assert_eq!(
            s[2].as_ref().unwrap_err(),
            "real_server 2001:db8::2: IPv6 virtual servers are run by direct routing or NAT only by the XDP backend (lb_kind DR or NAT)"
        );
        assert_eq!(s[3].as_ref().unwrap().sorry, None, "skipped");
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            s[4].as_ref().unwrap().entries,
            [
                (a("2001:db8::a"), 80),
                (a("2001:db8::b"), 80),
                (a("2001:db8::c"), 80)
            ]
        );
        assert!(s[5].as_ref().unwrap_err().contains("IPv4 and IPv6"));
        // A granularity keepalived reports invalid is ignored: the whole address.
        assert_eq!(
            s[6].as_ref().unwrap().persist_mask,
            IpAddr::from([255u8; 16])
        );
        // A tunnel to a server of the other family (keepalived keeps it, IPVS crosses
        // families) is not run; a virtual server left with no real server is dropped.
        let s = services(
            "virtual_server 2001:db8::200 85 {\n lb_kind DR\n real_server 10.0.0.4 85 {\n  lvs_method TUN\n }\n real_server 2001:db8::2 85 {\n }\n}\n\
             virtual_server 2001:db8::200 86 {\n lb_kind DR\n real_server 10.0.0.4 86 {\n }\n}\n\
             virtual_server 2001:db8::200 87 {\n lb_kind DR\n real_server 2001:db8::2 87 {\n  TCP_CHECK {\n   bindto 10.0.0.1\n  }\n  TCP_CHECK {\n   bindto 2001:db8::1\n   connect_ip 10.0.0.3\n  }\n  TCP_CHECK {\n   connect_ip 10.0.0.3\n   bindto 10.0.0.1\n  }\n }\n}\n",
        );
        assert!(s[0].as_ref().unwrap_err().contains("other address family"));
        assert_eq!(s[1].as_ref().unwrap_err(), "it has no real servers");
        // keepalived's check_api.c: a bindto of the other family than where the checker
        // connects (the real server, or its connect_ip) is skipped, and the other way round.
        let ends: Vec<(String, Option<IpAddr>)> = s[2].as_ref().unwrap().reals[0]
            .checks
            .iter()
            .map(|c| (c.addr.to_string(), c.source.addr))
            .collect();
        assert_eq!(
            ends,
            [
                ("2001:db8::2".to_string(), None),
                ("2001:db8::2".to_string(), "2001:db8::1".parse().ok()),
                ("10.0.0.3".to_string(), "10.0.0.1".parse().ok()),
            ]
        );
    }

    /// keepalived ignores a url `digest` that is not 32 hexadecimal digits (the url is still
    /// checked, without one), and takes `protocol` in any case, an unknown one ignored.
    #[test]
    fn digests_and_protocols_as_keepalived_reads_them() {
        let s = services(
            "virtual_server 10.0.0.1 80 {\n lb_kind DR\n protocol tcp\n protocol xyz\n real_server 10.0.0.2 80 {\n  HTTP_GET {\n   url {\n    path /a\n    digest 00\n   }\n   url {\n    path /b\n    digest 0123456789ABCDEF0123456789abcdef\n   }\n  }\n }\n}\n",
        );
        let v = s[0].as_ref().unwrap();
        assert_eq!(v.proto, Proto::Tcp);
        let CheckKind::Http(urls) = &v.reals[0].checks[0].kind else {
            panic!("{:?}", v.reals[0].checks[0].kind);
        };
        assert_eq!(
            urls.iter().map(|u| u.digest.clone()).collect::<Vec<_>>(),
            [None, Some("0123456789abcdef0123456789abcdef".to_string())]
        );
    }

    #[test]
    fn what_the_xdp_backend_does_not_run_is_refused_with_the_reason() {
        let vs = |body: &str| {
            services(&format!(
                "virtual_server 10.0.0.1 80 {{\n{body}\n real_server 10.0.0.2 80 {{\n  TCP_CHECK {{\n  }}\n }}\n}}\n"
            ))
            .remove(0)
        };
        assert!(vs("lb_kind DR\nlb_algo rr\nprotocol TCP").is_ok());
        assert!(vs("lb_kind NAT\nlb_algo rr").unwrap().reals[0].nat);
        assert_eq!(
            vs("lb_kind TUN\nlb_algo rr").unwrap().reals[0].tun,
            Some(Tunnel::Ipip)
        );
        // keepalived takes the last checksum option.
        assert_eq!(
            vs("lb_kind TUN type gre csum nocsum\nlb_algo rr")
                .unwrap()
                .reals[0]
                .tun,
            Some(Tunnel::Gre)
        );
        assert_eq!(
            vs("lb_kind TUN type gre csum\nlb_algo rr").unwrap_err(),
            "lb_kind TUN csum is not supported by the XDP backend (tunnels without checksums only)"
        );
        assert!(
            vs("lb_kind DR\nlb_algo wlcx")
                .unwrap_err()
                .contains("lb_algo wlcx")
        );
        for a in ["sed", "nq", "fo", "ovf", "dh", "twos", "lblc", "lblcr"] {
            assert_eq!(
                vs(&format!("lb_kind DR\nlb_algo {a}")).unwrap().algo.name(),
                a
            );
        }
        // keepalived's default scheduler when none is named.
        assert_eq!(vs("lb_kind DR").unwrap().algo, Algo::Wlc);
        assert!(vs("lb_kind DR\nlb_algo rr\nprotocol SCTP").is_err());
        // keepalived resets a DR real server's (and sorry server's) other port to the
        // virtual server's, and its checkers connect there.
        let moved = services(
            "virtual_server 10.0.0.1 80 {\n lb_kind DR\n sorry_server 10.0.0.9 8080\n real_server 10.0.0.2 8080 {\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.3 0 {\n }\n}\n",
        )
        .remove(0)
        .unwrap();
        assert_eq!(
            moved.reals.iter().map(|r| r.port).collect::<Vec<_>>(),
            [80, 80]
        );
        assert_eq!(moved.reals[0].checks[0].port, 80);
        assert_eq!(moved.sorry, Some(("10.0.0.9".parse().unwrap(), 80)));
        // SMTP_CHECK host blocks (keepalived's deprecated form): a checker per host; the
        // SMTP_CHECK's own connection too only when it sets a connection option.
        let smtp = |own: &str| {
            services(&format!(
                "virtual_server 10.0.0.1 25 {{\n lb_kind DR\n connect_timeout 7\n real_server 10.0.0.2 25 {{\n  SMTP_CHECK {{\n   retry 4\n{own}   host {{\n    connect_ip 10.0.0.8\n    connect_port 2525\n   }}\n   host {{\n    connect_timeout 2\n   }}\n  }}\n }}\n}}\n"
            ))
            .remove(0)
            .unwrap()
            .reals
            .remove(0)
            .checks
            .into_iter()
            .map(|c| (c.addr.to_string(), c.port, c.connect_timeout.as_secs(), c.retry))
            .collect::<Vec<_>>()
        };
        assert_eq!(
            smtp(""),
            [
                ("10.0.0.8".into(), 2525, 7, 4),
                ("10.0.0.2".into(), 25, 2, 4)
            ]
        );
        assert_eq!(
            smtp("   connect_timeout 3\n"),
            [
                ("10.0.0.2".into(), 25, 3, 4),
                ("10.0.0.8".into(), 2525, 7, 4),
                ("10.0.0.2".into(), 25, 2, 4)
            ]
        );
        // HTTP_GET's url regex (keepalived's PCRE2 match over the page).
        let url = |lines: &str| {
            services(&format!(
                "virtual_server 10.0.0.1 80 {{\n lb_kind DR\n real_server 10.0.0.2 80 {{\n  HTTP_GET {{\n   url {{\n    path /\n{lines}   }}\n  }}\n }}\n}}\n"
            ))
            .remove(0)
            .map(|vs| match &vs.reals[0].checks[0].kind {
                CheckKind::Http(urls) => urls[0].regex.clone(),
                other => panic!("{other:?}"),
            })
        };
        let re = url("    regex \"Status: \\\\d+ OK\"\n").unwrap().unwrap();
        assert_eq!(
            re.pattern, "Status: \\d+ OK",
            "keepalived's escapes: \\\\ is one backslash"
        );
        assert!(re.passes(b"<p>Status: 42 OK</p>"));
        assert!(!re.passes(b"<p>Status: down</p>"));
        assert!(!re.passes(b"status: 42 ok"));
        let re = url(
            "    regex \"status: [0-9]+ ok\"\n    regex_options caseless\n    regex_no_match\n",
        )
        .unwrap()
        .unwrap();
        assert!(!re.passes(b"Status: 42 OK"), "no_match: a match fails");
        assert!(re.passes(b"all good"));
        // The match must start within the offsets (max inclusive).
        let re = url("    regex ok\n    regex_min_offset 2\n    regex_max_offset 4\n")
            .unwrap()
            .unwrap();
        assert!(!re.passes(b"ok......"), "before min");
        assert!(re.passes(b"..ok...."));
        assert!(re.passes(b"....ok.."), "at max");
        assert!(!re.passes(b".....ok."), "after max");
        assert!(!re.passes(b"o"));
        // PCRE2's `$` matches before a final newline too, unless dollar_endonly.
        let re = url("    regex \"^r1$\"\n").unwrap().unwrap();
        assert!(re.passes(b"r1\n") && re.passes(b"r1") && !re.passes(b"r1\n\n"));
        let re = url("    regex \"^r1$\"\n    regex_options dollar_endonly\n")
            .unwrap()
            .unwrap();
        assert!(!re.passes(b"r1\n") && re.passes(b"r1"));
        let re = url("    regex ok\n    regex_options firstline\n")
            .unwrap()
            .unwrap();
        assert!(re.passes(b"is ok\nno") && !re.passes(b"no\nok"));
        // Bytes, not text: a page that is not UTF-8 is matched all the same.
        let re = url("    regex \"a.c\"\n").unwrap().unwrap();
        assert!(re.passes(b"\xffa\xfec"));
        // Companions without a regex, a min past the max: ignored, as keepalived ignores them.
        assert_eq!(url("    regex_no_match\n"), Ok(None));
        let re = url("    regex x\n    regex_min_offset 9\n    regex_max_offset 3\n")
            .unwrap()
            .unwrap();
        assert_eq!((re.min_offset, re.max_offset), (0, None));
        // What Rust's regex cannot run is refused with the reason, not matched wrongly.
        let err = url("    regex \"(?<=a)b\"\n").unwrap_err();
        assert!(
            err.contains("url /: regex '(?<=a)b' cannot be used here"),
            "{err}"
        );
        assert_eq!(unescape("\\x41\\t\\101\\cA\\q"), "A\tA\u{1}q");
        // The request's Host: url > HTTP_GET > real server > virtual server; SNI the same
        // without the real server's; http_protocol; the connection options.
        let get = |kind: &str, url_vhost: &str, get_lines: &str| {
            services(&format!(
                "virtual_server 10.0.0.1 80 {{\n lb_kind DR\n virtualhost vs.example\n real_server 10.0.0.2 80 {{\n  virtualhost rs.example\n  {kind} {{\n{get_lines}   url {{\n    path /\n{url_vhost}   }}\n  }}\n }}\n}}\n"
            ))
            .remove(0)
            .unwrap()
            .reals
            .remove(0)
            .checks
            .remove(0)
        };
        let urls = |c: &Check| match &c.kind {
            CheckKind::Http(u) | CheckKind::Https(u) => u.clone(),
            other => panic!("{other:?}"),
        };
        let u = urls(&get("HTTP_GET", "", ""))[0].clone();
        assert_eq!(
            (u.virtualhost.as_deref(), u.sni, u.protocol),
            (Some("rs.example"), None, HttpProtocol::V10)
        );
        let u = urls(&get(
            "HTTP_GET",
            "    virtualhost url.example\n",
            "   http_protocol 1.1\n",
        ))[0]
            .clone();
        assert_eq!(
            (u.virtualhost.as_deref(), u.protocol),
            (Some("url.example"), HttpProtocol::V11)
        );
        let c = get(
            "SSL_GET",
            "",
            "   enable_sni\n   http_protocol 1.0C\n   bindto 10.0.0.9\n   bind_port 4000\n   bind_if eth1\n   fwmark 12\n",
        );
        let u = urls(&c)[0].clone();
        assert_eq!(
            (u.virtualhost.as_deref(), u.sni.as_deref(), u.protocol),
            (Some("rs.example"), Some("vs.example"), HttpProtocol::V10C)
        );
        assert_eq!(
            c.source,
            Source {
                addr: Some("10.0.0.9".parse().unwrap()),
                port: Some(4000),
                interface: Some("eth1".into()),
                fwmark: Some(12),
            }
        );
        // keepalived (and the kernel) default to UDP when no protocol is set.
        assert_eq!(vs("lb_kind DR").unwrap().proto, Proto::Udp);
        // ops: UDP only (keepalived resets it on TCP, with a warning from the config check).
        assert!(vs("lb_kind DR\nprotocol UDP\nops").unwrap().ops);
        assert!(vs("lb_kind DR\nops").unwrap().ops);
        assert!(!vs("lb_kind DR\nprotocol TCP\nops").unwrap().ops);
        assert!(!vs("lb_kind DR\nprotocol UDP").unwrap().ops);
        let misc = services(
            "virtual_server 10.0.0.1 80 {\n lb_kind DR\n lb_algo wrr\n delay_loop 4\n real_server 10.0.0.2 80 {\n  notify_down \"/bin/down 10.0.0.2\"\n  MISC_CHECK {\n   misc_path \"/bin/chk 10.0.0.2\"\n   misc_dynamic\n  }\n }\n}\n",
        )
        .remove(0)
        .unwrap();
        let r = &misc.reals[0];
        assert_eq!(
            r.notify_down,
            Some(vec!["/bin/down".to_string(), "10.0.0.2".to_string()])
        );
        let CheckKind::Misc(m) = &r.checks[0].kind else {
            panic!("{:?}", r.checks)
        };
        assert_eq!(m.argv, ["/bin/chk", "10.0.0.2"]);
        assert!(m.dynamic);
        assert_eq!(
            m.timeout,
            Duration::from_secs(4),
            "misc_timeout defaults to delay_loop"
        );
        assert_eq!(r.checks[0].retry, 0, "MISC_CHECK does not retry by default");
        assert!(!r.checks[0].alpha && !misc.omega);
        let a = services(
            "virtual_server 10.0.0.1 80 {\n lb_kind DR\n lb_algo rr\n alpha\n omega\n real_server 10.0.0.2 80 {\n  TCP_CHECK {\n  }\n }\n real_server 10.0.0.3 80 {\n  TCP_CHECK {\n   alpha false\n  }\n }\n}\n",
        )
        .remove(0)
        .unwrap();
        assert!(a.omega);
        assert!(a.reals[0].checks[0].alpha, "the virtual server's alpha");
        assert!(
            !a.reals[1].checks[0].alpha,
            "the checker's own says otherwise"
        );
        let tcp = vs("lb_kind DR\nlb_algo wrr\ndelay_loop 2").unwrap();
        let c = &tcp.reals[0].checks[0];
        assert_eq!((c.retry, c.delay_before_retry), (1, Duration::from_secs(1)));
        assert_eq!(c.delay_loop, Duration::from_secs(2));
        // What the reader reported invalid is not used: no busy loop, no 0 timeout, no
        // quorum that overflows.
        let bad = vs("lb_kind DR\nlb_algo rr\ndelay_loop 0\nconnect_timeout 0\nquorum 99999999999\nhysteresis 99999999999").unwrap();
        let c = &bad.reals[0].checks[0];
        assert_eq!(
            (c.delay_loop, c.connect_timeout),
            (Duration::from_secs(60), Duration::from_secs(5))
        );
        assert_eq!((bad.quorum, bad.hysteresis), (1, 0));
    }
}
