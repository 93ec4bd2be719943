//! Raw frames on an interface inside a namespace: an AF_PACKET socket opened from a thread that
//! entered the namespace, so the test process can both inject crafted frames and watch what
//! goes over the wire without tcpdump.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::netns::Netns;

const ETH_P_ALL: u16 = 0x0003;

pub struct Capture {
    fd: OwnedFd,
    ifindex: i32,
}

impl Capture {
    /// Opens a capture on `iface` in `ns`. It sees frames in both directions from now on.
    pub fn open(ns: &Netns, iface: &str) -> Result<Capture> {
        let iface = iface.to_string();
        ns.enter(move || open(&iface))?
    }

    /// Sends `frame` out of the interface as it is.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid initial value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: buffer and address are valid for the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error()).context("sendto on AF_PACKET");
        }
        Ok(())
    }

    /// The next frame for which `matches` is true, or None when `timeout` passes first.
    pub fn next_matching(
        &self,
        timeout: Duration,
        mut matches: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
                continue;
            }
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 && matches(&buf[..n as usize]) {
                return Some(buf[..n as usize].to_vec());
            }
        }
    }
}

/// Opens a capture on `iface` of the calling thread's namespace.
pub fn open(iface: &str) -> Result<Capture> {
    let ifindex =
        vrrp_agent::xdp::ifindex(iface).with_context(|| format!("capture on {iface}"))? as i32;
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (ETH_P_ALL).to_be() as i32,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error()).context("AF_PACKET socket");
    }
    // SAFETY: raw is a fresh, valid fd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: as above for sockaddr_ll.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ETH_P_ALL.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: valid address of the given length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("bind AF_PACKET");
    }
    Ok(Capture { fd, ifindex })
}

/// A send-only raw socket on one interface, for floods: bound to no protocol (so it queues
/// nothing it would see), past the qdisc, and sending bursts with one sendmmsg(2) each.
pub struct Sender {
    fd: OwnedFd,
    addr: libc::sockaddr_ll,
}

impl Sender {
    pub fn open(ns: &Netns, iface: &str) -> Result<Sender> {
        let iface = iface.to_string();
        ns.enter(move || Sender::open_here(&iface))?
    }

    fn open_here(iface: &str) -> Result<Sender> {
        let ifindex =
            vrrp_agent::xdp::ifindex(iface).with_context(|| format!("sender on {iface}"))?;
        // SAFETY: plain socket(2); the fd is owned right away.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error()).context("AF_PACKET socket");
        }
        // SAFETY: raw is a fresh, valid fd.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let on: libc::c_int = 1;
        // SAFETY: an int option of its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid initial value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        addr.sll_halen = 6;
        Ok(Sender { fd, addr })
    }

    /// Sends `frame` `n` times (at most 256) in one system call; returns how many left.
    pub fn burst(&self, frame: &[u8], n: usize) -> usize {
        let n = n.clamp(1, 256);
        let mut addr = self.addr;
        addr.sll_addr[..6].copy_from_slice(&frame[..6.min(frame.len())]);
        let mut iov = libc::iovec {
            iov_base: frame.as_ptr() as *mut libc::c_void,
            iov_len: frame.len(),
        };
        // SAFETY: mmsghdr is plain data; every pointer set below outlives the call.
        let mut msgs: Vec<libc::mmsghdr> = (0..n).map(|_| unsafe { std::mem::zeroed() }).collect();
        for m in &mut msgs {
            m.msg_hdr.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: n valid mmsghdrs, each pointing at live buffers.
        let sent = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        usize::try_from(sent).unwrap_or(0)
    }
}
