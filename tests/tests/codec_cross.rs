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
