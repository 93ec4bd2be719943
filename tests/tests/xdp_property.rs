//! A property of the XDP program over random frames, through BPF_PROG_TEST_RUN: whatever comes
//! in, it never aborts, never changes a frame it passes or drops, and only ever transmits a
//! correct ARP reply (RFC 826) to an ARP request for an armed VIP, a frame for a virtual
//! server (TCP to VIP:80, UDP to VIP:53, TCP to [VIP6]:80 over IPv6) sent on to one of its
//! real servers with nothing but the MACs changed, or for the TUN virtual server (TCP to VIP:82) the frame wrapped in IPIP
//! for its server or an ICMP "fragmentation needed" back to its sender.
//!
//! Frames are random bytes, and valid frames (adverts of every kind, ARP requests, tagged and
//! IPv6) with random bytes overwritten, cut or extended. The generator is seeded: a failure
//! prints the seed and the frame; `XDP_PROPERTY_SEED` replays it, `XDP_PROPERTY_FRAMES` or
//! `XDP_PROPERTY_SECONDS` run longer (`cargo xtask fuzz xdp_frames SECONDS`). Needs root.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::{Duration, Instant},
};

use etherparse::ArpOperation;
use vrrp_agent::xdp::Program;
use vrrp_tests::{
    fixture::{CLIENT, CLIENT_MAC, PASS, VIP, VLAN_VIP, VMAC_51, peer, peer6, program, v4, vips},
    frames::{Advert, Checksum, arp, arp_request},
    skip_unless_root,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// xorshift64*: deterministic, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Valid frames of every kind the program looks at, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let tagged = peer().with(|w| w.vlan = Some(100));
    let v6: Vec<IpAddr> = vec![v4("fd00::10")];
    vec![
        peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)),
        peer().vrrp(&Advert::v2(54, 100, &vips())),
        peer().vrrp(&Advert::v3(52, 100, &vips())),
        peer().vrrp(&Advert::v3(53, 100, &vips()).with(|a| a.checksum = Checksum::NoPseudoHeader)),
        peer().vrrp(&Advert::v2(55, 100, &vips())),
        peer6().vrrp(&Advert::v3(51, 100, &v6)),
        tagged.vrrp(&Advert::v3(60, 100, &vips())),
        arp_request(CLIENT_MAC, CLIENT, VIP, None),
        arp_request(CLIENT_MAC, CLIENT, VLAN_VIP, Some(100)),
        arp_request(CLIENT_MAC, CLIENT, Ipv4Addr::new(192, 0, 2, 77), None),
        arp(ArpOperation::REPLY, CLIENT_MAC, CLIENT, VMAC_51, VIP, None),
        to_vip(17, 53),
        to_vip(6, 80),
        to_vip(6, 81),
        to_vip(6, 82),
        to_vip6(6, 80),
        to_vip6(17, 80),
    ]
}

/// The IPv6 virtual server's address (TCP port 80).
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

/// TCP (6) or UDP (17) from a client to VIP6's `port`.
fn to_vip6(proto: u8, port: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, OWN_MAC).ipv6(
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).octets(),
        VIP6.octets(),
        64,
    );
    segment(b, proto, port)
}

/// A TCP SYN (6) or a UDP datagram (17) from port 40000 to `port`, after the IP header `b` builds.
fn segment(
    b: etherparse::PacketBuilderStep<etherparse::IpHeaders>,
    proto: u8,
    port: u16,
) -> Vec<u8> {
    let mut out = Vec::new();
    if proto == 6 {
        b.tcp(40000, port, 1, 64240)
            .syn()
            .write(&mut out, b"")
            .unwrap();
    } else {
        b.udp(40000, port).write(&mut out, b"query").unwrap();
    }
    out
}

/// Real servers of the virtual servers the test configures.
const REAL_MACS: [[u8; 6]; 2] = [[2, 0, 0, 0, 0, 0x13], [2, 0, 0, 0, 0, 0x14]];
/// The next hop toward the TUN real server.
const TUN_MAC: [u8; 6] = vrrp_tests::fixture::TUN_NEXT_HOP;
/// The program's own MAC as the client addresses it.
const OWN_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x11];

/// TCP (6) or UDP (17) from the client to the VIP's `port`.
fn to_vip(proto: u8, port: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(CLIENT_MAC, OWN_MAC).ipv4(
        CLIENT.octets(),
        VIP.octets(),
        64,
    );
    segment(b, proto, port)
}

/// Virtual servers TCP VIP:80 and UDP VIP:53, rr over the two real servers, served while the
/// VIP is armed (it is, untagged, in the fixture).
fn add_services(xdp: &mut vrrp_agent::xdp::XdpProgram) {
    use agent_common::{
        LB_REAL_UP, LB_SVC_FOLLOW_VIP, LB_SVC_LBLCR, LB_SVC_LEAST, LB_SVC_SPARE, LB_SVC_WEIGHTED,
        Real, Service, ServiceKey,
    };
    for (i, mac) in REAL_MACS.iter().enumerate() {
        let real = Real {
            mac: *mac,
            flags: LB_REAL_UP,
            addr: [0; 4],
            weight: 1,
            conns: 0,
            ifindex: 0,
            out_mac: [0; 6],
            port: 0,
            ..Default::default()
        };
        xdp.maps.set_real(i as u32, real).unwrap();
    }
    xdp.maps.set_ring(0, &[0, 1]).unwrap();
    // TCP by rotation; UDP by lblcr (the locality table's path too).
    let lblcr = LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_LBLCR | LB_SVC_SPARE;
    for (id, (proto, port, flags)) in [(6u8, 80u16, 0), (17, 53, lblcr)].into_iter().enumerate() {
        let key = ServiceKey {
            addr: VIP.octets(),
            port,
            proto,
            _pad: 0,
        };
        let service = Service {
            id: id as u32,
            flags: LB_SVC_FOLLOW_VIP | flags,
            ring_base: 0,
            ring_len: 2,
            persist_ns: 0,
            persist_mask: [255; 4],
            persist_mask6: [255; 16],
            entry: id as u32,
        };
        xdp.maps.set_service(key, service).unwrap();
    }
    // TCP VIP:82 to real server 2 through an IPIP tunnel.
    let tun = vrrp_tests::fixture::tun_real(agent_common::LB_TUN_IPIP, 0);
    xdp.maps.set_real(2, tun).unwrap();
    xdp.maps.set_ring(2048, &[2]).unwrap();
    let key = ServiceKey {
        addr: VIP.octets(),
        port: 82,
        proto: 6,
        _pad: 0,
    };
    let service = Service {
        id: 2,
        flags: LB_SVC_FOLLOW_VIP,
        ring_base: 2048,
        ring_len: 1,
        persist_ns: 0,
        persist_mask: [255; 4],
        persist_mask6: [255; 16],
        entry: 2,
    };
    xdp.maps.set_service(key, service).unwrap();
    // TCP [VIP6]:80 by rotation over the first two, served while VIP6 is armed.
    let key = agent_common::ServiceKey6 {
        addr: VIP6.octets(),
        port: 80,
        proto: 6,
        _pad: 0,
    };
    let service = Service {
        id: 3,
        flags: LB_SVC_FOLLOW_VIP,
        ring_base: 0,
        ring_len: 2,
        persist_ns: 0,
        persist_mask: [255; 4],
        persist_mask6: [255; 16],
        entry: 3,
    };
    xdp.maps.set_service(key, service).unwrap();
    let lo = vrrp_agent::xdp::ifindex("lo").unwrap();
    let value = agent_common::VipValue {
        mac: OWN_MAC,
        _pad: [0; 2],
    };
    xdp.maps
        .arm_vip(agent_common::VipKey::v6(lo, 0, VIP6.octets()), value)
        .unwrap();
}

/// Whether the program may send `input` on to a real server: untagged IPv4, a header length
/// of at least 20, not a fragment, TCP to VIP:80 or VIP:82 (TUN) or UDP to VIP:53, its ports
/// in the frame.
fn forwardable(input: &[u8]) -> bool {
    forward_port(input).is_some()
}

/// The virtual server's port `input` may be sent on for (see [`forwardable`]); over IPv6:
/// untagged, TCP right after the header to [VIP6]:80, its ports in the frame.
fn forward_port(input: &[u8]) -> Option<u16> {
    if input.get(12..14)? == [0x86, 0xdd] {
        let ip = input.get(14..54)?;
        let ports = input.get(54..58)?;
        let dport = u16::from_be_bytes([ports[2], ports[3]]);
        return (ip[6] == 6 && ip[24..40] == VIP6.octets() && dport == 80).then_some(dport);
    }
    let ip = input.get(14..34)?;
    if input[12..14] != [0x08, 0x00] {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    let ports = input.get(14 + ihl..14 + ihl + 4)?;
    let dport = u16::from_be_bytes([ports[2], ports[3]]);
    (ihl >= 20
        && frag == 0
        && ip[16..20] == VIP.octets()
        && matches!((ip[9], dport), (6, 80) | (6, 82) | (17, 53)))
    .then_some(dport)
}

fn frame(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(4) {
        // Random bytes (the kernel refuses test frames shorter than an Ethernet header).
        0 => (0..14 + rng.below(200)).map(|_| rng.byte()).collect(),
        // A valid frame with a few bytes overwritten.
        1 | 2 => {
            let mut f = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(f.len());
                f[i] = if rng.below(2) == 0 {
                    rng.byte()
                } else {
                    // Boundary values hit length and type checks more often than noise.
                    [0, 1, 0x7f, 0x80, 0xff][rng.below(5)]
                };
            }
            f
        }
        // Cut or extended.
        _ => {
            let mut f = seeds[rng.below(seeds.len())].clone();
            if rng.below(2) == 0 {
                f.truncate(14 + rng.below(f.len() - 13));
            } else {
                f.extend((0..rng.below(64)).map(|_| rng.byte()));
            }
            f
        }
    }
}

/// The reply the program may send for `request`, if `request` is an ARP request (Ethernet,
/// IPv4) for an armed VIP: the VIP untagged (or priority-tagged, VLAN id 0, which Linux takes
/// as untagged and answers too), or the VLAN VIP on VLAN 100.
fn allowed_reply(request: &[u8]) -> Option<Vec<u8>> {
    let (vlan, at) = match request.get(12..14)? {
        [0x08, 0x06] => (None, 14),
        // The VLAN id is what counts, not the priority bits.
        [0x81, 0x00] if request.get(16..18)? == [0x08, 0x06] => {
            match u16::from_be_bytes(request.get(14..16)?.try_into().ok()?) & 0x0fff {
                100 => (Some(100), 18),
                0 => (Some(0), 18),
                _ => return None,
            }
        }
        _ => return None,
    };
    let a = request.get(at..at + 28)?;
    // htype Ethernet, ptype IPv4, hlen 6, plen 4, operation request.
    if a[..8] != [0, 1, 8, 0, 6, 4, 0, 1] {
        return None;
    }
    let target = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
    let armed = match vlan {
        None | Some(0) => target == VIP,
        Some(_) => target == VLAN_VIP,
    };
    if !armed {
        return None;
    }
    let sender_mac: [u8; 6] = a[8..14].try_into().ok()?;
    let sender_ip = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
    let mut reply = arp(
        ArpOperation::REPLY,
        VMAC_51,
        target,
        sender_mac,
        sender_ip,
        vlan,
    );
    if vlan.is_some() {
        // The tag goes back as it came (priority bits included).
        reply[14..16].copy_from_slice(&request[14..16]);
    }
    Some(reply)
}

/// What is wrong with the program's answer to `input`, if anything.
/// `lb`: the program with the balancer (`vrrp_lb_xdp`); the one without it forwards nothing.
fn check(input: &[u8], action: u32, output: &[u8], lb: bool) -> Option<String> {
    match action {
        XDP_PASS | XDP_DROP if output != input => Some("frame changed but not sent".into()),
        XDP_PASS | XDP_DROP => None,
        // TUN: wrapped for the server (the input whole after an IPIP header to it), or an ICMP
        // "fragmentation needed" back where it came from.
        XDP_TX if lb && forward_port(input) == Some(82) => {
            let wrapped = output.len() == input.len() + 20
                && output[..6] == TUN_MAC
                && output[6..12] == input[..6]
                && output[12..14] == [0x08, 0x00]
                && output[14 + 9] == 4
                && output[30..34] == vrrp_tests::fixture::TUN_SERVER.octets()
                && output[34..] == input[14..];
            let icmp = output.len() == 14 + 56
                && output[..6] == input[6..12]
                && output[6..12] == input[..6]
                && output[14 + 9] == 1
                && output[34..36] == [3, 4]
                && output[42..70] == input[14..42];
            (!wrapped && !icmp).then(|| format!("wrong TUN forward {}", hex(output)))
        }
        XDP_TX if lb && forwardable(input) => {
            let ok = output.len() == input.len()
                && REAL_MACS.iter().any(|m| output[..6] == m[..])
                && output[6..12] == input[..6]
                && output[12..] == input[12..];
            (!ok).then(|| format!("wrong forward {}", hex(output)))
        }
        XDP_TX => match allowed_reply(input) {
            None => Some(
                "transmitted, but it is no ARP request for an armed VIP nor a virtual server's"
                    .into(),
            ),
            Some(want) => {
                let ok = output.len() == input.len().max(want.len()) && output.starts_with(&want);
                (!ok).then(|| format!("wrong ARP reply {}", hex(output)))
            }
        },
        other => Some(format!("action {other}")),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn random_frames_never_abort_and_only_valid_arp_replies_and_forwards_leave() {
    if skip_unless_root("random_frames_never_abort_and_only_valid_arp_replies_and_forwards_leave") {
        return;
    }
    let seed = env("XDP_PROPERTY_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let budget = env::<u64>("XDP_PROPERTY_SECONDS").map(Duration::from_secs);
    let frames: u64 =
        env("XDP_PROPERTY_FRAMES").unwrap_or(if budget.is_some() { u64::MAX } else { 500_000 });
    let seeds = seeds();
    // The balancer's program on everything; the filter disarmed, and the program without
    // the balancer (virtual servers configured in the maps all the same), on fewer frames.
    for (filter_armed, prog, rounds) in [
        (true, Program::VrrpLb, frames),
        (false, Program::VrrpLb, frames.min(20_000)),
        (true, Program::Vrrp, frames.min(20_000)),
    ] {
        let lb = prog == Program::VrrpLb;
        let (mut xdp, _) = program(filter_armed);
        add_services(&mut xdp);
        // Every seed must be what the property expects of it first: a reply to the requests
        // for armed VIPs, nothing else transmitted.
        for s in &seeds {
            let out = xdp.test_run(prog, s).unwrap();
            assert_eq!(
                out.action == XDP_TX,
                allowed_reply(s).is_some() || (lb && forwardable(s)),
                "seed {} ({prog:?})",
                hex(s)
            );
        }
        let mut rng = Rng(seed);
        let (t0, mut ran, mut sent) = (Instant::now(), 0u64, 0u64);
        while ran < rounds && budget.is_none_or(|b| t0.elapsed() < b) {
            let f = frame(&mut rng, &seeds);
            let out = xdp
                .test_run(prog, &f)
                .unwrap_or_else(|e| panic!("seed {seed}, frame {}: {e}", hex(&f)));
            if let Some(why) = check(&f, out.action, &out.frame, lb) {
                panic!(
                    "seed {seed} (XDP_PROPERTY_SEED), frame {ran}: {why}\ninput {}",
                    hex(&f)
                );
            }
            sent += u64::from(out.action == XDP_TX);
            ran += 1;
        }
        eprintln!(
            "xdp property: {ran} frames (filter armed: {filter_armed}, seed {seed}), {sent} ARP replies and forwards, 0 failures in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    }
}
