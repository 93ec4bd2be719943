//! The LVS load balancer: TCP/UDP for a virtual server (`LB_SERVICES`) gets a real server —
//! the one its flow already has, the client's persistent one, or the next by the service's
//! schedule — and leaves on the interface it came in on with only the destination MAC
//! rewritten to the real server's (LVS-DR: the real server holds the VIP on its loopback and
//! answers the client directly), or, for a NAT server, with its address and port (in
//! `vrrp_lb_nat`, tail-called), its replies getting the VIP's back. Only while this node
//! holds the VIP, when the service follows one; otherwise, and for anything else, the kernel
//! gets the frame. IPv6 virtual servers (direct routing) are `vrrp_lb_v6`, tail-called, with
//! flow and persistence tables of their own.

use agent_common::{
    Counter, FLOW_CLOSED, FLOW_OPEN, FLOW_UNCOUNTED, Flow, FlowKey, FlowKey6, LB_LEAST_MAX,
    LB_LOCALITY_SET, LB_PROG_NAT, LB_PROG_NAT6, LB_PROG_V6, LB_REAL_NAT, LB_REAL_TUN, LB_REAL_UP,
    LB_SVC_FOLLOW_VIP, LB_SVC_HASH, LB_SVC_HASH_DST, LB_SVC_HASH_PORT, LB_SVC_LBLC, LB_SVC_LBLCR,
    LB_SVC_LEAST, LB_SVC_NQ, LB_SVC_OPS, LB_SVC_OVF, LB_SVC_SED, LB_SVC_SPARE, LB_SVC_TWOS,
    LB_SVC_WEIGHTED, LB_TUN_GRE, LB_TUN_GUE, Locality, LocalityKey, NatReply, NatReply6, Persist,
    PersistKey, PersistKey6, Real, Service, ServiceKey, ServiceKey6, VipKey,
};
use aya_ebpf::maps::LruHashMap;
use aya_ebpf::{
    bindings::xdp_action,
    helpers::{
        bpf_get_prandom_u32, bpf_ktime_get_ns, bpf_redirect, bpf_xdp_adjust_head,
        bpf_xdp_adjust_tail,
    },
    programs::XdpContext,
};
use core::borrow::Borrow;
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    maps::{
        self, LB_CONNS, LB_CONNS_BASE, LB_ENTRY_STATS, LB_FLOWS, LB_FLOWS6, LB_HANDOFF,
        LB_ICMP_BUCKET, LB_LOCALITY, LB_NAT, LB_NAT_ON, LB_NAT_SCRATCH, LB_NAT6, LB_NAT6_SCRATCH,
        LB_PERSIST, LB_PERSIST6, LB_PROGS, LB_REAL_ADDR6, LB_REAL_STATS, LB_REALS, LB_RING, LB_RR,
        LB_SERVICES, LB_SERVICES6, LB_V6_KEYS, VIPS,
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

// ===== address families =====

/// The flow and persistence tables of an address family: IPv4 and IPv6 share services' ids,
/// rings, real servers and counters, and have tables of their own.
trait Family {
    type FlowKey: 'static;
    type PersistKey: 'static;
    fn flows() -> &'static LruHashMap<Self::FlowKey, Flow>;
    fn persists() -> &'static LruHashMap<Self::PersistKey, Persist>;
}

struct V4;
struct V6;

impl Family for V4 {
    type FlowKey = FlowKey;
    type PersistKey = PersistKey;
    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey, Flow> {
        &LB_FLOWS
    }
    #[inline(always)]
    fn persists() -> &'static LruHashMap<PersistKey, Persist> {
        &LB_PERSIST
    }
}

impl Family for V6 {
    type FlowKey = FlowKey6;
    type PersistKey = PersistKey6;
    #[inline(always)]
    fn flows() -> &'static LruHashMap<FlowKey6, Flow> {
        &LB_FLOWS6
    }
    #[inline(always)]
    fn persists() -> &'static LruHashMap<PersistKey6, Persist> {
        &LB_PERSIST6
    }
}

/// An IPv6 address as the hashing schedules (sh, dh, lblc) see it: IPVS folds its four
/// words into one (ip_vs_sh_hashkey).
#[inline(always)]
fn fold(addr: &[u8; 16]) -> [u8; 4] {
    let word = |i: usize| u32::from_ne_bytes([addr[i], addr[i + 1], addr[i + 2], addr[i + 3]]);
    (word(0) ^ word(4) ^ word(8) ^ word(12)).to_ne_bytes()
}

/// A virtual server's TCP/UDP packet of `flow` (`persist`: its client's persistence entry,
/// when the service has persistence; `src`, `dst` its addresses as the hashing schedules see
/// them, `ports` as on the wire, `flags` the TCP flags): its real server — the one its flow
/// already has, the client's persistent one, or the next by the service's schedule. None: no
/// server can take it. (The keys are references for IPv6: copies of them would not fit the
/// program's stack.)
#[inline(always)]
fn pick<F: Family>(
    svc: &Service,
    (flow, persist): (
        impl Borrow<F::FlowKey> + Copy,
        Option<impl Borrow<F::PersistKey> + Copy>,
    ),
    (src, dst): ([u8; 4], [u8; 4]),
    ports: [u8; 4],
    (proto, flags): (u8, u8),
) -> Option<(u32, &'static Real)> {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    // The flow's real server while it stays up; a new flow (or one whose server went) gets
    // the client's persistent one, or the schedule's next.
    let pinned = F::flows().get_ptr_mut(flow);
    // SAFETY: the value stays valid for this run (an LRU map frees entries after an RCU
    // grace period); only this flow's packets write it.
    let kept = pinned.and_then(|f| {
        let f = unsafe { &mut *f };
        let real = usable(f.real)?;
        Some((f, real))
    });
    match kept {
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
                if let Some(k) = persist {
                    let value = Persist {
                        real: f.real,
                        _pad: 0,
                        last_ns: now,
                    };
                    let _ = F::persists().insert(k, value, 0);
                }
            }
            Some((f.real, real))
        }
        None => {
            let kept = persist.and_then(|k| {
                // SAFETY: the value is copied out at once.
                let p = unsafe { F::persists().get(k) }.copied()?;
                (now.wrapping_sub(p.last_ns) < svc.persist_ns).then_some(p.real)
            });
            let chosen = match kept.and_then(|i| Some((i, usable(i)?))) {
                Some(found) => found,
                None => {
                    let sport = u16::from_be_bytes([ports[0], ports[1]]);
                    let i = schedule(svc, src, dst, sport, now)?;
                    (i, usable(i)?)
                }
            };
            if let Some(k) = persist {
                let value = Persist {
                    real: chosen.0,
                    _pad: 0,
                    last_ns: now,
                };
                let _ = F::persists().insert(k, value, 0);
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
                && F::flows().insert(flow, value, 0).is_ok()
                && value.closed == FLOW_OPEN
                && let Some(c) = LB_CONNS.get_ptr_mut(chosen.0)
            {
                // SAFETY: per-CPU slot, only this CPU's program writes it.
                unsafe { (*c).opened += 1 };
            }
            Some(chosen)
        }
    }
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
    let Some(svc) = (unsafe { LB_SERVICES.get(key) }) else {
        // Not for a virtual server: maybe a NAT real server's reply (looked up only while
        // there are NAT servers: other traffic does not pay for the lookup).
        if LB_NAT_ON.get(0).is_some_and(|on| *on != 0) {
            return nat_reply(ctx, l2, ihl, ip.src_addr, dst, ports, proto);
        }
        return None;
    };
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
    let persist = (svc.persist_ns != 0).then_some(PersistKey {
        service: svc.id,
        client: masked(src, svc.persist_mask),
    });
    let picked = pick::<V4>(svc, (flow, persist), (src, dst), ports, (proto, flags));
    let Some((index, real)) = picked else {
        return Some(pass(Counter::LbPassNoReal));
    };
    if real.flags & (LB_REAL_NAT | LB_REAL_TUN) != 0 {
        // NAT and TUN are a program of their own: the verifier walks the code after a
        // schedule once for every state the schedules leave, and the rewrite would double its
        // work.
        let slot = LB_HANDOFF.get_ptr_mut(0)?;
        // SAFETY: per-CPU scratch, only this run of the program uses it; the tail call does
        // not return when it succeeds.
        unsafe {
            *slot = [index, svc.entry];
            LB_PROGS.tail_call(ctx, LB_PROG_NAT);
        }
        // No NAT program (it failed to load): the kernel gets it.
        return Some(pass(Counter::LbPassNoReal));
    }
    forward::<false>(ctx, l2, ihl, (index, real), svc.entry)
}

/// TCP or UDP right after the IPv6 header (`vrrp_lb_xdp` checked it): handed to
/// `vrrp_lb_v6`, a program of its own (the verifier checks it apart from the IPv4 paths).
/// Returns only when there is no such program.
#[inline(always)]
pub fn to_ipv6(ctx: &XdpContext) {
    // SAFETY: the tail call does not return when it succeeds.
    unsafe { LB_PROGS.tail_call(ctx, LB_PROG_V6) };
}

/// The IPv6 balancer (`vrrp_lb_v6`): TCP or UDP right after the fixed header for an active
/// IPv6 virtual server goes to its real server (direct routing here, NAT in `vrrp_lb_nat6`),
/// a NAT server's reply back to its client; anything else (extension
/// headers, fragments, other addresses) to the kernel.
#[inline(always)]
// The keys are passed by reference on purpose: by value they would be copied to the stack.
#[allow(clippy::needless_borrows_for_generic_args)]
pub fn ipv6(ctx: &XdpContext) -> u32 {
    let forwarded = (|| {
        let l2 = crate::parse::ethernet(ctx)?;
        let ip = ptr_at::<Ipv6Hdr>(ctx, l2.l3)?;
        // SAFETY: ptr_at checked the header lies inside the frame; only read here.
        let ip = unsafe { &*ip };
        let proto = ip.next_hdr;
        if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
            return None;
        }
        let l4 = l2.l3 + Ipv6Hdr::LEN;
        let ports = ptr_at::<[u8; 4]>(ctx, l4)?;
        // SAFETY: ptr_at checked the four bytes lie inside the frame.
        let ports = unsafe { *ports };
        let flags = if proto == IPPROTO_TCP {
            tcp_flags(ctx, l4)
        } else {
            0
        };
        // The keys are put together in per-CPU scratch: the program's 512-byte stack would
        // not hold them.
        let keys = LB_V6_KEYS.get_ptr_mut(0)?;
        // SAFETY: per-CPU scratch, only this run of the program uses it.
        let keys = unsafe { &mut *keys };
        keys.service = ServiceKey6 {
            addr: ip.dst_addr,
            port: u16::from_be_bytes([ports[2], ports[3]]),
            proto,
            _pad: 0,
        };
        // The packet's flow: a service's, or a NAT real server's reply.
        keys.flow = FlowKey6 {
            src: ip.src_addr,
            dst: ip.dst_addr,
            sport: u16::from_ne_bytes([ports[0], ports[1]]),
            dport: u16::from_ne_bytes([ports[2], ports[3]]),
            proto,
            _pad: [0; 3],
        };
        // SAFETY: the value is only read, and entries are replaced whole by the agent.
        let Some(svc) = (unsafe { LB_SERVICES6.get(&keys.service) }) else {
            // Not for a virtual server: maybe a NAT real server's reply (looked up only while
            // there are NAT servers).
            if LB_NAT_ON.get(0).is_some_and(|on| *on != 0) {
                return nat6_reply(ctx, &l2, &keys.flow);
            }
            return None;
        };
        if svc.flags & LB_SVC_FOLLOW_VIP != 0 {
            keys.vip = VipKey::v6(l2.ifindex, l2.vlan, ip.dst_addr);
            // SAFETY: only the presence of the entry is read.
            if unsafe { VIPS.get(&keys.vip) }.is_none() {
                return Some(pass(Counter::LbPassInactive));
            }
        }
        keys.persist.service = svc.id;
        for i in 0..16 {
            keys.persist.client[i] = ip.src_addr[i] & svc.persist_mask6[i];
        }
        let persist = (svc.persist_ns != 0).then_some(&keys.persist);
        let folded = (fold(&ip.src_addr), fold(&ip.dst_addr));
        let picked = pick::<V6>(svc, (&keys.flow, persist), folded, ports, (proto, flags));
        let Some((index, real)) = picked else {
            return Some(pass(Counter::LbPassNoReal));
        };
        if real.flags & LB_REAL_NAT != 0 {
            // NAT is a program of its own (`vrrp_lb_nat6`), as for IPv4.
            let slot = LB_HANDOFF.get_ptr_mut(0)?;
            // SAFETY: per-CPU scratch, only this run of the program uses it; the tail call
            // does not return when it succeeds.
            unsafe {
                *slot = [index, svc.entry];
                LB_PROGS.tail_call(ctx, LB_PROG_NAT6);
            }
            return Some(pass(Counter::LbPassNoReal));
        }
        // The agent gives IPv6 services no tunnelled servers.
        if real.flags & LB_REAL_TUN != 0 {
            return Some(pass(Counter::LbPassNoReal));
        }
        forward::<false>(ctx, &l2, 0, (index, real), svc.entry)
    })();
    forwarded.unwrap_or_else(|| pass(Counter::PassOther))
}

/// IPv6 NAT (`vrrp_lb_nat6`, tail-called by `vrrp_lb_v6` with the server and counter slot in
/// `LB_HANDOFF`): the frame is parsed again, the packet gets the server's address and port,
/// and its reply flow is entered in `LB_NAT6`.
#[inline(always)]
pub fn nat6(ctx: &XdpContext) -> u32 {
    let forwarded = (|| {
        let l2 = crate::parse::ethernet(ctx)?;
        let eth = ptr_at::<EthHdr>(ctx, 0)?;
        let ip = ptr_at::<Ipv6Hdr>(ctx, l2.l3)?;
        let l4 = l2.l3 + Ipv6Hdr::LEN;
        let ports = ptr_at::<[u8; 4]>(ctx, l4)?;
        // SAFETY: per-CPU scratch written by the caller just before the tail call.
        let [index, entry] = unsafe { *LB_HANDOFF.get_ptr_mut(0)? };
        let real = LB_REALS.get(index)?;
        let addr = LB_REAL_ADDR6.get(index)?;
        // A tagged frame would keep its tag on another interface: only the one it came in on.
        if l2.vlan != 0 && real.ifindex != 0 && real.ifindex != l2.ifindex {
            return None;
        }
        let scratch = LB_NAT6_SCRATCH.get_ptr_mut(0)?;
        // SAFETY: ptr_at checked each lies inside the frame, only read here; the scratch is
        // per CPU, only this run of the program uses it.
        let (eth, ip, ports, scratch) = unsafe { (&*eth, &*ip, *ports, &mut *scratch) };
        let proto = ip.next_hdr;
        // The checksum must be in the frame before the reply flow is entered.
        let check_at = if proto == IPPROTO_TCP { 16 } else { 6 };
        ptr_at::<[u8; 2]>(ctx, l4 + check_at)?;
        scratch.key = FlowKey6 {
            src: *addr,
            dst: ip.src_addr,
            sport: real.port,
            dport: u16::from_ne_bytes([ports[0], ports[1]]),
            proto,
            _pad: [0; 3],
        };
        scratch.value = NatReply6 {
            vip: ip.dst_addr,
            vport: u16::from_ne_bytes([ports[2], ports[3]]),
            _pad: 0,
            ifindex: l2.ifindex,
            client_mac: eth.src_addr,
            our_mac: eth.dst_addr,
        };
        let our_mac = eth.dst_addr;
        // Written when it is new or changed (as for IPv4).
        // SAFETY: the value is only compared.
        #[allow(clippy::needless_borrows_for_generic_args)]
        if unsafe { LB_NAT6.get(&scratch.key) } != Some(&scratch.value) {
            LB_NAT6.insert(&scratch.key, &scratch.value, 0).ok()?;
        }
        rewrite6(ctx, (l2.l3, proto), 24, addr, 2, real.port.to_ne_bytes())?;
        let src_mac = if real.ifindex == 0 || real.ifindex == l2.ifindex {
            our_mac
        } else {
            real.out_mac
        };
        let action = send(ctx, &l2, real.ifindex, real.mac, src_mac)?;
        count(ctx, index, entry);
        Some(action)
    })();
    forwarded.unwrap_or_else(|| pass(Counter::LbPassNoReal))
}

/// An IPv6 NAT real server's reply (`key`, its flow, found in `LB_NAT6`): its source becomes
/// the virtual server's address and port again, and it goes back the way the client's
/// packets came.
#[inline(always)]
fn nat6_reply(ctx: &XdpContext, l2: &L2, key: &FlowKey6) -> Option<u32> {
    // SAFETY: the value is copied out at once.
    let back = unsafe { LB_NAT6.get(key) }.copied()?;
    if l2.vlan != 0 && back.ifindex != l2.ifindex {
        return None;
    }
    rewrite6(
        ctx,
        (l2.l3, key.proto),
        8,
        &back.vip,
        0,
        back.vport.to_ne_bytes(),
    )?;
    maps::bump(Counter::LbNatReply);
    send(ctx, l2, back.ifindex, back.client_mac, back.our_mac)
}

/// An IPv6 packet's address at `at` (8: source, 24: destination) and port at `port_at` (0:
/// source, 2: destination) replaced, its TCP or UDP checksum updated (RFC 1624; IPv6 has no
/// header checksum, and its UDP checksum is never 0).
#[inline(always)]
fn rewrite6(
    ctx: &XdpContext,
    (l3, proto): (usize, u8),
    at: usize,
    addr: &[u8; 16],
    port_at: usize,
    port: [u8; 2],
) -> Option<()> {
    let l4 = l3 + Ipv6Hdr::LEN;
    let field = ptr_at::<[u8; 16]>(ctx, l3 + at)?;
    let ports = ptr_at::<[u8; 4]>(ctx, l4)?;
    let check_at = if proto == IPPROTO_TCP { 16 } else { 6 };
    let l4_check = ptr_at::<[u8; 2]>(ctx, l4 + check_at)?;
    // SAFETY: ptr_at checked each lies inside the frame; nothing else aliases them.
    let (field, ports, l4_check) = unsafe { (&mut *field, &mut *ports, &mut *l4_check) };
    let old_port = [ports[port_at], ports[port_at + 1]];
    // A UDP checksum of 0 (none: IPv6 allows it only on some tunnels, RFC 6935) stays 0, as
    // IPv4's rewrite leaves it.
    let keep = proto == IPPROTO_UDP && *l4_check == [0, 0];
    let mut c = *l4_check;
    for i in 0..4 {
        let w = i * 4;
        c = csum_replace_addr(
            c,
            [field[w], field[w + 1], field[w + 2], field[w + 3]],
            [addr[w], addr[w + 1], addr[w + 2], addr[w + 3]],
        );
    }
    c = csum_replace(c, old_port, port);
    *l4_check = if keep {
        [0, 0]
    } else if proto == IPPROTO_UDP && c == [0, 0] {
        [0xff, 0xff]
    } else {
        c
    };
    *field = *addr;
    ports[port_at] = port[0];
    ports[port_at + 1] = port[1];
    Some(())
}

/// The NAT half (`vrrp_lb_nat`, tail-called by `vrrp_lb_xdp` with the server and counter
/// slot in `LB_HANDOFF`): the frame is parsed again, and the packet goes to the server.
#[inline(always)]
pub fn nat(ctx: &XdpContext) -> u32 {
    let forwarded = (|| {
        let l2 = crate::parse::ethernet(ctx)?;
        let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3)?;
        // SAFETY: ptr_at checked the header lies inside the frame; only read here.
        let vihl = unsafe { (*ip).vihl };
        let ihl = ((vihl & 0x0f) as usize) * 4;
        if ihl < Ipv4Hdr::LEN {
            return None;
        }
        // SAFETY: per-CPU scratch written by the caller just before the tail call.
        let [index, entry] = unsafe { *LB_HANDOFF.get_ptr_mut(0)? };
        let real = LB_REALS.get(index)?;
        if real.flags & LB_REAL_TUN != 0
            && let Some(action) = tun_too_big(ctx, &l2, ihl, real)
        {
            return Some(action);
        }
        forward::<true>(ctx, &l2, ihl, (index, real), entry)
    })();
    forwarded.unwrap_or_else(|| pass(Counter::LbPassNoReal))
}

/// The packet to real server `index` (direct routing, or under `NAT` masquerading or
/// tunnelled), counted for it and for the virtual server's address (`entry`).
#[inline(always)]
fn forward<const NAT: bool>(
    ctx: &XdpContext,
    l2: &L2,
    ihl: usize,
    (index, real): (u32, &Real),
    entry: u32,
) -> Option<u32> {
    let action = if NAT {
        if real.flags & LB_REAL_TUN != 0 {
            tun_to_real(ctx, l2, real)?
        } else {
            nat_to_real(ctx, l2, ihl, real)?
        }
    } else {
        let eth = ptr_at::<EthHdr>(ctx, 0)?;
        // SAFETY: ptr_at checked the header lies inside the frame; nothing else aliases it.
        let eth = unsafe { &mut *eth };
        // Out of the interface it came in on, from the address it was sent to (this node's,
        // or the VIP's virtual MAC), to the real server.
        eth.src_addr = eth.dst_addr;
        eth.dst_addr = real.mac;
        xdp_action::XDP_TX
    };
    count(ctx, index, entry);
    Some(action)
}

/// A packet forwarded to real server `index`, counted for it and for the virtual server's
/// address (`entry`).
#[inline(always)]
fn count(ctx: &XdpContext, index: u32, entry: u32) {
    // Each looked up and checked on its own: the optimiser would otherwise test both
    // pointers at once, with an OR the verifier refuses.
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(t) = LB_REAL_STATS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU's program writes it.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += len;
        }
    }
    if let Some(t) = LB_ENTRY_STATS.get_ptr_mut(entry) {
        // SAFETY: as above.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += len;
        }
    }
    maps::bump(Counter::LbForwarded);
}

// ===== NAT =====

/// RFC 1624's incremental update of a one's-complement checksum (as on the wire) for a
/// 16-bit word going from `old` to `new`: HC' = ~(~HC + ~m + m').
#[inline(always)]
fn csum_replace(check: [u8; 2], old: [u8; 2], new: [u8; 2]) -> [u8; 2] {
    let sum = u32::from(!u16::from_be_bytes(check))
        + u32::from(!u16::from_be_bytes(old))
        + u32::from(u16::from_be_bytes(new));
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}

/// The checksum after an address changes (two words).
#[inline(always)]
fn csum_replace_addr(check: [u8; 2], old: [u8; 4], new: [u8; 4]) -> [u8; 2] {
    let c = csum_replace(check, [old[0], old[1]], [new[0], new[1]]);
    csum_replace(c, [old[2], old[3]], [new[2], new[3]])
}

/// Rewrites one address (`at`: 12 the source, 16 the destination) and one port (`port_at`: 0
/// the source, 2 the destination) of the TCP/UDP packet whose IPv4 header is at `l3` and
/// transport header at `l4`, with the IP and transport checksums (a UDP checksum of 0, none,
/// stays 0; one that comes to 0 is sent as 0xffff, RFC 768).
#[inline(always)]
fn rewrite(
    ctx: &XdpContext,
    (l3, l4, proto): (usize, usize, u8),
    at: usize,
    addr: [u8; 4],
    port_at: usize,
    port: [u8; 2],
) -> Option<()> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, l3)?;
    let ports = ptr_at::<[u8; 4]>(ctx, l4)?;
    let check_at = if proto == IPPROTO_TCP { 16 } else { 6 };
    let l4_check = ptr_at::<[u8; 2]>(ctx, l4 + check_at)?;
    // SAFETY: ptr_at checked each lies inside the frame; nothing else aliases them.
    let (ip, ports, l4_check) = unsafe { (&mut *ip, &mut *ports, &mut *l4_check) };
    let old = if at == 12 { ip.src_addr } else { ip.dst_addr };
    let old_port = if port_at == 0 {
        [ports[0], ports[1]]
    } else {
        [ports[2], ports[3]]
    };
    ip.check = csum_replace_addr(ip.check, old, addr);
    if proto == IPPROTO_TCP || *l4_check != [0, 0] {
        // The pseudo-header holds the address.
        let c = csum_replace(csum_replace_addr(*l4_check, old, addr), old_port, port);
        *l4_check = if proto == IPPROTO_UDP && c == [0, 0] {
            [0xff, 0xff]
        } else {
            c
        };
    }
    if at == 12 {
        ip.src_addr = addr;
    } else {
        ip.dst_addr = addr;
    }
    if port_at == 0 {
        (ports[0], ports[1]) = (port[0], port[1]);
    } else {
        (ports[2], ports[3]) = (port[0], port[1]);
    }
    Some(())
}

/// The frame to `dst_mac` from `src_mac`: back out of the interface it came in on (XDP_TX)
/// or out of `ifindex` (a redirect).
#[inline(always)]
fn send(
    ctx: &XdpContext,
    l2: &L2,
    ifindex: u32,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
) -> Option<u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked the header lies inside the frame; nothing else aliases it.
    let eth = unsafe { &mut *eth };
    eth.dst_addr = dst_mac;
    eth.src_addr = src_mac;
    if ifindex == 0 || ifindex == l2.ifindex {
        return Some(xdp_action::XDP_TX);
    }
    // SAFETY: helper with plain arguments.
    Some(unsafe { bpf_redirect(ifindex, 0) } as u32)
}

/// A client's packet to a NAT real server: where its reply goes back to is entered in
/// `LB_NAT`, its destination becomes the server's address and port, and it is sent to the
/// server (IPVS's masquerading: the server routes its replies through this node).
#[inline(always)]
fn nat_to_real(ctx: &XdpContext, l2: &L2, ihl: usize, real: &Real) -> Option<u32> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3)?;
    let ports = ptr_at::<[u8; 4]>(ctx, l2.l3 + ihl)?;
    // SAFETY: ptr_at checked each lies inside the frame; only read here.
    let (client_mac, our_mac, src, dst, proto, ports) = unsafe {
        (
            (*eth).src_addr,
            (*eth).dst_addr,
            (*ip).src_addr,
            (*ip).dst_addr,
            (*ip).proto,
            *ports,
        )
    };
    // A tagged frame would keep its tag on another interface: only the one it came in on.
    if l2.vlan != 0 && real.ifindex != 0 && real.ifindex != l2.ifindex {
        return None;
    }
    let entry = LB_NAT_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch, only this run of the program uses it.
    let entry = unsafe { &mut *entry };
    entry.key = FlowKey {
        src: real.addr,
        dst: src,
        sport: real.port,
        dport: u16::from_ne_bytes([ports[0], ports[1]]),
        proto,
        _pad: [0; 3],
    };
    entry.value = NatReply {
        vip: dst,
        vport: u16::from_ne_bytes([ports[2], ports[3]]),
        _pad: 0,
        ifindex: l2.ifindex,
        client_mac,
        our_mac,
    };
    // Written when it is new or changed; otherwise the lookup marks it used, which keeps an
    // active flow's entry in the LRU map (an update per packet costs several times more).
    // SAFETY: the value is only compared.
    #[allow(clippy::needless_borrows_for_generic_args)]
    if unsafe { LB_NAT.get(&entry.key) } != Some(&entry.value) {
        // By reference: the key and value are passed from the scratch map, not copied.
        LB_NAT.insert(&entry.key, &entry.value, 0).ok()?;
    }
    rewrite(
        ctx,
        (l2.l3, l2.l3 + ihl, proto),
        16,
        real.addr,
        2,
        real.port.to_ne_bytes(),
    )?;
    let src_mac = if real.ifindex == 0 || real.ifindex == l2.ifindex {
        our_mac
    } else {
        real.out_mac
    };
    send(ctx, l2, real.ifindex, real.mac, src_mac)
}

/// A NAT real server's reply (found in `LB_NAT` by its addresses and ports): its source
/// becomes the virtual server's address and port again, and it goes back the way the client's
/// packets came. Anything else passes to the kernel.
#[inline(always)]
fn nat_reply(
    ctx: &XdpContext,
    l2: &L2,
    ihl: usize,
    src: [u8; 4],
    dst: [u8; 4],
    ports: [u8; 4],
    proto: u8,
) -> Option<u32> {
    let key = FlowKey {
        src,
        dst,
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
        proto,
        _pad: [0; 3],
    };
    // SAFETY: the value is copied out at once.
    let back = unsafe { LB_NAT.get(key) }.copied()?;
    // A tagged frame would keep its tag on another interface (as in `nat_to_real`).
    if l2.vlan != 0 && back.ifindex != l2.ifindex {
        return None;
    }
    rewrite(
        ctx,
        (l2.l3, l2.l3 + ihl, proto),
        12,
        back.vip,
        0,
        back.vport.to_ne_bytes(),
    )?;
    maps::bump(Counter::LbNatReply);
    send(ctx, l2, back.ifindex, back.client_mac, back.our_mac)
}

// ===== TUN =====

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_GRE: u8 = 47;
const IP_DF: u8 = 0x40;

/// What a tunnel adds before the packet: the outer IPv4 header, and for GUE a UDP header
/// and the 4-byte GUE header, for GRE its 4-byte header.
#[inline(always)]
fn tun_overhead(real: &Real) -> u16 {
    Ipv4Hdr::LEN as u16
        + match real.tun_type {
            LB_TUN_GUE => 12,
            LB_TUN_GRE => 4,
            _ => 0,
        }
}

/// The Internet checksum (RFC 1071) of `bytes`, as on the wire.
#[inline(always)]
fn checksum<const N: usize>(bytes: &[u8; N]) -> [u8; 2] {
    let mut sum = 0u32;
    let mut i = 0;
    while i + 1 < N {
        sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        i += 2;
    }
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}

/// An IPv4 header without options, its checksum filled in.
#[inline(always)]
fn ipv4_header(
    (tos, len, id, frag): (u8, u16, [u8; 2], u8),
    (ttl, proto): (u8, u8),
    src: [u8; 4],
    dst: [u8; 4],
) -> [u8; 20] {
    let [l0, l1] = len.to_be_bytes();
    let mut h = [
        0x45, tos, l0, l1, id[0], id[1], frag, 0, ttl, proto, 0, 0, src[0], src[1], src[2], src[3],
        dst[0], dst[1], dst[2], dst[3],
    ];
    let c = checksum(&h);
    (h[10], h[11]) = (c[0], c[1]);
    h
}

/// A packet for a TUN server that would not fit the tunnel's MTU wrapped (IPVS's
/// ensure_mtu_is_adequate): with DF, it becomes an ICMP "fragmentation needed" with the MTU
/// left inside the tunnel, back to the client from the address it was sent to; without, it
/// is dropped (XDP cannot fragment). None: it fits.
#[inline(always)]
fn tun_too_big(ctx: &XdpContext, l2: &L2, ihl: usize, real: &Real) -> Option<u32> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3)?;
    // SAFETY: ptr_at checked the header lies inside the frame; only read here.
    let (len, frag) = unsafe { (u16::from_be_bytes((*ip).tot_len), (*ip).frags[0]) };
    let inside = real.mtu.saturating_sub(tun_overhead(real));
    if len <= inside {
        return None;
    }
    // The quoted header and 8 bytes of what follows (RFC 792); a header with options is not
    // quoted here.
    if frag & IP_DF == 0 || ihl != Ipv4Hdr::LEN {
        maps::bump(Counter::LbTunTooBig);
        return Some(xdp_action::XDP_DROP);
    }
    // At most Linux's icmp_msgs_per_sec (1000 a second, bursts of 50) per CPU: big packets
    // with forged sources do not make this node send ICMP at their rate.
    if !icmp_allowed() {
        maps::bump(Counter::LbTunTooBig);
        return Some(xdp_action::XDP_DROP);
    }
    let quote = ptr_at::<[u8; 28]>(ctx, l2.l3)?;
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked both lie inside the frame; copied out before the frame changes.
    let (quote, client_mac, our_mac) = unsafe { (*quote, (*eth).src_addr, (*eth).dst_addr) };
    let (client, vip) = (
        [quote[12], quote[13], quote[14], quote[15]],
        [quote[16], quote[17], quote[18], quote[19]],
    );
    // No ICMP error to a source that is no single host (RFC 1122 3.2.2: 0.0.0.0/8,
    // multicast, class E and broadcast), as Linux's icmp_send refuses.
    if client[0] == 0 || client[0] >= 224 {
        maps::bump(Counter::LbTunTooBig);
        return Some(xdp_action::XDP_DROP);
    }
    // Ethernet, IP, ICMP (8), the quote (28).
    let want = l2.l3 + 20 + 8 + 28;
    let have = ctx.data_end() - ctx.data();
    // SAFETY: helper on this program's own context; the frame is only shortened.
    if have < want || unsafe { bpf_xdp_adjust_tail(ctx.ctx, want as i32 - have as i32) } != 0 {
        maps::bump(Counter::LbTunTooBig);
        return Some(xdp_action::XDP_DROP);
    }
    let mut icmp = [0u8; 36];
    icmp[0] = 3; // destination unreachable
    icmp[1] = 4; // fragmentation needed and DF set
    (icmp[6], icmp[7]) = (inside.to_be_bytes()[0], inside.to_be_bytes()[1]);
    let mut i = 0;
    while i < 28 {
        icmp[8 + i] = quote[i];
        i += 1;
    }
    let c = checksum(&icmp);
    (icmp[2], icmp[3]) = (c[0], c[1]);
    // Linux's icmp_send: internetwork-control precedence, the default TTL.
    let header = ipv4_header((0xc0, 56, [0, 0], 0), (64, IPPROTO_ICMP), vip, client);
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    let out_ip = ptr_at::<[u8; 20]>(ctx, l2.l3)?;
    let out_icmp = ptr_at::<[u8; 36]>(ctx, l2.l3 + 20)?;
    // SAFETY: ptr_at checked each lies inside the (shortened) frame; nothing else aliases them.
    unsafe {
        (*eth).dst_addr = client_mac;
        (*eth).src_addr = our_mac;
        *out_ip = header;
        *out_icmp = icmp;
    }
    maps::bump(Counter::LbTunFragNeeded);
    Some(xdp_action::XDP_TX)
}

/// A token from this CPU's ICMP bucket (one a millisecond, at most 50 saved).
#[inline(always)]
fn icmp_allowed() -> bool {
    const NS_PER_TOKEN: u64 = 1_000_000;
    const BURST: u64 = 50;
    let Some(bucket) = LB_ICMP_BUCKET.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot, only this CPU's program uses it; helper without arguments.
    unsafe {
        let b = &mut *bucket;
        let now = bpf_ktime_get_ns();
        let earned = now.wrapping_sub(b[1]) / NS_PER_TOKEN;
        if earned > 0 {
            b[0] = (b[0] + earned).min(BURST);
            b[1] = now;
        }
        if b[0] == 0 {
            return false;
        }
        b[0] -= 1;
    }
    true
}

/// A client's packet to a TUN real server, wrapped for the tunnel (IPVS's ip_vs_tunnel_xmit:
/// an IPv4 header from this node to the server with the inner packet's TOS, TTL and DF;
/// protocol IPIP, or UDP with GUE's headers, or GRE with its header) and sent to the next
/// hop on the path to it.
#[inline(always)]
fn tun_to_real(ctx: &XdpContext, l2: &L2, real: &Real) -> Option<u32> {
    // A tagged frame would keep its tag on another interface: only the one it came in on.
    if l2.vlan != 0 && real.ifindex != 0 && real.ifindex != l2.ifindex {
        return None;
    }
    let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3)?;
    let eth = ptr_at::<[u8; 18]>(ctx, 0)?;
    // SAFETY: ptr_at checked each lies inside the frame; copied out before the frame grows.
    let (tos, len, id, frag, ttl, src, sport, l2_header) = unsafe {
        (
            (*ip).tos,
            u16::from_be_bytes((*ip).tot_len),
            (*ip).id,
            (*ip).frags[0] & IP_DF,
            (*ip).ttl,
            (*ip).src_addr,
            // The client's port (a fragment's first payload bytes: only a spread).
            ptr_at::<[u8; 2]>(ctx, l2.l3 + Ipv4Hdr::LEN).map_or([0, 0], |p| *p),
            *eth,
        )
    };
    let overhead = tun_overhead(real);
    let proto = match real.tun_type {
        LB_TUN_GUE => IPPROTO_UDP,
        LB_TUN_GRE => IPPROTO_GRE,
        _ => IPPROTO_IPIP,
    };
    // With DF the outer packet is never fragmented and its ID means nothing (RFC 6864); a
    // packet that may be fragmented gets one of its own, as IPVS's ip_select_ident gives (the
    // client's would be shared by every client's packets between the same two tunnel ends).
    let id = if frag != 0 {
        id
    } else {
        // SAFETY: helper without arguments.
        (unsafe { bpf_get_prandom_u32() } as u16).to_ne_bytes()
    };
    let header = ipv4_header(
        (tos, len.checked_add(overhead)?, id, frag),
        (ttl, proto),
        real.tun_src,
        real.addr,
    );
    // SAFETY: helper on this program's own context; every pointer is taken again after it.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -i32::from(overhead)) } != 0 {
        return None;
    }
    // Layer 2 back to the front (with its tag, if any), the tunnel's headers after it.
    if l2.l3 == EthHdr::LEN {
        let mut untagged = [0u8; 14];
        let mut i = 0;
        while i < 14 {
            untagged[i] = l2_header[i];
            i += 1;
        }
        let to = ptr_at::<[u8; 14]>(ctx, 0)?;
        // SAFETY: ptr_at checked it lies inside the frame.
        unsafe { *to = untagged };
    } else {
        let to = ptr_at::<[u8; 18]>(ctx, 0)?;
        // SAFETY: as above.
        unsafe { *to = l2_header };
    }
    let out = ptr_at::<[u8; 20]>(ctx, l2.l3)?;
    // SAFETY: ptr_at checked it lies inside the frame.
    unsafe { *out = header };
    if real.tun_type == LB_TUN_GUE {
        // IPVS's udp_flow_src_port: a source port from the flow's hash, in Linux's default
        // ephemeral range (32768–60999), so the server's NIC can spread the flows.
        let spread = hash(src, u16::from_ne_bytes(sport)) % (60999 - 32768 + 1);
        let [s0, s1] = (32768 + spread as u16).to_be_bytes();
        let [p0, p1] = real.port.to_ne_bytes();
        let [l0, l1] = (len + 12).to_be_bytes();
        // UDP (no checksum, as IPVS's nocsum), then GUE: version 0, no options, protocol IPIP.
        let gue = [s0, s1, p0, p1, l0, l1, 0, 0, 0, IPPROTO_IPIP, 0, 0];
        let to = ptr_at::<[u8; 12]>(ctx, l2.l3 + Ipv4Hdr::LEN)?;
        // SAFETY: ptr_at checked it lies inside the frame.
        unsafe { *to = gue };
    } else if real.tun_type == LB_TUN_GRE {
        // No flags, version 0, protocol IPv4.
        let to = ptr_at::<[u8; 4]>(ctx, l2.l3 + Ipv4Hdr::LEN)?;
        // SAFETY: ptr_at checked it lies inside the frame.
        unsafe { *to = [0, 0, 0x08, 0x00] };
    }
    let src_mac = if real.ifindex == 0 || real.ifindex == l2.ifindex {
        // The address it was sent to (this node's, or the VIP's virtual MAC).
        [
            l2_header[0],
            l2_header[1],
            l2_header[2],
            l2_header[3],
            l2_header[4],
            l2_header[5],
        ]
    } else {
        real.out_mac
    };
    send(ctx, l2, real.ifindex, real.mac, src_mac)
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
