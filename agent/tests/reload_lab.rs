//! SIGHUP reload without flaps, during a 10 ms VRRPv3 run: an unchanged configuration and one
//! with a VIP added change nothing in the election (no transition on either router) and leave
//! no gap in the master's adverts; the new VIP is there within a second. A configuration that
//! cannot run, or one that changes what an instance is, is refused and the running one kept.

use std::{
    net::Ipv4Addr,
    path::Path,
    time::{Duration, Instant},
};

use vrrp_tests::{
    poll,
    probe::Kind,
    routers::{Daemon, VrrpLab},
    skip_unless_root,
};

const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xcc];
const VIP: &str = "192.168.11.200";
const VIP2: &str = "192.168.11.201";
const LONG: Duration = Duration::from_secs(20);
/// The advert interval of this test.
const INTERVAL: Duration = Duration::from_millis(10);

/// `vrrp_skip_check_adv_addr`: the backup keeps accepting its master's adverts while their
/// address lists differ (a VIP added to one router first) — as keepalived needs it too.
fn conf(priority: u8, vips: &[&str], vrid: u8) -> String {
    let vips: String = vips.iter().map(|v| format!("    {v}/24\n")).collect();
    format!(
        "global_defs {{\n  vrrp_version 3\n  vrrp_skip_check_adv_addr\n}}\nvrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 0.01\n  virtual_ipaddress {{\n{vips}  }}\n}}\n"
    )
}

fn count(log: &str, what: &str) -> usize {
    log.matches(what).count()
}

#[test]
fn sighup_reload_changes_nothing_but_what_changed() {
    if skip_unless_root("sighup_reload_changes_nothing_but_what_changed") {
        return;
    }
    let mut lab = VrrpLab::new(Path::new(env!("CARGO_BIN_EXE_vrrp-agent"))).expect("lab");
    lab.add_router("a", "eth0", A_MAC, "192.168.11.11/24")
        .unwrap();
    lab.add_router("b", "eth0", B_MAC, "192.168.11.12/24")
        .unwrap();
    lab.add_client(
        "client",
        "eth0",
        CLIENT_MAC,
        Ipv4Addr::new(192, 168, 11, 100),
        24,
    )
    .unwrap();
    lab.start("a", Daemon::Agent, &conf(150, &[VIP], 51))
        .unwrap();
    lab.start("b", Daemon::Agent, &conf(100, &[VIP], 51))
        .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    let a_conf = lab.dir().join("a.conf");
    let probe = lab
        .probe(VIP.parse().unwrap(), Duration::from_millis(5), 1000)
        .unwrap();
    // Settled: adverts flowing to the client. b's start-up may have raced a's.
    probe.next_advert_from(A_MAC, LONG).expect("a advertises");
    let b_masters = count(&lab.log("b"), "Entering MASTER STATE");
    let reloads = |lab: &VrrpLab| count(&lab.log("a"), "Reload finished");
    // 1. The same configuration.
    let t1 = Instant::now();
    lab.signal("a", libc::SIGHUP).unwrap();
    poll(LONG, || (reloads(&lab) == 1).then_some(())).expect("reload 1 finished");
    // 2. One VIP more.
    std::fs::write(&a_conf, conf(150, &[VIP, VIP2], 51)).unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    poll(LONG, || (reloads(&lab) == 2).then_some(())).expect("reload 2 finished");
    let added = Instant::now();
    poll(Duration::from_secs(1), || {
        lab.holds("a", VIP2).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "{VIP2} not on a within a second of the reload\n{}",
            lab.logs()
        )
    });
    let _ = added;
    // A few more intervals after the last reload, then look at what the client saw.
    probe.next_advert_from(A_MAC, LONG).unwrap();
    std::thread::sleep(INTERVAL * 10);
    let rec = probe.stop().unwrap();
    let adverts: Vec<Instant> = rec
        .replies
        .iter()
        .filter(|r| matches!(r.kind, Kind::Advert(p) if p > 0) && r.mac == A_MAC && r.at >= t1)
        .map(|r| r.at)
        .collect();
    assert!(adverts.len() > 5, "{} adverts", adverts.len());
    let gap = adverts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        gap <= INTERVAL * 2,
        "a gap of {gap:?} in a's adverts across the reloads\n{}",
        lab.logs()
    );
    // No transition anywhere after the start.
    let (la, lb) = (lab.log("a"), lab.log("b"));
    assert_eq!(count(&la, "Entering MASTER STATE"), 1, "{la}");
    assert_eq!(count(&lb, "Entering MASTER STATE"), b_masters, "{lb}");
    assert!(
        la.contains("(VI_1) reload: 1 VIP(s) added, 0 removed"),
        "{la}"
    );
    // 3. A configuration that cannot run (no such interface): refused, a runs on as it was.
    std::fs::write(
        &a_conf,
        conf(150, &[VIP], 51).replace("interface eth0", "interface nosuch9"),
    )
    .unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    lab.wait_log("a", "Reload rejected: the configuration cannot run", LONG)
        .unwrap();
    // 4. Another VRID: what the instance is changes: refused too (a restart does it).
    std::fs::write(&a_conf, conf(150, &[VIP], 52)).unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    lab.wait_log(
        "a",
        "which needs a restart; the running configuration is kept",
        LONG,
    )
    .unwrap();
    assert!(
        lab.holds("a", VIP) && lab.holds("a", VIP2),
        "{}",
        lab.logs()
    );
    assert_eq!(lab.holders(VIP), ["a"]);
    assert_eq!(count(&lab.log("b"), "Entering MASTER STATE"), b_masters);
}
