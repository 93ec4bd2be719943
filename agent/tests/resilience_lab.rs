//! Resilience under forged adverts: with the peers named (`allowed_peers`, vrrp-agent's
//! multicast counterpart of `check_unicast_src`), a flood of valid, higher-priority adverts from
//! a third host — the takeover flood, which the protocol otherwise obeys — changes nothing: both
//! routers' XDP filters drop it (counted as `source`), and a backup running without XDP drops
//! it with its receive socket's filter; what that filter cannot judge is rejected in
//! userspace, with its log lines rate-limited.

use std::{
    net::IpAddr,
    path::Path,
    time::{Duration, Instant},
};

use vrrp_tests::{
    capture::Capture,
    frames::{Advert, Checksum, Wire},
    poll,
    routers::{CLIENT_MAC, Daemon, VrrpLab},
    skip_unless_root,
};

const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(20);

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_vrrp-agent")
}

/// VRRPv3 at 100 ms, accepting adverts from `peer` only.
fn conf(priority: u8, peer: &str) -> String {
    format!(
        "global_defs {{\n  vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 0.1\n  allowed_peers {peer}\n  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn count(log: &str, what: &str) -> usize {
    log.matches(what).count()
}

/// Transitions as the agent counts them (its log is written asynchronously).
fn transitions(lab: &VrrpLab, r: &str) -> serde_json::Value {
    lab.status(r)["instances"][0]["transitions"].clone()
}

/// Settled: b is a backup that has heard a (at start-up the two may race).
fn settle(lab: &VrrpLab) {
    poll(LONG, || {
        let vi = &lab.status("b")["instances"][0];
        (vi["state"] == "BACKUP" && vi["master"] == "192.168.11.11").then_some(())
    })
    .unwrap_or_else(|| panic!("b did not settle as backup\n{}", lab.logs()));
}

/// Sends `frame` from the client: for `burst`, as fast as this process can; then at 1 kpps
/// for `paced`. Returns how many left.
fn flood(cap: &Capture, frame: &[u8], burst: Duration, paced: Duration) -> u64 {
    let mut sent = 0u64;
    let t0 = Instant::now();
    while t0.elapsed() < burst {
        if cap.send(frame).is_ok() {
            sent += 1;
        }
    }
    let t1 = Instant::now();
    for i in 0..paced.as_millis() as u64 {
        let due = t1 + Duration::from_millis(i);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if cap.send(frame).is_ok() {
            sent += 1;
        }
    }
    sent
}

#[test]
fn named_peers_make_a_takeover_flood_change_nothing() {
    if skip_unless_root("named_peers_make_a_takeover_flood_change_nothing") {
        return;
    }
    let mut lab = VrrpLab::pair(Path::new(agent()), true).expect("lab");
    lab.start("a", Daemon::Agent, &conf(150, "192.168.11.12"))
        .unwrap();
    lab.start("b", Daemon::Agent, &conf(100, "192.168.11.11"))
        .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    settle(&lab);
    let (a_before, b_before) = (transitions(&lab, "a"), transitions(&lab, "b"));

    // The takeover flood: valid VRRPv3 adverts for VRID 51 at priority 200 from the client —
    // as fast as this process sends them for a second, then at 1 kpps for two seconds.
    let cap = Capture::open(&lab.lab.host("client").ns, "eth0").unwrap();
    let vips: Vec<IpAddr> = vec![VIP.parse().unwrap()];
    let frame = Wire::vrrp_multicast(CLIENT_MAC, "192.168.11.100".parse().unwrap())
        .vrrp(&Advert::v3(51, 200, &vips));
    let sent = flood(&cap, &frame, Duration::from_secs(1), Duration::from_secs(2));
    eprintln!("flood: {sent} adverts");
    // Nothing moved: a still holds the VIP alone, and neither router changed state.
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    assert_eq!(transitions(&lab, "a"), a_before, "{}", lab.log("a"));
    assert_eq!(transitions(&lab, "b"), b_before, "{}", lab.log("b"));
    // Both kernels dropped the flood as not from a peer, and said so per reason.
    for r in ["a", "b"] {
        let st = lab.status(r);
        let dropped = st["instances"][0]["xdp_adverts"]["source"]
            .as_u64()
            .unwrap_or(0);
        // The capture socket may have lost some sends; whatever left was dropped.
        assert!(
            dropped >= sent * 9 / 10,
            "{r}: {dropped} of {sent} dropped as not from a peer: {st}"
        );
        assert_eq!(st["xdp"]["counters"]["drop_source"], dropped, "{st}");
    }

    // b without XDP: its receive socket's classic BPF filter drops the same flood in the
    // kernel — at full rate too — so b's userspace never reads it.
    lab.stop("b", LONG).unwrap();
    lab.start_with(
        "b",
        Daemon::Agent,
        &conf(100, "192.168.11.11"),
        &["--no-xdp"],
        &[],
    )
    .unwrap();
    settle(&lab);
    let (a_before, b_before) = (transitions(&lab, "a"), transitions(&lab, "b"));
    let sent = flood(&cap, &frame, Duration::from_secs(1), Duration::from_secs(2));
    eprintln!("flood against --no-xdp: {sent} adverts");
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    assert_eq!(transitions(&lab, "a"), a_before, "{}", lab.log("a"));
    assert_eq!(transitions(&lab, "b"), b_before, "{}", lab.log("b"));
    assert_eq!(
        count(&lab.log("b"), "not in allowed_peers"),
        0,
        "{}",
        lab.log("b")
    );

    // What the socket filter cannot judge (the checksum needs the whole message) reaches
    // userspace: forged with a's address, b rejects them there, logging at most ten lines a
    // second and then how many it left out.
    let forged = Wire::vrrp_multicast(CLIENT_MAC, "192.168.11.11".parse().unwrap())
        .vrrp(&Advert::v3(51, 150, &vips).with(|a| a.checksum = Checksum::Corrupt));
    flood(&cap, &forged, Duration::ZERO, Duration::from_secs(3));
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    assert_eq!(transitions(&lab, "b"), b_before, "{}", lab.log("b"));
    let lb = poll(LONG, || {
        let l = lab.log("b");
        l.contains("more lines about received packets not logged")
            .then_some(l)
    })
    .unwrap_or_else(|| panic!("{}", lab.log("b")));
    let rejected = count(&lb, "bad checksum");
    assert!(rejected >= 10, "{lb}");
    assert!(
        rejected <= 10 * 5,
        "{rejected} lines for 3000 rejected adverts"
    );
}
