//! `cargo xtask bench idle`: what a master with many instances costs at rest, keepalived 2.2.7
//! and vrrp-agent side by side in the same run.
//!
//! Router a alone runs `INSTANCES` (default 500) VRRPv2 instances at advert_int 1, half on
//! eth0 and half on eth1 (VRIDs 1–250 on each; the two interfaces on separate segments), one
//! /32 VIP each, so it is master of all and sends that many adverts a second. Once every VIP is up and the start-up GARP rounds are
//! over: the daemon's CPU (% of one core; keepalived: both processes) over `WINDOWS` (default
//! 3) windows of 10 s, and its resident memory (VmRSS, summed over its processes) at the end.

use std::time::{Duration, Instant};

use anyhow::Result;
use vrrp_tests::{
    CpuTicks, median_min_max, poll,
    routers::{A_MAC, Daemon, VrrpLab, agent_binary},
};

const WINDOW: Duration = Duration::from_secs(10);

fn conf(instances: usize) -> String {
    let mut c = String::new();
    for k in 0..instances {
        let (iface, n) = (k % 2, k / 2);
        c.push_str(&format!(
            "vrrp_instance VI_{k} {{\n  interface eth{iface}\n  virtual_router_id {}\n  priority 150\n  advert_int 1\n  virtual_ipaddress {{\n    10.{iface}.{}.{}/32\n  }}\n}}\n",
            n + 1,
            n / 250,
            n % 250 + 1
        ));
    }
    c
}

/// Time on a CPU in ns (the scheduler's own account, exact), summed over every thread of
/// the processes.
fn cpu_ns(pids: &[u32]) -> u64 {
    pids.iter()
        .flat_map(|p| {
            std::fs::read_dir(format!("/proc/{p}/task"))
                .into_iter()
                .flatten()
        })
        .filter_map(|t| {
            let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
            s.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum()
}

/// VmRSS in MB, summed over the processes.
fn rss_mb(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .sum::<f64>()
        / 1024.0
}

/// What one daemon cost: CPU % per window, its userspace part over all windows, RSS in MB.
struct Cost {
    cpu: Vec<f64>,
    user: f64,
    rss: f64,
}

fn measure(daemon: Daemon, instances: usize, windows: usize) -> Result<Cost> {
    let mut lab = VrrpLab::new(&agent_binary())?;
    lab.add_router("a", "eth0", A_MAC, "192.168.11.11/24")?;
    // eth1 on a segment of its own: the same VRIDs on both interfaces would be one virtual
    // router claimed twice if they shared a LAN (and each advert would come back in on the
    // other interface, a cost no real router with this config has).
    lab.add_interface_on(
        "a",
        "eth1",
        [0x02, 0, 0, 0, 1, 0x0a],
        "192.168.12.11/24",
        "br1",
    )?;
    lab.start("a", daemon, &conf(instances))?;
    let ns = &lab.lab.host("a").ns;
    let vips = || {
        ns.run(&["ip", "-o", "-4", "addr", "show"])
            .map(|o| o.lines().filter(|l| l.contains(" 10.")).count())
            .unwrap_or(0)
    };
    poll(Duration::from_secs(120), || {
        (vips() >= instances).then_some(())
    })
    .ok_or_else(|| {
        anyhow::anyhow!(
            "{}: only {} of {instances} VIPs up\n{}",
            daemon.name(),
            vips(),
            lab.log("a")
        )
    })?;
    // Past the second GARP round (garp_master_delay 5 s).
    std::thread::sleep(Duration::from_secs(7));
    let pids = lab.daemon_pids("a")?;
    // SAFETY: sysconf is always safe.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (start, user0) = (Instant::now(), CpuTicks::of(&pids)?.user);
    let mut cpu = Vec::new();
    for _ in 0..windows {
        let (t0, c0) = (Instant::now(), cpu_ns(&pids));
        std::thread::sleep(WINDOW);
        let pct = (cpu_ns(&pids) - c0) as f64 / 1e9 / t0.elapsed().as_secs_f64() * 100.0;
        eprintln!(
            "idle-bench: {} {instances} instances: CPU {pct:.3} %",
            daemon.name()
        );
        cpu.push(pct);
    }
    let user =
        (CpuTicks::of(&pids)?.user - user0) as f64 / hz / start.elapsed().as_secs_f64() * 100.0;
    let rss = rss_mb(&pids);
    eprintln!(
        "idle-bench: {} user CPU {user:.2} %, RSS {rss:.1} MB",
        daemon.name()
    );
    Ok(Cost { cpu, user, rss })
}

fn main() -> Result<()> {
    let env = |n: &str, d: usize| {
        std::env::var(n)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (instances, windows) = (env("INSTANCES", 500), env("WINDOWS", 3));
    let daemons = [Daemon::Keepalived, Daemon::Agent];
    let mut results = Vec::new();
    for d in daemons {
        results.push(measure(d, instances, windows)?);
    }
    println!("## Idle\n");
    println!("{}\n", vrrp_tests::machine());
    println!(
        "One router, master of {instances} VRRPv2 instances at advert_int 1 (half on each of two \
         interfaces, each on a LAN segment of its own, one /32 VIP each): {instances} adverts a second and nothing else happening. \
         CPU: the daemon's, % of one core (keepalived: both its processes), {windows} windows of \
         {} s, median and min–max (the scheduler's account of every thread); user: its userspace part over \
         all windows (in clock ticks of 10 ms, so coarse). The rest is system time, mostly \
         sending the adverts: in this lab that includes the far end of each veth (the bridge, \
         its netfilter hooks, the pass-through XDP programs of the other ports), which the \
         kernel runs in the sender's context; a real NIC's transmit costs far less. RSS: \
         resident memory at the end, summed over the daemon's processes. Ratios: this row \
         over keepalived's.\n",
        WINDOW.as_secs()
    );
    println!("| daemon | CPU % | min–max | user CPU % | CPU ratio | RSS MB | RSS ratio |");
    println!("|---|---|---|---|---|---|---|");
    let med = |v: &[f64]| median_min_max(v.to_vec()).expect("a window");
    let (k_cpu, k_rss) = (med(&results[0].cpu).0, results[0].rss);
    for (d, c) in daemons.iter().zip(&results) {
        let (m, lo, hi) = med(&c.cpu);
        println!(
            "| {} | {m:.2} | {lo:.2}–{hi:.2} | {:.2} | {:.2} | {:.1} | {:.2} |",
            d.name(),
            c.user,
            m / k_cpu,
            c.rss,
            c.rss / k_rss
        );
    }
    Ok(())
}
