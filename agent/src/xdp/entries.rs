//! What the XDP maps hold for a configured instance: the parsed configuration translated into
//! the kernel's VRID entries (filled when the agent attaches to an interface).

use agent_common::{
    FAMILY_V4, FAMILY_V6, VRID_ALLOW_V2, VRID_ALLOW_V3, VRID_AUTH_PASS, VRID_CHECK_SRC,
    VRID_CHECK_TTL, VRID_V3_CHECKSUM_AS_V2, VridConfig, VridKey,
};

use crate::config::model::{Auth, GlobalDefs, Instance};

/// The VRID entry of `instance` on interface `ifindex`, or None while it has no VRID.
///
/// - The version it accepts is its own (keepalived does not mix versions on one instance).
/// - TTL / hop limit 255 is required of multicast adverts (RFC 5798 §7.1); unicast instances
///   accept any TTL, as keepalived does.
/// - `v3_checksum_as_v2` peers compute the v3 checksum without the pseudo-header.
/// - v2 PASS authentication carries the password; AH adverts travel inside IPsec and do not
///   reach this check.
/// - Named peers ([`peer_addrs`]): adverts from anyone else are dropped.
pub fn vrid_entry(
    instance: &Instance,
    global: &GlobalDefs,
    ifindex: u32,
) -> Option<(VridKey, VridConfig)> {
    let vrid = instance.virtual_router_id?;
    let v6 = instance
        .virtual_ipaddress
        .first()
        .is_some_and(|v| v.addr.is_ipv6());
    let key = VridKey {
        ifindex,
        vlan: 0,
        vrid,
        family: if v6 { FAMILY_V6 } else { FAMILY_V4 },
    };
    let mut config = VridConfig::default();
    config.flags |= if instance.version == 2 {
        VRID_ALLOW_V2
    } else {
        VRID_ALLOW_V3
    };
    if instance.unicast_peers.is_empty() {
        config.flags |= VRID_CHECK_TTL;
    }
    if instance.v3_checksum_as_v2 {
        config.flags |= VRID_V3_CHECKSUM_AS_V2;
    }
    if !peer_addrs(instance, global).is_empty() {
        config.flags |= VRID_CHECK_SRC;
    }
    if let Auth::Pass(pass) = &instance.auth {
        config.flags |= VRID_AUTH_PASS;
        let bytes = pass.as_bytes();
        let n = bytes.len().min(config.auth_pass.len());
        config.auth_pass[..n].copy_from_slice(&bytes[..n]);
    }
    Some((key, config))
}

/// The sources the VRID accepts adverts from, as the peers map holds them: the unicast peers
/// with `check_unicast_src` (instance or global, as keepalived checks them), or vrrp-agent's
/// `allowed_peers` for a multicast instance. Empty: any source.
pub fn peer_addrs(instance: &Instance, global: &GlobalDefs) -> Vec<[u8; 16]> {
    let addrs: Vec<std::net::IpAddr> = if instance.unicast_peers.is_empty() {
        instance.allowed_peers.clone()
    } else if instance.check_unicast_src || global.vrrp_check_unicast_src {
        instance.unicast_peers.iter().map(|p| p.addr).collect()
    } else {
        Vec::new()
    };
    addrs
        .into_iter()
        .map(|a| match a {
            std::net::IpAddr::V4(v4) => {
                let mut b = [0u8; 16];
                b[..4].copy_from_slice(&v4.octets());
                b
            }
            std::net::IpAddr::V6(v6) => v6.octets(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ReadOptions, load_str, validate::Unchecked};

    fn instance(text: &str) -> Instance {
        let opts = ReadOptions {
            config_id: "t".into(),
            follow_includes: true,
        };
        let loaded = load_str(Path::new("/t/k.conf"), text.as_bytes(), &opts, &Unchecked);
        loaded
            .config
            .instances
            .into_iter()
            .next()
            .expect("one instance")
    }

    #[test]
    fn the_seed_hot_standby_instance() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/configs/seed-hot-standby-master.conf"
        ))
        .unwrap();
        let (key, config) = vrid_entry(&instance(&text), &GlobalDefs::default(), 7).unwrap();
        assert_eq!(
            key,
            VridKey {
                ifindex: 7,
                vlan: 0,
                vrid: 51,
                family: FAMILY_V4
            }
        );
        assert_eq!(
            config.flags,
            VRID_ALLOW_V2 | VRID_CHECK_TTL | VRID_AUTH_PASS
        );
        assert_eq!(&config.auth_pass, b"1111\0\0\0\0");
    }

    #[test]
    fn v3_ipv6_unicast_and_checksum_as_v2() {
        let base = "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n";
        let v6 = instance(&format!("{base} virtual_ipaddress {{\n fd00::1\n }}\n}}\n"));
        let (key, config) = vrid_entry(&v6, &GlobalDefs::default(), 1).unwrap();
        assert_eq!(
            (key.family, config.flags),
            (FAMILY_V6, VRID_ALLOW_V3 | VRID_CHECK_TTL)
        );
        let unicast = instance(&format!(
            "{base} version 3\n v3_checksum_as_v2\n unicast_peer {{\n 10.0.0.2\n }}\n virtual_ipaddress {{\n 10.0.0.9\n }}\n}}\n"
        ));
        let (_, config) = vrid_entry(&unicast, &GlobalDefs::default(), 1).unwrap();
        assert_eq!(config.flags, VRID_ALLOW_V3 | VRID_V3_CHECKSUM_AS_V2);
    }

    #[test]
    fn named_peers_are_the_only_sources() {
        let base = "vrrp_instance V {\n interface eth0\n virtual_router_id 9\n virtual_ipaddress {\n 10.0.0.9\n }\n";
        let g = GlobalDefs::default();
        let unicast = instance(&format!("{base} unicast_peer {{\n 10.0.0.2\n }}\n}}\n"));
        // Unicast peers are checked only with check_unicast_src (instance or global).
        assert!(peer_addrs(&unicast, &g).is_empty());
        let checked = GlobalDefs {
            vrrp_check_unicast_src: true,
            ..GlobalDefs::default()
        };
        let mut want = [0u8; 16];
        want[..4].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(peer_addrs(&unicast, &checked), vec![want]);
        let (_, config) = vrid_entry(&unicast, &checked, 1).unwrap();
        assert_ne!(config.flags & VRID_CHECK_SRC, 0);
        let allowed = instance(&format!("{base} allowed_peers 10.0.0.2\n}}\n"));
        assert_eq!(peer_addrs(&allowed, &g), vec![want]);
        let (_, config) = vrid_entry(&allowed, &g, 1).unwrap();
        assert_eq!(
            config.flags,
            VRID_ALLOW_V2 | VRID_CHECK_TTL | VRID_CHECK_SRC
        );
    }

    #[test]
    fn no_vrid_no_entry() {
        let text = "vrrp_instance V {\n interface eth0\n virtual_ipaddress {\n 10.0.0.9\n }\n}\n";
        assert_eq!(vrid_entry(&instance(text), &GlobalDefs::default(), 1), None);
    }
}
