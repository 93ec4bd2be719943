//! The XDP program, path by path, through BPF_PROG_TEST_RUN: input frame → action, output
//! frame, counters. No network is involved; the kernel runs the program as if the frame came in
//! on the namespace's loopback, so map keys use lo's ifindex. Needs root.

use std::net::{IpAddr, Ipv4Addr};

use agent_common::{
    Counter, FAMILY_V4, FAMILY_V6, IFACE_FILTER_ARMED, IfaceConfig, VipKey, VridKey, VrrpVerdict,
};
use etherparse::ArpOperation;
use vrrp_agent::xdp::{Counters, Program, XdpProgram};
use vrrp_tests::{
    fixture::{
        CLIENT, CLIENT_MAC, PASS, PEER_MAC, VIP, VLAN_VIP, VMAC_51, peer, peer6, program, v4, vips,
    },
    frames::{Advert, Checksum, Wire, arp, arp_request, captured},
    skip_unless_root,
};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

/// What a row expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Passed untouched, counted as `Counter`.
    Pass(Counter),
    /// Dropped, counted as `Counter`.
    Drop(Counter),
    /// VRRP judged for (vrid, family, vlan): pass if valid, drop otherwise.
    Vrrp(u8, u8, u16, VrrpVerdict),
    /// ARP reply transmitted.
    Reply,
}

struct Row {
    name: &'static str,
    frame: Vec<u8>,
    expect: Expect,
}

fn row(name: &'static str, frame: Vec<u8>, expect: Expect) -> Row {
    Row {
        name,
        frame,
        expect,
    }
}

fn table() -> Vec<Row> {
    use Expect::*;
    use VrrpVerdict as V;
    let v6_addrs = vec![v4("fd00::10")];
    let v6src = peer6();
    let tagged = peer().with(|w| w.vlan = Some(100));
    vec![
        // ----- VRRPv2 over IPv4 (VRID 51: PASS "1111") -----
        row(
            "v2 PASS valid",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)),
            Vrrp(51, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "keepalived 2.2.7 v2 capture",
            captured::keepalived_v2_pass(),
            Vrrp(51, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "v2 wrong password",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), "2222")),
            Vrrp(51, FAMILY_V4, 0, V::Auth),
        ),
        row(
            "v2 no auth where PASS expected",
            peer().vrrp(&Advert::v2(51, 100, &vips())),
            Vrrp(51, FAMILY_V4, 0, V::Auth),
        ),
        row(
            "v2 TTL 254",
            peer()
                .with(|w| w.ttl = 254)
                .vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)),
            Vrrp(51, FAMILY_V4, 0, V::Ttl),
        ),
        row(
            "v2 bad checksum",
            peer().vrrp(
                &Advert::v2_pass(51, 100, &vips(), PASS).with(|a| a.checksum = Checksum::Corrupt),
            ),
            Vrrp(51, FAMILY_V4, 0, V::Checksum),
        ),
        row(
            "v3 to a v2-only VRID",
            peer().vrrp(&Advert::v3(51, 100, &vips())),
            Vrrp(51, FAMILY_V4, 0, V::Version),
        ),
        row(
            "version 4",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS).with(|a| a.version = 4)),
            Vrrp(51, FAMILY_V4, 0, V::Version),
        ),
        row(
            "type 2",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS).with(|a| a.kind = 2)),
            Vrrp(51, FAMILY_V4, 0, V::Type),
        ),
        row(
            "count larger than the address list",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS).with(|a| a.count = Some(5))),
            Vrrp(51, FAMILY_V4, 0, V::Length),
        ),
        row(
            "v2 no auth, unicast TTL 64 (VRID 54)",
            peer()
                .with(|w| w.ttl = 64)
                .vrrp(&Advert::v2(54, 100, &vips())),
            Vrrp(54, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "from a named peer (VRID 55)",
            peer().vrrp(&Advert::v2(55, 100, &vips())),
            Vrrp(55, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "valid, but not from a named peer (VRID 55)",
            Wire::vrrp_multicast(PEER_MAC, v4("192.0.2.3")).vrrp(&Advert::v2(55, 200, &vips())),
            Vrrp(55, FAMILY_V4, 0, V::Source),
        ),
        row(
            "v2 PASS where none configured (VRID 54)",
            peer().vrrp(&Advert::v2_pass(54, 100, &vips(), PASS)),
            Vrrp(54, FAMILY_V4, 0, V::Auth),
        ),
        row(
            "255 addresses (longest v2 advert)",
            peer().vrrp(&Advert::v2_pass(
                51,
                100,
                &(0..255)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8)))
                    .collect::<Vec<_>>(),
                PASS,
            )),
            Vrrp(51, FAMILY_V4, 0, V::Valid),
        ),
        // ----- VRRPv3 over IPv4 -----
        row(
            "v3 valid, pseudo-header checksum",
            peer().vrrp(&Advert::v3(52, 100, &vips())),
            Vrrp(52, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "keepalived 2.2.7 v3 capture",
            captured::keepalived_v3_ipv4(),
            Vrrp(52, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "v3 checksum without pseudo-header",
            peer().vrrp(
                &Advert::v3(52, 100, &vips()).with(|a| a.checksum = Checksum::NoPseudoHeader),
            ),
            Vrrp(52, FAMILY_V4, 0, V::Checksum),
        ),
        row(
            "v3_checksum_as_v2 instance, v2-style checksum",
            peer().vrrp(
                &Advert::v3(53, 100, &vips()).with(|a| a.checksum = Checksum::NoPseudoHeader),
            ),
            Vrrp(53, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "v3_checksum_as_v2 instance, RFC checksum",
            peer().vrrp(&Advert::v3(53, 100, &vips())),
            Vrrp(53, FAMILY_V4, 0, V::Checksum),
        ),
        row(
            "v2 to a v3-only VRID",
            peer().vrrp(&Advert::v2(52, 100, &vips())),
            Vrrp(52, FAMILY_V4, 0, V::Version),
        ),
        row(
            "v3 TTL 1",
            peer()
                .with(|w| w.ttl = 1)
                .vrrp(&Advert::v3(52, 100, &vips())),
            Vrrp(52, FAMILY_V4, 0, V::Ttl),
        ),
        // ----- VRRPv3 over IPv6 -----
        row(
            "v3 IPv6 valid",
            v6src.vrrp(&Advert::v3(51, 100, &v6_addrs)),
            Vrrp(51, FAMILY_V6, 0, V::Valid),
        ),
        row(
            "keepalived 2.2.7 v3 IPv6 capture",
            captured::keepalived_v3_ipv6(),
            Vrrp(53, FAMILY_V6, 0, V::Valid),
        ),
        row(
            "v3 IPv6 hop limit 254",
            v6src
                .clone()
                .with(|w| w.ttl = 254)
                .vrrp(&Advert::v3(51, 100, &v6_addrs)),
            Vrrp(51, FAMILY_V6, 0, V::Ttl),
        ),
        row(
            "v3 IPv6 bad checksum",
            v6src.vrrp(&Advert::v3(51, 100, &v6_addrs).with(|a| a.checksum = Checksum::Corrupt)),
            Vrrp(51, FAMILY_V6, 0, V::Checksum),
        ),
        row(
            "v3 IPv6 without pseudo-header",
            v6src.vrrp(
                &Advert::v3(51, 100, &v6_addrs).with(|a| a.checksum = Checksum::NoPseudoHeader),
            ),
            Vrrp(51, FAMILY_V6, 0, V::Checksum),
        ),
        row(
            "v2 over IPv6",
            v6src.vrrp(&Advert::v2(51, 100, &v6_addrs)),
            Vrrp(51, FAMILY_V6, 0, V::Version),
        ),
        // ----- 802.1Q -----
        row(
            "VLAN 100 v3 valid",
            tagged.vrrp(&Advert::v3(60, 100, &vips())),
            Vrrp(60, FAMILY_V4, 100, V::Valid),
        ),
        row(
            "VLAN 100 v3 bad checksum",
            tagged.vrrp(&Advert::v3(60, 100, &vips()).with(|a| a.checksum = Checksum::Corrupt)),
            Vrrp(60, FAMILY_V4, 100, V::Checksum),
        ),
        row(
            "VLAN 100 v2 PASS for VRID 51 (configured untagged only)",
            tagged.vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)),
            Pass(Counter::VrrpPassUnfiltered),
        ),
        // ----- IP layer -----
        row(
            "IPv4 header length 16",
            ihl(peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)), 4),
            Drop(Counter::DropIpHeader),
        ),
        row(
            "IPv4 total length beyond the frame",
            tot_len(peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)), 200),
            Drop(Counter::DropTruncated),
        ),
        row(
            "IPv4 fragment",
            fragment(peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS))),
            Pass(Counter::VrrpPassUnchecked),
        ),
        row(
            "IPv4 header with options (IHL 6)",
            with_ip_options(peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS))),
            Vrrp(51, FAMILY_V4, 0, V::Valid),
        ),
        row(
            "IPv6 advert of 65 addresses (longer than the in-kernel check)",
            peer6().vrrp(&Advert::v3(51, 100, &many_v6(65))),
            Pass(Counter::VrrpPassUnchecked),
        ),
        row(
            "IP payload shorter than a VRRP header",
            peer().ip_frame(112, &[0x21, 51, 100]),
            Drop(Counter::DropLength),
        ),
        // ----- not VRRP -----
        row(
            "TCP SYN",
            Wire {
                dst: v4("192.0.2.10"),
                dst_mac: VMAC_51,
                ..peer()
            }
            .tcp_syn(),
            Pass(Counter::PassOther),
        ),
        row(
            "TCP over IPv6",
            Wire {
                dst: v4("fd00::10"),
                ..peer6()
            }
            .tcp_syn(),
            Pass(Counter::PassOther),
        ),
        row("runt frame", vec![0xff; 14], Pass(Counter::PassOther)),
        // ----- ARP -----
        row(
            "ARP request for the VIP",
            arp_request(CLIENT_MAC, CLIENT, VIP, None),
            Reply,
        ),
        row(
            "ARP request for the VIP on VLAN 100",
            arp_request(CLIENT_MAC, CLIENT, VLAN_VIP, Some(100)),
            Reply,
        ),
        // Priority-tagged (VLAN id 0): Linux takes it as untagged and answers for the VIP;
        // so does the program, the tag going back as it came.
        row(
            "ARP request for the VIP, priority-tagged (VLAN id 0)",
            arp_request(CLIENT_MAC, CLIENT, VIP, Some(0)),
            Reply,
        ),
        row(
            "ARP probe (sender 0.0.0.0) for the VIP",
            arp_request(CLIENT_MAC, Ipv4Addr::UNSPECIFIED, VIP, None),
            Reply,
        ),
        row(
            "ARP request for a non-VIP",
            arp_request(CLIENT_MAC, CLIENT, Ipv4Addr::new(192, 0, 2, 77), None),
            Pass(Counter::ArpPass),
        ),
        row(
            "ARP request for the VLAN VIP, untagged",
            arp_request(CLIENT_MAC, CLIENT, VLAN_VIP, None),
            Pass(Counter::ArpPass),
        ),
        row(
            "gratuitous ARP for the VIP",
            arp_request(CLIENT_MAC, VIP, VIP, None),
            Pass(Counter::ArpPass),
        ),
        row(
            "ARP reply about the VIP",
            arp(ArpOperation::REPLY, CLIENT_MAC, VIP, PEER_MAC, CLIENT, None),
            Pass(Counter::ArpPass),
        ),
    ]
}

fn ihl(mut frame: Vec<u8>, words: u8) -> Vec<u8> {
    frame[14] = 0x40 | words;
    frame
}

fn tot_len(mut frame: Vec<u8>, extra: u16) -> Vec<u8> {
    let len = u16::from_be_bytes([frame[16], frame[17]]) + extra;
    frame[16..18].copy_from_slice(&len.to_be_bytes());
    frame
}

fn many_v6(n: u16) -> Vec<IpAddr> {
    (0..n)
        .map(|i| IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i)))
        .collect()
}

/// Inserts 4 bytes of NOP options into the IPv4 header (IHL 6).
fn with_ip_options(mut frame: Vec<u8>) -> Vec<u8> {
    frame.splice(34..34, [1, 1, 1, 1]);
    frame[14] = 0x46;
    tot_len(frame, 4)
}

fn fragment(mut frame: Vec<u8>) -> Vec<u8> {
    frame[20] |= 0x20; // More Fragments
    frame
}

/// The reply the program must produce for `request` (RFC 826), built independently.
fn expected_reply(request: &[u8]) -> Vec<u8> {
    let tagged = request[12..14] == [0x81, 0x00];
    let arp_at = if tagged { 18 } else { 14 };
    let sender_mac: [u8; 6] = request[arp_at + 8..arp_at + 14].try_into().unwrap();
    let sender_ip: [u8; 4] = request[arp_at + 14..arp_at + 18].try_into().unwrap();
    let target_ip: [u8; 4] = request[arp_at + 24..arp_at + 28].try_into().unwrap();
    let vlan = tagged.then(|| u16::from_be_bytes([request[14], request[15]]) & 0x0fff);
    arp(
        ArpOperation::REPLY,
        VMAC_51,
        Ipv4Addr::from(target_ip),
        sender_mac,
        Ipv4Addr::from(sender_ip),
        vlan,
    )
}

fn delta(xdp: &XdpProgram, before: &Counters) -> Vec<(&'static str, u64)> {
    let now = xdp.maps.counters().unwrap();
    now.since(before).iter().filter(|(_, v)| *v != 0).collect()
}

#[test]
fn every_packet_path_has_the_right_action_frame_and_counters() {
    if skip_unless_root("every_packet_path_has_the_right_action_frame_and_counters") {
        return;
    }
    let (xdp, lo) = program(false);
    let mut failures = Vec::new();
    // Both VRRP programs, with and without the balancer: with no virtual server configured
    // they must do the same.
    for (
        prog,
        Row {
            name,
            frame,
            expect,
        },
    ) in [Program::Vrrp, Program::VrrpLb]
        .into_iter()
        .flat_map(|p| table().into_iter().map(move |r| (p, r)))
    {
        let before = xdp.maps.counters().unwrap();
        let vrid_before = |vrid, family, vlan| {
            xdp.maps
                .vrid_counters(&VridKey {
                    ifindex: lo,
                    vlan,
                    vrid,
                    family,
                })
                .unwrap()
                .unwrap_or_default()
        };
        let stats_before = match expect {
            Expect::Vrrp(vrid, family, vlan, _) => Some(vrid_before(vrid, family, vlan)),
            _ => None,
        };
        let out = xdp.test_run(prog, &frame).unwrap();
        let moved = delta(&xdp, &before);
        let (want_action, want_counter, want_frame) = match expect {
            Expect::Pass(c) => (XDP_PASS, c, frame.clone()),
            Expect::Drop(c) => (XDP_DROP, c, frame.clone()),
            Expect::Vrrp(_, _, _, v) => (
                if v == VrrpVerdict::Valid {
                    XDP_PASS
                } else {
                    XDP_DROP
                },
                v.counter(),
                frame.clone(),
            ),
            Expect::Reply => (XDP_TX, Counter::ArpReply, expected_reply(&frame)),
        };
        let want_moved = vec![(want_counter.name(), 1)];
        let mut problems = Vec::new();
        if out.action != want_action {
            problems.push(format!("action {} (want {want_action})", out.action));
        }
        // Frames the program sends back keep the request's length (Ethernet padding included).
        let got_frame = &out.frame[..want_frame.len().min(out.frame.len())];
        if got_frame != want_frame.as_slice() || out.frame.len() < want_frame.len() {
            problems.push(format!(
                "frame\n  got  {:02x?}\n  want {:02x?}",
                out.frame, want_frame
            ));
        }
        let mut sorted_moved = moved.clone();
        sorted_moved.sort();
        let mut sorted_want = want_moved.clone();
        sorted_want.sort();
        if sorted_moved != sorted_want {
            problems.push(format!("counters moved {moved:?} (want {want_moved:?})"));
        }
        if let (Expect::Vrrp(vrid, family, vlan, verdict), Some(before)) = (expect, stats_before) {
            let after = vrid_before(vrid, family, vlan);
            if after.packets(verdict) != before.packets(verdict) + 1 {
                problems.push(format!(
                    "VRID {vrid} {} packets not counted",
                    verdict.name()
                ));
            }
            let l3 = if vlan != 0 { 18 } else { 14 };
            let ip_header = if family == FAMILY_V4 {
                (frame[l3] & 0x0f) as usize * 4
            } else {
                40
            };
            let vrrp_len = (frame.len() - l3 - ip_header) as u64;
            if after.bytes(verdict) != before.bytes(verdict) + vrrp_len {
                problems.push(format!(
                    "VRID {vrid} {} bytes {} (want +{vrrp_len})",
                    verdict.name(),
                    after.bytes(verdict) - before.bytes(verdict)
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{name} ({prog:?}): {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn valid_advert_records_the_masters_heartbeat() {
    if skip_unless_root("valid_advert_records_the_masters_heartbeat") {
        return;
    }
    let (xdp, lo) = program(false);
    let key = VridKey {
        ifindex: lo,
        vlan: 0,
        vrid: 52,
        family: FAMILY_V4,
    };
    assert_eq!(xdp.maps.vrid_state(&key).unwrap(), None);
    let now = monotonic_ns();
    let advert = Advert::v3(52, 150, &vips()).with(|a| a.interval = 10);
    xdp.test_run(Program::Vrrp, &peer().vrrp(&advert)).unwrap();
    let state = xdp.maps.vrid_state(&key).unwrap().expect("state recorded");
    assert_eq!(state.priority, 150);
    assert_eq!(state.version, 3);
    assert_eq!(state.interval, 10, "centiseconds");
    assert_eq!(state.src[..4], [192, 0, 2, 2]);
    assert!(
        state.last_ns >= now && state.last_ns <= monotonic_ns(),
        "kernel timestamp is CLOCK_MONOTONIC"
    );

    // An invalid advert does not move the heartbeat.
    let bad = peer().vrrp(&Advert::v3(52, 200, &vips()).with(|a| a.checksum = Checksum::Corrupt));
    xdp.test_run(Program::Vrrp, &bad).unwrap();
    assert_eq!(xdp.maps.vrid_state(&key).unwrap().unwrap(), state);
}

#[test]
fn foreign_vrids_pass_until_the_filter_is_armed_then_drop() {
    if skip_unless_root("foreign_vrids_pass_until_the_filter_is_armed_then_drop") {
        return;
    }
    let frame = peer().vrrp(&Advert::v2(99, 100, &vips()));
    let (mut xdp, lo) = program(false);
    assert_eq!(
        xdp.test_run(Program::Vrrp, &frame).unwrap().action,
        XDP_PASS
    );
    assert_eq!(
        xdp.maps
            .counters()
            .unwrap()
            .get(Counter::VrrpPassUnfiltered),
        1
    );

    xdp.maps
        .set_iface(
            lo,
            IfaceConfig {
                flags: IFACE_FILTER_ARMED,
            },
        )
        .unwrap();
    assert_eq!(
        xdp.test_run(Program::Vrrp, &frame).unwrap().action,
        XDP_DROP
    );
    let counters = xdp.maps.counters().unwrap();
    assert_eq!(counters.get(Counter::DropUnknownVrid), 1);
    let key = VridKey {
        ifindex: lo,
        vlan: 0,
        vrid: 99,
        family: FAMILY_V4,
    };
    let stats = xdp
        .maps
        .vrid_counters(&key)
        .unwrap()
        .expect("foreign VRID counted");
    assert_eq!(stats.packets(VrrpVerdict::UnknownVrid), 1);
    // Configured VRIDs are unaffected by the filter.
    let ours = peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS));
    assert_eq!(xdp.test_run(Program::Vrrp, &ours).unwrap().action, XDP_PASS);
}

#[test]
fn disarmed_vip_is_no_longer_answered() {
    if skip_unless_root("disarmed_vip_is_no_longer_answered") {
        return;
    }
    let (mut xdp, lo) = program(false);
    let request = arp_request(CLIENT_MAC, CLIENT, VIP, None);
    assert_eq!(
        xdp.test_run(Program::Vrrp, &request).unwrap().action,
        XDP_TX
    );
    xdp.maps
        .disarm_vip(&VipKey::v4(lo, 0, VIP.octets()))
        .unwrap();
    let out = xdp.test_run(Program::Vrrp, &request).unwrap();
    assert_eq!(out.action, XDP_PASS);
    assert_eq!(out.frame, request);
}

/// Every prefix of a valid advert and of an ARP request: the program never aborts, never
/// transmits, and says why.
#[test]
fn every_truncation_is_handled() {
    if skip_unless_root("every_truncation_is_handled") {
        return;
    }
    let (xdp, _) = program(true);
    let cases = [
        (
            "v2 advert",
            peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS)),
            14 + 20,
        ),
        (
            "v3 IPv6 advert",
            peer6().vrrp(&Advert::v3(51, 100, &[v4("fd00::10")])),
            14 + 40,
        ),
        (
            "tagged v3 advert",
            peer()
                .with(|w| w.vlan = Some(100))
                .vrrp(&Advert::v3(60, 100, &vips())),
            18 + 20,
        ),
        (
            "ARP request",
            arp_request(CLIENT_MAC, CLIENT, VIP, None),
            usize::MAX,
        ),
    ];
    // The kernel refuses test frames shorter than an Ethernet header.
    for (name, frame, ip_end) in cases {
        for cut in 14..frame.len() {
            let prefix = &frame[..cut];
            let before = xdp.maps.counters().unwrap();
            let out = xdp
                .test_run(Program::Vrrp, prefix)
                .unwrap_or_else(|e| panic!("{name} cut at {cut}: {e}"));
            let moved = xdp.maps.counters().unwrap().since(&before);
            let (want_action, want_counter) = if ip_end == usize::MAX {
                (XDP_PASS, Counter::ArpPass)
            } else if cut < ip_end {
                // The IP header itself is cut: not recognisable as VRRP, left to the kernel.
                (XDP_PASS, Counter::PassOther)
            } else {
                (XDP_DROP, Counter::DropTruncated)
            };
            assert_eq!(out.action, want_action, "{name} cut at {cut}");
            assert_eq!(out.frame, prefix, "{name} cut at {cut}: frame modified");
            assert_eq!(
                moved.get(want_counter),
                1,
                "{name} cut at {cut}: {:?}",
                moved.iter().filter(|(_, v)| *v > 0).collect::<Vec<_>>()
            );
        }
        // And the whole frame is still fine.
        let out = xdp.test_run(Program::Vrrp, &frame).unwrap();
        assert_ne!(out.action, XDP_DROP, "{name} whole");
    }
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
