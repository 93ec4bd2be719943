//! Frames for tests, built with etherparse. VRRP itself is encoded here from the RFCs with its
//! own checksum code, independent of the XDP program and the agent it is used to test.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, IpNumber, PacketBuilder, VlanId,
};

pub const IPPROTO_VRRP: u8 = 112;
pub const VRRP_MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const VRRP_MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// How the checksum field of an advert is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// As the RFC says: v2 over the VRRP message, v3 with the IP pseudo-header.
    Rfc,
    /// v3 computed without the pseudo-header (keepalived's `v3_checksum_as_v2`).
    NoPseudoHeader,
    /// Deliberately wrong.
    Corrupt,
}

/// A VRRP advertisement (RFC 3768 §5, RFC 5798 §5).
#[derive(Clone, Debug)]
pub struct Advert {
    pub version: u8,
    pub kind: u8,
    pub vrid: u8,
    pub priority: u8,
    /// v2: seconds; v3: centiseconds (12 bits).
    pub interval: u16,
    pub addrs: Vec<IpAddr>,
    /// Count IP Addrs as sent; None = the real count.
    pub count: Option<u8>,
    /// v2 only.
    pub auth_type: u8,
    /// v2 only.
    pub auth_data: [u8; 8],
    pub checksum: Checksum,
}

impl Advert {
    /// VRRPv2 with PASS authentication `pass` (keepalived's `auth_type PASS`).
    pub fn v2_pass(vrid: u8, priority: u8, addrs: &[IpAddr], pass: &str) -> Self {
        let mut auth_data = [0u8; 8];
        let n = pass.len().min(8);
        auth_data[..n].copy_from_slice(&pass.as_bytes()[..n]);
        Advert {
            auth_type: 1,
            auth_data,
            ..Advert::v2(vrid, priority, addrs)
        }
    }

    /// VRRPv2 without authentication, 1 s adverts.
    pub fn v2(vrid: u8, priority: u8, addrs: &[IpAddr]) -> Self {
        Advert {
            version: 2,
            kind: 1,
            vrid,
            priority,
            interval: 1,
            addrs: addrs.to_vec(),
            count: None,
            auth_type: 0,
            auth_data: [0; 8],
            checksum: Checksum::Rfc,
        }
    }

    /// VRRPv3, 1 s (100 cs) adverts.
    pub fn v3(vrid: u8, priority: u8, addrs: &[IpAddr]) -> Self {
        Advert {
            version: 3,
            interval: 100,
            ..Advert::v2(vrid, priority, addrs)
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }

    /// The VRRP message as carried between `src` and `dst`.
    pub fn encode(&self, src: IpAddr, dst: IpAddr) -> Vec<u8> {
        let count = self.count.unwrap_or(self.addrs.len() as u8);
        let mut p = vec![
            (self.version << 4) | (self.kind & 0x0f),
            self.vrid,
            self.priority,
            count,
        ];
        if self.version == 2 {
            p.extend([self.auth_type, self.interval as u8]);
        } else {
            p.extend((self.interval & 0x0fff).to_be_bytes());
        }
        p.extend([0, 0]);
        for addr in &self.addrs {
            match addr {
                IpAddr::V4(a) => p.extend(a.octets()),
                IpAddr::V6(a) => p.extend(a.octets()),
            }
        }
        if self.version == 2 {
            p.extend(self.auth_data);
        }
        let mut sum = ones_complement_sum(&p);
        if self.version == 3 && self.checksum != Checksum::NoPseudoHeader {
            sum += pseudo_header_sum(src, dst, p.len());
        }
        let mut checksum = !fold(sum);
        if self.checksum == Checksum::Corrupt {
            checksum ^= 0x5a5a;
        }
        p[6..8].copy_from_slice(&checksum.to_be_bytes());
        p
    }
}

fn ones_complement_sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, len: usize) -> u32 {
    let addrs = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => [s.octets().to_vec(), d.octets().to_vec()].concat(),
        (IpAddr::V6(s), IpAddr::V6(d)) => [s.octets().to_vec(), d.octets().to_vec()].concat(),
        _ => panic!("mixed address families"),
    };
    ones_complement_sum(&addrs) + IPPROTO_VRRP as u32 + len as u32
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Layer 2 and 3 around a frame.
#[derive(Clone, Debug)]
pub struct Wire {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// TTL / hop limit.
    pub ttl: u8,
}

impl Wire {
    /// Multicast VRRP from `src` (224.0.0.18 or ff02::12), TTL 255, untagged.
    pub fn vrrp_multicast(src_mac: [u8; 6], src: IpAddr) -> Self {
        let (dst, dst_mac) = match src {
            IpAddr::V4(_) => (
                IpAddr::V4(VRRP_MCAST_V4),
                [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12],
            ),
            IpAddr::V6(_) => (
                IpAddr::V6(VRRP_MCAST_V6),
                [0x33, 0x33, 0x00, 0x00, 0x00, 0x12],
            ),
        };
        Wire {
            src_mac,
            dst_mac,
            vlan: None,
            src,
            dst,
            ttl: 255,
        }
    }

    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }

    /// An Ethernet frame carrying `payload` as IP protocol `proto`.
    pub fn ip_frame(&self, proto: u8, payload: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let mut out = Vec::new();
        macro_rules! finish {
            ($b:expr) => {
                match (self.src, self.dst) {
                    (IpAddr::V4(s), IpAddr::V4(d)) => $b
                        .ipv4(s.octets(), d.octets(), self.ttl)
                        .write(&mut out, IpNumber(proto), payload),
                    (IpAddr::V6(s), IpAddr::V6(d)) => $b
                        .ipv6(s.octets(), d.octets(), self.ttl)
                        .write(&mut out, IpNumber(proto), payload),
                    _ => panic!("mixed address families"),
                }
            };
        }
        match self.vlan {
            Some(id) => finish!(eth.single_vlan(VlanId::try_new(id).expect("vlan id"))),
            None => finish!(eth),
        }
        .expect("writing a frame to a Vec");
        out
    }

    /// The frame carrying `advert`.
    pub fn vrrp(&self, advert: &Advert) -> Vec<u8> {
        self.ip_frame(IPPROTO_VRRP, &advert.encode(self.src, self.dst))
    }

    /// A TCP SYN to port 80.
    pub fn tcp_syn(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.src_mac, self.dst_mac);
        let mut out = Vec::new();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth
                .ipv4(s.octets(), d.octets(), 64)
                .tcp(40000, 80, 1, 64240)
                .syn()
                .write(&mut out, &[]),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth
                .ipv6(s.octets(), d.octets(), 64)
                .tcp(40000, 80, 1, 64240)
                .syn()
                .write(&mut out, &[]),
            _ => panic!("mixed address families"),
        }
        .expect("writing a frame to a Vec");
        out
    }
}

/// An ARP packet in an Ethernet frame (broadcast for requests).
pub fn arp(
    op: ArpOperation,
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
    vlan: Option<u16>,
) -> Vec<u8> {
    let packet = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        op,
        &sender_mac,
        &sender_ip.octets(),
        &target_mac,
        &target_ip.octets(),
    )
    .expect("valid ARP sizes");
    let dst = if op == ArpOperation::REQUEST {
        [0xff; 6]
    } else {
        target_mac
    };
    let eth = PacketBuilder::ethernet2(sender_mac, dst);
    let mut out = Vec::new();
    match vlan {
        Some(id) => eth
            .single_vlan(VlanId::try_new(id).expect("vlan id"))
            .arp(packet)
            .write(&mut out),
        None => eth.arp(packet).write(&mut out),
    }
    .expect("writing a frame to a Vec");
    out
}

/// An ARP request "who has `target` tell `sender`".
pub fn arp_request(
    sender_mac: [u8; 6],
    sender_ip: Ipv4Addr,
    target: Ipv4Addr,
    vlan: Option<u16>,
) -> Vec<u8> {
    arp(
        ArpOperation::REQUEST,
        sender_mac,
        sender_ip,
        [0; 6],
        target,
        vlan,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 §3 example: the sum of 0001 f203 f4f5 f6f7 is ddf2 (folded).
    #[test]
    fn ones_complement_sum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(ones_complement_sum(&data)), 0xddf2);
    }

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    /// The VRRP part of a captured frame: everything after the IP header.
    fn vrrp_part(frame: &[u8], ip_header_len: usize) -> &[u8] {
        &frame[14 + ip_header_len..]
    }

    #[test]
    fn v2_pass_advert_is_byte_identical_to_keepalived() {
        let advert = Advert::v2_pass(
            51,
            100,
            &addrs(&["192.168.11.200", "192.168.11.201", "192.168.11.202"]),
            "1111",
        );
        let bytes = advert.encode("192.168.11.1".parse().unwrap(), VRRP_MCAST_V4.into());
        assert_eq!(bytes, vrrp_part(&captured::keepalived_v2_pass(), 20));
    }

    #[test]
    fn v3_ipv4_advert_with_pseudo_header_is_byte_identical_to_keepalived() {
        let advert = Advert::v3(52, 100, &addrs(&["192.168.11.200"]));
        let bytes = advert.encode("192.168.11.1".parse().unwrap(), VRRP_MCAST_V4.into());
        assert_eq!(bytes, vrrp_part(&captured::keepalived_v3_ipv4(), 20));
    }

    #[test]
    fn v3_ipv6_advert_is_byte_identical_to_keepalived() {
        let advert = Advert::v3(53, 100, &addrs(&["fd00::200"]));
        let src = "fe80::c829:b6ff:fec1:2b88".parse().unwrap();
        let bytes = advert.encode(src, VRRP_MCAST_V6.into());
        assert_eq!(bytes, vrrp_part(&captured::keepalived_v3_ipv6(), 40));
    }

    #[test]
    fn whole_frames_match_keepalived_apart_from_ip_id_and_tos() {
        // etherparse writes TOS 0 and IP id 0; keepalived sends TOS 0xc0 and counts ids. The
        // rest of the frame (addresses, TTL, protocol, VRRP) must be the same.
        let captured = captured::keepalived_v2_pass();
        let wire = Wire::vrrp_multicast(
            captured[6..12].try_into().unwrap(),
            "192.168.11.1".parse().unwrap(),
        );
        let advert = Advert::v2_pass(
            51,
            100,
            &addrs(&["192.168.11.200", "192.168.11.201", "192.168.11.202"]),
            "1111",
        );
        let ours = wire.vrrp(&advert);
        assert_eq!(ours.len(), captured.len());
        assert_eq!(ours[..14], captured[..14], "ethernet");
        assert_eq!(ours[22..24], captured[22..24], "ttl and protocol");
        assert_eq!(ours[26..], captured[26..], "addresses and VRRP");
    }
}

/// Frames captured from keepalived 2.2.7 on this machine kind (tcpdump on the peer of a veth in
/// a namespace; `keepalived -n -l --vrrp`). Independent test vectors for the VRRP encoders,
/// checksums and the XDP program.
pub mod captured {
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    /// `shared/configs/hot-standby-master.conf` as master, source 192.168.11.1: VRRPv2, VRID 51,
    /// priority 100, PASS "1111", 192.168.11.200-202, checksum 0xb210.
    pub fn keepalived_v2_pass() -> Vec<u8> {
        hex(include_str!("../vectors/keepalived-2.2.7-v2-pass.hex"))
    }

    /// `vrrp_version 3`, VRID 52, priority 100, 100 cs, 192.168.11.200, from 192.168.11.1;
    /// checksum 0xf1bc includes the IPv4 pseudo-header.
    pub fn keepalived_v3_ipv4() -> Vec<u8> {
        hex(include_str!("../vectors/keepalived-2.2.7-v3-ipv4.hex"))
    }

    /// VRRPv3 over IPv6, VRID 53, priority 100, 100 cs, fd00::200, from
    /// fe80::c829:b6ff:fec1:2b88; checksum 0xc3d2.
    pub fn keepalived_v3_ipv6() -> Vec<u8> {
        hex(include_str!("../vectors/keepalived-2.2.7-v3-ipv6.hex"))
    }
}
