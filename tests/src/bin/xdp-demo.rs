//! `cargo xtask demo`: the XDP data path on a namespaced LAN, programmed from the seed
//! hot-standby master's keepalived.conf (tests/configs/seed-hot-standby-master.conf, a copy of
//! shared/configs/hot-standby-master.conf) the way the agent will: read, validated, translated
//! by `xdp::vrid_entry`. The VRRP election and
//! failover join this demo with the VRRP engine; until then it shows the kernel side: ARP for a
//! VIP answered in XDP, a flood of forged adverts dropped and counted by reason, and nothing
//! answering once the program is gone.
use std::{net::IpAddr, time::Instant};

use agent_common::{IFACE_FILTER_ARMED, IfaceConfig, VipKey, VipValue, VridKey, VrrpVerdict};
use anyhow::{Context as _, Result, bail};
use vrrp_agent::{
    config::{self, ReadOptions, model::Auth, validate::Unchecked},
    xdp::{AttachMode, Program, XdpProgram, ifindex, vrid_entry},
};
use vrrp_tests::{
    Capture, Lab,
    frames::{Advert, Checksum, Wire},
};

const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x50];
const FORGER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x66];
/// The config the demo router runs, relative to the workspace root.
const SEED: &str = "tests/configs/seed-hot-standby-master.conf";
const FLOOD: usize = 2000;

fn arping(lab: &Lab, vip: &str) -> Result<String> {
    let started = Instant::now();
    let out = lab
        .host("client")
        .ns
        .output(&["arping", "-c", "1", "-w", "1", "-I", "eth0", vip])?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(match text.lines().find(|l| l.contains("reply from")) {
        Some(line) => line.trim().to_string(),
        None => format!("no reply within {:.1} s", started.elapsed().as_secs_f64()),
    })
}

fn main() -> Result<()> {
    println!("== vrrp-agent XDP data path demo ==");
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(SEED);
    // Checked against the lab router's interfaces when attaching; here only the text is judged.
    let loaded = config::load(&seed, &ReadOptions::default(), &Unchecked);
    if loaded.exit_code() != 0 {
        bail!("{SEED} does not load cleanly: {:?}", loaded.diags.list);
    }
    let instance = loaded
        .config
        .instances
        .into_iter()
        .next()
        .context("the seed has an instance")?;
    let vips: Vec<std::net::Ipv4Addr> = instance
        .virtual_ipaddress
        .iter()
        .filter_map(|v| match v.addr {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let vip_list = vips
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    let vrid = instance
        .virtual_router_id
        .context("the seed instance has a VRID")?;
    let pass = match &instance.auth {
        Auth::Pass(p) => p.clone(),
        _ => String::new(),
    };
    println!(
        "config: {SEED}: {} VRID {vrid}, priority {}, PASS {pass:?}, VIPs {vip_list}",
        instance.name, instance.priority
    );
    let mut lab = Lab::new()?;
    lab.add_host("router", "ens33", ROUTER_MAC, "192.168.11.1/24")?;
    lab.add_host("client", "eth0", CLIENT_MAC, "192.168.11.50/24")?;
    lab.add_host("forger", "eth0", FORGER_MAC, "192.168.11.66/24")?;
    println!("LAN: router 192.168.11.1 (ens33), client 192.168.11.50, forger 192.168.11.66");

    // Native XDP_TX on a veth reaches the wire only if the peer end runs XDP too.
    let port = lab.port_of("router", "ens33").to_string();
    let _peer = lab.lan().enter(move || -> Result<XdpProgram> {
        let mut pass = XdpProgram::load()?;
        pass.attach_mode(&port, Program::Pass, AttachMode::Native)?;
        Ok(pass)
    })??;

    let mut xdp = lab.host("router").ns.enter(|| -> Result<XdpProgram> {
        let mut xdp = XdpProgram::load().context("loading the XDP program (root?)")?;
        let index = ifindex("ens33")?;
        let (key, entry) = vrid_entry(&instance, index).context("the seed instance has a VRID entry")?;
        xdp.maps.set_vrid(key, entry)?;
        xdp.maps.set_iface(index, IfaceConfig { flags: IFACE_FILTER_ARMED })?;
        for vip in &vips {
            xdp.maps.arm_vip(VipKey::v4(index, 0, vip.octets()), VipValue { mac: ROUTER_MAC, _pad: [0; 2] })?;
        }
        let attached = xdp.attach("ens33", Program::Vrrp)?;
        println!(
            "router: XDP attached to ens33 in {} mode; VRID entry from the config, VIPs armed: {vip_list}",
            attached.mode
        );
        Ok(xdp)
    })??;

    println!("\n-- ARP for the VIPs, answered inside the kernel (no interface holds them) --");
    for vip in &vips {
        println!("client$ arping {vip}: {}", arping(&lab, &vip.to_string())?);
    }

    println!("\n-- {FLOOD} forged adverts of each kind from the forger --");
    let forger = Capture::open(&lab.host("forger").ns, "eth0")?;
    let wire = Wire::vrrp_multicast(FORGER_MAC, "192.168.11.66".parse()?);
    let vips: Vec<IpAddr> = vips.iter().map(|v| IpAddr::V4(*v)).collect();
    let good = Advert::v2_pass(vrid, 200, &vips, &pass);
    // A VRID this router does not run, for the unknown-VRID filter.
    let other = if vrid == 255 { 1 } else { vrid + 1 };
    let kinds = [
        (
            "wrong password",
            wire.vrrp(&Advert::v2_pass(vrid, 200, &vips, "guess")),
        ),
        ("TTL 254", wire.clone().with(|w| w.ttl = 254).vrrp(&good)),
        (
            "bad checksum",
            wire.vrrp(&good.clone().with(|a| a.checksum = Checksum::Corrupt)),
        ),
        (
            "another VRID",
            wire.vrrp(&Advert::v2_pass(other, 200, &vips, &pass)),
        ),
    ];
    let started = Instant::now();
    for (_, frame) in &kinds {
        for _ in 0..FLOOD {
            forger.send(frame)?;
        }
    }
    let sent = kinds.len() * FLOOD;
    let expected = sent as u64;
    let counted = vrrp_tests::poll(std::time::Duration::from_secs(5), || {
        let c = xdp.maps.counters().ok()?;
        let drops = c.get(agent_common::Counter::DropAuth)
            + c.get(agent_common::Counter::DropTtl)
            + c.get(agent_common::Counter::DropChecksum)
            + c.get(agent_common::Counter::DropUnknownVrid);
        (drops >= expected).then_some(c)
    });
    println!(
        "sent {sent} frames in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let index = lab.host("router").ns.enter(|| ifindex("ens33"))??;
    let (seed_key, _) =
        vrid_entry(&instance, index).context("the seed instance has a VRID entry")?;
    for vrid in [vrid, other] {
        let key = VridKey { vrid, ..seed_key };
        if let Some(stats) = xdp.maps.vrid_counters(&key)? {
            let reasons: Vec<String> = VrrpVerdict::ALL
                .iter()
                .filter(|v| stats.packets(**v) > 0)
                .map(|v| format!("{}={}", v.name(), stats.packets(*v)))
                .collect();
            println!("kernel counters, VRID {vrid}: {}", reasons.join(" "));
        }
    }
    let counters = counted.map_or_else(|| xdp.maps.counters(), Ok)?;
    let nonzero: Vec<String> = counters
        .iter()
        .filter(|(_, v)| *v > 0)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    println!("kernel counters, all: {}", nonzero.join(" "));
    println!("none of these reached userspace: the agent only ever reads valid adverts");

    println!("\n-- program detached (as when the agent stops or dies: it is never pinned) --");
    xdp.detach("ens33")?;
    let first = vips[0].to_string();
    println!("client$ arping {first}: {}", arping(&lab, &first)?);
    drop(xdp);
    drop(lab);
    println!(
        "\nlab removed. The VRRP election and failover (two routers, a client measuring its outage)"
    );
    println!("join this demo with the VRRP engine; see README.md.");
    Ok(())
}
