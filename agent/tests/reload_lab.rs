//! SIGHUP reload without flaps, during a 10 ms VRRPv3 run: an unchanged configuration and one
//! with a VIP added change nothing in the election (no transition on either router) and leave
//! no gap in the master's adverts; the new VIP is there within a second. A configuration that
//! cannot run is refused and the running one kept. Instances removed, added and re-created by a
//! reload: the removed one hands over at once (priority 0) and is notified DELETED, the added
//! one starts, the kept one does not move; a reload whose new instance cannot run (a VRID used
//! twice) is refused whole.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use std::os::unix::fs::PermissionsExt as _;

use vrrp_tests::{
    poll,
    probe::Kind,
    routers::{A_MAC, Daemon, VrrpLab},
    skip_unless_root,
};

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
    let mut lab = VrrpLab::pair(Path::new(env!("CARGO_BIN_EXE_vrrp-agent")), true).expect("lab");
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
    assert!(
        lab.holds("a", VIP) && lab.holds("a", VIP2),
        "{}",
        lab.logs()
    );
    assert_eq!(lab.holders(VIP), ["a"]);
    assert_eq!(count(&lab.log("b"), "Entering MASTER STATE"), b_masters);
}

/// An instance on eth0 at 100 ms VRRPv3 adverts; `extra` goes inside its block.
fn instance(name: &str, vrid: u8, priority: u8, vip: &str, extra: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n  interface eth0\n  virtual_router_id {vrid}\n  priority {priority}\n  advert_int 0.1\n{extra}  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
    )
}

const V1: &str = "192.168.11.201";
const V2: &str = "192.168.11.202";
const V3: &str = "192.168.11.203";

fn masters(log: &str, name: &str) -> usize {
    count(log, &format!("({name}) Entering MASTER STATE"))
}

#[test]
fn sighup_reload_removes_adds_and_recreates_instances() {
    if skip_unless_root("sighup_reload_removes_adds_and_recreates_instances") {
        return;
    }
    let mut lab = VrrpLab::pair(Path::new(env!("CARGO_BIN_EXE_vrrp-agent")), false).expect("lab");
    let dir = lab.dir().to_path_buf();
    let notify = dir.join("notify.sh");
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho \"$*\" >> {}/notify.log\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notified = || std::fs::read_to_string(dir.join("notify.log")).unwrap_or_default();
    let head = "global_defs {\n  vrrp_version 3\n}\n";
    let vi2_extra = format!("  notify_deleted\n  notify \"{}\"\n", notify.display());
    let a0 = format!(
        "{head}{}{}",
        instance("VI_1", 51, 150, V1, ""),
        instance("VI_2", 52, 150, V2, &vi2_extra)
    );
    let b_conf = |vi3_vrid: u8| {
        format!(
            "{head}{}{}{}",
            instance("VI_1", 51, 100, V1, ""),
            instance("VI_2", 52, 100, V2, ""),
            instance("VI_3", vi3_vrid, 100, V3, "")
        )
    };
    lab.start("a", Daemon::Agent, &a0).unwrap();
    lab.start("b", Daemon::Agent, &b_conf(53)).unwrap();
    lab.wait_sole_holder("a", V1, LONG).unwrap();
    lab.wait_sole_holder("a", V2, LONG).unwrap();
    lab.wait_sole_holder("b", V3, LONG).unwrap();
    let b_vi1 = masters(&lab.log("b"), "VI_1");
    let reloads = |lab: &VrrpLab| count(&lab.log("a"), "Reload finished");

    // 1. VI_2 removed, VI_3 added, VI_1 kept with a tracker added (+10 while it succeeds).
    // And a weight-0 one: until its first result the instance must not leave MASTER.
    let chk = "vrrp_script chk {\n  script \"/bin/true\"\n  interval 1\n  weight 10\n}\n\
               vrrp_script chk0 {\n  script \"/bin/true\"\n  interval 1\n  weight 0\n}\n";
    let a1 = |vi3_vrid: u8| {
        format!(
            "{head}{chk}{}{}",
            instance(
                "VI_1",
                51,
                150,
                V1,
                "  track_script {\n    chk\n    chk0\n  }\n"
            ),
            instance("VI_3", vi3_vrid, 150, V3, "")
        )
    };
    let a_conf = dir.join("a.conf");
    std::fs::write(&a_conf, a1(53)).unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    poll(LONG, || (reloads(&lab) == 1).then_some(())).expect("reload 1 finished");
    let la = lab.log("a");
    assert!(
        la.contains("Reload: 1 instance(s) kept, 1 removed, 1 started"),
        "{la}"
    );
    // The removed master handed over with a priority-0 advert, and said DELETED.
    lab.wait_sole_holder("b", V2, LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    poll(LONG, || {
        notified()
            .contains("INSTANCE VI_2 DELETED 150")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("notify log: {:?}\n{}", notified(), lab.logs()));
    // The added instance started and took its VIP over (it preempts b's).
    lab.wait_sole_holder("a", V3, LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // The kept one: its tracker counts, and nothing moved.
    let status = || lab.status("a");
    let b_status = lab.status("b");
    assert_eq!(
        b_status["instances"][1]["stats"]["pri_zero_rcvd"], 1,
        "{b_status}"
    );
    let st = poll(LONG, || {
        let v = status();
        (v["instances"][0]["effective_priority"] == 160).then_some(v)
    })
    .unwrap_or_else(|| panic!("{}\n{}", status(), lab.logs()));
    let names: Vec<&str> = st["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VI_1", "VI_3"]);
    assert_eq!(st["instances"][0]["trackers"][0]["name"], "chk");
    assert_eq!(masters(&lab.log("a"), "VI_1"), 1, "{}", lab.log("a"));
    assert_eq!(masters(&lab.log("b"), "VI_1"), b_vi1, "{}", lab.log("b"));
    assert_eq!(lab.holders(V1), ["a"]);

    // 2. VI_3's VRID changes (on both routers): it is re-created; a ends up its master.
    std::fs::write(&a_conf, a1(55)).unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    poll(LONG, || (reloads(&lab) == 2).then_some(())).expect("reload 2 finished");
    std::fs::write(dir.join("b.conf"), b_conf(55)).unwrap();
    lab.signal("b", libc::SIGHUP).unwrap();
    lab.wait_log("b", "Reload finished", LONG).unwrap();
    assert!(lab.log("a").contains("(VI_3) removed by the reload"));
    lab.wait_sole_holder("a", V3, LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(masters(&lab.log("a"), "VI_1"), 1, "{}", lab.log("a"));

    // 3. A new instance that cannot run beside the others (VI_1's VRID again): the whole
    // reload is refused, nothing changes.
    std::fs::write(
        &a_conf,
        format!(
            "{}{}",
            a1(55),
            instance("VI_4", 51, 150, "192.168.11.204", "")
        ),
    )
    .unwrap();
    lab.signal("a", libc::SIGHUP).unwrap();
    lab.wait_log(
        "a",
        "Reload rejected: (VI_1) and (VI_4) both use VRID 51 on eth0; the running configuration is kept",
        LONG,
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", lab.log("a")));
    assert!(!lab.holds("a", "192.168.11.204"));
    assert_eq!(lab.holders(V1), ["a"]);
    assert_eq!(lab.holders(V3), ["a"]);
    assert_eq!(masters(&lab.log("a"), "VI_1"), 1, "{}", lab.log("a"));
    // VI_1's address line moved down the file (the script block above it): the same VIP, not
    // removed and added again.
    assert!(!lab.log("a").contains("(VI_1) reload:"), "{}", lab.log("a"));
}
