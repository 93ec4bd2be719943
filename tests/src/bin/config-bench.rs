//! `cargo xtask bench config`: read and validate a generated keepalived.conf with 5,000
//! vrrp_instances and 500 vrrp_scripts. Measures the library (parse + validate, in process) and
//! the whole `vrrp-agent -t` process side by side with `keepalived -t` on the same file, in a
//! namespace that has the interfaces the file names. Prints a Markdown section.
use std::{
    fmt::Write as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use vrrp_agent::config::{self, ReadOptions, validate::Unchecked};
use vrrp_tests::Netns;

const INSTANCES: usize = 5000;
const SCRIPTS: usize = 500;
/// One interface holds at most 255 VRIDs per family.
const INTERFACES: usize = INSTANCES.div_ceil(250);
const RUNS: usize = 9;
const PROCESS_RUNS: usize = 5;

fn generate() -> String {
    let mut text = String::from(
        "global_defs {\n    router_id bench\n    enable_script_security\n    script_user root\n}\n",
    );
    for s in 0..SCRIPTS {
        let _ = writeln!(
            text,
            "vrrp_script chk_{s} {{\n    script \"/bin/true\"\n    interval 2\n    weight -{}\n    fall 2\n    rise 2\n}}",
            1 + s % 50
        );
    }
    for i in 0..INSTANCES {
        let (iface, vrid) = (i / 250, 1 + i % 250);
        let _ = writeln!(
            text,
            "vrrp_instance VI_{i} {{\n    state BACKUP\n    interface bench{iface}\n    virtual_router_id {vrid}\n    priority {}\n    advert_int 1\n    authentication {{\n        auth_type PASS\n        auth_pass p{i}\n    }}\n    virtual_ipaddress {{\n        10.{}.{}.{}/24 dev bench{iface}\n    }}\n    track_script {{\n        chk_{}\n    }}\n}}",
            1 + i % 254,
            i / 65536 % 256,
            i / 256 % 256,
            i % 256,
            i % SCRIPTS
        );
    }
    text
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn timed(ns: &Netns, program: &str, file: &Path) -> Result<(Duration, i32)> {
    let started = Instant::now();
    let out = ns
        .command(program)
        .args(["-t", "-f"])
        .arg(file)
        .output()
        .with_context(|| format!("running {program}"))?;
    Ok((started.elapsed(), out.status.code().unwrap_or(-1)))
}

fn main() -> Result<()> {
    let agent = std::env::var("VRRP_AGENT")
        .context("VRRP_AGENT: path of the vrrp-agent binary (cargo xtask bench sets it)")?;
    let text = generate();
    let dir = std::env::temp_dir().join(format!("vrrp-agent-config-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("keepalived.conf");
    std::fs::write(&file, &text)?;

    // The library: parse + validate, in process.
    let opts = ReadOptions {
        config_id: "bench".into(),
        follow_includes: true,
    };
    let mut lib = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let loaded = config::load(&file, &opts, &Unchecked);
        lib.push(started.elapsed());
        if loaded.config.instances.len() != INSTANCES || loaded.exit_code() != 0 {
            bail!(
                "generated config did not load cleanly: {:?}",
                loaded.diags.list.first()
            );
        }
    }

    // Whole processes, side by side, in a namespace with the interfaces.
    let ns = Netns::create(&format!("vt-{}-cfgbench", std::process::id()))?;
    for i in 0..INTERFACES {
        ns.ip(&[
            "link",
            "add",
            &format!("bench{i}"),
            "type",
            "veth",
            "peer",
            "name",
            &format!("bpeer{i}"),
        ])?;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..PROCESS_RUNS {
        let (t, code) = timed(&ns, &agent, &file)?;
        if code != 0 {
            bail!("vrrp-agent -t exited {code} on the generated config");
        }
        ours.push(t);
        let (t, code) = timed(&ns, "keepalived", &file)?;
        if code != 0 {
            bail!("keepalived -t exited {code} on the generated config");
        }
        theirs.push(t);
    }
    drop(ns);
    std::fs::remove_dir_all(&dir)?;

    let (lm, lmin, lmax) = median(lib);
    let (om, omin, omax) = median(ours);
    let (km, kmin, kmax) = median(theirs);
    println!("## Config (`cargo xtask bench config`)\n");
    println!(
        "Measured {}. A generated keepalived.conf of {INSTANCES} vrrp_instances (PASS",
        vrrp_tests::machine()
    );
    println!(
        "auth, one VIP, one tracked script each) and {SCRIPTS} vrrp_scripts, {} bytes; keepalived 2.2.7 and",
        text.len()
    );
    println!("vrrp-agent give it the same verdict (0).\n");
    println!("| what | median ms | min–max ms | ratio to keepalived |");
    println!("|---|---:|---:|---:|");
    println!(
        "| vrrp-agent library: read + validate, in process ({RUNS} runs) | {} | {}–{} | |",
        ms(lm),
        ms(lmin),
        ms(lmax)
    );
    println!(
        "| `vrrp-agent -t`, whole process ({PROCESS_RUNS} runs) | {} | {}–{} | {:.2} |",
        ms(om),
        ms(omin),
        ms(omax),
        om.as_secs_f64() / km.as_secs_f64()
    );
    println!(
        "| `keepalived -t`, whole process ({PROCESS_RUNS} runs) | {} | {}–{} | 1.00 |",
        ms(km),
        ms(kmin),
        ms(kmax)
    );
    println!("\nTarget (config issue): read + validate under 100 ms.");
    Ok(())
}
