//! A parsed `vrrp_instance` (with `global_defs`) translated into the state machine's
//! [`Params`], with keepalived's precedence: instance keyword, else global default.

use std::{net::IpAddr, time::Duration};

use thiserror::Error;

use super::{
    instance::{GarpSchedule, Params, Peer},
    packet::{Auth, Version},
};
use crate::config::model::{self, GlobalDefs, Instance, State};

#[derive(Debug, Error, PartialEq)]
pub enum ParamsError {
    #[error("({0}) has no virtual_router_id")]
    NoVrid(String),
    #[error("({0}) has no interface")]
    NoInterface(String),
    #[error(
        "({0}) uses IPsec AH authentication, which vrrp-agent does not implement (keepalived deprecated it; use PASS or VRRPv3)"
    )]
    Ah(String),
    #[error("({name}) advert_int {cs} cs is out of range for VRRPv{version}")]
    Interval { name: String, cs: u32, version: u8 },
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

impl Params {
    pub fn from_config(i: &Instance, g: &GlobalDefs) -> Result<Params, ParamsError> {
        let name = i.name.clone();
        let vrid = i
            .virtual_router_id
            .ok_or_else(|| ParamsError::NoVrid(name.clone()))?;
        if i.interface.is_none() {
            return Err(ParamsError::NoInterface(name));
        }
        let version = if i.version == 3 {
            Version::V3
        } else {
            Version::V2
        };
        let advert_int_cs = u16::try_from(i.advert_int_cs)
            .ok()
            .filter(|cs| match version {
                Version::V2 => (100..=25500).contains(cs) && cs % 100 == 0,
                Version::V3 => (1..=4095).contains(cs),
            })
            .ok_or_else(|| ParamsError::Interval {
                name: name.clone(),
                cs: i.advert_int_cs,
                version: i.version,
            })?;
        let auth = match (&i.auth, version) {
            (_, Version::V3) | (model::Auth::None, _) => Auth::None,
            (model::Auth::Pass(p), Version::V2) => {
                let mut key = [0u8; 8];
                let n = p.len().min(8);
                key[..n].copy_from_slice(&p.as_bytes()[..n]);
                Auth::Pass(key)
            }
            (model::Auth::Ah(_), Version::V2) => return Err(ParamsError::Ah(name)),
        };
        let family_v6 = i
            .virtual_ipaddress
            .first()
            .is_some_and(|v| v.addr.is_ipv6());
        let addrs: Vec<IpAddr> = i
            .virtual_ipaddress
            .iter()
            .map(|v| v.addr)
            .filter(|a| a.is_ipv6() == family_v6)
            .collect();
        let garp_delay = i.garp_master_delay.unwrap_or(g.vrrp_garp_master_delay);
        let garp_repeat = i.garp_master_repeat.unwrap_or(g.vrrp_garp_master_repeat);
        let garp = GarpSchedule {
            repeat: garp_repeat,
            delay: secs(garp_delay),
            refresh: secs(i.garp_master_refresh.unwrap_or(g.vrrp_garp_master_refresh)),
            refresh_repeat: i
                .garp_master_refresh_repeat
                .unwrap_or(g.vrrp_garp_master_refresh_repeat),
            // keepalived: unset lower-priority values follow the master ones.
            lower_prio_repeat: i
                .garp_lower_prio_repeat
                .or(g.vrrp_garp_lower_prio_repeat)
                .unwrap_or(garp_repeat),
            lower_prio_delay: secs(
                i.garp_lower_prio_delay
                    .or(g.vrrp_garp_lower_prio_delay)
                    .unwrap_or(garp_delay),
            ),
        };
        Ok(Params {
            name,
            vrid,
            version,
            priority: i.priority,
            advert_int_cs,
            down_timer_adverts: i.down_timer_adverts.unwrap_or(g.vrrp_down_timer_adverts),
            want_master: i.state == State::Master,
            nopreempt: i.nopreempt,
            preempt_delay: Duration::from_secs_f64(i.preempt_delay.max(0.0)),
            addrs,
            auth,
            unicast: !i.unicast_peers.is_empty(),
            peers: i
                .unicast_peers
                .iter()
                .map(|p| Peer {
                    addr: p.addr,
                    min_ttl: p.min_ttl.unwrap_or(0),
                    max_ttl: p.max_ttl.unwrap_or(255),
                })
                .collect(),
            check_unicast_src: i.check_unicast_src || g.vrrp_check_unicast_src,
            allowed_peers: i.allowed_peers.clone(),
            lower_prio_no_advert: i
                .lower_prio_no_advert
                .unwrap_or(g.vrrp_lower_prio_no_advert),
            higher_prio_send_advert: i
                .higher_prio_send_advert
                .unwrap_or(g.vrrp_higher_prio_send_advert),
            skip_check_adv_addr: i.skip_check_adv_addr.unwrap_or(g.vrrp_skip_check_adv_addr),
            garp,
            // Set by the runtime, which sees the sync groups.
            sync_group: false,
        })
    }

    pub fn is_ipv6(&self) -> bool {
        self.addrs.first().is_some_and(IpAddr::is_ipv6)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ReadOptions, load_str, validate::Unchecked};

    fn params(text: &str) -> Result<Params, ParamsError> {
        let loaded = load_str(
            Path::new("t.conf"),
            text.as_bytes(),
            &ReadOptions::default(),
            &Unchecked,
        );
        let c = &loaded.config;
        Params::from_config(&c.instances[0], &c.global)
    }

    #[test]
    fn seed_hot_standby_master() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/configs/hot-standby-master.conf"
        ))
        .unwrap();
        let p = params(&text).unwrap();
        assert_eq!(p.vrid, 51);
        assert_eq!(p.version, Version::V2);
        assert_eq!(p.priority, 100);
        assert!(p.want_master);
        assert_eq!(p.advert_int_cs, 100);
        assert_eq!(p.auth, Auth::Pass(*b"1111\0\0\0\0"));
        assert_eq!(p.addrs.len(), 3);
        assert_eq!(p.garp, GarpSchedule::default());
    }

    #[test]
    fn globals_apply_unless_the_instance_says_otherwise() {
        let p = params(
            "global_defs {\n vrrp_garp_master_repeat 2\n vrrp_garp_master_delay 1\n vrrp_lower_prio_no_advert\n vrrp_version 3\n}\n\
             vrrp_instance V {\n interface eth0\n virtual_router_id 9\n advert_int 0.01\n garp_master_delay 0\n\
             virtual_ipaddress {\n 10.0.0.9/24\n }\n}\n",
        )
        .unwrap();
        assert_eq!(p.version, Version::V3);
        assert_eq!(p.advert_int_cs, 1);
        assert_eq!(p.garp.repeat, 2);
        assert_eq!(p.garp.delay, Duration::ZERO);
        assert_eq!(p.garp.lower_prio_repeat, 2);
        assert!(p.lower_prio_no_advert);
    }
}
