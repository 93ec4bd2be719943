//! VRRP advert validation in the kernel: the checks RFC 5798 §7.1 / RFC 3768 §7.1 and
//! keepalived make before the state machine, so only valid adverts reach the agent.

use agent_common::{
    Counter, FAMILY_V4, FAMILY_V6, IFACE_FILTER_ARMED, PeerKey, VRID_ALLOW_V2, VRID_ALLOW_V3,
    VRID_AUTH_PASS, VRID_CHECK_SRC, VRID_CHECK_TTL, VRID_V3_CHECKSUM_AS_V2, VridConfig, VridKey,
    VrrpVerdict,
};
use aya_ebpf::{
    EbpfContext as _,
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, bpf_xdp_load_bytes},
    programs::XdpContext,
};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    maps::{self, IFACE_CONFIG, PEERS, SCRATCH, SCRATCH_WORDS, VRID_CONFIG},
    parse::{L2, ptr_at, remaining},
};

const IPPROTO_VRRP: u8 = 112;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// RFC 5798 §5.1.1.3 / §5.1.2.3: sent with TTL / hop limit 255, and receivers MUST check it.
const VRRP_TTL: u8 = 255;
const VRRP_TYPE_ADVERT: u8 = 1;
const VRRP_HDR_LEN: usize = 8;
/// RFC 3768 §5.3.10: 8 bytes of authentication data after the addresses (v2 only).
const V2_AUTH_LEN: usize = 8;
const V2_AUTH_PASS: u8 = 1;
/// Longest VRRP message whose checksum the program verifies: every IPv4 advert (255 addresses
/// and v2 authentication data make 1036 bytes) and IPv6 adverts of up to 64 addresses. A longer
/// one is passed unchecked (the agent checks everything it reads anyway).
const MAX_CHECKED_LEN: usize = SCRATCH_WORDS * 4;

/// The fixed part of a VRRP packet, v2 and v3 (RFC 3768 §5.1, RFC 5798 §5.1):
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// v2: |   Auth Type   |   Adver Int   |          Checksum             |
/// v3: |(rsvd) |     Max Adver Int     |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[repr(C)]
struct VrrpHdr {
    vers_type: u8,
    vrid: u8,
    priority: u8,
    count: u8,
    /// v2: auth type; v3: reserved nibble and the high nibble of Max Adver Int.
    word1_hi: u8,
    /// v2: Adver Int (s); v3: low byte of Max Adver Int (cs).
    word1_lo: u8,
    checksum: [u8; 2],
}

/// What the IP layer tells about a VRRP packet.
struct Carrier {
    family: u8,
    /// Address size in the VRRP address list.
    addr_len: usize,
    ttl: u8,
    src: [u8; 16],
    /// One's-complement sum of the pseudo-header without its length field (v3).
    pseudo: u32,
    /// Offset of the VRRP header and the IP payload length.
    off: usize,
    len: usize,
}

enum Outcome {
    Checked(VrrpVerdict),
    /// Well-formed but too long to verify in the kernel.
    Unchecked,
}

#[inline(always)]
fn pass_other() -> u32 {
    maps::bump(Counter::PassOther);
    xdp_action::XDP_PASS
}

#[inline(always)]
fn drop_with(counter: Counter) -> u32 {
    maps::bump(counter);
    xdp_action::XDP_DROP
}

#[inline(always)]
fn sum_words(bytes: &[u8]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < bytes.len() {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// `LB`: virtual servers' traffic goes to the balancer (the `vrrp_lb_xdp` program).
#[inline(always)]
pub fn ipv4<const LB: bool>(ctx: &XdpContext, l2: &L2) -> u32 {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l2.l3) else {
        return pass_other();
    };
    // SAFETY: ptr_at checked the header lies inside the frame.
    let ip = unsafe { &*ip };
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ip.proto != IPPROTO_VRRP {
        // TCP/UDP for a virtual server goes to its real server; the rest to the kernel.
        if LB
            && ihl >= Ipv4Hdr::LEN
            && let Some(action) = crate::lb::ipv4(ctx, l2, ip, ihl)
        {
            return action;
        }
        return pass_other();
    }
    let total = u16::from_be_bytes(ip.tot_len) as usize;
    if ihl < Ipv4Hdr::LEN || total < ihl {
        return drop_with(Counter::DropIpHeader);
    }
    // MF set or an offset: a fragment. VRRP never fragments; let the kernel reassemble it and
    // the agent judge the result.
    if u16::from_be_bytes(ip.frags) & 0x3fff != 0 {
        maps::bump(Counter::VrrpPassUnchecked);
        return xdp_action::XDP_PASS;
    }
    if remaining(ctx, l2.l3) < total {
        return drop_with(Counter::DropTruncated);
    }
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&ip.src_addr);
    let pseudo = sum_words(&ip.src_addr) + sum_words(&ip.dst_addr) + IPPROTO_VRRP as u32;
    let carrier = Carrier {
        family: FAMILY_V4,
        addr_len: 4,
        ttl: ip.ttl,
        src,
        pseudo,
        off: l2.l3 + ihl,
        len: total - ihl,
    };
    advert(ctx, l2, &carrier)
}

#[inline(always)]
pub fn ipv6<const LB: bool>(ctx: &XdpContext, l2: &L2) -> u32 {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l2.l3) else {
        return pass_other();
    };
    // SAFETY: ptr_at checked the header lies inside the frame.
    let ip = unsafe { &*ip };
    // VRRP directly after the fixed header only; extension headers pass to the kernel.
    if ip.next_hdr != IPPROTO_VRRP {
        // TCP/UDP maybe for an IPv6 virtual server: the balancer's IPv6 program decides.
        if LB && (ip.next_hdr == IPPROTO_TCP || ip.next_hdr == IPPROTO_UDP) {
            crate::lb::to_ipv6(ctx);
        }
        return pass_other();
    }
    let len = u16::from_be_bytes(ip.payload_len) as usize;
    if remaining(ctx, l2.l3 + Ipv6Hdr::LEN) < len {
        return drop_with(Counter::DropTruncated);
    }
    let pseudo = sum_words(&ip.src_addr) + sum_words(&ip.dst_addr) + IPPROTO_VRRP as u32;
    let carrier = Carrier {
        family: FAMILY_V6,
        addr_len: 16,
        ttl: ip.hop_limit,
        src: ip.src_addr,
        pseudo,
        off: l2.l3 + Ipv6Hdr::LEN,
        len,
    };
    advert(ctx, l2, &carrier)
}

#[inline(always)]
fn advert(ctx: &XdpContext, l2: &L2, ip: &Carrier) -> u32 {
    if ip.len < VRRP_HDR_LEN {
        return drop_with(Counter::DropLength);
    }
    let Some(hdr) = ptr_at::<VrrpHdr>(ctx, ip.off) else {
        return drop_with(Counter::DropTruncated);
    };
    // SAFETY: ptr_at checked the header lies inside the frame.
    let hdr = unsafe { &*hdr };
    let key = VridKey {
        ifindex: l2.ifindex,
        vlan: l2.vlan,
        vrid: hdr.vrid,
        family: ip.family,
    };
    // SAFETY: the value is only read, and entries are replaced whole by the agent.
    let Some(config) = (unsafe { VRID_CONFIG.get(key) }) else {
        // SAFETY: as above.
        let armed = unsafe { IFACE_CONFIG.get(l2.ifindex) }
            .is_some_and(|c| c.flags & IFACE_FILTER_ARMED != 0);
        if armed {
            maps::count_vrid(maps::vrid_stats(&key), VrrpVerdict::UnknownVrid, ip.len);
            return xdp_action::XDP_DROP;
        }
        maps::bump(Counter::VrrpPassUnfiltered);
        return xdp_action::XDP_PASS;
    };
    // Named peers: anything else is dropped first, before any work is spent on it (a flood
    // from a host that is not a peer costs one lookup per packet).
    if config.flags & VRID_CHECK_SRC != 0 {
        let peer = PeerKey {
            vrid: key,
            addr: ip.src,
        };
        // SAFETY: only the presence of the entry is read.
        if unsafe { PEERS.get(peer) }.is_none() {
            maps::count_vrid(maps::vrid_stats(&key), VrrpVerdict::Source, ip.len);
            return xdp_action::XDP_DROP;
        }
    }
    match verdict(ctx, config, hdr, ip) {
        Outcome::Unchecked => {
            maps::bump(Counter::VrrpPassUnchecked);
            xdp_action::XDP_PASS
        }
        Outcome::Checked(VrrpVerdict::Valid) => {
            let mut stats = maps::vrid_stats(&key);
            if let Some(stats) = stats.as_deref_mut() {
                let version = hdr.vers_type >> 4;
                let last = &mut stats.last;
                // SAFETY: helper without arguments.
                last.last_ns = unsafe { bpf_ktime_get_ns() };
                last.src = ip.src;
                last.priority = hdr.priority;
                last.version = version;
                last.interval = if version == 2 {
                    hdr.word1_lo as u16
                } else {
                    (((hdr.word1_hi & 0x0f) as u16) << 8) | hdr.word1_lo as u16
                };
            }
            maps::count_vrid(stats, VrrpVerdict::Valid, ip.len);
            xdp_action::XDP_PASS
        }
        Outcome::Checked(invalid) => {
            maps::count_vrid(maps::vrid_stats(&key), invalid, ip.len);
            xdp_action::XDP_DROP
        }
    }
}

/// The receive checks, in keepalived's order: TTL, version, type, length, checksum, auth.
#[inline(always)]
fn verdict(ctx: &XdpContext, config: &VridConfig, hdr: &VrrpHdr, ip: &Carrier) -> Outcome {
    use VrrpVerdict::*;
    let flags = config.flags;
    if flags & VRID_CHECK_TTL != 0 && ip.ttl != VRRP_TTL {
        return Outcome::Checked(Ttl);
    }
    let version = hdr.vers_type >> 4;
    let allowed = match version {
        // VRRPv2 is IPv4 only (RFC 3768).
        2 => ip.family == FAMILY_V4 && flags & VRID_ALLOW_V2 != 0,
        3 => flags & VRID_ALLOW_V3 != 0,
        _ => false,
    };
    if !allowed {
        return Outcome::Checked(Version);
    }
    if hdr.vers_type & 0x0f != VRRP_TYPE_ADVERT {
        return Outcome::Checked(Type);
    }
    let auth_len = if version == 2 { V2_AUTH_LEN } else { 0 };
    let need = VRRP_HDR_LEN + hdr.count as usize * ip.addr_len + auth_len;
    if ip.len < need {
        return Outcome::Checked(Length);
    }
    if need > MAX_CHECKED_LEN {
        return Outcome::Unchecked;
    }
    // v3 includes the pseudo-header (RFC 5798 §5.2.8) unless keepalived's v3_checksum_as_v2
    // says the peers compute it the v2 way (IPv4 only).
    let pseudo = if version == 3 && !(ip.family == FAMILY_V4 && flags & VRID_V3_CHECKSUM_AS_V2 != 0)
    {
        ip.pseudo + need as u32
    } else {
        0
    };
    // Copy the message out of the packet: everything below reads the copy at constant bounds.
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return Outcome::Unchecked;
    };
    // SAFETY: per-CPU scratch value, used by this program invocation only.
    let words = unsafe { &mut *scratch };
    // The verifier must see the length bounded on the very register passed to the helper;
    // LLVM would fold the check above into one on `count`, so re-read it opaquely and bound it.
    // SAFETY: reading a local.
    let len = unsafe { core::ptr::read_volatile(&need) };
    if len > MAX_CHECKED_LEN {
        return Outcome::Unchecked;
    }
    // SAFETY: the buffer is MAX_CHECKED_LEN bytes and len <= MAX_CHECKED_LEN.
    let copied = unsafe {
        bpf_xdp_load_bytes(
            ctx.as_ptr().cast(),
            ip.off as u32,
            words.as_mut_ptr().cast(),
            len as u32,
        )
    };
    if copied != 0 {
        return Outcome::Checked(Length);
    }
    if !checksum_ok(words, need / 4, pseudo) {
        return Outcome::Checked(Checksum);
    }
    if version == 2 {
        let want = if flags & VRID_AUTH_PASS != 0 {
            V2_AUTH_PASS
        } else {
            0
        };
        if hdr.word1_hi != want {
            return Outcome::Checked(Auth);
        }
        // The password is the last 8 bytes of the message: two words of the copy.
        let last = need / 4;
        if want == V2_AUTH_PASS && !pass_matches(words, last, &config.auth_pass) {
            return Outcome::Checked(Auth);
        }
    }
    Outcome::Checked(Valid)
}

/// RFC 1071 sum over the first `count` words of `words` plus `initial`: true when the message's
/// checksum field makes it fold to 0xffff.
#[inline(always)]
fn checksum_ok(words: &[u32; SCRATCH_WORDS], count: usize, initial: u32) -> bool {
    let mut sum = initial;
    for (i, word) in words.iter().enumerate() {
        if i >= count {
            break;
        }
        // The copy holds wire (big-endian) bytes: read them as such, then add the two halves.
        let w = u32::from_be(*word);
        sum += (w >> 16) + (w & 0xffff);
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == 0xffff
}

/// True when the two words before word `end` of the copy are the 8-byte password.
#[inline(always)]
fn pass_matches(words: &[u32; SCRATCH_WORDS], end: usize, pass: &[u8; 8]) -> bool {
    let (Some(a), Some(b)) = (
        words.get(end.wrapping_sub(2)),
        words.get(end.wrapping_sub(1)),
    ) else {
        return false;
    };
    let want_a = u32::from_ne_bytes([pass[0], pass[1], pass[2], pass[3]]);
    let want_b = u32::from_ne_bytes([pass[4], pass[5], pass[6], pass[7]]);
    *a == want_a && *b == want_b
}
