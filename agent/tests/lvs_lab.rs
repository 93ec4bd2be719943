//! Seed 003 in namespaces: two directors run vrrp-agent with the seed's LVS-DR configuration
//! (its addresses; the interface renamed and the checker's timings shortened so the test
//! takes seconds), two real servers run nginx with different pages and hold the VIP on their
//! loopback (arp_ignore 1, arp_announce 2, as the seed sets them up), a client asks for the
//! page from several addresses. Requests are balanced by the master's XDP program and
//! answered by the real servers directly; a real server whose nginx stops is taken out by its
//! HTTP_GET checker and put back when nginx is back; when the master director crashes, the
//! backup's XDP program serves the VIP.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use vrrp_tests::{
    lvs::{VIP, client, director},
    poll,
    routers::Daemon,
    skip_unless_root,
};

const LONG: Duration = Duration::from_secs(30);

/// The VRRP instance every test's director runs, holding the VIP (`vrrp_tests::lvs::VIP`).
const INSTANCE: &str = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    192.168.11.200\n  }\n}\n";

fn topology() -> vrrp_tests::lvs::Seed {
    assert!(INSTANCE.contains(VIP), "INSTANCE holds the VIP");
    vrrp_tests::lvs::topology(agent())
}

fn agent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vrrp-agent"))
}

/// Runs `test` while the threads `serve` starts on the scope run beside it (servers in the
/// real servers' namespaces, each looping until `stop` is set). `stop` is set when the test
/// ends, even by a panic, which is then passed on once the servers have stopped.
fn while_serving<'env>(
    stop: &'env std::sync::atomic::AtomicBool,
    serve: impl for<'scope> FnOnce(&'scope std::thread::Scope<'scope, 'env>),
    test: impl FnOnce(),
) {
    std::thread::scope(|scope| {
        serve(scope);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    });
}

#[test]
fn seed_lvs_dr_balances_checks_real_servers_and_fails_over() {
    if skip_unless_root("seed_lvs_dr_balances_checks_real_servers_and_fails_over") {
        return;
    }
    let mut seed = topology();
    seed.lab
        .start(
            "a",
            Daemon::Agent,
            &director("seed-lvs-dr-master.conf", 150),
        )
        .unwrap();
    seed.lab
        .start(
            "b",
            Daemon::Agent,
            &director("seed-lvs-dr-backup.conf", 100),
        )
        .unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log("a", "VS [192.168.11.200]:tcp:80 served by XDP", LONG)
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "Remote Web server [192.168.11.113]:tcp:80 succeed on service.",
            LONG,
        )
        .unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));

    // Balanced: clients go to both real servers, each client stays on its own.
    let clients: Vec<Ipv4Addr> = (0..4).map(client).collect();
    let first = seed.pages(&clients);
    assert!(
        first.contains(&"r1".to_string()) && first.contains(&"r2".to_string()),
        "{first:?}\n{}\n{}",
        seed.lab.status("a"),
        seed.lab.logs()
    );
    assert_eq!(seed.pages(&clients), first, "persistence");
    let st = seed.lab.status("a");
    let forwarded = st["xdp"]["counters"]["lb_forwarded"].as_u64().unwrap_or(0);
    assert!(forwarded > 0, "{st}");

    // nginx on r1 stops: the checker takes r1 out, everyone is served by r2.
    seed.stop_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.113]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    assert!(
        seed.lab
            .log("a")
            .contains("HTTP_CHECK on service [192.168.11.113]:tcp:80 failed")
    );
    assert_eq!(seed.pages(&clients), vec!["r2"; 4], "{}", seed.lab.log("a"));

    // Back: r1 is put back and takes new clients again.
    seed.start_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            "Adding service [192.168.11.113]:tcp:80 to VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    let fresh: Vec<Ipv4Addr> = (4..8).map(client).collect();
    let pages = seed.pages(&fresh);
    assert!(pages.contains(&"r1".to_string()), "{pages:?}");
    assert!(!pages.contains(&"none".to_string()), "{pages:?}");

    // The master director crashes: b takes the VIP and its XDP program serves it.
    seed.lab.crash("a").unwrap();
    seed.lab.wait_sole_holder("b", VIP, LONG).unwrap();
    let served = poll(LONG, || {
        let p = seed.pages(&clients);
        (!p.contains(&"none".to_string())).then_some(p)
    })
    .unwrap_or_else(|| panic!("b does not serve the VIP\n{}", seed.lab.logs()));
    eprintln!("after the crash: {served:?}");
    let st = seed.lab.status("b");
    assert!(
        st["xdp"]["counters"]["lb_forwarded"].as_u64().unwrap_or(0) > 0,
        "b forwarded nothing: {st}"
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// The other checkers and what they drive: r1 checked by a MISC_CHECK script whose exit code
/// sets its weight (`misc_dynamic`) and whose failure takes it out, with `notify_up` /
/// `notify_down` scripts; r2 by TCP_CHECK; `wrr` following the weights.
#[test]
fn misc_check_weights_notify_scripts_and_tcp_check_drive_the_schedule() {
    if skip_unless_root("misc_check_weights_notify_scripts_and_tcp_check_drive_the_schedule") {
        return;
    }
    let mut seed = topology();
    let dir = seed.lab.dir().to_path_buf();
    let d = dir.display();
    let script = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path.display().to_string()
    };
    let code = dir.join("r1-code");
    std::fs::write(&code, "0").unwrap();
    let chk = script("chk-r1.sh", &format!("exit $(cat {})", code.display()));
    let note = script("note.sh", &format!("echo \"$@\" >> {d}/notes"));
    let config = format!(
        "global_defs {{\n  enable_script_security\n  script_user root\n  checker_log_all_failures\n}}\n\
         {INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n  omega\n\
         \x20 real_server 192.168.11.113 80 {{\n    weight 1\n    notify_up \"{note} up r1\"\n    notify_down \"{note} down r1\"\n\
         \x20   MISC_CHECK {{\n      misc_path {chk}\n      misc_dynamic\n    }}\n  }}\n\
         \x20 real_server 192.168.11.114 80 {{\n    weight 1\n    alpha\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n"
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log(
            "a",
            "Misc check for [[192.168.11.113]:tcp:80 VS [192.168.11.200]:tcp:80] by [",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "TCP connection to [192.168.11.114]:tcp:80 success.",
            LONG,
        )
        .unwrap();
    // alpha: r2 started down, and its first success added it.
    seed.lab
        .wait_log(
            "a",
            "Adding service [192.168.11.114]:tcp:80 to VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));

    // The script says weight 3 (exit 5): wrr gives r1 three flows for each of r2's.
    std::fs::write(&code, "5").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Changing weight from 1 to 3 for active service [192.168.11.113]:tcp:80 of VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    let pages = seed.pages(&[client(0); 16]);
    let r1 = pages.iter().filter(|p| *p == "r1").count();
    let r2 = pages.iter().filter(|p| *p == "r2").count();
    assert_eq!(r1 + r2, 16, "{pages:?}");
    assert!(r1 > r2, "wrr 3:1 gave {r1}:{r2}");

    // Exit 1: down, notify_down runs; r2 alone serves.
    std::fs::write(&code, "1").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.113]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    assert!(
        seed.lab
            .log("a")
            .contains("failed with retry disabled (exited with status 1).")
    );
    let notes = dir.join("notes");
    poll(LONG, || {
        std::fs::read_to_string(&notes)
            .ok()
            .filter(|n| n.contains("down r1"))
    })
    .expect("notify_down ran");
    assert_eq!(seed.pages(&[client(1); 4]), vec!["r2"; 4]);

    // Exit 0: up at its configured weight, notify_up runs.
    std::fs::write(&code, "0").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Adding service [192.168.11.113]:tcp:80 to VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    poll(LONG, || {
        std::fs::read_to_string(&notes)
            .ok()
            .filter(|n| n.contains("up r1"))
    })
    .expect("notify_up ran");

    // nginx on r2 stops: TCP_CHECK takes it out (one retry first), r1 serves everyone.
    // checker_log_all_failures: each refused connection is said, the retry's too.
    seed.stop_nginx("r2");
    const DOWN: &str = "TCP_CHECK on service [192.168.11.114]:tcp:80 failed after 1 retries.";
    seed.lab.wait_log("a", DOWN, LONG).unwrap();
    let log = seed.lab.log("a");
    let refused = "TCP connection to [192.168.11.114]:tcp:80 failed.";
    let before = &log[..log.find(DOWN).unwrap()];
    assert_eq!(before.matches(refused).count(), 2, "{log}");
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.114]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    assert_eq!(seed.pages(&[client(2); 4]), vec!["r1"; 4]);
    // omega: stopping the agent runs notify_down for the servers still up (r1).
    let downs = |n: &str| n.matches("down r1").count();
    let before = downs(&std::fs::read_to_string(&notes).unwrap_or_default());
    seed.lab.stop("a", LONG).unwrap();
    poll(LONG, || {
        std::fs::read_to_string(&notes)
            .ok()
            .filter(|n| downs(n) == before + 1)
    })
    .unwrap_or_else(|| {
        panic!(
            "omega: no notify_down at shutdown\n{}\n{}",
            std::fs::read_to_string(&notes).unwrap_or_default(),
            seed.lab.log("a")
        )
    });
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{}", seed.lab.log("a"));
    }
    seed.stop_nginx("r1");
}

/// keepalived's quorum: with `quorum 2` over two servers of weight 1, one going down loses
/// quorum — `quorum_down` runs and the sorry server (r3) takes every request — and its return
/// regains it: `quorum_up` runs, the sorry server leaves, the real servers serve again.
#[test]
fn losing_quorum_hands_the_service_to_the_sorry_server_and_back() {
    if skip_unless_root("losing_quorum_hands_the_service_to_the_sorry_server_and_back") {
        return;
    }
    let mut seed = topology();
    vrrp_tests::lvs::add_real(
        &mut seed.lab,
        "r3",
        [2, 0, 0, 0, 0, 0x15],
        "192.168.11.115/24",
    );
    seed.start_nginx("r3");
    let dir = seed.lab.dir().to_path_buf();
    let note = dir.join("note.sh");
    std::fs::write(
        &note,
        format!("#!/bin/sh\necho \"$@\" >> {}/notes\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&note, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let note = note.display();
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "global_defs {{\n  enable_script_security\n  script_user root\n}}\n\
         {INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  quorum 2\n\
         \x20 quorum_up \"{note} quorum up\"\n  quorum_down \"{note} quorum down\"\n  sorry_server 192.168.11.115 80\n{}{}}}\n",
        real("192.168.11.113"),
        real("192.168.11.114")
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let pages = seed.pages(&[client(0), client(1), client(2), client(3)]);
    assert!(!pages.contains(&"r3".to_string()), "{pages:?}");

    seed.stop_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            "Lost quorum 2-0=2 > 1 for VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "Adding sorry server [192.168.11.115]:tcp:80 to VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    let sorry = poll(LONG, || {
        let p = seed.pages(&[client(4), client(5)]);
        (p == ["r3", "r3"]).then_some(p)
    });
    assert!(
        sorry.is_some(),
        "{}\n{}",
        seed.lab.log("a"),
        seed.lab.status("a")
    );
    let notes = dir.join("notes");
    poll(LONG, || {
        std::fs::read_to_string(&notes)
            .ok()
            .filter(|n| n.contains("quorum down"))
    })
    .expect("quorum_down ran");

    seed.start_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            "Gained quorum 2+0=2 <= 2 for VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing sorry server [192.168.11.115]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    poll(LONG, || {
        std::fs::read_to_string(&notes)
            .ok()
            .filter(|n| n.contains("quorum up"))
    })
    .expect("quorum_up ran");
    let back = seed.pages(&[client(6), client(7)]);
    assert!(
        !back.contains(&"r3".to_string()) && !back.contains(&"none".to_string()),
        "{back:?}"
    );
    for r in ["r1", "r2", "r3"] {
        seed.stop_nginx(r);
    }
}

/// `virtual_server group NAME`: one schedule for every entry of the group (here the VIP on
/// ports 80 and 81), logged under keepalived's `[NAME]:0`.
#[test]
fn a_virtual_server_group_is_served_on_each_of_its_entries() {
    if skip_unless_root("a_virtual_server_group_is_served_on_each_of_its_entries") {
        return;
    }
    let mut seed = topology();
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n"
        )
    };
    let config = |last_port: u32| {
        let entries: String = (80..=last_port).map(|p| format!("  {VIP} {p}\n")).collect();
        format!(
            "{INSTANCE}\
             virtual_server_group web {{\n{entries}}}\n\
             virtual_server group web {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
            real("192.168.11.113"),
            real("192.168.11.114")
        )
    };
    seed.lab.start("a", Daemon::Agent, &config(81)).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log("a", "VS [web]:0 served by XDP", LONG)
        .unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    for port in [80, 81] {
        let pages: Vec<String> = (0..4)
            .map(|k| {
                seed.get_url(client(k), &format!("http://{VIP}:{port}/"))
                    .unwrap_or_else(|| "none".into())
            })
            .collect();
        assert!(
            pages.contains(&"r1".to_string()) && pages.contains(&"r2".to_string()),
            "port {port}: {pages:?}"
        );
    }
    let st = seed.lab.status("a");
    assert_eq!(
        st["virtual_servers"][0]["addresses"],
        serde_json::json!([format!("{VIP}:80"), format!("{VIP}:81")])
    );
    // Each entry counts its own packets: more requests to :81 move only its count, and a
    // reload that starts a new balancer keeps both.
    let counts = |seed: &vrrp_tests::lvs::Seed| -> Vec<(String, u64)> {
        seed.lab.status("a")["virtual_servers"][0]["address_traffic"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                (
                    a["address"].as_str().unwrap_or("").to_string(),
                    a["packets"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    let before = counts(&seed);
    assert_eq!(
        before.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
        [format!("{VIP}:80"), format!("{VIP}:81")]
    );
    assert!(before.iter().all(|c| c.1 > 0), "{before:?}");
    for k in 0..2 {
        assert!(
            seed.get_url(client(k), &format!("http://{VIP}:81/"))
                .is_some()
        );
    }
    let after = counts(&seed);
    assert_eq!(after[0], before[0], "{after:?}");
    assert!(after[1].1 > before[1].1, "{before:?} {after:?}");
    // A reload that adds an entry to the group (the virtual server unchanged): a new
    // balancer serves it too, and the entries that stay keep their counts.
    std::fs::write(seed.lab.dir().join("a.conf"), config(82)).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.lab
        .wait_log("a", "Reload finished", LONG)
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    let log = seed.lab.log("a");
    assert_eq!(
        log.matches("VS [web]:0 served by XDP").count(),
        2,
        "a new balancer\n{log}"
    );
    let mut kept = after.clone();
    kept.push((format!("{VIP}:82"), 0));
    assert_eq!(counts(&seed), kept, "kept across the reload");
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// keepalived's default scheduler (no `lb_algo`): wlc. Eight connections held open, opened a
/// moment apart, go 6 : 2 to servers of weight 3 and 1, and `status` counts them as open
/// flows; closed, they no longer count.
#[test]
fn wlc_by_default_spreads_open_connections_by_weight() {
    if skip_unless_root("wlc_by_default_spreads_open_connections_by_weight") {
        return;
    }
    let mut seed = topology();
    let real = |addr: &str, weight: u8| {
        format!(
            "  real_server {addr} 80 {{\n    weight {weight}\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
        real("192.168.11.113", 3),
        real("192.168.11.114", 1)
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log(
            "a",
            "VS [192.168.11.200]:tcp:80 served by XDP (direct routing, wlc,",
            LONG,
        )
        .unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let open_flows = |seed: &vrrp_tests::lvs::Seed| -> Vec<u64> {
        let st = seed.lab.status("a");
        st["virtual_servers"][0]["real_servers"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| r["open_flows"].as_u64().unwrap_or(99))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_vip(&seed));
        // The agent counts every 250 ms: each connection is scheduled on a fresh count.
        std::thread::sleep(Duration::from_millis(400));
    }
    let counted = poll(LONG, || {
        let f = open_flows(&seed);
        (f == [6, 2]).then_some(f)
    });
    assert!(
        counted.is_some(),
        "open flows {:?}\n{}",
        open_flows(&seed),
        seed.lab.status("a")
    );
    drop(held);
    poll(LONG, || (open_flows(&seed) == [0, 0]).then_some(()))
        .unwrap_or_else(|| panic!("still open: {:?}", open_flows(&seed)));
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// HTTP_GET's `digest`: the MD5 of the page. Both servers are checked against r1's page; r2
/// serves another, so its check fails and it is taken out, while r1 stays. Then the url's
/// `regex`: one both pages match brings r2 back, and under `regex_no_match` one that r1's
/// page matches takes r1 out; with the url's `virtualhost` as the request's `Host:`, nginx's
/// name-based server answers (`vhost-r1`), and only r1 matches.
#[test]
fn an_http_get_digest_takes_out_a_server_whose_page_differs_and_so_does_a_regex() {
    if skip_unless_root(
        "an_http_get_digest_takes_out_a_server_whose_page_differs_and_so_does_a_regex",
    ) {
        return;
    }
    let mut seed = topology();
    // printf 'r1\n' | md5sum
    let digest = "35a853e2b2b105502215358d4d3db9f7";
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n        digest {digest}\n      }}\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
        real("192.168.11.113"),
        real("192.168.11.114")
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab
        .wait_log(
            "a",
            "Remote Web server [192.168.11.113]:tcp:80 succeed on service.",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "HTTP_CHECK on service [192.168.11.114]:tcp:80 failed.",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.114]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.wait_serving("a", [true, false])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seed.pages(&[client(0), client(1), client(2)]),
        ["r1", "r1", "r1"]
    );
    // The url's regex instead (keepalived's escapes: `\\d` in the file is `\d`; PCRE2's `$`
    // before the page's final newline): both pages match, r2 comes back.
    let with_regex = |url: &str| {
        let real = |addr: &str| {
            format!(
                "  real_server {addr} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n{url}      }}\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n"
            )
        };
        format!(
            "{INSTANCE}\
             virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
            real("192.168.11.113"),
            real("192.168.11.114")
        )
    };
    std::fs::write(
        seed.lab.dir().join("a.conf"),
        with_regex("        regex \"^r\\\\d$\"\n"),
    )
    .unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    // regex_no_match: the page that matches is the one taken out.
    std::fs::write(
        seed.lab.dir().join("a.conf"),
        with_regex("        regex R1\n        regex_options caseless\n        regex_no_match\n"),
    )
    .unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.113]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    seed.wait_serving("a", [false, true])
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    // The url's virtualhost is the request's Host: nginx's name-based server answers.
    std::fs::write(
        seed.lab.dir().join("a.conf"),
        with_regex("        virtualhost vhost.example\n        regex ^vhost-r1\n"),
    )
    .unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.wait_serving("a", [true, false])
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// A reload that changes the virtual server keeps what the checkers know (keepalived
/// migrates them): a server found down stays out of the schedule, it does not come back for
/// a round of checks.
#[test]
fn a_reload_keeps_a_down_server_down() {
    if skip_unless_root("a_reload_keeps_a_down_server_down") {
        return;
    }
    let mut seed = topology();
    let config = director("seed-lvs-dr-master.conf", 150);
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.stop_nginx("r1");
    const REMOVED: &str =
        "Removing service [192.168.11.113]:tcp:80 from VS [192.168.11.200]:tcp:80";
    seed.lab.wait_log("a", REMOVED, LONG).unwrap();
    // The virtual server changes (persistence), and the file is read again.
    let changed = config.replace("persistence_timeout 50", "persistence_timeout 60");
    assert_ne!(changed, config);
    std::fs::write(seed.lab.dir().join("a.conf"), &changed).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.lab.wait_log("a", "Reload finished", LONG).unwrap();
    let r1_out = vec![
        ("192.168.11.113".to_string(), false),
        ("192.168.11.114".to_string(), true),
    ];
    assert_eq!(seed.serving("a"), r1_out, "{}", seed.lab.log("a"));
    // Several check rounds later it is still out, and was never added and removed again.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(seed.serving("a"), r1_out);
    let log = seed.lab.log("a");
    assert_eq!(log.matches(REMOVED).count(), 1, "{log}");
    assert!(!log.contains("Adding service [192.168.11.113]"), "{log}");
    seed.stop_nginx("r2");
}

/// SSL_GET: HTTP_GET over TLS (self-signed certificates, not verified, as keepalived without
/// a `ca`); nginx stopping on r1 takes it out with HTTP_GET's lines.
#[test]
fn ssl_get_checks_real_servers_over_tls() {
    if skip_unless_root("ssl_get_checks_real_servers_over_tls") {
        return;
    }
    let mut seed = topology();
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    SSL_GET {{\n      url {{\n        path /\n      }}\n      connect_port 443\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
        real("192.168.11.113"),
        real("192.168.11.114")
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    for r in ["113", "114"] {
        seed.lab
            .wait_log(
                "a",
                &format!("Remote Web server [192.168.11.{r}]:tcp:443 succeed on service."),
                LONG,
            )
            .unwrap();
    }
    seed.stop_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            "HTTP_CHECK on service [192.168.11.113]:tcp:443 failed.",
            LONG,
        )
        .unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.113]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.stop_nginx("r2");
}

/// The `SSL` block's client certificate: the real servers' nginx on 8443 wants one signed by
/// the lab's CA. Without the block, SSL_GET gets a 400 and takes the servers out; a reload
/// that adds the block (certificate, and the key encrypted with the block's `password`)
/// brings them back; one naming a certificate
/// that does not exist stops the checks with keepalived's lines.
#[test]
fn ssl_get_presents_the_ssl_block_s_client_certificate() {
    if skip_unless_root("ssl_get_presents_the_ssl_block_s_client_certificate") {
        return;
    }
    let mut seed = topology();
    let d = seed.lab.dir().display().to_string();
    let config = |ssl: &str| {
        let real = |addr: &str| {
            format!(
                "  real_server {addr} 80 {{\n    SSL_GET {{\n      url {{\n        path /\n      }}\n      connect_port 8443\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n"
            )
        };
        format!(
            "{ssl}{INSTANCE}\
             virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{}{}}}\n",
            real("192.168.11.113"),
            real("192.168.11.114")
        )
    };
    seed.lab.start("a", Daemon::Agent, &config("")).unwrap();
    for r in ["113", "114"] {
        seed.lab
            .wait_log(
                "a",
                &format!(
                    "Removing service [192.168.11.{r}]:tcp:80 from VS [192.168.11.200]:tcp:80"
                ),
                LONG,
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    }
    let ssl = format!(
        "SSL {{\n  ca {d}/client-ca.crt\n  certificate {d}/client.crt\n  password \"lab secret\"\n  key {d}/client-enc.key\n}}\n"
    );
    std::fs::write(seed.lab.dir().join("a.conf"), config(&ssl)).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    for r in ["113", "114"] {
        seed.lab
            .wait_log(
                "a",
                &format!("Remote Web server [192.168.11.{r}]:tcp:8443 succeed on service."),
                LONG,
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    }
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let missing = format!("SSL {{\n  certificate {d}/nosuch.crt\n  key {d}/client.key\n}}\n");
    std::fs::write(seed.lab.dir().join("a.conf"), config(&missing)).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    for line in [
        "SSL error : Cant load certificate file...",
        "Terminate...",
        "The SSL context cannot be set up: no virtual server is run",
    ] {
        seed.lab
            .wait_log("a", line, LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    }
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// A TCP connection from the client (its first address) to VIP:80.
fn connect_vip(seed: &vrrp_tests::lvs::Seed) -> std::net::TcpStream {
    let vip: Ipv4Addr = VIP.parse().unwrap();
    seed.lab
        .lab
        .host("client")
        .ns
        .enter(move || std::net::TcpStream::connect((vip, 80)))
        .unwrap()
        .unwrap()
}

/// Keep-alive connections from the client to the VIP, each asked for its page once, until
/// `enough` says so (at most 20).
fn hold_until(
    seed: &vrrp_tests::lvs::Seed,
    enough: impl Fn(&[(std::net::TcpStream, String)]) -> bool,
) -> Vec<(std::net::TcpStream, String)> {
    let mut held: Vec<(std::net::TcpStream, String)> = Vec::new();
    while !enough(&held) {
        assert!(
            held.len() < 20,
            "{:?}",
            held.iter().map(|h| &h.1).collect::<Vec<_>>()
        );
        let mut conn = connect_vip(seed);
        let page = ask(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        held.push((conn, page));
    }
    held
}

/// One HTTP/1.1 request on a kept-alive connection: the page, or what went wrong.
fn ask(conn: &mut std::net::TcpStream) -> Result<String, String> {
    use std::io::{Read, Write};
    conn.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    conn.write_all(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse::<usize>())
                })
                .and_then(Result::ok);
            if length.is_some_and(|n| body.len() >= n) {
                return Ok(body.trim().to_string());
            }
        }
        match conn.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {text:?}")),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e} after {text:?}")),
        }
    }
}

/// A reload that adds a real server ahead of the others leaves the open connections on
/// their servers: each keeps its place in the balancer's maps, which its flows name
/// (renumbered, a flow would land on another server, which resets it). And a reload that
/// makes a virtual server's address a VIP makes it follow the VIP.
#[test]
fn a_reload_keeps_open_connections_on_their_servers() {
    if skip_unless_root("a_reload_keeps_open_connections_on_their_servers") {
        return;
    }
    let mut seed = topology();
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n"
        )
    };
    const OTHER: &str = "192.168.11.201";
    let config = |reals: &str, vips: &str| {
        // The instance last, so that a change to it leaves the virtual servers as they were,
        // to the line.
        format!(
            "virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n{reals}}}\n\
             virtual_server {OTHER} 80 {{\n  lb_kind DR\n  real_server 192.168.11.113 80 {{\n  }}\n}}\n\
             vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {{\n{vips}  }}\n}}\n"
        )
    };
    let follows = |seed: &vrrp_tests::lvs::Seed| {
        seed.lab.status("a")["virtual_servers"][1]["follows_vip"].as_bool()
    };
    let two = real("192.168.11.113") + &real("192.168.11.114");
    seed.lab
        .start("a", Daemon::Agent, &config(&two, &format!("    {VIP}\n")))
        .unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    // Connections until each server has some (rr rotates per CPU, so not strictly in turn).
    let mut held = hold_until(&seed, |held| {
        held.iter().any(|(_, p)| p == "r1") && held.iter().any(|(_, p)| p == "r2")
    });
    assert_eq!(follows(&seed), Some(false));
    // A server that never answers goes first.
    let three = real("192.168.11.115") + &two;
    std::fs::write(
        seed.lab.dir().join("a.conf"),
        config(&three, &format!("    {VIP}\n")),
    )
    .unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.lab.wait_log("a", "Reload finished", LONG).unwrap();
    for (conn, page) in &mut held {
        assert_eq!(
            ask(conn).as_deref(),
            Ok(page.as_str()),
            "{}",
            seed.lab.logs()
        );
    }
    // New connections are still served by the two that answer.
    let fresh = seed.pages(&[client(1), client(2)]);
    assert!(fresh.iter().all(|p| p == "r1" || p == "r2"), "{fresh:?}");
    // Only the VIPs change: the other virtual server now follows its address.
    std::fs::write(
        seed.lab.dir().join("a.conf"),
        config(&three, &format!("    {VIP}\n    {OTHER}\n")),
    )
    .unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    poll(LONG, || (follows(&seed) == Some(true)).then_some(()))
        .unwrap_or_else(|| panic!("{}\n{}", seed.lab.status("a"), seed.lab.logs()));
    for (conn, page) in &mut held {
        assert_eq!(ask(conn).as_deref(), Ok(page.as_str()));
    }
    drop(held);
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// SMTP_CHECK and DNS_CHECK against servers in the real servers' namespaces: r1 speaks SMTP
/// on 25 and answers DNS on 53, r2 does neither. r2 is taken out of both virtual servers
/// with keepalived's lines, r1 stays in, and a client's SMTP session to the VIP reaches r1.
/// The SMTP_CHECKs are written with keepalived's deprecated `host` blocks: r1's checks its
/// host only; r2's sets its own connect_timeout, so it checks r2 as well as its host (r1),
/// and r2's failure takes it out.
#[test]
fn smtp_and_dns_checks_take_out_the_server_that_does_not_answer() {
    use std::{
        io::{BufRead, BufReader, Write},
        sync::atomic::{AtomicBool, Ordering},
    };
    if skip_unless_root("smtp_and_dns_checks_take_out_the_server_that_does_not_answer") {
        return;
    }
    let mut seed = topology();
    // r1's servers, bound in its namespace and served from threads here until the end.
    let r1 = &seed.lab.lab.host("r1").ns;
    let smtp = r1
        .enter(|| std::net::TcpListener::bind("0.0.0.0:25"))
        .unwrap()
        .unwrap();
    let dns = r1
        .enter(|| std::net::UdpSocket::bind("0.0.0.0:53"))
        .unwrap()
        .unwrap();
    smtp.set_nonblocking(true).unwrap();
    dns.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = AtomicBool::new(false);
    while_serving(
        &stop,
        |scope| {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let Ok((conn, _)) = smtp.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    let mut line = String::new();
                    let _ = w.write_all(b"220-r1 ESMTP\r\n220 r1\r\n");
                    for answer in ["250 r1\r\n", "221 bye\r\n"] {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            break;
                        }
                        let _ = w.write_all(answer.as_bytes());
                    }
                }
            });
            scope.spawn(|| {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = dns.recv_from(&mut buf) {
                        // A response (QR), rcode 0.
                        buf[2] |= 0x80;
                        let _ = dns.send_to(&buf[..n], from);
                    }
                }
            });
        },
        || smtp_and_dns_checks(&mut seed),
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

fn smtp_and_dns_checks(seed: &mut vrrp_tests::lvs::Seed) {
    use std::io::{BufRead, BufReader};
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 25 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server 192.168.11.113 25 {{\n    SMTP_CHECK {{\n      retry 0\n      helo_name lab.example\n      host {{\n        connect_ip 192.168.11.113\n        connect_timeout 1\n      }}\n    }}\n  }}\n\
           real_server 192.168.11.114 25 {{\n    SMTP_CHECK {{\n      connect_timeout 1\n      retry 0\n      host {{\n        connect_ip 192.168.11.113\n      }}\n    }}\n  }}\n}}\n\
         virtual_server {VIP} 53 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n\
           real_server 192.168.11.113 53 {{\n    DNS_CHECK {{\n      connect_timeout 1\n      retry 0\n      name example.org\n      type A\n    }}\n  }}\n\
           real_server 192.168.11.114 53 {{\n    DNS_CHECK {{\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n}}\n"
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    for line in [
        "The SMTP_CHECK host block is deprecated. Please define additional checkers.",
        "Remote SMTP server [192.168.11.113]:tcp:25 succeed on service.",
        "SMTP_CHECK Error connecting to server [192.168.11.114]:tcp:25",
        "Removing service [192.168.11.114]:tcp:25 from VS [192.168.11.200]:tcp:25",
        "DNS_CHECK ([192.168.11.114]:udp:53)",
        "Removing service [192.168.11.114]:udp:53 from VS [192.168.11.200]:udp:53",
    ] {
        seed.lab
            .wait_log("a", line, LONG)
            .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    }
    let serving = |vs: usize| seed.serving_of("a", vs);
    let want = vec![
        ("192.168.11.113".to_string(), true),
        ("192.168.11.114".to_string(), false),
    ];
    for vs in [0, 1] {
        poll(LONG, || (serving(vs) == want).then_some(()))
            .unwrap_or_else(|| panic!("VS {vs}: {:?}\n{}", serving(vs), seed.lab.status("a")));
    }
    let log = seed.lab.log("a");
    assert!(!log.contains("Removing service [192.168.11.113]"), "{log}");
    // Through the VIP, a client's SMTP session is r1's.
    let vip: Ipv4Addr = VIP.parse().unwrap();
    let banner = seed
        .lab
        .lab
        .host("client")
        .ns
        .enter(move || -> std::io::Result<String> {
            let conn = std::net::TcpStream::connect((vip, 25))?;
            conn.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut line = String::new();
            BufReader::new(conn).read_line(&mut line)?;
            Ok(line)
        })
        .unwrap();
    assert_eq!(banner.ok().as_deref(), Some("220-r1 ESMTP\r\n"));
}

/// PING_CHECK and UDP_CHECK: r2 ignores pings and has nothing on UDP 53, r1 answers both
/// (its UDP server says "OK", which `require_reply` wants). At start, r2's first failures
/// take it out of both virtual servers at once (keepalived starts a checker with no retries
/// left); when r2 answers pings again, it is back in the first.
#[test]
fn ping_and_udp_checks_follow_what_the_real_servers_answer() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if skip_unless_root("ping_and_udp_checks_follow_what_the_real_servers_answer") {
        return;
    }
    let mut seed = topology();
    let ignore_pings = |seed: &vrrp_tests::lvs::Seed, on: bool| {
        let out = seed
            .lab
            .lab
            .host("r2")
            .ns
            .output(&[
                "sysctl",
                "-qw",
                &format!("net.ipv4.icmp_echo_ignore_all={}", u8::from(on)),
            ])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ignore_pings(&seed, true);
    let udp = seed
        .lab
        .lab
        .host("r1")
        .ns
        .enter(|| std::net::UdpSocket::bind("0.0.0.0:53"))
        .unwrap()
        .unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = AtomicBool::new(false);
    while_serving(
        &stop,
        |scope| {
            scope.spawn(|| {
                let mut buf = [0u8; 512];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(b"OK", from);
                    }
                }
            });
        },
        || {
            let config = format!(
                "{INSTANCE}\
                 virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
                   real_server 192.168.11.113 80 {{\n    PING_CHECK {{\n      connect_timeout 1\n      retry 2\n    }}\n  }}\n\
                   real_server 192.168.11.114 80 {{\n    PING_CHECK {{\n      connect_timeout 1\n      retry 2\n    }}\n  }}\n}}\n\
                 virtual_server {VIP} 53 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n\
                   real_server 192.168.11.113 53 {{\n    UDP_CHECK {{\n      connect_timeout 1\n      require_reply 4f4b\n    }}\n  }}\n\
                   real_server 192.168.11.114 53 {{\n    UDP_CHECK {{\n      connect_timeout 1\n      require_reply 4f4b\n    }}\n  }}\n}}\n"
            );
            seed.lab.start("a", Daemon::Agent, &config).unwrap();
            seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
            for line in [
                "ICMP connection to [192.168.11.113]:tcp:80 success.",
                "ICMP CHECK on service [192.168.11.114]:tcp:80 failed.",
                "Removing service [192.168.11.114]:tcp:80 from VS [192.168.11.200]:tcp:80",
                "UDP connection to [192.168.11.113]:udp:53 success.",
                "UDP_CHECK on service [192.168.11.114]:udp:53 failed.",
                "Removing service [192.168.11.114]:udp:53 from VS [192.168.11.200]:udp:53",
            ] {
                seed.lab
                    .wait_log("a", line, LONG)
                    .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
            }
            seed.wait_serving("a", [true, false])
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                seed.pages(&[client(0), client(1), client(2)]),
                ["r1", "r1", "r1"]
            );
            ignore_pings(&seed, false);
            seed.lab
                .wait_log(
                    "a",
                    "ICMP connection to [192.168.11.114]:tcp:80 success.",
                    LONG,
                )
                .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
            seed.wait_serving("a", [true, true])
                .unwrap_or_else(|e| panic!("{e}"));
            let udp_serving = vec![
                ("192.168.11.113".to_string(), true),
                ("192.168.11.114".to_string(), false),
            ];
            assert_eq!(seed.serving_of("a", 1), udp_serving);
        },
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// FILE_CHECK: r2's file at weight 0 takes it out when it holds a number other than 0 and
/// puts it back at 0; r1's file at weight 2 moves its weight (1 + 2 × 2 = 5), and its second
/// FILE_CHECK's file adds to it (5 + 1 × 3 = 8), with keepalived's lines.
#[test]
fn file_check_follows_its_track_file() {
    if skip_unless_root("file_check_follows_its_track_file") {
        return;
    }
    let mut seed = topology();
    let dir = seed.lab.dir().to_path_buf();
    let (r1_file, r2_file) = (dir.join("r1.weight"), dir.join("r2.state"));
    let r1_extra = dir.join("r1.extra");
    std::fs::write(&r1_file, "0\n").unwrap();
    std::fs::write(&r2_file, "0\n").unwrap();
    std::fs::write(&r1_extra, "0\n").unwrap();
    let config = format!(
        "track_file r1_weight {{\n  file {}\n  weight 2\n}}\n\
         track_file r2_state {{\n  file {}\n  weight 0\n}}\n\
         track_file r1_extra {{\n  file {}\n  weight 3\n}}\n\
         {INSTANCE}\
         virtual_server {VIP} 80 {{\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n\
           real_server 192.168.11.113 80 {{\n    FILE_CHECK {{\n      track_file r1_weight\n    }}\n    FILE_CHECK {{\n      track_file r1_extra\n    }}\n  }}\n\
           real_server 192.168.11.114 80 {{\n    FILE_CHECK {{\n      track_file r2_state\n    }}\n  }}\n}}\n",
        r1_file.display(),
        r2_file.display(),
        r1_extra.display()
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&r2_file, "1\n").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Removing service [192.168.11.114]:tcp:80 from VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.wait_serving("a", [true, false])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seed.pages(&[client(0), client(1), client(2)]),
        ["r1", "r1", "r1"]
    );
    std::fs::write(&r2_file, "0\n").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Adding service [192.168.11.114]:tcp:80 to VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&r1_file, "2\n").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Changing weight from 1 to 5 for active service [192.168.11.113]:tcp:80 of VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    assert_eq!(
        seed.lab.status("a")["virtual_servers"][0]["real_servers"][0]["weight"],
        5
    );
    // A second FILE_CHECK on the same server adds its share, as in keepalived.
    std::fs::write(&r1_extra, "1\n").unwrap();
    seed.lab
        .wait_log(
            "a",
            "Changing weight from 5 to 8 for active service [192.168.11.113]:tcp:80 of VS [192.168.11.200]:tcp:80",
            LONG,
        )
        .unwrap();
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `uthreshold` / `lthreshold`: r1 with an upper threshold of 2 open connections takes no
/// new ones once it holds 2 (everyone goes to r2), and takes them again when they close
/// (below its lower threshold, 1), as IPVS's overload flag.
#[test]
fn a_real_server_over_its_uthreshold_takes_no_new_connections() {
    if skip_unless_root("a_real_server_over_its_uthreshold_takes_no_new_connections") {
        return;
    }
    let mut seed = topology();
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server 192.168.11.113 80 {{\n    uthreshold 2\n    lthreshold 1\n  }}\n\
           real_server 192.168.11.114 80 {{\n  }}\n}}\n"
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    // Connections held open until r1 has two.
    let mut held = hold_until(&seed, |held| {
        held.iter().filter(|(_, p)| p == "r1").count() >= 2
    });
    seed.wait_serving("a", [false, true])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        seed.pages(&[client(1), client(2), client(3)]),
        ["r2", "r2", "r2"]
    );
    // r1's connections close (the client's FIN counts them closed): it is back.
    held.retain(|(_, p)| p != "r1");
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    drop(held);
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `ha_suspend`: a director checks the real servers only while it holds the VIP. Each
/// director's MISC_CHECK script notes its checks in a file of its own; the backup (b) says
/// its checker starts deactivated and makes no check while a is master; when a stops, b
/// takes the VIP, activates its checker with keepalived's line, and checks.
#[test]
fn ha_suspend_checks_only_on_the_director_holding_the_vip() {
    if skip_unless_root("ha_suspend_checks_only_on_the_director_holding_the_vip") {
        return;
    }
    let mut seed = topology();
    let dir = seed.lab.dir().to_path_buf();
    let config = |who: &str, priority: u8| {
        let script = dir.join(format!("chk-{who}.sh"));
        std::fs::write(
            &script,
            format!("#!/bin/sh\necho check >> {}/checks-{who}\n", dir.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        format!(
            "global_defs {{\n  enable_script_security\n  script_user root\n}}\n\
             vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}\n  }}\n}}\n\
             virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  ha_suspend\n\
             \x20 real_server 192.168.11.113 80 {{\n    MISC_CHECK {{\n      misc_path {}\n    }}\n  }}\n\
             \x20 real_server 192.168.11.114 80 {{\n  }}\n}}\n",
            script.display()
        )
    };
    let checks = |who: &str| {
        std::fs::read_to_string(dir.join(format!("checks-{who}"))).map_or(0, |s| s.lines().count())
    };
    const ACTIVATING: &str = "Activating healthchecker for service [192.168.11.113]:tcp:80 for VS [192.168.11.200]:tcp:80";
    const DEACTIVATING: &str = "Deactivating healthchecker for service [192.168.11.113]:tcp:80 for VS [192.168.11.200]:tcp:80";
    seed.lab
        .start("a", Daemon::Agent, &config("a", 150))
        .unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .start("b", Daemon::Agent, &config("b", 100))
        .unwrap();
    seed.lab.wait_log("b", DEACTIVATING, LONG).unwrap();
    // a holds the VIP: its checker was activated and checks every second.
    seed.lab.wait_log("a", ACTIVATING, LONG).unwrap();
    let base = checks("a");
    poll(LONG, || (checks("a") >= base + 3).then_some(()))
        .unwrap_or_else(|| panic!("a does not check\n{}", seed.lab.logs()));
    assert_eq!(
        checks("b"),
        0,
        "b checked while a held the VIP\n{}",
        seed.lab.log("b")
    );
    assert!(
        !seed.lab.log("b").contains(ACTIVATING),
        "{}",
        seed.lab.log("b")
    );
    // a stops: b holds the VIP, activates its checker and checks.
    seed.lab.stop("a", LONG).unwrap();
    seed.lab.wait_sole_holder("b", VIP, LONG).unwrap();
    seed.lab.wait_log("b", ACTIVATING, LONG).unwrap();
    poll(LONG, || (checks("b") >= 2).then_some(()))
        .unwrap_or_else(|| panic!("b does not check\n{}", seed.lab.log("b")));
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// A director started with VRRP alone runs the program without the balancer (less for the
/// verifier at start-up); a reload that brings the first virtual server puts the balancer's
/// program in its place on the interface, and the virtual server is served.
#[test]
fn a_reload_that_brings_virtual_servers_attaches_the_balancer() {
    if skip_unless_root("a_reload_that_brings_virtual_servers_attaches_the_balancer") {
        return;
    }
    let mut seed = topology();
    let full = director("seed-lvs-dr-master.conf", 150);
    let vrrp_only = full[..full.find("virtual_server ").expect("a virtual server")].to_string();
    seed.lab.start("a", Daemon::Agent, &vrrp_only).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    let log = seed.lab.log("a");
    assert!(log.contains("XDP program vrrp_xdp attached"), "{log}");
    assert!(!log.contains("vrrp_lb_xdp"), "{log}");
    std::fs::write(seed.lab.dir().join("a.conf"), &full).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    seed.lab
        .wait_log("a", "eth0: XDP program vrrp_lb_xdp replaces vrrp_xdp", LONG)
        .unwrap();
    seed.lab.wait_log("a", "Reload finished", LONG).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let pages = seed.pages(&(0..4).map(client).collect::<Vec<_>>());
    assert!(
        pages.iter().all(|p| p == "r1" || p == "r2"),
        "{pages:?}\n{}",
        seed.lab.log("a")
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `lb_algo lblc` and `lblcr` from the real binary: every client's new connection to the VIP
/// goes to the server the VIP (the destination) was given, where wrr would alternate (at
/// weight 100, so that a few connections never make it overloaded).
#[test]
fn lblc_and_lblcr_keep_the_vip_on_its_server() {
    if skip_unless_root("lblc_and_lblcr_keep_the_vip_on_its_server") {
        return;
    }
    let mut seed = topology();
    for (k, algo) in ["lblc", "lblcr"].into_iter().enumerate() {
        let config = format!(
            "{INSTANCE}\
             virtual_server {VIP} 80 {{\n  lb_algo {algo}\n  lb_kind DR\n  protocol TCP\n\
               real_server 192.168.11.113 80 {{\n    weight 100\n  }}\n\
               real_server 192.168.11.114 80 {{\n    weight 100\n  }}\n}}\n"
        );
        if k == 0 {
            seed.lab.start("a", Daemon::Agent, &config).unwrap();
            seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
        } else {
            std::fs::write(seed.lab.dir().join("a.conf"), &config).unwrap();
            seed.lab.signal("a", libc::SIGHUP).unwrap();
        }
        seed.lab
            .wait_log(
                "a",
                &format!("VS [192.168.11.200]:tcp:80 served by XDP (direct routing, {algo}, 2 real servers"),
                LONG,
            )
            .unwrap();
        seed.wait_serving("a", [true, true])
            .unwrap_or_else(|e| panic!("{e}"));
        let pages = seed.pages(&(0..8).map(client).collect::<Vec<_>>());
        assert!(
            pages[0] != "none" && pages.iter().all(|p| *p == pages[0]),
            "{algo}: {pages:?}\n{}",
            seed.lab.log("a")
        );
    }
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `ops` (IPVS's one-packet scheduling) on a UDP virtual server: each datagram of one client
/// socket is scheduled on its own, so rr gives it both real servers; without `ops`
/// its flow keeps one server. The real servers answer from the VIP (DNS over DR).
#[test]
fn ops_schedules_each_datagram_of_a_udp_flow() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if skip_unless_root("ops_schedules_each_datagram_of_a_udp_flow") {
        return;
    }
    let mut seed = topology();
    let vip: Ipv4Addr = VIP.parse().unwrap();
    let responders: Vec<(&str, std::net::UdpSocket)> = ["r1", "r2"]
        .into_iter()
        .map(|name| {
            let socket = seed
                .lab
                .lab
                .host(name)
                .ns
                .enter(move || std::net::UdpSocket::bind((vip, 53)))
                .unwrap()
                .unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            (name, socket)
        })
        .collect();
    let stop = AtomicBool::new(false);
    let config = |ops: &str| {
        format!(
            "{INSTANCE}\
             virtual_server {VIP} 53 {{\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n{ops}\
               real_server 192.168.11.113 53 {{\n  }}\n\
               real_server 192.168.11.114 53 {{\n  }}\n}}\n"
        )
    };
    // rr's position is per CPU, and datagrams arrive on any: with one more query than CPUs,
    // some CPU schedules two in a row, so under ops both servers answer.
    let queries = std::thread::available_parallelism()
        .map_or(8, |n| n.get() + 1)
        .max(6);
    // The queries from one client socket: which real server answered each.
    let answers = |seed: &vrrp_tests::lvs::Seed, port: u16| -> Vec<String> {
        let socket = seed
            .lab
            .lab
            .host("client")
            .ns
            .enter(move || std::net::UdpSocket::bind((client(0), port)))
            .unwrap()
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        (0..queries)
            .map(|_| {
                socket.send_to(b"query", (vip, 53)).unwrap();
                let mut buf = [0u8; 16];
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) if from.ip() == vip => {
                        String::from_utf8_lossy(&buf[..n]).into_owned()
                    }
                    Ok((_, from)) => format!("from {from}"),
                    Err(_) => "none".to_string(),
                }
            })
            .collect()
    };
    while_serving(
        &stop,
        |scope| {
            for (name, socket) in &responders {
                let stop = &stop;
                scope.spawn(move || {
                    let mut buf = [0u8; 512];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((_, from)) = socket.recv_from(&mut buf) {
                            let _ = socket.send_to(name.as_bytes(), from);
                        }
                    }
                });
            }
        },
        || {
            seed.lab.start("a", Daemon::Agent, &config("")).unwrap();
            seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
            seed.wait_serving("a", [true, true])
                .unwrap_or_else(|e| panic!("{e}"));
            let pinned = answers(&seed, 40053);
            assert!(
                pinned[0] != "none" && pinned.iter().all(|a| *a == pinned[0]),
                "without ops one flow keeps its server: {pinned:?}\n{}",
                seed.lab.log("a")
            );
            std::fs::write(seed.lab.dir().join("a.conf"), config("  ops\n")).unwrap();
            seed.lab.signal("a", libc::SIGHUP).unwrap();
            seed.lab
                .wait_log(
                    "a",
                    "VS [192.168.11.200]:udp:53 served by XDP (direct routing, rr, one-packet scheduling, 2 real servers",
                    LONG,
                )
                .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
            seed.wait_serving("a", [true, true])
                .unwrap_or_else(|e| panic!("{e}"));
            let each = answers(&seed, 40054);
            assert!(
                each.iter().any(|a| a == "r1")
                    && each.iter().any(|a| a == "r2")
                    && each.iter().all(|a| a == "r1" || a == "r2"),
                "with ops both servers answer one flow: {each:?}\n{}",
                seed.lab.log("a")
            );
        },
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `lb_kind NAT` (IPVS's masquerading), one-armed: the client is on another subnet, the real
/// servers (no VIP of their own) route it through the VIP. The director's XDP program gives
/// the client's packets the real server's address and the replies the VIP's back: the client
/// gets both servers' pages from the VIP, and the kernel counts the replies it translated.
#[test]
fn nat_serves_a_client_through_the_director_both_ways() {
    if skip_unless_root("nat_serves_a_client_through_the_director_both_ways") {
        return;
    }
    let mut seed = topology();
    let outside = Ipv4Addr::new(10, 99, 0, 1);
    seed.lab
        .lab
        .host("client")
        .ns
        .ip(&["addr", "add", "10.99.0.1/24", "dev", "eth0"])
        .unwrap();
    for r in ["r1", "r2"] {
        let ns = &seed.lab.lab.host(r).ns;
        ns.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"])
            .unwrap();
        ns.ip(&["route", "add", "10.99.0.0/24", "via", VIP])
            .unwrap();
        // Replies cross the director's XDP program.
        complete_checksums(ns, "eth0");
    }
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n{}{}}}\n",
        real("192.168.11.113"),
        real("192.168.11.114")
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log(
            "a",
            "VS [192.168.11.200]:tcp:80 served by XDP (NAT, rr, 2 real servers",
            LONG,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let pages: Vec<String> = (0..4)
        .map(|_| seed.get(outside).unwrap_or_else(|| "none".into()))
        .collect();
    assert!(
        pages.contains(&"r1".to_string()) && pages.contains(&"r2".to_string()),
        "{pages:?}\n{}",
        seed.lab.log("a")
    );
    nat_replies_were_translated(&seed);
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// `vrrp-agent status` (the table) as the agent on `router` answers it.
fn status_table(seed: &vrrp_tests::lvs::Seed, router: &str) -> String {
    let agent_path = agent().to_string_lossy().into_owned();
    seed.lab
        .lab
        .host(router)
        .ns
        .run(&[agent_path.as_str(), "status"])
        .unwrap()
}

/// A raw IPv4 socket of `protocol` in the calling thread's namespace. A raw socket is a
/// datagram socket: std's UdpSocket reads it (recv, with a timeout).
fn raw_socket(protocol: libc::c_int) -> std::net::UdpSocket {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2); the descriptor is owned at once.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol);
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        std::net::UdpSocket::from_raw_fd(fd)
    }
}

/// `lb_kind TUN`: the client's packets reach the real server wrapped in IPIP from the
/// director's address (this kernel has no ipip, fou or gre modules to unwrap them, so r1
/// reads them on raw sockets and, for GUE, a UDP socket), in GUE and GRE too, and a datagram
/// too big for the tunnel, sent with DF, teaches the client the tunnel's MTU through the ICMP
/// the director's XDP program answers with.
#[test]
fn tun_wraps_the_client_s_packets_for_the_real_server() {
    if skip_unless_root("tun_wraps_the_client_s_packets_for_the_real_server") {
        return;
    }
    let mut seed = topology();
    // What r1 receives the tunnels on: IPIP and GRE on raw sockets of their protocols, GUE
    // on its UDP port; each read with a timeout.
    let (ipip, gue, gre) = seed
        .lab
        .lab
        .host("r1")
        .ns
        .enter(|| {
            (
                raw_socket(4),
                std::net::UdpSocket::bind("0.0.0.0:6080").unwrap(),
                raw_socket(47),
            )
        })
        .unwrap();
    for s in [&ipip, &gue, &gre] {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let config = format!(
        "{INSTANCE}\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind TUN\n  protocol TCP\n\
         \x20 real_server 192.168.11.113 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n\
         virtual_server {VIP} 53 {{\n  lb_algo rr\n  lb_kind TUN type ipip\n  protocol UDP\n\
         \x20 real_server 192.168.11.113 53 {{\n  }}\n}}\n\
         virtual_server {VIP} 8080 {{\n  lb_algo rr\n  lb_kind TUN type gue port 6080\n  protocol TCP\n\
         \x20 real_server 192.168.11.113 8080 {{\n  }}\n}}\n\
         virtual_server {VIP} 8081 {{\n  lb_algo rr\n  lb_kind TUN type gre nocsum\n  protocol TCP\n\
         \x20 real_server 192.168.11.113 8081 {{\n  }}\n}}\n"
    );
    // The route to r1 sets an MTU of its own (the kernel's route, not the interface, says
    // what fits).
    seed.lab
        .lab
        .host("a")
        .ns
        .ip(&[
            "route",
            "add",
            "192.168.11.113/32",
            "dev",
            "eth0",
            "mtu",
            "1400",
        ])
        .unwrap();
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
    seed.lab
        .wait_log(
            "a",
            "VS [192.168.11.200]:tcp:80 served by XDP (IPIP tunnel, rr, 1 real servers",
            LONG,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    let r1 = vec![("192.168.11.113".to_string(), true)];
    poll(LONG, || {
        (0..4)
            .all(|vs| seed.serving_of("a", vs) == r1)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("r1 not serving: {}", seed.lab.status("a")));
    // `vrrp-agent status` shows them in its table.
    let table = status_table(&seed, "a");
    for line in [
        "VS [192.168.11.200]:tcp:8080 (rr, while this node holds the VIP): 192.168.11.200:8080",
        "    192.168.11.113:8080 TUN weight 1: alive, in the schedule, MAC ",
    ] {
        assert!(table.contains(line), "{line:?} not in\n{table}");
    }

    // A connection to the VIP: its SYN reaches r1 in the tunnel (no answer comes back).
    let _ = seed.get(client(0));
    let mut buf = [0u8; 2048];
    let (outer, inner) = poll(LONG, || {
        let n = ipip.recv(&mut buf).ok()?;
        let outer = etherparse::Ipv4HeaderSlice::from_slice(&buf[..n])
            .ok()?
            .to_header();
        let inner = etherparse::SlicedPacket::from_ip(&buf[20..n]).ok()?;
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &inner.transport else {
            return None;
        };
        let Some(etherparse::NetSlice::Ipv4(ip)) = &inner.net else {
            return None;
        };
        let ip = ip.header().to_header();
        let inner = (
            Ipv4Addr::from(ip.source),
            Ipv4Addr::from(ip.destination),
            tcp.destination_port(),
            tcp.syn(),
        );
        Some((outer, inner))
    })
    .expect("an IPIP packet at r1");
    assert_eq!(
        (
            Ipv4Addr::from(outer.source),
            Ipv4Addr::from(outer.destination),
            outer.protocol.0
        ),
        (
            Ipv4Addr::new(192, 168, 11, 11),
            Ipv4Addr::new(192, 168, 11, 113),
            4
        )
    );
    assert_eq!(inner, (client(0), VIP.parse().unwrap(), 80, true));

    // GUE and GRE: the same SYN behind their headers.
    let syn_to = |packet: &[u8]| {
        let inner = etherparse::SlicedPacket::from_ip(packet).ok()?;
        let Some(etherparse::TransportSlice::Tcp(tcp)) = &inner.transport else {
            return None;
        };
        Some((tcp.destination_port(), tcp.syn()))
    };
    let _ = seed.get_url(client(2), &format!("http://{VIP}:8080/"));
    let got = poll(LONG, || {
        let n = gue.recv(&mut buf).ok()?;
        Some((buf[..4].to_vec(), syn_to(&buf[4..n])?))
    })
    .expect("a GUE datagram at r1");
    assert_eq!(got, (vec![0, 4, 0, 0], (8080, true)));
    let _ = seed.get_url(client(3), &format!("http://{VIP}:8081/"));
    let got = poll(LONG, || {
        let n = gre.recv(&mut buf).ok()?;
        Some((buf[20..24].to_vec(), syn_to(&buf[24..n])?))
    })
    .expect("a GRE packet at r1");
    assert_eq!(got, (vec![0, 0, 8, 0], (8081, true)));
    for line in [
        "VS [192.168.11.200]:tcp:8080 served by XDP (GUE tunnel, rr, 1 real servers",
        "VS [192.168.11.200]:tcp:8081 served by XDP (GRE tunnel, rr, 1 real servers",
    ] {
        assert!(seed.lab.log("a").contains(line), "{line}");
    }

    // 1500 bytes with DF do not fit the 1400-byte route in a tunnel: the client learns 1380.
    let mtu = seed
        .lab
        .lab
        .host("client")
        .ns
        .enter(|| {
            use std::os::fd::AsRawFd;
            let s = std::net::UdpSocket::bind((client(1), 0)).unwrap();
            let fd = s.as_raw_fd();
            let set = |opt, v: libc::c_int| {
                // SAFETY: v is a live c_int of the size passed.
                let r = unsafe {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        opt,
                        (&v as *const libc::c_int).cast(),
                        4,
                    )
                };
                assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
            };
            set(libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_DO);
            s.connect((VIP, 53)).unwrap();
            // Sent again every half second in case one is lost; the ICMP answer is awaited.
            let mut sent: Option<std::time::Instant> = None;
            poll(LONG, || {
                if sent.is_none_or(|t| t.elapsed() > Duration::from_millis(500)) {
                    let _ = s.send(&[0u8; 1472]);
                    sent = Some(std::time::Instant::now());
                }
                let mut mtu: libc::c_int = 0;
                let mut len = 4 as libc::socklen_t;
                // SAFETY: mtu and len are live and of the sizes passed.
                let r = unsafe {
                    libc::getsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        libc::IP_MTU,
                        (&mut mtu as *mut libc::c_int).cast(),
                        &mut len,
                    )
                };
                (r == 0 && mtu < 1500).then_some(mtu)
            })
        })
        .unwrap();
    assert_eq!(mtu, Some(1380), "{}", seed.lab.status("a"));
    let st = seed.lab.status("a");
    assert!(
        st["xdp"]["counters"]["lb_tun_frag_needed"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{st}"
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// Director a's XDP program translated NAT replies, and no NAT server was said to be on an
/// interface without it.
fn nat_replies_were_translated(seed: &vrrp_tests::lvs::Seed) {
    let st = seed.lab.status("a");
    let replies = st["xdp"]["counters"]["lb_nat_reply"].as_u64().unwrap_or(0);
    assert!(replies > 0, "{st}");
    let log = seed.lab.log("a");
    assert!(!log.contains("where the XDP program does not run"), "{log}");
}

/// NAT, two-armed as in keepalived's NAT setups: real server r3 sits on an inner segment
/// behind the director's eth1, where a second VRRP instance holds its gateway address. The
/// client's packets are redirected from eth0 to eth1 with r3's address, r3's replies from
/// eth1 back to eth0 with the VIP's: the client gets r3's page from the VIP.
#[test]
fn nat_reaches_a_real_server_behind_another_interface() {
    use std::sync::atomic::{AtomicBool, Ordering};
    if skip_unless_root("nat_reaches_a_real_server_behind_another_interface") {
        return;
    }
    let mut seed = topology();
    seed.lab
        .add_interface_on(
            "a",
            "eth1",
            [0x02, 0, 0, 0, 0, 0x1a],
            "10.2.0.1/24",
            "inner",
        )
        .unwrap();
    // r3: only on the inner segment (its LAN port down), its router the inner VIP.
    seed.lab
        .lab
        .add_host("r3", "eth0", [0x02, 0, 0, 0, 0, 0x33], "192.168.11.133/24")
        .unwrap();
    seed.lab
        .add_interface_on(
            "r3",
            "eth1",
            [0x02, 0, 0, 0, 0, 0x34],
            "10.2.0.3/24",
            "inner",
        )
        .unwrap();
    {
        let ns = &seed.lab.lab.host("r3").ns;
        ns.ip(&["link", "set", "eth0", "down"]).unwrap();
        ns.ip(&["route", "add", "default", "via", "10.2.0.254"])
            .unwrap();
        complete_checksums(ns, "eth1");
    }
    let web = seed
        .lab
        .lab
        .host("r3")
        .ns
        .enter(|| std::net::TcpListener::bind("0.0.0.0:80"))
        .unwrap()
        .unwrap();
    web.set_nonblocking(true).unwrap();
    let stop = AtomicBool::new(false);
    while_serving(
        &stop,
        |scope| {
            scope.spawn(|| {
                use std::io::{Read, Write};
                while !stop.load(Ordering::Relaxed) {
                    let Ok((mut conn, _)) = web.accept() else {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    };
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nr3\n");
                }
            });
        },
        || {
            let config = format!(
                "{INSTANCE}\
                 vrrp_instance VI_2 {{\n  interface eth1\n  virtual_router_id 52\n  priority 150\n  advert_int 1\n  virtual_ipaddress {{\n    10.2.0.254/24\n  }}\n}}\n\
                 virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n\
                   real_server 10.2.0.3 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n"
            );
            seed.lab.start("a", Daemon::Agent, &config).unwrap();
            seed.lab.wait_sole_holder("a", VIP, LONG).unwrap();
            poll(LONG, || {
                (seed.serving_of("a", 0) == [("10.2.0.3".to_string(), true)]).then_some(())
            })
            .unwrap_or_else(|| panic!("{}\n{}", seed.lab.status("a"), seed.lab.log("a")));
            let page = poll(LONG, || seed.get(client(0)));
            assert_eq!(page.as_deref(), Some("r3"), "{}", seed.lab.log("a"));
            nat_replies_were_translated(&seed);
        },
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// keepalived's mail alerts for the checkers (`notification_email` and `smtp_server` set,
/// no `smtp_alert` anywhere: a real server's alerts are on by keepalived's default, a
/// virtual server's need its own `smtp_alert`): r2's nginx stops, its TCP_CHECK mails that
/// it is down and the virtual server that it lost quorum; r2 comes back, both mail again; a
/// reload that drops r1 mails that it was removed; under `omega`, the agent's stop mails r2's
/// shutdown before it exits.
#[test]
fn checkers_mail_their_alerts() {
    use vrrp_tests::smtp::SmtpServer;
    if skip_unless_root("checkers_mail_their_alerts") {
        return;
    }
    let mut seed = topology();
    let smtp = SmtpServer::start(&seed.lab, "a", 2525);
    let config = |reals: &[&str]| {
        let reals: String = reals
            .iter()
            .map(|addr| {
                format!("  real_server {addr} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n      retry 0\n    }}\n  }}\n")
            })
            .collect();
        format!(
            "global_defs {{\n  router_id lab\n  notification_email {{\n    ops@lab\n  }}\n  notification_email_from lvs@lab\n  smtp_server 127.0.0.1 2525\n}}\n\
             {INSTANCE}\
             virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  quorum 2\n  smtp_alert\n  omega\n{reals}}}\n"
        )
    };
    let both = ["192.168.11.113", "192.168.11.114"];
    seed.lab.start("a", Daemon::Agent, &config(&both)).unwrap();
    seed.wait_serving("a", [true, true])
        .unwrap_or_else(|e| panic!("{e}"));
    let mails_with = |want: &[(&str, &str)]| {
        poll(LONG, || {
            let mails = smtp.mails();
            want.iter()
                .all(|(s, b)| mails.iter().any(|m| m.0 == *s && m.1 == *b))
                .then_some(())
        })
        .unwrap_or_else(|| panic!("{want:?} not in {:?}\n{}", smtp.mails(), seed.lab.log("a")))
    };
    seed.stop_nginx("r2");
    mails_with(&[
        (
            "[lab] Realserver [192.168.11.114]:tcp:80 of virtual server [192.168.11.200]:tcp:80 - DOWN",
            "=> TCP CHECK failed on service <=",
        ),
        (
            "[lab] Virtualserver [192.168.11.200]:tcp:80 - DOWN",
            "=> Lost quorum 2+0=2 <= 1 <=",
        ),
    ]);
    seed.start_nginx("r2");
    mails_with(&[
        (
            "[lab] Realserver [192.168.11.114]:tcp:80 of virtual server [192.168.11.200]:tcp:80 - UP",
            "=> TCP CHECK succeed on service <=",
        ),
        (
            "[lab] Virtualserver [192.168.11.200]:tcp:80 - UP",
            "=> Gained quorum 2+0=2 <= 2 <=",
        ),
    ]);
    assert!(
        !smtp.subjects().iter().any(|s| s.contains("192.168.11.113")),
        "r1 never changed: {:?}",
        smtp.subjects()
    );
    std::fs::write(seed.lab.dir().join("a.conf"), config(&both[1..])).unwrap();
    seed.lab.signal("a", libc::SIGHUP).unwrap();
    mails_with(&[(
        "[lab] Realserver [192.168.11.113]:tcp:80 of virtual server [192.168.11.200]:tcp:80 - DOWN",
        "=> Removing <=",
    )]);
    // Under omega, stopping mails each live server's shutdown, before the agent exits.
    seed.lab.stop("a", LONG).unwrap();
    assert!(
        smtp.mails().iter().any(|m| m
            == &(
                "[lab] Realserver [192.168.11.114]:tcp:80 of virtual server [192.168.11.200]:tcp:80 - DOWN"
                    .to_string(),
                "=> Shutting down <=".to_string()
            )),
        "{:?}",
        smtp.mails()
    );
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}

/// An IPv6 virtual server, by direct routing as seed 003's: the VIP 2001:db8:11::200 held by
/// a VRRPv3 instance over IPv6, the real servers holding it on their loopback (IPv6 answers
/// neighbour solicitations only for an interface's own addresses, so they need no sysctl),
/// r1 checked by HTTP_GET and r2 by PING_CHECK (ICMPv6), both `alpha` (down until their
/// first success). Clients get both pages from the VIP by rr; nginx stopping on r1 takes it
/// out with keepalived's lines, everyone then gets r2.
#[test]
fn an_ipv6_virtual_server_is_balanced_by_direct_routing() {
    if skip_unless_root("an_ipv6_virtual_server_is_balanced_by_direct_routing") {
        return;
    }
    let mut seed = ipv6_topology();
    let addr = |host: &str, cidr: &str, dev: &str| add6(&seed, host, cidr, dev);
    addr("r1", &format!("{VIP6}/128"), "lo");
    addr("r2", &format!("{VIP6}/128"), "lo");
    let clients: Vec<String> = (0..4).map(|k| format!("2001:db8:11::10{k}")).collect();
    for c in &clients {
        addr("client", &format!("{c}/64"), "eth0");
    }
    let config = format!(
        "{INSTANCE6}\
         virtual_server {VIP6} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server 2001:db8:11::113 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n      }}\n\
         \x20     connect_timeout 1\n      retry 1\n      delay_before_retry 1\n      alpha\n    }}\n  }}\n\
         \x20 real_server 2001:db8:11::114 80 {{\n    PING_CHECK {{\n      connect_timeout 1\n      alpha\n    }}\n  }}\n}}\n"
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP6, LONG).unwrap();
    seed.lab
        .wait_log("a", &format!("VS [{VIP6}]:tcp:80 served by XDP"), LONG)
        .unwrap();
    // As keepalived adds it: a /128 VIP deprecated (preferred_lft 0), so the director's own
    // connections — its checks of r1 and r2 — keep 2001:db8:11::11 as their source (from
    // the VIP, which the real servers hold too, their answers would never come back).
    let shown = seed
        .lab
        .lab
        .host("a")
        .ns
        .run(&["ip", "-6", "addr", "show", "dev", "eth0"])
        .unwrap();
    let vip_line = shown.lines().find(|l| l.contains(VIP6)).unwrap_or_default();
    assert!(vip_line.contains("deprecated"), "{shown}");
    let want = |r1: bool, r2: bool| {
        vec![
            ("2001:db8:11::113".to_string(), r1),
            ("2001:db8:11::114".to_string(), r2),
        ]
    };
    let wait_serving = |r1: bool, r2: bool| {
        poll(LONG, || (seed.serving("a") == want(r1, r2)).then_some(())).unwrap_or_else(|| {
            panic!(
                "a serves {:?}\n{}\n{}",
                seed.serving("a"),
                seed.lab.status("a"),
                seed.lab.logs()
            )
        })
    };
    // Both checks succeeded (alpha: neither was up before).
    wait_serving(true, true);
    let get = |src: &str| get6(&seed, src);
    let pages: Vec<String> = clients.iter().map(|c| get(c)).collect();
    assert!(
        pages.contains(&"r1".to_string()) && pages.contains(&"r2".to_string()),
        "{pages:?}\n{}\n{}",
        seed.lab.status("a"),
        seed.lab.logs()
    );
    let st = seed.lab.status("a");
    assert!(
        st["xdp"]["counters"]["lb_forwarded"].as_u64().unwrap_or(0) >= 4,
        "{st}"
    );
    assert_eq!(
        st["virtual_servers"][0]["address_traffic"][0]["address"],
        format!("[{VIP6}]:80"),
        "{st}"
    );
    let table = status_table(&seed, "a");
    assert!(
        table.contains("[2001:db8:11::113]:80 DR weight 1: alive, in the schedule"),
        "{table}"
    );

    // nginx on r1 stops: its HTTP_GET takes it out, everyone gets r2.
    seed.stop_nginx("r1");
    seed.lab
        .wait_log(
            "a",
            &format!("Removing service [2001:db8:11::113]:tcp:80 from VS [{VIP6}]:tcp:80"),
            LONG,
        )
        .unwrap();
    wait_serving(false, true);
    let pages: Vec<String> = clients.iter().map(|c| get(c)).collect();
    assert_eq!(pages, vec!["r2"; 4], "{}", seed.lab.logs());
    seed.stop_nginx("r2");
}

const VIP6: &str = "2001:db8:11::200";

/// The VRRPv3 instance of the IPv6 tests' director, holding [`VIP6`].
const INSTANCE6: &str = "global_defs {\n  vrrp_version 3\n}\nvrrp_instance VI_6 {\n  interface eth0\n  virtual_router_id 52\n  priority 150\n  advert_int 1\n  virtual_ipaddress {\n    2001:db8:11::200\n  }\n}\n";

/// Seed 003's lab with IPv6 on its LAN: a at 2001:db8:11::11, r1 ::113, r2 ::114.
fn ipv6_topology() -> vrrp_tests::lvs::Seed {
    assert!(INSTANCE6.contains(VIP6), "INSTANCE6 holds VIP6");
    let seed = topology();
    add6(&seed, "a", "2001:db8:11::11/64", "eth0");
    add6(&seed, "r1", "2001:db8:11::113/64", "eth0");
    add6(&seed, "r2", "2001:db8:11::114/64", "eth0");
    seed
}

/// An IPv6 address on `host`'s `dev`, usable at once (no duplicate address detection).
fn add6(seed: &vrrp_tests::lvs::Seed, host: &str, cidr: &str, dev: &str) {
    seed.lab
        .lab
        .host(host)
        .ns
        .ip(&["addr", "add", cidr, "dev", dev, "nodad"])
        .unwrap();
}

/// The page the client gets from [`VIP6`] on a new connection from `src` ("none" if none).
fn get6(seed: &vrrp_tests::lvs::Seed, src: &str) -> String {
    seed.get_url(src, &format!("http://[{VIP6}]/"))
        .unwrap_or_else(|| "none".to_string())
}

/// `ns` computes its own checksums (a veth leaves them to be completed later, and a frame
/// the director's XDP program sends on loses that mark), as a NIC on a wire would.
fn complete_checksums(ns: &vrrp_tests::netns::Netns, dev: &str) {
    let out = ns.output(&["ethtool", "-K", dev, "tx", "off"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// IPv6 NAT (keepalived's default method), one-armed: the client is on another prefix
/// (2001:db8:99::/64), the real servers (no VIP of their own) route it through the VIP. The
/// director's `vrrp_lb_nat6` gives the client's packets a real server's address, and its
/// `vrrp_lb_v6` gives the replies the VIP's back: the client gets both pages from the VIP.
#[test]
fn ipv6_nat_serves_a_client_through_the_director_both_ways() {
    if skip_unless_root("ipv6_nat_serves_a_client_through_the_director_both_ways") {
        return;
    }
    let mut seed = ipv6_topology();
    add6(&seed, "client", "2001:db8:99::1/64", "eth0");
    let client = &seed.lab.lab.host("client").ns;
    client
        .ip(&["-6", "route", "add", "2001:db8:11::/64", "dev", "eth0"])
        .unwrap();
    for r in ["r1", "r2"] {
        let ns = &seed.lab.lab.host(r).ns;
        ns.ip(&["-6", "route", "add", "2001:db8:99::/64", "via", VIP6])
            .unwrap();
        // Replies cross the director's XDP program.
        complete_checksums(ns, "eth0");
    }
    let real = |addr: &str| {
        format!(
            "  real_server {addr} 80 {{\n    TCP_CHECK {{\n      connect_timeout 1\n      alpha\n    }}\n  }}\n"
        )
    };
    let config = format!(
        "{INSTANCE6}\
         virtual_server {VIP6} 80 {{\n  delay_loop 1\n  lb_algo rr\n  protocol TCP\n{}{}}}\n",
        real("2001:db8:11::113"),
        real("2001:db8:11::114")
    );
    seed.lab.start("a", Daemon::Agent, &config).unwrap();
    seed.lab.wait_sole_holder("a", VIP6, LONG).unwrap();
    seed.lab
        .wait_log(
            "a",
            &format!("VS [{VIP6}]:tcp:80 served by XDP (NAT, rr, 2 real servers"),
            LONG,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", seed.lab.log("a")));
    let want = vec![
        ("2001:db8:11::113".to_string(), true),
        ("2001:db8:11::114".to_string(), true),
    ];
    poll(LONG, || (seed.serving("a") == want).then_some(()))
        .unwrap_or_else(|| panic!("a serves {:?}\n{}", seed.serving("a"), seed.lab.logs()));
    let pages: Vec<String> = (0..4).map(|_| get6(&seed, "2001:db8:99::1")).collect();
    assert!(
        pages.contains(&"r1".to_string()) && pages.contains(&"r2".to_string()),
        "{pages:?}\n{}\n{}",
        seed.lab.status("a"),
        seed.lab.log("a")
    );
    nat_replies_were_translated(&seed);
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");
}
