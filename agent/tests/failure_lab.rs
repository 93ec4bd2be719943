//! Failures around the agent, end to end from the real binary: a partition between the routers
//! and its healing (with the client's ARP entry following the master), the master's agent
//! killed with SIGKILL and started again, two routers both configured as address owner.

use std::{
    net::{Ipv4Addr, UdpSocket},
    path::Path,
    time::{Duration, Instant},
};

use vrrp_tests::{
    poll,
    routers::{A_MAC, B_MAC, Daemon, VrrpLab},
    skip_unless_root,
};

const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(20);

fn agent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vrrp-agent"))
}

/// keepalived's usual pair: VRRPv2, 1 s adverts, VIP .200 on eth0.
fn conf(priority: u8) -> String {
    format!(
        "vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// The MAC the client's kernel has for the VIP (its ARP entry), if any.
fn client_arp(lab: &VrrpLab) -> Option<[u8; 6]> {
    let out = lab
        .lab
        .host("client")
        .ns
        .run(&["ip", "-j", "neigh", "show", VIP, "dev", "eth0"])
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    let mac = v.get(0)?.get("lladdr")?.as_str()?;
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(mac.split(':')) {
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

/// The client's kernel resolves the VIP (a datagram to it makes it ask), and its ARP entry
/// points to `mac`.
fn client_resolves_to(lab: &VrrpLab, mac: [u8; 6]) {
    let sock = lab
        .lab
        .host("client")
        .ns
        .enter(|| UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let vip: Ipv4Addr = VIP.parse().unwrap();
    poll(LONG, || {
        let _ = sock.send_to(b"x", (vip, 9));
        (client_arp(lab) == Some(mac)).then_some(())
    })
    .unwrap_or_else(|| panic!("client's ARP entry for the VIP: {:?}", client_arp(lab)));
}

/// Waits until the client's ARP entry for the VIP points to `mac` without the client asking:
/// only a gratuitous ARP can move it.
fn client_arp_moves_to(lab: &VrrpLab, mac: [u8; 6], what: &str) {
    poll(LONG, || (client_arp(lab) == Some(mac)).then_some(())).unwrap_or_else(|| {
        panic!(
            "{what}: the client's ARP entry stayed {:?}\n{}",
            client_arp(lab),
            lab.logs()
        )
    });
}

/// Whether the router's eth0 has an XDP program attached.
fn xdp_attached(lab: &VrrpLab, router: &str) -> bool {
    let out = lab
        .lab
        .host(router)
        .ns
        .run(&["ip", "-j", "-d", "link", "show", "dev", "eth0"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].get("xdp").is_some()
}

/// Adverts between the routers dropped in the LAN (nftables on the bridge), everything else
/// passes: the client still hears both.
fn partition(lab: &VrrpLab, on: bool) {
    let (pa, pb) = (lab.lab.port_of("a", "eth0"), lab.lab.port_of("b", "eth0"));
    let script = if on {
        format!(
            "table bridge partition {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{pa}\" oifname \"{pb}\" ip protocol 112 drop\n    iifname \"{pb}\" oifname \"{pa}\" ip protocol 112 drop\n  }}\n}}\n"
        )
    } else {
        "delete table bridge partition\n".to_string()
    };
    let file = lab.dir().join("partition.nft");
    std::fs::write(&file, script).unwrap();
    let out = lab
        .lab
        .lan()
        .output(&["nft", "-f", file.to_str().unwrap()])
        .unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn state(lab: &VrrpLab, r: &str) -> String {
    lab.status(r)["instances"][0]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_partition_makes_two_masters_and_healing_leaves_one_the_client_follows() {
    if skip_unless_root("a_partition_makes_two_masters_and_healing_leaves_one_the_client_follows") {
        return;
    }
    for backup in [Daemon::Agent, Daemon::Keepalived] {
        let mut lab = VrrpLab::pair(agent(), true).expect("lab");
        lab.start("a", Daemon::Agent, &conf(150)).unwrap();
        lab.start("b", backup, &conf(100)).unwrap();
        lab.wait_sole_holder("a", VIP, LONG).unwrap();
        lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
            .unwrap();
        client_resolves_to(&lab, A_MAC);

        // Partition for 5 s: b hears no advert, times out and takes over; both hold the VIP
        // (expected: neither can know), and b's gratuitous ARP moves the client to b.
        let t0 = Instant::now();
        partition(&lab, true);
        poll(LONG, || (lab.holders(VIP) == ["a", "b"]).then_some(()))
            .unwrap_or_else(|| panic!("holders {:?}\n{}", lab.holders(VIP), lab.logs()));
        lab.wait_log("b", "(VI_1) Receive advertisement timeout", LONG)
            .unwrap();
        client_arp_moves_to(&lab, B_MAC, "b took over");
        if let Some(rest) = Duration::from_secs(5).checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
        assert_eq!(state(&lab, "a"), "MASTER", "{}", lab.log("a"));

        // Heal: a (higher priority) hears b's advert, answers at once with its own and a
        // gratuitous ARP; b steps down. One master, and the client's entry back on a.
        let t_heal = Instant::now();
        partition(&lab, false);
        let took = lab.wait_sole_holder("a", VIP, LONG).unwrap();
        client_arp_moves_to(&lab, A_MAC, "after healing");
        eprintln!(
            "{backup:?} backup: one master {took:?} after healing, client on a after {:?}",
            t_heal.elapsed()
        );
        lab.wait_log(
            "a",
            "(VI_1) Received advert from 192.168.11.12 with lower priority 100, ours 150, forcing new election",
            LONG,
        )
        .unwrap();
        lab.wait_log(
            "b",
            "(VI_1) Master received advert from 192.168.11.11 with higher priority 150, ours 100",
            LONG,
        )
        .unwrap();
        assert_eq!(state(&lab, "a"), "MASTER", "{}", lab.log("a"));
    }
}

#[test]
fn a_killed_master_leaves_no_xdp_behind_and_preempts_back_after_restart() {
    if skip_unless_root("a_killed_master_leaves_no_xdp_behind_and_preempts_back_after_restart") {
        return;
    }
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    lab.start("a", Daemon::Agent, &conf(150)).unwrap();
    lab.start("b", Daemon::Agent, &conf(100)).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("a", "XDP program vrrp_xdp attached", LONG)
        .unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    client_resolves_to(&lab, A_MAC);
    assert!(xdp_attached(&lab, "a"));

    // SIGKILL: nothing of the agent runs any more, and the kernel detached its XDP program
    // with the link the process held (nothing answers ARP from a dead agent's maps). Its VIP
    // stays configured, as keepalived's does.
    lab.signal("a", libc::SIGKILL).unwrap();
    poll(LONG, || (!lab.is_running("a")).then_some(())).expect("a's agent exits");
    assert!(
        !xdp_attached(&lab, "a"),
        "a's XDP program outlived its agent"
    );
    // b takes over by Master_Down and announces itself: the client moves to b.
    lab.wait_log("b", "(VI_1) Receive advertisement timeout", LONG)
        .unwrap();
    lab.wait_log("b", "(VI_1) Entering MASTER STATE", LONG)
        .unwrap();
    client_arp_moves_to(&lab, B_MAC, "b took over");

    // Restarted, a removes what the killed run left, comes up as backup and preempts back.
    let t0 = Instant::now();
    lab.start("a", Daemon::Agent, &conf(150)).unwrap();
    lab.wait_log("a", "(VI_1) removing VIPs.", LONG).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    client_arp_moves_to(&lab, A_MAC, "a preempted back");
    eprintln!("a preempted back {:?} after its restart", t0.elapsed());
    lab.wait_log(
        "b",
        "(VI_1) Master received advert from 192.168.11.11 with higher priority 150, ours 100",
        LONG,
    )
    .unwrap();
    assert!(xdp_attached(&lab, "a"));
}

#[test]
fn two_address_owners_settle_on_one_master_with_keepalived_s_configuration_error() {
    if skip_unless_root(
        "two_address_owners_settle_on_one_master_with_keepalived_s_configuration_error",
    ) {
        return;
    }
    // Both routers configured with priority 255 is a configuration error. keepalived logs it
    // and lowers the local priority to 254, so the two settle on one master (by priority,
    // then by address) instead of both holding the VIP.
    const ERROR: &str = "(VI_1) CONFIGURATION ERROR: local instance and a remote instance are both configured as address owner, please fix - reducing local priority";
    for other in [Daemon::Agent, Daemon::Keepalived] {
        let mut lab = VrrpLab::pair(agent(), false).expect("lab");
        lab.start("a", Daemon::Agent, &conf(255)).unwrap();
        lab.start("b", other, &conf(255)).unwrap();
        poll(LONG, || {
            (lab.log("a").contains(ERROR) || lab.log("b").contains(ERROR)).then_some(())
        })
        .unwrap_or_else(|| panic!("no configuration error logged\n{}", lab.logs()));
        let holder = poll(LONG, || match lab.holders(VIP).as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("holders {:?}\n{}", lab.holders(VIP), lab.logs()));
        // And it stays so over more than a Master_Down interval.
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(
            lab.holders(VIP),
            std::slice::from_ref(&holder),
            "{}",
            lab.logs()
        );
        eprintln!("with {other:?} as b: {holder} is the one master");
    }
}
