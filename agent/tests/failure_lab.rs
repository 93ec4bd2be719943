//! Failures around the agent, end to end from the real binary: a partition between the routers
//! and its healing (with the client's ARP entry following the master), the master's agent
//! killed with SIGKILL and started again, two routers both configured as address owner, a VIP
//! deleted under the master, the source address deleted, an interface deleted and created
//! again (the instance's own, and one only tracked), a script that cannot be forked, the wall
//! clock stepped under both routers, and the master's process frozen past Master_Down.

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

#[test]
fn a_vip_deleted_under_the_master_comes_back_as_with_keepalived() {
    if skip_unless_root("a_vip_deleted_under_the_master_comes_back_as_with_keepalived") {
        return;
    }
    // keepalived's set_vrrp_backup: the master whose VIP someone deletes goes BACKUP with a
    // priority-0 advert and takes over again after its own skew (shorter than the backup's),
    // putting the address back. Run against keepalived as the master too, to compare.
    for master in [Daemon::Agent, Daemon::Keepalived] {
        let mut lab = VrrpLab::pair(agent(), false).expect("lab");
        lab.start("a", master, &conf(150)).unwrap();
        lab.start("b", Daemon::Agent, &conf(100)).unwrap();
        lab.wait_sole_holder("a", VIP, LONG).unwrap();
        lab.wait_log("b", "Entering BACKUP STATE", LONG).unwrap();
        let masters = |r: &str| lab.log(r).matches("Entering MASTER STATE").count();
        assert_eq!(masters("a"), 1, "{}", lab.logs());
        // (b may have been master for a moment at start, when both started together on a
        // busy machine: what counts is that the deletion does not hand it the VIP.)
        let b_before = masters("b");
        lab.lab
            .host("a")
            .ns
            .run(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"])
            .unwrap();
        poll(LONG, || {
            (masters("a") == 2 && lab.holds("a", VIP)).then_some(())
        })
        .unwrap_or_else(|| panic!("{master:?}: the VIP did not come back\n{}", lab.logs()));
        let log = lab.log("a");
        let backup = log.rfind("Entering BACKUP STATE").expect("a went backup");
        assert!(
            backup < log.rfind("Entering MASTER STATE").unwrap(),
            "{log}"
        );
        assert_eq!(
            masters("b"),
            b_before,
            "{master:?}: b took over\n{}",
            lab.logs()
        );
        assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
        eprintln!("{master:?}: VIP deleted, back on a");
    }
}

#[test]
fn the_source_address_removed_moves_to_the_next_one_then_faults_until_one_is_back() {
    if skip_unless_root(
        "the_source_address_removed_moves_to_the_next_one_then_faults_until_one_is_back",
    ) {
        return;
    }
    // keepalived: the instance's source address deleted, the interface's next address takes
    // its place; none left, the instance goes FAULT (its peer takes over) until an address is
    // added, then it comes back (and preempts). keepalived as a too, for the same outcome.
    // The VIP is a /32 so it does not go with the subnet's primary address.
    let conf32 = |priority: u8| conf(priority).replace(&format!("{VIP}/24"), &format!("{VIP}/32"));
    for daemon in [Daemon::Agent, Daemon::Keepalived] {
        let mut lab = VrrpLab::pair(agent(), false).expect("lab");
        let ip = |lab: &VrrpLab, args: &[&str]| {
            let mut v = vec!["ip", "addr"];
            v.extend_from_slice(args);
            v.extend_from_slice(&["dev", "eth0"]);
            lab.lab.host("a").ns.run(&v).unwrap();
        };
        ip(&lab, &["add", "10.99.0.11/24"]);
        lab.start("a", daemon, &conf32(150)).unwrap();
        lab.start("b", Daemon::Agent, &conf32(100)).unwrap();
        lab.wait_sole_holder("a", VIP, LONG).unwrap();
        lab.wait_log("b", "Entering BACKUP STATE", LONG).unwrap();
        // (b may have been master for a moment at start, when both started together on a
        // busy machine: what counts is what the address changes do.)
        let b_masters = || lab.log("b").matches("Entering MASTER STATE").count();
        let b_before = b_masters();
        // The first address goes: adverts from the second, nothing else changes.
        ip(&lab, &["del", "192.168.11.11/24"]);
        if daemon == Daemon::Agent {
            lab.wait_log(
                "a",
                "(VI_1) 192.168.11.11 removed from eth0: adverts now from 10.99.0.11",
                LONG,
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(lab.holders(VIP), ["a"], "{daemon:?}\n{}", lab.logs());
        assert_eq!(b_masters(), b_before, "{}", lab.logs());
        // The last one goes: FAULT, b takes over.
        ip(&lab, &["del", "10.99.0.11/24"]);
        lab.wait_sole_holder("b", VIP, LONG)
            .unwrap_or_else(|e| panic!("{daemon:?}: {e:#}"));
        if daemon == Daemon::Agent {
            lab.wait_log(
                "a",
                "(VI_1) eth0 has no IPv4 address left to send adverts from",
                LONG,
            )
            .unwrap();
            assert_eq!(state(&lab, "a"), "FAULT", "{}", lab.logs());
        }
        // An address again: a is back, and preempts.
        ip(&lab, &["add", "192.168.11.11/24"]);
        lab.wait_sole_holder("a", VIP, LONG)
            .unwrap_or_else(|e| panic!("{daemon:?}: {e:#}"));
        if daemon == Daemon::Agent {
            assert!(
                lab.log("a")
                    .contains("(VI_1) 192.168.11.11 added to eth0: adverts from it"),
                "{}",
                lab.logs()
            );
        }
        eprintln!("{daemon:?}: source moved, FAULT without one, back with one");
    }
}

#[test]
fn an_interface_deleted_and_created_again_is_followed_to_its_new_index() {
    if skip_unless_root("an_interface_deleted_and_created_again_is_followed_to_its_new_index") {
        return;
    }
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    lab.start("a", Daemon::Agent, &conf(150)).unwrap();
    lab.start("b", Daemon::Agent, &conf(100)).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    client_resolves_to(&lab, A_MAC);
    let index = |lab: &VrrpLab| {
        let out = lab
            .lab
            .host("a")
            .ns
            .run(&["ip", "-j", "link", "show", "dev", "eth0"])
            .ok()?;
        serde_json::from_str::<serde_json::Value>(&out).ok()?[0]["ifindex"].as_u64()
    };
    let old = index(&lab).expect("a's eth0");

    // The interface goes (a veth deleted, a driver unloaded): a's instance goes to FAULT, b
    // takes over.
    lab.lab.host("a").ns.ip(&["link", "del", "eth0"]).unwrap();
    lab.wait_log("a", "Interface eth0 deleted", LONG).unwrap();
    poll(LONG, || (state(&lab, "a") == "FAULT").then_some(()))
        .unwrap_or_else(|| panic!("a not in FAULT\n{}", lab.log("a")));
    lab.wait_sole_holder("b", VIP, LONG).unwrap();
    client_arp_moves_to(&lab, B_MAC, "b took over");

    // It comes back under the same name with a new index (created down, then its MAC and
    // address set, then up): a follows it — sockets, XDP, VIPs on the new index — and,
    // having the higher priority, preempts back.
    lab.add_interface("a", "eth0", A_MAC, "192.168.11.11/24")
        .unwrap();
    let new = index(&lab).expect("a's new eth0");
    assert_ne!(old, new);
    lab.wait_log(
        "a",
        "Interface eth0 re-created: 1 instance(s) started on it",
        LONG,
    )
    .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    client_arp_moves_to(&lab, A_MAC, "a preempted back on its new eth0");
    assert_eq!(state(&lab, "a"), "MASTER", "{}", lab.log("a"));
    assert!(
        xdp_attached(&lab, "a"),
        "XDP on the new eth0\n{}",
        lab.log("a")
    );
    let st = lab.status("a");
    assert_eq!(
        st["xdp"]["attachments"],
        serde_json::json!([{"interface": "eth0", "ifindex": new, "mode": "native"}]),
        "one attachment, on the new eth0"
    );
    // Nothing complained in a loop meanwhile.
    let log = lab.log("a");
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    assert!(
        log.matches("VRRP receive on interface").count() < 5,
        "{log}"
    );
}

/// A pids cgroup (v1, or v2 with the controller enabled) to hold a process, so the test can
/// make fork fail with EAGAIN as it fails when memory or processes run out. Dropped, its
/// processes go back to the root group and it is removed.
struct PidsCgroup {
    dir: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl PidsCgroup {
    fn new(name: &str) -> Option<PidsCgroup> {
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            let root = Path::new(root);
            let dir = root.join(name);
            if std::fs::create_dir(&dir).is_err() {
                continue;
            }
            if dir.join("pids.max").exists() {
                return Some(PidsCgroup {
                    dir,
                    root: root.to_path_buf(),
                });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        None
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// No new task (process or thread) in the group from now on.
    fn freeze_count(&self) {
        let current = std::fs::read_to_string(self.dir.join("pids.current")).unwrap();
        std::fs::write(self.dir.join("pids.max"), current.trim()).unwrap();
    }

    fn unlimit(&self) {
        std::fs::write(self.dir.join("pids.max"), "max").unwrap();
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines() {
            let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn a_script_that_cannot_be_forked_keeps_its_last_result() {
    if skip_unless_root("a_script_that_cannot_be_forked_keeps_its_last_result") {
        return;
    }
    let mut lab = VrrpLab::pair(agent(), false).expect("lab");
    let name = format!("{}-fork", lab.lab.prefix());
    let Some(cgroup) = PidsCgroup::new(&name) else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED a_script_that_cannot_be_forked_keeps_its_last_result: no pids cgroup controller"
        );
        return;
    };
    // a's health script passes; were it counted as failed, a (150 - 60 = 90) would hand
    // over to b (100).
    let with_script = conf(150).replace(
        "vrrp_instance",
        "vrrp_script chk {\n  script /bin/true\n  interval 0.2\n  weight -60\n}\nvrrp_instance",
    );
    let with_script = with_script.replace(
        "  advert_int 1\n",
        "  advert_int 1\n  track_script {\n    chk\n  }\n",
    );
    lab.start("a", Daemon::Agent, &with_script).unwrap();
    lab.start("b", Daemon::Agent, &conf(100)).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("a", "VRRP_Script(chk) succeeded", LONG)
        .unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    let before = lab.status("a")["instances"][0]["transitions"].clone();

    // From now on nothing in a's agent can fork (nor start a thread).
    cgroup.add(lab.pid("a").unwrap());
    cgroup.freeze_count();
    lab.wait_log("a", "VRRP_Script(chk) could not be started", LONG)
        .unwrap();
    // Several intervals of failed forks, adverts going out all the while: nothing moves.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    let st = lab.status("a");
    assert_eq!(st["instances"][0]["transitions"], before, "{st}");
    assert_eq!(st["instances"][0]["effective_priority"], 150, "{st}");
    let log = lab.log("a");
    assert_eq!(
        log.matches("could not be started").count(),
        1,
        "said once\n{log}"
    );
    assert!(!log.contains("VRRP_Script(chk) failed"), "{log}");

    // Resources back: the script runs again.
    cgroup.unlimit();
    lab.wait_log("a", "VRRP_Script(chk) runs again", LONG)
        .unwrap();
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    drop(cgroup);
}

/// `conf(priority)` with the instance also tracking interface `trk0` (no weight: its
/// going down is FAULT, keepalived's default).
fn conf_tracking(priority: u8) -> String {
    conf(priority).replace(
        "  advert_int 1\n",
        "  advert_int 1\n  track_interface {\n    trk0\n  }\n",
    )
}

#[test]
fn a_tracked_interface_deleted_and_created_again_is_tracked_on_its_new_index() {
    if skip_unless_root("a_tracked_interface_deleted_and_created_again_is_tracked_on_its_new_index")
    {
        return;
    }
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    let ip = |lab: &VrrpLab, args: &[&str]| lab.lab.host("a").ns.ip(args).unwrap();
    let create = |lab: &VrrpLab| {
        // A veth pair (this kernel has no dummy driver); deleting trk0 deletes both.
        ip(
            lab,
            &[
                "link", "add", "trk0", "type", "veth", "peer", "name", "trk1",
            ],
        );
        ip(lab, &["link", "set", "trk1", "up"]);
        ip(lab, &["link", "set", "trk0", "up"]);
    };
    create(&lab);
    lab.start("a", Daemon::Agent, &conf_tracking(150)).unwrap();
    lab.start("b", Daemon::Agent, &conf(100)).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();

    // The tracked interface (one no instance runs on) is deleted: a goes FAULT, b takes over.
    ip(&lab, &["link", "del", "trk0"]);
    lab.wait_log("a", "Netlink reports trk0 down", LONG)
        .unwrap();
    poll(LONG, || (state(&lab, "a") == "FAULT").then_some(()))
        .unwrap_or_else(|| panic!("a not in FAULT\n{}", lab.log("a")));
    lab.wait_sole_holder("b", VIP, LONG).unwrap();

    // Created again (a new index), and up: a tracks the new one, leaves FAULT and, having
    // the higher priority, preempts back. Its instance itself was not restarted.
    create(&lab);
    lab.wait_log("a", "Interface trk0 re-created: tracked again", LONG)
        .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    assert_eq!(state(&lab, "a"), "MASTER", "{}", lab.log("a"));
    let trackers = &lab.status("a")["instances"][0]["trackers"];
    assert_eq!(trackers[0]["name"], "trk0", "{trackers}");
    assert_eq!(trackers[0]["status"], "up", "{trackers}");

    // And the new index is the one followed: down again, FAULT again.
    ip(&lab, &["link", "set", "trk0", "down"]);
    poll(LONG, || (state(&lab, "a") == "FAULT").then_some(()))
        .unwrap_or_else(|| panic!("a not in FAULT on the new trk0 down\n{}", lab.log("a")));
    lab.wait_sole_holder("b", VIP, LONG).unwrap();
}

/// `secs` since the epoch as the agent's console lines start (`Fri Dec  4 05:24:15 2026`,
/// local time).
fn ctime_at(secs: i64) -> String {
    // SAFETY: localtime_r/strftime on stack buffers of the sizes passed.
    unsafe {
        let t: libc::time_t = secs;
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        let mut buf = [0u8; 64];
        let n = libc::strftime(
            buf.as_mut_ptr().cast(),
            buf.len(),
            c"%a %b %e %H:%M:%S %Y".as_ptr(),
            &tm,
        );
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[test]
fn wall_clock_steps_under_both_routers_change_nothing() {
    if skip_unless_root("wall_clock_steps_under_both_routers_change_nothing") {
        return;
    }
    // Each agent sees a wall clock that the test steps, forwards and back, by 30 s (an NTP
    // step) and by 400 days (a clock set from a dead RTC battery, then corrected); the shim
    // leaves CLOCK_MONOTONIC and timers alone, as a clock step leaves them. The machine's own
    // clock is not touched. The kernel's receive stamps on adverts stay on the real wall
    // clock, so after a step every advert looks 30 s old or in the future: an agent that
    // took the stamp at its word would see its master dead and take over.
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    let lib = vrrp_tests::clock::shim(lab.dir()).unwrap();
    let offset = lab.dir().join("wall-clock-offset");
    std::fs::write(&offset, "0\n").unwrap();
    let env = [
        ("LD_PRELOAD", lib.to_str().unwrap()),
        ("WALL_CLOCK_OFFSET_FILE", offset.to_str().unwrap()),
    ];
    lab.start_with("a", Daemon::Agent, &conf(150), &[], &env)
        .unwrap();
    lab.start_with("b", Daemon::Agent, &conf(100), &[], &env)
        .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    let transitions = |lab: &VrrpLab| lab.logs().matches("Entering ").count();
    let before = transitions(&lab);
    const DAYS_400: i64 = 400 * 86_400;
    for step in [30, -30, DAYS_400, -DAYS_400, 0] {
        std::fs::write(&offset, format!("{step}\n")).unwrap();
        // Each agent logs with its wall clock: a reload (same file) writes a line, whose
        // time shows the step was seen.
        for r in ["a", "b"] {
            let done = lab.log(r).matches("Reload finished").count();
            let real = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            lab.signal(r, libc::SIGHUP).unwrap();
            let line = poll(LONG, || {
                lab.log(r)
                    .lines()
                    .filter(|l| l.contains("Reload finished"))
                    .nth(done)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("{r} did not reload\n{}", lab.log(r)));
            assert!(
                (-1..=3).any(|d| line.starts_with(&ctime_at(real + step + d))),
                "{r} at {step:+} s: {line}"
            );
        }
        // More than a Master_Down interval (3.6 s) on the stepped clock.
        std::thread::sleep(Duration::from_secs(5));
        assert_eq!(lab.holders(VIP), ["a"], "after {step:+} s\n{}", lab.logs());
        assert_eq!(
            transitions(&lab),
            before,
            "after {step:+} s\n{}",
            lab.logs()
        );
    }
}

#[test]
fn a_master_frozen_past_master_down_settles_on_one_master_when_it_resumes() {
    if skip_unless_root("a_master_frozen_past_master_down_settles_on_one_master_when_it_resumes") {
        return;
    }
    // SIGSTOP for 5 s: to the stopped agent, its monotonic clock jumps by 5 s at once (a
    // VM paused, a process starved), every timer overdue together, and adverts queued
    // from the backup that took over meanwhile.
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    lab.start("a", Daemon::Agent, &conf(150)).unwrap();
    lab.start("b", Daemon::Agent, &conf(100)).unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    lab.wait_log("b", "(VI_1) Entering BACKUP STATE", LONG)
        .unwrap();
    client_resolves_to(&lab, A_MAC);

    lab.signal("a", libc::SIGSTOP).unwrap();
    lab.wait_log("b", "(VI_1) Entering MASTER STATE", LONG)
        .unwrap();
    client_arp_moves_to(&lab, B_MAC, "b took over from the frozen a");
    std::thread::sleep(Duration::from_secs(2));
    lab.signal("a", libc::SIGCONT).unwrap();

    // Resumed, a (still master to itself, priority 150) and b settle: b yields to the
    // higher priority, one holder, the client follows a.
    lab.wait_log(
        "b",
        "(VI_1) Master received advert from 192.168.11.11 with higher priority 150, ours 100",
        LONG,
    )
    .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    client_arp_moves_to(&lab, A_MAC, "a resumed as the master");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.holders(VIP), ["a"], "{}", lab.logs());
    assert_eq!(state(&lab, "a"), "MASTER", "{}", lab.log("a"));
    assert_eq!(state(&lab, "b"), "BACKUP", "{}", lab.log("b"));
}
