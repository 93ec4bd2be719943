//! Raw sockets for IP protocol 112, as keepalived opens them: one receive socket per
//! interface and family (bound to the device, joined to the VRRP group), one send socket per
//! instance (bound to its source address; TTL / hop limit 255, TOS / traffic class 0xC0,
//! multicast loop off). Receiving sits behind the XDP filter, so only valid adverts arrive,
//! and behind a classic BPF filter on the socket (`sockfilter`: the VRIDs, TTL and peers it
//! takes), which is what holds floods off without XDP; the codec and the state machine check
//! everything again anyway.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use tokio::io::{Interest, unix::AsyncFd};

use crate::vrrp::packet::IPPROTO_VRRP;

/// RFC 2474 class selector 6 (network control), as keepalived sends adverts.
const TOS_NETWORK_CONTROL: libc::c_int = 0xc0;

/// A received VRRP message with what the IP header said of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// The VRRP message (the IP payload).
    pub payload: Vec<u8>,
    /// When the kernel received it (SO_TIMESTAMPNS), on CLOCK_MONOTONIC.
    pub rx_at: Option<std::time::Duration>,
}

pub(crate) fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn socket(v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain socket(2); the descriptor is owned at once.
    let fd = check(unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            libc::c_int::from(IPPROTO_VRRP),
        )
    })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(crate) fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points to a live T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

pub(crate) fn bind_to_device(fd: &impl AsRawFd, ifname: &str) -> io::Result<()> {
    // SAFETY: the name's bytes and length are passed together.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            ifname.as_ptr().cast(),
            ifname.len() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// bind(2) to an IPv4 address, port 0.
pub(crate) fn bind_v4(fd: &impl AsRawFd, a: Ipv4Addr) -> io::Result<()> {
    with_sockaddr(fd, (a, 0).into(), libc::bind)
}

/// bind(2) to an address of either family, port 0.
pub(crate) fn bind_ip(fd: &impl AsRawFd, a: std::net::IpAddr) -> io::Result<()> {
    with_sockaddr(fd, (a, 0).into(), libc::bind)
}

/// bind(2) to an address and port.
pub(crate) fn bind_at(fd: &impl AsRawFd, a: std::net::SocketAddr) -> io::Result<()> {
    with_sockaddr(fd, a, libc::bind)
}

/// connect(2) to an address, port 0 (a raw socket: only its packets arrive).
pub(crate) fn connect_ip(fd: &impl AsRawFd, a: std::net::IpAddr) -> io::Result<()> {
    with_sockaddr(fd, (a, 0).into(), libc::connect)
}

/// `call` (bind or connect) with `at` as a sockaddr_in or sockaddr_in6.
fn with_sockaddr(
    fd: &impl AsRawFd,
    at: std::net::SocketAddr,
    call: unsafe extern "C" fn(libc::c_int, *const libc::sockaddr, libc::socklen_t) -> libc::c_int,
) -> io::Result<()> {
    let port = at.port().to_be();
    // SAFETY: each sockaddr is live for the call and passed with its own size.
    check(unsafe {
        match at.ip() {
            std::net::IpAddr::V4(a) => {
                let mut sa = sockaddr_v4(a);
                sa.sin_port = port;
                call(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            std::net::IpAddr::V6(a) => {
                let mut sa = sockaddr_v6(a, 0);
                sa.sin6_port = port;
                call(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_in6).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    })
    .map(drop)
}

pub(crate) fn sockaddr_v4(a: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
    s
}

fn sockaddr_v6(a: Ipv6Addr, scope: u32) -> libc::sockaddr_in6 {
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut s: libc::sockaddr_in6 = unsafe { zeroed() };
    s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    s.sin6_addr.s6_addr = a.octets();
    s.sin6_scope_id = scope;
    s
}

/// Multicast group membership on one interface.
fn join(fd: &OwnedFd, group: IpAddr, ifindex: u32) -> io::Result<()> {
    match group {
        IpAddr::V4(g) => {
            let m = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(g.octets()),
                },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: ifindex as libc::c_int,
            };
            setsockopt(fd, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &m)
        }
        IpAddr::V6(g) => {
            let m = libc::ipv6_mreq {
                ipv6mr_multiaddr: libc::in6_addr {
                    s6_addr: g.octets(),
                },
                ipv6mr_interface: ifindex,
            };
            setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &m)
        }
    }
}

// ===== RxSocket =====

/// Receives VRRP on one interface, for one family.
pub struct RxSocket {
    fd: AsyncFd<OwnedFd>,
    v6: bool,
}

impl RxSocket {
    /// Opens the receive socket of `ifname`; `group` is joined unless `unicast`.
    pub fn open(ifname: &str, ifindex: u32, group: IpAddr, unicast: bool) -> io::Result<RxSocket> {
        let v6 = group.is_ipv6();
        let fd = socket(v6)?;
        bind_to_device(&fd, ifname)?;
        if !unicast {
            join(&fd, group, ifindex)?;
        }
        // Kernel receive timestamps: a backup's timer counts from when the advert arrived,
        // not from when the loop got to it.
        let on: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on)?;
        if v6 {
            let on: libc::c_int = 1;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &on)?;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &on)?;
        }
        // SAFETY: an OwnedFd stays open and the same until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(RxSocket { fd, v6 })
    }

    /// Replaces the socket's classic BPF filter (`sockfilter::program`).
    pub fn set_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: u16::try_from(prog.len())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            filter: prog.as_ptr().cast_mut(),
        };
        setsockopt(
            self.fd.get_ref(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog,
        )
    }

    /// Joins another group (instances with different `vrrp_mcast_group*` on one interface).
    pub fn join(&self, group: IpAddr, ifindex: u32) -> io::Result<()> {
        join(self.fd.get_ref(), group, ifindex)
    }

    pub async fn recv(&self) -> io::Result<Packet> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| self.recv_now(fd.get_ref())) {
                Ok(Ok(Some(p))) => return Ok(p),
                // Not a usable VRRP packet (truncated IP header): wait for the next one.
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    fn recv_now(&self, fd: &OwnedFd) -> io::Result<Option<Packet>> {
        let mut buf = [0u8; 2048];
        // SAFETY: all-zero is valid for these C structs.
        let mut name: libc::sockaddr_in6 = unsafe { zeroed() };
        let mut control = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: as above.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut name as *mut libc::sockaddr_in6).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 16]>();
        // SAFETY: msg points to live buffers of the lengths it states.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n > buf.len() || msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Ok(None);
        }
        let data = &buf[..n];
        let mut dst6 = None;
        let mut ttl6 = None;
        let mut stamp = None;
        // SAFETY: walking the control buffer the kernel filled, with the CMSG macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let h = &*c;
                let d = libc::CMSG_DATA(c);
                match (h.cmsg_level, h.cmsg_type) {
                    (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                        let v = std::ptr::read_unaligned(d.cast::<libc::c_int>());
                        ttl6 = u8::try_from(v).ok();
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = std::ptr::read_unaligned(d.cast::<libc::in6_pktinfo>());
                        dst6 = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                    }
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        let ts = std::ptr::read_unaligned(d.cast::<libc::timespec>());
                        stamp = Some(ts);
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let rx_at = stamp.and_then(realtime_to_monotonic);
        if !self.v6 {
            // IPv4 raw sockets deliver the IP header.
            if data.len() < 20 || data[0] >> 4 != 4 {
                return Ok(None);
            }
            let ihl = usize::from(data[0] & 0x0f) * 4;
            if ihl < 20 || data.len() < ihl || data[9] != IPPROTO_VRRP {
                return Ok(None);
            }
            let src = Ipv4Addr::new(data[12], data[13], data[14], data[15]);
            let dst = Ipv4Addr::new(data[16], data[17], data[18], data[19]);
            return Ok(Some(Packet {
                src: src.into(),
                dst: dst.into(),
                ttl: data[8],
                payload: data[ihl..].to_vec(),
                rx_at,
            }));
        }
        let src = Ipv6Addr::from(name.sin6_addr.s6_addr);
        let (Some(dst), Some(ttl)) = (dst6, ttl6) else {
            return Ok(None);
        };
        Ok(Some(Packet {
            src: src.into(),
            dst: dst.into(),
            ttl,
            payload: data.to_vec(),
            rx_at,
        }))
    }
}

/// The kernel stamps packets with CLOCK_REALTIME; the state machines run on CLOCK_MONOTONIC.
/// The offset between the clocks now converts it (a step of the wall clock between the stamp
/// and now would skew one packet's time; the runtime clamps it to the present).
fn realtime_to_monotonic(ts: libc::timespec) -> Option<std::time::Duration> {
    let stamp = std::time::Duration::new(
        u64::try_from(ts.tv_sec).ok()?,
        u32::try_from(ts.tv_nsec).ok()?,
    );
    let mut rt = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: rt is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut rt) };
    let rt_now = std::time::Duration::new(
        u64::try_from(rt.tv_sec).ok()?,
        u32::try_from(rt.tv_nsec).ok()?,
    );
    let mono_now = super::timer::monotonic_now();
    let age = rt_now.checked_sub(stamp)?;
    mono_now.checked_sub(age)
}

// ===== TxSocket =====

/// Sends one instance's adverts.
pub struct TxSocket {
    fd: OwnedFd,
    ifindex: u32,
}

impl TxSocket {
    /// `src`: the adverts' source (bound, so the kernel fills the IP header with it);
    /// `unicast_ttl`: the TTL of unicast adverts (keepalived's `unicast_ttl`, default 255).
    pub fn open(ifname: &str, ifindex: u32, src: IpAddr, unicast_ttl: u8) -> io::Result<TxSocket> {
        let fd = socket(src.is_ipv6())?;
        bind_to_device(&fd, ifname)?;
        let ttl255: libc::c_int = 255;
        let uttl = libc::c_int::from(unicast_ttl);
        let off: libc::c_int = 0;
        match src {
            IpAddr::V4(a) => {
                let m = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr { s_addr: 0 },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: ifindex as libc::c_int,
                };
                setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &m)?;
                setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl255)?;
                setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TTL, &uttl)?;
                setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
                setsockopt(&fd, libc::IPPROTO_IP, libc::IP_TOS, &TOS_NETWORK_CONTROL)?;
                bind_v4(&fd, a)?;
            }
            IpAddr::V6(a) => {
                let idx = ifindex as libc::c_int;
                setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &idx)?;
                setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl255)?;
                setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &uttl)?;
                setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
                setsockopt(
                    &fd,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_TCLASS,
                    &TOS_NETWORK_CONTROL,
                )?;
                let sa = sockaddr_v6(a, ifindex);
                // SAFETY: sa is a live sockaddr_in6 of the size passed.
                check(unsafe {
                    libc::bind(
                        fd.as_raw_fd(),
                        (&sa as *const libc::sockaddr_in6).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                })?;
            }
        }
        Ok(TxSocket { fd, ifindex })
    }

    /// Sends one VRRP message to `dst` (the group, or a unicast peer).
    pub fn send(&self, dst: IpAddr, payload: &[u8]) -> io::Result<()> {
        let n = match dst {
            IpAddr::V4(d) => {
                let sa = sockaddr_v4(d);
                // SAFETY: payload and sa are live for the call, lengths passed with them.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        payload.as_ptr().cast(),
                        payload.len(),
                        0,
                        (&sa as *const libc::sockaddr_in).cast(),
                        size_of::<libc::sockaddr_in>() as libc::socklen_t,
                    )
                }
            }
            IpAddr::V6(d) => {
                let sa = sockaddr_v6(d, self.ifindex);
                // SAFETY: as above.
                unsafe {
                    libc::sendto(
                        self.fd.as_raw_fd(),
                        payload.as_ptr().cast(),
                        payload.len(),
                        0,
                        (&sa as *const libc::sockaddr_in6).cast(),
                        size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                    )
                }
            }
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
