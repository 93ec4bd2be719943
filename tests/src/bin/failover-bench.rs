//! `cargo xtask bench failover`: the outage a client sees when the master fails, side by side
//! for keepalived 2.2.7 pairs, vrrp-agent pairs and mixed pairs, in the same lab and run.
//!
//! Per row: the master (a, priority 150) crashes (link down, then SIGKILL) or stops gracefully
//! (SIGTERM) at a point of its advert cycle (run k of every row at the same point); the backup
//! (b, priority 100) takes over.
//! A client pings the VIP every millisecond and captures the LAN:
//! - outage: the widest gap between answered pings around the fault, less one probe interval;
//! - timer error: the backup's first advert as master, less when the RFC says it is due: the
//!   old master's last advert + the backup's Master_Down_Interval (crash), or its priority-0
//!   advert + Skew_Time (graceful stop);
//! - advert→GARP: the new master's first gratuitous ARP after its first advert (the
//!   transition's own cost; the advert leaves at Master_Down expiry).
//!
//! `RUNS` (default 5) runs per row; `ROWS` filters rows by substring (e.g. `ROWS="v3 10 ms"`);
//! `TIMELINE=1` prints what the client saw around each fault.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use vrrp_tests::{
    chart::{self, Seen},
    median_min_max,
    probe::{Kind, Record},
    routers::{A_MAC, B_MAC, Daemon, VrrpLab, agent_binary},
};

const VIP: &str = "192.168.11.200";
const LONG: Duration = Duration::from_secs(20);
/// Where the chart goes (next to BENCHMARKS.md: the benchmarks run from the workspace root).
const CHART: &str = "BENCHMARKS-failover.png";

#[derive(Clone, Copy)]
struct Interval {
    label: &'static str,
    version: u8,
    /// advert_int as written.
    advert_int: &'static str,
    cs: u32,
}

const INTERVALS: [Interval; 3] = [
    Interval {
        label: "v2 1 s",
        version: 2,
        advert_int: "1",
        cs: 100,
    },
    Interval {
        label: "v3 100 ms",
        version: 3,
        advert_int: "0.1",
        cs: 10,
    },
    Interval {
        label: "v3 10 ms",
        version: 3,
        advert_int: "0.01",
        cs: 1,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Crash,
    Graceful,
}

fn conf(iv: Interval, prio: u8) -> String {
    let auth = if iv.version == 2 {
        "authentication {\n auth_type PASS\n auth_pass 1111\n }"
    } else {
        ""
    };
    format!(
        "global_defs {{\n vrrp_version {}\n}}\nvrrp_instance VI_1 {{\n interface eth0\n virtual_router_id 51\n\
         priority {prio}\n advert_int {}\n {auth}\n virtual_ipaddress {{\n {VIP}/24\n }}\n}}\n",
        iv.version, iv.advert_int
    )
}

/// Skew_Time of the backup (priority 100).
fn skew(iv: Interval) -> Duration {
    if iv.version == 2 {
        Duration::from_micros(156 * 1_000_000 / 256)
    } else {
        Duration::from_micros(156 * u64::from(iv.cs) * 10_000 / 256)
    }
}

/// Master_Down_Interval of the backup (priority 100).
fn master_down(iv: Interval) -> Duration {
    Duration::from_millis(u64::from(iv.cs) * 10) * 3 + skew(iv)
}

struct Sample {
    outage: Duration,
    timer_error: Option<f64>,
    garp_after_advert: Option<Duration>,
}

/// A small deterministic jitter source (no rand dependency): the fault lands at a different
/// point of the advert cycle each run.
fn jitter(run: u32, of: Duration) -> Duration {
    let x = (u64::from(run) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
    of.mul_f64((x % 1000) as f64 / 1000.0)
}

fn analyse(rec: &Record, fault_at: Instant, iv: Interval, fault: Fault) -> Result<Sample> {
    let outage = rec
        .outage(fault_at - Duration::from_millis(100), Instant::now())
        .context("no answers around the fault")?;
    let first_new = rec
        .replies
        .iter()
        .find(|r| r.at >= fault_at && r.mac == B_MAC && matches!(r.kind, Kind::Advert(p) if p > 0))
        .map(|r| r.at);
    let last_old = rec
        .replies
        .iter()
        .filter(|r| r.at < fault_at + Duration::from_millis(1) && r.mac == A_MAC)
        .filter(|r| matches!(r.kind, Kind::Advert(p) if p > 0))
        .map(|r| r.at)
        .next_back();
    let garp = first_new.and_then(|t| {
        rec.replies
            .iter()
            .find(|r| r.at >= t && r.mac == B_MAC && r.kind == Kind::Garp)
            .map(|r| r.at - t)
    });
    let stop_advert = rec
        .replies
        .iter()
        .find(|r| r.at >= fault_at && r.mac == A_MAC && r.kind == Kind::Advert(0))
        .map(|r| r.at);
    let expected = match fault {
        Fault::Crash => last_old.map(|t| t + master_down(iv)),
        Fault::Graceful => stop_advert.map(|t| t + skew(iv)),
    };
    if std::env::var_os("TIMELINE").is_some() {
        // Everything the client saw around the fault, relative to it (debugging aid).
        for r in rec.replies.iter().filter(|r| {
            r.at + Duration::from_millis(50) >= fault_at
                && r.at <= fault_at + Duration::from_millis(200)
        }) {
            let t = if r.at >= fault_at {
                (r.at - fault_at).as_secs_f64()
            } else {
                -(fault_at - r.at).as_secs_f64()
            };
            eprintln!("  {:+9.3} ms {:?} from {:02x}", t * 1e3, r.kind, r.mac[5]);
        }
    }
    let timer_error = match (first_new, expected) {
        (Some(new), Some(expected)) => Some(if new >= expected {
            (new - expected).as_secs_f64()
        } else {
            -(expected - new).as_secs_f64()
        }),
        _ => None,
    };
    Ok(Sample {
        outage,
        timer_error,
        garp_after_advert: garp,
    })
}

/// The chart: 2 ms a column, from 250 ms before the fault to 4.25 s after it (a v2 crash's
/// takeover comes 2.6–3.6 s after the fault).
const SLICE: Duration = Duration::from_millis(2);
const BEFORE: Duration = Duration::from_millis(250);
const CHART_COLUMNS: usize = 2250;

/// The samples of every run, and the chart band of the first if `chart`.
fn one_row(
    lab: &mut VrrpLab,
    iv: Interval,
    master: Daemon,
    backup: Daemon,
    fault: Fault,
    runs: u32,
    chart: bool,
) -> Result<(Vec<Sample>, Option<Vec<Seen>>)> {
    let vip: Ipv4Addr = VIP.parse()?;
    let interval = Duration::from_millis(u64::from(iv.cs) * 10);
    let mut out = Vec::new();
    let mut band = None;
    lab.start("b", backup, &conf(iv, 100))?;
    lab.wait_sole_holder("b", VIP, LONG)?;
    for run in 0..runs {
        lab.start("a", master, &conf(iv, 150))?;
        lab.wait_sole_holder("a", VIP, LONG)?;
        let probe = lab.probe(vip, Duration::from_millis(1), 1000)?;
        // Service seen before the fault; then the fault at the same points of the master's
        // advert cycle for every row (a spread over the cycle, the same spread each row), so
        // rows differ by the implementations, not by where the fault happened to land.
        std::thread::sleep(Duration::from_millis(300));
        let advert = probe
            .next_advert_from(A_MAC, interval * 3)
            .context("the master's adverts are not seen")?;
        std::thread::sleep(
            (advert + jitter(run, interval)).saturating_duration_since(Instant::now()),
        );
        let fault_at = Instant::now();
        match fault {
            Fault::Crash => lab.crash("a")?,
            Fault::Graceful => lab.stop("a", LONG)?,
        }
        lab.wait_sole_holder("b", VIP, LONG)?;
        // Answers after the takeover are part of the record (the charted run: the chart's
        // whole window).
        std::thread::sleep(Duration::from_millis(200) + interval * 2);
        if chart && run == 0 {
            let end = fault_at + SLICE * CHART_COLUMNS as u32;
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
        }
        let rec = probe.stop()?;
        out.push(analyse(&rec, fault_at, iv, fault)?);
        if chart && band.is_none() {
            band = Some(chart::band(
                &rec,
                fault_at - BEFORE,
                SLICE,
                CHART_COLUMNS,
                B_MAC,
            ));
        }
        if fault == Fault::Crash {
            lab.power_on("a")?;
        }
    }
    lab.stop("b", LONG)?;
    Ok((out, band))
}

fn fmt(v: Option<(f64, f64, f64)>, scale: f64, digits: usize) -> (String, String) {
    match v {
        Some((m, lo, hi)) => (
            format!("{:.*}", digits, m * scale),
            format!("{:.*}–{:.*}", digits, lo * scale, digits, hi * scale),
        ),
        None => ("–".into(), "–".into()),
    }
}

fn main() -> Result<()> {
    let runs: u32 = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let filter = std::env::var("ROWS").unwrap_or_default();
    let agent = agent_binary();
    if !agent.exists() {
        bail!(
            "{} not built (cargo xtask bench builds it)",
            agent.display()
        );
    }
    let pairs = [
        (
            "keepalived → keepalived",
            Daemon::Keepalived,
            Daemon::Keepalived,
        ),
        ("vrrp-agent → vrrp-agent", Daemon::Agent, Daemon::Agent),
        ("vrrp-agent → keepalived", Daemon::Agent, Daemon::Keepalived),
        ("keepalived → vrrp-agent", Daemon::Keepalived, Daemon::Agent),
    ];
    let mut rows = Vec::new();
    let mut bands: Vec<(String, Vec<Seen>)> = Vec::new();
    for fault in [Fault::Crash, Fault::Graceful] {
        for iv in INTERVALS {
            let mut keepalived_median = None;
            for (label, master, backup) in pairs {
                let fault_label = if fault == Fault::Crash {
                    "crash"
                } else {
                    "graceful stop"
                };
                let name = format!("{fault_label}, {}, {label}", iv.label);
                if !name.contains(&filter) {
                    continue;
                }
                eprintln!("failover-bench: {name} ({runs} runs)");
                let mut lab = VrrpLab::pair(&agent, true)?;
                let chart = iv.version == 2 && master == backup;
                let (samples, band) = one_row(&mut lab, iv, master, backup, fault, runs, chart)
                    .with_context(|| format!("{name}\n{}", lab.logs()))?;
                if let Some(band) = band {
                    bands.push((format!("{fault_label}, {}", master.name()), band));
                }
                let outage =
                    median_min_max(samples.iter().map(|s| s.outage.as_secs_f64()).collect());
                if master == Daemon::Keepalived && backup == Daemon::Keepalived {
                    keepalived_median = outage.map(|o| o.0);
                }
                let ratio = match (outage, keepalived_median) {
                    (Some(o), Some(k)) if k > 0.0 => format!("{:.2}", o.0 / k),
                    _ => "–".into(),
                };
                let timer = median_min_max(samples.iter().filter_map(|s| s.timer_error).collect());
                let garp = median_min_max(
                    samples
                        .iter()
                        .filter_map(|s| s.garp_after_advert.map(|g| g.as_secs_f64()))
                        .collect(),
                );
                let (om, or) = fmt(outage, 1e3, 1);
                let (tm, tr) = fmt(timer, 1e3, 2);
                let (gm, gr) = fmt(garp, 1e3, 2);
                rows.push(format!(
                    "| {fault_label} | {} | {label} | {om} | {or} | {ratio} | {tm} ({tr}) | {gm} ({gr}) |",
                    iv.label
                ));
            }
        }
    }
    println!("## Failover (`cargo xtask bench failover`)\n");
    println!("{}\n", vrrp_tests::machine());
    println!(
        "Two routers and a client in network namespaces on one bridge; the master (priority 150) \
         fails (crash: link down, then SIGKILL; graceful: SIGTERM) at a point of its advert \
         cycle, run k of every row at the same point (spread over the cycle), and the backup \
         (priority 100) takes over. \
         The client pings the VIP every 1 ms; outage = widest gap between answered pings, less \
         the probe interval. {runs} runs per row, median and min–max. Ratio: this row's median \
         over the keepalived pair's in the same run. Timer error: the backup's first advert as \
         master minus when it is due (crash: the master's last advert + Master_Down_Interval; \
         graceful stop: its priority-0 advert + Skew_Time). \
         Advert→GARP: from the new master's first advert (sent at Master_Down expiry) to its \
         first gratuitous ARP, as the client's capture saw them.\n"
    );
    println!(
        "| fault | adverts | master → backup | outage median ms | min–max ms | ratio to keepalived | timer error ms (min–max) | advert→GARP ms (min–max) |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nTargets (VRRP engine issue): ratio ≤ 1.0 on every row; Master_Down expiry → first GARP \
         ≤ 0.3 ms median."
    );
    if !bands.is_empty() {
        let path = std::path::Path::new(CHART);
        let columns: Vec<Vec<Seen>> = bands.iter().map(|(_, b)| b.clone()).collect();
        let tick = (Duration::from_millis(500).as_nanos() / SLICE.as_nanos()) as usize;
        let fault_col = (BEFORE.as_nanos() / SLICE.as_nanos()) as usize;
        chart::write_png(path, &columns, tick, fault_col)?;
        let order: Vec<String> = bands.iter().map(|(l, _)| l.clone()).collect();
        println!(
            "\n### The client's view (v2 1 s, first run of each row)\n\n![client view of a \
             failover]({CHART})\n\nBands from the top: {}. Time runs left to right, {} ms a \
             column, from {} ms before the fault (the black line) to {:.2} s after it; a tick \
             under each band every 500 ms. Blue: every ping answered, by the old master; green: \
             every ping answered, by the new master; red: a ping lost in that column (a column the \
             1 ms prober skipped carries on the one before).",
            order.join("; "),
            SLICE.as_millis(),
            BEFORE.as_millis(),
            (SLICE * CHART_COLUMNS as u32 - BEFORE).as_secs_f64()
        );
    }
    Ok(())
}
