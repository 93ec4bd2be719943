//! The LVS direct-routing load balancer: TCP/UDP for a virtual server (`LB_SERVICES`) gets a
//! real server — the one its flow already has, the client's persistent one, or the next by
//! the service's schedule — and leaves on the interface it came in on with only the
//! destination MAC rewritten to the real server's (LVS-DR: the real server holds the VIP on
//! its loopback and answers the client directly). Only while this node holds the VIP, when
//! the service follows one; otherwise, and for anything else, the kernel gets the frame.

use agent_common::{
    Counter, FlowKey, LB_REAL_UP, LB_SVC_FOLLOW_VIP, LB_SVC_HASH, LB_SVC_HASH_PORT, Persist,
    PersistKey, Real, Service, ServiceKey, VipKey,
};
use aya_ebpf::{bindings::xdp_action, helpers::bpf_ktime_get_ns, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    maps::{
        self, LB_FLOWS, LB_PERSIST, LB_REAL_STATS, LB_REALS, LB_RING, LB_RR, LB_SERVICES, VIPS,
    },
    parse::{L2, ptr_at},
};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[inline(always)]
fn pass(counter: Counter) -> u32 {
    maps::bump(counter);
    xdp_action::XDP_PASS
}

/// A real server that may take traffic.
#[inline(always)]
fn usable(index: u32) -> Option<&'static Real> {
    let real = LB_REALS.get(index)?;
    (real.flags & LB_REAL_UP != 0).then_some(real)
}

/// Mixes the client's address (and port) into a ring index (a murmur3 finaliser: every bit
/// of the input moves every bit of the output).
#[inline(always)]
fn hash(addr: [u8; 4], port: u16) -> u32 {
    let mut h = u32::from_be_bytes(addr) ^ (port as u32).wrapping_mul(0x9e37_79b1);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The next real server of `svc`'s schedule for a new flow from `src:sport`.
#[inline(always)]
fn schedule(svc: &Service, src: [u8; 4], sport: u16) -> Option<u32> {
    if svc.ring_len == 0 {
        return None;
    }
    let slot = if svc.flags & LB_SVC_HASH != 0 {
        let port = if svc.flags & LB_SVC_HASH_PORT != 0 {
            sport
        } else {
            0
        };
        hash(src, port) % svc.ring_len
    } else {
        let pos = LB_RR.get_ptr_mut(svc.id)?;
        // SAFETY: per-CPU slot, only this CPU's program writes it.
        let pos = unsafe { &mut *pos };
        let here = *pos % svc.ring_len;
        *pos = here + 1;
        here
    };
    LB_RING.get(svc.ring_base + slot).copied()
}

/// TCP or UDP over IPv4 (`ip` checked to lie in the frame, `ihl` its header length): forwarded
/// when it is for an active virtual server, passed otherwise.
#[inline(always)]
pub fn ipv4(ctx: &XdpContext, l2: &L2, ip: &Ipv4Hdr, ihl: usize) -> Option<u32> {
    let proto = ip.proto;
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    // A fragment carries no ports after the first one: the kernel reassembles it.
    if u16::from_be_bytes(ip.frags) & 0x3fff != 0 {
        return None;
    }
    let ports = ptr_at::<[u8; 4]>(ctx, l2.l3 + ihl)?;
    // SAFETY: ptr_at checked the four bytes lie inside the frame.
    let ports = unsafe { *ports };
    let dst = ip.dst_addr;
    let key = ServiceKey {
        addr: dst,
        port: u16::from_be_bytes([ports[2], ports[3]]),
        proto,
        _pad: 0,
    };
    // SAFETY: the value is only read, and entries are replaced whole by the agent.
    let svc = unsafe { LB_SERVICES.get(key) }?;
    if svc.flags & LB_SVC_FOLLOW_VIP != 0
        // SAFETY: only the presence of the entry is read.
        && unsafe { VIPS.get(VipKey::v4(l2.ifindex, l2.vlan, dst)) }.is_none()
    {
        return Some(pass(Counter::LbPassInactive));
    }
    let src = ip.src_addr;
    let flow = FlowKey {
        src,
        dst,
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
        proto,
        _pad: [0; 3],
    };
    // The flow's real server while it stays up; a new flow (or one whose server went) gets
    // the client's persistent one, or the schedule's next.
    // SAFETY: the value is copied out at once.
    let pinned = unsafe { LB_FLOWS.get(flow) }.copied();
    let (index, real) = match pinned.and_then(|i| Some((i, usable(i)?))) {
        Some(found) => found,
        None => {
            let persist = (svc.persist_ns != 0).then_some(PersistKey {
                service: svc.id,
                client: src,
            });
            // SAFETY: helper without arguments.
            let now = unsafe { bpf_ktime_get_ns() };
            let kept = persist.and_then(|k| {
                // SAFETY: the value is copied out at once.
                let p = unsafe { LB_PERSIST.get(k) }.copied()?;
                (now.wrapping_sub(p.last_ns) < svc.persist_ns).then_some(p.real)
            });
            let chosen = match kept.and_then(|i| Some((i, usable(i)?))) {
                Some(found) => found,
                None => {
                    let Some(i) = schedule(svc, src, u16::from_be_bytes([ports[0], ports[1]]))
                    else {
                        return Some(pass(Counter::LbPassNoReal));
                    };
                    match usable(i) {
                        Some(real) => (i, real),
                        None => return Some(pass(Counter::LbPassNoReal)),
                    }
                }
            };
            if let Some(k) = persist {
                let value = Persist {
                    real: chosen.0,
                    _pad: 0,
                    last_ns: now,
                };
                let _ = LB_PERSIST.insert(k, value, 0);
            }
            let _ = LB_FLOWS.insert(flow, chosen.0, 0);
            chosen
        }
    };
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked the header lies inside the frame; nothing else aliases it.
    let eth = unsafe { &mut *eth };
    // Out of the interface it came in on, from the address it was sent to (this node's, or
    // the VIP's virtual MAC), to the real server.
    eth.src_addr = eth.dst_addr;
    eth.dst_addr = real.mac;
    if let Some(t) = LB_REAL_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU's program writes it.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += (ctx.data_end() - ctx.data()) as u64;
        }
    }
    Some(pass_tx())
}

#[inline(always)]
fn pass_tx() -> u32 {
    maps::bump(Counter::LbForwarded);
    xdp_action::XDP_TX
}
