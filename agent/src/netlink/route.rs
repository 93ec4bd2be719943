//! `virtual_routes` entries: the subset of keepalived's route syntax (`ip route`'s) that
//! vrrp-agent applies, parsed from the words as the config kept them. Anything else is refused
//! at start with the option named, never silently dropped.
//!
//! `[src IP] [to] [TYPE] DEST[/LEN] [via|gw IP] [dev|oif IF] [table N] [metric|priority|preference N]
//! [scope S] [protocol N] [onlink] [no_track]`, TYPE one of unicast, blackhole, unreachable,
//! prohibit; DEST may be `default`.

use std::net::IpAddr;

use thiserror::Error;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualRoute {
    pub kind: RouteKind,
    /// None: `default` (family from the gateway or source, else IPv4).
    pub dest: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub dev: Option<String>,
    pub src: Option<IpAddr>,
    pub table: Option<u32>,
    pub metric: Option<u32>,
    pub scope: Option<String>,
    pub protocol: Option<u8>,
    pub onlink: bool,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RouteError {
    #[error("virtual route `{0}`: option `{1}` is not supported by vrrp-agent yet")]
    Unsupported(String, String),
    #[error("virtual route `{0}`: `{1}` needs a value")]
    MissingValue(String, String),
    #[error("virtual route `{0}`: bad value `{2}` for `{1}`")]
    BadValue(String, String, String),
    #[error("virtual route `{0}`: no destination")]
    NoDestination(String),
}

/// `ADDR[/LEN]` (LEN defaults to the full length), or a `BadValue` naming `what` in `line`.
pub(super) fn prefix_of(text: &str, words: &str, what: &str) -> Result<(IpAddr, u8), RouteError> {
    let bad = || RouteError::BadValue(words.to_string(), what.to_string(), text.to_string());
    let (a, p) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv6() { 128 } else { 32 };
    let prefix = match p {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        None => max,
    };
    Ok((addr, prefix))
}

/// Parses one entry (its words as written).
pub fn parse(words: &[String]) -> Result<VirtualRoute, RouteError> {
    let line = words.join(" ");
    let mut r = VirtualRoute {
        kind: RouteKind::Unicast,
        dest: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        prefix: 0,
        gateway: None,
        dev: None,
        src: None,
        table: None,
        metric: None,
        scope: None,
        protocol: None,
        onlink: false,
    };
    let mut dest_seen = false;
    let mut default = false;
    let mut inet6 = false;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| RouteError::MissingValue(line.clone(), name.to_string()))
        };
        let bad = |name: &str, v: &str| {
            RouteError::BadValue(line.clone(), name.to_string(), v.to_string())
        };
        match w.as_str() {
            "src" => {
                let v = value("src")?;
                r.src = Some(v.parse().map_err(|_| bad("src", &v))?);
            }
            "to" | "inet" | "no_track" => {}
            "inet6" => inet6 = true,
            "unicast" => r.kind = RouteKind::Unicast,
            "blackhole" => r.kind = RouteKind::Blackhole,
            "unreachable" => r.kind = RouteKind::Unreachable,
            "prohibit" => r.kind = RouteKind::Prohibit,
            "via" | "gw" => {
                let mut v = value(w)?;
                if v == "inet" || v == "inet6" {
                    v = value(w)?;
                }
                r.gateway = Some(v.parse().map_err(|_| bad(w, &v))?);
            }
            "dev" | "oif" => r.dev = Some(value(w)?),
            "table" => {
                let v = value("table")?;
                r.table = Some(match v.as_str() {
                    "main" => 254,
                    "local" => 255,
                    "default" => 253,
                    n => n.parse().map_err(|_| bad("table", n))?,
                });
            }
            "metric" | "priority" | "preference" => {
                let v = value(w)?;
                r.metric = Some(v.parse().map_err(|_| bad(w, &v))?);
            }
            "scope" => r.scope = Some(value("scope")?),
            "protocol" | "proto" => {
                let v = value(w)?;
                r.protocol = Some(match v.as_str() {
                    "kernel" => 2,
                    "boot" => 3,
                    "static" => 4,
                    n => n.parse().map_err(|_| bad(w, n))?,
                });
            }
            "onlink" => r.onlink = true,
            "default" | "any" | "all" if !dest_seen => {
                dest_seen = true;
                default = true;
            }
            d if !dest_seen && (d.contains('.') || d.contains(':')) => {
                let (a, p) = prefix_of(d, &line, "destination")?;
                r.dest = a;
                r.prefix = p;
                dest_seen = true;
            }
            other => return Err(RouteError::Unsupported(line, other.to_string())),
        }
    }
    if !dest_seen {
        return Err(RouteError::NoDestination(line));
    }
    if default && (inet6 || r.gateway.or(r.src).is_some_and(|a| a.is_ipv6())) {
        r.dest = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<VirtualRoute, RouteError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn keepalived_route_entries() {
        let r = p("192.168.2.0/24 via 192.168.1.100 dev eth1 metric 5 table 100").unwrap();
        assert_eq!(r.dest, "192.168.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(r.prefix, 24);
        assert_eq!(r.gateway, Some("192.168.1.100".parse().unwrap()));
        assert_eq!(r.dev.as_deref(), Some("eth1"));
        assert_eq!((r.metric, r.table), (Some(5), Some(100)));
        let r = p("src 10.0.0.1 default gw 10.0.0.254").unwrap();
        assert_eq!(r.prefix, 0);
        assert_eq!(r.src, Some("10.0.0.1".parse().unwrap()));
        let r = p("blackhole 10.9.0.0/16").unwrap();
        assert_eq!(r.kind, RouteKind::Blackhole);
        let r = p("default via fe80::1 dev eth0").unwrap();
        assert!(r.dest.is_ipv6());
        assert!(p("inet6 blackhole default").unwrap().dest.is_ipv6());
        assert_eq!(
            p("10.0.0.0/8 via 10.0.0.1 mtu 1400"),
            Err(RouteError::Unsupported(
                "10.0.0.0/8 via 10.0.0.1 mtu 1400".into(),
                "mtu".into()
            ))
        );
        assert!(matches!(p("10.0.0.0/33"), Err(RouteError::BadValue(..))));
        assert!(matches!(
            p("via 10.0.0.1"),
            Err(RouteError::NoDestination(_))
        ));
        assert!(matches!(
            p("10.0.0.0/8 via"),
            Err(RouteError::MissingValue(..))
        ));
    }
}
