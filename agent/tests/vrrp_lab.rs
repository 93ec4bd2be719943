//! End-to-end VRRP in a namespace LAN: vrrp-agent against itself and against the real
//! keepalived 2.2.7, in both roles; VRRPv2 with PASS, VRRPv3 over IPv4 and IPv6, multicast and
//! unicast. A client probes the VIP; the tests assert who holds it, who answers (by MAC), and
//! that once stable only one router ever answers.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use vrrp_tests::{
    routers::{A_MAC, B_MAC, CLIENT_MAC, Daemon, VrrpLab},
    skip_unless_root,
};

const SEED_VIP: &str = "192.168.11.200";

fn agent() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_vrrp-agent"))
}

fn seed(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../shared/configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Routers a (192.168.11.11) and b (.12) and a client (.100) on `iface`.
fn seed_lab(iface: &str) -> VrrpLab {
    let mut lab = VrrpLab::new(agent()).expect("lab");
    lab.add_router("a", iface, A_MAC, "192.168.11.11/24")
        .unwrap();
    lab.add_router("b", iface, B_MAC, "192.168.11.12/24")
        .unwrap();
    lab.add_client(
        "client",
        iface,
        CLIENT_MAC,
        Ipv4Addr::new(192, 168, 11, 100),
        24,
    )
    .unwrap();
    // IPv6 addresses for the VRRPv3-over-IPv6 cases (link-local come with the link).
    lab.lab
        .host("a")
        .ns
        .ip(&["addr", "add", "fd00:11::11/64", "dev", iface])
        .unwrap();
    lab.lab
        .host("b")
        .ns
        .ip(&["addr", "add", "fd00:11::12/64", "dev", iface])
        .unwrap();
    lab
}

const LONG: Duration = Duration::from_secs(15);

/// After the election settles: the VIP answers from `router`'s MAC only.
fn assert_answers_from(lab: &VrrpLab, router: &str, vip: Ipv4Addr) {
    let probe = lab.probe(vip, Duration::from_millis(5), 5).unwrap();
    let t0 = Instant::now();
    // An observation window, not a synchronisation: every answer in it must come from one MAC.
    std::thread::sleep(Duration::from_millis(400));
    let rec = probe.stop().unwrap();
    let from = t0 + Duration::from_millis(100);
    let macs = rec.macs_since(from);
    assert_eq!(
        macs,
        [lab.mac(router)],
        "the VIP must answer from {router} only: {}\n{}",
        lab.describe(&rec),
        lab.logs()
    );
}

// ----- agent pair on the seed configs -----

#[test]
fn seed_hot_standby_agents_elect_fail_over_and_preempt_back() {
    if skip_unless_root("seed_hot_standby_agents_elect_fail_over_and_preempt_back") {
        return;
    }
    let mut lab = seed_lab("ens33");
    let vip: Ipv4Addr = SEED_VIP.parse().unwrap();
    lab.start("a", Daemon::Agent, &seed("hot-standby-master.conf"))
        .unwrap();
    lab.start("b", Daemon::Agent, &seed("hot-standby-backup.conf"))
        .unwrap();
    lab.wait_sole_holder("a", SEED_VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE (init)", LONG)
        .unwrap();
    for v in ["192.168.11.201", "192.168.11.202"] {
        assert!(lab.holds("a", v), "every VIP of the seed moves together");
    }
    assert_answers_from(&lab, "a", vip);

    // Crash: b takes over after Master_Down_Interval (3 s + skew).
    lab.crash("a").unwrap();
    lab.wait_sole_holder("b", SEED_VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Receive advertisement timeout", LONG)
        .unwrap();
    assert_answers_from(&lab, "b", vip);

    // a comes back: preempts (higher priority) and b steps down.
    lab.power_on("a").unwrap();
    lab.start("a", Daemon::Agent, &seed("hot-standby-master.conf"))
        .unwrap();
    lab.wait_sole_holder("a", SEED_VIP, LONG).unwrap();
    lab.wait_log(
        "b",
        "(VI_1) Master received advert from 192.168.11.11 with higher priority 100, ours 90",
        LONG,
    )
    .unwrap();
    assert_answers_from(&lab, "a", vip);

    // Graceful stop: priority 0, b takes over after its skew time only, a's VIPs are gone.
    let t0 = Instant::now();
    lab.stop("a", LONG).unwrap();
    lab.wait_sole_holder("b", SEED_VIP, LONG).unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "a priority-0 advert hands over in skew time, took {:?}",
        t0.elapsed()
    );
    lab.wait_log("b", "(VI_1) Backup received priority 0 advertisement", LONG)
        .unwrap();
    assert!(!lab.holds("a", SEED_VIP));
}

#[test]
fn seed_lb_pair_with_dev_and_label_runs_unchanged() {
    if skip_unless_root("seed_lb_pair_with_dev_and_label_runs_unchanged") {
        return;
    }
    // lb01/lb02 put the VIP on eth1 with a label; the lab names interfaces as the files do.
    let text = seed("lb01.conf");
    assert!(
        text.contains("label eth1:1"),
        "the seed is the one with a label"
    );
    let mut lab = VrrpLab::new(agent()).unwrap();
    lab.add_router("a", "eth1", A_MAC, "192.168.190.1/24")
        .unwrap();
    lab.add_router("b", "eth2", B_MAC, "192.168.190.2/24")
        .unwrap();
    lab.start("a", Daemon::Agent, &text).unwrap();
    lab.start("b", Daemon::Agent, &seed("lb02.conf")).unwrap();
    let vip = text
        .lines()
        .find(|l| l.contains("label eth1:1"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let master = vrrp_tests::poll(LONG, || {
        let h = lab.holders(&vip);
        (h.len() == 1).then(|| h[0].clone())
    })
    .unwrap_or_else(|| panic!("no single holder of {vip}\n{}", lab.logs()));
    assert_eq!(master, "a", "lb01 has the higher priority\n{}", lab.logs());
    let shown = lab
        .lab
        .host("a")
        .ns
        .run(&["ip", "-o", "addr", "show", "dev", "eth1"])
        .unwrap();
    assert!(shown.contains("eth1:1"), "the label is applied: {shown}");
    // b holds it after a crash, with its own label.
    lab.crash("a").unwrap();
    lab.wait_sole_holder("b", &vip, LONG).unwrap();
    let shown = lab
        .lab
        .host("b")
        .ns
        .run(&["ip", "-o", "addr", "show", "dev", "eth2"])
        .unwrap();
    assert!(shown.contains("eth2:1"), "the label is applied: {shown}");
}

/// The other seed pairs as written: each router on the interface its file names, with the
/// address its `mcast_src_ip` needs; every VIP ends up on exactly the router with the higher
/// priority for it.
#[test]
fn every_seed_pair_runs_unchanged() {
    if skip_unless_root("every_seed_pair_runs_unchanged") {
        return;
    }
    // (a's file, b's file or "", interface, a's address, b's address, [(VIP, holder)])
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a [(&'a str, &'a str)],
    );
    let cases: [Case; 4] = [
        (
            "nginx-master.conf",
            "nginx-backup.conf",
            "eth0",
            "192.168.1.210/24",
            "192.168.1.211/24",
            &[("192.168.1.200", "a")],
        ),
        (
            "dual-master-a.conf",
            "dual-master-b.conf",
            "eth0",
            "192.168.137.201/24",
            "192.168.137.202/24",
            // Two instances each, crossed priorities: both routers serve.
            &[("192.168.137.200", "a"), ("192.168.137.100", "b")],
        ),
        (
            "lvs-dr-master.conf",
            "lvs-dr-backup.conf",
            "ens33",
            "192.168.11.11/24",
            "192.168.11.12/24",
            &[("192.168.11.200", "a")],
        ),
        (
            // Kept verbatim with its mistakes; its instance is named " insid_network".
            "annotated-messy.conf",
            "",
            "eth0",
            "192.168.202.1/24",
            "192.168.202.2/24",
            &[("192.168.202.200", "a")],
        ),
    ];
    for (fa, fb, iface, addr_a, addr_b, vips) in cases {
        let mut lab = VrrpLab::new(agent()).unwrap();
        lab.add_router("a", iface, A_MAC, addr_a).unwrap();
        lab.add_router("b", iface, B_MAC, addr_b).unwrap();
        lab.start("a", Daemon::Agent, &seed(fa)).unwrap();
        if !fb.is_empty() {
            lab.start("b", Daemon::Agent, &seed(fb)).unwrap();
        }
        for (vip, holder) in vips {
            lab.wait_sole_holder(holder, vip, LONG)
                .unwrap_or_else(|e| panic!("{fa} / {fb}: {e:#}"));
        }
        assert!(lab.is_running("a"), "{fa}\n{}", lab.logs());
    }
}

// ----- against keepalived 2.2.7 -----

#[derive(Clone, Copy, Debug)]
enum Proto {
    V2Pass,
    V3,
    V3Ipv6,
    V3Unicast,
}

/// A two-router config: `prio` on router `me` (a or b), the VIP of the protocol.
fn conf(proto: Proto, me: &str, prio: u8, extra: &str) -> String {
    let (mine, peer) = if me == "a" {
        ("11", "12")
    } else {
        ("12", "11")
    };
    let (version, int, auth, vip) = match proto {
        Proto::V2Pass => (
            2,
            "1",
            "authentication {\n auth_type PASS\n auth_pass s3cret\n }",
            "192.168.11.200/24",
        ),
        Proto::V3 | Proto::V3Unicast => (3, "0.1", "", "192.168.11.200/24"),
        Proto::V3Ipv6 => (3, "0.1", "", "fd00:11::200/64"),
    };
    let unicast = match proto {
        Proto::V3Unicast => {
            format!("unicast_src_ip 192.168.11.{mine}\n unicast_peer {{\n 192.168.11.{peer}\n }}")
        }
        _ => String::new(),
    };
    format!(
        "global_defs {{\n vrrp_version {version}\n}}\n\
         vrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 42\n priority {prio}\n\
         advert_int {int}\n {auth}\n {unicast}\n {extra}\n virtual_ipaddress {{\n {vip}\n }}\n}}\n"
    )
}

fn vip_of(proto: Proto) -> &'static str {
    match proto {
        Proto::V3Ipv6 => "fd00:11::200",
        _ => "192.168.11.200",
    }
}

/// `master` (priority 150 on a) and `backup` (100 on b): election, graceful stop, preempt
/// back, crash.
fn mixed(master: Daemon, backup: Daemon, proto: Proto) {
    let mut lab = seed_lab("eth0");
    let vip = vip_of(proto);
    lab.start("b", backup, &conf(proto, "b", 100, "")).unwrap();
    // b alone becomes master first; then a with the higher priority preempts it.
    lab.wait_sole_holder("b", vip, LONG).unwrap();
    lab.start("a", master, &conf(proto, "a", 150, "")).unwrap();
    lab.wait_sole_holder("a", vip, LONG).unwrap();
    if let Ok(v4) = vip.parse::<Ipv4Addr>() {
        assert_answers_from(&lab, "a", v4);
    }
    // Graceful stop of the master: b takes over.
    lab.stop("a", LONG).unwrap();
    lab.wait_sole_holder("b", vip, LONG).unwrap();
    // Back, and preempting.
    lab.start("a", master, &conf(proto, "a", 150, "")).unwrap();
    lab.wait_sole_holder("a", vip, LONG).unwrap();
    // Crash: b takes over, announcing the VIP (gratuitous ARP or unsolicited NA) on the way.
    let client = vrrp_tests::Capture::open(&lab.lab.host("client").ns, "eth0").unwrap();
    lab.crash("a").unwrap();
    lab.wait_sole_holder("b", vip, LONG).unwrap();
    let announced = client.next_matching(LONG, |f| announces(f, vip) == Some(B_MAC));
    assert!(
        announced.is_some(),
        "no GARP/NA for {vip} from b\n{}",
        lab.logs()
    );
    if let Ok(v4) = vip.parse::<Ipv4Addr>() {
        assert_answers_from(&lab, "b", v4);
    }
    assert!(lab.is_running("b"), "{}", lab.logs());
}

/// The sender MAC of a gratuitous ARP or an unsolicited NA (RFC 4861 §4.4, to all-nodes,
/// Override set) for `vip`.
fn announces(f: &[u8], vip: &str) -> Option<[u8; 6]> {
    use etherparse::{Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(f).ok()?;
    let mac: [u8; 6] = f.get(6..12)?.try_into().ok()?;
    match (&p.net, &p.transport) {
        (Some(NetSlice::Arp(arp)), _) => {
            let target: std::net::IpAddr = vip.parse().ok()?;
            let std::net::IpAddr::V4(t) = target else {
                return None;
            };
            (arp.operation() == etherparse::ArpOperation::REQUEST
                && arp.sender_protocol_addr() == t.octets()
                && arp.target_protocol_addr() == t.octets())
            .then_some(mac)
        }
        (Some(NetSlice::Ipv6(ip)), Some(TransportSlice::Icmpv6(icmp))) => {
            let Icmpv6Type::NeighborAdvertisement(h) = icmp.icmp_type() else {
                return None;
            };
            let target =
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(icmp.payload().get(..16)?).ok()?);
            (h.r#override
                && ip.header().destination_addr()
                    == "ff02::1".parse::<std::net::Ipv6Addr>().ok()?
                && target.to_string() == vip)
                .then_some(mac)
        }
        _ => None,
    }
}

macro_rules! mixed_tests {
    ($($name:ident: $master:ident, $backup:ident, $proto:ident;)*) => {$(
        #[test]
        fn $name() {
            if skip_unless_root(stringify!($name)) {
                return;
            }
            mixed(Daemon::$master, Daemon::$backup, Proto::$proto);
        }
    )*};
}

mixed_tests! {
    agent_master_keepalived_backup_v2_pass: Agent, Keepalived, V2Pass;
    keepalived_master_agent_backup_v2_pass: Keepalived, Agent, V2Pass;
    agent_master_keepalived_backup_v3: Agent, Keepalived, V3;
    keepalived_master_agent_backup_v3: Keepalived, Agent, V3;
    agent_master_keepalived_backup_v3_ipv6: Agent, Keepalived, V3Ipv6;
    keepalived_master_agent_backup_v3_ipv6: Keepalived, Agent, V3Ipv6;
    agent_master_keepalived_backup_v3_unicast: Agent, Keepalived, V3Unicast;
    keepalived_master_agent_backup_v3_unicast: Keepalived, Agent, V3Unicast;
    agent_pair_v3: Agent, Agent, V3;
    agent_pair_v3_ipv6: Agent, Agent, V3Ipv6;
}

// ----- election rules end to end -----

/// (the router already master, the newcomer whose rule is under test): against keepalived,
/// and agent to agent.
const RULE_PAIRS: [(Daemon, Daemon); 2] = [
    (Daemon::Keepalived, Daemon::Agent),
    (Daemon::Agent, Daemon::Agent),
];

#[test]
fn nopreempt_keeps_the_current_master() {
    if skip_unless_root("nopreempt_keeps_the_current_master") {
        return;
    }
    for (current, newcomer) in RULE_PAIRS {
        let mut lab = seed_lab("eth0");
        lab.start("b", current, &conf(Proto::V3, "b", 100, ""))
            .unwrap();
        lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
        lab.start("a", newcomer, &conf(Proto::V3, "a", 150, "nopreempt"))
            .unwrap();
        lab.wait_log("a", "(VI_1) Entering BACKUP STATE (init)", LONG)
            .unwrap();
        // An observation window of many Master_Down_Intervals: b still holds it.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(lab.holders("192.168.11.200"), ["b"], "{}", lab.logs());
        assert!(
            !lab.log("a").contains("Entering MASTER STATE"),
            "{}",
            lab.logs()
        );
    }
}

#[test]
fn preempt_delay_holds_the_higher_router_back() {
    if skip_unless_root("preempt_delay_holds_the_higher_router_back") {
        return;
    }
    for (current, newcomer) in RULE_PAIRS {
        let mut lab = seed_lab("eth0");
        lab.start("b", current, &conf(Proto::V3, "b", 100, ""))
            .unwrap();
        lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
        let t0 = Instant::now();
        lab.start("a", newcomer, &conf(Proto::V3, "a", 150, "preempt_delay 2"))
            .unwrap();
        lab.wait_sole_holder("a", "192.168.11.200", LONG).unwrap();
        assert!(
            t0.elapsed() >= Duration::from_secs(2),
            "{newcomer:?} preempted {current:?} after {:?}, before the 2 s delay",
            t0.elapsed()
        );
    }
}

#[test]
fn vips_left_by_a_previous_run_are_removed_at_start() {
    if skip_unless_root("vips_left_by_a_previous_run_are_removed_at_start") {
        return;
    }
    let mut lab = seed_lab("eth0");
    lab.start("b", Daemon::Keepalived, &conf(Proto::V3, "b", 150, ""))
        .unwrap();
    lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
    // As if an agent had been killed while master: its VIP is still on a's interface.
    lab.lab
        .host("a")
        .ns
        .ip(&["addr", "add", "192.168.11.200/24", "dev", "eth0"])
        .unwrap();
    lab.start("a", Daemon::Agent, &conf(Proto::V3, "a", 100, ""))
        .unwrap();
    lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
    lab.wait_log("a", "(VI_1) removing VIPs.", LONG).unwrap();
}

#[test]
fn virtual_routes_and_rules_follow_mastership() {
    if skip_unless_root("virtual_routes_and_rules_follow_mastership") {
        return;
    }
    let routes = "virtual_routes {\n 10.99.0.0/16 via 192.168.11.254 dev eth0 metric 7\n blackhole 10.98.0.0/16\n }\n\
                  virtual_rules {\n from 192.168.11.200 table 100 priority 1000\n }";
    let has_routes = |lab: &VrrpLab, r: &str| {
        let ns = &lab.lab.host(r).ns;
        let routes = ns.run(&["ip", "route", "show"]).unwrap();
        let rules = ns.run(&["ip", "rule", "show"]).unwrap();
        routes.contains("10.99.0.0/16 via 192.168.11.254 dev eth0")
            && routes.contains("blackhole 10.98.0.0/16")
            && rules.contains("1000:\tfrom 192.168.11.200 lookup 100")
    };
    let mut lab = seed_lab("eth0");
    lab.start("a", Daemon::Agent, &conf(Proto::V3, "a", 150, routes))
        .unwrap();
    lab.start("b", Daemon::Agent, &conf(Proto::V3, "b", 100, routes))
        .unwrap();
    lab.wait_sole_holder("a", "192.168.11.200", LONG).unwrap();
    vrrp_tests::poll(LONG, || has_routes(&lab, "a").then_some(()))
        .unwrap_or_else(|| panic!("a (master) has its virtual routes\n{}", lab.logs()));
    assert!(!has_routes(&lab, "b"), "b (backup) has none");
    lab.stop("a", LONG).unwrap();
    lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
    vrrp_tests::poll(LONG, || has_routes(&lab, "b").then_some(()))
        .unwrap_or_else(|| panic!("b (new master) has the routes\n{}", lab.logs()));
    assert!(
        !has_routes(&lab, "a"),
        "a removed its routes when it stopped"
    );
}

#[test]
fn use_vmac_keeps_the_vip_on_the_virtual_mac_across_failover() {
    if skip_unless_root("use_vmac_keeps_the_vip_on_the_virtual_mac_across_failover") {
        return;
    }
    const VMAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 42];
    let on_vmac = |lab: &VrrpLab, r: &str| {
        lab.lab
            .host(r)
            .ns
            .run(&["ip", "-o", "addr", "show", "dev", "vrrp.42"])
            .is_ok_and(|o| o.contains("192.168.11.200/24"))
    };
    let mut lab = seed_lab("eth0");
    lab.start("a", Daemon::Agent, &conf(Proto::V3, "a", 150, "use_vmac"))
        .unwrap();
    lab.start("b", Daemon::Agent, &conf(Proto::V3, "b", 100, "use_vmac"))
        .unwrap();
    vrrp_tests::poll(LONG, || on_vmac(&lab, "a").then_some(()))
        .unwrap_or_else(|| panic!("a holds the VIP on vrrp.42\n{}", lab.logs()));
    assert!(!on_vmac(&lab, "b"));
    let vip: Ipv4Addr = "192.168.11.200".parse().unwrap();
    // ARP for the VIP answers with the virtual MAC; pings are answered by a.
    let seen = |lab: &VrrpLab| {
        let probe = lab.probe(vip, Duration::from_millis(5), 5).unwrap();
        std::thread::sleep(Duration::from_millis(400));
        probe.stop().unwrap()
    };
    let rec = seen(&lab);
    let arp: Vec<[u8; 6]> = rec
        .replies
        .iter()
        .filter(|r| r.kind == vrrp_tests::probe::Kind::Arp)
        .map(|r| r.mac)
        .collect();
    assert!(
        !arp.is_empty() && arp.iter().all(|m| *m == VMAC),
        "ARP replies: {arp:?}\n{}",
        lab.logs()
    );
    // The ARP reply's sender hardware address is what clients cache: it is the VMAC too.
    assert_eq!(rec.last_echo_mac(), Some(A_MAC), "{}", lab.describe(&rec));
    // Failover: the client's cached MAC stays right; b answers behind it.
    lab.stop("a", LONG).unwrap();
    vrrp_tests::poll(LONG, || on_vmac(&lab, "b").then_some(()))
        .unwrap_or_else(|| panic!("b holds the VIP on vrrp.42\n{}", lab.logs()));
    let rec = seen(&lab);
    assert_eq!(rec.last_echo_mac(), Some(B_MAC), "{}", lab.describe(&rec));
    assert!(
        lab.lab
            .host("a")
            .ns
            .run(&["ip", "link", "show", "vrrp.42"])
            .is_err(),
        "a removed its VMAC when it stopped"
    );
}

#[test]
fn use_vmac_over_ipv6_moves_the_vip_on_the_vmac() {
    if skip_unless_root("use_vmac_over_ipv6_moves_the_vip_on_the_vmac") {
        return;
    }
    let on_vmac = |lab: &VrrpLab, r: &str| {
        lab.lab
            .host(r)
            .ns
            .run(&["ip", "-o", "addr", "show", "dev", "vrrp.42"])
            .is_ok_and(|o| o.contains("fd00:11::200/64"))
    };
    let mut lab = seed_lab("eth0");
    lab.start(
        "a",
        Daemon::Agent,
        &conf(Proto::V3Ipv6, "a", 150, "use_vmac"),
    )
    .unwrap();
    lab.start(
        "b",
        Daemon::Agent,
        &conf(Proto::V3Ipv6, "b", 100, "use_vmac"),
    )
    .unwrap();
    vrrp_tests::poll(LONG, || {
        (on_vmac(&lab, "a") && !on_vmac(&lab, "b")).then_some(())
    })
    .unwrap_or_else(|| panic!("a holds the IPv6 VIP on vrrp.42 only\n{}", lab.logs()));
    // The VMAC carries the IPv6 virtual router MAC.
    let link = lab
        .lab
        .host("a")
        .ns
        .run(&["ip", "link", "show", "vrrp.42"])
        .unwrap();
    assert!(link.contains("00:00:5e:00:02:2a"), "{link}");
    lab.stop("a", LONG).unwrap();
    vrrp_tests::poll(LONG, || on_vmac(&lab, "b").then_some(()))
        .unwrap_or_else(|| panic!("b takes over on vrrp.42\n{}", lab.logs()));
}

#[test]
fn use_vmac_interoperates_with_keepalived_both_ways() {
    if skip_unless_root("use_vmac_interoperates_with_keepalived_both_ways") {
        return;
    }
    let on_vmac = |lab: &VrrpLab, r: &str, vip: &str| {
        lab.lab
            .host(r)
            .ns
            .run(&["ip", "-o", "addr", "show", "dev", "vrrp.42"])
            .is_ok_and(|o| o.contains(vip))
    };
    for (proto, vip) in [
        (Proto::V3, "192.168.11.200/24"),
        (Proto::V3Ipv6, "fd00:11::200/64"),
    ] {
        for (master, backup) in [
            (Daemon::Agent, Daemon::Keepalived),
            (Daemon::Keepalived, Daemon::Agent),
        ] {
            let mut lab = seed_lab("eth0");
            lab.start("a", master, &conf(proto, "a", 150, "use_vmac"))
                .unwrap();
            lab.start("b", backup, &conf(proto, "b", 100, "use_vmac"))
                .unwrap();
            vrrp_tests::poll(LONG, || {
                (on_vmac(&lab, "a", vip) && !on_vmac(&lab, "b", vip)).then_some(())
            })
            .unwrap_or_else(|| {
                panic!(
                    "{proto:?}: {master:?} master on vrrp.42 only\n{}",
                    lab.logs()
                )
            });
            lab.stop("a", LONG).unwrap();
            vrrp_tests::poll(LONG, || on_vmac(&lab, "b", vip).then_some(())).unwrap_or_else(|| {
                panic!(
                    "{proto:?}: {backup:?} takes over on vrrp.42\n{}",
                    lab.logs()
                )
            });
        }
    }
}

/// Bridge port isolation between a and b: a partition with every link up.
fn isolate(lab: &VrrpLab, on: bool) {
    for r in ["a", "b"] {
        let port = lab.lab.port_of(r, "eth0").to_string();
        let out = lab
            .lab
            .lan()
            .output(&[
                "bridge",
                "link",
                "set",
                "dev",
                &port,
                "isolated",
                if on { "on" } else { "off" },
            ])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn equal_priority_masters_meeting_higher_address_wins() {
    if skip_unless_root("equal_priority_masters_meeting_higher_address_wins") {
        return;
    }
    // RFC 5798 §6.4.3: the tie-break applies between masters (a backup hearing an equal
    // priority stays backup). Partition the LAN (links stay up) so both become master, then
    // heal it: b (.12, the higher address) keeps the VIP, whichever implementation each runs.
    for (a, b) in [
        (Daemon::Keepalived, Daemon::Agent),
        (Daemon::Agent, Daemon::Agent),
        (Daemon::Agent, Daemon::Keepalived),
    ] {
        let mut lab = seed_lab("eth0");
        isolate(&lab, true);
        lab.start("a", a, &conf(Proto::V3, "a", 100, "")).unwrap();
        lab.start("b", b, &conf(Proto::V3, "b", 100, "")).unwrap();
        lab.wait_log("a", "(VI_1) Entering MASTER STATE", LONG)
            .unwrap();
        lab.wait_log("b", "(VI_1) Entering MASTER STATE", LONG)
            .unwrap();
        isolate(&lab, false);
        lab.wait_sole_holder("b", "192.168.11.200", LONG).unwrap();
        lab.wait_log(
            "a",
            "(VI_1) Master received advert from 192.168.11.12 with same priority 100 but higher IP address than ours",
            LONG,
        )
        .unwrap();
    }
}

#[test]
fn xdp_answers_arp_for_the_vips_while_master_only() {
    if skip_unless_root("xdp_answers_arp_for_the_vips_while_master_only") {
        return;
    }
    let mut lab = seed_lab("ens33");
    lab.start("a", Daemon::Agent, &seed("hot-standby-master.conf"))
        .unwrap();
    lab.start("b", Daemon::Agent, &seed("hot-standby-backup.conf"))
        .unwrap();
    lab.wait_sole_holder("a", SEED_VIP, LONG).unwrap();
    lab.wait_log("a", "XDP program vrrp_xdp attached", LONG)
        .unwrap();
    // ARP requests for the VIP get exactly one answer, from a (the kernel of b must not
    // answer: it does not hold the VIP, and its XDP responder is disarmed).
    assert_answers_from(&lab, "a", SEED_VIP.parse().unwrap());
}
