//! `cargo xtask bench xdp`: nanoseconds per packet for each path of the XDP program, through
//! BPF_PROG_TEST_RUN (the kernel times the program alone). Prints a Markdown section for
//! BENCHMARKS.md. Needs root.
//!
//! `repeat` reruns the program over one buffer, so a frame the program rewrites (an ARP request
//! becoming a reply) is only itself on the first pass: that path is measured one fresh frame at
//! a time instead, against a floor measured the same way.
use anyhow::Result;
use vrrp_agent::xdp::{Program, XdpProgram};
use vrrp_tests::{
    fixture::{CLIENT, CLIENT_MAC, PASS, VIP, peer, program, v4, vips},
    frames::{Advert, Checksum, Wire, arp_request},
};

const REPEAT: u32 = 200_000;
const RUNS: usize = 9;
const SINGLE_RUNS: usize = 20_001;

struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    Stats {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

/// Mean ns per packet over `REPEAT` repetitions, `RUNS` times.
fn repeated(xdp: &XdpProgram, program: Program, frame: &[u8]) -> Result<Stats> {
    let mut samples = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let out = xdp.test_run_repeat(program, frame, REPEAT)?;
        samples.push(out.duration.as_nanos() as f64);
    }
    Ok(stats(samples))
}

/// ns of single runs on a fresh copy of `frame` each time.
fn single(xdp: &XdpProgram, program: Program, frame: &[u8]) -> Result<Stats> {
    let mut samples = Vec::with_capacity(SINGLE_RUNS);
    for _ in 0..SINGLE_RUNS {
        samples.push(xdp.test_run(program, frame)?.duration.as_nanos() as f64);
    }
    Ok(stats(samples))
}

fn main() -> Result<()> {
    let (xdp, _) = program(true);
    let valid = peer().vrrp(&Advert::v2_pass(51, 100, &vips(), PASS));
    let v3 = peer().vrrp(&Advert::v3(52, 100, &vips()));
    let bad_checksum = peer()
        .vrrp(&Advert::v2_pass(51, 100, &vips(), PASS).with(|a| a.checksum = Checksum::Corrupt));
    let bad_pass = peer().vrrp(&Advert::v2_pass(51, 100, &vips(), "wrong"));
    let foreign = peer().vrrp(&Advert::v2(99, 100, &vips()));
    let tcp = Wire {
        dst: v4("192.0.2.10"),
        ..peer()
    }
    .tcp_syn();
    let arp_vip = arp_request(CLIENT_MAC, CLIENT, VIP, None);
    let arp_other = arp_request(CLIENT_MAC, CLIENT, "192.0.2.77".parse()?, None);

    let rows: Vec<(&str, Stats)> = vec![
        (
            "trivial pass program (floor)",
            repeated(&xdp, Program::Pass, &valid)?,
        ),
        (
            "plain TCP packet → PASS",
            repeated(&xdp, Program::Vrrp, &tcp)?,
        ),
        (
            "valid VRRPv2 advert (PASS auth) → PASS",
            repeated(&xdp, Program::Vrrp, &valid)?,
        ),
        (
            "valid VRRPv3 advert → PASS",
            repeated(&xdp, Program::Vrrp, &v3)?,
        ),
        (
            "invalid advert: bad checksum → DROP",
            repeated(&xdp, Program::Vrrp, &bad_checksum)?,
        ),
        (
            "invalid advert: wrong password → DROP",
            repeated(&xdp, Program::Vrrp, &bad_pass)?,
        ),
        (
            "foreign VRID, filter armed → DROP",
            repeated(&xdp, Program::Vrrp, &foreign)?,
        ),
        (
            "ARP request, not a VIP → PASS",
            repeated(&xdp, Program::Vrrp, &arp_other)?,
        ),
    ];
    let single_rows: Vec<(&str, Stats)> = vec![
        (
            "trivial pass program (floor)",
            single(&xdp, Program::Pass, &arp_vip)?,
        ),
        (
            "ARP request for a VIP → XDP_TX reply",
            single(&xdp, Program::Vrrp, &arp_vip)?,
        ),
    ];

    println!("## XDP data path (`cargo xtask bench xdp`)\n");
    println!("Measured {}.", vrrp_tests::machine());
    println!(
        "BPF_PROG_TEST_RUN; the kernel times the program alone (no NIC, no driver). keepalived has no"
    );
    println!(
        "kernel path to compare with: every advert it checks has crossed the whole stack to userspace.\n"
    );
    println!(
        "Repeated runs ({RUNS} runs × {REPEAT} repetitions over one buffer; ns per packet):\n"
    );
    let floor = rows[0].1.median;
    let single_floor = single_rows[0].1.median;
    println!("| path | median ns | min–max ns | × floor |");
    println!("|---|---:|---:|---:|");
    for (name, s) in &rows {
        println!(
            "| {name} | {:.1} | {:.1}–{:.1} | {:.2} |",
            s.median,
            s.min,
            s.max,
            s.median / floor
        );
    }
    println!(
        "\nFresh frame each run ({SINGLE_RUNS} single runs; includes the kernel's per-run timer overhead, so only"
    );
    println!("the difference to the floor measured the same way is meaningful):\n");
    println!("| path | median ns | min–max ns | − floor ns |");
    println!("|---|---:|---:|---:|");
    for (name, s) in &single_rows {
        println!(
            "| {name} | {:.0} | {:.0}–{:.0} | {:+.0} |",
            s.median,
            s.min,
            s.max,
            s.median - single_floor
        );
    }
    println!("\nTarget (issue: foundation): every path within 2× of the floor.");
    startup()
}

/// What loading costs the agent at start-up: the object (maps made) and the verifier's
/// check of the one program it attaches, timed over `LOADS` fresh loads each.
fn startup() -> Result<()> {
    const LOADS: usize = 5;
    println!(
        "\nStart-up: loading the object and verifying one program ({LOADS} fresh loads each; ms of \
         wall time on an idle machine, the verifier's instructions processed as the kernel counts \
         them). The agent verifies `vrrp_lb_xdp` only when the configuration has virtual \
         servers, `vrrp_xdp` otherwise:\n"
    );
    println!("| program verified | median ms | min–max ms | instructions processed |");
    println!("|---|---:|---:|---:|");
    for (name, programs) in [
        ("none (object and maps only)", &[][..]),
        ("`xdp_pass`", &[Program::Pass][..]),
        (
            "`vrrp_xdp` (VRRP filter, ARP responder)",
            &[Program::Vrrp][..],
        ),
        (
            "`vrrp_lb_xdp` (the same and the balancer)",
            &[Program::VrrpLb][..],
        ),
    ] {
        let mut ms = Vec::with_capacity(LOADS);
        let mut insns = None;
        for _ in 0..LOADS {
            let t0 = std::time::Instant::now();
            let xdp = XdpProgram::load_only(programs)?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            insns = programs.first().and_then(|p| xdp.verified_insns(*p));
        }
        let s = stats(ms);
        println!(
            "| {name} | {:.0} | {:.0}–{:.0} | {} |",
            s.median,
            s.min,
            s.max,
            insns.map_or("-".to_string(), |n| n.to_string())
        );
    }
    Ok(())
}
