//! `virtual_rules` entries: the subset of keepalived's rule syntax (`ip rule`'s) that
//! vrrp-agent applies; anything else is refused at start with the option named.
//!
//! `[from IP[/LEN]|all] [to IP[/LEN]] [table|lookup N|main|local|default]
//! [priority|preference|order N] [iif IF] [oif IF] [fwmark N] [tos N] [no_track]`, or the
//! actions `blackhole`, `unreachable`, `prohibit` instead of a table.

use std::net::IpAddr;

use super::route::{RouteError, prefix_of as prefix};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleAction {
    Table(u32),
    Blackhole,
    Unreachable,
    Prohibit,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualRule {
    pub from: Option<(IpAddr, u8)>,
    pub to: Option<(IpAddr, u8)>,
    pub action: RuleAction,
    pub priority: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub tos: Option<u8>,
    /// inet6 written, or an address is IPv6.
    pub v6: bool,
}

fn number<T: std::str::FromStr>(v: &str) -> Option<T> {
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?.to_string().parse().ok(),
        None => v.parse().ok(),
    }
}

/// Parses one entry (its words as written).
pub fn parse(words: &[String]) -> Result<VirtualRule, RouteError> {
    let line = words.join(" ");
    let mut r = VirtualRule {
        from: None,
        to: None,
        action: RuleAction::Table(254),
        priority: None,
        iif: None,
        oif: None,
        fwmark: None,
        tos: None,
        v6: false,
    };
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
            "inet" | "no_track" => {}
            "inet6" => r.v6 = true,
            "from" => {
                let v = value("from")?;
                if v != "all" {
                    r.from = Some(prefix(&v, &line, "from")?);
                }
            }
            "to" => {
                let v = value("to")?;
                if v != "all" {
                    r.to = Some(prefix(&v, &line, "to")?);
                }
            }
            "table" | "lookup" => {
                let v = value(w)?;
                r.action = RuleAction::Table(match v.as_str() {
                    "main" => 254,
                    "local" => 255,
                    "default" => 253,
                    n => number(n).ok_or_else(|| bad(w, n))?,
                });
            }
            "blackhole" => r.action = RuleAction::Blackhole,
            "unreachable" => r.action = RuleAction::Unreachable,
            "prohibit" => r.action = RuleAction::Prohibit,
            "priority" | "preference" | "order" | "pref" => {
                let v = value(w)?;
                r.priority = Some(number(&v).ok_or_else(|| bad(w, &v))?);
            }
            "iif" => r.iif = Some(value(w)?),
            "oif" => r.oif = Some(value(w)?),
            "fwmark" => {
                let v = value(w)?;
                r.fwmark = Some(number(&v).ok_or_else(|| bad(w, &v))?);
            }
            "tos" | "dsfield" => {
                let v = value(w)?;
                r.tos = Some(number(&v).ok_or_else(|| bad(w, &v))?);
            }
            other => return Err(RouteError::Unsupported(line, other.to_string())),
        }
    }
    r.v6 |= r.from.or(r.to).is_some_and(|(a, _)| a.is_ipv6());
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<VirtualRule, RouteError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn keepalived_rule_entries() {
        let r = p("from 192.168.2.0/24 table 100 priority 50").unwrap();
        assert_eq!(r.from, Some(("192.168.2.0".parse().unwrap(), 24)));
        assert_eq!(
            (r.action.clone(), r.priority),
            (RuleAction::Table(100), Some(50))
        );
        let r = p("to 2001:db8::/32 lookup main").unwrap();
        assert!(r.v6);
        assert_eq!(r.action, RuleAction::Table(254));
        assert_eq!(p("from all fwmark 0x10 prohibit").unwrap().fwmark, Some(16));
        assert!(matches!(
            p("from 10.0.0.1 uidrange 1-2"),
            Err(RouteError::Unsupported(..))
        ));
        assert!(matches!(
            p("from 10.0.0.0/40"),
            Err(RouteError::BadValue(..))
        ));
    }
}
