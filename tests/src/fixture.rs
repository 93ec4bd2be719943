//! The XDP program configured as the fixture tables and benchmarks expect: which VRIDs accept
//! what, and which VIPs are armed. Keys use the loopback's ifindex: BPF_PROG_TEST_RUN runs the
//! program as if frames came in on the namespace's `lo`.

use std::net::{IpAddr, Ipv4Addr};

use agent_common::{
    FAMILY_V4, FAMILY_V6, IFACE_FILTER_ARMED, IfaceConfig, VRID_ALLOW_V2, VRID_ALLOW_V3,
    VRID_AUTH_PASS, VRID_CHECK_SRC, VRID_CHECK_TTL, VRID_V3_CHECKSUM_AS_V2, VipKey, VipValue,
    VridConfig, VridKey,
};
use vrrp_agent::xdp::XdpProgram;

use crate::frames::Wire;

pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const VMAC_51: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub const VLAN_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 20);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
pub const PASS: &str = "1111";

pub fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pass8(p: &str) -> [u8; 8] {
    let mut a = [0u8; 8];
    a[..p.len()].copy_from_slice(p.as_bytes());
    a
}

/// The program with the fixture configuration: what each VRID accepts, one VIP untagged and
/// one on VLAN 100, the unknown-VRID filter as given.
pub fn program(filter_armed: bool) -> (XdpProgram, u32) {
    let mut xdp = XdpProgram::load().expect("load XDP object (root?)");
    let lo = vrrp_agent::xdp::ifindex("lo").unwrap();
    let key = |vrid, family, vlan| VridKey {
        ifindex: lo,
        vlan,
        vrid,
        family,
    };
    let cfg = |flags, pass: &str| VridConfig {
        flags,
        _pad: 0,
        auth_pass: pass8(pass),
    };
    let m = &mut xdp.maps;
    // keepalived's hot-standby seed: v2, PASS 1111, multicast.
    m.set_vrid(
        key(51, FAMILY_V4, 0),
        cfg(VRID_ALLOW_V2 | VRID_CHECK_TTL | VRID_AUTH_PASS, PASS),
    )
    .unwrap();
    // v3 with the RFC checksum, and v3 with keepalived's v3_checksum_as_v2.
    m.set_vrid(
        key(52, FAMILY_V4, 0),
        cfg(VRID_ALLOW_V3 | VRID_CHECK_TTL, ""),
    )
    .unwrap();
    m.set_vrid(
        key(53, FAMILY_V4, 0),
        cfg(VRID_ALLOW_V3 | VRID_CHECK_TTL | VRID_V3_CHECKSUM_AS_V2, ""),
    )
    .unwrap();
    // Unicast v2 without authentication: no TTL check.
    m.set_vrid(key(54, FAMILY_V4, 0), cfg(VRID_ALLOW_V2, ""))
        .unwrap();
    // IPv6 v3 on VRID 51 and 53 (keepalived's capture uses 53).
    m.set_vrid(
        key(51, FAMILY_V6, 0),
        cfg(VRID_ALLOW_V3 | VRID_CHECK_TTL, ""),
    )
    .unwrap();
    m.set_vrid(
        key(53, FAMILY_V6, 0),
        cfg(VRID_ALLOW_V3 | VRID_CHECK_TTL, ""),
    )
    .unwrap();
    // Named peers (allowed_peers / check_unicast_src): VRID 55 accepts 192.0.2.2 only.
    let mut peer_addr = [0u8; 16];
    peer_addr[..4].copy_from_slice(&[192, 0, 2, 2]);
    m.set_peers(key(55, FAMILY_V4, 0), &[peer_addr]).unwrap();
    m.set_vrid(
        key(55, FAMILY_V4, 0),
        cfg(VRID_ALLOW_V2 | VRID_CHECK_TTL | VRID_CHECK_SRC, ""),
    )
    .unwrap();
    // VLAN 100: VRID 60.
    m.set_vrid(
        key(60, FAMILY_V4, 100),
        cfg(VRID_ALLOW_V3 | VRID_CHECK_TTL, ""),
    )
    .unwrap();
    m.arm_vip(
        VipKey::v4(lo, 0, VIP.octets()),
        VipValue {
            mac: VMAC_51,
            _pad: [0; 2],
        },
    )
    .unwrap();
    m.arm_vip(
        VipKey::v4(lo, 100, VLAN_VIP.octets()),
        VipValue {
            mac: VMAC_51,
            _pad: [0; 2],
        },
    )
    .unwrap();
    if filter_armed {
        m.set_iface(
            lo,
            IfaceConfig {
                flags: IFACE_FILTER_ARMED,
            },
        )
        .unwrap();
    }
    (xdp, lo)
}

/// The peer router's adverts: multicast from 192.0.2.2.
pub fn peer() -> Wire {
    Wire::vrrp_multicast(PEER_MAC, v4("192.0.2.2"))
}

/// The peer router's IPv6 adverts: multicast from fe80::2.
pub fn peer6() -> Wire {
    Wire::vrrp_multicast(PEER_MAC, v4("fe80::2"))
}

/// Two VIPs in an advert's address list.
pub fn vips() -> Vec<IpAddr> {
    vec![v4("192.0.2.10"), v4("192.0.2.11")]
}

/// The next hop toward the fixtures' TUN real server, the server, and the tunnel's source.
pub const TUN_NEXT_HOP: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
pub const TUN_SERVER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 13);
pub const TUN_SOURCE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

/// A TUN real server behind [`TUN_NEXT_HOP`] on a 1500-byte path, up, of `tun_type`
/// (`LB_TUN_*`; `port`: GUE's, host order).
pub fn tun_real(tun_type: u16, port: u16) -> agent_common::Real {
    agent_common::Real {
        mac: TUN_NEXT_HOP,
        flags: agent_common::LB_REAL_UP | agent_common::LB_REAL_TUN,
        addr: TUN_SERVER.octets(),
        weight: 1,
        tun_src: TUN_SOURCE.octets(),
        mtu: 1500,
        tun_type,
        port: u16::from_ne_bytes(port.to_be_bytes()),
        ..Default::default()
    }
}
