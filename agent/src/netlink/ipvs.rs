//! IPVS through generic netlink (the kernel's `IPVS` family, as ipvsadm's libipvs and
//! keepalived's ipvswrapper speak it): virtual services and their destinations added, changed,
//! removed and listed. The second LVS backend, for kernels with IPVS (CONFIG_IP_VS): it runs
//! what marks, tunnels with checksums and the other things the XDP balancer cannot see or do.
//!
//! Messages are built by hand: a netlink header, a genetlink header, then attributes (the
//! uapi `linux/ip_vs.h` numbering). Each request waits for the kernel's answer, a read
//! bounded by a second.

use std::net::IpAddr;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IpvsError {
    #[error("netlink socket: {0}")]
    Socket(#[from] std::io::Error),
    #[error("this kernel has no IPVS (CONFIG_IP_VS, module ip_vs)")]
    Absent,
    #[error("{what}: {}", std::io::Error::from_raw_os_error(*errno))]
    Refused { what: String, errno: i32 },
    #[error("the kernel's answer is cut or malformed")]
    Malformed,
}

// ===== uapi numbers =====

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;

const IPVS_GENL_VERSION: u8 = 1;
const CMD_NEW_SERVICE: u8 = 1;
const CMD_SET_SERVICE: u8 = 2;
const CMD_DEL_SERVICE: u8 = 3;
const CMD_GET_SERVICE: u8 = 4;
const CMD_NEW_DEST: u8 = 5;
const CMD_SET_DEST: u8 = 6;
const CMD_DEL_DEST: u8 = 7;
const CMD_GET_DEST: u8 = 8;
const CMD_NEW_DAEMON: u8 = 9;
const CMD_DEL_DAEMON: u8 = 10;
const CMD_SET_CONFIG: u8 = 12;

const CMD_ATTR_SERVICE: u16 = 1;
const CMD_ATTR_DEST: u16 = 2;
const CMD_ATTR_DAEMON: u16 = 3;
const CMD_ATTR_TIMEOUT_TCP: u16 = 4;
const CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
const CMD_ATTR_TIMEOUT_UDP: u16 = 6;

const SVC_ATTR_AF: u16 = 1;
const SVC_ATTR_PROTOCOL: u16 = 2;
const SVC_ATTR_ADDR: u16 = 3;
const SVC_ATTR_PORT: u16 = 4;
const SVC_ATTR_FWMARK: u16 = 5;
const SVC_ATTR_SCHED_NAME: u16 = 6;
const SVC_ATTR_FLAGS: u16 = 7;
const SVC_ATTR_TIMEOUT: u16 = 8;
const SVC_ATTR_NETMASK: u16 = 9;
const SVC_ATTR_PE_NAME: u16 = 11;

const DEST_ATTR_ADDR: u16 = 1;
const DEST_ATTR_PORT: u16 = 2;
const DEST_ATTR_FWD_METHOD: u16 = 3;
const DEST_ATTR_WEIGHT: u16 = 4;
const DEST_ATTR_U_THRESH: u16 = 5;
const DEST_ATTR_L_THRESH: u16 = 6;
const DEST_ATTR_ACTIVE_CONNS: u16 = 7;
const DEST_ATTR_INACT_CONNS: u16 = 8;
const DEST_ATTR_ADDR_FAMILY: u16 = 11;
const DEST_ATTR_STATS64: u16 = 12;
const DEST_ATTR_TUN_TYPE: u16 = 13;
const DEST_ATTR_TUN_PORT: u16 = 14;
const DEST_ATTR_TUN_FLAGS: u16 = 15;

const DAEMON_ATTR_STATE: u16 = 1;
const DAEMON_ATTR_MCAST_IFN: u16 = 2;
const DAEMON_ATTR_SYNC_ID: u16 = 3;
const DAEMON_ATTR_SYNC_MAXLEN: u16 = 4;
const DAEMON_ATTR_MCAST_GROUP: u16 = 5;
const DAEMON_ATTR_MCAST_GROUP6: u16 = 6;
const DAEMON_ATTR_MCAST_PORT: u16 = 7;
const DAEMON_ATTR_MCAST_TTL: u16 = 8;
/// IP_VS_STATE_MASTER / IP_VS_STATE_BACKUP.
const STATE_MASTER: u32 = 1;
const STATE_BACKUP: u32 = 2;

const STATS_ATTR_CONNS: u16 = 1;
const STATS_ATTR_INPKTS: u16 = 2;
const STATS_ATTR_OUTPKTS: u16 = 3;
const STATS_ATTR_INBYTES: u16 = 4;
const STATS_ATTR_OUTBYTES: u16 = 5;

/// `ip_vs_service_user.flags`.
pub const SVC_F_PERSISTENT: u32 = 0x1;
pub const SVC_F_ONEPACKET: u32 = 0x4;
/// `sh-fallback` / `mh-fallback`.
pub const SVC_F_SCHED1: u32 = 0x8;
/// `sh-port` / `mh-port`.
pub const SVC_F_SCHED2: u32 = 0x10;
/// The flags a service's entry sets (HASHED, 0x2, is the kernel's own).
const SVC_F_MASK: u32 = !0x2;

/// IP_VS_CONN_F_* forwarding methods.
pub const FWD_MASQ: u32 = 0;
pub const FWD_TUNNEL: u32 = 2;
pub const FWD_DROUTE: u32 = 3;

/// IP_VS_CONN_F_TUNNEL_TYPE_*.
pub const TUN_IPIP: u8 = 0;
pub const TUN_GUE: u8 = 1;
pub const TUN_GRE: u8 = 2;

// ===== types =====

/// What names a virtual service in IPVS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceId {
    Addr {
        proto: u8,
        addr: IpAddr,
        port: u16,
    },
    /// `virtual_server fwmark N` (of one address family).
    Fwmark {
        v6: bool,
        mark: u32,
    },
}

/// A virtual service as entered (`ipvsadm -A`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub id: ServiceId,
    pub sched: String,
    pub flags: u32,
    /// Persistence timeout, seconds.
    pub timeout: u32,
    /// Persistence granularity: an IPv4 netmask as a number, or an IPv6 prefix length.
    pub netmask: u32,
    /// `persistence_engine` (sip).
    pub pe: Option<String>,
}

/// A destination (real server) as entered (`ipvsadm -a`), with what the kernel counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dest {
    pub addr: Option<IpAddr>,
    pub port: u16,
    pub fwd: u32,
    pub weight: u32,
    pub u_thresh: u32,
    pub l_thresh: u32,
    pub tun_type: u8,
    pub tun_port: u16,
    pub tun_flags: u16,
    /// Read back only.
    pub counts: DestCounts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestCounts {
    pub active: u32,
    pub inactive: u32,
    pub conns: u64,
    pub in_packets: u64,
    pub out_packets: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

impl Dest {
    /// Whether `other` is entered the same (what `ipvsadm -e` would change).
    pub fn same_entry(&self, other: &Dest) -> bool {
        (
            self.fwd,
            self.weight,
            self.u_thresh,
            self.l_thresh,
            self.tun_type,
            self.tun_port,
            self.tun_flags,
        ) == (
            other.fwd,
            other.weight,
            other.u_thresh,
            other.l_thresh,
            other.tun_type,
            other.tun_port,
            other.tun_flags,
        )
    }
}

/// IPVS's connection sync daemon (`ipvsadm --start-daemon`), as keepalived's
/// `lvs_sync_daemon` configures it: 0 for an option leaves the kernel's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Daemon {
    pub ifname: String,
    pub syncid: u32,
    pub maxlen: u16,
    pub port: u16,
    pub ttl: u8,
    pub group: Option<IpAddr>,
}

// ===== attributes =====

/// A netlink message under construction: header, genetlink header, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(family: u16, flags: u16, cmd: u8, version: u8) -> Msg {
        let mut buf = vec![0u8; 20];
        buf[4..6].copy_from_slice(&family.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf[16] = cmd;
        buf[17] = version;
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn put(&mut self, kind: u16, value: &[u8]) -> &mut Msg {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self
    }

    fn u8(&mut self, kind: u16, v: u8) -> &mut Msg {
        self.put(kind, &[v])
    }

    fn u16(&mut self, kind: u16, v: u16) -> &mut Msg {
        self.put(kind, &v.to_ne_bytes())
    }

    fn be16(&mut self, kind: u16, v: u16) -> &mut Msg {
        self.put(kind, &v.to_be_bytes())
    }

    fn u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.put(kind, &v.to_ne_bytes())
    }

    fn string(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(kind, &v)
    }

    fn begin(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.put(kind, &[])
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// An address as IPVS holds it: 16 bytes (`union nf_inet_addr`), an IPv4 one first.
fn addr_bytes(a: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match a {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out = v6.octets(),
    }
    out
}

fn family(v6: bool) -> u16 {
    if v6 {
        libc::AF_INET6 as u16
    } else {
        libc::AF_INET as u16
    }
}

/// The attributes that name `id` (all a request about a service or its destinations needs).
fn put_id(m: &mut Msg, id: &ServiceId) {
    match id {
        ServiceId::Addr { proto, addr, port } => {
            m.u16(SVC_ATTR_AF, family(addr.is_ipv6()))
                .u16(SVC_ATTR_PROTOCOL, u16::from(*proto))
                .put(SVC_ATTR_ADDR, &addr_bytes(*addr))
                .be16(SVC_ATTR_PORT, *port);
        }
        ServiceId::Fwmark { v6, mark } => {
            m.u16(SVC_ATTR_AF, family(*v6)).u32(SVC_ATTR_FWMARK, *mark);
        }
    }
}

fn put_service(m: &mut Msg, s: &Service) {
    m.begin(CMD_ATTR_SERVICE);
    put_id(m, &s.id);
    let mut flags = [0u8; 8];
    flags[..4].copy_from_slice(&s.flags.to_ne_bytes());
    flags[4..].copy_from_slice(&SVC_F_MASK.to_ne_bytes());
    m.string(SVC_ATTR_SCHED_NAME, &s.sched)
        .put(SVC_ATTR_FLAGS, &flags)
        .u32(SVC_ATTR_TIMEOUT, s.timeout)
        .u32(SVC_ATTR_NETMASK, s.netmask);
    if let Some(pe) = &s.pe {
        m.string(SVC_ATTR_PE_NAME, pe);
    }
    m.end();
}

fn put_service_id(m: &mut Msg, id: &ServiceId) {
    m.begin(CMD_ATTR_SERVICE);
    put_id(m, id);
    m.end();
}

fn put_dest(m: &mut Msg, d: &Dest, full: bool) {
    let addr = d.addr.unwrap_or(IpAddr::from([0u8; 4]));
    m.begin(CMD_ATTR_DEST)
        .u16(DEST_ATTR_ADDR_FAMILY, family(addr.is_ipv6()))
        .put(DEST_ATTR_ADDR, &addr_bytes(addr))
        .be16(DEST_ATTR_PORT, d.port);
    if full {
        m.u32(DEST_ATTR_FWD_METHOD, d.fwd)
            .u32(DEST_ATTR_WEIGHT, d.weight)
            .u32(DEST_ATTR_U_THRESH, d.u_thresh)
            .u32(DEST_ATTR_L_THRESH, d.l_thresh);
        if d.fwd == FWD_TUNNEL {
            m.u8(DEST_ATTR_TUN_TYPE, d.tun_type);
            if d.tun_type == TUN_GUE {
                m.be16(DEST_ATTR_TUN_PORT, d.tun_port);
            }
            if d.tun_type != TUN_IPIP {
                m.u16(DEST_ATTR_TUN_FLAGS, d.tun_flags);
            }
        }
    }
    m.end();
}

/// A sync daemon's attributes: its role, and for a start its settings (those left 0 not
/// sent, as keepalived's ipvs_syncd_cmd).
fn put_daemon(m: &mut Msg, master: bool, d: Option<&Daemon>) {
    m.begin(CMD_ATTR_DAEMON).u32(
        DAEMON_ATTR_STATE,
        if master { STATE_MASTER } else { STATE_BACKUP },
    );
    if let Some(d) = d {
        m.string(DAEMON_ATTR_MCAST_IFN, &d.ifname)
            .u32(DAEMON_ATTR_SYNC_ID, d.syncid);
        if d.maxlen != 0 {
            m.u16(DAEMON_ATTR_SYNC_MAXLEN, d.maxlen);
        }
        if d.port != 0 {
            m.u16(DAEMON_ATTR_MCAST_PORT, d.port);
        }
        if d.ttl != 0 {
            m.u8(DAEMON_ATTR_MCAST_TTL, d.ttl);
        }
        match d.group {
            Some(IpAddr::V4(g)) => {
                m.put(DAEMON_ATTR_MCAST_GROUP, &g.octets());
            }
            Some(IpAddr::V6(g)) => {
                m.put(DAEMON_ATTR_MCAST_GROUP6, &g.octets());
            }
            None => {}
        }
    }
    m.end();
}

/// The attributes in `data`: (type without the nested/byte-order bits, value).
fn attrs(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & 0x3fff;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    out
}

fn get<'a>(list: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    list.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
}

fn get_u16(list: &[(u16, &[u8])], kind: u16) -> Option<u16> {
    get(list, kind)?
        .get(..2)
        .map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

fn get_be16(list: &[(u16, &[u8])], kind: u16) -> Option<u16> {
    get(list, kind)?
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
}

fn get_u32(list: &[(u16, &[u8])], kind: u16) -> Option<u32> {
    get(list, kind)?
        .get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn get_u64(list: &[(u16, &[u8])], kind: u16) -> Option<u64> {
    let b: [u8; 8] = get(list, kind)?.get(..8)?.try_into().ok()?;
    Some(u64::from_ne_bytes(b))
}

fn get_addr(list: &[(u16, &[u8])], kind: u16, v6: bool) -> Option<IpAddr> {
    let b = get(list, kind)?;
    if v6 {
        let o: [u8; 16] = b.get(..16)?.try_into().ok()?;
        Some(IpAddr::from(o))
    } else {
        let o: [u8; 4] = b.get(..4)?.try_into().ok()?;
        Some(IpAddr::from(o))
    }
}

fn get_string(list: &[(u16, &[u8])], kind: u16) -> Option<String> {
    let b = get(list, kind)?;
    let b = b.split(|c| *c == 0).next().unwrap_or(b);
    Some(String::from_utf8_lossy(b).into_owned())
}

fn parse_service(data: &[u8]) -> Option<Service> {
    let top = attrs(data);
    let svc = attrs(get(&top, CMD_ATTR_SERVICE)?);
    let v6 = get_u16(&svc, SVC_ATTR_AF)? == family(true);
    let id = match get_u32(&svc, SVC_ATTR_FWMARK).filter(|m| *m != 0) {
        Some(mark) => ServiceId::Fwmark { v6, mark },
        None => ServiceId::Addr {
            proto: get_u16(&svc, SVC_ATTR_PROTOCOL)? as u8,
            addr: get_addr(&svc, SVC_ATTR_ADDR, v6)?,
            port: get_be16(&svc, SVC_ATTR_PORT)?,
        },
    };
    let flags = get(&svc, SVC_ATTR_FLAGS)?;
    Some(Service {
        id,
        sched: get_string(&svc, SVC_ATTR_SCHED_NAME)?,
        flags: u32::from_ne_bytes(flags.get(..4)?.try_into().ok()?) & SVC_F_MASK,
        timeout: get_u32(&svc, SVC_ATTR_TIMEOUT)?,
        netmask: get_u32(&svc, SVC_ATTR_NETMASK)?,
        pe: get_string(&svc, SVC_ATTR_PE_NAME).filter(|p| !p.is_empty()),
    })
}

fn parse_dest(data: &[u8]) -> Option<Dest> {
    let top = attrs(data);
    let d = attrs(get(&top, CMD_ATTR_DEST)?);
    let v6 = get_u16(&d, DEST_ATTR_ADDR_FAMILY).is_some_and(|f| f == family(true));
    let stats = get(&d, DEST_ATTR_STATS64).map(attrs).unwrap_or_default();
    Some(Dest {
        addr: Some(get_addr(&d, DEST_ATTR_ADDR, v6)?),
        port: get_be16(&d, DEST_ATTR_PORT)?,
        fwd: get_u32(&d, DEST_ATTR_FWD_METHOD)? & 0x7,
        weight: get_u32(&d, DEST_ATTR_WEIGHT)?,
        u_thresh: get_u32(&d, DEST_ATTR_U_THRESH).unwrap_or(0),
        l_thresh: get_u32(&d, DEST_ATTR_L_THRESH).unwrap_or(0),
        tun_type: get(&d, DEST_ATTR_TUN_TYPE)
            .and_then(|b| b.first().copied())
            .unwrap_or(0),
        tun_port: get_be16(&d, DEST_ATTR_TUN_PORT).unwrap_or(0),
        tun_flags: get_u16(&d, DEST_ATTR_TUN_FLAGS).unwrap_or(0),
        counts: DestCounts {
            active: get_u32(&d, DEST_ATTR_ACTIVE_CONNS).unwrap_or(0),
            inactive: get_u32(&d, DEST_ATTR_INACT_CONNS).unwrap_or(0),
            conns: get_u64(&stats, STATS_ATTR_CONNS).unwrap_or(0),
            in_packets: get_u64(&stats, STATS_ATTR_INPKTS).unwrap_or(0),
            out_packets: get_u64(&stats, STATS_ATTR_OUTPKTS).unwrap_or(0),
            in_bytes: get_u64(&stats, STATS_ATTR_INBYTES).unwrap_or(0),
            out_bytes: get_u64(&stats, STATS_ATTR_OUTBYTES).unwrap_or(0),
        },
    })
}

// ===== impl Ipvs =====

/// A generic netlink socket speaking to the kernel's IPVS family.
pub struct Ipvs {
    sock: netlink_sys::Socket,
    family: u16,
    seq: std::cell::Cell<u32>,
}

impl Ipvs {
    /// Finds the IPVS family, loading the module first if the kernel does not know it yet
    /// (keepalived runs `modprobe ip_vs` too).
    pub fn open() -> Result<Ipvs, IpvsError> {
        let sock = super::socket(netlink_sys::protocols::NETLINK_GENERIC)?;
        let mut ipvs = Ipvs {
            sock,
            family: GENL_ID_CTRL,
            seq: std::cell::Cell::new(0),
        };
        let family = match ipvs.family_id() {
            Ok(id) => id,
            Err(IpvsError::Refused { .. }) => {
                let _ = std::process::Command::new("modprobe")
                    .arg("ip_vs")
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status();
                ipvs.family_id().map_err(|e| match e {
                    IpvsError::Refused { .. } => IpvsError::Absent,
                    e => e,
                })?
            }
            Err(e) => return Err(e),
        };
        ipvs.family = family;
        Ok(ipvs)
    }

    fn family_id(&self) -> Result<u16, IpvsError> {
        let mut m = Msg::new(GENL_ID_CTRL, NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
        m.string(CTRL_ATTR_FAMILY_NAME, "IPVS");
        let replies = self.ask(m, "the IPVS family")?;
        replies
            .iter()
            .find_map(|r| get_u16(&attrs(r), CTRL_ATTR_FAMILY_ID))
            .ok_or(IpvsError::Malformed)
    }

    /// Sends `m` and reads the answers up to the acknowledgement or the end of the dump:
    /// each message's attributes (after the genetlink header).
    fn ask(&self, m: Msg, what: &str) -> Result<Vec<Vec<u8>>, IpvsError> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let dump = u16::from_ne_bytes([m.buf[6], m.buf[7]]) & NLM_F_DUMP == NLM_F_DUMP;
        self.sock.send(&m.finish(seq), 0)?;
        let mut out = Vec::new();
        loop {
            // With a receive timeout, a signal (a script's SIGCHLD, SIGHUP) is not restarted
            // over: read again.
            let (datagram, _) = match self.sock.recv_from_full() {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            let mut data = &datagram[..];
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().unwrap_or_default()) as usize;
                let kind = u16::from_ne_bytes([data[4], data[5]]);
                let got = u32::from_ne_bytes(data[8..12].try_into().unwrap_or_default());
                if len < 16 || len > data.len() {
                    return Err(IpvsError::Malformed);
                }
                let body = &data[16..len];
                data = &data[len.next_multiple_of(4).min(data.len())..];
                if got != seq {
                    // An answer to an earlier request that timed out.
                    continue;
                }
                match kind {
                    // A dump's end carries its error, if it failed on the way.
                    NLMSG_ERROR | NLMSG_DONE => {
                        let code = body
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or(IpvsError::Malformed)?;
                        if code != 0 {
                            return Err(IpvsError::Refused {
                                what: what.to_string(),
                                errno: -code,
                            });
                        }
                        return Ok(out);
                    }
                    _ => {
                        out.push(body.get(4..).unwrap_or_default().to_vec());
                        if !dump {
                            // A plain answer is followed by the acknowledgement.
                            continue;
                        }
                    }
                }
            }
        }
    }

    fn request(&self, cmd: u8, flags: u16) -> Msg {
        Msg::new(self.family, flags, cmd, IPVS_GENL_VERSION)
    }

    /// Every virtual service in the kernel (`ipvsadm -L`).
    pub fn services(&self) -> Result<Vec<Service>, IpvsError> {
        let m = self.request(CMD_GET_SERVICE, NLM_F_DUMP);
        let replies = self.ask(m, "listing IPVS services")?;
        Ok(replies.iter().filter_map(|r| parse_service(r)).collect())
    }

    /// Adds `s`, or changes its scheduler and persistence when it is there already.
    pub fn put_service(&self, s: &Service, exists: bool) -> Result<(), IpvsError> {
        let cmd = if exists {
            CMD_SET_SERVICE
        } else {
            CMD_NEW_SERVICE
        };
        let mut m = self.request(cmd, NLM_F_ACK);
        put_service(&mut m, s);
        self.ask(m, &format!("entering IPVS service {}", id_name(&s.id)))
            .map(drop)
    }

    pub fn del_service(&self, id: &ServiceId) -> Result<(), IpvsError> {
        let mut m = self.request(CMD_DEL_SERVICE, NLM_F_ACK);
        put_service_id(&mut m, id);
        self.ask(m, &format!("removing IPVS service {}", id_name(id)))
            .map(drop)
    }

    /// The destinations of a service, with their counters (`ipvsadm -L --stats`).
    pub fn dests(&self, id: &ServiceId) -> Result<Vec<Dest>, IpvsError> {
        let mut m = self.request(CMD_GET_DEST, NLM_F_DUMP);
        put_service_id(&mut m, id);
        let replies = self.ask(m, &format!("listing the servers of {}", id_name(id)))?;
        Ok(replies.iter().filter_map(|r| parse_dest(r)).collect())
    }

    /// Adds `d` to the service (`new`), or changes how it is entered.
    pub fn put_dest(&self, id: &ServiceId, d: &Dest, new: bool) -> Result<(), IpvsError> {
        let cmd = if new { CMD_NEW_DEST } else { CMD_SET_DEST };
        let mut m = self.request(cmd, NLM_F_ACK);
        put_service_id(&mut m, id);
        put_dest(&mut m, d, true);
        self.ask(m, &format!("entering {} in {}", dest_name(d), id_name(id)))
            .map(drop)
    }

    /// IPVS's connection timeouts, seconds (`ipvsadm --set TCP TCPFIN UDP`; 0 leaves one as
    /// it is).
    pub fn set_timeouts(&self, [tcp, tcp_fin, udp]: [u32; 3]) -> Result<(), IpvsError> {
        let mut m = self.request(CMD_SET_CONFIG, NLM_F_ACK);
        m.u32(CMD_ATTR_TIMEOUT_TCP, tcp)
            .u32(CMD_ATTR_TIMEOUT_TCP_FIN, tcp_fin)
            .u32(CMD_ATTR_TIMEOUT_UDP, udp);
        self.ask(m, "setting IPVS's timeouts").map(drop)
    }

    /// Starts the sync daemon in the master (sends the connections) or backup (receives
    /// them) role.
    pub fn start_daemon(&self, master: bool, d: &Daemon) -> Result<(), IpvsError> {
        let mut m = self.request(CMD_NEW_DAEMON, NLM_F_ACK);
        put_daemon(&mut m, master, Some(d));
        let role = if master { "master" } else { "backup" };
        self.ask(m, &format!("starting IPVS's {role} sync daemon"))
            .map(drop)
    }

    pub fn stop_daemon(&self, master: bool) -> Result<(), IpvsError> {
        let mut m = self.request(CMD_DEL_DAEMON, NLM_F_ACK);
        put_daemon(&mut m, master, None);
        let role = if master { "master" } else { "backup" };
        self.ask(m, &format!("stopping IPVS's {role} sync daemon"))
            .map(drop)
    }

    pub fn del_dest(&self, id: &ServiceId, d: &Dest) -> Result<(), IpvsError> {
        let mut m = self.request(CMD_DEL_DEST, NLM_F_ACK);
        put_service_id(&mut m, id);
        put_dest(&mut m, d, false);
        self.ask(
            m,
            &format!("removing {} from {}", dest_name(d), id_name(id)),
        )
        .map(drop)
    }
}

fn dest_name(d: &Dest) -> String {
    match d.addr {
        Some(IpAddr::V6(a)) => format!("[{a}]:{}", d.port),
        Some(a) => format!("{a}:{}", d.port),
        None => format!("?:{}", d.port),
    }
}

/// `TCP 192.168.1.200:80`, `FWM 1`, as ipvsadm lists them.
pub fn id_name(id: &ServiceId) -> String {
    match id {
        ServiceId::Addr { proto, addr, port } => {
            let p = match *proto as i32 {
                libc::IPPROTO_TCP => "TCP",
                libc::IPPROTO_UDP => "UDP",
                libc::IPPROTO_SCTP => "SCTP",
                _ => "?",
            };
            match addr {
                IpAddr::V6(a) => format!("{p} [{a}]:{port}"),
                IpAddr::V4(a) => format!("{p} {a}:{port}"),
            }
        }
        ServiceId::Fwmark { v6, mark } => {
            format!("FWM {mark}{}", if *v6 { " IPv6" } else { "" })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> Service {
        Service {
            id: ServiceId::Addr {
                proto: 6,
                addr: "192.168.1.200".parse().unwrap(),
                port: 80,
            },
            sched: "wrr".into(),
            flags: SVC_F_PERSISTENT,
            timeout: 50,
            netmask: u32::MAX,
            pe: None,
        }
    }

    /// A request as the kernel reads it: the header's length covers the message, the
    /// service is one nested attribute with its fields in the uapi order and encodings.
    #[test]
    fn a_new_service_request_is_laid_out_as_the_kernel_reads_it() {
        let mut m = Msg::new(0x22, NLM_F_ACK, CMD_NEW_SERVICE, IPVS_GENL_VERSION);
        put_service(&mut m, &svc());
        let buf = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), 0x22);
        assert_eq!(
            u16::from_ne_bytes([buf[6], buf[7]]),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
        assert_eq!((buf[16], buf[17]), (CMD_NEW_SERVICE, 1));
        let top = attrs(&buf[20..]);
        assert_eq!(top.len(), 1);
        let inner = attrs(get(&top, CMD_ATTR_SERVICE).unwrap());
        assert_eq!(get_u16(&inner, SVC_ATTR_AF), Some(libc::AF_INET as u16));
        assert_eq!(get_u16(&inner, SVC_ATTR_PROTOCOL), Some(6));
        assert_eq!(
            get(&inner, SVC_ATTR_ADDR).unwrap(),
            &[192, 168, 1, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // The port in network order, as IPVS keeps it.
        assert_eq!(get(&inner, SVC_ATTR_PORT).unwrap(), &[0, 80]);
        assert_eq!(get(&inner, SVC_ATTR_SCHED_NAME).unwrap(), b"wrr\0");
        assert_eq!(get_u32(&inner, SVC_ATTR_TIMEOUT), Some(50));
        assert_eq!(get_u32(&inner, SVC_ATTR_NETMASK), Some(u32::MAX));
        // What the kernel answers to a dump reads back the same.
        assert_eq!(parse_service(&buf[20..]), Some(svc()));
    }

    #[test]
    fn a_destination_round_trips_and_a_tunnel_carries_its_type() {
        let d = Dest {
            addr: Some("2001:db8::5".parse().unwrap()),
            port: 8080,
            fwd: FWD_TUNNEL,
            weight: 3,
            u_thresh: 100,
            l_thresh: 50,
            tun_type: TUN_GUE,
            tun_port: 5555,
            tun_flags: 1,
            counts: DestCounts::default(),
        };
        let mut m = Msg::new(0x22, NLM_F_ACK, CMD_NEW_DEST, 1);
        put_service_id(&mut m, &ServiceId::Fwmark { v6: true, mark: 9 });
        put_dest(&mut m, &d, true);
        let buf = m.finish(1);
        let top = attrs(&buf[20..]);
        let svc = attrs(get(&top, CMD_ATTR_SERVICE).unwrap());
        assert_eq!(get_u32(&svc, SVC_ATTR_FWMARK), Some(9));
        assert_eq!(get_u16(&svc, SVC_ATTR_AF), Some(libc::AF_INET6 as u16));
        assert_eq!(parse_dest(&buf[20..]), Some(d.clone()));
        // Removal names the server only.
        let mut m = Msg::new(0x22, NLM_F_ACK, CMD_DEL_DEST, 1);
        put_dest(&mut m, &d, false);
        let buf = m.finish(2);
        let dest = attrs(get(&attrs(&buf[20..]), CMD_ATTR_DEST).unwrap());
        assert_eq!(
            dest.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            [DEST_ATTR_ADDR_FAMILY, DEST_ATTR_ADDR, DEST_ATTR_PORT]
        );
    }

    /// Attributes cut short or claiming more than is there end the list, never a panic.
    #[test]
    fn malformed_attributes_end_the_list() {
        assert!(attrs(&[8, 0, 1, 0, 1, 2]).is_empty());
        assert!(attrs(&[2, 0, 1, 0]).is_empty());
        assert_eq!(attrs(&[5, 0, 1, 0, 9, 0, 0, 0]), vec![(1, &[9u8][..])]);
        assert_eq!(parse_service(&[4, 0, 1, 0]), None);
        assert_eq!(parse_dest(&[]), None);
    }

    /// A daemon's start carries its role, interface and sync id, and only the options set;
    /// its stop, the role alone.
    #[test]
    fn sync_daemon_requests() {
        let d = Daemon {
            ifname: "eth0".into(),
            syncid: 51,
            port: 8848,
            group: Some("224.0.0.81".parse().unwrap()),
            ..Default::default()
        };
        let mut m = Msg::new(0x22, NLM_F_ACK, CMD_NEW_DAEMON, 1);
        put_daemon(&mut m, true, Some(&d));
        let buf = m.finish(1);
        let inner = attrs(get(&attrs(&buf[20..]), CMD_ATTR_DAEMON).unwrap());
        assert_eq!(get_u32(&inner, DAEMON_ATTR_STATE), Some(STATE_MASTER));
        assert_eq!(get(&inner, DAEMON_ATTR_MCAST_IFN).unwrap(), b"eth0\0");
        assert_eq!(get_u32(&inner, DAEMON_ATTR_SYNC_ID), Some(51));
        assert_eq!(get_u16(&inner, DAEMON_ATTR_MCAST_PORT), Some(8848));
        assert_eq!(
            get(&inner, DAEMON_ATTR_MCAST_GROUP).unwrap(),
            &[224, 0, 0, 81]
        );
        assert!(get(&inner, DAEMON_ATTR_SYNC_MAXLEN).is_none());
        assert!(get(&inner, DAEMON_ATTR_MCAST_TTL).is_none());
        let mut m = Msg::new(0x22, NLM_F_ACK, CMD_DEL_DAEMON, 1);
        put_daemon(&mut m, false, None);
        let buf = m.finish(2);
        let inner = attrs(get(&attrs(&buf[20..]), CMD_ATTR_DAEMON).unwrap());
        assert_eq!(inner.len(), 1);
        assert_eq!(get_u32(&inner, DAEMON_ATTR_STATE), Some(STATE_BACKUP));
    }

    #[test]
    fn services_are_named_as_ipvsadm_lists_them() {
        assert_eq!(id_name(&svc().id), "TCP 192.168.1.200:80");
        assert_eq!(id_name(&ServiceId::Fwmark { v6: false, mark: 1 }), "FWM 1");
    }
}
