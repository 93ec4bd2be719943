//! Links and addresses through rtnetlink: what the runtime needs to know of an interface
//! (index, MAC, primary addresses, up or down) and the virtual addresses it adds and removes,
//! as keepalived does with `ip address add VIP/PREFIX [brd B] dev IF [scope S] [label L]`.

use std::net::{IpAddr, Ipv6Addr};

use futures_util::stream::{StreamExt, TryStreamExt};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::{AddressAttribute, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkMessage},
};
use rtnetlink::{Handle, MulticastGroup, new_connection, new_multicast_connection};
use thiserror::Error;

use crate::config::model::VirtualAddress;

pub mod ipvs;
pub mod route;
pub mod rule;

#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("interface {0} does not exist")]
    NoSuchLink(String),
    #[error("{what}: {source}")]
    Request {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("unknown scope {0:?} (want global, site, link, host, nowhere or 0..255)")]
    Scope(String),
    #[error("route: {0}")]
    Route(String),
    #[error("{0}")]
    Vmac(String),
}

/// What the runtime needs of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: [u8; 6],
    /// keepalived's IF_ISUP: administratively up and running (carrier).
    pub up: bool,
    /// The lower device (IFLA_LINK) of a macvlan, VLAN...
    pub parent: Option<u32>,
}

/// A netlink socket of `protocol` connected to the kernel, each read bounded by a second: the
/// kernel answers while it handles a request, and no caller must wait on it for ever.
pub fn socket(protocol: isize) -> std::io::Result<netlink_sys::Socket> {
    let mut sock = netlink_sys::Socket::new(protocol)?;
    sock.bind_auto()?;
    sock.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    let second = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    crate::io::socket::setsockopt(&sock, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &second)?;
    Ok(sock)
}

/// A link came up or went down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkChange {
    pub index: u32,
    pub up: bool,
    /// The interface's name as the message gives it.
    pub name: Option<String>,
    /// RTM_DELLINK: the interface is gone (its index will not come back).
    pub deleted: bool,
}

/// An address was added to an interface (RTM_NEWADDR) or deleted from it (RTM_DELADDR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrChange {
    pub index: u32,
    pub addr: IpAddr,
    pub deleted: bool,
}

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

fn request(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

fn link_of(msg: &LinkMessage) -> Link {
    let mut link = Link {
        index: msg.header.index,
        name: String::new(),
        mac: [0; 6],
        up: is_up(msg.header.flags),
        parent: None,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Link(i) => link.parent = Some(*i),
            LinkAttribute::Address(m) if m.len() == 6 => link.mac.copy_from_slice(m),
            _ => {}
        }
    }
    link
}

fn is_up(flags: LinkFlags) -> bool {
    flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running)
}

/// keepalived's scope names (`ip address`'s).
pub fn scope(name: &str) -> Result<AddressScope, NetlinkError> {
    Ok(match name {
        "global" | "universe" => AddressScope::Universe,
        "site" => AddressScope::Site,
        "link" => AddressScope::Link,
        "host" => AddressScope::Host,
        "nowhere" => AddressScope::Nowhere,
        n => AddressScope::from(
            n.parse::<u8>()
                .map_err(|_| NetlinkError::Scope(n.to_string()))?,
        ),
    })
}

/// The kernel's infinite address lifetime.
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// How long an IPv6 VIP stays preferred: its `preferred_lft`, else keepalived's default —
/// 0 (deprecated: never chosen as a source address, RFC 6724, so this node's own
/// connections, health checks among them, keep their address) for a /128, forever for
/// others.
pub fn preferred_lft(vip: &VirtualAddress) -> u32 {
    vip.preferred_lft.unwrap_or(if vip.prefix == 128 {
        0
    } else {
        INFINITY_LIFE_TIME
    })
}

/// The address message for `vip` on interface `index` (for adding and for deleting).
fn address_message(index: u32, vip: &VirtualAddress) -> Result<AddressMessage, NetlinkError> {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = vip.prefix;
    m.header.family = if vip.addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    if let Some(s) = &vip.scope {
        m.header.scope = scope(s)?;
    }
    if vip.addr.is_ipv6() {
        // keepalived adds IPv6 VIPs without duplicate address detection: a tentative address
        // answers nothing (and cannot be bound) for a second after a takeover.
        m.header.flags |= netlink_packet_route::address::AddressHeaderFlags::Nodad;
    }
    match vip.addr {
        IpAddr::V4(_) => {
            m.attributes.push(AddressAttribute::Local(vip.addr));
            let peer = vip.peer.unwrap_or(vip.addr);
            m.attributes.push(AddressAttribute::Address(peer));
            if let Some(IpAddr::V4(b)) = vip.brd {
                m.attributes.push(AddressAttribute::Broadcast(b));
            }
        }
        IpAddr::V6(_) => {
            m.attributes.push(AddressAttribute::Address(vip.addr));
            if let Some(p) = vip.peer {
                m.attributes.push(AddressAttribute::Local(vip.addr));
                m.attributes.push(AddressAttribute::Address(p));
            }
        }
    }
    if let Some(l) = &vip.label {
        m.attributes.push(AddressAttribute::Label(l.clone()));
    }
    Ok(m)
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Netlink {
    /// Opens the request socket (its connection runs on the current tokio runtime).
    pub fn new() -> Result<Netlink, NetlinkError> {
        let (conn, handle, _) = new_connection()?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> Result<Link, NetlinkError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(m)) => Ok(link_of(&m)),
            Ok(None) => Err(NetlinkError::NoSuchLink(name.to_string())),
            Err(e) if errno(&e) == Some(libc::ENODEV) => {
                Err(NetlinkError::NoSuchLink(name.to_string()))
            }
            Err(e) => Err(request(format!("reading interface {name}"))(e)),
        }
    }

    /// The interface's addresses of one family, primary (non-secondary) ones first.
    pub async fn addresses(&self, index: u32, v6: bool) -> Result<Vec<IpAddr>, NetlinkError> {
        let mut out = Vec::new();
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(m) = stream.try_next().await.map_err(request(format!(
            "reading the addresses of interface {index}"
        )))? {
            if m.header.index != index {
                continue;
            }
            let secondary = m
                .header
                .flags
                .contains(netlink_packet_route::address::AddressHeaderFlags::Secondary);
            for a in &m.attributes {
                let addr = match a {
                    AddressAttribute::Local(a) if a.is_ipv4() && !v6 => *a,
                    AddressAttribute::Address(a) if a.is_ipv6() && v6 => *a,
                    _ => continue,
                };
                out.push((secondary, addr));
            }
        }
        out.sort_by_key(|(secondary, _)| *secondary);
        out.dedup();
        Ok(out.into_iter().map(|(_, a)| a).collect())
    }

    /// The source keepalived uses for an instance's adverts: the interface's first IPv4
    /// address, or its IPv6 link-local address.
    pub async fn primary_address(
        &self,
        index: u32,
        v6: bool,
    ) -> Result<Option<IpAddr>, NetlinkError> {
        let addrs = self.addresses(index, v6).await?;
        Ok(if v6 {
            addrs.into_iter().find(|a| match a {
                IpAddr::V6(a) => is_link_local(a),
                IpAddr::V4(_) => false,
            })
        } else {
            addrs.into_iter().next()
        })
    }

    /// Adds a virtual address; one already there is fine (keepalived logs nothing either).
    pub async fn add_address(&self, index: u32, vip: &VirtualAddress) -> Result<(), NetlinkError> {
        let mut msg = address_message(index, vip)?;
        // keepalived's IFA_CACHEINFO for an IPv6 VIP that is not preferred for ever.
        if vip.addr.is_ipv6() && preferred_lft(vip) != INFINITY_LIFE_TIME {
            let mut info = netlink_packet_route::address::CacheInfo::default();
            info.ifa_preferred = preferred_lft(vip);
            info.ifa_valid = INFINITY_LIFE_TIME;
            msg.attributes.push(AddressAttribute::CacheInfo(info));
        }
        let mut req = self.handle.address().add(index, vip.addr, vip.prefix);
        *req.message_mut() = msg;
        match req.execute().await {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            r => r.map_err(request(format!("adding {}/{}", vip.addr, vip.prefix))),
        }
    }

    /// Removes a virtual address; one already gone is fine.
    pub async fn del_address(&self, index: u32, vip: &VirtualAddress) -> Result<(), NetlinkError> {
        let msg = address_message(index, vip)?;
        match self.handle.address().del(msg).execute().await {
            Err(e)
                if matches!(
                    errno(&e),
                    Some(libc::EADDRNOTAVAIL | libc::ENODEV | libc::ENOENT)
                ) =>
            {
                Ok(())
            }
            r => r.map_err(request(format!("removing {}/{}", vip.addr, vip.prefix))),
        }
    }

    /// Link up/down changes, as they happen (RTNLGRP_LINK).
    pub fn link_changes() -> Result<tokio::sync::mpsc::UnboundedReceiver<LinkChange>, NetlinkError>
    {
        let (conn, _handle, mut messages) = new_multicast_connection(&[MulticastGroup::Link])?;
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((m, _)) = messages.next().await {
                let change = match m.payload {
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewLink(l),
                    ) => LinkChange {
                        index: l.header.index,
                        up: is_up(l.header.flags),
                        name: link_name(&l),
                        deleted: false,
                    },
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::DelLink(l),
                    ) => LinkChange {
                        index: l.header.index,
                        up: false,
                        name: link_name(&l),
                        deleted: true,
                    },
                    _ => continue,
                };
                if tx.send(change).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    /// Addresses added to or deleted from any interface, as it happens (RTNLGRP_IPV4_IFADDR
    /// and RTNLGRP_IPV6_IFADDR), for keepalived's reactions to a VIP deleted under a master
    /// and to the source address going away and coming back.
    pub fn address_changes()
    -> Result<tokio::sync::mpsc::UnboundedReceiver<AddrChange>, NetlinkError> {
        let (conn, _handle, mut messages) =
            new_multicast_connection(&[MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr])?;
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some((m, _)) = messages.next().await {
                let (a, deleted) = match m.payload {
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewAddress(a),
                    ) => (a, false),
                    netlink_packet_core::NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::DelAddress(a),
                    ) => (a, true),
                    _ => continue,
                };
                // IPv4 names the address in IFA_LOCAL (IFA_ADDRESS is the peer's on a
                // point-to-point link); IPv6 has IFA_ADDRESS only.
                let addr = a.attributes.iter().find_map(|at| match at {
                    AddressAttribute::Local(x) if x.is_ipv4() => Some(*x),
                    _ => None,
                });
                let addr = addr.or_else(|| {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(x) => Some(*x),
                        _ => None,
                    })
                });
                let Some(addr) = addr else { continue };
                let change = AddrChange {
                    index: a.header.index,
                    addr,
                    deleted,
                };
                if tx.send(change).is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

fn link_name(l: &LinkMessage) -> Option<String> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

pub fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

// ===== routes =====

fn route_message(
    r: &route::VirtualRoute,
    oif: Option<u32>,
) -> Result<netlink_packet_route::route::RouteMessage, NetlinkError> {
    use netlink_packet_route::route::{RouteFlags, RouteProtocol, RouteScope, RouteType};
    use rtnetlink::RouteMessageBuilder;
    let invalid = |e: &dyn std::fmt::Display| NetlinkError::Route(e.to_string());
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(r.dest, r.prefix)
        .map_err(|e| invalid(&e))?;
    if let Some(g) = r.gateway {
        b = b.gateway(g).map_err(|e| invalid(&e))?;
    }
    if let Some(s) = r.src {
        b = b.pref_source(s).map_err(|e| invalid(&e))?;
    }
    if let Some(i) = oif {
        b = b.output_interface(i);
    }
    if let Some(t) = r.table {
        b = b.table_id(t);
    }
    if let Some(m) = r.metric {
        b = b.priority(m);
    }
    b = b.protocol(RouteProtocol::from(r.protocol.unwrap_or(4)));
    if let Some(s) = &r.scope {
        b = b.scope(match scope(s)? {
            AddressScope::Universe => RouteScope::Universe,
            AddressScope::Site => RouteScope::Site,
            AddressScope::Link => RouteScope::Link,
            AddressScope::Host => RouteScope::Host,
            AddressScope::Nowhere => RouteScope::NoWhere,
            AddressScope::Other(n) => RouteScope::from(n),
            _ => RouteScope::Universe,
        });
    } else if r.gateway.is_none() && r.kind == route::RouteKind::Unicast {
        // `ip route add DEST dev IF` without a gateway is a link-scope route.
        b = b.scope(RouteScope::Link);
    }
    b = b.kind(match r.kind {
        route::RouteKind::Unicast => RouteType::Unicast,
        route::RouteKind::Blackhole => RouteType::BlackHole,
        route::RouteKind::Unreachable => RouteType::Unreachable,
        route::RouteKind::Prohibit => RouteType::Prohibit,
    });
    let mut m = b.build();
    if r.onlink {
        m.header.flags |= RouteFlags::Onlink;
    }
    Ok(m)
}

impl Netlink {
    /// Adds a virtual route (`oif`: the index of its `dev`); one already there is fine.
    pub async fn add_route(
        &self,
        r: &route::VirtualRoute,
        oif: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let msg = route_message(r, oif)?;
        match self.handle.route().add(msg).execute().await {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            res => res.map_err(request(format!("adding route {}/{}", r.dest, r.prefix))),
        }
    }

    /// Removes a virtual route; one already gone is fine.
    pub async fn del_route(
        &self,
        r: &route::VirtualRoute,
        oif: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let msg = route_message(r, oif)?;
        match self.handle.route().del(msg).execute().await {
            Err(e) if matches!(errno(&e), Some(libc::ESRCH | libc::ENOENT | libc::ENODEV)) => {
                Ok(())
            }
            res => res.map_err(request(format!("removing route {}/{}", r.dest, r.prefix))),
        }
    }
}

// ===== VMAC (use_vmac) =====

/// RFC 5798 §7.3: the virtual router MAC, 00-00-5E-00-01-{VRID} (IPv4) or 00-00-5E-00-02-{VRID}
/// (IPv6).
pub fn virtual_mac(vrid: u8, v6: bool) -> [u8; 6] {
    [0x00, 0x00, 0x5e, 0x00, if v6 { 0x02 } else { 0x01 }, vrid]
}

impl Netlink {
    /// keepalived's VMAC interface: a private-mode macvlan `name` on `base` with `mac`, created
    /// down so the caller can configure it before anything leaves it ([`Self::set_up`]). One
    /// left by an earlier run (same MAC) is reused; another interface of that name is an error.
    pub async fn ensure_vmac(
        &self,
        name: &str,
        base: &Link,
        mac: [u8; 6],
    ) -> Result<(Link, bool), NetlinkError> {
        match self.link(name).await {
            Ok(l) if l.mac == mac && l.parent == Some(base.index) => return Ok((l, false)),
            Ok(_) => {
                return Err(NetlinkError::Vmac(format!(
                    "interface {name} exists, but is not a VMAC {} on {}: give this instance's use_vmac another name",
                    mac_string(mac),
                    base.name
                )));
            }
            Err(NetlinkError::NoSuchLink(_)) => {}
            Err(e) => return Err(e),
        }
        let msg = rtnetlink::LinkMacVlan::new(
            name,
            base.index,
            netlink_packet_route::link::MacVlanMode::Private,
        )
        .address(mac.to_vec())
        .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(request(format!(
                "creating VMAC interface {name} on {}",
                base.name
            )))?;
        Ok((self.link(name).await?, true))
    }

    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = rtnetlink::LinkUnspec::new_with_index(index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(request(format!("setting interface {index} up")))
    }

    pub async fn delete_link(&self, index: u32) -> Result<(), NetlinkError> {
        match self.handle.link().del(index).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            r => r.map_err(request(format!("deleting interface {index}"))),
        }
    }
}

/// Reads `net/ipv4/conf/IF/NAME`.
pub fn get_sysctl(ifname: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{ifname}/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Writes `net/ipv4/conf/IF/NAME`.
pub fn set_sysctl(ifname: &str, name: &str, value: u32) -> std::io::Result<()> {
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{ifname}/{name}"),
        value.to_string(),
    )
}

/// `00:00:5e:00:01:33`.
pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

// ===== rules =====

fn rule_message(r: &rule::VirtualRule) -> netlink_packet_route::rule::RuleMessage {
    use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
    let mut m = RuleMessage::default();
    m.header.family = if r.v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    if let Some((a, len)) = r.from {
        m.header.src_len = len;
        m.attributes.push(RuleAttribute::Source(a));
    }
    if let Some((a, len)) = r.to {
        m.header.dst_len = len;
        m.attributes.push(RuleAttribute::Destination(a));
    }
    m.header.tos = r.tos.unwrap_or(0);
    m.header.action = match r.action {
        rule::RuleAction::Table(t) => {
            if t > 255 {
                m.attributes.push(RuleAttribute::Table(t));
            } else {
                m.header.table = t as u8;
            }
            RuleAction::ToTable
        }
        rule::RuleAction::Blackhole => RuleAction::Blackhole,
        rule::RuleAction::Unreachable => RuleAction::Unreachable,
        rule::RuleAction::Prohibit => RuleAction::Prohibit,
    };
    if let Some(p) = r.priority {
        m.attributes.push(RuleAttribute::Priority(p));
    }
    if let Some(f) = r.fwmark {
        m.attributes.push(RuleAttribute::FwMark(f));
    }
    if let Some(i) = &r.iif {
        m.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &r.oif {
        m.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    m
}

impl Netlink {
    /// Adds a virtual rule; one already there is fine.
    pub async fn add_rule(&self, r: &rule::VirtualRule) -> Result<(), NetlinkError> {
        let mut req = self.handle.rule().add();
        *req.message_mut() = rule_message(r);
        match req.execute().await {
            Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
            res => res.map_err(request(format!("adding rule {r:?}"))),
        }
    }

    /// Removes a virtual rule; one already gone is fine.
    pub async fn del_rule(&self, r: &rule::VirtualRule) -> Result<(), NetlinkError> {
        match self.handle.rule().del(rule_message(r)).execute().await {
            Err(e) if matches!(errno(&e), Some(libc::ENOENT | libc::ESRCH)) => Ok(()),
            res => res.map_err(request(format!("removing rule {r:?}"))),
        }
    }
}
