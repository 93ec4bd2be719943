//! XDP program of vrrp-agent: filters and counts VRRP adverts, answers ARP for armed VIPs,
//! and forwards virtual servers' traffic to their real servers (LVS direct routing).
//!
//! Entry points only; the work is in the modules. Nothing here logs per packet (an aya-log
//! write costs ~80 ns a packet): every outcome is a per-CPU counter instead.
#![no_std]
#![no_main]

mod arp;
mod lb;
mod maps;
mod parse;
mod vrrp;

use agent_common::Counter;
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;

/// The VRRP filter and ARP responder, attached to every interface that runs VRRP.
#[xdp]
pub fn vrrp_xdp(ctx: XdpContext) -> u32 {
    run::<false>(&ctx)
}

/// The same with the virtual servers' balancer: attached instead when there are virtual
/// servers (the balancer is most of what the verifier has to check at load).
#[xdp]
pub fn vrrp_lb_xdp(ctx: XdpContext) -> u32 {
    run::<true>(&ctx)
}

/// The balancer's NAT forwarding, tail-called by `vrrp_lb_xdp` (never attached).
#[xdp]
pub fn vrrp_lb_nat(ctx: XdpContext) -> u32 {
    lb::nat(&ctx)
}

#[inline(always)]
fn run<const LB: bool>(ctx: &XdpContext) -> u32 {
    let Some(l2) = parse::ethernet(ctx) else {
        maps::bump(Counter::PassOther);
        return xdp_action::XDP_PASS;
    };
    match l2.ether_type {
        ETH_P_IP => vrrp::ipv4::<LB>(ctx, &l2),
        ETH_P_IPV6 => vrrp::ipv6::<LB>(ctx, &l2),
        ETH_P_ARP => arp::respond(ctx, &l2),
        _ => {
            maps::bump(Counter::PassOther);
            xdp_action::XDP_PASS
        }
    }
}

/// The balancer's IPv6 virtual servers, tail-called by `vrrp_lb_xdp` (never attached).
#[xdp]
pub fn vrrp_lb_v6(ctx: XdpContext) -> u32 {
    lb::ipv6(&ctx)
}

/// The balancer's IPv6 NAT forwarding, tail-called by `vrrp_lb_v6` (never attached).
#[xdp]
pub fn vrrp_lb_nat6(ctx: XdpContext) -> u32 {
    lb::nat6(&ctx)
}

/// Passes everything. The benchmark floor, and the peer-side program that native-mode
/// `XDP_TX` on a veth needs to deliver frames.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
