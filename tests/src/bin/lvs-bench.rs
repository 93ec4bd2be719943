//! `cargo xtask bench lvs`: the XDP direct-routing balancer.
//!
//! 1. ns per packet through BPF_PROG_TEST_RUN (the program alone): a flow's packet forwarded
//!    to its real server, a new flow scheduled, traffic for a backup director and for other
//!    ports passed; a NAT flow's packet and its reply, a TUN flow's packet wrapped in IPIP.
//! 2. Seed 003 in namespaces (`vrrp_tests::lvs`): wrk from the client, 2 threads and 32
//!    connections for `LVS_SECONDS` (default 10) each run: requests/s and p99 latency
//!    through the VIP balanced by the master director's XDP program, against nginx on the
//!    same director as seed 002's reverse proxy (upstream with ip_hash, proxy_pass) to the
//!    same two real servers.
//!    The same through NAT (`lb_kind NAT`, one-armed: the client on another subnet, the real
//!    servers routing it through the VIP).
//! 3. The master director crashed (link down, SIGKILL) 3 s into a wrk run through the VIP:
//!    requests that failed (socket errors and timeouts as wrk counts them), for the seed's
//!    `rr` with persistence and for `sh` (the same Maglev table on both directors, so the
//!    backup sends each flow where the master did).
//!
//! This kernel has no IPVS, so keepalived has no data path to compare with here: the ratio
//! is to the nginx proxy.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use vrrp_agent::{
    lvs::{model::Algo, sched},
    xdp::{Program, XdpProgram},
};
use vrrp_tests::{
    lvs::{self, Seed, VIP, director},
    median_min_max,
    routers::{Daemon, agent_binary},
};

const REPEAT: u32 = 200_000;
const RUNS: usize = 9;
const SINGLE_RUNS: usize = 20_001;
const LONG: Duration = Duration::from_secs(30);

// ===== test-run =====

fn frame(sport: u16, dport: u16) -> Vec<u8> {
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], [2, 0, 0, 0, 0, 0x11])
        .ipv4([192, 0, 2, 99], [192, 0, 2, 200], 64)
        .tcp(sport, dport, 1, 64240)
        .syn()
        .write(&mut out, b"")
        .expect("frame");
    out
}

fn test_run_rows() -> Result<Vec<(String, f64, f64, f64)>> {
    use agent_common::{
        LB_REAL_UP, LB_SVC_FOLLOW_VIP, Real, Service, ServiceKey, VipKey, VipValue,
    };
    let mut xdp = XdpProgram::load()?;
    let lo = vrrp_agent::xdp::ifindex("lo")?;
    for i in 0..2u32 {
        let real = Real {
            mac: [2, 0, 0, 0, 0, 0x13 + i as u8],
            flags: LB_REAL_UP,
            addr: [0; 4],
            weight: 1,
            conns: 0,
            ifindex: 0,
            out_mac: [0; 6],
            port: 0,
            ..Default::default()
        };
        xdp.maps.set_real(i, real)?;
    }
    let ring = sched::ring(Algo::Rr, &[(0, 1), (1, 1)]);
    xdp.maps.set_ring(0, &ring)?;
    let key = ServiceKey {
        addr: [192, 0, 2, 200],
        port: 80,
        proto: 6,
        _pad: 0,
    };
    let service = Service {
        id: 0,
        flags: LB_SVC_FOLLOW_VIP,
        ring_base: 0,
        ring_len: ring.len() as u32,
        persist_ns: 0,
        persist_mask: [255; 4],
        persist_mask6: [255; 16],
        entry: 0,
    };
    xdp.maps.set_service(key, service)?;
    let vip = VipKey::v4(lo, 0, [192, 0, 2, 200]);
    let arm = |xdp: &mut XdpProgram, on: bool| -> Result<()> {
        if on {
            let value = VipValue {
                mac: [2, 0, 0, 0, 0, 0x11],
                _pad: [0; 2],
            };
            xdp.maps.arm_vip(vip, value)?;
        } else {
            xdp.maps.disarm_vip(&vip)?;
        }
        Ok(())
    };
    arm(&mut xdp, true)?;
    let repeated = |xdp: &XdpProgram, program, frame: &[u8]| -> Result<(f64, f64, f64)> {
        let mut v = Vec::new();
        for _ in 0..RUNS {
            v.push(
                xdp.test_run_repeat(program, frame, REPEAT)?
                    .duration
                    .as_nanos() as f64,
            );
        }
        median_min_max(v).context("no samples")
    };
    let mut rows = Vec::new();
    let mut push = |name: &str, s: (f64, f64, f64)| rows.push((name.to_string(), s.0, s.1, s.2));
    push(
        "trivial pass program (floor)",
        repeated(&xdp, Program::Pass, &frame(40000, 80))?,
    );
    push(
        "TCP to another port → PASS",
        repeated(&xdp, Program::VrrpLb, &frame(40000, 22))?,
    );
    push(
        "a flow's packet → its real server (XDP_TX)",
        repeated(&xdp, Program::VrrpLb, &frame(40000, 80))?,
    );
    // IPv6: the same servers behind [2001:db8::200]:80 (vrrp_lb_v6, tail-called).
    let vip6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0];
    xdp.maps.set_service(
        agent_common::ServiceKey6 {
            addr: vip6,
            port: 80,
            proto: 6,
            _pad: 0,
        },
        Service {
            id: 3,
            entry: 3,
            ..service
        },
    )?;
    xdp.maps.arm_vip(
        VipKey::v6(lo, 0, vip6),
        VipValue {
            mac: [2, 0, 0, 0, 0, 0x11],
            _pad: [0; 2],
        },
    )?;
    let mut frame6 = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0xc1], [2, 0, 0, 0, 0, 0x11])
        .ipv6(
            [0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x99],
            vip6,
            64,
        )
        .tcp(40000, 80, 1, 64240)
        .syn()
        .write(&mut frame6, b"")
        .expect("frame");
    push(
        "an IPv6 flow's packet → its real server (tail call, XDP_TX)",
        repeated(&xdp, Program::VrrpLb, &frame6)?,
    );
    arm(&mut xdp, false)?;
    push(
        "VIP not held (backup director) → PASS",
        repeated(&xdp, Program::VrrpLb, &frame(40000, 80))?,
    );
    arm(&mut xdp, true)?;
    // New flows one at a time (a fresh source port each run), against the floor measured
    // the same way (single runs carry the kernel's per-run timer overhead).
    let mut floor = Vec::new();
    let mut new = Vec::new();
    for k in 0..SINGLE_RUNS {
        let f = frame(1024 + (k % 60000) as u16, 80);
        floor.push(xdp.test_run(Program::Pass, &f)?.duration.as_nanos() as f64);
        new.push(xdp.test_run(Program::VrrpLb, &f)?.duration.as_nanos() as f64);
    }
    let floor = median_min_max(floor).context("no samples")?;
    let new = median_min_max(new).context("no samples")?;
    // NAT: real server 2 behind port 8080 of the VIP, reached at 10.1.0.13:8080. Single runs
    // only (a repetition would see the rewritten packet), each a flow's packet after the
    // first, then the server's reply to it.
    let nat_real = Real {
        mac: [2, 0, 0, 0, 0, 0x15],
        flags: LB_REAL_UP | agent_common::LB_REAL_NAT,
        addr: [10, 1, 0, 13],
        weight: 1,
        conns: 0,
        ifindex: 0,
        out_mac: [0; 6],
        port: u16::from_ne_bytes(8080u16.to_be_bytes()),
        ..Default::default()
    };
    // Service `id` on `port` of the VIP, its ring (at id × 2048) naming only real `real`.
    let only = |xdp: &mut XdpProgram, id: u32, port: u16, real: Real| -> Result<()> {
        xdp.maps.set_real(id + 1, real)?;
        let ring = sched::ring(Algo::Rr, &[(id + 1, 1)]);
        xdp.maps.set_ring(id * 2048, &ring)?;
        xdp.maps.set_service(
            ServiceKey { port, ..key },
            Service {
                id,
                ring_base: id * 2048,
                ring_len: ring.len() as u32,
                entry: id,
                ..service
            },
        )?;
        Ok(())
    };
    only(&mut xdp, 1, 8080, nat_real)?;
    xdp.maps.set_nat_on(true)?;
    let reply = |dport: u16| {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 0x15], [2, 0, 0, 0, 0, 0x11])
            .ipv4([10, 1, 0, 13], [192, 0, 2, 99], 64)
            .tcp(8080, dport, 1, 64240)
            .syn()
            .ack(2)
            .write(&mut out, b"")
            .expect("frame");
        out
    };
    let (mut nat_in, mut nat_out) = (Vec::new(), Vec::new());
    for k in 0..SINGLE_RUNS {
        let sport = 1024 + (k % 60000) as u16;
        let f = frame(sport, 8080);
        let first = xdp.test_run(Program::VrrpLb, &f)?;
        if first.action != 3 {
            bail!("NAT: the first packet was not forwarded ({})", first.action);
        }
        nat_in.push(xdp.test_run(Program::VrrpLb, &f)?.duration.as_nanos() as f64);
        let back = xdp.test_run(Program::VrrpLb, &reply(sport))?;
        if back.action != 3 {
            bail!("NAT: the reply was not sent back ({})", back.action);
        }
        nat_out.push(back.duration.as_nanos() as f64);
    }
    // TUN: real server 3 behind port 8082, wrapped in IPIP for 10.9.0.13 (a single run
    // each: a repetition would wrap the wrapped packet).
    let tun_real = vrrp_tests::fixture::tun_real(agent_common::LB_TUN_IPIP, 0);
    only(&mut xdp, 2, 8082, tun_real)?;
    let mut tun = Vec::new();
    for k in 0..SINGLE_RUNS {
        let f = frame(1024 + (k % 60000) as u16, 8082);
        let first = xdp.test_run(Program::VrrpLb, &f)?;
        if first.action != 3 {
            bail!("TUN: the first packet was not forwarded ({})", first.action);
        }
        tun.push(xdp.test_run(Program::VrrpLb, &f)?.duration.as_nanos() as f64);
    }
    push("single runs: trivial pass program (floor)", floor);
    push("single runs: a new flow scheduled (rr) → XDP_TX", new);
    push(
        "single runs: a NAT flow's packet → its real server, address and port rewritten (tail call) → XDP_TX",
        median_min_max(nat_in).context("no samples")?,
    );
    push(
        "single runs: a NAT server's reply → the client, the VIP's address and port back → XDP_TX",
        median_min_max(nat_out).context("no samples")?,
    );
    push(
        "single runs: a TUN flow's packet → wrapped in IPIP for its real server (tail call) → XDP_TX",
        median_min_max(tun).context("no samples")?,
    );
    Ok(rows)
}

// ===== wrk in the lab =====

struct Wrk {
    rps: f64,
    p99_ms: f64,
    errors: u64,
    requests: u64,
}

/// `wrk --latency` run from the client against `url` for `secs`.
fn wrk(seed: &Seed, url: &str, secs: u64) -> Result<Wrk> {
    let out = seed.lab.lab.host("client").ns.output(&[
        "wrk",
        "-t2",
        "-c32",
        &format!("-d{secs}s"),
        "--timeout",
        "2s",
        "--latency",
        url,
    ])?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<Wrk> {
    let mut w = Wrk {
        rps: 0.0,
        p99_ms: 0.0,
        errors: 0,
        requests: 0,
    };
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("99%") {
            let v = v.trim();
            w.p99_ms = if let Some(us) = v.strip_suffix("us") {
                us.parse::<f64>().ok()? / 1000.0
            } else if let Some(ms) = v.strip_suffix("ms") {
                ms.parse().ok()?
            } else {
                v.strip_suffix('s')?.parse::<f64>().ok()? * 1000.0
            };
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 3, write 0, timeout 12"
            w.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += v.trim().parse::<u64>().ok()?;
        } else if line.contains("requests in") {
            w.requests = line.split_whitespace().next()?.parse().ok()?;
        }
    }
    (w.rps > 0.0).then_some(w)
}

/// seed 002's reverse proxy, on director a: upstream with ip_hash, proxy_pass.
fn start_proxy(seed: &Seed) -> Result<()> {
    let d = seed.lab.dir().display().to_string();
    let conf = seed.lab.dir().join("nginx-proxy.conf");
    std::fs::write(
        &conf,
        format!(
            "user root;\nworker_processes 1;\npid {d}/nginx-proxy.pid;\nerror_log {d}/nginx-proxy.err;\nevents {{}}\nhttp {{\n  access_log off;\n  keepalive_timeout 65;\n  client_body_temp_path {d}/body-proxy;\n  proxy_temp_path {d}/proxy-temp;\n  upstream backend {{\n    ip_hash;\n    server 192.168.11.113:80 max_fails=3 fail_timeout=30s;\n    server 192.168.11.114:80 max_fails=3 fail_timeout=30s;\n  }}\n  server {{\n    listen 192.168.11.11:8080;\n    location / {{ proxy_pass http://backend; }}\n  }}\n}}\n"
        ),
    )?;
    let out = seed
        .lab
        .lab
        .host("a")
        .ns
        .output(&["nginx", "-c", conf.to_str().context("path")?])?;
    if !out.status.success() {
        bail!("nginx proxy: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn settle(seed: &Seed) -> Result<()> {
    seed.lab.wait_sole_holder("a", VIP, LONG)?;
    for director in ["a", "b"] {
        seed.wait_serving(director, [true, true])
            .map_err(anyhow::Error::msg)?;
    }
    Ok(())
}

/// Director a alone holds the VIP and serves both real servers.
fn settle_one(seed: &Seed) -> Result<()> {
    seed.lab.wait_sole_holder("a", VIP, LONG)?;
    seed.wait_serving("a", [true, true])
        .map_err(anyhow::Error::msg)
}

fn main() -> Result<()> {
    let secs: u64 = std::env::var("LVS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let runs: usize = std::env::var("LVS_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rows = test_run_rows()?;
    eprintln!("lvs-bench: test-run done");

    let agent = agent_binary();
    let mut seed = lvs::topology(&agent);
    seed.lab.start(
        "a",
        Daemon::Agent,
        &director("seed-lvs-dr-master.conf", 150),
    )?;
    seed.lab.start(
        "b",
        Daemon::Agent,
        &director("seed-lvs-dr-backup.conf", 100),
    )?;
    settle(&seed)?;
    start_proxy(&seed)?;
    let through = |seed: &Seed, url: &str| -> Result<Vec<Wrk>> {
        (0..runs).map(|_| wrk(seed, url, secs)).collect()
    };
    let xdp = through(&seed, &format!("http://{VIP}/"))?;
    let proxy = through(&seed, "http://192.168.11.11:8080/")?;
    eprintln!("lvs-bench: throughput done");

    // Failover under load, for the seed's rr + persistence and for sh.
    let mut failover = Vec::new();
    for (label, algo_line) in [
        ("rr, persistence_timeout 50 (the seed's)", None),
        ("sh (Maglev)", Some("lb_algo sh")),
    ] {
        let mut results = Vec::new();
        for _ in 0..runs {
            let conf = |file, prio| {
                let c = director(file, prio);
                match algo_line {
                    Some(l) => c
                        .replace("lb_algo rr", l)
                        .replace("persistence_timeout 50", ""),
                    None => c,
                }
            };
            let _ = seed.lab.stop("a", LONG);
            let _ = seed.lab.stop("b", LONG);
            seed.lab
                .start("a", Daemon::Agent, &conf("seed-lvs-dr-master.conf", 150))?;
            seed.lab
                .start("b", Daemon::Agent, &conf("seed-lvs-dr-backup.conf", 100))?;
            settle(&seed)?;
            let url = format!("http://{VIP}/");
            let run = std::thread::scope(|s| -> Result<Wrk> {
                let load = s.spawn(|| wrk(&seed, &url, secs));
                std::thread::sleep(Duration::from_secs(3));
                // A power cut on the master director (lab.crash needs &mut: do it by hand).
                let ns = &seed.lab.lab.host("a").ns;
                ns.ip(&["link", "set", "eth0", "down"])?;
                if let Some(pid) = seed.lab.pid("a") {
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                load.join().map_err(|_| anyhow::anyhow!("wrk thread"))?
            })?;
            eprintln!(
                "lvs-bench: failover {label}: {} of {} requests failed",
                run.errors, run.requests
            );
            results.push(run);
            // Back up for the next run.
            seed.lab
                .lab
                .host("a")
                .ns
                .ip(&["link", "set", "eth0", "up"])?;
        }
        failover.push((label, results));
    }
    // NAT, one-armed: the client reaches the VIP from 10.99.0.1, the real servers (the VIP
    // off their loopback) route that subnet through the VIP.
    let _ = seed.lab.stop("a", LONG);
    let _ = seed.lab.stop("b", LONG);
    let client = &seed.lab.lab.host("client").ns;
    client.ip(&["addr", "add", "10.99.0.1/24", "dev", "eth0"])?;
    client.ip(&[
        "route",
        "replace",
        &format!("{VIP}/32"),
        "dev",
        "eth0",
        "src",
        "10.99.0.1",
    ])?;
    for r in ["r1", "r2"] {
        let ns = &seed.lab.lab.host(r).ns;
        ns.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"])?;
        ns.ip(&["route", "add", "10.99.0.0/24", "via", VIP])?;
        let out = ns.output(&["ethtool", "-K", "eth0", "tx", "off"])?;
        if !out.status.success() {
            bail!("ethtool: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    seed.lab.start(
        "a",
        Daemon::Agent,
        &director("seed-lvs-dr-master.conf", 150).replace("lb_kind DR", "lb_kind NAT"),
    )?;
    settle_one(&seed)?;
    let nat = through(&seed, &format!("http://{VIP}/"))?;
    eprintln!("lvs-bench: NAT throughput done");
    seed.stop_nginx("r1");
    seed.stop_nginx("r2");

    println!("## LVS: the XDP direct-routing balancer (`cargo xtask bench lvs`)\n");
    println!("{}\n", vrrp_tests::machine());
    println!(
        "BPF_PROG_TEST_RUN, the program alone ({RUNS} runs × {REPEAT} repetitions over one buffer, ns per packet; the single-run rows: {SINGLE_RUNS} runs on a fresh frame each, with the kernel's per-run overhead, so compare them with their own floor):\n"
    );
    println!("| path | median ns | min–max ns |");
    println!("|---|---:|---:|");
    for (name, m, lo, hi) in &rows {
        println!("| {name} | {m:.1} | {lo:.1}–{hi:.1} |");
    }
    let stat = |v: &[Wrk], f: fn(&Wrk) -> f64| median_min_max(v.iter().map(f).collect());
    println!(
        "\nSeed 003 in namespaces: the client runs `wrk -t2 -c32 -d{secs}s` ({runs} runs each) to the VIP, balanced by the master director's XDP program to two nginx real servers that answer the client directly, and to nginx on the same director as seed 002's reverse proxy (upstream with ip_hash, `proxy_pass`) to the same real servers. The NAT row runs the same director with `lb_kind NAT`: the client's requests (from another subnet) get a real server's address, and its replies, routed back through the VIP, get the VIP's again, both in the director's XDP program. All of it shares this machine's 2 cores. This kernel has no IPVS, so keepalived has no data path to compare with here: the ratio is to the nginx proxy.\n"
    );
    println!(
        "| path | requests/s median | min–max | p99 ms median | min–max | ratio (requests/s) to the proxy |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let proxy_rps = stat(&proxy, |w| w.rps).map_or(0.0, |s| s.0);
    for (name, v) in [
        ("XDP direct routing (vrrp-agent)", &xdp),
        ("XDP NAT, one-armed (vrrp-agent)", &nat),
        ("nginx reverse proxy (seed 002)", &proxy),
    ] {
        let (Some(r), Some(p)) = (stat(v, |w| w.rps), stat(v, |w| w.p99_ms)) else {
            continue;
        };
        println!(
            "| {name} | {:.0} | {:.0}–{:.0} | {:.2} | {:.2}–{:.2} | {:.2} |",
            r.0,
            r.1,
            r.2,
            p.0,
            p.1,
            p.2,
            r.0 / proxy_rps
        );
    }
    println!(
        "\nThe master director crashed (link down, then SIGKILL) 3 s into a {secs} s wrk run through the VIP ({runs} runs each); the backup takes over by VRRP (Master_Down, about 3 s at advert_int 1) and its XDP program balances from then on. Failed: wrk's socket errors (connect, read, write, timeout at 2 s) and non-2xx answers.\n"
    );
    println!("| schedule | requests failed median | min–max | of requests (median) |");
    println!("|---|---:|---:|---:|");
    for (label, v) in &failover {
        let (Some(e), Some(n)) = (stat(v, |w| w.errors as f64), stat(v, |w| w.requests as f64))
        else {
            continue;
        };
        println!(
            "| {label} | {:.0} | {:.0}–{:.0} | {:.0} |",
            e.0, e.1, e.2, n.0
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn wrk_output_is_read() {
        let text = "Running 10s test @ http://192.168.11.200/\n  2 threads and 32 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   1.20ms  300.00us   5.00ms   80.00%\n  Latency Distribution\n     50%    1.10ms\n     75%    1.30ms\n     90%    1.60ms\n     99%    2.50ms\n  254000 requests in 10.00s, 40.00MB read\n  Socket errors: connect 0, read 3, write 0, timeout 12\nRequests/sec:  25400.00\nTransfer/sec:      4.00MB\n";
        let w = super::parse_wrk(text).unwrap();
        assert_eq!(
            (w.rps, w.p99_ms, w.errors, w.requests),
            (25400.0, 2.5, 15, 254000)
        );
    }
}
