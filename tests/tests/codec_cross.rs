//! Two independent VRRP encoders must agree: adverts built by the test frames' encoder (written
//! from the RFCs for the tests) decode with the agent's codec to what was meant, in every
//! version, family, checksum mode and address count.

use std::net::IpAddr;

use vrrp_agent::vrrp::packet::{self, ChecksumMode, Version};
use vrrp_tests::frames::{Advert, Checksum, VRRP_MCAST_V4, VRRP_MCAST_V6};

#[test]
fn test_encoder_and_agent_codec_agree() {
    let src4: IpAddr = "192.0.2.2".parse().unwrap();
    let src6: IpAddr = "fe80::2".parse().unwrap();
    let mut checked = 0;
    for n in [0u16, 1, 3, 64] {
        for v6 in [false, true] {
            let (src, dst) = if v6 {
                (src6, IpAddr::V6(VRRP_MCAST_V6))
            } else {
                (src4, IpAddr::V4(VRRP_MCAST_V4))
            };
            let addrs: Vec<IpAddr> = (0..n)
                .map(|i| {
                    if v6 {
                        format!("fd00::{i:x}").parse().unwrap()
                    } else {
                        format!("10.0.{}.{}", i >> 8, i & 0xff).parse().unwrap()
                    }
                })
                .collect();
            let mut cases = vec![(
                Advert::v3(7, 150, &addrs).with(|a| a.interval = 25),
                ChecksumMode::Rfc,
            )];
            if !v6 {
                cases.push((
                    Advert::v2_pass(7, 150, &addrs, "pw").with(|a| a.interval = 3),
                    ChecksumMode::Rfc,
                ));
                cases.push((Advert::v2(7, 150, &addrs), ChecksumMode::Rfc));
                cases.push((
                    Advert::v3(7, 150, &addrs).with(|a| a.checksum = Checksum::NoPseudoHeader),
                    ChecksumMode::V3AsV2,
                ));
            }
            for (advert, mode) in cases {
                let bytes = advert.encode(src, dst);
                let decoded = packet::Advert::decode(&bytes, src, dst, mode)
                    .unwrap_or_else(|e| panic!("{advert:?}: {e}"));
                let (version, interval_cs) = match advert.version {
                    2 => (Version::V2, advert.interval * 100),
                    _ => (Version::V3, advert.interval),
                };
                assert_eq!(
                    (
                        decoded.version,
                        decoded.vrid,
                        decoded.priority,
                        decoded.interval_cs
                    ),
                    (version, 7, 150, interval_cs)
                );
                assert_eq!(decoded.addrs, addrs);
                // And the agent encodes the very same bytes.
                assert_eq!(decoded.encode(src, dst, mode).unwrap(), bytes, "{advert:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 20);
}

/// tcpdump's VRRP capture (tests/vectors/tcpdump/): adverts from other implementations, read by
/// another program. Each must decode (checksums included), say what `tcpdump -v` says, and
/// re-encode to the same bytes.
#[test]
fn tcpdump_capture_decodes_as_tcpdump_reads_it_and_reencodes_byte_for_byte() {
    use etherparse::{NetSlice, SlicedPacket};

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/tcpdump");
    let pcap = std::fs::read(format!("{dir}/vrrp.pcap")).unwrap();
    let expected: Vec<String> = std::fs::read_to_string(format!("{dir}/vrrp-v.out"))
        .unwrap()
        .lines()
        .filter_map(|l| l.find("VRRPv").map(|i| l[i..].to_string()))
        .collect();
    // Classic pcap, little-endian, Ethernet.
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(u32::from_le_bytes(pcap[20..24].try_into().unwrap()), 1);
    let mut at = 24;
    let mut seen = Vec::new();
    while at + 16 <= pcap.len() {
        let caplen = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &pcap[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let (src, dst, payload): (IpAddr, IpAddr, &[u8]) = match &p.net {
            Some(NetSlice::Ipv4(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
                ip.payload().payload,
            ),
            Some(NetSlice::Ipv6(ip)) => (
                ip.header().source_addr().into(),
                ip.header().destination_addr().into(),
                ip.payload().payload,
            ),
            _ => continue,
        };
        let advert = packet::Advert::decode(payload, src, dst, ChecksumMode::Rfc)
            .unwrap_or_else(|e| panic!("frame {}: {e}", seen.len() + 1));
        let addrs: Vec<String> = advert.addrs.iter().map(ToString::to_string).collect();
        let addrs = if addrs.len() == 1 {
            format!("addrs: {}", addrs[0])
        } else {
            format!("addrs({}): {}", addrs.len(), addrs.join(","))
        };
        let line = match advert.version {
            Version::V2 => {
                let (kind, pass) = match advert.auth {
                    packet::Auth::Pass(p) => (
                        "simple",
                        format!(
                            " auth \"{}\"",
                            String::from_utf8_lossy(&p).trim_end_matches('\0')
                        ),
                    ),
                    _ => ("none", String::new()),
                };
                format!(
                    "VRRPv2, Advertisement, vrid {}, prio {}, authtype {kind}, intvl {}s, length {}, {addrs}{pass}",
                    advert.vrid,
                    advert.priority,
                    advert.interval_cs / 100,
                    payload.len()
                )
            }
            Version::V3 => format!(
                "VRRPv3, Advertisement, vrid {}, prio {}, intvl {}cs, length {}, {addrs}",
                advert.vrid,
                advert.priority,
                advert.interval_cs,
                payload.len()
            ),
        };
        assert_eq!(
            advert.encode(src, dst, ChecksumMode::Rfc).unwrap(),
            payload,
            "frame {} re-encodes to other bytes",
            seen.len() + 1
        );
        seen.push(line);
    }
    assert_eq!(seen.len(), 165);
    assert_eq!(seen, expected);
}
