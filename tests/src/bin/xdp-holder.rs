//! Test fixture: attaches the agent's XDP program to one interface with a given VRID/VIP
//! configuration, as the agent will, and holds it until stdin closes (or it is killed).
//! Commands on stdin, one per line, answered with one line on stdout:
//!   counters                  → `counters name=value ...`
//!   vrid VRID FAMILY [VLAN]   → `vrid VRID valid=N ttl=N ...` (FAMILY 4 or 6)
use std::{
    io::{BufRead, Write},
    net::Ipv4Addr,
};

use agent_common::{
    FAMILY_V4, IFACE_FILTER_ARMED, IfaceConfig, VRID_ALLOW_V2, VRID_ALLOW_V3, VRID_AUTH_PASS,
    VRID_CHECK_TTL, VRID_V3_CHECKSUM_AS_V2, VipKey, VipValue, VridConfig, VridKey, VrrpVerdict,
};
use anyhow::{Context as _, Result, bail};
use clap::Parser;
use vrrp_agent::xdp::{AttachMode, Program, XdpProgram, ifindex};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    iface: String,
    /// auto (native, falling back to SKB), native or skb.
    #[arg(long, default_value = "auto")]
    mode: String,
    /// IPv4 VIP to answer ARP for: ADDR=MAC.
    #[arg(long)]
    vip: Vec<String>,
    /// VRID to accept: VRID:flag,flag,... with flags v2, v3, ttl, as_v2, pass=SECRET.
    #[arg(long)]
    vrid: Vec<String>,
    /// Drop VRRP for VRIDs not listed.
    #[arg(long)]
    filter: bool,
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC {s}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC {s}: need 6 bytes"))
}

fn main() -> Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    let mut xdp = XdpProgram::load()?;
    let index = ifindex(&args.iface)?;
    for vip in &args.vip {
        let (addr, mac) = vip.split_once('=').context("--vip ADDR=MAC")?;
        let addr: Ipv4Addr = addr.parse()?;
        xdp.maps.arm_vip(
            VipKey::v4(index, 0, addr.octets()),
            VipValue {
                mac: parse_mac(mac)?,
                _pad: [0; 2],
            },
        )?;
    }
    for spec in &args.vrid {
        let (vrid, flags) = spec.split_once(':').unwrap_or((spec, ""));
        let mut config = VridConfig::default();
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "v2" => config.flags |= VRID_ALLOW_V2,
                "v3" => config.flags |= VRID_ALLOW_V3,
                "ttl" => config.flags |= VRID_CHECK_TTL,
                "as_v2" => config.flags |= VRID_V3_CHECKSUM_AS_V2,
                _ if flag.starts_with("pass=") => {
                    let pass = &flag.as_bytes()[5..];
                    config.flags |= VRID_AUTH_PASS;
                    config.auth_pass[..pass.len().min(8)]
                        .copy_from_slice(&pass[..pass.len().min(8)]);
                }
                _ => bail!("unknown VRID flag {flag}"),
            }
        }
        let key = VridKey {
            ifindex: index,
            vlan: 0,
            vrid: vrid.parse()?,
            family: FAMILY_V4,
        };
        xdp.maps.set_vrid(key, config)?;
    }
    if args.filter {
        xdp.maps.set_iface(
            index,
            IfaceConfig {
                flags: IFACE_FILTER_ARMED,
            },
        )?;
    }
    let attached = match args.mode.as_str() {
        "auto" => xdp.attach(&args.iface, Program::Vrrp)?,
        "native" => xdp.attach_mode(&args.iface, Program::Vrrp, AttachMode::Native)?,
        "skb" => xdp.attach_mode(&args.iface, Program::Vrrp, AttachMode::Skb)?,
        other => bail!("unknown mode {other}"),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "attached {} {}", attached.iface, attached.mode)?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["counters"] => {
                let counters = xdp.maps.counters()?;
                let fields: Vec<String> =
                    counters.iter().map(|(n, v)| format!("{n}={v}")).collect();
                writeln!(out, "counters {}", fields.join(" "))?;
            }
            ["vrid", vrid, family, rest @ ..] => {
                let key = VridKey {
                    ifindex: index,
                    vlan: rest.first().map(|v| v.parse()).transpose()?.unwrap_or(0),
                    vrid: vrid.parse()?,
                    family: family.parse()?,
                };
                let stats = xdp.maps.vrid_counters(&key)?.unwrap_or_default();
                let fields: Vec<String> = VrrpVerdict::ALL
                    .iter()
                    .map(|v| format!("{}={}", v.name(), stats.packets(*v)))
                    .collect();
                writeln!(out, "vrid {vrid} {}", fields.join(" "))?;
            }
            _ => writeln!(out, "error unknown command: {line}")?,
        }
        out.flush()?;
    }
    Ok(())
}
