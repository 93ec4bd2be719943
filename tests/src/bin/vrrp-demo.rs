//! `cargo xtask demo`: two vrrp-agents run the seed hot-standby pair
//! (shared/configs/hot-standby-{master,backup}.conf, unchanged) on a namespace LAN while a
//! client pings the VIP every millisecond. The demo shows the election, floods the LAN with
//! forged adverts (dropped in the kernel, nobody flaps), crashes the master, reports who holds
//! the VIP and the outage the client saw, shows the kernel counters, brings the master back
//! (preempt) and tears everything down.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_tests::{
    Capture,
    frames::{Advert, Checksum, Wire},
    lab::mac_string,
    routers::{A_MAC, B_MAC, CLIENT_MAC, Daemon, VrrpLab, agent_binary},
};

const VIP: &str = "192.168.11.200";
const FORGED_PER_KIND: usize = 2000;

fn seed(name: &str) -> Result<String> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/configs")
        .join(name);
    std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

/// The log lines of `router` that a user watches, from line `from` on.
fn show_log(lab: &VrrpLab, router: &str, from: usize, keep: &[&str]) -> usize {
    let log = lab.log(router);
    let lines: Vec<&str> = log.lines().collect();
    for l in lines.iter().skip(from) {
        if keep.iter().any(|k| l.contains(k)) {
            println!("  {router}| {l}");
        }
    }
    lines.len()
}

const WATCH: &[&str] = &[
    "Entering",
    "timeout",
    "received",
    "Received",
    "XDP",
    "priority 0",
];

fn main() -> Result<()> {
    let agent = agent_binary();
    println!("== vrrp-agent demo: the seed hot-standby pair, a client, a crash ==");
    println!("agent: {}", agent.display());
    let master_conf = seed("hot-standby-master.conf")?;
    let backup_conf = seed("hot-standby-backup.conf")?;
    let mut lab = VrrpLab::new(&agent)?;
    lab.add_router("a", "ens33", A_MAC, "192.168.11.11/24")?;
    lab.add_router("b", "ens33", B_MAC, "192.168.11.12/24")?;
    lab.add_client(
        "client",
        "ens33",
        CLIENT_MAC,
        Ipv4Addr::new(192, 168, 11, 100),
        24,
    )?;
    println!(
        "LAN: a 192.168.11.11 ({}), b 192.168.11.12 ({}), client 192.168.11.100",
        mac_string(A_MAC),
        mac_string(B_MAC)
    );
    println!("a runs hot-standby-master.conf (priority 100), b hot-standby-backup.conf (90)");

    println!("\n-- election --");
    lab.start("a", Daemon::Agent, &master_conf)?;
    lab.start("b", Daemon::Agent, &backup_conf)?;
    let took = lab.wait_sole_holder("a", VIP, Duration::from_secs(15))?;
    let (mut seen_a, mut seen_b) = (show_log(&lab, "a", 0, WATCH), show_log(&lab, "b", 0, WATCH));
    println!(
        "a holds {VIP} (and .201, .202) after {:.1} s",
        took.as_secs_f64()
    );

    let vip: Ipv4Addr = VIP.parse()?;
    let probe = lab.probe(vip, Duration::from_millis(1), 50)?;
    println!("client: pinging {VIP} every 1 ms from now on");
    // Half a second of normal service recorded before anything happens.
    std::thread::sleep(Duration::from_millis(500));

    println!(
        "\n-- forged adverts: {FORGED_PER_KIND} each of wrong password, TTL 254, bad checksum --"
    );
    let client = lab.lab.host("client");
    let cap = Capture::open(&client.ns, "ens33")?;
    let wire = Wire::vrrp_multicast(CLIENT_MAC, "192.168.11.100".parse()?);
    let vips: Vec<IpAddr> = ["192.168.11.200", "192.168.11.201", "192.168.11.202"]
        .iter()
        .map(|v| v.parse().expect("literal"))
        .collect();
    // Priority 250: if any of these reached the election, b would preempt a at once.
    let good = Advert::v2_pass(51, 250, &vips, "1111");
    let frames = [
        wire.vrrp(&Advert::v2_pass(51, 250, &vips, "guess")),
        wire.clone().with(|w| w.ttl = 254).vrrp(&good),
        wire.vrrp(&good.clone().with(|a| a.checksum = Checksum::Corrupt)),
    ];
    let started = Instant::now();
    for f in &frames {
        for _ in 0..FORGED_PER_KIND {
            // A full transmit queue (ENOBUFS) only slows the flood down.
            while cap.send(f).is_err() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    drop(cap);
    println!(
        "sent {} forged adverts in {:.0} ms",
        frames.len() * FORGED_PER_KIND,
        started.elapsed().as_secs_f64() * 1e3
    );
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "after 2 s: holders of {VIP}: {:?} (unchanged: the kernel dropped every forged advert)",
        lab.holders(VIP)
    );

    println!("\n-- crash: a is killed (SIGKILL) and its link goes down --");
    let crash_at = Instant::now();
    lab.crash("a")?;
    let took = lab.wait_sole_holder("b", VIP, Duration::from_secs(15))?;
    seen_b = show_log(&lab, "b", seen_b, WATCH);
    // Keep probing a moment so the client's view after the takeover is recorded.
    std::thread::sleep(Duration::from_millis(500));
    let rec = probe.stop()?;
    let outage = rec
        .outage(crash_at - Duration::from_millis(200), Instant::now())
        .context("the client got no answers around the crash")?;
    let last = rec
        .last_echo_mac()
        .map(|m| lab.router_of(m).unwrap_or(mac_string(m)));
    println!("b holds {VIP} {:.2} s after the crash", took.as_secs_f64());
    println!(
        "client: outage {:.1} ms (b waits Master_Down_Interval = 3 × 1 s + (256−90)/256 s = 3.648 s \
         from the last advert it heard); now answered by {}",
        outage.as_secs_f64() * 1e3,
        last.as_deref().unwrap_or("nobody")
    );

    println!("\n-- kernel counters on b (SIGUSR2) --");
    lab.signal("b", libc::SIGUSR2)?;
    lab.wait_log("b", "XDP counters", Duration::from_secs(5))?;
    seen_b = show_log(&lab, "b", seen_b, &["XDP"]);

    println!("\n-- a comes back and preempts (priority 100 > 90) --");
    lab.power_on("a")?;
    let probe = lab.probe(vip, Duration::from_millis(1), 50)?;
    let back_at = Instant::now();
    lab.start("a", Daemon::Agent, &master_conf)?;
    let took = lab.wait_sole_holder("a", VIP, Duration::from_secs(15))?;
    std::thread::sleep(Duration::from_millis(500));
    let rec = probe.stop()?;
    seen_a = show_log(&lab, "a", seen_a, WATCH);
    seen_b = show_log(&lab, "b", seen_b, WATCH);
    let outage = rec.outage(back_at, Instant::now());
    println!(
        "a holds {VIP} again after {:.1} s; client outage during the hand-back: {}",
        took.as_secs_f64(),
        outage.map_or("no answers".into(), |o| format!(
            "{:.1} ms",
            o.as_secs_f64() * 1e3
        ))
    );

    println!(
        "\n-- graceful stop of both (SIGTERM: XDP detached, priority 0, VIPs released once a successor advertises) --"
    );
    lab.stop("a", Duration::from_secs(10))?;
    lab.stop("b", Duration::from_secs(10))?;
    show_log(&lab, "a", seen_a, &["XDP", "priority 0", "Stopp"]);
    show_log(&lab, "b", seen_b, &["XDP", "Entering", "Stopp"]);
    drop(lab);
    println!("\nlab removed (namespaces, processes, files).");
    Ok(())
}
