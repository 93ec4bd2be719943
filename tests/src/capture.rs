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
