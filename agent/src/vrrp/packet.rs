//! VRRP advertisements on the wire: VRRPv2 (RFC 3768 §5) and VRRPv3 (RFC 5798 §5), encode and
//! decode with typed errors and checksums. Sans-IO: bytes in, bytes out.
//!
//! Intervals are kept in centiseconds for both versions (v2 carries whole seconds), so the
//! state machine has one unit.

use std::net::IpAddr;

use thiserror::Error;

/// IP protocol number of VRRP.
pub const IPPROTO_VRRP: u8 = 112;
/// RFC 5798 §5.1.1.3 / §5.1.2.3: sent with TTL / hop limit 255, checked on receipt.
pub const VRRP_TTL: u8 = 255;
const TYPE_ADVERT: u8 = 1;
const HEADER_LEN: usize = 8;
/// RFC 3768 §5.3.10: authentication data after the addresses.
const V2_AUTH_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// VRRPv2 authentication (RFC 3768 §5.3.6; RFC 2338 §5.3.6 for PASS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Simple text password, zero-padded to 8 bytes on the wire.
    Pass([u8; V2_AUTH_LEN]),
    /// IP Authentication Header: the VRRP packet then travels inside AH (not handled here).
    Ah,
}

/// How the checksum covers the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumMode {
    /// v2 over the VRRP message; v3 with the IP pseudo-header (RFC 5798 §5.2.8).
    Rfc,
    /// v3 over IPv4 without the pseudo-header, as keepalived's `v3_checksum_as_v2` peers do.
    V3AsV2,
}

/// A VRRP advertisement.
///
/// ```text
/// VRRPv2 (RFC 3768 §5.1)                    VRRPv3 (RFC 5798 §5.1)
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// v2: |   Auth Type   |   Adver Int   |          Checksum             |
/// v3: |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    IPvX Address(es) ...                       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// v2 only: |          Authentication Data (8 octets)               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: whole seconds × 100).
    pub interval_cs: u16,
    pub addrs: Vec<IpAddr>,
    /// v2 only (v3 has no authentication).
    pub auth: Auth,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("more than 255 addresses")]
    TooManyAddresses,
    #[error("addresses of both families in one advert")]
    MixedFamilies,
    #[error("VRRPv2 runs over IPv4 only")]
    V2OverIpv6,
    #[error("VRRPv2 carries whole seconds: {0} cs is not one, or is over 255 s")]
    V2Interval(u16),
    #[error("VRRPv3 Max Adver Int is 12 bits: {0} cs is out of 1..=4095")]
    V3Interval(u16),
    #[error("VRRPv3 has no authentication")]
    V3Auth,
    #[error("an AH-authenticated advert travels inside IPsec AH, not encoded here")]
    Ah,
    #[error("source and destination are not of the addresses' family")]
    Family,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("{0} bytes is shorter than a VRRP header")]
    TooShort(usize),
    #[error("version {0} (want 2 or 3)")]
    Version(u8),
    #[error("type {0} (want 1, advertisement)")]
    Type(u8),
    #[error("{count} addresses need {need} bytes, the message has {len}")]
    Length { count: u8, need: usize, len: usize },
    #[error("VRRPv2 over IPv6")]
    V2OverIpv6,
    #[error("bad checksum")]
    Checksum,
    #[error("authentication type {0} (want 0, 1 or 2)")]
    AuthType(u8),
    #[error("advertisement interval 0")]
    ZeroInterval,
    #[error("source and destination are of different families")]
    Family,
}

// ===== checksums =====

/// RFC 1071 one's-complement sum of `bytes` as 16-bit big-endian words.
fn sum(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]) as u32)
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The RFC 1071 Internet checksum of `bytes` (ICMP's, for the PING_CHECK echo).
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    !fold(sum(bytes))
}

/// The pseudo-header's sum for a v3 message of `len` bytes (RFC 5798 §5.2.8: RFC 2460 §8.1 for
/// IPv6, the same shape with IPv4 addresses for IPv4).
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Result<u32, ()> {
    let addrs = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => sum(&s.octets()) + sum(&d.octets()),
        (IpAddr::V6(s), IpAddr::V6(d)) => sum(&s.octets()) + sum(&d.octets()),
        _ => return Err(()),
    };
    Ok(addrs + IPPROTO_VRRP as u32 + len as u32)
}

fn checksum_includes_pseudo(version: Version, src: IpAddr, mode: ChecksumMode) -> bool {
    version == Version::V3 && !(src.is_ipv4() && mode == ChecksumMode::V3AsV2)
}

// ===== impl Advert =====

impl Advert {
    fn addr_len(&self) -> usize {
        match self.addrs.first() {
            Some(IpAddr::V6(_)) => 16,
            _ => 4,
        }
    }

    /// The VRRP message (the IP payload) sent from `src` to `dst`.
    pub fn encode(
        &self,
        src: IpAddr,
        dst: IpAddr,
        mode: ChecksumMode,
    ) -> Result<Vec<u8>, EncodeError> {
        let count = u8::try_from(self.addrs.len()).map_err(|_| EncodeError::TooManyAddresses)?;
        let v6 = self.addrs.first().is_some_and(IpAddr::is_ipv6);
        if self.addrs.iter().any(|a| a.is_ipv6() != v6) {
            return Err(EncodeError::MixedFamilies);
        }
        if !self.addrs.is_empty() && (src.is_ipv6() != v6 || dst.is_ipv6() != v6) {
            return Err(EncodeError::Family);
        }
        let mut p =
            Vec::with_capacity(HEADER_LEN + self.addrs.len() * self.addr_len() + V2_AUTH_LEN);
        match self.version {
            Version::V2 => {
                if v6 || src.is_ipv6() {
                    return Err(EncodeError::V2OverIpv6);
                }
                if !self.interval_cs.is_multiple_of(100)
                    || !(100..=25500).contains(&self.interval_cs)
                {
                    return Err(EncodeError::V2Interval(self.interval_cs));
                }
                let auth_type = match self.auth {
                    Auth::None => 0,
                    Auth::Pass(_) => 1,
                    Auth::Ah => return Err(EncodeError::Ah),
                };
                p.extend([
                    0x21,
                    self.vrid,
                    self.priority,
                    count,
                    auth_type,
                    (self.interval_cs / 100) as u8,
                    0,
                    0,
                ]);
            }
            Version::V3 => {
                if self.auth != Auth::None {
                    return Err(EncodeError::V3Auth);
                }
                if !(1..=4095).contains(&self.interval_cs) {
                    return Err(EncodeError::V3Interval(self.interval_cs));
                }
                let [hi, lo] = self.interval_cs.to_be_bytes();
                p.extend([0x31, self.vrid, self.priority, count, hi & 0x0f, lo, 0, 0]);
            }
        }
        for a in &self.addrs {
            match a {
                IpAddr::V4(a) => p.extend(a.octets()),
                IpAddr::V6(a) => p.extend(a.octets()),
            }
        }
        if self.version == Version::V2 {
            p.extend(match self.auth {
                Auth::Pass(pass) => pass,
                _ => [0; V2_AUTH_LEN],
            });
        }
        let mut s = sum(&p);
        if checksum_includes_pseudo(self.version, src, mode) {
            s += pseudo_header(src, dst, p.len()).map_err(|()| EncodeError::Family)?;
        }
        let checksum = !fold(s);
        p[6..8].copy_from_slice(&checksum.to_be_bytes());
        Ok(p)
    }

    /// Decodes the VRRP message `bytes` (the IP payload) received from `src` for `dst`,
    /// checking what RFC 5798 §7.1 / RFC 3768 §7.1 ask of the message itself (the IP layer's
    /// TTL and the instance's own rules are checked by their callers).
    pub fn decode(
        bytes: &[u8],
        src: IpAddr,
        dst: IpAddr,
        mode: ChecksumMode,
    ) -> Result<Advert, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        if src.is_ipv6() != dst.is_ipv6() {
            return Err(DecodeError::Family);
        }
        let version = match bytes[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(DecodeError::Version(v)),
        };
        if bytes[0] & 0x0f != TYPE_ADVERT {
            return Err(DecodeError::Type(bytes[0] & 0x0f));
        }
        if version == Version::V2 && src.is_ipv6() {
            return Err(DecodeError::V2OverIpv6);
        }
        let count = bytes[3];
        let addr_len = if src.is_ipv6() { 16 } else { 4 };
        let auth_len = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let need = HEADER_LEN + count as usize * addr_len + auth_len;
        if bytes.len() < need {
            return Err(DecodeError::Length {
                count,
                need,
                len: bytes.len(),
            });
        }
        let message = &bytes[..need];
        let mut s = sum(message);
        if checksum_includes_pseudo(version, src, mode) {
            s += pseudo_header(src, dst, need).map_err(|()| DecodeError::Family)?;
        }
        if fold(s) != 0xffff {
            return Err(DecodeError::Checksum);
        }
        let addrs = message[HEADER_LEN..HEADER_LEN + count as usize * addr_len]
            .chunks(addr_len)
            .map(|a| match <[u8; 16]>::try_from(a) {
                Ok(v6) => IpAddr::from(v6),
                Err(_) => IpAddr::from([a[0], a[1], a[2], a[3]]),
            })
            .collect();
        let (interval_cs, auth) = match version {
            Version::V2 => {
                let auth = match bytes[4] {
                    0 => Auth::None,
                    1 => Auth::Pass(message[need - V2_AUTH_LEN..].try_into().expect("8 bytes")),
                    2 => Auth::Ah,
                    t => return Err(DecodeError::AuthType(t)),
                };
                (bytes[5] as u16 * 100, auth)
            }
            Version::V3 => (u16::from_be_bytes([bytes[4] & 0x0f, bytes[5]]), Auth::None),
        };
        // An interval of 0 would make Master_Down_Interval nothing but the skew time: one forged
        // advert could then provoke takeovers at will. Neither RFC allows it.
        if interval_cs == 0 {
            return Err(DecodeError::ZeroInterval);
        }
        Ok(Advert {
            version,
            vrid: bytes[1],
            priority: bytes[2],
            interval_cs,
            addrs,
            auth,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    const V4_MCAST: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
    const V6_MCAST: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));

    /// keepalived 2.2.7's adverts captured on this machine kind (tests/vectors): the VRRP part
    /// of each frame, its source, and what it says.
    fn vectors() -> Vec<(&'static str, Vec<u8>, IpAddr, IpAddr, Advert)> {
        let v2 = hex(include_str!(
            "../../../tests/vectors/keepalived-2.2.7-v2-pass.hex"
        ));
        let v3 = hex(include_str!(
            "../../../tests/vectors/keepalived-2.2.7-v3-ipv4.hex"
        ));
        let v6 = hex(include_str!(
            "../../../tests/vectors/keepalived-2.2.7-v3-ipv6.hex"
        ));
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        vec![
            (
                "v2 PASS",
                v2[34..].to_vec(),
                a("192.168.11.1"),
                V4_MCAST,
                Advert {
                    version: Version::V2,
                    vrid: 51,
                    priority: 100,
                    interval_cs: 100,
                    addrs: vec![
                        a("192.168.11.200"),
                        a("192.168.11.201"),
                        a("192.168.11.202"),
                    ],
                    auth: Auth::Pass(*b"1111\0\0\0\0"),
                },
            ),
            (
                "v3 IPv4",
                v3[34..].to_vec(),
                a("192.168.11.1"),
                V4_MCAST,
                Advert {
                    version: Version::V3,
                    vrid: 52,
                    priority: 100,
                    interval_cs: 100,
                    addrs: vec![a("192.168.11.200")],
                    auth: Auth::None,
                },
            ),
            (
                "v3 IPv6",
                v6[54..].to_vec(),
                a("fe80::c829:b6ff:fec1:2b88"),
                V6_MCAST,
                Advert {
                    version: Version::V3,
                    vrid: 53,
                    priority: 100,
                    interval_cs: 100,
                    addrs: vec![a("fd00::200")],
                    auth: Auth::None,
                },
            ),
        ]
    }

    #[test]
    fn decodes_keepalived_adverts() {
        for (name, bytes, src, dst, want) in vectors() {
            assert_eq!(
                Advert::decode(&bytes, src, dst, ChecksumMode::Rfc),
                Ok(want),
                "{name}"
            );
        }
    }

    #[test]
    fn encodes_byte_for_byte_what_keepalived_sends() {
        for (name, bytes, src, dst, advert) in vectors() {
            assert_eq!(
                advert.encode(src, dst, ChecksumMode::Rfc).unwrap(),
                bytes,
                "{name}"
            );
        }
    }

    #[test]
    fn v3_checksum_as_v2_is_a_different_checksum_for_ipv4_only() {
        let (_, rfc, src, dst, advert) = vectors().remove(1);
        let as_v2 = advert.encode(src, dst, ChecksumMode::V3AsV2).unwrap();
        assert_ne!(as_v2[6..8], rfc[6..8]);
        assert_eq!(
            Advert::decode(&as_v2, src, dst, ChecksumMode::V3AsV2),
            Ok(advert.clone())
        );
        assert_eq!(
            Advert::decode(&as_v2, src, dst, ChecksumMode::Rfc),
            Err(DecodeError::Checksum)
        );
        assert_eq!(
            Advert::decode(&rfc, src, dst, ChecksumMode::V3AsV2),
            Err(DecodeError::Checksum)
        );
        // IPv6 always has the pseudo-header.
        let (_, v6, src6, dst6, advert6) = vectors().remove(2);
        assert_eq!(
            advert6.encode(src6, dst6, ChecksumMode::V3AsV2).unwrap(),
            v6
        );
    }

    #[test]
    fn rejects_what_the_rfcs_say_to_discard() {
        let (_, v2, src, dst, _) = vectors().remove(0);
        let with = |i: usize, b: u8| {
            let mut p = v2.clone();
            p[i] = b;
            p
        };
        assert_eq!(
            Advert::decode(&v2[..7], src, dst, ChecksumMode::Rfc),
            Err(DecodeError::TooShort(7))
        );
        assert_eq!(
            Advert::decode(&with(0, 0x41), src, dst, ChecksumMode::Rfc),
            Err(DecodeError::Version(4))
        );
        assert_eq!(
            Advert::decode(&with(0, 0x22), src, dst, ChecksumMode::Rfc),
            Err(DecodeError::Type(2))
        );
        assert_eq!(
            Advert::decode(&with(3, 9), src, dst, ChecksumMode::Rfc),
            Err(DecodeError::Length {
                count: 9,
                need: 52,
                len: 28
            })
        );
        assert_eq!(
            Advert::decode(&with(9, 0), src, dst, ChecksumMode::Rfc),
            Err(DecodeError::Checksum)
        );
        assert_eq!(
            Advert::decode(&v2, V6_MCAST, V6_MCAST, ChecksumMode::Rfc),
            Err(DecodeError::V2OverIpv6)
        );
    }

    /// Found by the vrrp_decode fuzz target: a zero interval decoded but could not be sent.
    #[test]
    fn zero_interval_is_malformed() {
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let advert = Advert {
            version: Version::V2,
            vrid: 1,
            priority: 100,
            interval_cs: 100,
            addrs: vec![],
            auth: Auth::None,
        };
        let mut bytes = advert.encode(src, V4_MCAST, ChecksumMode::Rfc).unwrap();
        // Interval 1 s → 0 s, and the checksum adjusted by the same amount.
        bytes[5] = 0;
        let checksum = u16::from_be_bytes([bytes[6], bytes[7]]) + 1;
        bytes[6..8].copy_from_slice(&checksum.to_be_bytes());
        assert_eq!(
            Advert::decode(&bytes, src, V4_MCAST, ChecksumMode::Rfc),
            Err(DecodeError::ZeroInterval)
        );
    }

    #[test]
    fn encode_refuses_what_cannot_be_sent() {
        let base = Advert {
            version: Version::V3,
            vrid: 1,
            priority: 100,
            interval_cs: 100,
            addrs: vec![],
            auth: Auth::None,
        };
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let enc = |a: Advert| a.encode(src, V4_MCAST, ChecksumMode::Rfc);
        assert_eq!(
            enc(Advert {
                interval_cs: 4096,
                ..base.clone()
            }),
            Err(EncodeError::V3Interval(4096))
        );
        assert_eq!(
            enc(Advert {
                version: Version::V2,
                interval_cs: 150,
                ..base.clone()
            }),
            Err(EncodeError::V2Interval(150))
        );
        assert_eq!(
            enc(Advert {
                auth: Auth::Pass([0; 8]),
                ..base.clone()
            }),
            Err(EncodeError::V3Auth)
        );
        assert_eq!(
            enc(Advert {
                addrs: vec!["10.0.0.9".parse().unwrap(), "fd00::1".parse().unwrap()],
                ..base.clone()
            }),
            Err(EncodeError::MixedFamilies)
        );
        assert_eq!(
            enc(Advert {
                addrs: vec![src; 256],
                ..base
            }),
            Err(EncodeError::TooManyAddresses)
        );
    }

    #[test]
    fn round_trips_every_shape() {
        let src4: IpAddr = "10.0.0.1".parse().unwrap();
        let src6: IpAddr = "fe80::1".parse().unwrap();
        for n in [0usize, 1, 7, 255] {
            for (version, v6) in [
                (Version::V2, false),
                (Version::V3, false),
                (Version::V3, true),
            ] {
                let (src, dst) = if v6 {
                    (src6, V6_MCAST)
                } else {
                    (src4, V4_MCAST)
                };
                let addrs = (0..n)
                    .map(|i| {
                        if v6 {
                            IpAddr::V6(Ipv6Addr::from((0xfd00u128 << 112) | i as u128))
                        } else {
                            IpAddr::from([10, 1, (i >> 8) as u8, i as u8])
                        }
                    })
                    .collect();
                let advert = Advert {
                    version,
                    vrid: 200,
                    priority: 254,
                    interval_cs: if version == Version::V2 { 25500 } else { 4095 },
                    addrs,
                    auth: if version == Version::V2 {
                        Auth::Pass(*b"secret!!")
                    } else {
                        Auth::None
                    },
                };
                let bytes = advert.encode(src, dst, ChecksumMode::Rfc).unwrap();
                assert_eq!(
                    Advert::decode(&bytes, src, dst, ChecksumMode::Rfc),
                    Ok(advert),
                    "{version:?} v6={v6} n={n}"
                );
            }
        }
    }

    #[test]
    fn decode_never_panics_on_any_prefix_or_byte_flip() {
        for (_, bytes, src, dst, _) in vectors() {
            for cut in 0..=bytes.len() {
                let _ = Advert::decode(&bytes[..cut], src, dst, ChecksumMode::Rfc);
            }
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    b[i] ^= 1 << bit;
                    // Every single-bit error is caught (by the checksum or an earlier check).
                    assert!(
                        Advert::decode(&b, src, dst, ChecksumMode::Rfc).is_err(),
                        "byte {i} bit {bit}"
                    );
                }
            }
        }
    }
}
