//! The LVS direct-routing load balancer: TCP/UDP for a virtual server (`LB_SERVICES`) gets a
//! real server — the one its flow already has, the client's persistent one, or the next by
//! the service's schedule — and leaves on the interface it came in on with only the
//! destination MAC rewritten to the real server's (LVS-DR: the real server holds the VIP on
//! its loopback and answers the client directly). Only while this node holds the VIP, when
//! the service follows one; otherwise, and for anything else, the kernel gets the frame.

use agent_common::{
    Counter, FLOW_CLOSED, FLOW_OPEN, FLOW_UNCOUNTED, Flow, FlowKey, LB_LEAST_MAX, LB_LOCALITY_SET,
    LB_REAL_UP, LB_SVC_FOLLOW_VIP, LB_SVC_HASH, LB_SVC_HASH_DST, LB_SVC_HASH_PORT, LB_SVC_LBLC,
    LB_SVC_LBLCR, LB_SVC_LEAST, LB_SVC_NQ, LB_SVC_OPS, LB_SVC_OVF, LB_SVC_SED, LB_SVC_SPARE,
    LB_SVC_TWOS, LB_SVC_WEIGHTED, Locality, LocalityKey, Persist, PersistKey, Real, Service,
    ServiceKey, VipKey,
};
use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    maps::{
        self, LB_CONNS, LB_CONNS_BASE, LB_ENTRY_STATS, LB_FLOWS, LB_LOCALITY, LB_PERSIST,
        LB_REAL_STATS, LB_REALS, LB_RING, LB_RR, LB_SERVICES, VIPS,
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

/// A real server's open flows as this CPU can tell: what the agent last counted, plus what
/// this CPU opened since (its share of the flows the agent has not counted yet).
#[inline(always)]
fn open_flows(index: u32, real: &Real) -> u64 {
    let mine = LB_CONNS.get(index).map_or(0, |c| c.opened);
    let base = LB_CONNS_BASE.get(index).copied().unwrap_or(0);
    real.conns as u64 + mine.saturating_sub(base)
}

/// lc / wlc: the ring's up server with the fewest open flows (for its weight: IPVS compares
/// overhead × other weight, no division). Ties go to the first, as in IPVS.
#[inline(always)]
fn least(svc: &Service) -> Option<u32> {
    let weighted = svc.flags & LB_SVC_WEIGHTED != 0;
    // sed and nq count the flow about to be added (IPVS: (C + 1) / W).
    let plus = u64::from(svc.flags & (LB_SVC_SED | LB_SVC_NQ) != 0);
    let mut best: Option<(u32, u64, u64)> = None;
    for i in 0..LB_LEAST_MAX {
        if i >= svc.ring_len {
            break;
        }
        let Some(&index) = LB_RING.get(svc.ring_base + i) else {
            break;
        };
        let Some(real) = LB_REALS.get(index) else {
            continue;
        };
        if real.flags & LB_REAL_UP == 0 || (weighted && real.weight == 0) {
            continue;
        }
        let open = open_flows(index, real);
        // nq: an idle server takes it at once; ovf: the first not yet at its weight.
        if (svc.flags & LB_SVC_NQ != 0 && open == 0)
            || (svc.flags & LB_SVC_OVF != 0 && open < real.weight as u64)
        {
            return Some(index);
        }
        if svc.flags & LB_SVC_OVF != 0 {
            continue;
        }
        let load = open + plus;
        let weight = if weighted { real.weight as u64 } else { 1 };
        let better = match best {
            None => true,
            Some((_, l, w)) => load * w < l * weight,
        };
        if better {
            best = Some((index, load, weight));
        }
    }
    best.map(|(index, _, _)| index)
}

/// twos (IPVS's "power of two choices"): two servers of the ring at random (the ring holds
/// each as often as its weight, so the draw is weighted as IPVS's), the one with fewer open
/// flows for its weight; one that is down or at weight 0 loses to the other.
#[inline(always)]
fn two_choices(svc: &Service) -> Option<u32> {
    let pick = || {
        // SAFETY: helper without arguments.
        let r = unsafe { bpf_get_prandom_u32() };
        // (No division that could panic: the verifier refuses a program ending in one.)
        let index = *LB_RING.get(svc.ring_base + r.checked_rem(svc.ring_len)?)?;
        let real = LB_REALS.get(index)?;
        (real.flags & LB_REAL_UP != 0 && real.weight != 0)
            .then(|| (index, open_flows(index, real), real.weight as u64))
    };
    // Loads and weights are defined (0) on every path: the optimiser computes the products
    // before it knows which draws count, and an undefined value may sit in a register that
    // holds a pointer, whose multiplication the verifier refuses.
    let (a, la, wa) = pick().map_or((None, 0, 0), |(i, l, w)| (Some(i), l, w));
    let (b, lb, wb) = pick().map_or((None, 0, 0), |(i, l, w)| (Some(i), l, w));
    match (a, b) {
        (Some(a), Some(b)) => Some(if lb * wa < la * wb { b } else { a }),
        // Both drawn servers unusable (the ring holds up servers only, but one may just have
        // gone): the kernel gets this one. (No fallback walk: a second copy of the
        // least-loaded loop would double the verifier's work at every load.)
        (a, b) => a.or(b),
    }
}

/// lblcr: a set that has not changed for this long loses its most loaded server (IPVS's
/// `lblcr_expiration`, a day).
const LOCALITY_SHRINK_NS: u64 = 24 * 3600 * 1_000_000_000;

/// lblc / lblcr: the destination's server (lblcr: the least loaded of its set for its
/// weight), unless none is usable or it is overloaded — over its weight in open flows while
/// another server of the service is under half its own (IPVS's `is_overloaded`; the agent
/// says whether there is such a server, `LB_SVC_SPARE`).
#[inline(always)]
fn locality(svc: &Service, key: LocalityKey, now: u64) -> Option<u32> {
    let entry = LB_LOCALITY.get_ptr_mut(key)?;
    // SAFETY: the value stays valid for this run (LRU map, freed after an RCU grace
    // period); concurrent writers only move servers in and out of the set.
    let e = unsafe { &mut *entry };
    // The best and worst so far as plain values, defined on every path (an Option's payload
    // may sit undefined in a register the verifier then refuses to read).
    let (mut found, mut best, mut best_open, mut best_weight) = (false, 0u32, 0u64, 0u64);
    let (mut worst, mut worst_open, mut worst_weight) = (LB_LOCALITY_SET, 0u64, 0u64);
    for k in 0..LB_LOCALITY_SET {
        if k as u32 >= e.len {
            break;
        }
        let index = e.reals[k];
        let Some(real) = usable(index) else {
            continue;
        };
        if real.weight == 0 {
            continue;
        }
        let (open, weight) = (open_flows(index, real), real.weight as u64);
        if !found || open * best_weight < best_open * weight {
            (best, best_open, best_weight) = (index, open, weight);
        }
        if !found || open * worst_weight > worst_open * weight {
            (worst, worst_open, worst_weight) = (k, open, weight);
        }
        found = true;
    }
    if svc.flags & LB_SVC_LBLCR != 0
        && e.len > 1
        && now.wrapping_sub(e.modified_ns) > LOCALITY_SHRINK_NS
        && worst < LB_LOCALITY_SET
    {
        let moved = match e.len {
            2 => e.reals[1],
            3 => e.reals[2],
            _ => e.reals[LB_LOCALITY_SET - 1],
        };
        if let Some(slot) = e.reals.get_mut(worst) {
            *slot = moved;
        }
        e.len -= 1;
        e.modified_ns = now;
    }
    if !found || (svc.flags & LB_SVC_SPARE != 0 && best_open > best_weight) {
        return None;
    }
    Some(best)
}

/// lblc / lblcr: `index` (the schedule's choice for a new or overloaded destination) becomes
/// the destination's server (lblc), or joins its set (lblcr; a full set loses the server that
/// joined first).
#[inline(always)]
fn remember(svc: &Service, key: LocalityKey, index: u32, now: u64) {
    if svc.flags & LB_SVC_LBLCR != 0
        && let Some(entry) = LB_LOCALITY.get_ptr_mut(key)
    {
        // SAFETY: as in `locality`.
        let e = unsafe { &mut *entry };
        // Already in the set: nothing changes (IPVS's ip_vs_dest_set_insert).
        for k in 0..LB_LOCALITY_SET {
            if (k as u32) < e.len && e.reals[k] == index {
                return;
            }
        }
        if (e.len as usize) < LB_LOCALITY_SET {
            if let Some(slot) = e.reals.get_mut(e.len as usize) {
                *slot = index;
                e.len += 1;
            }
        } else {
            e.reals = [e.reals[1], e.reals[2], e.reals[3], index];
        }
        e.modified_ns = now;
        return;
    }
    let value = Locality {
        reals: [index, 0, 0, 0],
        len: 1,
        _pad: 0,
        modified_ns: now,
    };
    let _ = LB_LOCALITY.insert(key, value, 0);
}

/// The next real server of `svc`'s schedule for a new flow from `src:sport` to `dst`.
#[inline(always)]
fn schedule(svc: &Service, src: [u8; 4], dst: [u8; 4], sport: u16, now: u64) -> Option<u32> {
    if svc.ring_len == 0 {
        return None;
    }
    if svc.flags & (LB_SVC_LBLC | LB_SVC_LBLCR) != 0 {
        // lblc / lblcr: the destination's server(s); a new or overloaded destination gets
        // the less loaded of two servers drawn by weight (twos), where IPVS walks every
        // server (wlc): a second walk of the ring here would take the verifier's work past
        // the kernel's limit.
        let key = LocalityKey {
            service: svc.id,
            dest: dst,
        };
        if let Some(index) = locality(svc, key, now) {
            return Some(index);
        }
        let index = two_choices(svc)?;
        remember(svc, key, index, now);
        return Some(index);
    }
    if svc.flags & LB_SVC_TWOS != 0 {
        return two_choices(svc);
    }
    if svc.flags & LB_SVC_LEAST != 0 {
        return least(svc);
    }
    let slot = if svc.flags & LB_SVC_HASH != 0 {
        let port = if svc.flags & LB_SVC_HASH_PORT != 0 {
            sport
        } else {
            0
        };
        let addr = if svc.flags & LB_SVC_HASH_DST != 0 {
            dst
        } else {
            src
        };
        hash(addr, port) % svc.ring_len
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
    let flags = if proto == IPPROTO_TCP {
        tcp_flags(ctx, l2.l3 + ihl)
    } else {
        0
    };
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
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // The flow's real server while it stays up; a new flow (or one whose server went) gets
    // the client's persistent one, or the schedule's next.
    let pinned = LB_FLOWS.get_ptr_mut(flow);
    // SAFETY: the value stays valid for this run (an LRU map frees entries after an RCU
    // grace period); only this flow's packets write it.
    let kept = pinned.and_then(|f| {
        let f = unsafe { &mut *f };
        let real = usable(f.real)?;
        Some((f, real))
    });
    let (index, real) = match kept {
        Some((f, real)) => {
            // A client's FIN or RST closes the flow for lc/wlc (it keeps its server for the
            // rest of the exchange); the time it was seen moves once a second at most.
            if f.closed == FLOW_OPEN && flags & (TCP_FIN | TCP_RST) != 0 {
                f.closed = FLOW_CLOSED;
                if let Some(c) = LB_CONNS.get_ptr_mut(f.real) {
                    // SAFETY: per-CPU slot, only this CPU's program writes it.
                    unsafe { (*c).closed += 1 };
                }
            }
            if now.wrapping_sub(f.last_ns) > 1_000_000_000 {
                f.last_ns = now;
                // A client's connection keeps its persistence alive (IPVS keeps a template
                // while it controls connections): renewed with the flow, once a second.
                if svc.persist_ns != 0 {
                    let key = PersistKey {
                        service: svc.id,
                        client: masked(src, svc.persist_mask),
                    };
                    let value = Persist {
                        real: f.real,
                        _pad: 0,
                        last_ns: now,
                    };
                    let _ = LB_PERSIST.insert(key, value, 0);
                }
            }
            (f.real, real)
        }
        None => {
            let persist = (svc.persist_ns != 0).then_some(PersistKey {
                service: svc.id,
                client: masked(src, svc.persist_mask),
            });
            let kept = persist.and_then(|k| {
                // SAFETY: the value is copied out at once.
                let p = unsafe { LB_PERSIST.get(k) }.copied()?;
                (now.wrapping_sub(p.last_ns) < svc.persist_ns).then_some(p.real)
            });
            let chosen = match kept.and_then(|i| Some((i, usable(i)?))) {
                Some(found) => found,
                None => {
                    let Some(i) =
                        schedule(svc, src, dst, u16::from_be_bytes([ports[0], ports[1]]), now)
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
            // Counted from the client's SYN only (a plain one: no ACK, RST or FIN).
            let value = Flow {
                real: chosen.0,
                closed: if proto != IPPROTO_TCP
                    || flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN) == TCP_SYN
                {
                    FLOW_OPEN
                } else {
                    FLOW_UNCOUNTED
                },
                last_ns: now,
            };
            // ops (UDP only): no flow is kept, so each datagram is scheduled. The flag is read
            // here, not earlier: a flag held from the start would split every path before
            // this one in two for the verifier (it nearly doubled its work).
            // SAFETY: `svc` points into the map value, valid for this run.
            let ops = unsafe { core::ptr::read_volatile(&svc.flags) } & LB_SVC_OPS != 0;
            if !ops
                && LB_FLOWS.insert(flow, value, 0).is_ok()
                && value.closed == FLOW_OPEN
                && let Some(c) = LB_CONNS.get_ptr_mut(chosen.0)
            {
                // SAFETY: per-CPU slot, only this CPU's program writes it.
                unsafe { (*c).opened += 1 };
            }
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
    // Counted for the real server and for the address it came to (each looked up and
    // checked on its own: the optimiser would otherwise test both pointers at once, with an
    // OR the verifier refuses).
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(t) = LB_REAL_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU's program writes it.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += len;
        }
    }
    if let Some(t) = LB_ENTRY_STATS.get_ptr_mut(svc.entry) {
        // SAFETY: as above.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += len;
        }
    }
    Some(pass_tx())
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The flags of the TCP segment at `l4` (byte 13 of its header; none if it is cut short).
#[inline(always)]
fn tcp_flags(ctx: &XdpContext, l4: usize) -> u8 {
    // SAFETY: ptr_at checked the 14 bytes lie inside the frame.
    ptr_at::<[u8; 14]>(ctx, l4).map_or(0, |h| unsafe { (*h)[13] })
}

/// The client's address under `persistence_granularity`'s netmask.
#[inline(always)]
fn masked(addr: [u8; 4], mask: [u8; 4]) -> [u8; 4] {
    (u32::from_ne_bytes(addr) & u32::from_ne_bytes(mask)).to_ne_bytes()
}

#[inline(always)]
fn pass_tx() -> u32 {
    maps::bump(Counter::LbForwarded);
    xdp_action::XDP_TX
}
