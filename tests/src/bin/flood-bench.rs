//! `cargo xtask bench flood`: forged adverts from a third host, side by side for keepalived
//! 2.2.7, vrrp-agent with its XDP filter, and vrrp-agent without XDP (`--no-xdp`: the
//! userspace path), in the same lab and run.
//!
//! Routers a (priority 150, master) and b (100) run VRID 51 with 1 s adverts (VRRPv2 with
//! `auth_type PASS`, or VRRPv3), `allowed_peers` naming each other (vrrp-agent's extension;
//! keepalived skips the line). Host x floods one forged kind at a time — another VRID, a wrong
//! password (v2), TTL 254, a bad checksum (these with b's address spoofed as their source, so
//! the allowlist does not stop them), a valid advert at priority 200 (from x's own address) —
//! as fast as x can (a sending thread per core, bursts of 64 per system call), then at 1 kpps,
//! `FLOOD_SECONDS` (default 10) each. The client pings the VIP every 10 ms meanwhile (x's
//! frames do not reach it: a bridge rule keeps them off its port, so its capture sees only
//! the routers).
//!
//! Per run: what x sent, state transitions on either router, the client's lost pings, the
//! largest gap between a's adverts at the client (in advert intervals; the window's edges
//! count), a's daemon CPU (% of one core; keepalived: both its processes; XDP runs in the
//! kernel's softirq, not in the agent) and what a's kernel dropped, per reason (XDP counters).
//! `ROWS` filters runs by substring of "variant version kind rate".

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use vrrp_tests::{
    CpuTicks, Sender,
    frames::{Advert, Checksum, Wire},
    probe::Kind,
    routers::{A_MAC, Daemon, VrrpLab, agent_binary},
};

const VIP: &str = "192.168.11.200";
const X_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x66];
const X_IP: &str = "192.168.11.66";
const B_IP: &str = "192.168.11.12";
const LONG: Duration = Duration::from_secs(30);
const PASS: &str = "1111";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Keepalived,
    Agent,
    AgentNoXdp,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Keepalived => "keepalived",
            Variant::Agent => "vrrp-agent",
            Variant::AgentNoXdp => "vrrp-agent --no-xdp",
        }
    }

    fn daemon(self) -> Daemon {
        match self {
            Variant::Keepalived => Daemon::Keepalived,
            _ => Daemon::Agent,
        }
    }
}

fn conf(version: u8, priority: u8, peer: &str) -> String {
    let (global, auth) = if version == 3 {
        ("global_defs {\n  vrrp_version 3\n}\n", String::new())
    } else {
        (
            "",
            format!("  authentication {{\n    auth_type PASS\n    auth_pass {PASS}\n  }}\n"),
        )
    };
    format!(
        "{global}vrrp_instance VI_1 {{\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  allowed_peers {peer}\n{auth}  virtual_ipaddress {{\n    {VIP}/24\n  }}\n}}\n"
    )
}

/// The forged kinds for `version`: (label, frame). The invalid ones carry b's address as
/// their source (x spoofs the peer), so a's peer allowlist lets them through to the checks
/// behind it; the takeover advert carries x's own (a host that is not a peer).
fn kinds(version: u8) -> Vec<(&'static str, Vec<u8>)> {
    let w = Wire::vrrp_multicast(X_MAC, B_IP.parse().unwrap());
    let x = Wire::vrrp_multicast(X_MAC, X_IP.parse().unwrap());
    let vips: Vec<IpAddr> = vec![VIP.parse().unwrap()];
    let advert = |vrid: u8, prio: u8| {
        if version == 3 {
            Advert::v3(vrid, prio, &vips)
        } else {
            Advert::v2_pass(vrid, prio, &vips, PASS)
        }
    };
    let mut v = vec![("other VRID", w.vrrp(&advert(99, 100)))];
    if version == 2 {
        v.push((
            "same VRID, wrong PASS",
            w.vrrp(&Advert::v2_pass(51, 100, &vips, "wrong")),
        ));
    }
    v.push((
        "same VRID, TTL 254",
        w.clone().with(|w| w.ttl = 254).vrrp(&advert(51, 100)),
    ));
    v.push((
        "same VRID, bad checksum",
        w.vrrp(&advert(51, 100).with(|a| a.checksum = Checksum::Corrupt)),
    ));
    v.push(("same VRID, valid, priority 200", x.vrrp(&advert(51, 200))));
    v
}

/// Sends `frame` from x for `secs`: as fast as it can (`pps` None: one sending thread per
/// core, bursts of 64 frames per system call) or at `pps`. Returns how many left.
fn flood(lab: &VrrpLab, frame: &[u8], pps: Option<u32>, secs: Duration) -> Result<u64> {
    let ns = &lab.lab.host("x").ns;
    let t0 = Instant::now();
    match pps {
        None => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let senders = (0..threads)
                .map(|_| Sender::open(ns, "eth0"))
                .collect::<Result<Vec<_>>>()?;
            let total = std::thread::scope(|s| {
                let running: Vec<_> = senders
                    .iter()
                    .map(|tx| {
                        s.spawn(move || {
                            let mut sent = 0u64;
                            while t0.elapsed() < secs {
                                sent += tx.burst(frame, 64) as u64;
                            }
                            sent
                        })
                    })
                    .collect();
                running.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            Ok(total)
        }
        Some(pps) => {
            let tx = Sender::open(ns, "eth0")?;
            let mut sent = 0u64;
            let step = Duration::from_secs(1) / pps;
            let mut due = t0;
            while due < t0 + secs {
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w);
                }
                sent += tx.burst(frame, 1) as u64;
                due += step;
            }
            Ok(sent)
        }
    }
}

fn transitions(lab: &VrrpLab) -> usize {
    ["a", "b"]
        .iter()
        .map(|r| {
            let l = lab.log(r);
            l.matches("Entering MASTER STATE").count()
                + l.matches("Entering BACKUP STATE").count()
                + l.matches("Entering FAULT STATE").count()
        })
        .sum()
}

/// What a's kernel dropped so far, per reason (its `drop_*` XDP counters).
fn kernel_drops(lab: &VrrpLab) -> Option<std::collections::BTreeMap<String, u64>> {
    let st = lab.status("a");
    let c = st["xdp"]["counters"].as_object()?;
    Some(
        c.iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("drop_")?.to_string(), v.as_u64()?)))
            .collect(),
    )
}

/// `after - before` per reason, the reasons that moved: `ttl 1,234,567; vrid 12`.
fn drops_between(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> String {
    let moved: Vec<String> = after
        .iter()
        .map(|(k, v)| (k, v - before.get(k).copied().unwrap_or(0).min(*v)))
        .filter(|(_, d)| *d > 0)
        .map(|(k, d)| format!("{k} {d}"))
        .collect();
    if moved.is_empty() {
        "0".to_string()
    } else {
        moved.join("; ")
    }
}

struct Row {
    version: u8,
    kind: &'static str,
    rate: &'static str,
    variant: Variant,
    kpps: f64,
    transitions: usize,
    lost: usize,
    probes: usize,
    gap: f64,
    cpu: f64,
    /// Per reason, as `drops_between` says.
    drops: Option<String>,
}

fn lab(variant: Variant, version: u8) -> Result<VrrpLab> {
    let mut lab = VrrpLab::pair(&agent_binary(), true)?;
    lab.lab
        .add_host("x", "eth0", X_MAC, &format!("{X_IP}/24"))?;
    // x's frames stay off the client's port: its capture sees the routers only.
    let (px, pc) = (
        lab.lab.port_of("x", "eth0"),
        lab.lab.port_of("client", "eth0"),
    );
    let rules = format!(
        "table bridge bench {{\n  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"{px}\" oifname \"{pc}\" drop\n  }}\n}}\n"
    );
    let file = lab.dir().join("bench.nft");
    std::fs::write(&file, rules)?;
    let out = lab
        .lab
        .lan()
        .output(&["nft", "-f", file.to_str().unwrap()])?;
    anyhow::ensure!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The bridge's ports toward the routers queue (a FIFO of 10 000 frames): a veth without
    // a qdisc drops whatever its peer's ring (256 frames) cannot take at once, the client's
    // pings included, before any program on the router sees them; with a queue, the kernel
    // holds frames back while the ring is full, as a NIC's larger ring would take a burst.
    for router in ["a", "b"] {
        let port = lab.lab.port_of(router, "eth0").to_string();
        let out = lab.lab.lan().output(&[
            "tc", "qdisc", "replace", "dev", &port, "root", "pfifo", "limit", "10000",
        ])?;
        anyhow::ensure!(
            out.status.success(),
            "tc: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let args: &[&str] = if variant == Variant::AgentNoXdp {
        &["--no-xdp"]
    } else {
        &[]
    };
    let d = variant.daemon();
    lab.start_with("a", d, &conf(version, 150, B_IP), args, &[])?;
    lab.start_with("b", d, &conf(version, 100, "192.168.11.11"), args, &[])?;
    Ok(lab)
}

fn run_one(
    lab: &VrrpLab,
    variant: Variant,
    version: u8,
    (kind, frame): &(&'static str, Vec<u8>),
    rate: (&'static str, Option<u32>),
    secs: Duration,
) -> Result<Row> {
    // Settled: a alone holds the VIP (after a run that moved it, a preempts back).
    lab.wait_sole_holder("a", VIP, LONG)?;
    std::thread::sleep(Duration::from_secs(1));
    let pids = lab.daemon_pids("a")?;
    let before = transitions(lab);
    let drops_before = kernel_drops(lab);
    let probe = lab.probe(VIP.parse()?, Duration::from_millis(10), 1000)?;
    let t0 = Instant::now();
    let cpu0 = CpuTicks::of(&pids)?.own();
    let sent = flood(lab, frame, rate.1, secs)?;
    let cpu1 = CpuTicks::of(&pids)?.own();
    let window = t0.elapsed();
    // The probe goes on a little, so that the last pings' replies (behind whatever the flood
    // left queued) are not counted lost; only pings sent during the flood count.
    std::thread::sleep(Duration::from_millis(500));
    let rec = probe.stop()?;
    // Transitions the routers log shortly after.
    std::thread::sleep(Duration::from_millis(1500));
    let t1 = t0 + window;
    let mut adverts: Vec<Instant> = vec![t0];
    adverts.extend(
        rec.replies
            .iter()
            .filter(|r| matches!(r.kind, Kind::Advert(_)) && r.mac == A_MAC && r.at <= t1)
            .map(|r| r.at),
    );
    adverts.push(t1);
    let gap = adverts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .fold(0.0, f64::max);
    let answered: std::collections::HashSet<u16> = rec.echoes().map(|r| r.seq).collect();
    let during = rec.sent.iter().filter(|t| **t <= t1).count();
    let lost = (0..during)
        .filter(|seq| !answered.contains(&(*seq as u16)))
        .count();
    // SAFETY: sysconf is always safe.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(Row {
        version,
        kind,
        rate: rate.0,
        variant,
        kpps: sent as f64 / window.as_secs_f64() / 1e3,
        transitions: transitions(lab) - before,
        lost,
        probes: during,
        gap,
        cpu: (cpu1 - cpu0) as f64 / hz / window.as_secs_f64() * 100.0,
        drops: drops_before.and_then(|b| Some(drops_between(&b, &kernel_drops(lab)?))),
    })
}

fn main() -> Result<()> {
    let secs = Duration::from_secs(
        std::env::var("FLOOD_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    let filter = std::env::var("ROWS").unwrap_or_default();
    let variants = [Variant::Keepalived, Variant::Agent, Variant::AgentNoXdp];
    let rates: [(&str, Option<u32>); 2] = [("max", None), ("1 kpps", Some(1000))];
    let mut rows = Vec::new();
    for version in [2u8, 3] {
        for variant in variants {
            let wanted: Vec<_> = kinds(version)
                .into_iter()
                .flat_map(|k| rates.iter().map(move |r| (k.clone(), *r)))
                .filter(|((kind, _), (rate, _))| {
                    format!("{} v{version} {kind} {rate}", variant.label()).contains(&filter)
                })
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let lab = lab(variant, version)
                .with_context(|| format!("{} v{version} lab", variant.label()))?;
            for (kind, rate) in &wanted {
                let row =
                    run_one(&lab, variant, version, kind, *rate, secs).with_context(|| {
                        format!("{} v{version} {} {}", variant.label(), kind.0, rate.0)
                    })?;
                eprintln!(
                    "flood-bench: {} v{version} {} {}: {:.0} kpps, {} transitions, {}/{} pings lost, gap {:.2} intervals, CPU {:.1} %, dropped in kernel: {}",
                    variant.label(),
                    row.kind,
                    row.rate,
                    row.kpps,
                    row.transitions,
                    row.lost,
                    row.probes,
                    row.gap,
                    row.cpu,
                    row.drops.as_deref().unwrap_or("-")
                );
                rows.push(row);
            }
        }
    }
    println!("## Flood\n");
    println!("{}\n", vrrp_tests::machine());
    println!(
        "Forged adverts from a third host while a (priority 150) is master and b (100) backup, \
         VRID 51, 1 s adverts, `allowed_peers` naming the two routers (vrrp-agent's extension; \
         keepalived skips it). The invalid kinds carry b's address as their source (spoofed), \
         so the allowlist does not stop them; the takeover advert comes from x's own address. \
         The bridge's ports toward the routers queue (a FIFO of 10 000 frames: a veth without \
         one drops what its peer's 256-frame ring cannot take, the client's pings included). \
         One run of {} s per row, as fast as x sends (a thread per core, sendmmsg bursts of 64: \
         \"max\") and at 1 kpps. transitions: state changes on either router; pings: \
         the client's echoes to the VIP every 10 ms that went unanswered (those sent during the flood, their replies waited for 0.5 s more); advert gap: the \
         largest gap between a's adverts at the client, in advert intervals (1.0 = on time); \
         CPU: a's daemon, % of one core (keepalived: both processes; XDP runs in the kernel's \
         softirq and is not in it); dropped in kernel: what a's XDP drop counters gained, per reason. CPU ratio: this \
         row over keepalived's for the same flood.\n",
        secs.as_secs()
    );
    for version in [2u8, 3] {
        let vrows: Vec<&Row> = rows.iter().filter(|r| r.version == version).collect();
        if vrows.is_empty() {
            continue;
        }
        println!("### VRRPv{version}\n");
        println!(
            "| forged kind | rate | daemon | sent kpps | transitions | pings lost | advert gap | CPU % | CPU ratio | dropped in kernel |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for r in &vrows {
            let keepalived = vrows
                .iter()
                .find(|k| k.variant == Variant::Keepalived && k.kind == r.kind && k.rate == r.rate);
            let ratio = keepalived
                .filter(|k| k.cpu > 0.0)
                .map_or("-".to_string(), |k| format!("{:.2}", r.cpu / k.cpu));
            println!(
                "| {} | {} | {} | {:.0} | {} | {}/{} | {:.2} | {:.1} | {ratio} | {} |",
                r.kind,
                r.rate,
                r.variant.label(),
                r.kpps,
                r.transitions,
                r.lost,
                r.probes,
                r.gap,
                r.cpu,
                r.drops.as_deref().unwrap_or("-")
            );
        }
        println!();
    }
    Ok(())
}
