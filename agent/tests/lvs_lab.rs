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
    poll,
    routers::{Daemon, VrrpLab},
    skip_unless_root,
};

const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(30);
const R1_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x13];
const R2_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x14];

fn agent() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vrrp-agent"))
}

/// The seed's director configuration (tests/configs, from ../shared/configs), adapted.
fn director(file: &str, priority: u8) -> String {
    let text = std::fs::read_to_string(format!(
        "{}/../tests/configs/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let adapted = text
        .replace("interface ens33", "interface eth0")
        .replace("delay_loop 6", "delay_loop 1")
        .replace("delay_before_retry 3", "delay_before_retry 1")
        .replace("connect_timeout 3", "connect_timeout 1")
        .replace("nb_get_retry 3", "nb_get_retry 1");
    let adapted = with_priority(&adapted, priority);
    assert!(adapted.contains("lb_kind DR") && adapted.contains("HTTP_GET"));
    adapted
}

fn with_priority(text: &str, priority: u8) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("priority ") {
                format!("    priority {priority}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

struct Seed {
    lab: VrrpLab,
}

impl Seed {
    fn nginx_conf(&self, r: &str) -> std::path::PathBuf {
        self.lab.dir().join(format!("nginx-{r}.conf"))
    }

    fn start_nginx(&self, r: &str) {
        let ns = &self.lab.lab.host(r).ns;
        let out = ns
            .output(&["nginx", "-c", self.nginx_conf(r).to_str().unwrap()])
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop_nginx(&self, r: &str) {
        let ns = &self.lab.lab.host(r).ns;
        ns.output(&[
            "nginx",
            "-c",
            self.nginx_conf(r).to_str().unwrap(),
            "-s",
            "stop",
        ])
        .unwrap();
        // Gone when its pid file is.
        let pid = self.lab.dir().join(format!("nginx-{r}.pid"));
        poll(LONG, || (!pid.exists()).then_some(())).expect("nginx stops");
    }

    /// The page the client gets from `src` on a new connection, if any.
    fn get(&self, src: Ipv4Addr) -> Option<String> {
        let out = self
            .lab
            .lab
            .host("client")
            .ns
            .output(&[
                "curl",
                "-s",
                "-m",
                "2",
                "--interface",
                &src.to_string(),
                &format!("http://{VIP}/"),
            ])
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Which real servers answered `clients` (one request each), in order.
    fn pages(&self, clients: &[Ipv4Addr]) -> Vec<String> {
        clients
            .iter()
            .map(|c| self.get(*c).unwrap_or_else(|| "none".into()))
            .collect()
    }

    /// The master's view of its real servers: (address, serving).
    fn serving(&self, director: &str) -> Vec<(String, bool)> {
        let st = self.lab.status(director);
        st["virtual_servers"][0]["real_servers"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        (
                            r["address"].as_str().unwrap_or("").to_string(),
                            r["serving"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn client(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 11, 100 + k)
}

/// Directors a and b, the client (eight addresses, complete checksums), real servers r1
/// and r2 (nginx with their own page, the VIP on lo, no ARP for it), nginx started.
fn topology() -> Seed {
    let mut lab = VrrpLab::pair(agent(), true).expect("lab");
    // The real servers: nginx with their own page, the VIP on lo, no ARP for it.
    for (r, mac, addr) in [
        ("r1", R1_MAC, "192.168.11.113/24"),
        ("r2", R2_MAC, "192.168.11.114/24"),
    ] {
        // Hosts, not routers: they hold the VIP on lo, and the routers' VIP checks must not
        // count them.
        lab.lab.add_host(r, "eth0", mac, addr).unwrap();
        let ns = &lab.lab.host(r).ns;
        ns.ip(&["link", "set", "lo", "up"]).unwrap();
        ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"])
            .unwrap();
        ns.output(&[
            "sh",
            "-c",
            "for i in all lo eth0; do echo 1 > /proc/sys/net/ipv4/conf/$i/arp_ignore; echo 2 > /proc/sys/net/ipv4/conf/$i/arp_announce; done",
        ])
        .unwrap();
        let d = lab.dir().display().to_string();
        std::fs::write(
            lab.dir().join(format!("nginx-{r}.conf")),
            format!(
                "user root;\nworker_processes 1;\npid {d}/nginx-{r}.pid;\nerror_log {d}/nginx-{r}.err;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body-{r};\n  server {{\n    listen 80;\n    location / {{ return 200 \"{r}\\n\"; }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
    }
    // A veth leaves the checksums of what it sends to be completed later, and a frame the
    // XDP program sends on (XDP_TX) loses that mark: the client computes its own, as a NIC
    // on a real wire would have.
    let out = lab
        .lab
        .host("client")
        .ns
        .output(&["ethtool", "-K", "eth0", "tx", "off"])
        .unwrap();
    assert!(
        out.status.success(),
        "ethtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // More client addresses: persistence_timeout keeps each client on its server.
    for k in 1..8 {
        lab.lab
            .host("client")
            .ns
            .ip(&["addr", "add", &format!("{}/24", client(k)), "dev", "eth0"])
            .unwrap();
    }
    let seed = Seed { lab };
    seed.start_nginx("r1");
    seed.start_nginx("r2");
    seed
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
    let both = vec![
        ("192.168.11.113".to_string(), true),
        ("192.168.11.114".to_string(), true),
    ];
    poll(LONG, || (seed.serving("a") == both).then_some(()))
        .unwrap_or_else(|| panic!("{:?}\n{}", seed.serving("a"), seed.lab.logs()));

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
        "global_defs {{\n  enable_script_security\n  script_user root\n}}\n\
         vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority 150\n  advert_int 1\n  virtual_ipaddress {{\n    {VIP}\n  }}\n}}\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo wrr\n  lb_kind DR\n  protocol TCP\n\
         \x20 real_server 192.168.11.113 80 {{\n    weight 1\n    notify_up \"{note} up r1\"\n    notify_down \"{note} down r1\"\n\
         \x20   MISC_CHECK {{\n      misc_path {chk}\n      misc_dynamic\n    }}\n  }}\n\
         \x20 real_server 192.168.11.114 80 {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}\n}}\n"
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
    let both = vec![
        ("192.168.11.113".to_string(), true),
        ("192.168.11.114".to_string(), true),
    ];
    poll(LONG, || (seed.serving("a") == both).then_some(()))
        .unwrap_or_else(|| panic!("{:?}\n{}", seed.lab.logs(), seed.lab.status("a")));

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
    seed.stop_nginx("r2");
    seed.lab
        .wait_log(
            "a",
            "TCP_CHECK on service [192.168.11.114]:tcp:80 failed after 1 retries.",
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
    assert_eq!(seed.pages(&[client(2); 4]), vec!["r1"; 4]);
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{}", seed.lab.log("a"));
    }
    seed.stop_nginx("r1");
}
