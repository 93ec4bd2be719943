//! A LAN in network namespaces: one namespace holds a bridge, each host is a namespace with
//! veth interfaces plugged into it. Names are unique per process and lab, so tests run in
//! parallel; everything is removed when the [`Lab`] drops, also when a test panics. Labs left
//! behind by a killed test process are removed by the next lab created.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Result;

use crate::netns::{self, Netns};

/// Every namespace a lab creates starts with this, followed by the creating process's pid.
const PREFIX: &str = "vt";

/// The bridge every host is plugged into: the LAN.
pub const LAN_BRIDGE: &str = "br0";

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

pub struct Lab {
    prefix: String,
    /// Hosts first, so their processes die before the LAN goes.
    hosts: Vec<Host>,
    lan: Netns,
    next_port: u32,
    /// The bridges in the LAN namespace: [`LAN_BRIDGE`], the LAN every host is on, then any other
    /// segment made by [`Lab::add_interface_on`].
    segments: Vec<String>,
}

pub struct Host {
    pub name: String,
    pub ns: Netns,
    /// (interface in the host, bridge port in the LAN namespace).
    ports: Vec<(String, String)>,
}

impl Lab {
    /// A new empty LAN (a bridge with no STP, no forwarding delay, no multicast snooping).
    pub fn new() -> Result<Lab> {
        remove_stale();
        let prefix = format!(
            "{PREFIX}-{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let lan = Netns::create(&format!("{prefix}-lan"))?;
        add_bridge(&lan, LAN_BRIDGE)?;
        Ok(Lab {
            prefix,
            hosts: Vec::new(),
            lan,
            next_port: 0,
            segments: vec![LAN_BRIDGE.to_string()],
        })
    }

    pub fn lan(&self) -> &Netns {
        &self.lan
    }

    /// Adds host `name` with interface `iface` (MAC `mac`, address `cidr`, e.g.
    /// "10.0.0.1/24") plugged into the LAN.
    pub fn add_host(&mut self, name: &str, iface: &str, mac: [u8; 6], cidr: &str) -> Result<&Host> {
        let ns = Netns::create(&format!("{}-{name}", self.prefix))?;
        // No duplicate address detection: IPv6 link-local addresses are usable at once (a
        // tentative address cannot be bound to send VRRPv3 from).
        ns.output(&[
            "sh",
            "-c",
            "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad; echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad",
        ])?;
        let mut host = Host {
            name: name.to_string(),
            ns,
            ports: Vec::new(),
        };
        self.plug(&mut host, iface, mac, Some(cidr), LAN_BRIDGE)?;
        self.hosts.push(host);
        Ok(self.hosts.last().expect("just pushed"))
    }

    /// Plugs another interface of host `name` into the LAN.
    pub fn add_interface(
        &mut self,
        name: &str,
        iface: &str,
        mac: [u8; 6],
        cidr: &str,
    ) -> Result<()> {
        self.add_interface_on(name, iface, mac, cidr, LAN_BRIDGE)
    }

    /// Plugs another interface of host `name` into segment `bridge`: [`LAN_BRIDGE`] is the LAN, any
    /// other name a separate broadcast domain (a bridge of its own in the LAN namespace, made
    /// by the first interface plugged into it).
    pub fn add_interface_on(
        &mut self,
        name: &str,
        iface: &str,
        mac: [u8; 6],
        cidr: &str,
        bridge: &str,
    ) -> Result<()> {
        if !self.segments.iter().any(|b| b == bridge) {
            add_bridge(&self.lan, bridge)?;
            self.segments.push(bridge.to_string());
        }
        let k = self
            .hosts
            .iter()
            .position(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the lab"));
        let mut host = self.hosts.remove(k);
        let r = self.plug(&mut host, iface, mac, Some(cidr), bridge);
        self.hosts.insert(k, host);
        r
    }

    fn plug(
        &mut self,
        host: &mut Host,
        iface: &str,
        mac: [u8; 6],
        cidr: Option<&str>,
        bridge: &str,
    ) -> Result<()> {
        let port = format!("p{}", self.next_port);
        self.next_port += 1;
        self.lan.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            iface,
            "netns",
            host.ns.name(),
        ])?;
        host.ns
            .ip(&["link", "set", iface, "address", &mac_string(mac)])?;
        if let Some(cidr) = cidr {
            // nodad: addresses are usable at once, no duplicate-address-detection wait.
            host.ns.ip(&["addr", "add", cidr, "dev", iface])?;
        }
        host.ns.ip(&["link", "set", iface, "up"])?;
        self.lan.ip(&["link", "set", &port, "master", bridge])?;
        self.lan.ip(&["link", "set", &port, "up"])?;
        host.ports.push((iface.to_string(), port));
        Ok(())
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the lab"))
    }

    /// The bridge port (in the LAN namespace) that host `name`'s `iface` is plugged into (the
    /// latest, if it was deleted and plugged in again).
    pub fn port_of(&self, name: &str, iface: &str) -> &str {
        self.host(name)
            .ports
            .iter()
            .rev()
            .find(|(i, _)| i == iface)
            .map(|(_, p)| p.as_str())
            .unwrap_or_else(|| panic!("host {name} has no interface {iface}"))
    }

    /// The prefix shared by every namespace of this lab.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A bridge with no STP, no forwarding delay and no multicast snooping (every port sees every
/// multicast frame, as on a plain switch).
fn add_bridge(lan: &Netns, name: &str) -> Result<()> {
    lan.ip(&[
        "link",
        "add",
        name,
        "type",
        "bridge",
        "stp_state",
        "0",
        "forward_delay",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    lan.ip(&["link", "set", name, "up"])?;
    Ok(())
}

pub fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Removes namespaces of labs whose creating process no longer exists.
fn remove_stale() {
    for name in netns::list() {
        let Some(rest) = name.strip_prefix(&format!("{PREFIX}-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        drop(Netns::adopt(&name));
    }
}
