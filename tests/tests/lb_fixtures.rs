//! The XDP direct-routing balancer, path by path, through BPF_PROG_TEST_RUN: which frames are
//! forwarded to which real server (only the MACs rewritten), which pass untouched, and the
//! counters. The schedules are the agent's own (`lvs::sched`). Needs root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use agent_common::{
    Counter, LB_REAL_UP, LB_SVC_FOLLOW_VIP, LB_SVC_HASH, LB_SVC_HASH_DST, LB_SVC_LBLC,
    LB_SVC_LBLCR, LB_SVC_LEAST, LB_SVC_NQ, LB_SVC_OPS, LB_SVC_OVF, LB_SVC_SED, LB_SVC_SPARE,
    LB_SVC_TWOS, LB_SVC_WEIGHTED, Real, Service, ServiceKey, ServiceKey6, VipKey, VipValue,
};
use etherparse::PacketBuilder;
use vrrp_agent::{
    lvs::{model::Algo, sched},
    xdp::{Counters, Program, XdpProgram, maps::SvcKey},
};
use vrrp_tests::skip_unless_root;

const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
const DIRECTOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const REALS: [[u8; 6]; 3] = [
    [0x02, 0, 0, 0, 0, 0x13],
    [0x02, 0, 0, 0, 0, 0x14],
    [0x02, 0, 0, 0, 0, 0x15],
];

fn tcp(src: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(src.octets(), VIP.octets(), 64)
        .tcp(sport, dport, 1, 64240)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    out
}

fn udp(sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .udp(sport, dport)
        .write(&mut out, b"query")
        .unwrap();
    out
}

fn icmp_echo() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut out, b"ping")
        .unwrap();
    out
}

/// Runs on one CPU, so the per-CPU rotation is the one the test reads.
fn pin_to_cpu0() {
    // SAFETY: a zeroed cpu_set_t with one bit set, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

struct Lab {
    xdp: XdpProgram,
    lo: u32,
    /// Flags the agent adds from what it counts (`LB_SVC_SPARE`), for services entered next.
    extra_flags: u32,
    /// The counter slot (`Service::entry`) the next service entered gets.
    next_entry: u32,
}

const HTTP: ServiceKey = ServiceKey {
    addr: VIP.octets(),
    port: 80,
    proto: 6,
    _pad: 0,
};

impl Lab {
    fn new() -> Lab {
        pin_to_cpu0();
        let xdp = XdpProgram::load().expect("load XDP object (root?)");
        let lo = vrrp_agent::xdp::ifindex("lo").unwrap();
        let mut lab = Lab {
            xdp,
            lo,
            extra_flags: 0,
            next_entry: 0,
        };
        for (i, mac) in REALS.iter().enumerate() {
            lab.real(i as u32, *mac, true);
        }
        lab.hold_vip(true);
        lab
    }

    fn real(&mut self, index: u32, mac: [u8; 6], up: bool) {
        self.real_with(index, mac, up, 1, 0);
    }

    /// A real server entry with its weight and open flows as the agent counted them.
    fn real_with(&mut self, index: u32, mac: [u8; 6], up: bool, weight: u32, conns: u32) {
        let real = Real {
            mac,
            flags: if up { LB_REAL_UP } else { 0 },
            addr: [0; 4],
            weight,
            conns,
            ifindex: 0,
            out_mac: [0; 6],
            port: 0,
            ..Default::default()
        };
        self.xdp.maps.set_real(index, real).unwrap();
    }

    /// This node MASTER for the VIP (armed in the VIPS map) or not.
    fn hold_vip(&mut self, held: bool) {
        self.hold(VIP.into(), held);
    }

    fn hold(&mut self, vip: IpAddr, held: bool) {
        let key = match vip {
            IpAddr::V4(a) => VipKey::v4(self.lo, 0, a.octets()),
            IpAddr::V6(a) => VipKey::v6(self.lo, 0, a.octets()),
        };
        if held {
            let value = VipValue {
                mac: DIRECTOR_MAC,
                _pad: [0; 2],
            };
            self.xdp.maps.arm_vip(key, value).unwrap();
        } else {
            self.xdp.maps.disarm_vip(&key).unwrap();
        }
    }

    /// Service `key` (id `id`) scheduled by `algo` over `(real, weight)`.
    fn service(
        &mut self,
        key: ServiceKey,
        id: u32,
        algo: Algo,
        reals: &[(u32, u32)],
        persist_s: u64,
    ) {
        self.service_masked(key, id, algo, reals, (persist_s, [255; 4]));
    }

    /// As [`Self::service`], with persistence under a netmask (`persistence_granularity`).
    fn service_masked(
        &mut self,
        key: ServiceKey,
        id: u32,
        algo: Algo,
        reals: &[(u32, u32)],
        (persist_s, persist_mask): (u64, [u8; 4]),
    ) {
        self.enter(key, (id, algo), reals, (persist_s, persist_mask, [255; 16]));
    }

    /// An IPv6 service, with persistence under a prefix's mask.
    fn service6(
        &mut self,
        key: ServiceKey6,
        (id, algo): (u32, Algo),
        reals: &[(u32, u32)],
        (persist_s, persist_mask6): (u64, [u8; 16]),
    ) {
        self.enter(key, (id, algo), reals, (persist_s, [255; 4], persist_mask6));
    }

    fn enter(
        &mut self,
        key: impl Into<SvcKey>,
        (id, algo): (u32, Algo),
        reals: &[(u32, u32)],
        (persist_s, persist_mask, persist_mask6): (u64, [u8; 4], [u8; 16]),
    ) {
        let ring = sched::ring(algo, reals);
        let base = id * 2048;
        self.xdp.maps.set_ring(base, &ring).unwrap();
        // As the agent sets them (lvs::Balancer::start).
        let hash = match algo {
            Algo::Sh | Algo::Mh => LB_SVC_HASH,
            Algo::Dh => LB_SVC_HASH | LB_SVC_HASH_DST,
            Algo::Lc => LB_SVC_LEAST,
            Algo::Wlc => LB_SVC_LEAST | LB_SVC_WEIGHTED,
            Algo::Sed => LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_SED,
            Algo::Nq => LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_NQ,
            Algo::Ovf => LB_SVC_LEAST | LB_SVC_OVF,
            Algo::Twos => LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_TWOS,
            Algo::Lblc => LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_LBLC,
            Algo::Lblcr => LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_LBLCR,
            Algo::Rr | Algo::Wrr | Algo::Fo => 0,
        };
        let service = Service {
            id,
            flags: LB_SVC_FOLLOW_VIP | hash | self.extra_flags,
            ring_base: base,
            ring_len: ring.len() as u32,
            persist_ns: persist_s * 1_000_000_000,
            persist_mask,
            entry: self.next_entry,
            persist_mask6,
        };
        self.next_entry += 1;
        self.xdp.maps.set_service(key, service).unwrap();
    }

    /// (action, output frame, counters moved).
    fn run(&self, frame: &[u8]) -> (u32, Vec<u8>, Vec<(&'static str, u64)>) {
        let before: Counters = self.xdp.maps.counters().unwrap();
        let out = self.xdp.test_run(Program::VrrpLb, frame).unwrap();
        let moved = self
            .xdp
            .maps
            .counters()
            .unwrap()
            .since(&before)
            .iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        (out.action, out.frame, moved)
    }

    /// Which real server the frame was sent to (asserting it was forwarded as DR does: only
    /// the MACs changed).
    fn forwarded_to(&self, frame: &[u8]) -> usize {
        let (action, out, moved) = self.run(frame);
        assert_eq!(action, XDP_TX, "not forwarded: {moved:?}");
        assert_eq!(moved, [(Counter::LbForwarded.name(), 1)]);
        assert_eq!(&out[6..12], &DIRECTOR_MAC, "from the address it came to");
        assert_eq!(&out[12..], &frame[12..], "nothing but the MACs changes");
        REALS
            .iter()
            .position(|m| out[..6] == m[..])
            .unwrap_or_else(|| panic!("sent to {:02x?}", &out[..6]))
    }

    fn passes(&self, frame: &[u8], counter: Counter) {
        let (action, out, moved) = self.run(frame);
        assert_eq!(action, XDP_PASS);
        assert_eq!(out, frame, "passed untouched");
        assert_eq!(moved, [(counter.name(), 1)]);
    }
}

#[test]
fn rr_spreads_new_flows_and_keeps_each_flow_on_its_server() {
    if skip_unless_root("rr_spreads_new_flows_and_keeps_each_flow_on_its_server") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    let firsts: Vec<usize> = (0..6)
        .map(|k| lab.forwarded_to(&tcp(CLIENT, 40000 + k, 80)))
        .collect();
    assert_eq!(firsts, [0, 1, 0, 1, 0, 1], "in turn");
    // The same flows again: each on its server, the rotation does not move.
    for k in 0..6 {
        assert_eq!(
            lab.forwarded_to(&tcp(CLIENT, 40000 + k, 80)),
            firsts[k as usize]
        );
    }
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 41000, 80)), 0);
    // UDP to a TCP service, another port, ICMP: the kernel's.
    lab.passes(&udp(40000, 80), Counter::PassOther);
    lab.passes(&tcp(CLIENT, 40000, 22), Counter::PassOther);
    lab.passes(&icmp_echo(), Counter::PassOther);
    // A fragment carries no ports after the first: never balanced, the kernel reassembles.
    let mut fragment = tcp(CLIENT, 40000, 80);
    fragment[20] |= 0x20;
    lab.passes(&fragment, Counter::PassOther);
}

#[test]
fn wrr_follows_the_weights_and_weight_0_gets_no_new_flows() {
    if skip_unless_root("wrr_follows_the_weights_and_weight_0_gets_no_new_flows") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Wrr, &[(0, 3), (1, 1), (2, 0)], 0);
    let mut count = [0usize; 3];
    for k in 0..40 {
        count[lab.forwarded_to(&tcp(CLIENT, 42000 + k, 80))] += 1;
    }
    assert_eq!(count, [30, 10, 0]);
}

#[test]
fn a_server_that_goes_loses_its_flows_to_the_others_and_none_left_passes() {
    if skip_unless_root("a_server_that_goes_loses_its_flows_to_the_others_and_none_left_passes") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    let on: Vec<usize> = (0..4)
        .map(|k| lab.forwarded_to(&tcp(CLIENT, 43000 + k, 80)))
        .collect();
    // Server 0 fails its check: out of the schedule, then marked down.
    lab.service(HTTP, 0, Algo::Rr, &[(1, 1)], 0);
    lab.real(0, REALS[0], false);
    for k in 0..4 {
        assert_eq!(
            lab.forwarded_to(&tcp(CLIENT, 43000 + k, 80)),
            1,
            "was on {}",
            on[k as usize]
        );
    }
    // Nobody left: the kernel gets it (no real server: it answers as the host would).
    lab.service(HTTP, 0, Algo::Rr, &[], 0);
    lab.passes(&tcp(CLIENT, 44000, 80), Counter::LbPassNoReal);
}

#[test]
fn a_backup_director_passes_the_vip_s_traffic_untouched() {
    if skip_unless_root("a_backup_director_passes_the_vip_s_traffic_untouched") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    lab.hold_vip(false);
    lab.passes(&tcp(CLIENT, 45000, 80), Counter::LbPassInactive);
    lab.hold_vip(true);
    lab.forwarded_to(&tcp(CLIENT, 45000, 80));
}

#[test]
fn persistence_keeps_a_client_on_its_server_across_connections() {
    if skip_unless_root("persistence_keeps_a_client_on_its_server_across_connections") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1), (2, 1)], 50);
    let other = Ipv4Addr::new(192, 0, 2, 98);
    let first = lab.forwarded_to(&tcp(CLIENT, 46000, 80));
    for k in 1..6 {
        assert_eq!(lab.forwarded_to(&tcp(CLIENT, 46000 + k, 80)), first);
    }
    // Another client is scheduled on its own (the rotation moved on).
    assert_ne!(lab.forwarded_to(&tcp(other, 46000, 80)), first);
}

/// A long connection keeps its client's persistence alive, as IPVS keeps a persistence
/// template while it controls connections: the connection's packets renew it (once a second),
/// so a new connection long after the first, past the timeout, still goes to the same server;
/// once the client is quiet for the timeout, it is scheduled afresh.
#[test]
fn a_long_connection_keeps_its_client_s_persistence_alive() {
    if skip_unless_root("a_long_connection_keeps_its_client_s_persistence_alive") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1)], 3);
    let first = lab.forwarded_to(&tcp(CLIENT, 47000, 80));
    // The time passing is what is tested: the connection's packets for 1.5 timeouts.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_millis(4500) {
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(lab.forwarded_to(&tcp_flags(47000, 0x10)), first);
    }
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 47001, 80)), first);
    std::thread::sleep(std::time::Duration::from_millis(3300));
    assert_ne!(lab.forwarded_to(&tcp(CLIENT, 47002, 80)), first);
}

/// `persistence_granularity 255.255.255.0`: clients of one /24 share their persistence
/// (IPVS masks the client's address for its templates); another /24 is scheduled on its own.
#[test]
fn persistence_granularity_keeps_a_subnet_on_one_server() {
    if skip_unless_root("persistence_granularity_keeps_a_subnet_on_one_server") {
        return;
    }
    let mut lab = Lab::new();
    lab.service_masked(
        HTTP,
        0,
        Algo::Rr,
        &[(0, 1), (1, 1), (2, 1)],
        (50, [255, 255, 255, 0]),
    );
    let first = lab.forwarded_to(&tcp(CLIENT, 46000, 80));
    for k in 1..6 {
        let neighbour = Ipv4Addr::new(192, 0, 2, 99 - k as u8);
        assert_eq!(lab.forwarded_to(&tcp(neighbour, 46000 + k, 80)), first);
    }
    let elsewhere = Ipv4Addr::new(198, 51, 100, 7);
    assert_ne!(lab.forwarded_to(&tcp(elsewhere, 46000, 80)), first);
}

#[test]
fn source_hashing_is_consistent_across_ports_and_when_a_server_goes() {
    if skip_unless_root("source_hashing_is_consistent_across_ports_and_when_a_server_goes") {
        return;
    }
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Sh, &[(0, 1), (1, 1), (2, 1)], 0);
    let clients: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(10, 1, 0, i)).collect();
    let before: Vec<usize> = clients
        .iter()
        .map(|c| lab.forwarded_to(&tcp(*c, 47000, 80)))
        .collect();
    for (c, b) in clients.iter().zip(&before) {
        assert_eq!(
            lab.forwarded_to(&tcp(*c, 47001, 80)),
            *b,
            "same client, other port"
        );
    }
    assert!(
        (0..3).all(|r| before.contains(&r)),
        "every server used: {before:?}"
    );
    // Server 2 goes: its clients move, nearly all others stay (new flows, no pinning).
    lab.service(HTTP, 0, Algo::Sh, &[(0, 1), (1, 1)], 0);
    let mut moved = 0;
    for (c, b) in clients.iter().zip(&before) {
        let now = lab.forwarded_to(&tcp(*c, 47002, 80));
        assert_ne!(now, 2);
        if *b != 2 && now != *b {
            moved += 1;
        }
    }
    assert!(moved <= 3, "{moved} clients of servers still up moved");
}

/// A TCP segment of the client's flow from `sport` with `flags` (FIN 0x01, RST 0x04, ACK
/// 0x10).
fn tcp_flags(sport: u16, flags: u8) -> Vec<u8> {
    let mut f = tcp(CLIENT, sport, 80);
    // The TCP flags byte (SYN from the builder) after Ethernet (14) and IPv4 (20) headers.
    f[14 + 20 + 13] = flags;
    f
}

#[test]
fn lc_and_wlc_send_new_flows_to_the_least_loaded_and_count_what_they_open_and_close() {
    if skip_unless_root(
        "lc_and_wlc_send_new_flows_to_the_least_loaded_and_count_what_they_open_and_close",
    ) {
        return;
    }
    let mut lab = Lab::new();
    // lc: 5 open flows on server 0, 1 on server 1: new flows go to 1 until it has as many
    // (counting what this CPU opened since the agent's count), then in turn.
    lab.real_with(0, REALS[0], true, 1, 5);
    lab.real_with(1, REALS[1], true, 1, 1);
    lab.service(HTTP, 0, Algo::Lc, &[(0, 1), (1, 1)], 0);
    let firsts: Vec<usize> = (0..6)
        .map(|k| lab.forwarded_to(&tcp(CLIENT, 48000 + k, 80)))
        .collect();
    assert_eq!(
        firsts,
        [1, 1, 1, 1, 0, 1],
        "1 catches up with 0's five, then they alternate"
    );
    let opened = |lab: &Lab, i: u32| -> u64 {
        lab.xdp
            .maps
            .real_conns(i)
            .unwrap()
            .iter()
            .map(|c| c.opened)
            .sum()
    };
    let closed = |lab: &Lab, i: u32| -> u64 {
        lab.xdp
            .maps
            .real_conns(i)
            .unwrap()
            .iter()
            .map(|c| c.closed)
            .sum()
    };
    assert_eq!((opened(&lab, 0), opened(&lab, 1)), (1, 5));
    // The client closes one of server 1's flows: counted once, and the flow keeps its
    // server for its last segments.
    assert_eq!(lab.forwarded_to(&tcp_flags(48000, 0x11)), 1);
    assert_eq!(lab.forwarded_to(&tcp_flags(48000, 0x10)), 1);
    assert_eq!(lab.forwarded_to(&tcp_flags(48000, 0x04)), 1);
    assert_eq!(closed(&lab, 1), 1);
    // Segments of flows that began elsewhere (no SYN seen here: a takeover, or strays) are
    // forwarded and pinned but never count as open, nor as closed when they end.
    let strays: Vec<usize> = (0..4)
        .map(|k| lab.forwarded_to(&tcp_flags(48100 + k, 0x10)))
        .collect();
    for (k, &real) in strays.iter().enumerate() {
        assert_eq!(lab.forwarded_to(&tcp_flags(48100 + k as u16, 0x18)), real);
        assert_eq!(lab.forwarded_to(&tcp_flags(48100 + k as u16, 0x11)), real);
    }
    assert_eq!((opened(&lab, 0), opened(&lab, 1)), (1, 5));
    assert_eq!((closed(&lab, 0), closed(&lab, 1)), (0, 1));

    // wlc: weights 10 and 1 with 5 and 1 open flows: 5/10 < 1/1, server 0 takes it.
    let mut lab = Lab::new();
    lab.real_with(0, REALS[0], true, 10, 5);
    lab.real_with(1, REALS[1], true, 1, 1);
    lab.service(HTTP, 0, Algo::Wlc, &[(0, 10), (1, 1)], 0);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 49000, 80)), 0);
    // A server going down is passed over; weight 0 takes nothing new under wlc.
    lab.real_with(0, REALS[0], false, 10, 5);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 49001, 80)), 1);
    lab.real_with(0, REALS[0], true, 10, 5);
    lab.real_with(1, REALS[1], true, 0, 0);
    for k in 2..6 {
        assert_eq!(lab.forwarded_to(&tcp(CLIENT, 49000 + k, 80)), 0);
    }
}

#[test]
fn sed_nq_ovf_and_dh_choose_as_ipvs_does() {
    if skip_unless_root("sed_nq_ovf_and_dh_choose_as_ipvs_does") {
        return;
    }
    // Server 0: weight 1, idle. Server 1: weight 3, one open flow.
    let setup = |algo| {
        let mut lab = Lab::new();
        lab.real_with(0, REALS[0], true, 1, 0);
        lab.real_with(1, REALS[1], true, 3, 1);
        lab.service(HTTP, 0, algo, &[(0, 1), (1, 3)], 0);
        lab
    };
    // wlc: 0/1 < 1/3, server 0. sed: (0+1)/1 > (1+1)/3, server 1. nq: an idle server first.
    assert_eq!(setup(Algo::Wlc).forwarded_to(&tcp(CLIENT, 50000, 80)), 0);
    assert_eq!(setup(Algo::Sed).forwarded_to(&tcp(CLIENT, 50000, 80)), 1);
    assert_eq!(setup(Algo::Nq).forwarded_to(&tcp(CLIENT, 50000, 80)), 0);
    // ovf: the heaviest (1, weight 3, one open) until it holds 3, then 0 (weight 1) for one,
    // then nobody: the kernel gets it.
    let lab = setup(Algo::Ovf);
    let got: Vec<usize> = (0..3)
        .map(|k| lab.forwarded_to(&tcp(CLIENT, 51000 + k, 80)))
        .collect();
    assert_eq!(got, [1, 1, 0]);
    lab.passes(&tcp(CLIENT, 51003, 80), Counter::LbPassNoReal);
    // twos: of two random draws the less loaded; with server 1 down (and out of the ring, as
    // the agent writes it), always 0.
    let mut lab = setup(Algo::Twos);
    lab.real_with(1, REALS[1], false, 3, 1);
    lab.service(HTTP, 0, Algo::Twos, &[(0, 1)], 0);
    for k in 0..10 {
        assert_eq!(lab.forwarded_to(&tcp(CLIENT, 53000 + k, 80)), 0);
    }
    // dh: the destination picks the server, whoever the client.
    let lab = setup(Algo::Dh);
    let first = lab.forwarded_to(&tcp(CLIENT, 52000, 80));
    for c in 1..=20 {
        assert_eq!(
            lab.forwarded_to(&tcp(Ipv4Addr::new(10, 2, 0, c), 52000, 80)),
            first
        );
    }
}

fn tcp_to(dst: Ipv4Addr, sport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT.octets(), dst.octets(), 64)
        .tcp(sport, 80, 1, 64240)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    out
}

/// lblc / lblcr over two destinations of one service (a group's entries), servers 0 and 1
/// at weight 2, `spare` when the agent says some server is under half its weight. Server 0
/// alone is in the schedule at first, so the VIP's first flows make it the VIP's server;
/// then server 1 alone (0 staying up, out of the schedule), so whatever a destination is
/// given anew is 1.
fn locality_lab(algo: Algo, spare: bool) -> (Lab, ServiceKey) {
    let mut lab = Lab::new();
    let vip2 = Ipv4Addr::new(192, 0, 2, 201);
    lab.hold(vip2.into(), true);
    lab.real_with(0, REALS[0], true, 2, 0);
    lab.real_with(1, REALS[1], true, 2, 0);
    lab.extra_flags = if spare { LB_SVC_SPARE } else { 0 };
    let other = ServiceKey {
        addr: vip2.octets(),
        ..HTTP
    };
    for key in [HTTP, other] {
        lab.service(key, 3, algo, &[(0, 2)], 0);
    }
    for k in 0..3 {
        assert_eq!(lab.forwarded_to(&tcp(CLIENT, 50000 + k, 80)), 0);
    }
    assert_eq!(lab.xdp.maps.locality(3, VIP.octets()).unwrap(), [0]);
    for key in [HTTP, other] {
        lab.service(key, 3, algo, &[(1, 2)], 0);
    }
    (lab, other)
}

#[test]
fn lblc_keeps_each_destination_on_its_server_until_it_is_overloaded() {
    if skip_unless_root("lblc_keeps_each_destination_on_its_server_until_it_is_overloaded") {
        return;
    }
    // Server 0 has 3 open flows (over its weight, 2), but no server is under half its own:
    // not overloaded (IPVS's is_overloaded), the VIP stays on it; the other destination gets
    // a server of the schedule and keeps it.
    let (lab, other) = locality_lab(Algo::Lblc, false);
    for k in 0..3 {
        assert_eq!(lab.forwarded_to(&tcp(CLIENT, 50100 + k, 80)), 0);
    }
    let vip2 = Ipv4Addr::from(other.addr);
    for k in 0..3 {
        assert_eq!(lab.forwarded_to(&tcp_to(vip2, 50200 + k)), 1);
    }
    assert_eq!(lab.xdp.maps.locality(3, vip2.octets()).unwrap(), [1]);

    // With a server under half its weight somewhere, the overloaded server's destination is
    // given another, which it keeps; and its server going down does the same.
    let (mut lab, _) = locality_lab(Algo::Lblc, true);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 51000, 80)), 1);
    assert_eq!(lab.xdp.maps.locality(3, VIP.octets()).unwrap(), [1]);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 51001, 80)), 1);
    lab.service(HTTP, 3, Algo::Lblc, &[(0, 2)], 0);
    lab.real_with(1, REALS[1], false, 2, 0);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 51002, 80)), 0);
    assert_eq!(lab.xdp.maps.locality(3, VIP.octets()).unwrap(), [0]);
}

#[test]
fn lblcr_grows_a_destination_s_set_when_it_is_overloaded() {
    if skip_unless_root("lblcr_grows_a_destination_s_set_when_it_is_overloaded") {
        return;
    }
    // Server 0 (3 open flows, weight 2) is overloaded: the schedule's server joins the set,
    // and the set's least loaded for its weight takes the flows from then on (1, until it
    // has as many).
    let (lab, _) = locality_lab(Algo::Lblcr, true);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 52000, 80)), 1);
    assert_eq!(lab.xdp.maps.locality(3, VIP.octets()).unwrap(), [0, 1]);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 52001, 80)), 1);
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 52002, 80)), 1);
    // Both over their weight: the schedule's server is in the set already, which stays.
    assert_eq!(lab.forwarded_to(&tcp(CLIENT, 52003, 80)), 1);
    assert_eq!(lab.xdp.maps.locality(3, VIP.octets()).unwrap(), [0, 1]);
}

/// `ops` (IPVS's one-packet scheduling) on a UDP service: each datagram, even of one flow, is
/// scheduled on its own, no flow is kept or counted as open; persistence still holds a client.
#[test]
fn ops_schedules_each_udp_datagram_on_its_own() {
    if skip_unless_root("ops_schedules_each_udp_datagram_on_its_own") {
        return;
    }
    const DNS: ServiceKey = ServiceKey {
        addr: VIP.octets(),
        port: 53,
        proto: 17,
        _pad: 0,
    };
    let mut lab = Lab::new();
    lab.service(DNS, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    let pinned: Vec<usize> = (0..4).map(|_| lab.forwarded_to(&udp(40000, 53))).collect();
    assert_eq!(pinned, [0, 0, 0, 0], "without ops a flow keeps its server");
    let flows = lab.xdp.maps.flow_table().unwrap().flows().len();

    let mut lab = Lab::new();
    lab.extra_flags = LB_SVC_OPS;
    lab.service(DNS, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    let each: Vec<usize> = (0..4).map(|_| lab.forwarded_to(&udp(40000, 53))).collect();
    assert_eq!(each, [0, 1, 0, 1], "one flow, each datagram in turn");
    assert!(
        flows > 0 && lab.xdp.maps.flow_table().unwrap().flows().is_empty(),
        "no flow kept"
    );

    // wlc: nothing is counted open, so the servers stay even and take turns by weight.
    let mut lab = Lab::new();
    lab.extra_flags = LB_SVC_OPS;
    lab.service(DNS, 0, Algo::Wlc, &[(0, 1), (1, 1)], 0);
    for _ in 0..4 {
        assert_eq!(lab.forwarded_to(&udp(40000, 53)), 0, "ties go to the first");
    }
    let opened: u64 = (0..2)
        .flat_map(|i| lab.xdp.maps.real_conns(i).unwrap())
        .map(|c| c.opened)
        .sum();
    assert_eq!(opened, 0);

    // Persistence still keeps the client on its server.
    let mut lab = Lab::new();
    lab.extra_flags = LB_SVC_OPS;
    lab.service(DNS, 0, Algo::Rr, &[(0, 1), (1, 1)], 60);
    let first = lab.forwarded_to(&udp(40000, 53));
    for k in 0..4 {
        assert_eq!(lab.forwarded_to(&udp(40001 + k, 53)), first);
    }
}

/// Each address of a virtual server (a group's entries) counts what was forwarded for it in
/// its own slot; the real servers count it all.
#[test]
fn each_address_of_a_group_counts_its_own_traffic() {
    if skip_unless_root("each_address_of_a_group_counts_its_own_traffic") {
        return;
    }
    let mut lab = Lab::new();
    let vip2 = Ipv4Addr::new(192, 0, 2, 201);
    lab.hold(vip2.into(), true);
    let other = ServiceKey {
        addr: vip2.octets(),
        ..HTTP
    };
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    lab.service(other, 0, Algo::Rr, &[(0, 1), (1, 1)], 0);
    let (a, b) = (tcp_to(VIP, 51000), tcp_to(vip2, 51001));
    for _ in 0..3 {
        lab.forwarded_to(&a);
    }
    for _ in 0..2 {
        lab.forwarded_to(&b);
    }
    let entry = |lab: &Lab, e: u32| lab.xdp.maps.entry_traffic(e).unwrap();
    assert_eq!(
        (entry(&lab, 0).packets, entry(&lab, 0).bytes),
        (3, 3 * a.len() as u64)
    );
    assert_eq!(
        (entry(&lab, 1).packets, entry(&lab, 1).bytes),
        (2, 2 * b.len() as u64)
    );
    let reals: u64 = (0..2)
        .map(|i| lab.xdp.maps.real_traffic(i).unwrap().packets)
        .sum();
    assert_eq!(reals, 5);
    // Passed traffic counts nowhere.
    lab.hold(vip2.into(), false);
    lab.passes(&b, Counter::LbPassInactive);
    assert_eq!(entry(&lab, 1).packets, 2);
    // A slot given to another address counts from zero.
    lab.xdp.maps.reset_entry_traffic(1).unwrap();
    assert_eq!(entry(&lab, 1).packets, 0);
}

/// NAT (`lb_kind NAT`): the client's packet gets the real server's address and port (IP and
/// TCP/UDP checksums still right) and goes to it; its reply gets the virtual server's address
/// and port back and goes to the client's MAC; a UDP checksum of 0 stays 0; a server on
/// another interface is reached by a redirect from that interface's MAC; a reply nothing
/// was sent for passes.
#[test]
fn nat_rewrites_both_ways_with_valid_checksums() {
    use agent_common::LB_REAL_NAT;
    use etherparse::{SlicedPacket, TransportSlice};
    if skip_unless_root("nat_rewrites_both_ways_with_valid_checksums") {
        return;
    }
    const XDP_REDIRECT: u32 = 4;
    let rip = Ipv4Addr::new(10, 1, 0, 13);
    let mut lab = Lab::new();
    let nat_real = |ifindex: u32| Real {
        mac: REALS[0],
        flags: LB_REAL_UP | LB_REAL_NAT,
        addr: rip.octets(),
        weight: 1,
        conns: 0,
        ifindex,
        out_mac: [0x02, 0, 0, 0, 0, 0x77],
        port: u16::from_ne_bytes(8080u16.to_be_bytes()),
        ..Default::default()
    };
    lab.xdp.maps.set_real(0, nat_real(0)).unwrap();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1)], 0);
    // Checksums as a receiver checks them; (src, dst, sport, dport).
    let parsed = |frame: &[u8]| {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not IPv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IP checksum");
        let ports = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let sum = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), sum, "TCP checksum");
                (t.source_port(), t.destination_port())
            }
            Some(TransportSlice::Udp(u)) => {
                if u.checksum() != 0 {
                    let sum = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                    assert_eq!(u.checksum(), sum, "UDP checksum");
                }
                (u.source_port(), u.destination_port())
            }
            _ => panic!("not TCP/UDP"),
        };
        (
            Ipv4Addr::from(h.source),
            Ipv4Addr::from(h.destination),
            ports.0,
            ports.1,
        )
    };
    let (action, out, moved) = lab.run(&tcp(CLIENT, 40000, 80));
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbForwarded.name(), 1)]);
    assert_eq!((&out[..6], &out[6..12]), (&REALS[0][..], &DIRECTOR_MAC[..]));
    assert_eq!(parsed(&out), (CLIENT, rip, 40000, 8080));
    // The server's reply, sent to this node as its router.
    let reply = |sport: u16, payload: &[u8]| {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(REALS[0], DIRECTOR_MAC)
            .ipv4(rip.octets(), CLIENT.octets(), 64)
            .tcp(sport, 40000, 7, 64240)
            .syn()
            .ack(2)
            .write(&mut frame, payload)
            .unwrap();
        frame
    };
    // Replies are looked for only while the agent says some server is reached by NAT.
    lab.passes(&reply(8080, b"hello"), Counter::PassOther);
    lab.xdp.maps.set_nat_on(true).unwrap();
    let (action, out, moved) = lab.run(&reply(8080, b"hello"));
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbNatReply.name(), 1)]);
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&CLIENT_MAC[..], &DIRECTOR_MAC[..])
    );
    assert_eq!(parsed(&out), (VIP, CLIENT, 80, 40000));
    // Another port of the server: no flow of the balancer's, the kernel's.
    lab.passes(&reply(8081, b""), Counter::PassOther);

    // UDP, with a checksum and without one.
    const DNS: ServiceKey = ServiceKey {
        addr: VIP.octets(),
        port: 53,
        proto: 17,
        _pad: 0,
    };
    lab.service(DNS, 1, Algo::Rr, &[(0, 1)], 0);
    let mut query = udp(41000, 53);
    let (action, out, _) = lab.run(&query);
    assert_eq!(action, XDP_TX);
    assert_eq!(parsed(&out), (CLIENT, rip, 41000, 8080));
    query[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let (action, out, _) = lab.run(&query);
    assert_eq!(action, XDP_TX);
    assert_eq!(
        &out[14 + 20 + 6..14 + 20 + 8],
        &[0, 0],
        "no checksum stays none"
    );
    assert_eq!(parsed(&out), (CLIENT, rip, 41000, 8080));

    // On another interface: redirected there, from its MAC.
    lab.xdp.maps.set_real(0, nat_real(lab.lo + 1000)).unwrap();
    let (action, out, _) = lab.run(&tcp(CLIENT, 40001, 80));
    assert_eq!(action, XDP_REDIRECT);
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&REALS[0][..], &[0x02, 0, 0, 0, 0, 0x77][..])
    );
    assert_eq!(parsed(&out), (CLIENT, rip, 40001, 8080));
}

use vrrp_tests::fixture::{TUN_NEXT_HOP as NEXT_HOP, TUN_SERVER, TUN_SOURCE, tun_real};

/// TUN: a client's packet is wrapped in an IPv4 header from the tunnel's source to the
/// server (protocol IPIP, the inner TOS, TTL and DF, a valid checksum) and sent to the next
/// hop; the packet inside is the client's, untouched. One that would not fit the tunnel's
/// MTU gets an ICMP "fragmentation needed" back under DF, and is dropped without.
#[test]
fn tun_wraps_the_packet_for_the_server_and_answers_one_too_big() {
    use agent_common::LB_TUN_IPIP;
    use etherparse::{Icmpv4Type, Ipv4HeaderSlice, SlicedPacket, icmpv4::DestUnreachableHeader};
    if skip_unless_root("tun_wraps_the_packet_for_the_server_and_answers_one_too_big") {
        return;
    }
    const XDP_DROP: u32 = 1;
    let (rip, src) = (TUN_SERVER, TUN_SOURCE);
    let mut lab = Lab::new();
    lab.xdp.maps.set_real(0, tun_real(LB_TUN_IPIP, 0)).unwrap();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1)], 0);
    let syn = tcp(CLIENT, 40000, 80);
    let (action, out, moved) = lab.run(&syn);
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbForwarded.name(), 1)]);
    assert_eq!((&out[..6], &out[6..12]), (&NEXT_HOP[..], &DIRECTOR_MAC[..]));
    assert_eq!(&out[12..14], &[0x08, 0x00]);
    let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    assert_eq!(
        (
            Ipv4Addr::from(outer.source),
            Ipv4Addr::from(outer.destination),
            outer.protocol.0,
            outer.time_to_live,
            usize::from(outer.total_len),
            outer.dont_fragment,
        ),
        (src, rip, 4, 64, syn.len() - 14 + 20, true)
    );
    assert_eq!(
        &out[34..],
        &syn[14..],
        "the client's packet inside, untouched"
    );

    // A VLAN-tagged frame keeps its tag in front of the tunnel (the VIP held on VLAN 7).
    let key = VipKey::v4(lab.lo, 7, VIP.octets());
    let held = VipValue {
        mac: DIRECTOR_MAC,
        _pad: [0; 2],
    };
    lab.xdp.maps.arm_vip(key, held).unwrap();
    let mut tagged = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .single_vlan(7.try_into().unwrap())
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .tcp(40001, 80, 1, 64240)
        .syn()
        .write(&mut tagged, b"")
        .unwrap();
    let (action, out, moved) = lab.run(&tagged);
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(&out[12..18], &tagged[12..18], "the tag");
    assert_eq!(out[18 + 9], 4, "IPIP after the tag");
    assert_eq!(&out[38..], &tagged[18..]);

    // Too big for the tunnel (1480 bytes inside a 1500-byte MTU), with DF: ICMP
    // "fragmentation needed" from the VIP to the client, quoting its header and 8 bytes.
    let big = |df: bool| {
        let mut frame = Vec::new();
        let mut ip = etherparse::Ipv4Header::new(
            0,
            64,
            etherparse::IpNumber::TCP,
            CLIENT.octets(),
            VIP.octets(),
        )
        .unwrap();
        ip.dont_fragment = df;
        PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
            .ip(etherparse::IpHeaders::Ipv4(ip, Default::default()))
            .tcp(40002, 80, 1, 64240)
            .ack(1)
            .write(&mut frame, &[0x55; 1500 - 40 - 19])
            .unwrap();
        frame
    };
    let (action, out, moved) = lab.run(&big(true));
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbTunFragNeeded.name(), 1)]);
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&CLIENT_MAC[..], &DIRECTOR_MAC[..])
    );
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        panic!("not IPv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.header_checksum, h.calc_header_checksum());
    assert_eq!(
        (Ipv4Addr::from(h.source), Ipv4Addr::from(h.destination)),
        (VIP, CLIENT)
    );
    let Some(etherparse::TransportSlice::Icmpv4(icmp)) = &p.transport else {
        panic!("not ICMP: {out:02x?}")
    };
    assert_eq!(
        icmp.icmp_type(),
        Icmpv4Type::DestinationUnreachable(DestUnreachableHeader::FragmentationNeeded {
            next_hop_mtu: 1480
        })
    );
    let sum = out[34..]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum::<u32>();
    assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff, "ICMP checksum");
    assert_eq!(icmp.payload(), &big(true)[14..14 + 28]);
    // Without DF: dropped.
    let (action, _, moved) = lab.run(&big(false));
    assert_eq!(action, XDP_DROP);
    assert_eq!(moved, [(Counter::LbTunTooBig.name(), 1)]);
    // From a multicast source: no ICMP error goes there (RFC 1122).
    let mut forged = big(true);
    forged[26..30].copy_from_slice(&[224, 0, 0, 5]);
    let (action, _, moved) = lab.run(&forged);
    assert_eq!(action, XDP_DROP);
    assert_eq!(moved, [(Counter::LbTunTooBig.name(), 1)]);
    // A flood of them is answered at Linux's ICMP rate (bursts of 50 per CPU, then one a
    // millisecond), the rest dropped: 400 in a row take far less than the 300 ms that would
    // earn them all.
    let frame = big(true);
    let started = std::time::Instant::now();
    let answered = (0..400).filter(|_| lab.run(&frame).0 == XDP_TX).count();
    let ms = started.elapsed().as_millis() as usize;
    assert!(answered >= 50, "{answered} answered");
    assert!(answered < 400 || ms >= 300, "all 400 answered in {ms} ms");
}

/// TUN's other types, as IPVS wraps them: GUE (UDP to the tunnel's port from a port the
/// flow hashes to, no checksum; a GUE header of version 0 for IPIP) and GRE (a 4-byte header
/// for IPv4), with the MTU left inside each in the ICMP answer to a packet too big.
#[test]
fn tun_gue_and_gre_wrap_as_ipvs_does() {
    use agent_common::{LB_TUN_GRE, LB_TUN_GUE};
    use etherparse::Ipv4HeaderSlice;
    if skip_unless_root("tun_gue_and_gre_wrap_as_ipvs_does") {
        return;
    }
    let real = tun_real;
    let mut lab = Lab::new();
    lab.service(HTTP, 0, Algo::Rr, &[(0, 1)], 0);
    let syn = tcp(CLIENT, 40000, 80);
    // GUE to port 6080.
    lab.xdp.maps.set_real(0, real(LB_TUN_GUE, 6080)).unwrap();
    let (action, out, moved) = lab.run(&syn);
    assert_eq!(action, XDP_TX, "{moved:?}");
    let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    let inner_len = syn.len() - 14;
    assert_eq!(
        (outer.protocol.0, usize::from(outer.total_len)),
        (17, inner_len + 32)
    );
    let udp = &out[34..42];
    let sport = u16::from_be_bytes([udp[0], udp[1]]);
    assert!((32768..=60999).contains(&sport), "source port {sport}");
    assert_eq!(
        &udp[2..],
        &[0x17, 0xc0, 0, (inner_len + 12) as u8, 0, 0][..]
    );
    assert_eq!(&out[42..46], &[0, 4, 0, 0], "GUE: version 0, IPIP");
    assert_eq!(&out[46..], &syn[14..]);
    // The same flow, the same source port.
    let (_, again, _) = lab.run(&syn);
    assert_eq!(&again[34..36], &udp[..2]);
    // Too big for GUE's 32 bytes: 1468 left.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv4(CLIENT.octets(), VIP.octets(), 64)
        .tcp(40002, 80, 1, 64240)
        .ack(1)
        .write(&mut big, &[0x55; 1469 - 40])
        .unwrap();
    big[14 + 6] |= 0x40; // DF
    let c = etherparse::Ipv4HeaderSlice::from_slice(&big[14..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    big[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
    let (action, out, moved) = lab.run(&big);
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbTunFragNeeded.name(), 1)]);
    assert_eq!(&out[34..36], &[3, 4]);
    assert_eq!(u16::from_be_bytes([out[40], out[41]]), 1468);
    // GRE.
    lab.xdp.maps.set_real(0, real(LB_TUN_GRE, 0)).unwrap();
    let (action, out, _) = lab.run(&syn);
    assert_eq!(action, XDP_TX);
    let outer = Ipv4HeaderSlice::from_slice(&out[14..]).unwrap().to_header();
    assert_eq!(outer.header_checksum, outer.calc_header_checksum());
    assert_eq!(
        (outer.protocol.0, usize::from(outer.total_len)),
        (47, inner_len + 24)
    );
    assert_eq!(&out[34..38], &[0, 0, 0x08, 0x00], "GRE: no flags, IPv4");
    assert_eq!(&out[38..], &syn[14..]);
}

const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

/// A TCP SYN from `src` to VIP6, with `ext` as the IPv6 next header in front of TCP when
/// given (an extension header of 8 bytes, next header TCP).
fn tcp6(src: Ipv6Addr, sport: u16, dport: u16, ext: Option<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv6(src.octets(), VIP6.octets(), 64)
        .tcp(sport, dport, 1, 64240)
        .syn()
        .write(&mut out, b"")
        .unwrap();
    if let Some(next) = ext {
        // Next header 6 (TCP), length 0 (8 bytes); for a fragment header, offset 0 and M set.
        let header = [6, 0, 0, 1, 0, 0, 0, 7];
        out.splice(54..54, header);
        out[20] = next;
        let len = u16::from_be_bytes([out[18], out[19]]) + 8;
        out[18..20].copy_from_slice(&len.to_be_bytes());
    }
    out
}

fn client6(k: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, k)
}

/// IPv6 virtual servers (`vrrp_lb_v6`, tail-called): new flows by rr, each flow kept on its
/// server, nothing but the MACs changed; passed while this node does not hold the VIP, for
/// other ports and protocols, behind extension headers (a fragment header among them); with
/// persistence under a /64 (`persistence_granularity 64`), a client's neighbours in its /64
/// share its server and another /64 is scheduled on its own; sh hashes the client
/// consistently.
#[test]
fn ipv6_virtual_servers_are_balanced_by_direct_routing() {
    if skip_unless_root("ipv6_virtual_servers_are_balanced_by_direct_routing") {
        return;
    }
    let mut lab = Lab::new();
    lab.hold(VIP6.into(), true);
    let http6 = ServiceKey6 {
        addr: VIP6.octets(),
        port: 80,
        proto: 6,
        _pad: 0,
    };
    lab.service6(http6, (3, Algo::Rr), &[(0, 1), (1, 1)], (0, [255; 16]));
    let firsts: Vec<usize> = (0..6)
        .map(|k| lab.forwarded_to(&tcp6(client6(1), 40000 + k, 80, None)))
        .collect();
    assert_eq!(firsts, [0, 1, 0, 1, 0, 1], "in turn");
    for k in 0..6 {
        assert_eq!(
            lab.forwarded_to(&tcp6(client6(1), 40000 + k, 80, None)),
            firsts[k as usize],
            "the flow keeps its server"
        );
    }
    lab.passes(&tcp6(client6(1), 40000, 22, None), Counter::PassOther);
    for ext in [0, 60, 44] {
        lab.passes(&tcp6(client6(1), 40000, 80, Some(ext)), Counter::PassOther);
    }
    let mut udp = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv6(client6(1).octets(), VIP6.octets(), 64)
        .udp(40000, 80)
        .write(&mut udp, b"query")
        .unwrap();
    lab.passes(&udp, Counter::PassOther);
    // Cut short before its ports: the kernel's.
    let whole = tcp6(client6(1), 40000, 80, None);
    lab.passes(&whole[..56], Counter::PassOther);
    // Tagged (VLAN 100): the program reads past the tag, and the VIP is held untagged only.
    let mut tagged = tcp6(client6(1), 40000, 80, None);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 100]);
    lab.passes(&tagged, Counter::LbPassInactive);
    lab.hold(VIP6.into(), false);
    lab.passes(&tcp6(client6(1), 40000, 80, None), Counter::LbPassInactive);
    lab.hold(VIP6.into(), true);

    // persistence_granularity 64.
    let mask64 = {
        let mut m = [0u8; 16];
        m[..8].fill(255);
        m
    };
    lab.service6(
        http6,
        (3, Algo::Rr),
        &[(0, 1), (1, 1), (2, 1)],
        (50, mask64),
    );
    let first = lab.forwarded_to(&tcp6(client6(7), 41000, 80, None));
    for k in 8..12 {
        assert_eq!(
            lab.forwarded_to(&tcp6(client6(k), 41000, 80, None)),
            first,
            "the same /64"
        );
    }
    let elsewhere = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 7);
    assert_ne!(
        lab.forwarded_to(&tcp6(elsewhere, 41000, 80, None)),
        first,
        "another /64"
    );

    // sh: the same client on the same server whatever its port, and clients spread.
    lab.service6(
        http6,
        (3, Algo::Sh),
        &[(0, 1), (1, 1), (2, 1)],
        (0, [255; 16]),
    );
    let servers: Vec<usize> = (1..=30)
        .map(|k| {
            let on = lab.forwarded_to(&tcp6(client6(100 + k), 42000, 80, None));
            assert_eq!(
                lab.forwarded_to(&tcp6(client6(100 + k), 42001, 80, None)),
                on
            );
            on
        })
        .collect();
    for r in 0..3 {
        assert!(servers.contains(&r), "{servers:?}");
    }
}

/// IPv6 NAT (`vrrp_lb_nat6`): the client's packet gets the real server's address and port,
/// its reply the VIP's back, each with a valid TCP / UDP checksum (IPv6's pseudo-header
/// holds both addresses); replies are looked for only while some server is reached by NAT.
#[test]
fn ipv6_nat_rewrites_both_ways_with_valid_checksums() {
    use agent_common::LB_REAL_NAT;
    use etherparse::{SlicedPacket, TransportSlice};
    if skip_unless_root("ipv6_nat_rewrites_both_ways_with_valid_checksums") {
        return;
    }
    let rip = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 13);
    let mut lab = Lab::new();
    lab.hold(VIP6.into(), true);
    lab.xdp
        .maps
        .set_real(
            0,
            Real {
                mac: REALS[0],
                flags: LB_REAL_UP | LB_REAL_NAT,
                weight: 1,
                port: u16::from_ne_bytes(8080u16.to_be_bytes()),
                ..Default::default()
            },
        )
        .unwrap();
    lab.xdp.maps.set_real_addr6(0, rip.octets()).unwrap();
    for (port, proto) in [(80, 6), (53, 17)] {
        let key = ServiceKey6 {
            addr: VIP6.octets(),
            port,
            proto,
            _pad: 0,
        };
        lab.service6(
            key,
            (5 + u32::from(proto), Algo::Rr),
            &[(0, 1)],
            (0, [255; 16]),
        );
    }
    // Checksums as a receiver checks them; (src, dst, sport, dport).
    let parsed = |frame: &[u8]| {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6")
        };
        let h = ip.header().to_header();
        let ports = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let sum = t.to_header().calc_checksum_ipv6(&h, t.payload()).unwrap();
                assert_eq!(t.checksum(), sum, "TCP checksum");
                (t.source_port(), t.destination_port())
            }
            Some(TransportSlice::Udp(u)) => {
                let sum = u.to_header().calc_checksum_ipv6(&h, u.payload()).unwrap();
                assert_eq!(u.checksum(), sum, "UDP checksum");
                (u.source_port(), u.destination_port())
            }
            _ => panic!("not TCP/UDP"),
        };
        (
            Ipv6Addr::from(h.source),
            Ipv6Addr::from(h.destination),
            ports.0,
            ports.1,
        )
    };
    let client = client6(1);
    let (action, out, moved) = lab.run(&tcp6(client, 40000, 80, None));
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbForwarded.name(), 1)]);
    assert_eq!((&out[..6], &out[6..12]), (&REALS[0][..], &DIRECTOR_MAC[..]));
    assert_eq!(parsed(&out), (client, rip, 40000, 8080));
    let reply = |sport: u16, udp: bool| {
        let mut frame = Vec::new();
        let b = PacketBuilder::ethernet2(REALS[0], DIRECTOR_MAC).ipv6(
            rip.octets(),
            client.octets(),
            64,
        );
        if udp {
            b.udp(sport, 40000).write(&mut frame, b"answer").unwrap();
        } else {
            b.tcp(sport, 40000, 7, 64240)
                .syn()
                .ack(2)
                .write(&mut frame, b"hello")
                .unwrap();
        }
        frame
    };
    lab.passes(&reply(8080, false), Counter::PassOther);
    lab.xdp.maps.set_nat_on(true).unwrap();
    let (action, out, moved) = lab.run(&reply(8080, false));
    assert_eq!(action, XDP_TX, "{moved:?}");
    assert_eq!(moved, [(Counter::LbNatReply.name(), 1)]);
    assert_eq!(
        (&out[..6], &out[6..12]),
        (&CLIENT_MAC[..], &DIRECTOR_MAC[..])
    );
    assert_eq!(parsed(&out), (VIP6, client, 80, 40000));
    lab.passes(&reply(8081, false), Counter::PassOther);
    // UDP both ways.
    let mut query = Vec::new();
    PacketBuilder::ethernet2(CLIENT_MAC, DIRECTOR_MAC)
        .ipv6(client.octets(), VIP6.octets(), 64)
        .udp(40000, 53)
        .write(&mut query, b"query")
        .unwrap();
    let (action, out, _) = lab.run(&query);
    assert_eq!(action, XDP_TX);
    assert_eq!(parsed(&out), (client, rip, 40000, 8080));
    let (action, out, _) = lab.run(&reply(8080, true));
    assert_eq!(action, XDP_TX);
    assert_eq!(parsed(&out), (VIP6, client, 53, 40000));
    // A UDP checksum of 0 (none) stays 0, as IPv4's.
    let mut bare = query.clone();
    bare[60..62].copy_from_slice(&[0, 0]);
    let (action, out, _) = lab.run(&bare);
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[60..62], [0, 0]);
    assert_eq!(&out[38..54], rip.octets());
}
