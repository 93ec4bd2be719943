//! Operations end to end: `vrrp-agent status` (table, JSON, no agent, non-root refused), the
//! SIGUSR2 statistics file in keepalived's format, and the Prometheus endpoint, whose XDP
//! counters move when crafted adverts hit the LAN.

use std::{net::IpAddr, path::Path, time::Duration};

use vrrp_tests::{
    capture::Capture,
    frames::{Advert, Wire},
    poll,
    routers::{A_MAC, CLIENT_MAC, Daemon, VrrpLab},
    skip_unless_root,
};

const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(20);

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_vrrp-agent")
}

fn conf(priority: u8) -> String {
    format!(
        "vrrp_script chk {{\n  script \"/bin/true\"\n  interval 1\n  weight 2\n}}\n\
         vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n\
         authentication {{\n    auth_type PASS\n    auth_pass 1111\n  }}\n  track_script {{\n    chk\n  }}\n\
         virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn status_stats_dump_and_metrics_show_what_runs() {
    if skip_unless_root("status_stats_dump_and_metrics_show_what_runs") {
        return;
    }
    let mut lab = VrrpLab::pair(Path::new(agent()), true).expect("lab");
    let dir = lab.dir().to_path_buf();
    let (a_tmp, b_tmp) = (dir.join("a-tmp"), dir.join("b-tmp"));
    std::fs::create_dir_all(&a_tmp).unwrap();
    std::fs::create_dir_all(&b_tmp).unwrap();
    lab.start_with(
        "a",
        Daemon::Agent,
        &conf(150),
        &["--metrics-listen", "127.0.0.1:9650"],
        &[("TMPDIR", a_tmp.to_str().unwrap())],
    )
    .unwrap();
    lab.start_with(
        "b",
        Daemon::Agent,
        // keepalived's `data_use_instance` with an `instance` name: keepalived.NAME.data.
        &format!(
            "instance lab_b\nglobal_defs {{\n  data_use_instance\n}}\n{}",
            conf(100)
        ),
        &[],
        &[("TMPDIR", b_tmp.to_str().unwrap())],
    )
    .unwrap();
    lab.wait_sole_holder("a", VIP, LONG).unwrap();
    let ns = |h: &str| &lab.lab.host(h).ns;
    ns("a").ip(&["link", "set", "lo", "up"]).unwrap();

    // status: the table and the JSON, on each router, for its own agent.
    let json = |h: &str| -> serde_json::Value {
        let out = ns(h).output(&[agent(), "status", "--json"]).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // The script's first result lifts a to 152 within a second or so.
    let a = poll(LONG, || {
        let v = json("a");
        (v["instances"][0]["effective_priority"] == 152).then_some(v)
    })
    .expect("a's effective priority 152");
    let vi = &a["instances"][0];
    assert_eq!(vi["state"], "MASTER");
    assert_eq!(vi["priority"], 150);
    assert_eq!(vi["vips"][0], VIP);
    assert_eq!(vi["trackers"][0]["name"], "chk");
    assert_eq!(vi["trackers"][0]["status"], "ok");
    // (Started together on a busy machine, b may have been master for a moment: it names
    // the master from a's next advert.)
    let b = poll(LONG, || {
        let v = json("b");
        (v["instances"][0]["master"] == "192.168.11.11").then_some(v)
    })
    .unwrap_or_else(|| panic!("b names no master: {}", json("b")));
    assert_eq!(b["instances"][0]["state"], "BACKUP");
    let table = ns("a").run(&[agent(), "status"]).unwrap();
    assert!(
        table.contains("VI_1") && table.contains("MASTER") && table.contains("script chk: ok"),
        "{table}"
    );
    // No agent in the client's namespace: a clear message, failure status.
    let out = ns("client").output(&[agent(), "status"]).unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no vrrp-agent is running in this network namespace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Root only.
    let out = ns("a")
        .output(&[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            agent(),
            "status",
        ])
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // SIGUSR2: keepalived's statistics file, in the agent's $TMPDIR.
    lab.signal("a", libc::SIGUSR2).unwrap();
    let stats = poll(LONG, || {
        std::fs::read_to_string(a_tmp.join("keepalived.stats")).ok()
    })
    .expect("keepalived.stats written");
    assert!(
        stats.starts_with("VRRP Instance: VI_1\n  Advertisements:\n    Received: "),
        "{stats}"
    );
    assert!(stats.contains("  Became master: 1\n"), "{stats}");
    let sent: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("    Sent: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent > 0, "{stats}");

    // SIGUSR1: keepalived's data dump; the JSON signal (--signum=JSON): keepalived.json.
    lab.signal("a", libc::SIGUSR1).unwrap();
    let data = poll(LONG, || {
        std::fs::read_to_string(a_tmp.join("keepalived.data")).ok()
    })
    .expect("keepalived.data written");
    for line in [
        "------< VRRP Topology >------",
        " VRRP Instance = VI_1",
        "   State = MASTER",
        "   Virtual Router ID = 51",
        "   Priority = 150",
        "   Effective priority = 152",
        "   Authentication type = SIMPLE_PASSWORD",
        "     192.168.11.200/24 dev eth0 scope global",
        "------< Global definitions >------",
        " VRRP default protocol version = 2",
        " VRRP IPv4 mcast group = 224.0.0.18",
        "------< VRRP Scripts >------",
        " VRRP Script = chk",
        "   Command = /bin/true",
        "   Status = GOOD",
        "     VI_1",
        "------< Interfaces >------",
        " Name = eth0",
        "   IPv4 address = 192.168.11.11",
        "   State = UP, RUNNING",
    ] {
        assert!(data.lines().any(|l| l == line), "{line:?} missing:\n{data}");
    }
    lab.signal("b", libc::SIGUSR1).unwrap();
    let b_data = poll(LONG, || {
        std::fs::read_to_string(b_tmp.join("keepalived.lab_b.data")).ok()
    })
    .expect("keepalived.lab_b.data written");
    assert!(b_data.contains("   State = BACKUP"), "{b_data}");
    assert!(!b_tmp.join("keepalived.data").exists());
    let json_sig: i32 = String::from_utf8_lossy(
        &std::process::Command::new(agent())
            .arg("--signum=JSON")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    lab.signal("a", json_sig).unwrap();
    let dump: serde_json::Value = poll(LONG, || {
        std::fs::read(a_tmp.join("keepalived.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    })
    .expect("keepalived.json written");
    assert_eq!(dump[0]["data"]["iname"], "VI_1");
    assert_eq!(dump[0]["data"]["state"], 2, "keepalived's MASTER");
    assert_eq!(dump[0]["data"]["effective_priority"], 152);
    assert_eq!(dump[0]["data"]["track_script"][0], "chk");
    assert!(dump[0]["stats"]["advert_sent"].as_u64().unwrap() > 0);
    // STATS_CLEAR: written, then zeroed (the next dump starts again from 0).
    let clear: i32 = String::from_utf8_lossy(
        &std::process::Command::new(agent())
            .arg("--signum=STATS_CLEAR")
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .parse()
    .unwrap();
    std::fs::remove_file(a_tmp.join("keepalived.stats")).unwrap();
    lab.signal("a", clear).unwrap();
    poll(LONG, || {
        std::fs::read_to_string(a_tmp.join("keepalived.stats")).ok()
    })
    .unwrap();
    std::fs::remove_file(a_tmp.join("keepalived.stats")).unwrap();
    lab.signal("a", libc::SIGUSR2).unwrap();
    let again = poll(LONG, || {
        std::fs::read_to_string(a_tmp.join("keepalived.stats")).ok()
    })
    .unwrap();
    assert!(again.contains("  Became master: 0\n"), "{again}");

    // Metrics: the instance, and the kernel's counters moving under crafted adverts.
    let scrape = || {
        ns("a")
            .run(&["curl", "-s", "-m", "5", "http://127.0.0.1:9650/metrics"])
            .unwrap()
    };
    let before = scrape();
    assert!(before.contains("# EOF"), "{before}");
    let id = "instance=\"VI_1\",interface=\"eth0\",vrid=\"51\"";
    assert_eq!(
        metric(
            &before,
            &format!("vrrp_agent_instance_state{{{id},state=\"master\"}}")
        ),
        Some(1.0),
        "{before}"
    );
    assert_eq!(
        metric(
            &before,
            &format!("vrrp_agent_instance_effective_priority{{{id}}}")
        ),
        Some(152.0)
    );
    let ttl_key = format!("vrrp_agent_xdp_vrrp_packets_total{{{id},verdict=\"ttl\"}}");
    let ttl_before = metric(&before, &ttl_key).unwrap_or(0.0);
    let cap = Capture::open(ns("client"), "eth0").unwrap();
    let wire =
        Wire::vrrp_multicast(CLIENT_MAC, "192.168.11.100".parse().unwrap()).with(|w| w.ttl = 254);
    let vips: Vec<IpAddr> = vec![VIP.parse().unwrap()];
    let frame = wire.vrrp(&Advert::v2_pass(51, 250, &vips, "1111"));
    for _ in 0..50 {
        while cap.send(&frame).is_err() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let after = poll(LONG, || {
        let t = scrape();
        (metric(&t, &ttl_key).unwrap_or(0.0) >= ttl_before + 50.0).then_some(t)
    })
    .unwrap_or_else(|| panic!("the TTL drops did not show:\n{}\n{}", scrape(), lab.logs()));
    assert!(
        metric(&after, "vrrp_agent_xdp_frames_total{counter=\"drop_ttl\"}").unwrap_or(0.0) >= 50.0,
        "{after}"
    );
    // Anything but /metrics is 404.
    let code = ns("a")
        .run(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://127.0.0.1:9650/",
        ])
        .unwrap();
    assert_eq!(code.trim(), "404");
    assert_eq!(
        lab.holders(VIP),
        ["a"],
        "the forged adverts changed nothing"
    );
}

/// systemd `Type=notify`: READY=1 arrives once the agent runs (the XDP program attached, so
/// `status` already shows it), STOPPING=1 when it stops.
#[test]
fn systemd_readiness_follows_the_start_and_the_stop() {
    if skip_unless_root("systemd_readiness_follows_the_start_and_the_stop") {
        return;
    }
    let mut lab = VrrpLab::new(Path::new(agent())).expect("lab");
    lab.add_router("a", "eth0", A_MAC, "192.168.11.11/24")
        .unwrap();
    let sock_path = lab.dir().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(LONG)).unwrap();
    // keepalived's -g (a log file) and -d (the configuration dumped to the log) too.
    let log_file = lab.dir().join("agent-g.log");
    lab.start_with(
        "a",
        Daemon::Agent,
        &conf(150),
        &["-g", log_file.to_str().unwrap(), "-d", "-x"],
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap())],
    )
    .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within the deadline");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.starts_with("READY=1\nMAINPID="), "{msg}");
    let out = lab
        .lab
        .host("a")
        .ns
        .output(&[agent(), "status", "--json"])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["xdp"]["attachments"][0]["interface"], "eth0", "{v}");
    lab.stop("a", LONG).unwrap();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let logged = std::fs::read_to_string(&log_file).unwrap();
    for want in [
        "Starting vrrp-agent",
        ": vrrp_instance VI_1 {",
        "SNMP (-x) is not supported",
        "Stopped vrrp-agent",
    ] {
        assert!(
            logged.contains(want),
            "{want:?} not in the -g file:\n{logged}"
        );
    }
}
