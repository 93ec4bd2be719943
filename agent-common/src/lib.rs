//! Types shared by the XDP program (`agent-ebpf`) and the agent through BPF maps.
//!
//! Everything here is `#[repr(C)]` with explicit padding fields, so the kernel and userspace
//! agree on the layout and no uninitialised padding byte ever ends up in a hash-map key.
//! Map names are the `*_MAP` constants: the agent looks maps up by these names.
#![no_std]

// ===== map names =====

/// `HashMap<u32 ifindex, IfaceConfig>`: per-interface switches, written by the agent.
pub const IFACE_CONFIG_MAP: &str = "IFACE_CONFIG";
/// `HashMap<VridKey, VridConfig>`: what a valid advert for a configured VRID looks like.
pub const VRID_CONFIG_MAP: &str = "VRID_CONFIG";
/// `PerCpuHashMap<VridKey, VridStats>`: packets and bytes per VRID and verdict, and the last
/// valid advert each CPU saw (the newest of them is the master's heartbeat).
pub const VRID_STATS_MAP: &str = "VRID_STATS";
/// `HashMap<VipKey, VipValue>`: virtual addresses this node answers ARP for (MASTER only).
pub const VIPS_MAP: &str = "VIPS";
/// `PerCpuArray<u64>` indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// `HashMap<PeerKey, u8>`: the sources a VRID with [`VRID_CHECK_SRC`] accepts adverts from.
pub const PEERS_MAP: &str = "PEERS";

/// `HashMap<ServiceKey, Service>`: the virtual servers the load balancer forwards for.
pub const LB_SERVICES_MAP: &str = "LB_SERVICES";
/// `Array<u32>`: every service's schedule, a slice `ring_base..ring_base + ring_len` of real
/// server indices (rr/wrr: the weighted rotation; sh/mh: a Maglev lookup table).
pub const LB_RING_MAP: &str = "LB_RING";
/// `Array<Real>`, indexed by real server.
pub const LB_REALS_MAP: &str = "LB_REALS";
/// `LruHashMap<FlowKey, Flow>`: the real server each flow was given (flows keep it), whether
/// the client closed it, when it was last seen.
pub const LB_FLOWS_MAP: &str = "LB_FLOWS";
/// `LruHashMap<PersistKey, Persist>`: `persistence_timeout` — a client's last real server.
pub const LB_PERSIST_MAP: &str = "LB_PERSIST";
/// `LruHashMap<LocalityKey, Locality>`: lblc / lblcr, each destination's server(s).
pub const LB_LOCALITY_MAP: &str = "LB_LOCALITY";
/// `PerCpuArray<u32>`, indexed by service: where its rotation is (per CPU).
pub const LB_RR_MAP: &str = "LB_RR";
/// `PerCpuArray<Traffic>`, indexed by real server: what was forwarded to it.
pub const LB_REAL_STATS_MAP: &str = "LB_REAL_STATS";
/// `PerCpuArray<Traffic>`, indexed by [`Service::entry`]: what was forwarded for each address
/// of a virtual server (a group's entries each have their own).
pub const LB_ENTRY_STATS_MAP: &str = "LB_ENTRY_STATS";
/// `LruHashMap<FlowKey, NatReply>`: NAT real servers' flows, by the key of their replies.
pub const LB_NAT_MAP: &str = "LB_NAT";
/// `Array<u32>` of one: 1 while some real server is reached by NAT (only then is other
/// TCP/UDP looked up in `LB_NAT` as a possible reply).
pub const LB_NAT_ON_MAP: &str = "LB_NAT_ON";
/// `PerCpuArray<ConnCount>`, indexed by real server: flows opened and closed (lc/wlc).
pub const LB_CONNS_MAP: &str = "LB_CONNS";
/// `PerCpuArray<u64>`, indexed by real server: each CPU's `opened` when the agent last
/// wrote `Real::conns` (the kernel adds what it opened since).
pub const LB_CONNS_BASE_MAP: &str = "LB_CONNS_BASE";
/// `HashMap<ServiceKey6, Service>`: the IPv6 virtual servers (ids, rings, real servers and
/// counters shared with the IPv4 ones).
pub const LB_SERVICES6_MAP: &str = "LB_SERVICES6";
/// `LruHashMap<FlowKey6, Flow>`: IPv6 flows' real servers, as [`LB_FLOWS_MAP`].
pub const LB_FLOWS6_MAP: &str = "LB_FLOWS6";
/// `LruHashMap<PersistKey6, Persist>`: IPv6 clients' persistence, as [`LB_PERSIST_MAP`].
pub const LB_PERSIST6_MAP: &str = "LB_PERSIST6";
/// `LruHashMap<FlowKey6, NatReply6>`: IPv6 NAT real servers' flows, as [`LB_NAT_MAP`].
pub const LB_NAT6_MAP: &str = "LB_NAT6";
/// `Array<[u8; 16]>`, indexed by real server: an IPv6 NAT server's address (its
/// [`Real::addr`] holds IPv4 only).
pub const LB_REAL_ADDR6_MAP: &str = "LB_REAL_ADDR6";

/// Name of the VRRP filter / ARP responder program.
pub const VRRP_PROGRAM: &str = "vrrp_xdp";
/// Name of the same program with the virtual servers' balancer in it: loaded only when the
/// configuration has virtual servers, as the balancer is most of what the verifier checks.
pub const VRRP_LB_PROGRAM: &str = "vrrp_lb_xdp";
/// The balancer's NAT forwarding, a program of its own that `vrrp_lb_xdp` tail-calls
/// (`LB_PROGS` slot [`LB_PROG_NAT`]): verified once, not once per schedule path.
pub const LB_NAT_PROGRAM: &str = "vrrp_lb_nat";
/// `ProgramArray`: the programs `vrrp_lb_xdp` tail-calls.
pub const LB_PROGS_MAP: &str = "LB_PROGS";
pub const LB_PROG_NAT: u32 = 0;
/// The balancer for IPv6 (TCP/UDP right after the fixed header), a program of its own that
/// `vrrp_lb_xdp` tail-calls (`LB_PROGS` slot [`LB_PROG_V6`]).
pub const LB_V6_PROGRAM: &str = "vrrp_lb_v6";
pub const LB_PROG_V6: u32 = 1;
/// IPv6 NAT forwarding, tail-called by `vrrp_lb_v6` (`LB_PROGS` slot [`LB_PROG_NAT6`]).
pub const LB_NAT6_PROGRAM: &str = "vrrp_lb_nat6";
pub const LB_PROG_NAT6: u32 = 2;
/// Slots of `LB_PROGS`.
pub const LB_PROGS_MAX: u32 = 3;
/// `PerCpuArray<[u32; 2]>`: the real server and counter slot handed to `vrrp_lb_nat` or
/// `vrrp_lb_nat6`.
pub const LB_HANDOFF_MAP: &str = "LB_HANDOFF";
/// Name of a program that passes everything: the benchmark floor, and the peer program that
/// native-mode `XDP_TX` on a veth needs.
pub const PASS_PROGRAM: &str = "xdp_pass";

pub const IFACE_CONFIG_MAX: u32 = 1024;
pub const VRID_MAX_ENTRIES: u32 = 16384;
pub const VIPS_MAX_ENTRIES: u32 = 16384;
pub const PEERS_MAX_ENTRIES: u32 = 16384;
pub const LB_SERVICES_MAX: u32 = 1024;
pub const LB_REALS_MAX: u32 = 8192;
/// Schedule slots for all services together.
pub const LB_RING_SIZE: u32 = 1 << 18;
pub const LB_FLOWS_MAX: u32 = 1 << 18;
pub const LB_PERSIST_MAX: u32 = 1 << 16;
/// IPv6 flows and persistence entries (their keys are 2.5 times the IPv4 ones; the tables
/// are allocated whole at load).
pub const LB_FLOWS6_MAX: u32 = 1 << 17;
pub const LB_PERSIST6_MAX: u32 = 1 << 15;
pub const LB_LOCALITY_MAX: u32 = 1 << 16;
/// lblcr: servers a destination's set holds at most.
pub const LB_LOCALITY_SET: usize = 4;

// ===== counters =====

/// Why the program passed or dropped a VRRP packet. Index into [`VridStats`]; each one also has
/// a global [`Counter`] (see [`VrrpVerdict::counter`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VrrpVerdict {
    /// Passed all checks, handed to the agent (XDP_PASS).
    Valid = 0,
    /// TTL / hop limit is not 255 (RFC 5798 §7.1, RFC 3768 §7.1) for a multicast instance.
    Ttl,
    /// VRRP version not enabled for this VRID.
    Version,
    /// VRRP type is not 1 (ADVERTISEMENT).
    Type,
    /// VRID not configured on this interface while the interface's VRID filter is armed.
    UnknownVrid,
    /// IP payload shorter than the VRRP header, its address list and (v2) authentication data.
    Length,
    /// Bad VRRP checksum.
    Checksum,
    /// v2 authentication type differs from the instance's, or the PASS password is wrong.
    Auth,
    /// Not from a configured peer (`unicast_peer` with `check_unicast_src`, or vrrp-agent's
    /// `allowed_peers`).
    Source,
}

pub const VRRP_VERDICTS: usize = 9;

impl VrrpVerdict {
    pub const ALL: [VrrpVerdict; VRRP_VERDICTS] = [
        VrrpVerdict::Valid,
        VrrpVerdict::Ttl,
        VrrpVerdict::Version,
        VrrpVerdict::Type,
        VrrpVerdict::UnknownVrid,
        VrrpVerdict::Length,
        VrrpVerdict::Checksum,
        VrrpVerdict::Auth,
        VrrpVerdict::Source,
    ];

    /// The global counter that counts this verdict over all VRIDs.
    #[inline(always)]
    pub const fn counter(self) -> Counter {
        match self {
            VrrpVerdict::Valid => Counter::VrrpValid,
            VrrpVerdict::Ttl => Counter::DropTtl,
            VrrpVerdict::Version => Counter::DropVersion,
            VrrpVerdict::Type => Counter::DropType,
            VrrpVerdict::UnknownVrid => Counter::DropUnknownVrid,
            VrrpVerdict::Length => Counter::DropLength,
            VrrpVerdict::Checksum => Counter::DropChecksum,
            VrrpVerdict::Auth => Counter::DropAuth,
            VrrpVerdict::Source => Counter::DropSource,
        }
    }

    /// Stable snake_case name, used in metrics labels and test output.
    pub const fn name(self) -> &'static str {
        match self {
            VrrpVerdict::Valid => "valid",
            VrrpVerdict::Ttl => "ttl",
            VrrpVerdict::Version => "version",
            VrrpVerdict::Type => "type",
            VrrpVerdict::UnknownVrid => "unknown_vrid",
            VrrpVerdict::Length => "length",
            VrrpVerdict::Checksum => "checksum",
            VrrpVerdict::Auth => "auth",
            VrrpVerdict::Source => "source",
        }
    }
}

/// Indices of the global per-CPU counter array. The one place counter indices are defined.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// Every frame the program runs on moves exactly one of them, so their sum is the number of
/// frames seen (no separate counter is paid for on every packet).
pub enum Counter {
    /// Neither VRRP nor an ARP request: passed untouched.
    PassOther = 0,
    /// Valid VRRP advert, passed to the agent.
    VrrpValid,
    /// VRRP for a VRID this interface does not run, passed because the filter is not armed.
    VrrpPassUnfiltered,
    /// VRRP the kernel does not verify (IPv4 fragment, longer than the in-kernel checksum
    /// limit), passed: the agent checks everything it receives anyway.
    VrrpPassUnchecked,
    /// VRRP frame shorter than its own headers say.
    DropTruncated,
    /// IPv4 header length or total length inconsistent.
    DropIpHeader,
    DropTtl,
    DropVersion,
    DropType,
    DropUnknownVrid,
    DropLength,
    DropChecksum,
    DropAuth,
    DropSource,
    /// ARP request for an armed VIP answered with XDP_TX.
    ArpReply,
    /// ARP packet not answered in the kernel (not a request, not for an armed VIP, gratuitous,
    /// malformed): passed to the kernel's own ARP.
    ArpPass,
    /// TCP/UDP for a virtual server, sent to its real server (XDP_TX, direct routing).
    LbForwarded,
    /// TCP/UDP for a virtual server whose VIP this node does not hold (BACKUP): passed.
    LbPassInactive,
    /// TCP/UDP for a virtual server with no real server to take it (all down, weight 0 or
    /// MAC not known yet): passed to the kernel.
    LbPassNoReal,
    /// A NAT real server's reply, sent on to the client from the virtual server's address.
    LbNatReply,
    /// A packet for a TUN real server too big for the tunnel, not to be fragmented: answered
    /// with an ICMP "fragmentation needed" (the client lowers its path MTU).
    LbTunFragNeeded,
    /// A packet for a TUN real server too big for the tunnel that may be fragmented, or with
    /// IP options the ICMP answer does not quote: dropped (XDP cannot fragment).
    LbTunTooBig,
}

pub const COUNTER_COUNT: usize = 22;

impl Counter {
    pub const ALL: [Counter; COUNTER_COUNT] = [
        Counter::PassOther,
        Counter::VrrpValid,
        Counter::VrrpPassUnfiltered,
        Counter::VrrpPassUnchecked,
        Counter::DropTruncated,
        Counter::DropIpHeader,
        Counter::DropTtl,
        Counter::DropVersion,
        Counter::DropType,
        Counter::DropUnknownVrid,
        Counter::DropLength,
        Counter::DropChecksum,
        Counter::DropAuth,
        Counter::DropSource,
        Counter::ArpReply,
        Counter::ArpPass,
        Counter::LbForwarded,
        Counter::LbPassInactive,
        Counter::LbPassNoReal,
        Counter::LbNatReply,
        Counter::LbTunFragNeeded,
        Counter::LbTunTooBig,
    ];

    /// Stable snake_case name, used in metrics and test output.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::PassOther => "pass_other",
            Counter::VrrpValid => "vrrp_valid",
            Counter::VrrpPassUnfiltered => "vrrp_pass_unfiltered",
            Counter::VrrpPassUnchecked => "vrrp_pass_unchecked",
            Counter::DropTruncated => "drop_truncated",
            Counter::DropIpHeader => "drop_ip_header",
            Counter::DropTtl => "drop_ttl",
            Counter::DropVersion => "drop_version",
            Counter::DropType => "drop_type",
            Counter::DropUnknownVrid => "drop_unknown_vrid",
            Counter::DropLength => "drop_length",
            Counter::DropChecksum => "drop_checksum",
            Counter::DropAuth => "drop_auth",
            Counter::DropSource => "drop_source",
            Counter::ArpReply => "arp_reply",
            Counter::ArpPass => "arp_pass",
            Counter::LbForwarded => "lb_forwarded",
            Counter::LbPassInactive => "lb_pass_inactive",
            Counter::LbPassNoReal => "lb_pass_no_real",
            Counter::LbNatReply => "lb_nat_reply",
            Counter::LbTunFragNeeded => "lb_tun_frag_needed",
            Counter::LbTunTooBig => "lb_tun_too_big",
        }
    }
}

// ===== map keys and values =====

pub const FAMILY_V4: u8 = 4;
pub const FAMILY_V6: u8 = 6;

/// Per-interface switches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceConfig {
    /// `IFACE_*` bits.
    pub flags: u32,
}

/// Drop (and count) VRRP for VRIDs not configured on this interface. Off, such adverts pass.
pub const IFACE_FILTER_ARMED: u32 = 1 << 0;

/// A VRRP instance as the kernel sees it: interface, VLAN (0 = untagged), VRID, address family.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VridKey {
    pub ifindex: u32,
    /// 802.1Q VLAN id of the frame as seen by the program, 0 when untagged.
    pub vlan: u16,
    pub vrid: u8,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
}

/// Accept VRRPv2 adverts for this VRID.
pub const VRID_ALLOW_V2: u32 = 1 << 0;
/// Accept VRRPv3 adverts for this VRID.
pub const VRID_ALLOW_V3: u32 = 1 << 1;
/// Require TTL / hop limit 255 (multicast instances; RFC 5798 §7.1).
pub const VRID_CHECK_TTL: u32 = 1 << 2;
/// VRRPv3 over IPv4: checksum without the pseudo-header (keepalived's `v3_checksum_as_v2`).
pub const VRID_V3_CHECKSUM_AS_V2: u32 = 1 << 3;
/// VRRPv2 PASS authentication: auth type must be 1 and the password must match `auth_pass`.
/// Without it, v2 adverts must carry auth type 0 (keepalived: "received a N auth, expecting M").
pub const VRID_AUTH_PASS: u32 = 1 << 4;
/// Accept adverts only from the sources in the peers map (`check_unicast_src` with unicast
/// peers, vrrp-agent's `allowed_peers` for multicast).
pub const VRID_CHECK_SRC: u32 = 1 << 5;

/// What a valid advert for this VRID looks like.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridConfig {
    /// `VRID_*` bits.
    pub flags: u32,
    pub _pad: u32,
    /// PASS password, zero-padded to 8 bytes as it is on the wire (RFC 2338 §5.3.10).
    pub auth_pass: [u8; 8],
}

/// The last valid advert the kernel passed for a VRID: the master's heartbeat.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridState {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the advert was seen.
    pub last_ns: u64,
    /// Source address; IPv4 in the first 4 bytes.
    pub src: [u8; 16],
    pub priority: u8,
    pub version: u8,
    /// v3: Max Adver Int in centiseconds; v2: Adver Int in seconds.
    pub interval: u16,
    pub _pad: u32,
}

/// Packets and bytes per [`VrrpVerdict`] for one VRID, and the last valid advert, per CPU.
/// Kept together so the program looks the VRID up once; per CPU so no two CPUs write the same
/// cache line.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VridStats {
    pub packets: [u64; VRRP_VERDICTS],
    pub bytes: [u64; VRRP_VERDICTS],
    /// `last.last_ns == 0`: this CPU has seen no valid advert for the VRID.
    pub last: VridState,
}

/// A virtual address on an interface (and VLAN) that this node answers ARP/ND for.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    pub ifindex: u32,
    pub vlan: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`] (IPv6 VIPs: only the balancer looks them up).
    pub family: u8,
    pub _pad: u8,
    /// The address; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
}

impl VipKey {
    #[inline(always)]
    pub const fn v4(ifindex: u32, vlan: u16, addr: [u8; 4]) -> Self {
        VipKey {
            ifindex,
            vlan,
            family: FAMILY_V4,
            _pad: 0,
            addr: [
                addr[0], addr[1], addr[2], addr[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        }
    }

    #[inline(always)]
    pub const fn v6(ifindex: u32, vlan: u16, addr: [u8; 16]) -> Self {
        VipKey {
            ifindex,
            vlan,
            family: FAMILY_V6,
            _pad: 0,
            addr,
        }
    }

    /// The IPv4 address of a [`FAMILY_V4`] key.
    #[inline(always)]
    pub const fn addr_v4(&self) -> [u8; 4] {
        [self.addr[0], self.addr[1], self.addr[2], self.addr[3]]
    }
}

/// A source a VRID accepts adverts from.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub vrid: VridKey,
    /// The address; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
}

/// How to answer for a VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipValue {
    /// The MAC to answer with: the interface's, or the VRRP virtual MAC under `use_vmac`.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

// ===== load balancer (LVS direct routing) =====

/// A virtual server: `virtual_server IP PORT` with its `protocol`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub addr: [u8; 4],
    /// Host order.
    pub port: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub proto: u8,
    pub _pad: u8,
}

/// The ring holds a lookup table indexed by a hash of the client's address (sh, mh), not a
/// rotation.
pub const LB_SVC_HASH: u32 = 1 << 0;
/// The hash covers the client's port too (`sh-port`, `mh-port`).
pub const LB_SVC_HASH_PORT: u32 = 1 << 1;
/// Forward only while the address is an armed VIP on the receiving interface (this node is
/// MASTER for it); otherwise pass the traffic untouched.
pub const LB_SVC_FOLLOW_VIP: u32 = 1 << 2;
/// lc: a new flow goes to the ring's server with the fewest open flows.
pub const LB_SVC_LEAST: u32 = 1 << 3;
/// wlc: … the fewest open flows for its weight (with [`LB_SVC_LEAST`]).
pub const LB_SVC_WEIGHTED: u32 = 1 << 4;
/// sed: the fewest (open flows + 1) for the weight: an idle heavy server before an idle
/// light one (with [`LB_SVC_LEAST`] and [`LB_SVC_WEIGHTED`]).
pub const LB_SVC_SED: u32 = 1 << 5;
/// nq: an idle server if there is one, else as sed.
pub const LB_SVC_NQ: u32 = 1 << 6;
/// dh: the ring is indexed by a hash of the destination address, not the client's.
pub const LB_SVC_HASH_DST: u32 = 1 << 7;
/// ovf: the first server of the ring (heaviest first) with fewer open flows than its weight.
pub const LB_SVC_OVF: u32 = 1 << 8;
/// twos: two servers of the ring at random, the less loaded for its weight.
pub const LB_SVC_TWOS: u32 = 1 << 9;
/// lblc: a destination keeps its server (`LB_LOCALITY`) while it is up and not overloaded,
/// else gets the weighted draw of twos from the ring (with `LB_SVC_LEAST` for the flow
/// counts).
pub const LB_SVC_LBLC: u32 = 1 << 10;
/// lblcr: a destination keeps a set of servers and takes the least loaded of it; an
/// overloaded set gets the draw's server added.
pub const LB_SVC_LBLCR: u32 = 1 << 11;
/// Some server of the service has fewer open flows than half its weight: then a locality
/// server over its weight counts as overloaded (IPVS's `is_overloaded`, set by the agent).
pub const LB_SVC_SPARE: u32 = 1 << 12;
/// `ops` (IPVS's one-packet scheduling, UDP only): each datagram gets the schedule's (or the
/// client's persistent) server on its own and leaves no flow behind.
pub const LB_SVC_OPS: u32 = 1 << 13;
/// Servers an lc/wlc ring holds at most (the kernel looks at each for a new flow).
pub const LB_LEAST_MAX: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Service {
    /// Index of the service (its rotation in `LB_RR`).
    pub id: u32,
    /// `LB_SVC_*` bits.
    pub flags: u32,
    pub ring_base: u32,
    /// 0: no real server can take traffic.
    pub ring_len: u32,
    /// `persistence_timeout` in ns; 0: none.
    pub persist_ns: u64,
    /// `persistence_granularity`: the netmask clients share their persistence under
    /// (network order; 255.255.255.255 without it).
    pub persist_mask: [u8; 4],
    /// The address's own slot in `LB_ENTRY_STATS` (below `LB_SERVICES_MAX`).
    pub entry: u32,
    /// An IPv6 service's `persistence_granularity` (a prefix length there, as keepalived
    /// reads it) as a mask; all ones without it.
    pub persist_mask6: [u8; 16],
}

/// An IPv6 virtual server: `virtual_server IPV6 PORT` with its `protocol`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey6 {
    pub addr: [u8; 16],
    /// Host order.
    pub port: u16,
    /// IPPROTO_TCP (6) or IPPROTO_UDP (17).
    pub proto: u8,
    pub _pad: u8,
}

/// The real server may be given new flows and keeps its flows.
pub const LB_REAL_UP: u16 = 1 << 0;
/// The real server is reached by NAT (IPVS's masquerading, `lb_kind NAT`): its address and
/// port replace the virtual server's, and its replies get them back ([`NatReply`]).
pub const LB_REAL_NAT: u16 = 1 << 1;
/// The real server is reached through a tunnel (IPVS's `lb_kind TUN`, of `tun_type`): the
/// packet is wrapped in an IPv4 header from `tun_src` to the server (and GUE's or GRE's
/// header) and sent to the next hop (`mac` on `ifindex`); one that would not fit the path's
/// `mtu` wrapped gets an ICMP "fragmentation needed" back when it may not be fragmented, as
/// IPVS sends.
pub const LB_REAL_TUN: u16 = 1 << 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    /// Where its frames go (direct routing rewrites only the destination MAC).
    pub mac: [u8; 6],
    /// `LB_REAL_*` bits.
    pub flags: u16,
    pub addr: [u8; 4],
    /// Its weight (wlc).
    pub weight: u32,
    /// Its open flows when the agent last counted them (lc/wlc).
    pub conns: u32,
    /// NAT: the interface it is reached on, 0 for the one a packet came in on.
    pub ifindex: u32,
    /// NAT: the source MAC of frames sent to it on `ifindex` (that interface's).
    pub out_mac: [u8; 6],
    /// NAT: its port, network order.
    pub port: u16,
    /// TUN: the tunnel's source, this node's address on the path to the server.
    pub tun_src: [u8; 4],
    /// TUN: the MTU of the interface the tunnel leaves by.
    pub mtu: u16,
    /// TUN: `LB_TUN_*`, the tunnel's type (a GUE tunnel's UDP port is in `port`).
    pub tun_type: u16,
}

/// [`Real::tun_type`]: IPIP (RFC 2003), IPVS's and keepalived's default.
pub const LB_TUN_IPIP: u16 = 0;
/// Generic UDP Encapsulation: a UDP header to [`Real::port`] and a 4-byte GUE header (version
/// 0, protocol IPIP), no checksum, as IPVS's ipvs_gue_encap.
pub const LB_TUN_GUE: u16 = 1;
/// GRE (RFC 2784): a 4-byte header (no checksum, key or sequence; protocol IPv4), as IPVS's
/// ipvs_gre_encap without checksums.
pub const LB_TUN_GRE: u16 = 2;

/// A NAT real server's flow seen from its side (`LB_NAT`, keyed by the [`FlowKey`] of its
/// replies: it, the client, its port, the client's port): where the reply goes back to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatReply {
    /// The virtual server's address and port (network order) the client used.
    pub vip: [u8; 4],
    pub vport: u16,
    pub _pad: u16,
    /// The interface the client's frames came in on, the MAC they came from (the client or
    /// its router) and the MAC they were sent to (this node's or the VIP's).
    pub ifindex: u32,
    pub client_mac: [u8; 6],
    pub our_mac: [u8; 6],
}

/// An IPv6 NAT real server's flow seen from its side (`LB_NAT6`), as [`NatReply`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatReply6 {
    pub vip: [u8; 16],
    /// Network order.
    pub vport: u16,
    pub _pad: u16,
    pub ifindex: u32,
    pub client_mac: [u8; 6],
    pub our_mac: [u8; 6],
}

/// One [`NatReply6`] entry being written (in per-CPU scratch).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntry6 {
    pub key: FlowKey6,
    pub value: NatReply6,
}

/// One [`NatReply`] entry being written (in per-CPU scratch, passed to the map by reference).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatEntry {
    pub key: FlowKey,
    pub value: NatReply,
}

/// A flow's real server and state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    pub real: u32,
    /// [`FLOW_OPEN`], [`FLOW_CLOSED`] or [`FLOW_UNCOUNTED`].
    pub closed: u32,
    /// `bpf_ktime_get_ns()` when it was last seen (to the second).
    pub last_ns: u64,
}

/// A flow that counts as open for lc/wlc: begun by the client's SYN (or UDP).
pub const FLOW_OPEN: u32 = 0;
/// A counted flow the client closed with FIN or RST (it no longer counts as open).
pub const FLOW_CLOSED: u32 = 1;
/// A TCP flow first seen without its SYN (taken over from another director, evicted from
/// the table, or a stray segment): forwarded and pinned, never counted as open, so stray
/// segments cannot make a server look busy.
pub const FLOW_UNCOUNTED: u32 = 2;

/// Flows a real server was given and flows whose client closed them, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCount {
    pub opened: u64,
    pub closed: u64,
}

/// A TCP or UDP flow, as the client sent it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    /// Network order, as on the wire.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// A TCP or UDP flow over IPv6, as the client sent it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey6 {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// Network order, as on the wire.
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistKey6 {
    pub service: u32,
    pub client: [u8; 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersistKey {
    pub service: u32,
    pub client: [u8; 4],
}

/// A destination address of a service (lblc, lblcr).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LocalityKey {
    pub service: u32,
    pub dest: [u8; 4],
}

/// A destination's server (lblc: one) or set of servers (lblcr: up to [`LB_LOCALITY_SET`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Locality {
    pub reals: [u32; LB_LOCALITY_SET],
    /// How many of `reals` are in the set.
    pub len: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` when the set last changed (lblcr drops its most loaded server
    /// when it has not changed for a day, as IPVS).
    pub modified_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    pub real: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()` of the client's last new flow.
    pub last_ns: u64,
}

/// Packets and bytes forwarded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are repr(C), made only of integers and byte arrays, with explicit
    // padding fields, so every bit pattern is valid and there are no implicit holes.
    unsafe impl aya::Pod for super::IfaceConfig {}
    unsafe impl aya::Pod for super::VridKey {}
    unsafe impl aya::Pod for super::VridConfig {}
    unsafe impl aya::Pod for super::VridState {}
    unsafe impl aya::Pod for super::VridStats {}
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipValue {}
    unsafe impl aya::Pod for super::PeerKey {}
    unsafe impl aya::Pod for super::ServiceKey {}
    unsafe impl aya::Pod for super::Service {}
    unsafe impl aya::Pod for super::Real {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::PersistKey {}
    unsafe impl aya::Pod for super::LocalityKey {}
    unsafe impl aya::Pod for super::Locality {}
    unsafe impl aya::Pod for super::Persist {}
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::Flow {}
    unsafe impl aya::Pod for super::ConnCount {}
    unsafe impl aya::Pod for super::NatReply {}
    unsafe impl aya::Pod for super::ServiceKey6 {}
    unsafe impl aya::Pod for super::FlowKey6 {}
    unsafe impl aya::Pod for super::PersistKey6 {}
    unsafe impl aya::Pod for super::NatReply6 {}
}

// Layout checks: a change here is a change to the kernel ABI between the two halves.
const _: () = {
    assert!(core::mem::size_of::<VridKey>() == 8);
    assert!(core::mem::size_of::<VridConfig>() == 16);
    assert!(core::mem::size_of::<VridState>() == 32);
    assert!(core::mem::size_of::<VridStats>() == 16 * VRRP_VERDICTS + 32);
    assert!(core::mem::size_of::<VipKey>() == 24);
    assert!(core::mem::size_of::<VipValue>() == 8);
    assert!(core::mem::size_of::<PeerKey>() == 24);
    assert!(core::mem::size_of::<ServiceKey>() == 8);
    assert!(core::mem::size_of::<Service>() == 48);
    assert!(core::mem::size_of::<ServiceKey6>() == 20);
    assert!(core::mem::size_of::<FlowKey6>() == 40);
    assert!(core::mem::size_of::<PersistKey6>() == 20);
    assert!(core::mem::size_of::<NatReply6>() == 36);
    assert!(core::mem::size_of::<NatEntry6>() == 76);
    assert!(core::mem::size_of::<Real>() == 40);
    assert!(core::mem::size_of::<NatReply>() == 24);
    assert!(core::mem::size_of::<NatEntry>() == 40);
    assert!(core::mem::size_of::<Flow>() == 16);
    assert!(core::mem::size_of::<ConnCount>() == 16);
    assert!(core::mem::size_of::<FlowKey>() == 16);
    assert!(core::mem::size_of::<PersistKey>() == 8);
    assert!(core::mem::size_of::<Persist>() == 16);
    assert!(core::mem::size_of::<LocalityKey>() == 8);
    assert!(core::mem::size_of::<Locality>() == 32);
    assert!(Counter::ALL.len() == COUNTER_COUNT);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_indices_match_their_position() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
        for (i, v) in VrrpVerdict::ALL.iter().enumerate() {
            assert_eq!(*v as usize, i, "{}", v.name());
        }
    }

    #[test]
    fn every_verdict_has_its_own_counter() {
        for a in VrrpVerdict::ALL {
            for b in VrrpVerdict::ALL {
                assert_eq!(a == b, a.counter() == b.counter());
            }
        }
    }
}
