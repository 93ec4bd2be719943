//! ARP responder for armed VIPs: the request is turned into the reply in place and sent back
//! out of the interface it came in on (XDP_TX). Everything else ARP goes to the kernel.
//! IPv6 NS→NA will live beside this, keyed by the same VIPS map (family 6).

use agent_common::{Counter, VipKey};
use aya_ebpf::{bindings::xdp_action, programs::XdpContext};
use network_types::{arp::ArpHdr, eth::EthHdr};

use crate::{
    maps::{self, VIPS},
    parse::{L2, ptr_at},
};

const ARPHRD_ETHER: u16 = 1;
const ETH_P_IP: u16 = 0x0800;
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;

#[inline(always)]
fn pass() -> u32 {
    maps::bump(Counter::ArpPass);
    xdp_action::XDP_PASS
}

#[inline(always)]
pub fn respond(ctx: &XdpContext, l2: &L2) -> u32 {
    let (Some(eth), Some(arp)) = (ptr_at::<EthHdr>(ctx, 0), ptr_at::<ArpHdr>(ctx, l2.l3)) else {
        return pass();
    };
    // SAFETY: ptr_at checked both headers lie inside the frame; nothing else aliases them.
    let (eth, arp) = unsafe { (&mut *eth, &mut *arp) };
    if u16::from_be_bytes(arp.htype) != ARPHRD_ETHER
        || u16::from_be_bytes(arp.ptype) != ETH_P_IP
        || arp.hlen != 6
        || arp.plen != 4
        || u16::from_be_bytes(arp.oper) != ARPOP_REQUEST
    {
        return pass();
    }
    // A gratuitous ARP (sender = target) is someone announcing the address, not asking for it.
    if arp.spa == arp.tpa {
        return pass();
    }
    let key = VipKey::v4(l2.ifindex, l2.vlan, arp.tpa);
    // SAFETY: the value is only read, and entries are replaced whole by the agent.
    let Some(vip) = (unsafe { VIPS.get(key) }) else {
        return pass();
    };
    // RFC 826: the reply goes to the requester's hardware address, from the VIP's MAC. An RFC
    // 5227 probe (sender 0.0.0.0) gets the reply Linux would give: target protocol 0.0.0.0.
    let requester_mac = arp.sha;
    let requester_ip = arp.spa;
    eth.dst_addr = requester_mac;
    eth.src_addr = vip.mac;
    arp.oper = ARPOP_REPLY.to_be_bytes();
    arp.tha = requester_mac;
    arp.tpa = requester_ip;
    arp.sha = vip.mac;
    arp.spa = key.addr_v4();
    maps::bump(Counter::ArpReply);
    xdp_action::XDP_TX
}
