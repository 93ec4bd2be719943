//! Gratuitous ARP and unsolicited neighbour advertisements, built as keepalived builds them
//! and sent on a packet socket bound to the interface.
//!
//! - ARP: an ARP *request* to broadcast, sender = target = the VIP, target hardware address
//!   broadcast (keepalived's `send_gratuitous_arp_immediate`).
//! - NA (RFC 4861 §4.4, §7.2.6): from the VIP to all-nodes ff02::1, hop limit 255, Override
//!   set (Router too when the interface forwards), with the target link-layer address option.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: [u8; 6] = [0xff; 6];

/// The gratuitous ARP frame for `vip` from `mac`.
pub fn arp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend(BROADCAST);
    f.extend(mac);
    f.extend(ETH_P_ARP.to_be_bytes());
    f.extend([0, 1, 0x08, 0x00, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f.extend(mac);
    f.extend(vip.octets());
    f.extend(BROADCAST);
    f.extend(vip.octets());
    f
}

/// The unsolicited NA frame for `vip` from `mac`.
pub fn na_frame(mac: [u8; 6], vip: Ipv6Addr, router: bool) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = Vec::with_capacity(32);
    let flags: u8 = if router { 0xa0 } else { 0x20 }; // R, O
    icmp.extend([136, 0, 0, 0, flags, 0, 0, 0]);
    icmp.extend(vip.octets());
    icmp.extend([2, 1]); // target link-layer address, 8 bytes
    icmp.extend(mac);
    // RFC 4443 §2.3 checksum over the IPv6 pseudo-header.
    let mut sum: u32 = 0;
    for chunk in vip
        .octets()
        .chunks(2)
        .chain(all_nodes.octets().chunks(2))
        .chain(icmp.chunks(2))
    {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    sum += icmp.len() as u32 + 58;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend([0x33, 0x33, 0, 0, 0, 1]);
    f.extend(mac);
    f.extend(ETH_P_IPV6.to_be_bytes());
    f.extend([0x60, 0, 0, 0]);
    f.extend((icmp.len() as u16).to_be_bytes());
    f.extend([58, 255]);
    f.extend(vip.octets());
    f.extend(all_nodes.octets());
    f.extend(icmp);
    f
}

/// A packet socket sending whole frames on one interface.
pub struct FrameSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl FrameSocket {
    pub fn open(ifindex: u32) -> io::Result<FrameSocket> {
        // SAFETY: plain socket(2). Protocol 0: send only, nothing is received on it.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is fresh and owned from here.
        Ok(FrameSocket {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            ifindex,
        })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sa: libc::sockaddr_ll = unsafe { zeroed() };
        sa.sll_family = libc::AF_PACKET as u16;
        sa.sll_ifindex = self.ifindex as i32;
        sa.sll_halen = 6;
        sa.sll_addr[..6].copy_from_slice(&frame[..6]);
        sa.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        // SAFETY: frame and sa are live for the call, with their lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sa as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One gratuitous ARP or unsolicited NA for `vip`.
    pub fn announce(&self, mac: [u8; 6], vip: IpAddr, router: bool) -> io::Result<()> {
        match vip {
            IpAddr::V4(a) => self.send(&arp_frame(mac, a)),
            IpAddr::V6(a) => self.send(&na_frame(mac, a, router)),
        }
    }
}

/// Whether the interface forwards IPv6 (keepalived sets the NA Router flag then).
pub fn ipv6_forwarding(ifname: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{ifname}/forwarding"))
        .is_ok_and(|s| s.trim() == "1")
}

#[cfg(test)]
mod tests {
    use etherparse::{SlicedPacket, TransportSlice};

    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];

    #[test]
    fn gratuitous_arp_is_a_broadcast_request_for_the_vip() {
        let f = arp_frame(MAC, Ipv4Addr::new(192, 168, 11, 200));
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(etherparse::NetSlice::Arp(arp)) = p.net else {
            panic!("not ARP: {p:?}");
        };
        assert_eq!(arp.operation(), etherparse::ArpOperation::REQUEST);
        assert_eq!(arp.sender_hw_addr(), MAC);
        assert_eq!(arp.sender_protocol_addr(), [192, 168, 11, 200]);
        assert_eq!(arp.target_protocol_addr(), [192, 168, 11, 200]);
        assert_eq!(arp.target_hw_addr(), BROADCAST);
        assert_eq!(&f[..6], &BROADCAST);
    }

    #[test]
    fn unsolicited_na_has_a_valid_checksum_and_the_override_flag() {
        let vip: Ipv6Addr = "fe80::100".parse().unwrap();
        let f = na_frame(MAC, vip, false);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6: {p:?}");
        };
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6");
        };
        assert_eq!(ip.header().hop_limit(), 255);
        assert_eq!(
            icmp.icmp_type(),
            etherparse::Icmpv6Type::NeighborAdvertisement(
                etherparse::icmpv6::NeighborAdvertisementHeader {
                    router: false,
                    solicited: false,
                    r#override: true
                }
            )
        );
        let expect = icmp
            .icmp_type()
            .calc_checksum(
                ip.header().source(),
                ip.header().destination(),
                icmp.payload(),
            )
            .unwrap();
        assert_eq!(icmp.checksum(), expect);
    }
}
