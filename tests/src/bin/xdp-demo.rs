//! `cargo xtask demo`: the XDP data path on a namespaced LAN, with the VRID, password and VIPs of
//! the seed hot-standby pair (shared/configs/hot-standby-master.conf). The VRRP election and
//! failover join this demo with the VRRP engine; until then it shows the kernel side: ARP for a
//! VIP answered in XDP, a flood of forged adverts dropped and counted by reason, and nothing
//! answering once the program is gone.
use std::{net::IpAddr, time::Instant};

use agent_common::{
    FAMILY_V4, IFACE_FILTER_ARMED, IfaceConfig, VRID_ALLOW_V2, VRID_AUTH_PASS, VRID_CHECK_TTL,
    VipKey, VipValue, VridConfig, VridKey, VrrpVerdict,
};
use anyhow::{Context as _, Result};
use vrrp_agent::xdp::{AttachMode, Program, XdpProgram, ifindex};
use vrrp_tests::{
    Capture, Lab,
    frames::{Advert, Checksum, Wire},
};

const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x50];
const FORGER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x66];
const VIPS: [&str; 3] = ["192.168.11.200", "192.168.11.201", "192.168.11.202"];
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
        let mut auth_pass = [0u8; 8];
        auth_pass[..4].copy_from_slice(b"1111");
        let key = VridKey {
            ifindex: index,
            vlan: 0,
            vrid: 51,
            family: FAMILY_V4,
        };
        xdp.maps.set_vrid(
            key,
            VridConfig {
                flags: VRID_ALLOW_V2 | VRID_CHECK_TTL | VRID_AUTH_PASS,
                _pad: 0,
                auth_pass,
            },
        )?;
        xdp.maps.set_iface(
            index,
            IfaceConfig {
                flags: IFACE_FILTER_ARMED,
            },
        )?;
        for vip in VIPS {
            let addr: std::net::Ipv4Addr = vip.parse()?;
            xdp.maps.arm_vip(
                VipKey::v4(index, 0, addr.octets()),
                VipValue {
                    mac: ROUTER_MAC,
                    _pad: [0; 2],
                },
            )?;
        }
        let attached = xdp.attach("ens33", Program::Vrrp)?;
        println!(
            "router: XDP attached to ens33 in {} mode; VRID 51 (v2, PASS 1111), VIPs armed: {}",
            attached.mode,
            VIPS.join(" ")
        );
        Ok(xdp)
    })??;

    println!("\n-- ARP for the VIPs, answered inside the kernel (no interface holds them) --");
    for vip in VIPS {
        println!("client$ arping {vip}: {}", arping(&lab, vip)?);
    }

    println!("\n-- {FLOOD} forged adverts of each kind from the forger --");
    let forger = Capture::open(&lab.host("forger").ns, "eth0")?;
    let wire = Wire::vrrp_multicast(FORGER_MAC, "192.168.11.66".parse()?);
    let vips: Vec<IpAddr> = VIPS.iter().map(|v| v.parse()).collect::<Result<_, _>>()?;
    let good = Advert::v2_pass(51, 200, &vips, "1111");
    let kinds = [
        (
            "wrong password",
            wire.vrrp(&Advert::v2_pass(51, 200, &vips, "guess")),
        ),
        ("TTL 254", wire.clone().with(|w| w.ttl = 254).vrrp(&good)),
        (
            "bad checksum",
            wire.vrrp(&good.clone().with(|a| a.checksum = Checksum::Corrupt)),
        ),
        (
            "other VRID (52)",
            wire.vrrp(&Advert::v2_pass(52, 200, &vips, "1111")),
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
    for vrid in [51u8, 52] {
        let key = VridKey {
            ifindex: index,
            vlan: 0,
            vrid,
            family: FAMILY_V4,
        };
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
    println!("client$ arping {}: {}", VIPS[0], arping(&lab, VIPS[0])?);
    drop(xdp);
    drop(lab);
    println!(
        "\nlab removed. The VRRP election and failover (two routers, a client measuring its outage)"
    );
    println!("join this demo with the VRRP engine; see README.md.");
    Ok(())
}
