//! Resilience under forged adverts: with the peers named (`allowed_peers`, vrrp-agent's
//! multicast counterpart of `check_unicast_src`), a flood of valid, higher-priority adverts from
//! a third host — the takeover flood, which the protocol otherwise obeys — changes nothing: the
//! master's XDP filter drops it (counted as `source`), and a backup running without XDP rejects
//! it in userspace with its log lines rate-limited.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::Path,
    time::{Duration, Instant},
};

use vrrp_tests::{
    capture::Capture,
    frames::{Advert, Wire},
    routers::{Daemon, VrrpLab},
    skip_unless_root,
};

const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xcc];
const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(20);

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_vrrp-agent")
}

/// VRRPv3 at 100 ms, accepting adverts from `peer` only.
fn conf(priority: u8, peer: &str) -> String {
    format!(
        "global_defs {{\n  vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.1\n  allowed_peers {{\n    {peer}\n  }}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn count(log: &str, what: &str) -> usize {
    log.matches(what).count()
}

#[test]
fn named_peers_make_a_takeover_flood_change_nothing() {
    if skip_unless_root("named_peers_make_a_takeover_flood_change_nothing") {
        return;
    }
    let mut lab = VrrpLab::new(Path::new(agent())).expect("lab");
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
    lab.start("a", Daemon::Agent, &conf(150, "192.168.11.12"))
        .unwrap();
    // b checks in userspace only.
    lab.start_with(
        "b",
        Daemon::Agent,
        &conf(100, "192.168.11.11"),
        &["--no-xdp"],
        &[],
    )
    .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    let masters = |r: &str| count(&lab.log(r), "Entering MASTER STATE");
    let (a_masters, b_masters) = (masters("a"), masters("b"));
    let a_backups = count(&lab.log("a"), "Entering BACKUP STATE");

    // The takeover flood: valid VRRPv3 adverts for VRID 51 at priority 200 from the client —
    // first as fast as this process sends them for a second, then at 1 kpps for two seconds.
    let cap = Capture::open(&lab.lab.host("client").ns, "eth0").unwrap();
    let vips: Vec<IpAddr> = vec![VIP.parse().unwrap()];
    let frame = Wire::vrrp_multicast(CLIENT_MAC, "192.168.11.100".parse().unwrap())
        .vrrp(&Advert::v3(51, 200, &vips));
    let mut sent = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) {
        if cap.send(&frame).is_ok() {
            sent += 1;
        }
    }
    let burst = sent;
    let t1 = Instant::now();
    for i in 0..2000u32 {
        let due = t1 + Duration::from_micros(500 * u64::from(i));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if cap.send(&frame).is_ok() {
            sent += 1;
        }
    }
    eprintln!(
        "flood: {burst} adverts in 1 s, then {} at 1 kpps",
        sent - burst
    );

    // Nothing moved: a still holds the VIP alone, and neither router changed state.
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    assert_eq!(masters("a"), a_masters, "{}", lab.log("a"));
    assert_eq!(masters("b"), b_masters, "{}", lab.log("b"));
    assert_eq!(
        count(&lab.log("a"), "Entering BACKUP STATE"),
        a_backups,
        "{}",
        lab.log("a")
    );
    // a's kernel dropped the flood as not from a peer, and said so per reason.
    let out = lab
        .lab
        .host("a")
        .ns
        .output(&[agent(), "status", "--json"])
        .unwrap();
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dropped = st["instances"][0]["xdp_adverts"]["source"]
        .as_u64()
        .unwrap_or(0);
    // The capture socket may have lost some sends; whatever left was dropped in the kernel.
    assert!(
        dropped >= sent * 9 / 10,
        "{dropped} of {sent} dropped as not from a peer: {st}"
    );
    assert_eq!(st["xdp"]["counters"]["drop_source"], dropped, "{st}");
    // b rejected them in userspace, logging at most ten lines a second and then how many it
    // left out.
    let lb = lab.log("b");
    let rejected = count(&lb, "not in allowed_peers");
    assert!(rejected >= 10, "{lb}");
    assert!(
        rejected <= 10 * 5,
        "{rejected} lines for {sent} rejected adverts"
    );
    assert!(
        lb.contains("more lines about received packets not logged"),
        "{lb}"
    );
}
