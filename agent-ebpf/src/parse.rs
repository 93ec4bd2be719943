//! Bounds-checked packet access: every read of the frame goes through [`ptr_at`].

use aya_ebpf::programs::XdpContext;
use network_types::{eth::EthHdr, vlan::VlanHdr};

const ETH_P_8021Q: u16 = 0x8100;

/// A pointer to a `T` at `offset` bytes into the frame, if all of it lies inside the frame.
/// The one bounds check of the program: the verifier accepts the access because of it.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Bytes in the frame from `offset` to its end (0 when `offset` is past it).
#[inline(always)]
pub fn remaining(ctx: &XdpContext, offset: usize) -> usize {
    (ctx.data_end() - ctx.data()).saturating_sub(offset)
}

/// Layer 2 of a frame: Ethernet with at most one 802.1Q tag.
pub struct L2 {
    /// EtherType of the payload (after the tag, if any), host order.
    pub ether_type: u16,
    /// VLAN id, 0 when untagged.
    pub vlan: u16,
    /// Offset of the layer-3 header.
    pub l3: usize,
    pub ifindex: u32,
}

#[inline(always)]
pub fn ethernet(ctx: &XdpContext) -> Option<L2> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked that the header lies inside the frame.
    let ether_type = u16::from_be(unsafe { (*eth).ether_type });
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    if ether_type != ETH_P_8021Q {
        return Some(L2 {
            ether_type,
            vlan: 0,
            l3: EthHdr::LEN,
            ifindex,
        });
    }
    let tag = ptr_at::<VlanHdr>(ctx, EthHdr::LEN)?;
    // SAFETY: as above.
    let (tci, inner) = unsafe {
        (
            u16::from_be_bytes((*tag).tci),
            u16::from_be((*tag).ether_type),
        )
    };
    Some(L2 {
        ether_type: inner,
        vlan: tci & 0x0fff,
        l3: EthHdr::LEN + VlanHdr::LEN,
        ifindex,
    })
}
