//! A client probing a virtual IP from its namespace, as a user would see the service: an ICMP
//! echo every `interval` through the client's own IP stack (its ARP cache, updated by GARPs),
//! and a broadcast ARP request for the VIP every `arp_every` probes. Every echo reply and ARP
//! reply is recorded with the MAC that sent it, so tests can say who answered, when, and
//! whether two routers ever answered at once. Sequence numbers are 16 bits: one probe runs at
//! most 65536 echoes (65 s at 1 ms).

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{capture, netns::Netns};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Arp,
    /// A VRRP advert seen on the LAN (with its priority).
    Advert(u8),
    /// A gratuitous ARP for the VIP.
    Garp,
}

/// One reply seen on the client's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: Kind,
    /// Echo: the sequence number answered; ARP: the round it answered.
    pub seq: u16,
    pub at: Instant,
    pub mac: [u8; 6],
}

#[derive(Debug, Default)]
pub struct Record {
    /// Send time of each echo, by sequence number.
    pub sent: Vec<Instant>,
    pub replies: Vec<Reply>,
}

/// The newest VRRP advert seen: (when, sender MAC).
type LastAdvert = Arc<std::sync::Mutex<Option<(Instant, [u8; 6])>>>;

pub struct Probe {
    stop: Arc<AtomicBool>,
    last_advert: LastAdvert,
    thread: Option<JoinHandle<Result<Result<Record>>>>,
}

impl Probe {
    /// Starts probing `vip` from `iface` (MAC `mac`, address `src`) in `ns`.
    pub fn start(
        ns: &Netns,
        iface: &str,
        mac: [u8; 6],
        src: Ipv4Addr,
        vip: Ipv4Addr,
        interval: Duration,
        arp_every: u16,
    ) -> Result<Probe> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let last_advert = LastAdvert::default();
        let seen = last_advert.clone();
        let iface = iface.to_string();
        let thread = ns.thread(move || {
            let setup = Setup {
                iface: &iface,
                mac,
                src,
                vip,
                interval,
                arp_every: arp_every.max(1),
            };
            run(&setup, &flag, &seen)
        })?;
        Ok(Probe {
            stop,
            last_advert,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) -> Result<Record> {
        self.stop.store(true, Ordering::Relaxed);
        let t = self.thread.take().expect("stopped once");
        t.join()
            .map_err(|_| anyhow::anyhow!("probe thread panicked"))??
    }
}

impl Probe {
    /// Waits for the next advert from `mac` (after this call); when it was seen.
    pub fn next_advert_from(&self, mac: [u8; 6], timeout: Duration) -> Option<Instant> {
        let after = Instant::now();
        // A fine-grained poll: the caller times a fault against this advert.
        while after.elapsed() < timeout {
            let l = *self.last_advert.lock().ok()?;
            if let Some((at, m)) = l
                && at > after
                && m == mac
            {
                return Some(at);
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        None
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn icmp_socket() -> Result<OwnedFd> {
    // SAFETY: plain socket(2), owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_ICMP,
        )
    };
    if fd < 0 {
        bail!("ICMP socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn send_echo(fd: &OwnedFd, vip: Ipv4Addr, id: u16, seq: u16) {
    let mut m = vec![8, 0, 0, 0];
    m.extend(id.to_be_bytes());
    m.extend(seq.to_be_bytes());
    m.extend([0u8; 16]);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    // SAFETY: all-zero sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_addr.s_addr = u32::from_ne_bytes(vip.octets());
    // SAFETY: buffers live for the call. Errors (no ARP answer yet) are just lost probes.
    unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            m.as_ptr().cast(),
            m.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
    }
}

fn arp_request(mac: [u8; 6], src: Ipv4Addr, vip: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(mac);
    f.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend(mac);
    f.extend(src.octets());
    f.extend([0; 6]);
    f.extend(vip.octets());
    f
}

/// An echo reply for `id`, an ARP reply or gratuitous ARP for `vip`, or a VRRP advert, as
/// (kind, seq, sender MAC).
fn parse_reply(f: &[u8], id: u16, vip: Ipv4Addr, ours: [u8; 6]) -> Option<(Kind, u16, [u8; 6])> {
    if f.len() < 42 || f[6..12] == ours {
        return None;
    }
    let mac: [u8; 6] = f[6..12].try_into().ok()?;
    match u16::from_be_bytes([f[12], f[13]]) {
        0x0806 if f[20..22] == [0, 2] && f[28..32] == vip.octets() => Some((Kind::Arp, 0, mac)),
        0x0806 if f[20..22] == [0, 1] && f[28..32] == vip.octets() && f[38..42] == vip.octets() => {
            Some((Kind::Garp, 0, mac))
        }
        0x0800 if f[23] == 112 => {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let prio = *f.get(14 + ihl + 2)?;
            Some((Kind::Advert(prio), 0, mac))
        }
        0x0800 => {
            let ihl = usize::from(f[14] & 0x0f) * 4;
            let icmp = f.get(14 + ihl..)?;
            (f[23] == 1
                && f[26..30] == vip.octets()
                && icmp.len() >= 8
                && icmp[0] == 0
                && u16::from_be_bytes([icmp[4], icmp[5]]) == id)
                .then(|| (Kind::Echo, u16::from_be_bytes([icmp[6], icmp[7]]), mac))
        }
        _ => None,
    }
}

/// What one probe sends, from where.
struct Setup<'a> {
    iface: &'a str,
    mac: [u8; 6],
    src: Ipv4Addr,
    vip: Ipv4Addr,
    interval: Duration,
    arp_every: u16,
}

fn run(setup: &Setup, stop: &AtomicBool, last_advert: &LastAdvert) -> Result<Record> {
    let &Setup {
        iface,
        mac,
        src,
        vip,
        interval,
        arp_every,
    } = setup;
    let cap = capture::open(iface).context("probe capture")?;
    let icmp = icmp_socket()?;
    let id = (std::process::id() & 0xffff) as u16;
    let mut rec = Record::default();
    let mut next = Instant::now();
    let mut seq: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next {
            if seq.is_multiple_of(arp_every) {
                let _ = cap.send(&arp_request(mac, src, vip));
            }
            send_echo(&icmp, vip, id, seq);
            rec.sent.push(now);
            seq = seq.wrapping_add(1);
            next += interval;
            continue;
        }
        if let Some(f) = cap.next_matching(next - now, |f| parse_reply(f, id, vip, mac).is_some())
            && let Some((kind, s, m)) = parse_reply(&f, id, vip, mac)
        {
            let at = Instant::now();
            if matches!(kind, Kind::Advert(p) if p > 0)
                && let Ok(mut l) = last_advert.lock()
            {
                *l = Some((at, m));
            }
            rec.replies.push(Reply {
                kind,
                seq: if kind != Kind::Echo {
                    seq.wrapping_sub(1)
                } else {
                    s
                },
                at,
                mac: m,
            });
        }
    }
    Ok(rec)
}

impl Record {
    /// Echo replies in order of the probe answered.
    pub fn echoes(&self) -> impl Iterator<Item = &Reply> {
        self.replies.iter().filter(|r| r.kind == Kind::Echo)
    }

    /// The longest time the VIP did not answer, between `from` and `to`: the widest gap between
    /// the send times of successive answered echoes, less one interval (0 when none was lost).
    pub fn outage(&self, from: Instant, to: Instant) -> Option<Duration> {
        let mut answered: Vec<Instant> = self
            .echoes()
            .filter_map(|r| self.sent.get(usize::from(r.seq)).copied())
            .filter(|t| *t >= from && *t <= to)
            .collect();
        answered.sort();
        answered.dedup();
        let interval = self
            .sent
            .windows(2)
            .map(|w| w[1] - w[0])
            .min()
            .unwrap_or_default();
        answered
            .windows(2)
            .map(|w| (w[1] - w[0]).saturating_sub(interval))
            .max()
    }

    /// Every MAC that answered (echo or ARP reply) at or after `from`.
    pub fn macs_since(&self, from: Instant) -> Vec<[u8; 6]> {
        let mut m: Vec<[u8; 6]> = self
            .replies
            .iter()
            .filter(|r| r.at >= from && matches!(r.kind, Kind::Echo | Kind::Arp))
            .map(|r| r.mac)
            .collect();
        m.sort();
        m.dedup();
        m
    }

    /// The MAC of the last echo reply.
    pub fn last_echo_mac(&self) -> Option<[u8; 6]> {
        self.echoes().last().map(|r| r.mac)
    }
}
