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
        let timeout = vs
            .persistence
            .map_or(0, |d| d.as_secs().min(u64::from(u32::MAX)) as u32);
        let mut flags = 0;
        if timeout > 0 {
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
        IpvsSvc {
            services: ids
                .map(|id| ipvs::Service {
                    id,
                    sched: vs.algo.name().to_string(),
                    flags,
                    timeout,
                    netmask,
                    // keepalived sends the engine with persistence only.
                    pe: vs.persistence_engine.clone().filter(|_| timeout > 0),
                })
                .collect(),
        }
    }

    /// Enters each service, or sets what an existing one (an earlier run's, or the one a
    /// reload replaces) schedules with. All or none: when one cannot be, those this call
    /// added are taken out again.
    pub fn enter(&self, ipvs: &Ipvs, name: &str) -> bool {
        let there = match ipvs.services() {
            Ok(list) => list,
            Err(e) => {
                warn!("VS {name}: {e}");
                return false;
            }
        };
        let mut added = Vec::new();
        for s in &self.services {
            let exists = there.iter().any(|t| t.id == s.id);
            if let Err(e) = ipvs.put_service(s, exists) {
                warn!("VS {name}: {e}");
                for id in &added {
                    let _ = ipvs.del_service(id);
                }
                return false;
            }
            if !exists {
                added.push(s.id);
            }
        }
        true
    }

    /// One of its services that `other` has too.
    pub fn shared_with(&self, other: &IpvsSvc) -> Option<ServiceId> {
        self.services
            .iter()
            .find(|s| other.services.iter().any(|o| o.id == s.id))
            .map(|s| s.id)
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
    /// A service run by IPVS, with its servers' states (it has no places in the maps);
    /// quorum as keepalived's set_quorum_states finds it.
    pub(super) fn of_ipvs(
        (vs, entry): (model::VirtualService, IpvsSvc),
        reals: Vec<RealState>,
        sorry: Option<RealState>,
        gate: Option<tokio::sync::watch::Sender<bool>>,
    ) -> Svc {
        let live: u64 = reals
            .iter()
            .filter(|r| r.alive)
            .map(|r| u64::from(r.weight))
            .sum();
        Svc {
            keys: Vec::new(),
            entries: Vec::new(),
            id: 0,
            bases: [0, 0],
            half: 0,
            reals,
            serving: Vec::new(),
            sorry,
            quorum_up: live >= vs.quorum + vs.hysteresis,
            gate,
            spare: false,
            ipvs: Some(entry),
            vs,
        }
    }

    /// What IPVS holds for the service now, as keepalived keeps it: each live server at its
    /// weight (IPVS gives a weight 0 server no new connections), a down one at weight 0 under
    /// `inhibit_on_failure` and else out. While quorum is lost with a sorry server, the live
    /// servers are taken out ("Removing alive servers from the pool") and the sorry server is
    /// in at weight 1; while quorum holds, it is out, or in at weight 0 under
    /// `sorry_server_inhibit`.
    pub(super) fn ipvs_dests(&self) -> Vec<(u32, Dest)> {
        let vs = &self.vs;
        let sorry_mode = self.sorry.is_some() && !self.quorum_up;
        let mut out: Vec<(u32, Dest)> = self
            .reals
            .iter()
            .zip(&vs.reals)
            .filter(|(r, real)| {
                if sorry_mode {
                    !r.alive && real.inhibit_on_failure
                } else {
                    r.alive || real.inhibit_on_failure
                }
            })
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
            .collect();
        if let (Some(s), Some((addr, port))) = (&self.sorry, vs.sorry)
            && (sorry_mode || vs.sorry_inhibit)
        {
            let d = dest(
                (addr, port),
                (vs.sorry_nat, vs.sorry_tun, vs.sorry_tun_flags),
                u32::from(sorry_mode),
            );
            out.push((s.index, d));
        }
        out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ReadOptions, validate::Unchecked};

    fn services(text: &str, backend: model::Backend) -> Vec<Result<model::VirtualService, String>> {
        let loaded = config::load_str(
            std::path::Path::new("/t/k.conf"),
            text.as_bytes(),
            &ReadOptions::default(),
            &Unchecked,
        );
        let c = &loaded.config;
        c.virtual_servers
            .iter()
            .map(|v| model::service(v, &c.virtual_server_groups, &c.track_files, backend))
            .collect()
    }

    fn ipvs_only(text: &str) -> model::VirtualService {
        let xdp = services(text, model::Backend::Xdp).remove(0);
        assert!(xdp.is_err(), "XDP runs it: {xdp:?}");
        services(text, model::Backend::Ipvs).remove(0).unwrap()
    }

    /// `virtual_server fwmark N`: one IPVS service of the mark, its family its servers',
    /// keepalived's `FWM N` name, the persistence flag and timeout, an all-ones netmask.
    #[test]
    fn a_fwmark_service_is_entered_as_a_mark() {
        let vs = ipvs_only(
            "virtual_server fwmark 7 {\n  lb_algo wrr\n  lb_kind DR\n  persistence_timeout 50\n  real_server 10.0.0.11 {\n    weight 2\n  }\n}\n",
        );
        assert_eq!(vs.name(), "FWM 7");
        let e = IpvsSvc::of(&vs);
        assert_eq!(
            e.services,
            [ipvs::Service {
                id: ServiceId::Fwmark { v6: false, mark: 7 },
                sched: "wrr".into(),
                flags: ipvs::SVC_F_PERSISTENT,
                timeout: 50,
                netmask: u32::MAX,
                pe: None,
            }]
        );
        // A DR server's port is cleared (keepalived's `[ADDR]:none:0`), its checker keeps the
        // one written.
        let vs = ipvs_only(
            "virtual_server fwmark 7 {\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.11 8080 {\n    TCP_CHECK {\n    }\n  }\n}\n",
        );
        let real = &vs.reals[0];
        assert_eq!(vs.real_name(real), "[10.0.0.11]:none:0");
        assert_eq!((real.port, real.checks[0].port), (0, 8080));
        let v6 = ipvs_only(
            "virtual_server fwmark 9 {\n  lb_kind DR\n  persistence_timeout\n  persistence_granularity 64\n  real_server 2001:db8::5 {\n  }\n}\n",
        );
        let e = IpvsSvc::of(&v6);
        assert_eq!(e.services[0].id, ServiceId::Fwmark { v6: true, mark: 9 });
        // keepalived's default persistence (6 minutes); IPv6's granularity a prefix length.
        assert_eq!((e.services[0].timeout, e.services[0].netmask), (360, 64));
    }

    /// A group's address entries and marks are each a service of their own.
    #[test]
    fn a_group_with_marks_is_a_service_per_entry() {
        let vs = ipvs_only(
            "virtual_server_group G {\n  10.0.0.100 80\n  fwmark 3\n}\nvirtual_server group G {\n  lb_algo sh\n  sh-port\n  sh-fallback\n  lb_kind DR\n  protocol TCP\n  real_server 10.0.0.11 80 {\n  }\n}\n",
        );
        let e = IpvsSvc::of(&vs);
        let ids: Vec<ServiceId> = e.services.iter().map(|s| s.id).collect();
        assert_eq!(
            ids,
            [
                ServiceId::Addr {
                    proto: 6,
                    addr: "10.0.0.100".parse().unwrap(),
                    port: 80
                },
                ServiceId::Fwmark { v6: false, mark: 3 }
            ]
        );
        assert_eq!(e.services[0].flags, ipvs::SVC_F_SCHED1 | ipvs::SVC_F_SCHED2);
        assert_eq!(e.services[0].sched, "sh");
    }

    /// keepalived's lbflags_handler: a flag counts against the scheduler written before it,
    /// `sh-*` under sh, `mh-*` under mh.
    #[test]
    fn scheduler_flags_follow_the_scheduler_written_before_them() {
        let flags = |body: &str| {
            let text = format!(
                "virtual_server fwmark 1 {{\n{body}\n  lb_kind DR\n  real_server 10.0.0.11 80 {{\n  }}\n}}\n"
            );
            IpvsSvc::of(&services(&text, model::Backend::Ipvs).remove(0).unwrap()).services[0].flags
        };
        assert_eq!(flags("  sh-port\n  lb_algo sh"), 0);
        assert_eq!(
            flags("  lb_algo sh\n  sh-port\n  mh-fallback"),
            ipvs::SVC_F_SCHED2
        );
        assert_eq!(
            flags("  lb_algo mh\n  mh-fallback\n  sh-port"),
            ipvs::SVC_F_SCHED1
        );
        assert_eq!(flags("  lb_algo rr\n  sh-port"), 0);
    }

    fn svc(text: &str) -> Svc {
        let vs = services(text, model::Backend::Ipvs).remove(0).unwrap();
        let reals = vs
            .reals
            .iter()
            .enumerate()
            .map(|(i, r)| real_state(i as u32, vec![true; r.checks.len()], r))
            .collect();
        let sorry = vs.sorry.map(|_| {
            let mut s = real_state(99, Vec::new(), &vs.reals[0]);
            s.weight = 1;
            s
        });
        let entry = IpvsSvc::of(&vs);
        Svc::of_ipvs((vs, entry), reals, sorry, None)
    }

    /// keepalived's pool: live servers at their weight with their thresholds, a down one at
    /// weight 0 under inhibit_on_failure and else out; quorum lost, the sorry server alone.
    #[test]
    fn destinations_follow_the_servers_states() {
        let mut s = svc(
            "virtual_server 10.0.0.100 80 {\n  lb_kind TUN type gue port 6080 csum\n  protocol TCP\n  sorry_server 10.0.0.99 80\n  real_server 10.0.0.11 80 {\n    weight 3\n    uthreshold 100\n    lthreshold 50\n  }\n  real_server 10.0.0.12 80 {\n    inhibit_on_failure\n  }\n  real_server 10.0.0.13 80 {\n  }\n}\n",
        );
        let d = s.ipvs_dests();
        assert_eq!(d.len(), 3);
        assert_eq!(
            (
                d[0].1.fwd,
                d[0].1.tun_type,
                d[0].1.tun_port,
                d[0].1.tun_flags
            ),
            (ipvs::FWD_TUNNEL, ipvs::TUN_GUE, 6080, 1)
        );
        assert_eq!(
            (d[0].1.weight, d[0].1.u_thresh, d[0].1.l_thresh),
            (3, 100, 50)
        );
        s.reals[1].alive = false;
        s.reals[2].alive = false;
        let d = s.ipvs_dests();
        let addrs: Vec<(String, u32)> = d
            .iter()
            .map(|(_, d)| (d.addr.unwrap().to_string(), d.weight))
            .collect();
        assert_eq!(addrs, [("10.0.0.11".into(), 3), ("10.0.0.12".into(), 0)]);
        s.quorum_up = false;
        let d: Vec<(u32, String, u32)> = s
            .ipvs_dests()
            .iter()
            .map(|(i, d)| (*i, d.addr.unwrap().to_string(), d.weight))
            .collect();
        // The live server out, the inhibited one kept at 0, the sorry server in.
        assert_eq!(d, [(1, "10.0.0.12".into(), 0), (99, "10.0.0.99".into(), 1)]);
        // sorry_server_inhibit: while quorum holds, the sorry server is in at weight 0.
        s.quorum_up = true;
        s.vs.sorry_inhibit = true;
        let d = s.ipvs_dests();
        assert_eq!((d.last().unwrap().0, d.last().unwrap().1.weight), (99, 0));
    }

    /// NAT keeps the server's own port; direct routing takes the service's.
    #[test]
    fn forwarding_methods() {
        let s = svc(
            "virtual_server 10.0.0.100 80 {\n  lb_kind NAT\n  protocol TCP\n  real_server 10.0.1.11 8080 {\n  }\n  real_server 10.0.0.12 8080 {\n    lvs_method DR\n  }\n}\n",
        );
        let d: Vec<(u32, u16)> = s
            .ipvs_dests()
            .iter()
            .map(|(_, d)| (d.fwd, d.port))
            .collect();
        assert_eq!(d, [(ipvs::FWD_MASQ, 8080), (ipvs::FWD_DROUTE, 80)]);
    }
}
