//! Typed access to the XDP program's maps. Per-CPU counters are summed here, so callers only
//! ever see totals.

use agent_common::{
    COUNTER_COUNT, COUNTERS_MAP, ConnCount, Counter, Flow, FlowKey, FlowKey6, IFACE_CONFIG_MAP,
    IfaceConfig, LB_CONNS_BASE_MAP, LB_CONNS_MAP, LB_ENTRY_STATS_MAP, LB_FLOWS_MAP, LB_FLOWS6_MAP,
    LB_LOCALITY_MAP, LB_NAT_ON_MAP, LB_REAL_ADDR6_MAP, LB_REAL_STATS_MAP, LB_REALS_MAP,
    LB_RING_MAP, LB_SERVICES_MAP, LB_SERVICES6_MAP, Locality, LocalityKey, PEERS_MAP, PeerKey,
    Real, Service, ServiceKey, ServiceKey6, Traffic, VIPS_MAP, VRID_CONFIG_MAP, VRID_STATS_MAP,
    VRRP_VERDICTS, VipKey, VipValue, VridConfig, VridKey, VridState, VridStats, VrrpVerdict,
};
use aya::{
    Ebpf, Pod,
    maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap},
};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::XdpError;

pub struct Maps {
    iface_config: HashMap<MapData, u32, IfaceConfig>,
    vrid_config: HashMap<MapData, VridKey, VridConfig>,
    vrid_stats: PerCpuHashMap<MapData, VridKey, VridStats>,
    vips: HashMap<MapData, VipKey, VipValue>,
    peers: HashMap<MapData, PeerKey, u8>,
    counters: PerCpuArray<MapData, u64>,
    lb_services: HashMap<MapData, ServiceKey, Service>,
    lb_services6: HashMap<MapData, ServiceKey6, Service>,
    lb_real_addr6: Array<MapData, [u8; 16]>,
    lb_ring: Array<MapData, u32>,
    lb_reals: Array<MapData, Real>,
    lb_real_stats: PerCpuArray<MapData, Traffic>,
    lb_entry_stats: PerCpuArray<MapData, Traffic>,
    lb_nat_on: Array<MapData, u32>,
    lb_conns: PerCpuArray<MapData, ConnCount>,
    lb_conns_base: PerCpuArray<MapData, u64>,
    lb_flows: HashMap<MapData, FlowKey, Flow>,
    lb_flows6: HashMap<MapData, FlowKey6, Flow>,
    /// `vrrp_lb_v6` is loaded and in `LB_PROGS`: IPv6 virtual servers can be served.
    ipv6_balancer: bool,
    /// `vrrp_lb_nat6` too: IPv6 NAT servers can be.
    ipv6_nat: bool,
    lb_locality: HashMap<MapData, LocalityKey, Locality>,
}

/// A virtual server's address, port and protocol, as the map of its family holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SvcKey {
    V4(ServiceKey),
    V6(ServiceKey6),
}

impl SvcKey {
    pub fn new(addr: IpAddr, port: u16, proto: u8) -> SvcKey {
        match addr {
            IpAddr::V4(a) => SvcKey::V4(ServiceKey {
                addr: a.octets(),
                port,
                proto,
                _pad: 0,
            }),
            IpAddr::V6(a) => SvcKey::V6(ServiceKey6 {
                addr: a.octets(),
                port,
                proto,
                _pad: 0,
            }),
        }
    }

    pub fn addr(&self) -> IpAddr {
        match self {
            SvcKey::V4(k) => Ipv4Addr::from(k.addr).into(),
            SvcKey::V6(k) => Ipv6Addr::from(k.addr).into(),
        }
    }

    pub fn port(&self) -> u16 {
        match self {
            SvcKey::V4(k) => k.port,
            SvcKey::V6(k) => k.port,
        }
    }

    /// `ADDR:PORT`, IPv6 in brackets.
    pub fn socket(&self) -> std::net::SocketAddr {
        (self.addr(), self.port()).into()
    }
}

impl From<ServiceKey> for SvcKey {
    fn from(k: ServiceKey) -> SvcKey {
        SvcKey::V4(k)
    }
}

impl From<&ServiceKey> for SvcKey {
    fn from(k: &ServiceKey) -> SvcKey {
        SvcKey::V4(*k)
    }
}

impl From<ServiceKey6> for SvcKey {
    fn from(k: ServiceKey6) -> SvcKey {
        SvcKey::V6(k)
    }
}

/// A flow of either family (see [`FlowTable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AnyFlowKey {
    V4(FlowKey),
    V6(FlowKey6),
}

impl AnyFlowKey {
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub fn proto(&self) -> u8 {
        match self {
            AnyFlowKey::V4(k) => k.proto,
            AnyFlowKey::V6(k) => k.proto,
        }
    }
}

/// The flow tables (IPv4 and IPv6), through descriptors of their own (see
/// [`Maps::flow_table`]).
pub struct FlowTable(
    HashMap<MapData, FlowKey, Flow>,
    HashMap<MapData, FlowKey6, Flow>,
);

impl FlowTable {
    /// Every flow, read whole.
    pub fn flows(&self) -> Vec<(AnyFlowKey, Flow)> {
        let v4 = self.0.iter().filter_map(Result::ok);
        let v6 = self.1.iter().filter_map(Result::ok);
        v4.map(|(k, f)| (AnyFlowKey::V4(k), f))
            .chain(v6.map(|(k, f)| (AnyFlowKey::V6(k), f)))
            .collect()
    }

    pub fn remove(&mut self, key: &AnyFlowKey) -> Result<(), XdpError> {
        match key {
            AnyFlowKey::V4(k) => remove(&mut self.0, k, LB_FLOWS_MAP),
            AnyFlowKey::V6(k) => remove(&mut self.1, k, LB_FLOWS6_MAP),
        }
    }
}

fn traffic(
    map: &PerCpuArray<MapData, Traffic>,
    index: u32,
    name: &'static str,
) -> Result<Traffic, XdpError> {
    let per_cpu = map.get(&index, 0).map_err(map_err(name))?;
    Ok(per_cpu.iter().fold(Traffic::default(), |t, c| Traffic {
        packets: t.packets + c.packets,
        bytes: t.bytes + c.bytes,
    }))
}

fn zero(
    map: &mut PerCpuArray<MapData, Traffic>,
    index: u32,
    name: &'static str,
) -> Result<(), XdpError> {
    let cpus = aya::util::nr_cpus().map_err(|(_, io_error)| XdpError::Map {
        map: name,
        source: MapError::SyscallError(aya::sys::SyscallError {
            call: "nr_cpus",
            io_error,
        }),
    })?;
    let values =
        aya::maps::PerCpuValues::try_from(vec![Traffic::default(); cpus]).map_err(|io_error| {
            XdpError::Map {
                map: name,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "per-cpu values",
                    io_error,
                }),
            }
        })?;
    map.set(index, values, 0).map_err(map_err(name))
}

fn take<T: TryFrom<Map, Error = MapError>>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<T, XdpError> {
    let map = ebpf.take_map(name).ok_or(XdpError::MissingMap(name))?;
    T::try_from(map).map_err(|source| XdpError::Map { map: name, source })
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> XdpError {
    move |source| XdpError::Map { map, source }
}

/// `Ok(None)` for a missing key, the error otherwise.
fn optional<V>(result: Result<V, MapError>, map: &'static str) -> Result<Option<V>, XdpError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(MapError::KeyNotFound) => Ok(None),
        // aya reports a delete of a missing key as the syscall's ENOENT.
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {
            Ok(None)
        }
        Err(source) => Err(XdpError::Map { map, source }),
    }
}

fn remove<K: Pod, V: Pod>(
    map: &mut HashMap<MapData, K, V>,
    key: &K,
    name: &'static str,
) -> Result<(), XdpError> {
    optional(map.remove(key), name).map(|_| ())
}

impl Maps {
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Self, XdpError> {
        Ok(Maps {
            iface_config: take(ebpf, IFACE_CONFIG_MAP)?,
            vrid_config: take(ebpf, VRID_CONFIG_MAP)?,
            vrid_stats: take(ebpf, VRID_STATS_MAP)?,
            vips: take(ebpf, VIPS_MAP)?,
            peers: take(ebpf, PEERS_MAP)?,
            counters: take(ebpf, COUNTERS_MAP)?,
            lb_services: take(ebpf, LB_SERVICES_MAP)?,
            lb_services6: take(ebpf, LB_SERVICES6_MAP)?,
            lb_real_addr6: take(ebpf, LB_REAL_ADDR6_MAP)?,
            lb_ring: take(ebpf, LB_RING_MAP)?,
            lb_reals: take(ebpf, LB_REALS_MAP)?,
            lb_real_stats: take(ebpf, LB_REAL_STATS_MAP)?,
            lb_entry_stats: take(ebpf, LB_ENTRY_STATS_MAP)?,
            lb_nat_on: take(ebpf, LB_NAT_ON_MAP)?,
            lb_conns: take(ebpf, LB_CONNS_MAP)?,
            lb_conns_base: take(ebpf, LB_CONNS_BASE_MAP)?,
            lb_flows: take(ebpf, LB_FLOWS_MAP)?,
            lb_flows6: take(ebpf, LB_FLOWS6_MAP)?,
            ipv6_balancer: false,
            ipv6_nat: false,
            lb_locality: take(ebpf, LB_LOCALITY_MAP)?,
        })
    }

    /// An IPv6 NAT real server's address (written before its entry is marked up).
    pub fn set_real_addr6(&mut self, index: u32, addr: [u8; 16]) -> Result<(), XdpError> {
        self.lb_real_addr6
            .set(index, addr, 0)
            .map_err(map_err(LB_REAL_ADDR6_MAP))
    }

    /// Whether IPv6 virtual servers can be served (their program is loaded).
    pub fn ipv6_balancer(&self) -> bool {
        self.ipv6_balancer
    }

    pub(super) fn set_ipv6_balancer(&mut self, loaded: bool) {
        self.ipv6_balancer = loaded;
    }

    /// Whether IPv6 NAT servers can be served (`vrrp_lb_nat6` is loaded).
    pub fn ipv6_nat(&self) -> bool {
        self.ipv6_nat
    }

    pub(super) fn set_ipv6_nat(&mut self, loaded: bool) {
        self.ipv6_nat = loaded;
    }

    /// Empties lblc / lblcr's table of destinations and their servers: a new balancer may
    /// give a real server's index to a server of another virtual server.
    pub fn clear_locality(&mut self) -> Result<(), XdpError> {
        let keys: Vec<LocalityKey> = self.lb_locality.keys().filter_map(Result::ok).collect();
        for key in &keys {
            remove(&mut self.lb_locality, key, LB_LOCALITY_MAP)?;
        }
        Ok(())
    }

    /// lblc / lblcr: destination `dest` of service `service`'s servers, as the kernel keeps
    /// them (tests).
    pub fn locality(&self, service: u32, dest: [u8; 4]) -> Result<Vec<u32>, XdpError> {
        let got = optional(
            self.lb_locality.get(&LocalityKey { service, dest }, 0),
            LB_LOCALITY_MAP,
        )?;
        Ok(got.map_or_else(Vec::new, |l| {
            l.reals.iter().take(l.len as usize).copied().collect()
        }))
    }

    pub fn set_iface(&mut self, ifindex: u32, config: IfaceConfig) -> Result<(), XdpError> {
        self.iface_config
            .insert(ifindex, config, 0)
            .map_err(map_err(IFACE_CONFIG_MAP))
    }

    /// Forgets an interface (deleted, or no instance uses it any more).
    pub fn remove_iface(&mut self, ifindex: u32) -> Result<(), XdpError> {
        remove(&mut self.iface_config, &ifindex, IFACE_CONFIG_MAP)
    }

    /// Declares what a valid advert for `key` looks like; adverts for it are then checked.
    pub fn set_vrid(&mut self, key: VridKey, config: VridConfig) -> Result<(), XdpError> {
        self.vrid_config
            .insert(key, config, 0)
            .map_err(map_err(VRID_CONFIG_MAP))
    }

    /// The sources a VRID with `VRID_CHECK_SRC` accepts (replacing the ones it had). Set
    /// before the VRID's entry, so no valid advert is dropped in between.
    pub fn set_peers(&mut self, vrid: VridKey, addrs: &[[u8; 16]]) -> Result<(), XdpError> {
        let stale: Vec<PeerKey> = self
            .peers
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.vrid == vrid && !addrs.contains(&k.addr))
            .collect();
        for addr in addrs {
            self.peers
                .insert(PeerKey { vrid, addr: *addr }, 1, 0)
                .map_err(map_err(PEERS_MAP))?;
        }
        for k in stale {
            remove(&mut self.peers, &k, PEERS_MAP)?;
        }
        Ok(())
    }

    pub fn remove_vrid(&mut self, key: &VridKey) -> Result<(), XdpError> {
        remove(&mut self.vrid_config, key, VRID_CONFIG_MAP)?;
        self.set_peers(*key, &[])?;
        optional(self.vrid_stats.remove(key), VRID_STATS_MAP).map(|_| ())
    }

    /// Starts answering ARP for a VIP in the kernel (on becoming MASTER).
    pub fn arm_vip(&mut self, key: VipKey, value: VipValue) -> Result<(), XdpError> {
        self.vips.insert(key, value, 0).map_err(map_err(VIPS_MAP))
    }

    /// Stops answering ARP for a VIP (before the address is removed on leaving MASTER).
    pub fn disarm_vip(&mut self, key: &VipKey) -> Result<(), XdpError> {
        remove(&mut self.vips, key, VIPS_MAP)
    }

    /// A virtual server the balancer forwards for (its ring and reals written first).
    pub fn set_service(
        &mut self,
        key: impl Into<SvcKey>,
        service: Service,
    ) -> Result<(), XdpError> {
        match key.into() {
            SvcKey::V4(k) => self
                .lb_services
                .insert(k, service, 0)
                .map_err(map_err(LB_SERVICES_MAP)),
            SvcKey::V6(k) => self
                .lb_services6
                .insert(k, service, 0)
                .map_err(map_err(LB_SERVICES6_MAP)),
        }
    }

    pub fn remove_service(&mut self, key: impl Into<SvcKey>) -> Result<(), XdpError> {
        match key.into() {
            SvcKey::V4(k) => remove(&mut self.lb_services, &k, LB_SERVICES_MAP),
            SvcKey::V6(k) => remove(&mut self.lb_services6, &k, LB_SERVICES6_MAP),
        }
    }

    /// Writes a service's schedule at `base` (its slice of the ring).
    pub fn set_ring(&mut self, base: u32, slots: &[u32]) -> Result<(), XdpError> {
        for (i, real) in slots.iter().enumerate() {
            self.lb_ring
                .set(base + i as u32, *real, 0)
                .map_err(map_err(LB_RING_MAP))?;
        }
        Ok(())
    }

    pub fn set_real(&mut self, index: u32, real: Real) -> Result<(), XdpError> {
        self.lb_reals
            .set(index, real, 0)
            .map_err(map_err(LB_REALS_MAP))
    }

    /// What was forwarded to real server `index`, summed over CPUs.
    pub fn real_traffic(&self, index: u32) -> Result<Traffic, XdpError> {
        traffic(&self.lb_real_stats, index, LB_REAL_STATS_MAP)
    }

    /// What was forwarded for a virtual server's address (its `Service::entry`), summed over
    /// CPUs.
    pub fn entry_traffic(&self, entry: u32) -> Result<Traffic, XdpError> {
        traffic(&self.lb_entry_stats, entry, LB_ENTRY_STATS_MAP)
    }

    /// Real server `index`'s traffic counted from zero (it is new to the index, which may
    /// hold what an earlier owner was sent).
    pub fn reset_real_traffic(&mut self, index: u32) -> Result<(), XdpError> {
        zero(&mut self.lb_real_stats, index, LB_REAL_STATS_MAP)
    }

    /// Whether the kernel looks for NAT replies (some real server is reached by NAT).
    pub fn set_nat_on(&mut self, on: bool) -> Result<(), XdpError> {
        self.lb_nat_on
            .set(0, u32::from(on), 0)
            .map_err(map_err(LB_NAT_ON_MAP))
    }

    /// As [`Self::reset_real_traffic`], for an address's slot.
    pub fn reset_entry_traffic(&mut self, entry: u32) -> Result<(), XdpError> {
        zero(&mut self.lb_entry_stats, entry, LB_ENTRY_STATS_MAP)
    }

    /// Flows opened and closed for real server `index`, per CPU.
    pub fn real_conns(&self, index: u32) -> Result<Vec<ConnCount>, XdpError> {
        let per_cpu = self
            .lb_conns
            .get(&index, 0)
            .map_err(map_err(LB_CONNS_MAP))?;
        Ok(per_cpu.iter().copied().collect())
    }

    /// Each CPU's `opened` at the moment `Real::conns` was counted (the kernel adds to the
    /// count what each CPU opened since).
    pub fn set_conns_base(&mut self, index: u32, opened: Vec<u64>) -> Result<(), XdpError> {
        let values = aya::maps::PerCpuValues::try_from(opened).map_err(|e| XdpError::Map {
            map: LB_CONNS_BASE_MAP,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "per-cpu values",
                io_error: e,
            }),
        })?;
        self.lb_conns_base
            .set(index, values, 0)
            .map_err(map_err(LB_CONNS_BASE_MAP))
    }

    /// A second handle on the flow table, for the sweep of idle flows on another thread
    /// (reading 256 k entries one system call at a time must not hold up the VRRP loop).
    pub fn flow_table(&self) -> Result<FlowTable, XdpError> {
        use aya::maps::IterableMap;
        Ok(FlowTable(
            second_handle(self.lb_flows.map(), LB_FLOWS_MAP)?,
            second_handle(self.lb_flows6.map(), LB_FLOWS6_MAP)?,
        ))
    }

    /// The global counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, XdpError> {
        let mut totals = [0u64; COUNTER_COUNT];
        for (index, total) in totals.iter_mut().enumerate() {
            let per_cpu = self
                .counters
                .get(&(index as u32), 0)
                .map_err(map_err(COUNTERS_MAP))?;
            *total = per_cpu.iter().sum();
        }
        Ok(Counters(totals))
    }

    /// Packets and bytes per verdict for one VRID, summed over CPUs; None if never seen.
    pub fn vrid_counters(&self, key: &VridKey) -> Result<Option<VridCounters>, XdpError> {
        let per_cpu = optional(self.vrid_stats.get(key, 0), VRID_STATS_MAP)?;
        Ok(per_cpu.map(|values| VridCounters::sum(values.iter())))
    }

    /// Every VRID the program has counted, summed over CPUs, in key order.
    pub fn all_vrid_counters(&self) -> Result<Vec<(VridKey, VridCounters)>, XdpError> {
        let mut all = Vec::new();
        for entry in self.vrid_stats.iter() {
            let (key, values) = entry.map_err(map_err(VRID_STATS_MAP))?;
            all.push((key, VridCounters::sum(values.iter())));
        }
        all.sort_by_key(|(key, _)| *key);
        Ok(all)
    }

    /// The last valid advert the kernel saw for `key` (the newest over all CPUs).
    pub fn vrid_state(&self, key: &VridKey) -> Result<Option<VridState>, XdpError> {
        Ok(self.vrid_counters(key)?.and_then(|c| c.last))
    }
}

/// The global counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub [u64; COUNTER_COUNT]);

impl Counters {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Counter by counter difference since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut diff = [0u64; COUNTER_COUNT];
        for (i, d) in diff.iter_mut().enumerate() {
            *d = self.0[i].wrapping_sub(earlier.0[i]);
        }
        Counters(diff)
    }

    /// Frames the program ran on: each moves exactly one counter.
    pub fn frames(&self) -> u64 {
        self.0.iter().sum()
    }

    /// (name, value) pairs in index order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Counter::ALL.iter().map(|c| (c.name(), self.get(*c)))
    }
}

/// Packets and bytes per verdict for one VRID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridCounters {
    pub packets: [u64; VRRP_VERDICTS],
    pub bytes: [u64; VRRP_VERDICTS],
    /// The newest valid advert any CPU saw.
    pub last: Option<VridState>,
}

impl VridCounters {
    fn sum<'a>(per_cpu: impl Iterator<Item = &'a VridStats>) -> Self {
        let mut total = VridCounters::default();
        for stats in per_cpu {
            for i in 0..VRRP_VERDICTS {
                total.packets[i] += stats.packets[i];
                total.bytes[i] += stats.bytes[i];
            }
            let newer = total
                .last
                .is_none_or(|last| stats.last.last_ns > last.last_ns);
            if stats.last.last_ns != 0 && newer {
                total.last = Some(stats.last);
            }
        }
        total
    }

    pub fn packets(&self, verdict: VrrpVerdict) -> u64 {
        self.packets[verdict as usize]
    }

    pub fn bytes(&self, verdict: VrrpVerdict) -> u64 {
        self.bytes[verdict as usize]
    }
}

/// A second descriptor of an LRU hash map, as a map of its own.
fn second_handle<K: Pod, V: Pod>(
    map: &MapData,
    name: &'static str,
) -> Result<HashMap<MapData, K, V>, XdpError> {
    use std::os::fd::AsFd;
    let fd = map
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|io_error| XdpError::Map {
            map: name,
            source: MapError::SyscallError(aya::sys::SyscallError {
                call: "dup",
                io_error,
            }),
        })?;
    let data = MapData::from_fd(fd).map_err(map_err(name))?;
    HashMap::try_from(Map::LruHashMap(data)).map_err(map_err(name))
}
