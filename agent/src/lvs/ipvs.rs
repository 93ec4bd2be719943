//! The balancer's IPVS backend: a virtual server entered into the kernel's IPVS (as
//! keepalived's ipwrapper does), its destinations following its checkers. Used for what the
//! XDP balancer cannot run (`fwmark` services and groups, tunnels with checksums, IPv6 through
//! tunnels) where the kernel has IPVS, or for every virtual server under `--lvs-backend ipvs`.

use std::net::IpAddr;

use log::warn;

use super::{RealState, Svc, model};
use crate::netlink::ipvs::{self, Dest, Ipvs, ServiceId};

/// A virtual server's IPVS services: one per address (each of a group's) and per mark, all
/// with the same scheduler, persistence and destinations.
pub(super) struct IpvsSvc {
    pub services: Vec<ipvs::Service>,
}

impl IpvsSvc {
    pub fn of(vs: &model::VirtualService) -> IpvsSvc {
        let v6 = vs.addr.is_ipv6();
        let ids = vs
            .entries
            .iter()
            .map(|&(addr, port)| ServiceId::Addr {
                proto: vs.proto.number(),
                addr,
                port,
            })
            .chain(
                vs.fwmarks
                    .iter()
                    .map(|&mark| ServiceId::Fwmark { v6, mark }),
            );
        let mut flags = 0;
        if vs.persistence.is_some() {
            flags |= ipvs::SVC_F_PERSISTENT;
        }
        if vs.ops {
            flags |= ipvs::SVC_F_ONEPACKET;
        }
        // keepalived's sh-fallback / mh-fallback and sh-port / mh-port.
        if vs.hash_fallback {
            flags |= ipvs::SVC_F_SCHED1;
        }
        if vs.hash_port {
            flags |= ipvs::SVC_F_SCHED2;
        }
        // IPVS's netmask: an IPv4 mask as its bytes, an IPv6 prefix length.
        let netmask = match vs.persist_mask {
            IpAddr::V4(m) => u32::from_ne_bytes(m.octets()),
            IpAddr::V6(m) => u128::from(m).count_ones(),
        };
        let timeout = vs
            .persistence
            .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32);
        IpvsSvc {
            services: ids
                .map(|id| ipvs::Service {
                    id,
                    sched: vs.algo.name().to_string(),
                    flags,
                    timeout,
                    netmask,
                    pe: vs.persistence_engine.clone(),
                })
                .collect(),
        }
    }

    /// Enters each service, or sets what an existing one (an earlier run's, or the one a
    /// reload replaces) schedules with.
    pub fn enter(&self, ipvs: &Ipvs, name: &str) -> bool {
        let there = match ipvs.services() {
            Ok(list) => list,
            Err(e) => {
                warn!("VS {name}: {e}");
                return false;
            }
        };
        let mut ok = true;
        for s in &self.services {
            let exists = there.iter().any(|t| t.id == s.id);
            if let Err(e) = ipvs.put_service(s, exists) {
                warn!("VS {name}: {e}");
                ok = false;
            }
        }
        ok
    }
}

/// How a server is entered: its forwarding method and tunnel.
fn dest(
    (addr, port): (IpAddr, u16),
    (nat, tunnel, tun_flags): (bool, Option<model::Tunnel>, u16),
    weight: u32,
) -> Dest {
    let (fwd, tun_type, tun_port) = match (nat, tunnel) {
        (true, _) => (ipvs::FWD_MASQ, 0, 0),
        (false, Some(model::Tunnel::Ipip)) => (ipvs::FWD_TUNNEL, ipvs::TUN_IPIP, 0),
        (false, Some(model::Tunnel::Gue(p))) => (ipvs::FWD_TUNNEL, ipvs::TUN_GUE, p),
        (false, Some(model::Tunnel::Gre)) => (ipvs::FWD_TUNNEL, ipvs::TUN_GRE, 0),
        (false, None) => (ipvs::FWD_DROUTE, 0, 0),
    };
    Dest {
        addr: Some(addr),
        port,
        fwd,
        weight,
        tun_type,
        tun_port,
        tun_flags: if fwd == ipvs::FWD_TUNNEL {
            tun_flags
        } else {
            0
        },
        ..Default::default()
    }
}

impl Svc {
    /// What IPVS holds for the service now, as keepalived keeps it: each live server at its
    /// weight (IPVS gives a weight 0 server no new connections), a down one at weight 0 under
    /// `inhibit_on_failure` and else out; while quorum is lost with a sorry server, the sorry
    /// server alone.
    pub(super) fn ipvs_dests(&self) -> Vec<(u32, Dest)> {
        let vs = &self.vs;
        if let (Some(s), Some((addr, port)), false) = (&self.sorry, vs.sorry, self.quorum_up) {
            let d = dest(
                (addr, port),
                (vs.sorry_nat, vs.sorry_tun, vs.sorry_tun_flags),
                1,
            );
            return vec![(s.index, d)];
        }
        self.reals
            .iter()
            .zip(&vs.reals)
            .filter(|(r, real)| r.alive || real.inhibit_on_failure)
            .map(|(r, real)| {
                let mut d = dest(
                    (real.addr, real.port),
                    (real.nat, real.tun, real.tun_flags),
                    if r.alive { r.weight } else { 0 },
                );
                d.u_thresh = real.uthreshold;
                d.l_thresh = real.lthreshold;
                (r.index, d)
            })
            .collect()
    }

    /// Makes each of its IPVS services hold [`Self::ipvs_dests`]: what is missing added, what
    /// differs changed, what is not wanted (a removed server, another program's) removed.
    pub(super) fn publish_ipvs(&mut self, ipvs: &Ipvs) {
        let Some(entry) = &self.ipvs else { return };
        let wanted = self.ipvs_dests();
        let name = self.vs.name();
        for s in &entry.services {
            let there = match ipvs.dests(&s.id) {
                Ok(d) => d,
                Err(e) => {
                    warn!("VS {name}: {e}");
                    continue;
                }
            };
            let key = |d: &Dest| (d.addr, d.port);
            for d in there
                .iter()
                .filter(|t| !wanted.iter().any(|(_, w)| key(w) == key(t)))
            {
                if let Err(e) = ipvs.del_dest(&s.id, d) {
                    warn!("VS {name}: {e}");
                }
            }
            for (_, w) in &wanted {
                let found = there.iter().find(|t| key(t) == key(w));
                if found.is_some_and(|t| t.same_entry(w)) {
                    continue;
                }
                if let Err(e) = ipvs.put_dest(&s.id, w, found.is_none()) {
                    warn!("VS {name}: {e}");
                }
            }
        }
        let serving: Vec<u32> = wanted
            .iter()
            .filter(|(_, d)| d.weight > 0)
            .map(|(i, _)| *i)
            .collect();
        if serving.is_empty() && !self.serving.is_empty() {
            warn!("No real server left to serve VS {name}");
        }
        for r in self.reals.iter_mut().chain(self.sorry.iter_mut()) {
            r.entered_up = wanted.iter().any(|(i, _)| *i == r.index);
        }
        self.serving = serving;
    }

    /// Takes its services out of IPVS (their connections end with them).
    pub(super) fn remove_ipvs(&self, ipvs: &Ipvs, keep: impl Fn(&ServiceId) -> bool) {
        let Some(entry) = &self.ipvs else { return };
        for s in entry.services.iter().filter(|s| !keep(&s.id)) {
            if let Err(e) = ipvs.del_service(&s.id) {
                warn!("VS {}: {e}", self.vs.name());
            }
        }
    }

    /// Each server's IPVS counters, by its index (the first service's of a group).
    pub(super) fn ipvs_counts(&self, ipvs: &Ipvs) -> Vec<(u32, ipvs::DestCounts)> {
        let Some(entry) = &self.ipvs else {
            return Vec::new();
        };
        let wanted = self.ipvs_dests();
        let mut out: Vec<(u32, ipvs::DestCounts)> = Vec::new();
        for s in &entry.services {
            for d in ipvs.dests(&s.id).unwrap_or_default() {
                let Some((i, _)) = wanted
                    .iter()
                    .find(|(_, w)| (w.addr, w.port) == (d.addr, d.port))
                else {
                    continue;
                };
                match out.iter_mut().find(|(k, _)| k == i) {
                    Some((_, c)) => {
                        c.active += d.counts.active;
                        c.inactive += d.counts.inactive;
                        c.conns += d.counts.conns;
                        c.in_packets += d.counts.in_packets;
                        c.out_packets += d.counts.out_packets;
                        c.in_bytes += d.counts.in_bytes;
                        c.out_bytes += d.counts.out_bytes;
                    }
                    None => out.push((*i, d.counts)),
                }
            }
        }
        out
    }
}

/// A server's state for an IPVS service: it has no place in the XDP maps, only an index
/// its checkers report under.
pub(super) fn real_state(index: u32, checks_up: Vec<bool>, real: &model::RealServer) -> RealState {
    RealState {
        index,
        fresh_since: None,
        alive: checks_up.iter().all(|u| *u),
        checks_share: vec![0; checks_up.len()],
        checks_up,
        weight: real.weight,
        conns: 0,
        expired: 0,
        entered_up: false,
        path: None,
        nat_port: real.nat.then_some(real.port),
        tunnel: real.tun,
        overloaded: false,
    }
}
