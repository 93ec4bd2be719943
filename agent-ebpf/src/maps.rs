//! The program's maps (layouts and names in agent-common) and the counting helpers.

use agent_common::{
    COUNTER_COUNT, ConnCount, Counter, Flow, FlowKey, FlowKey6, IFACE_CONFIG_MAX, IfaceConfig,
    LB_FLOWS_MAX, LB_FLOWS6_MAX, LB_LOCALITY_MAX, LB_PERSIST_MAX, LB_PERSIST6_MAX, LB_PROGS_MAX,
    LB_REALS_MAX, LB_RING_SIZE, LB_SERVICES_MAX, Locality, LocalityKey, NatEntry, NatEntry6,
    NatReply, NatReply6, PEERS_MAX_ENTRIES, PeerKey, Persist, PersistKey, PersistKey6, Real,
    Service, ServiceKey, ServiceKey6, Traffic, VIPS_MAX_ENTRIES, VRID_MAX_ENTRIES, VipKey,
    VipValue, VridConfig, VridKey, VridStats, VrrpVerdict,
};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray},
};

#[map]
pub static IFACE_CONFIG: HashMap<u32, IfaceConfig> = HashMap::with_max_entries(IFACE_CONFIG_MAX, 0);
#[map]
pub static VRID_CONFIG: HashMap<VridKey, VridConfig> =
    HashMap::with_max_entries(VRID_MAX_ENTRIES, 0);
#[map]
pub static VRID_STATS: PerCpuHashMap<VridKey, VridStats> =
    PerCpuHashMap::with_max_entries(VRID_MAX_ENTRIES, 0);
/// One all-zero VridStats, never written: what a new VRID's entry starts from. A value built
/// on the stack would take 176 of its 512 bytes and a call to memset, and older verifiers
/// (6.1's) count a called function's frame on top of the program's.
#[map]
pub static VRID_STATS_ZERO: Array<VridStats> = Array::with_max_entries(1, 0);
#[map]
pub static VIPS: HashMap<VipKey, VipValue> = HashMap::with_max_entries(VIPS_MAX_ENTRIES, 0);
#[map]
pub static PEERS: HashMap<PeerKey, u8> = HashMap::with_max_entries(PEERS_MAX_ENTRIES, 0);
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT as u32, 0);

/// Scratch space for one VRRP message (per CPU, so never shared): the checksum is computed over
/// a copy, at constant bounds the verifier can follow, instead of over packet memory of
/// variable length.
pub const SCRATCH_WORDS: usize = 260;
#[map]
pub static SCRATCH: PerCpuArray<[u32; SCRATCH_WORDS]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn bump(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU's program writes it.
        unsafe { *slot += 1 };
    }
}

/// The per-CPU statistics of a VRID. A VRID seen for the first time gets an entry (bounded by
/// the map size: when it is full, only the global counters move).
#[inline(always)]
pub fn vrid_stats(key: &VridKey) -> Option<&'static mut VridStats> {
    let stats = match VRID_STATS.get_ptr_mut(key) {
        Some(stats) => stats,
        None => {
            let zero = VRID_STATS_ZERO.get(0)?;
            let _ = VRID_STATS.insert(key, zero, BPF_NOEXIST as u64);
            VRID_STATS.get_ptr_mut(key)?
        }
    };
    // SAFETY: per-CPU value, only this CPU's program writes it, and map values outlive the
    // program invocation.
    Some(unsafe { &mut *stats })
}

/// Counts a VRRP verdict globally and, when there are `stats`, for its VRID.
#[inline(always)]
pub fn count_vrid(stats: Option<&mut VridStats>, verdict: VrrpVerdict, bytes: usize) {
    bump(verdict.counter());
    let Some(stats) = stats else { return };
    if let Some(p) = stats.packets.get_mut(verdict as usize) {
        *p += 1;
    }
    if let Some(b) = stats.bytes.get_mut(verdict as usize) {
        *b += bytes as u64;
    }
}

// ===== load balancer =====

#[map]
pub static LB_SERVICES: HashMap<ServiceKey, Service> =
    HashMap::with_max_entries(LB_SERVICES_MAX, 0);
#[map]
pub static LB_RING: Array<u32> = Array::with_max_entries(LB_RING_SIZE, 0);
#[map]
pub static LB_REALS: Array<Real> = Array::with_max_entries(LB_REALS_MAX, 0);
#[map]
pub static LB_FLOWS: LruHashMap<FlowKey, Flow> = LruHashMap::with_max_entries(LB_FLOWS_MAX, 0);
#[map]
pub static LB_NAT: LruHashMap<FlowKey, NatReply> = LruHashMap::with_max_entries(LB_FLOWS_MAX, 0);
/// 1 while some real server is reached by NAT.
#[map]
pub static LB_NAT_ON: Array<u32> = Array::with_max_entries(1, 0);
/// Where a [`NatEntry`] is put together before it is entered.
#[map]
pub static LB_NAT_SCRATCH: PerCpuArray<NatEntry> = PerCpuArray::with_max_entries(1, 0);
/// The real server and the address's counter slot `vrrp_lb_xdp` hands to `vrrp_lb_nat`.
#[map]
pub static LB_HANDOFF: PerCpuArray<[u32; 2]> = PerCpuArray::with_max_entries(1, 0);
/// The ICMP "fragmentation needed" answers TUN may still send on this CPU, and when the
/// bucket was last filled (ns): Linux's icmp_msgs_per_sec / icmp_msgs_burst.
#[map]
pub static LB_ICMP_BUCKET: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);
/// The programs `vrrp_lb_xdp` tail-calls (filled by the agent when it loads them).
#[map]
pub static LB_PROGS: ProgramArray = ProgramArray::with_max_entries(LB_PROGS_MAX, 0);
#[map]
pub static LB_SERVICES6: HashMap<ServiceKey6, Service> =
    HashMap::with_max_entries(LB_SERVICES_MAX, 0);
#[map]
pub static LB_FLOWS6: LruHashMap<FlowKey6, Flow> = LruHashMap::with_max_entries(LB_FLOWS6_MAX, 0);
#[map]
pub static LB_PERSIST6: LruHashMap<PersistKey6, Persist> =
    LruHashMap::with_max_entries(LB_PERSIST6_MAX, 0);
#[map]
pub static LB_NAT6: LruHashMap<FlowKey6, NatReply6> =
    LruHashMap::with_max_entries(LB_FLOWS6_MAX, 0);
#[map]
pub static LB_NAT6_SCRATCH: PerCpuArray<NatEntry6> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static LB_REAL_ADDR6: Array<[u8; 16]> = Array::with_max_entries(LB_REALS_MAX, 0);
/// Where `vrrp_lb_v6` puts its keys together (they do not fit its stack).
#[map]
pub static LB_V6_KEYS: PerCpuArray<V6Keys> = PerCpuArray::with_max_entries(1, 0);
#[map]
pub static LB_PERSIST: LruHashMap<PersistKey, Persist> =
    LruHashMap::with_max_entries(LB_PERSIST_MAX, 0);
#[map]
pub static LB_LOCALITY: LruHashMap<LocalityKey, Locality> =
    LruHashMap::with_max_entries(LB_LOCALITY_MAX, 0);
#[map]
pub static LB_RR: PerCpuArray<u32> = PerCpuArray::with_max_entries(LB_SERVICES_MAX, 0);
#[map]
pub static LB_REAL_STATS: PerCpuArray<Traffic> = PerCpuArray::with_max_entries(LB_REALS_MAX, 0);
#[map]
pub static LB_ENTRY_STATS: PerCpuArray<Traffic> = PerCpuArray::with_max_entries(LB_SERVICES_MAX, 0);
#[map]
pub static LB_CONNS: PerCpuArray<ConnCount> = PerCpuArray::with_max_entries(LB_REALS_MAX, 0);
#[map]
pub static LB_CONNS_BASE: PerCpuArray<u64> = PerCpuArray::with_max_entries(LB_REALS_MAX, 0);

/// An IPv6 packet's keys (see [`LB_V6_KEYS`]).
#[repr(C)]
pub struct V6Keys {
    pub service: ServiceKey6,
    pub vip: VipKey,
    pub flow: FlowKey6,
    pub persist: PersistKey6,
}
