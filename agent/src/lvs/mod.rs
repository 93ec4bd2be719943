//! The LVS side: `virtual_server` blocks served by the XDP direct-routing balancer
//! (`agent-ebpf/src/lb.rs`), or by IPVS where the kernel has it (`ipvs`, `--lvs-backend`),
//! their real servers' health checked with keepalived's checkers.
//!
//! The balancer owns the services' entries in the XDP maps. A real server takes new flows
//! while all its checkers say up, its weight is above 0 and its MAC is known (the kernel
//! resolves it when a check connects). Each change rebuilds the service's schedule in the
//! half of its ring slice not in use, then switches the service entry to it: the kernel sees
//! either schedule, never a mix.

pub mod check;
mod ipvs;
pub mod key;
pub mod model;
pub mod sched;
pub mod syncd;

use std::net::IpAddr;

use agent_common::{
    FLOW_CLOSED, FLOW_OPEN, Flow, LB_LEAST_MAX, LB_REAL_NAT, LB_REAL_TUN, LB_REAL_UP, LB_REALS_MAX,
    LB_RING_SIZE, LB_SERVICES_MAX, LB_SVC_FOLLOW_VIP, LB_SVC_HASH, LB_SVC_HASH_DST,
    LB_SVC_HASH_PORT, LB_SVC_LBLC, LB_SVC_LBLCR, LB_SVC_LEAST, LB_SVC_NQ, LB_SVC_OPS, LB_SVC_OVF,
    LB_SVC_SED, LB_SVC_SPARE, LB_SVC_TWOS, LB_SVC_WEIGHTED, Real, Service,
};
use log::{info, warn};
use tokio::{
    runtime::Handle,
    sync::mpsc,
    task::{AbortHandle, JoinHandle},
};

use crate::{
    config::model::Config,
    track::exec::{self, RunAs},
    xdp::maps::{AnyFlowKey, FlowTable, Maps, SvcKey},
};
use model::{Algo, VirtualService};

struct RealState {
    /// Index in LB_REALS (and LB_CONNS, LB_REAL_STATS; flows and persistence name it).
    index: u32,
    /// When the index was new to this real server (none: it had it before a reload). Flows
    /// older than this that name it were another server's (see `sweep`).
    fresh_since: Option<std::time::Duration>,
    /// Per checker: up by its rules (no checker: always up).
    checks_up: Vec<bool>,
    /// Each checker's share of the weight (see [`check::Report::share`]).
    checks_share: Vec<i64>,
    /// The weight in force.
    weight: u32,
    /// Open flows as last counted (lc/wlc), and flows the sweep found idle past their
    /// timeout without a close (they no longer count).
    conns: u32,
    expired: u64,
    /// Its entry says up (it keeps or takes flows).
    entered_up: bool,
    /// Where its frames go, once its MAC is known (from its checkers' reports).
    path: Option<check::Path>,
    /// NAT: its port (the virtual server's address and port become its own).
    nat_port: Option<u16>,
    /// TUN: reached through a tunnel (its path is to the next hop).
    tunnel: Option<model::Tunnel>,
    /// As keepalived's `rs->alive`: every checker up.
    alive: bool,
    /// Over its `uthreshold` (IPVS's IP_VS_DEST_F_OVERLOAD): no new flows until it is down to
    /// its lower threshold.
    overloaded: bool,
}

struct Svc {
    vs: VirtualService,
    /// Each address and port it answers on, with the flags of its entry.
    keys: Vec<(SvcKey, u32)>,
    /// Each address's slot for its own counters (`LB_ENTRY_STATS`), as `keys`.
    entries: Vec<u32>,
    id: u32,
    /// The two halves of its ring slice; `half` is the one in use.
    bases: [u32; 2],
    half: usize,
    reals: Vec<RealState>,
    /// The servers in its current schedule.
    serving: Vec<u32>,
    /// `sorry_server`: in the schedule, alone, while quorum is lost.
    sorry: Option<RealState>,
    /// keepalived's `quorum_state_up`.
    quorum_up: bool,
    /// `ha_suspend` on a service that follows a VIP: whether its checkers run (this node
    /// holds one of its addresses), told to them through the channel.
    gate: Option<tokio::sync::watch::Sender<bool>>,
    /// `LB_SVC_SPARE` as last published (lblc / lblcr).
    spare: bool,
    /// Run by IPVS (then it has no place in the XDP maps).
    ipvs: Option<ipvs::IpvsSvc>,
}

/// `--lvs-backend`: what runs the virtual servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The XDP balancer, and IPVS (where the kernel has it) for what XDP cannot run.
    #[default]
    Auto,
    /// The XDP balancer only.
    Xdp,
    /// IPVS only, as keepalived.
    Ipvs,
}

/// Where a service's changes are entered: the XDP maps, IPVS, or both (each service uses
/// one).
struct Sinks<'a> {
    maps: Option<&'a mut Maps>,
    ipvs: Option<&'a crate::netlink::ipvs::Ipvs>,
}

/// What a reload carries from the running balancer into the new one, keyed by virtual
/// server, real server and checker configuration: each checker's state, each real server's
/// MAC, and where each service and real server sits in the kernel maps. A real server that
/// stays keeps its index, so the flows and persistence entries that name it keep going to it
/// (and its flow counts go on); a service that stays keeps its id (its round-robin position
/// and persistence entries) and ring slice. New ones get places the running balancer does
/// not use, so nothing still pointing there is taken over.
#[derive(Default)]
pub struct Carried {
    checks: Vec<(String, IpAddr, u16, model::Check, bool)>,
    macs: Vec<(IpAddr, [u8; 6])>,
    /// (virtual server, address, port) → (index, flows counted as expired, since when it
    /// has had the index, if it was new to it).
    reals: Vec<(String, IpAddr, u16, u32, u64, Option<std::time::Duration>)>,
    /// Virtual server → its sorry server's index.
    sorries: Vec<(String, u32)>,
    /// Virtual server → (id, ring slice halves, the half in use).
    services: Vec<(String, u32, [u32; 2], usize)>,
    /// Each address's counter slot.
    entries: Vec<(SvcKey, u32)>,
}

impl Carried {
    fn real(
        &self,
        vs: &str,
        real: &model::RealServer,
    ) -> Option<(u32, u64, Option<std::time::Duration>)> {
        self.reals
            .iter()
            .find(|(v, a, p, ..)| v == vs && *a == real.addr && *p == real.port)
            .map(|(.., i, e, since)| (*i, *e, *since))
    }

    fn service(&self, vs: &str) -> Option<(u32, [u32; 2], usize)> {
        self.services
            .iter()
            .find(|(v, ..)| v == vs)
            .map(|(_, id, b, h)| (*id, *b, *h))
    }

    /// What the balancer this one replaces uses.
    fn in_use(&self) -> InUse {
        let reals = self
            .reals
            .iter()
            .map(|r| r.3)
            .chain(self.sorries.iter().map(|s| s.1))
            .collect();
        let ids = self.services.iter().map(|s| s.1).collect();
        let rings = self
            .services
            .iter()
            .map(|(_, _, b, _)| (b[0].min(b[1]), b[0].abs_diff(b[1]) * 2))
            .collect();
        let entries = self.entries.iter().map(|e| e.1).collect();
        InUse {
            reals,
            ids,
            rings,
            entries,
        }
    }

    fn entry(&self, key: &SvcKey) -> Option<u32> {
        self.entries.iter().find(|(k, _)| k == key).map(|e| e.1)
    }

    fn check(&self, vs: &str, real: &model::RealServer, check: &model::Check) -> Option<bool> {
        self.checks
            .iter()
            .find(|(v, a, p, c, _)| {
                v == vs && *a == real.addr && *p == real.port && c.same_probe(check)
            })
            .map(|(.., up)| *up)
    }

    fn mac(&self, addr: IpAddr) -> Option<[u8; 6]> {
        self.macs.iter().find(|(a, _)| *a == addr).map(|(_, m)| *m)
    }

    /// Each of `real`'s checkers' state carried over (if it was running), and its state to
    /// start with (carried, else down under `alpha`, else up).
    fn checks_up(&self, vs: &str, real: &model::RealServer) -> (Vec<Option<bool>>, Vec<bool>) {
        let carried: Vec<Option<bool>> = real
            .checks
            .iter()
            .map(|c| self.check(vs, real, c))
            .collect();
        let up = real
            .checks
            .iter()
            .zip(&carried)
            .map(|(c, up)| up.unwrap_or(!c.alpha))
            .collect();
        (carried, up)
    }
}

/// What starting a real server's checkers needs.
struct Spawn<'a> {
    helpers: &'a Handle,
    tx: &'a mpsc::UnboundedSender<check::Report>,
    run_as: RunAs,
    carried: &'a Carried,
}

impl Spawn<'_> {
    /// Starts `real`'s checkers, each reporting as (`index`, its position).
    fn checks(
        &self,
        (vs, real): (&VirtualService, &model::RealServer),
        index: u32,
        carried_up: &[Option<bool>],
        gate: Option<&tokio::sync::watch::Sender<bool>>,
    ) -> Vec<AbortHandle> {
        let mut tasks = Vec::new();
        for (c, chk) in real.checks.iter().enumerate() {
            let who = match &chk.kind {
                model::CheckKind::Misc(m) => match &m.user {
                    Some((u, grp)) => exec::run_as(Some(u), grp.as_deref(), self.run_as),
                    None => Some(self.run_as),
                },
                _ => Some(self.run_as),
            };
            let Some(who) = who else {
                // keepalived drops the checker; its server then has one fewer.
                warn!(
                    "Failed to set uid/gid for misc checker script of {} - removing",
                    vs.real_name(real)
                );
                continue;
            };
            tasks.push(
                self.helpers
                    .spawn(check::run(
                        chk.clone(),
                        (index, c),
                        (vs.real_name(real), vs.name()),
                        (who, carried_up[c]),
                        gate.map(|g| g.subscribe()),
                        self.tx.clone(),
                    ))
                    .abort_handle(),
            );
        }
        tasks
    }
}

/// A virtual server run by IPVS: its servers' states and checkers (not yet entered). Its
/// servers report under indices from `next` on.
fn ipvs_service(
    (vs, entry): (VirtualService, ipvs::IpvsSvc),
    (vip, held): (&impl Fn(IpAddr) -> bool, &impl Fn(IpAddr) -> bool),
    next: &mut u32,
    spawn: &Spawn,
) -> (Svc, Vec<AbortHandle>) {
    let name = vs.name();
    let mut tasks = Vec::new();
    // keepalived's ha_suspend, as for the XDP balancer.
    let gate = (vs.ha_suspend && vs.entries.iter().any(|(a, _)| vip(*a))).then(|| {
        let on = vs.entries.iter().any(|(a, _)| held(*a));
        tokio::sync::watch::channel(on).0
    });
    let mut reals = Vec::new();
    for real in &vs.reals {
        let index = *next;
        *next = next.wrapping_add(1);
        let (carried_up, checks_up) = spawn.carried.checks_up(&name, real);
        tasks.extend(spawn.checks((&vs, real), index, &carried_up, gate.as_ref()));
        reals.push(ipvs::real_state(index, checks_up, real));
    }
    let sorry = vs.sorry.map(|(addr, port)| {
        let index = *next;
        *next = next.wrapping_add(1);
        let real = model::RealServer {
            addr,
            port,
            weight: 1,
            inhibit_on_failure: false,
            checks: Vec::new(),
            notify_up: None,
            notify_down: None,
            uthreshold: 0,
            lthreshold: 0,
            nat: vs.sorry_nat,
            tun: vs.sorry_tun,
            tun_flags: vs.sorry_tun_flags,
            smtp_alert: None,
        };
        ipvs::real_state(index, Vec::new(), &real)
    });
    (Svc::of_ipvs((vs, entry), reals, sorry, gate), tasks)
}

/// Real server indices, service ids, ring slices (base, length) and address counter slots of
/// a balancer (see [`Carried::in_use`]).
struct InUse {
    reals: Vec<u32>,
    ids: Vec<u32>,
    rings: Vec<(u32, u32)>,
    entries: Vec<u32>,
}

/// The flow table's sweep (see [`Balancer::start_sweep`]).
enum Sweep {
    /// The table could not be opened a second time: no sweeps.
    Off,
    Idle(Box<FlowTable>),
    /// On a helper thread; with each server's count (opened − closed) when it began.
    Running(
        tokio::sync::oneshot::Receiver<(Box<FlowTable>, std::collections::HashMap<u32, u64>)>,
        Vec<(u32, u64)>,
    ),
}

/// The sweep's verdict on `flows` at `now`: the flows to remove (idle past their timeout, or
/// older than their index's owner, `since`), and the open flows left per real server index.
fn tally(
    flows: &[(AnyFlowKey, Flow)],
    since: &std::collections::HashMap<u32, std::time::Duration>,
    (now, timeouts): (std::time::Duration, Timeouts),
) -> (Vec<AnyFlowKey>, std::collections::HashMap<u32, u64>) {
    let mut gone = Vec::new();
    let mut open: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for (key, flow) in flows {
        let last = std::time::Duration::from_nanos(flow.last_ns);
        if since.get(&flow.real).is_some_and(|&t| last < t) {
            gone.push(*key);
            continue;
        }
        let limit = match (flow.closed, key.proto()) {
            (FLOW_CLOSED, _) => timeouts.tcp_fin,
            (_, 17) => timeouts.udp,
            _ => timeouts.tcp,
        };
        if now.saturating_sub(last) >= limit {
            gone.push(*key);
        } else if flow.closed == FLOW_OPEN {
            *open.entry(flow.real).or_default() += 1;
        }
    }
    (gone, open)
}

/// How often lc/wlc counts are written, and every how many counts the flow table is swept.
pub const COUNT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const SWEEP_EVERY: u64 = 120;

/// Hands out indices below `max`: the one asked for when it is free, else the lowest free one
/// that `avoid` does not hold (the replaced balancer's), else the lowest free one.
struct Indices {
    taken: std::collections::BTreeSet<u32>,
    avoid: std::collections::BTreeSet<u32>,
    max: u32,
    /// Below it, every index is taken or avoided (so thousands of real servers are not
    /// thousands of scans from 0).
    fresh: u32,
}

impl Indices {
    fn new(avoid: Vec<u32>, max: u32) -> Indices {
        Indices {
            taken: Default::default(),
            avoid: avoid.into_iter().collect(),
            max,
            fresh: 0,
        }
    }

    fn take(&mut self, wanted: Option<u32>) -> Option<u32> {
        if let Some(w) = wanted
            && w < self.max
            && self.taken.insert(w)
        {
            return Some(w);
        }
        let fresh =
            (self.fresh..self.max).find(|i| !self.taken.contains(i) && !self.avoid.contains(i));
        if let Some(f) = fresh {
            self.fresh = f + 1;
        }
        let free = fresh.or_else(|| (0..self.max).find(|i| !self.taken.contains(i)))?;
        self.taken.insert(free);
        Some(free)
    }

    fn give_back(&mut self, index: u32) {
        self.taken.remove(&index);
        self.fresh = self.fresh.min(index);
    }
}

/// Hands out slices of LB_RING the same way: the wanted one when it is free, else the first
/// gap clear of the replaced balancer's slices, else the first gap.
struct Slices {
    taken: Vec<(u32, u32)>,
    avoid: Vec<(u32, u32)>,
}

impl Slices {
    fn fits(list: &[(u32, u32)], start: u32, len: u32) -> bool {
        start
            .checked_add(len)
            .is_some_and(|end| end <= LB_RING_SIZE)
            && list
                .iter()
                .all(|&(s, l)| start + len <= s || s + l <= start)
    }

    /// The first start of `len` free slots outside `list`.
    fn gap(list: &[(u32, u32)], len: u32) -> Option<u32> {
        std::iter::once(0)
            .chain(list.iter().map(|&(s, l)| s + l))
            .filter(|&start| Slices::fits(list, start, len))
            .min()
    }

    fn take(&mut self, wanted: Option<u32>, len: u32) -> Option<u32> {
        let start = match wanted.filter(|&w| Slices::fits(&self.taken, w, len)) {
            Some(w) => w,
            None => {
                let both: Vec<(u32, u32)> = self.taken.iter().chain(&self.avoid).copied().collect();
                Slices::gap(&both, len).or_else(|| Slices::gap(&self.taken, len))?
            }
        };
        self.taken.push((start, len));
        Some(start)
    }

    fn give_back(&mut self, start: u32) {
        self.taken.retain(|&(s, _)| s != start);
    }
}

pub struct Balancer {
    services: Vec<Svc>,
    /// Counts done (see `count_flows`).
    counted: u64,
    /// Who notify_up/notify_down scripts run as (the global script user).
    run_as: RunAs,
    pub rx: mpsc::UnboundedReceiver<check::Report>,
    tasks: Vec<AbortHandle>,
    sweep: Sweep,
    helpers: Handle,
    /// The interfaces the XDP program runs on: a NAT server's replies are translated only
    /// when they come in on one.
    xdp_ifaces: Vec<u32>,
    /// Where alerts are mailed (`global_defs`' smtp_server and notification_email).
    mail: Option<Mail>,
    /// How long an idle flow counts as open (`lvs_timeouts`).
    timeouts: Timeouts,
    /// The kernel's IPVS, when a service runs there.
    ipvs: Option<crate::netlink::ipvs::Ipvs>,
}

/// The checkers' mail alerts, as keepalived's smtp_alert for real and virtual servers.
struct Mail {
    smtp: std::sync::Arc<crate::notify::smtp::Smtp>,
    /// `no_checker_emails`: a checker's alert only when its server's state changes.
    only_server_changes: bool,
    /// A real server's alerts when it does not say (keepalived: `smtp_alert_checker`, else
    /// `smtp_alert`, else on), and a virtual server's (the same, else off).
    real_default: bool,
    virtual_default: bool,
}

impl Mail {
    fn of(config: &Config, log_detail: bool) -> Option<Mail> {
        let g = &config.global;
        let smtp = crate::notify::smtp_of(g, log_detail)?;
        let global = g.smtp_alert_checker.or(g.smtp_alert);
        Some(Mail {
            smtp: std::sync::Arc::new(smtp),
            only_server_changes: g.no_checker_emails,
            real_default: global.unwrap_or(true),
            virtual_default: global.unwrap_or(false),
        })
    }

    /// Sends one alert on the helper runtime; nothing waits for it.
    fn send(&self, helpers: &Handle, subject: String, body: String) {
        drop(self.send_tracked(helpers, subject, body));
    }

    /// As [`Self::send`], for a mail the agent waits for before it exits.
    fn send_tracked(&self, helpers: &Handle, subject: String, body: String) -> JoinHandle<()> {
        let smtp = self.smtp.clone();
        let subject = format!("[{}] {subject}", smtp.router_id);
        helpers.spawn(async move { crate::notify::smtp::send(&smtp, &subject, &body).await })
    }
}

/// keepalived's alert body for a checker of `kind` that went up or down.
fn alert_body(kind: &model::CheckKind, up: bool) -> String {
    use model::CheckKind as K;
    let state = if up { "succeed" } else { "failed" };
    match kind {
        K::Tcp => format!("=> TCP CHECK {state} on service <="),
        K::Ping => format!("=> ICMP CHECK {state} on service <="),
        K::Udp(_) => format!("=> UDP CHECK {state} on service <="),
        K::Dns(_) => format!("=> DNS_CHECK: {state} on service <="),
        K::Misc(_) => format!(
            "=> MISC CHECK {} on service <=",
            if up { "succeeded" } else { "failed" }
        ),
        K::Http(_) | K::Https(_) if !up => {
            "=> CHECK failed on service : HTTP request failed <=".to_string()
        }
        _ => format!("=> CHECK {state} on service <="),
    }
}

/// A NAT server reached on an interface without the XDP program: said when the balancer
/// starts and when the server is found there anew (its replies would reach the kernel
/// untranslated, and the client would drop them).
fn warn_nat_path(vs: &str, real: &str, via: Option<(u32, [u8; 6])>, xdp_ifaces: &[u32]) {
    if let Some((ifindex, _)) = via
        && !xdp_ifaces.contains(&ifindex)
    {
        warn!(
            "VS {vs}: NAT real server {real} is reached on {}, where the XDP program does not run: its replies are not translated (run a VRRP instance on that interface, as keepalived's NAT setups do for the real servers' gateway)",
            crate::iface::name(ifindex).unwrap_or_else(|| format!("ifindex {ifindex}"))
        );
    }
}

impl RealState {
    /// The interface the neighbour table has it on, and that interface's MAC.
    fn via(&self) -> Option<(u32, [u8; 6])> {
        self.path
            .and_then(|p| (p.ifindex != 0).then_some((p.ifindex, p.out_mac)))
    }
}

impl Svc {
    /// Its schedule counts open flows (lc, wlc, sed, nq, ovf), or a real server has a
    /// connection threshold.
    fn counts_flows(&self) -> bool {
        self.ipvs.is_none()
            && (self.keys.iter().any(|(_, f)| f & LB_SVC_LEAST != 0)
                || self.vs.reals.iter().any(|r| r.uthreshold > 0))
    }

    /// Some server it schedules has fewer open flows than half its weight (IPVS's test for
    /// whether a locality server over its weight is overloaded).
    fn spare_now(&self) -> bool {
        self.reals
            .iter()
            .any(|r| Svc::schedulable(r) && u64::from(r.conns) * 2 < u64::from(r.weight))
    }

    /// Takes new flows: alive, weight above 0, not over its threshold, MAC known.
    fn schedulable(r: &RealState) -> bool {
        r.alive && r.path.is_some() && r.weight > 0 && !r.overloaded
    }

    /// Keeps the flows it has: alive (at any weight: IPVS's quiescent server), or down under
    /// `inhibit_on_failure` (IPVS keeps it at weight 0 then); MAC known.
    fn keeps_flows(r: &RealState, real: &model::RealServer) -> bool {
        (r.alive || real.inhibit_on_failure) && r.path.is_some()
    }

    /// Enters the servers usable now where the service runs.
    fn publish(&mut self, sinks: &mut Sinks) {
        match (&self.ipvs, sinks.ipvs, sinks.maps.as_deref_mut()) {
            (Some(_), Some(ipvs), _) => self.publish_ipvs(ipvs),
            (None, _, Some(maps)) => self.publish_xdp(maps),
            _ => {}
        }
    }

    /// Writes the schedule over the servers usable now. Reals that keep or take flows are
    /// entered before the schedule names them; those that stopped are marked after it no
    /// longer does.
    fn publish_xdp(&mut self, maps: &mut Maps) {
        // Quorum lost with a sorry server: it alone takes the traffic (keepalived takes the
        // live servers out of the pool meanwhile).
        let sorry = self
            .sorry
            .as_ref()
            .filter(|s| !self.quorum_up && s.path.is_some());
        let (usable, keeping): (Vec<(u32, u32)>, Vec<u32>) = match sorry {
            Some(s) => (vec![(s.index, 1)], vec![s.index]),
            None => (
                self.reals
                    .iter()
                    .filter(|r| Svc::schedulable(r))
                    .map(|r| (r.index, r.weight))
                    .collect(),
                self.reals
                    .iter()
                    .zip(&self.vs.reals)
                    .filter(|(r, real)| Svc::keeps_flows(r, real))
                    .map(|(r, _)| r.index)
                    .collect(),
            ),
        };
        let serving: Vec<u32> = usable.iter().map(|(i, _)| *i).collect();
        let entry = |r: &RealState, up: bool| real_entry(r, up, IpAddr::from([0u8; 4]));
        let addrs = self
            .reals
            .iter()
            .zip(self.vs.reals.iter().map(|r| r.addr))
            .chain(self.sorry.iter().zip(self.vs.sorry.iter().map(|s| s.0)));
        for (r, addr) in addrs {
            // An IPv6 NAT server's address is in a map of its own: one that cannot be written
            // leaves the server out (its packets would go to an earlier owner's address).
            if let IpAddr::V6(a) = addr
                && r.nat_port.is_some()
                && keeping.contains(&r.index)
                && let Err(e) = maps.set_real_addr6(r.index, a.octets())
            {
                warn!("{}: {e}", self.vs.name());
                continue;
            }
            if keeping.contains(&r.index)
                && let Err(e) = maps.set_real(r.index, real_entry(r, true, addr))
            {
                warn!("{}: {e}", self.vs.name());
            }
        }
        let ring = sched::ring(self.vs.algo, &usable);
        let half = 1 - self.half;
        let persist_ns = self
            .vs
            .persistence
            .map_or(0, |d| d.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.spare = self.spare_now();
        let spare = if self.spare { LB_SVC_SPARE } else { 0 };
        let written = maps.set_ring(self.bases[half], &ring).and_then(|()| {
            self.keys
                .iter()
                .zip(&self.entries)
                .try_for_each(|((key, flags), &entry)| {
                    maps.set_service(
                        *key,
                        Service {
                            id: self.id,
                            flags: *flags | spare,
                            ring_base: self.bases[half],
                            ring_len: ring.len() as u32,
                            persist_ns,
                            persist_mask: match self.vs.persist_mask {
                                IpAddr::V4(m) => m.octets(),
                                IpAddr::V6(_) => [255; 4],
                            },
                            entry,
                            persist_mask6: match self.vs.persist_mask {
                                IpAddr::V6(m) => m.octets(),
                                IpAddr::V4(_) => [255; 16],
                            },
                        },
                    )
                })
        });
        match written {
            Ok(()) => self.half = half,
            Err(e) => warn!("VS {}: schedule not updated: {e}", self.vs.name()),
        }
        for r in self.reals.iter().chain(&self.sorry) {
            if !keeping.contains(&r.index) {
                let _ = maps.set_real(r.index, entry(r, false));
            }
        }
        for r in self.reals.iter_mut().chain(self.sorry.iter_mut()) {
            r.entered_up = keeping.contains(&r.index);
        }
        if serving.is_empty() && !self.serving.is_empty() {
            warn!("No real server left to serve VS {}", self.vs.name());
        }
        self.serving = serving;
    }

    /// Weight of the live real servers (keepalived's weigh_live_realservers).
    fn live_weight(&self) -> u64 {
        self.reals
            .iter()
            .filter(|r| r.alive)
            .map(|r| u64::from(r.weight))
            .sum()
    }

    /// keepalived's smtp_alert for a quorum change (when the virtual server's alerts are on).
    fn quorum_mail(&self, mail: &Mail, helpers: &Handle, body: String) {
        if self.vs.smtp_alert.unwrap_or(mail.virtual_default) {
            mail.send(
                helpers,
                format!(
                    "Virtualserver {} - {}",
                    self.vs.name(),
                    if self.quorum_up { "UP" } else { "DOWN" }
                ),
                body,
            );
        }
    }

    /// keepalived's update_quorum_state: quorum is gained at `quorum + hysteresis` of live
    /// weight and lost below `quorum - hysteresis`; the sorry server comes and goes with it,
    /// and `quorum_up` / `quorum_down` run. `init`: at start-up. Returns the alert's body
    /// when the state changed.
    fn update_quorum(&mut self, init: bool, run_as: RunAs) -> Option<String> {
        let vs = &self.vs;
        let sum = self.live_weight() as i64;
        let (q, h) = (vs.quorum as i64, vs.hysteresis as i64);
        let threshold = q + if self.quorum_up { -h } else { h };
        let sorry = vs.sorry.map(|(a, p)| model::trio(a, vs.proto, p));
        if !self.quorum_up && sum >= threshold {
            self.quorum_up = true;
            info!(
                "Gained quorum {q}+{h}={threshold} <= {sum} for VS {}",
                vs.name()
            );
            if let Some(s) = &sorry {
                info!(
                    "{} sorry server {s} from VS {}",
                    if vs.sorry_inhibit {
                        "Disabling"
                    } else {
                        "Removing"
                    },
                    vs.name()
                );
                info!("Adding alive servers to the pool for VS {}", vs.name());
            }
            run(&vs.quorum_up, run_as);
            return Some(format!(
                "=> {} {q}+{h}={threshold} <= {sum} <=",
                if init {
                    "Starting with quorum up"
                } else {
                    "Gained quorum"
                }
            ));
        } else if (self.quorum_up && (sum == 0 || sum < threshold))
            || (init && !self.quorum_up && sorry.is_some())
        {
            self.quorum_up = false;
            info!(
                "{} {q}-{h}={threshold} > {sum} for VS {}",
                if init {
                    "Starting with quorum down"
                } else {
                    "Lost quorum"
                },
                vs.name()
            );
            if let Some(s) = &sorry {
                info!("Removing alive servers from the pool for VS {}", vs.name());
                info!(
                    "{} sorry server {s} to VS {}",
                    if vs.sorry_inhibit {
                        "Enabling"
                    } else {
                        "Adding"
                    },
                    vs.name()
                );
            }
            run(&vs.quorum_down, run_as);
            // keepalived's alert prints the numbers this way whichever way it went.
            return Some(format!(
                "=> {} {q}+{h}={threshold} <= {sum} <=",
                if init {
                    "Starting with quorum down"
                } else {
                    "Lost quorum"
                }
            ));
        }
        None
    }
}

/// IPVS's overload rule for a server with `conns` open flows (ip_vs_bind_dest /
/// ip_vs_unbind_dest): at `uthreshold` it takes no new flows, and it takes them again below
/// `lthreshold`, or below 3/4 of `uthreshold` without one.
fn overloaded(was: bool, conns: u32, real: &model::RealServer) -> bool {
    let (upper, lower) = (u64::from(real.uthreshold), u64::from(real.lthreshold));
    let conns = u64::from(conns);
    if upper == 0 {
        return false;
    }
    if was {
        if lower != 0 {
            conns >= lower
        } else {
            conns * 4 >= upper * 3
        }
    } else {
        conns >= upper
    }
}

/// A real server's kernel entry (its IPv4 address, for NAT; an IPv6 one is in
/// `LB_REAL_ADDR6`).
fn real_entry(r: &RealState, up: bool, addr: IpAddr) -> Real {
    let addr = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(_) => [0; 4],
    };
    let method = match (r.nat_port, r.tunnel) {
        (Some(_), _) => LB_REAL_NAT,
        (None, Some(_)) => LB_REAL_TUN,
        (None, None) => 0,
    };
    // NAT's port, or a GUE tunnel's.
    let port = match r.tunnel {
        Some(model::Tunnel::Gue(p)) => p,
        _ => r.nat_port.unwrap_or(0),
    };
    let path = r.path.unwrap_or_default();
    Real {
        mac: path.mac,
        flags: if up { LB_REAL_UP } else { 0 } | method,
        addr,
        weight: r.weight,
        conns: r.conns,
        ifindex: path.ifindex,
        out_mac: path.out_mac,
        // Network order, as the kernel compares it with the wire.
        port: u16::from_ne_bytes(port.to_be_bytes()),
        tun_src: path.src,
        mtu: path.mtu,
        tun_type: r.tunnel.map_or(0, model::Tunnel::number),
    }
}

/// How long a flow with no packet still counts as open (IPVS's defaults: TCP established
/// 900 s, UDP 300 s) and a closed one is kept for its last packets (TCP FIN_WAIT 120 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Timeouts {
    tcp: std::time::Duration,
    tcp_fin: std::time::Duration,
    udp: std::time::Duration,
}

impl Timeouts {
    /// IPVS's defaults, or keepalived's global `lvs_timeouts tcp N tcpfin N udp N` (0, or a
    /// value keepalived reports invalid, leaves the default, as it leaves the kernel's).
    fn of(config: &Config) -> Timeouts {
        let [tcp, tcp_fin, udp] = Timeouts::written(config);
        let or = |v: u32, default: u64| {
            std::time::Duration::from_secs(if v == 0 { default } else { u64::from(v) })
        };
        Timeouts {
            tcp: or(tcp, 900),
            tcp_fin: or(tcp_fin, 120),
            udp: or(udp, 300),
        }
    }

    /// The valid values `lvs_timeouts` gives (tcp, tcpfin, udp; 0 where it gives none), as
    /// keepalived sends them to IPVS.
    fn written(config: &Config) -> [u32; 3] {
        let mut t = [0u32; 3];
        let words = config
            .global
            .other
            .get("lvs_timeouts")
            .and_then(|all| all.last())
            .cloned()
            .unwrap_or_default();
        // As keepalived reads it: an option takes the next word as its value, valid or not.
        let mut words = words.iter();
        while let Some(option) = words.next() {
            let slot = match option.as_str() {
                "tcp" => &mut t[0],
                "tcpfin" => &mut t[1],
                "udp" => &mut t[2],
                _ => continue,
            };
            if let Some(Ok(s)) = words.next().map(|v| v.parse::<u32>())
                && (1..=LVS_MAX_TIMEOUT).contains(&s)
            {
                *slot = s;
            }
        }
        t
    }
}

/// keepalived's LVS_MAX_TIMEOUT (31 days).
const LVS_MAX_TIMEOUT: u32 = 86400 * 31;

/// Starts a notify script and does not wait for it.
fn run(script: &Option<Vec<String>>, run_as: RunAs) {
    if let Some(argv) = script
        && let Err(e) = exec::spawn_detached(argv, run_as)
    {
        warn!("{}: {e}", argv.join(" "));
    }
}

impl Balancer {
    /// The configuration's virtual servers, entered into the XDP maps, their checkers started
    /// on `helpers`. Virtual servers the XDP backend does not run are said and left out.
    /// `vip`: whether an address is a VRRP instance's VIP (then it is served only while
    /// this node holds it); `held`: whether this node holds it now.
    pub fn start(
        config: &Config,
        (vip, held): (impl Fn(IpAddr) -> bool, impl Fn(IpAddr) -> bool),
        (mut maps, backend): (Option<&mut Maps>, BackendChoice),
        helpers: &Handle,
        carried: &Carried,
        (xdp_ifaces, log_detail): (&[u32], bool),
    ) -> Balancer {
        let mail = Mail::of(config, log_detail);
        let g = &config.global;
        let run_as = exec::default_run_as(g.script_user.as_deref(), g.script_group.as_deref());
        let (tx, rx) = mpsc::unbounded_channel();
        let mut services: Vec<Svc> = Vec::new();
        let mut tasks = Vec::new();
        // keepalived builds its SSL context when a checker is SSL_GET, and a file it cannot
        // load there stops its checker process: no virtual server is run then.
        let ssl_get = config.virtual_servers.iter().any(|v| {
            v.real_servers
                .iter()
                .any(|r| r.children.iter().any(|c| c.keyword == "SSL_GET"))
        });
        if ssl_get && let Err(lines) = check::set_tls(config.ssl.as_ref()) {
            for l in &lines {
                warn!("{l}");
            }
            warn!("The SSL context cannot be set up: no virtual server is run");
            return Balancer {
                services: Vec::new(),
                counted: 0,
                run_as,
                rx,
                tasks: Vec::new(),
                sweep: Sweep::Off,
                helpers: helpers.clone(),
                xdp_ifaces: xdp_ifaces.to_vec(),
                mail: None,
                timeouts: Timeouts::of(config),
                ipvs: None,
            };
        }
        // lblc / lblcr's destinations: what an earlier balancer entered may name indices this
        // one gives to other servers (what the running one enters meanwhile may not: new
        // servers and services get places it does not use).
        if let Some(Err(e)) = maps.as_deref_mut().map(|m| m.clear_locality()) {
            warn!("{e}: lblc/lblcr destinations kept from before");
        }
        // Opened when a service is to run there; why not, if it cannot be.
        let mut ipvs_handle: Option<Result<crate::netlink::ipvs::Ipvs, String>> = None;
        // IPVS services' real servers report under indices past the maps' (never taken
        // there).
        let mut next_ipvs_index = LB_REALS_MAX;
        let used = carried.in_use();
        let mut indices = Indices::new(used.reals, LB_REALS_MAX);
        let mut ids = Indices::new(used.ids, LB_SERVICES_MAX);
        let mut entry_slots = Indices::new(used.entries, LB_SERVICES_MAX);
        let mut slices = Slices {
            taken: Vec::new(),
            avoid: used.rings,
        };
        let now = crate::io::timer::monotonic_now();
        for raw in &config.virtual_servers {
            // keepalived's line, once per SMTP_CHECK with host blocks (they are run).
            for _ in raw
                .real_servers
                .iter()
                .flat_map(|r| &r.children)
                .filter(|c| {
                    c.keyword == "SMTP_CHECK" && c.children.iter().any(|h| h.keyword == "host")
                })
            {
                info!(
                    "The SMTP_CHECK host block is deprecated. Please define additional checkers."
                );
            }
            let model_of =
                |b| model::service(raw, &config.virtual_server_groups, &config.track_files, b);
            // XDP first (under auto), IPVS for what it cannot run or when it is off.
            let xdp = (backend != BackendChoice::Ipvs && maps.is_some())
                .then(|| model_of(model::Backend::Xdp));
            let chosen = match (backend, xdp) {
                (_, Some(Ok(vs))) => Ok((vs, false)),
                (BackendChoice::Xdp, Some(Err(e))) => Err(e),
                (BackendChoice::Xdp, None) => Err("the XDP balancer is off".to_string()),
                (_, xdp) => model_of(model::Backend::Ipvs).and_then(|vs| {
                    let handle = ipvs_handle.get_or_insert_with(|| {
                        crate::netlink::ipvs::Ipvs::open().map_err(|e| e.to_string())
                    });
                    match (handle, xdp) {
                        (Ok(_), _) => Ok((vs, true)),
                        (Err(why), Some(Err(e))) => Err(format!("{e} ({why})")),
                        (Err(why), _) => Err(why.clone()),
                    }
                }),
            };
            let (mut vs, on_ipvs) = match chosen {
                Ok(c) => c,
                Err(e) => {
                    warn!(
                        "virtual_server {} ({}): {e}; not served",
                        raw.address.join(" "),
                        raw.at
                    );
                    continue;
                }
            };
            if !on_ipvs && vs.addr.is_ipv6() && maps.as_deref().is_some_and(|m| !m.ipv6_balancer())
            {
                warn!(
                    "VS {}: the IPv6 balancer (vrrp_lb_v6) did not load; not served",
                    vs.name()
                );
                continue;
            }
            if !on_ipvs
                && vs.addr.is_ipv6()
                && vs.uses_nat()
                && maps.as_deref().is_some_and(|m| !m.ipv6_nat())
            {
                warn!(
                    "VS {}: IPv6 NAT (vrrp_lb_nat6) did not load; not served",
                    vs.name()
                );
                continue;
            }
            if config.global.checker_log_all_failures {
                for check in vs.reals.iter_mut().flat_map(|r| r.checks.iter_mut()) {
                    check.log_all_failures = true;
                }
            }
            if on_ipvs {
                if let Some(Ok(handle)) = &ipvs_handle {
                    // Two virtual servers cannot share an IPVS service (each would take the
                    // other's servers out).
                    let entry = ipvs::IpvsSvc::of(&vs);
                    let name = vs.name();
                    if let Some(id) = services
                        .iter()
                        .filter_map(|s| s.ipvs.as_ref())
                        .find_map(|o| entry.shared_with(o))
                    {
                        warn!(
                            "VS {name}: {} is served by another virtual server already; not served",
                            crate::netlink::ipvs::id_name(&id)
                        );
                        continue;
                    }
                    if !entry.enter(handle, &name) {
                        warn!("VS {name}: not entered in IPVS; not served");
                        continue;
                    }
                    let spawn = Spawn {
                        helpers,
                        tx: &tx,
                        run_as,
                        carried,
                    };
                    let (mut svc, spawned) =
                        ipvs_service((vs, entry), (&vip, &held), &mut next_ipvs_index, &spawn);
                    tasks.extend(spawned);
                    if let (Some(mail), Some(body)) = (&mail, svc.update_quorum(true, run_as)) {
                        svc.quorum_mail(mail, helpers, body);
                    }
                    svc.publish_ipvs(handle);
                    info!(
                        "VS {name} served by IPVS ({}, {} real servers)",
                        svc.vs.algo.name(),
                        svc.vs.reals.len()
                    );
                    services.push(svc);
                }
                continue;
            }
            let Some(maps) = maps.as_deref_mut() else {
                continue;
            };
            let slots = sched::max_len(vs.algo) as u32;
            // A rotation or a list names each server at least once: more than its slots do
            // not fit (hash tables fit any number).
            if vs.reals.len() > slots as usize && !matches!(vs.algo, Algo::Sh | Algo::Mh | Algo::Dh)
            {
                warn!(
                    "VS {}: lb_algo {} holds {slots} real servers at most, it has {}; not served",
                    vs.name(),
                    vs.algo.name(),
                    vs.reals.len()
                );
                continue;
            }
            let mut flags = 0;
            match vs.algo {
                Algo::Sh | Algo::Mh => {
                    flags |= LB_SVC_HASH;
                    if vs.hash_port {
                        flags |= LB_SVC_HASH_PORT;
                    }
                }
                Algo::Dh => flags |= LB_SVC_HASH | LB_SVC_HASH_DST,
                Algo::Lc => flags |= LB_SVC_LEAST,
                Algo::Wlc => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED,
                Algo::Sed => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_SED,
                Algo::Nq => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_NQ,
                Algo::Ovf => flags |= LB_SVC_LEAST | LB_SVC_OVF,
                // Counts open flows as wlc does; the kernel draws two at random.
                Algo::Twos => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_TWOS,
                // Each destination keeps its server(s), judged by open flows for their weight;
                // a new one gets the weighted draw of twos.
                Algo::Lblc => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_LBLC,
                Algo::Lblcr => flags |= LB_SVC_LEAST | LB_SVC_WEIGHTED | LB_SVC_LBLCR,
                Algo::Rr | Algo::Wrr | Algo::Fo => {}
            }
            if vs.ops {
                flags |= LB_SVC_OPS;
            }
            if flags & LB_SVC_LEAST != 0 && vs.reals.len() > LB_LEAST_MAX as usize {
                warn!(
                    "VS {}: lb_algo {} looks at {LB_LEAST_MAX} real servers at most, it has {}; not served",
                    vs.name(),
                    vs.algo.name(),
                    vs.reals.len()
                );
                continue;
            }
            let keys: Vec<(SvcKey, u32)> = vs
                .entries
                .iter()
                .map(|(addr, port)| {
                    let key = SvcKey::new(*addr, *port, vs.proto.number());
                    // Served only while this node holds the address, when it is a VIP.
                    let follow = if vip(*addr) { LB_SVC_FOLLOW_VIP } else { 0 };
                    (key, flags | follow)
                })
                .collect();
            if let Some(taken) = keys
                .iter()
                .find(|(k, _)| services.iter().any(|s| s.keys.iter().any(|(o, _)| o == k)))
            {
                warn!(
                    "VS {}: {} is served by another virtual server already; not served",
                    vs.name(),
                    taken.0.socket()
                );
                continue;
            }
            let vs_name = vs.name();
            // What it had before a reload: the same id, the same ring slice for a schedule of
            // the same length, the same index for each real server that stays.
            let old = carried.service(&vs_name);
            let old_ring = old
                .filter(|(_, b, _)| b[1] - b[0] == slots)
                .map(|(_, b, half)| (b[0], half));
            let old_reals: Vec<Option<(u32, u64, Option<std::time::Duration>)>> =
                vs.reals.iter().map(|r| carried.real(&vs_name, r)).collect();
            let old_sorry = carried
                .sorries
                .iter()
                .find(|(v, _)| *v == vs_name)
                .map(|s| s.1);
            let id = ids.take(old.map(|o| o.0));
            let ring = slices.take(old_ring.map(|r| r.0), 2 * slots);
            let mut got: Vec<u32> = Vec::new();
            let wanted = old_reals
                .iter()
                .map(|o| o.map(|o| o.0))
                .chain(vs.sorry.map(|_| old_sorry));
            for w in wanted {
                match indices.take(w) {
                    Some(i) => got.push(i),
                    None => break,
                }
            }
            // Each address keeps its counters' slot across a reload.
            let entries: Vec<u32> = keys
                .iter()
                .map_while(|(k, _)| entry_slots.take(carried.entry(k)))
                .collect();
            let (Some(id), Some(ring_base)) = (id, ring) else {
                got.iter().for_each(|&i| indices.give_back(i));
                entries.iter().for_each(|&e| entry_slots.give_back(e));
                id.inspect(|&i| ids.give_back(i));
                ring.inspect(|&r| slices.give_back(r));
                warn!("VS {vs_name}: the balancer's maps are full; not served");
                continue;
            };
            if got.len() < vs.reals.len() + usize::from(vs.sorry.is_some())
                || entries.len() < keys.len()
            {
                got.iter().for_each(|&i| indices.give_back(i));
                entries.iter().for_each(|&e| entry_slots.give_back(e));
                ids.give_back(id);
                slices.give_back(ring_base);
                warn!("VS {vs_name}: the balancer's maps are full; not served");
                continue;
            }
            // A slot or index new to its address or server counts from zero (an earlier
            // owner's traffic may still be in it).
            for (k, &e) in keys.iter().zip(&entries) {
                if carried.entry(&k.0) != Some(e) {
                    let _ = maps.reset_entry_traffic(e);
                }
            }
            let wanted_again = old_reals
                .iter()
                .map(|o| o.map(|o| o.0))
                .chain(vs.sorry.map(|_| old_sorry));
            for (&i, w) in got.iter().zip(wanted_again) {
                if w != Some(i) {
                    let _ = maps.reset_real_traffic(i);
                }
            }
            // A new index starts its count of open flows at zero (the kernel's per-CPU
            // counters keep what an earlier owner opened and closed).
            let start_count =
                |index: u32, old: Option<(u32, u64, Option<std::time::Duration>)>| match old {
                    Some((i, expired, since)) if i == index => (since, expired),
                    _ => {
                        let open = maps.real_conns(index).map_or(0, |per_cpu| {
                            let opened: u64 = per_cpu.iter().map(|c| c.opened).sum();
                            let closed: u64 = per_cpu.iter().map(|c| c.closed).sum();
                            opened.saturating_sub(closed)
                        });
                        (Some(now), open)
                    }
                };
            // keepalived's ha_suspend: checkers run while the address is on this node. One
            // that is no VIP is always served here, so its checkers always run.
            let gate = (vs.ha_suspend && keys.iter().any(|(_, f)| f & LB_SVC_FOLLOW_VIP != 0))
                .then(|| {
                    let on = keys.iter().any(|(k, _)| held(k.addr()));
                    tokio::sync::watch::channel(on).0
                });
            let mut reals = Vec::new();
            for (k, real) in vs.reals.iter().enumerate() {
                let index = got[k];
                let (fresh_since, expired) = start_count(index, old_reals[k]);
                let (carried_up, checks_up) = carried.checks_up(&vs_name, real);
                // Carried over a reload when the neighbour table has forgotten it (not for a
                // tunnel: its next hop is looked up).
                let path = check::path_to(real.addr, real.tun.is_some()).or_else(|| {
                    let mac = carried.mac(real.addr).filter(|_| real.tun.is_none())?;
                    Some(check::Path {
                        mac,
                        ..Default::default()
                    })
                });
                reals.push(RealState {
                    index,
                    fresh_since,
                    alive: checks_up.iter().all(|u| *u),
                    checks_up,
                    checks_share: vec![0; real.checks.len()],
                    weight: real.weight,
                    conns: 0,
                    expired,
                    entered_up: false,
                    path,
                    nat_port: real.nat.then_some(real.port),
                    tunnel: real.tun,
                    overloaded: false,
                });
                let spawn = Spawn {
                    helpers,
                    tx: &tx,
                    run_as,
                    carried,
                };
                tasks.extend(spawn.checks((&vs, real), index, &carried_up, gate.as_ref()));
                if real.checks.is_empty() {
                    tasks.push(
                        helpers
                            .spawn(resolve((real.addr, real.tun.is_some()), index, tx.clone()))
                            .abort_handle(),
                    );
                }
            }
            let sorry = vs.sorry.map(|(addr, port)| {
                let index = got[vs.reals.len()];
                let (fresh_since, _) = start_count(index, old_sorry.map(|i| (i, 0, None)));
                tasks.push(
                    helpers
                        .spawn(resolve((addr, vs.sorry_tun.is_some()), index, tx.clone()))
                        .abort_handle(),
                );
                let path = check::path_to(addr, vs.sorry_tun.is_some());
                RealState {
                    index,
                    fresh_since,
                    checks_up: Vec::new(),
                    checks_share: Vec::new(),
                    weight: 1,
                    conns: 0,
                    expired: 0,
                    entered_up: false,
                    path,
                    nat_port: vs.sorry_nat.then_some(port),
                    tunnel: vs.sorry_tun,
                    alive: true,
                    overloaded: false,
                }
            });
            // keepalived's set_quorum_states: up if the live weight reaches it.
            let quorum_up = reals
                .iter()
                .filter(|r| r.alive)
                .map(|r| u64::from(r.weight))
                .sum::<u64>()
                >= vs.quorum + vs.hysteresis;
            let follows = keys.iter().any(|(_, f)| f & LB_SVC_FOLLOW_VIP != 0);
            for (state, real) in reals.iter().zip(&vs.reals) {
                if state.nat_port.is_some() {
                    warn_nat_path(&vs_name, &vs.real_name(real), state.via(), xdp_ifaces);
                }
            }
            let mut svc = Svc {
                keys,
                entries,
                id,
                bases: [ring_base, ring_base + slots],
                // The next schedule goes in the half the kernel is not reading.
                half: old_ring
                    .filter(|(b, _)| *b == ring_base)
                    .map_or(1, |(_, half)| half),
                reals,
                serving: Vec::new(),
                sorry,
                quorum_up,
                vs,
                gate,
                spare: false,
                ipvs: None,
            };
            if let (Some(mail), Some(body)) = (&mail, svc.update_quorum(true, run_as)) {
                svc.quorum_mail(mail, helpers, body);
            }
            svc.publish_xdp(maps);
            info!(
                "VS {} served by XDP ({}, {}, {}{} real servers{})",
                svc.vs.name(),
                {
                    let reals = &svc.vs.reals;
                    let dr = reals.is_empty() || reals.iter().any(|r| !r.nat && r.tun.is_none());
                    let nat = reals.iter().any(|r| r.nat);
                    let mut methods: Vec<String> = [(dr, "direct routing"), (nat, "NAT")]
                        .iter()
                        .filter(|(used, _)| *used)
                        .map(|(_, name)| name.to_string())
                        .collect();
                    for t in [
                        model::Tunnel::Ipip,
                        model::Tunnel::Gue(0),
                        model::Tunnel::Gre,
                    ] {
                        if reals
                            .iter()
                            .any(|r| r.tun.is_some_and(|u| u.number() == t.number()))
                        {
                            methods.push(format!("{} tunnel", t.name()));
                        }
                    }
                    methods.join(" and ")
                },
                svc.vs.algo.name(),
                if svc.vs.ops {
                    "one-packet scheduling, "
                } else {
                    ""
                },
                svc.vs.reals.len(),
                if follows {
                    ", while this node holds the VIP"
                } else {
                    ""
                }
            );
            services.push(svc);
        }
        let nat = services.iter().any(|s| s.ipvs.is_none() && s.vs.uses_nat());
        if let Some(Err(e)) = maps.as_deref_mut().map(|m| m.set_nat_on(nat)) {
            warn!("{e}: NAT replies are not translated");
        }
        let sweep = match maps {
            Some(maps) if services.iter().any(|s| s.counts_flows()) => {
                maps.flow_table().map_or_else(
                    |e| {
                        warn!("{e}: idle flows will not be swept from the balancer's table");
                        Sweep::Off
                    },
                    |t| Sweep::Idle(Box::new(t)),
                )
            }
            _ => Sweep::Off,
        };
        Balancer {
            services,
            counted: 0,
            run_as,
            rx,
            tasks,
            sweep,
            helpers: helpers.clone(),
            xdp_ifaces: xdp_ifaces.to_vec(),
            mail,
            timeouts: Timeouts::of(config),
            ipvs: ipvs_handle.and_then(Result::ok).inspect(|ipvs| {
                // keepalived's lvs_timeouts, for IPVS's connections.
                let t = Timeouts::written(config);
                if t != [0; 3]
                    && let Err(e) = ipvs.set_timeouts(t)
                {
                    warn!("{e}");
                }
            }),
        }
    }

    /// A checker's report: keepalived's "Adding/Removing service … VS …" when its server's
    /// state changes, and the schedule follows.
    pub fn report(&mut self, r: check::Report, maps: Option<&mut Maps>) {
        let mut sinks = Sinks {
            maps,
            ipvs: self.ipvs.as_ref(),
        };
        for svc in &mut self.services {
            if let Some(s) = svc.sorry.as_mut().filter(|s| s.index == r.real) {
                if r.path.is_some() && r.path != s.path {
                    s.path = r.path;
                    svc.publish(&mut sinks);
                }
                return;
            }
            let Some(k) = svc.reals.iter().position(|s| s.index == r.real) else {
                continue;
            };
            let real = &svc.vs.reals[k];
            let name = svc.vs.real_name(real);
            let vs_name = svc.vs.name();
            let inhibit = real.inhibit_on_failure;
            let state = &mut svc.reals[k];
            let was_alive = state.alive;
            let mut checker_changed = false;
            if let Some(c) = state.checks_up.get_mut(r.checker) {
                checker_changed = *c != r.up;
                *c = r.up;
            }
            if let Some(w) = state.checks_share.get_mut(r.checker) {
                *w = r.share;
            }
            let mut changed = false;
            // Where its frames go, as the checker found it (a new MAC, interface, or for a
            // tunnel next hop, source or MTU).
            if svc.ipvs.is_none() && r.path.is_some() && r.path != state.path {
                let via = r
                    .path
                    .and_then(|p| (p.ifindex != 0).then_some((p.ifindex, p.out_mac)));
                if state.nat_port.is_some() && via != state.via() {
                    warn_nat_path(&vs_name, &name, via, &self.xdp_ifaces);
                }
                state.path = r.path;
                changed = true;
            }
            // keepalived's effective weight: the configured one plus every checker's share,
            // within 0..=i32::MAX (real_weight()).
            let shares = state
                .checks_share
                .iter()
                .fold(0i64, |sum, s| sum.saturating_add(*s));
            let weight = (i64::from(real.weight).saturating_add(shares))
                .clamp(0, i64::from(i32::MAX)) as u32;
            let alive = state.checks_up.iter().all(|u| *u);
            if weight != state.weight {
                // keepalived says so for a script's new weight; a failure's reset is silent.
                if alive {
                    info!(
                        "Changing weight from {} to {weight} for {}active service {name} of VS {vs_name}",
                        state.weight,
                        if state.alive { "" } else { "in" }
                    );
                }
                state.weight = weight;
                changed = true;
            }
            if alive != state.alive {
                state.alive = alive;
                changed = true;
                info!(
                    "{} service {name} {} VS {vs_name}",
                    match (alive, inhibit) {
                        (true, false) => "Adding",
                        (true, true) => "Enabling",
                        (false, false) => "Removing",
                        (false, true) => "Disabling",
                    },
                    match (alive, inhibit) {
                        (_, true) => "of",
                        (true, false) => "to",
                        (false, false) => "from",
                    }
                );
                run(
                    if alive {
                        &real.notify_up
                    } else {
                        &real.notify_down
                    },
                    self.run_as,
                );
            }
            // keepalived's smtp_alert for the checker that changed, unless under
            // no_checker_emails its server's state did not.
            if let Some(mail) = &self.mail
                && checker_changed
                && real.smtp_alert.unwrap_or(mail.real_default)
                && (alive != was_alive || !mail.only_server_changes)
                && let Some(check) = real.checks.get(r.checker)
                // keepalived's FILE_CHECK mails nothing.
                && !matches!(check.kind, model::CheckKind::File(_))
            {
                mail.send(
                    &self.helpers,
                    format!(
                        "Realserver {name} of virtual server {vs_name} - {}",
                        if alive { "UP" } else { "DOWN" }
                    ),
                    alert_body(&check.kind, r.up),
                );
            }
            if changed {
                let body = svc.update_quorum(false, self.run_as);
                if let (Some(mail), Some(body)) = (&self.mail, body) {
                    svc.quorum_mail(mail, &self.helpers, body);
                }
                svc.publish(&mut sinks);
            }
            return;
        }
    }

    /// What a reload carries into the balancer that replaces this one.
    pub fn carried(&self) -> Carried {
        let mut c = Carried::default();
        for s in &self.services {
            let name = s.vs.name();
            for (r, real) in s.reals.iter().zip(&s.vs.reals) {
                for (k, check) in real.checks.iter().enumerate() {
                    c.checks.push((
                        name.clone(),
                        real.addr,
                        real.port,
                        check.clone(),
                        r.checks_up[k],
                    ));
                }
            }
            // An IPVS service has no places in the maps.
            if s.ipvs.is_some() {
                continue;
            }
            c.services.push((name.clone(), s.id, s.bases, s.half));
            c.entries
                .extend(s.keys.iter().zip(&s.entries).map(|((k, _), &e)| (*k, e)));
            if let Some(sorry) = &s.sorry {
                c.sorries.push((name.clone(), sorry.index));
            }
            for (r, real) in s.reals.iter().zip(&s.vs.reals) {
                c.reals.push((
                    name.clone(),
                    real.addr,
                    real.port,
                    r.index,
                    r.expired,
                    r.fresh_since,
                ));
                // A tunnel's path is its next hop's: not the server's MAC.
                if let (Some(p), None) = (r.path, r.tunnel) {
                    c.macs.push((real.addr, p.mac));
                }
            }
        }
        c
    }

    /// The VIPs this node holds changed (`held`: whether it holds an address now): the
    /// checkers of `ha_suspend` services start or stop with their address, with keepalived's
    /// lines (`Activating healthchecker for service … for VS …`, `Suspending healthchecker
    /// …`).
    pub fn held_changed(&mut self, held: impl Fn(IpAddr) -> bool) {
        for svc in &self.services {
            let Some(gate) = &svc.gate else { continue };
            let on = svc.vs.entries.iter().any(|(a, _)| held(*a));
            if *gate.borrow() == on {
                continue;
            }
            for real in &svc.vs.reals {
                // A FILE_CHECK probes nothing: keepalived does not suspend it either.
                for _ in real
                    .checks
                    .iter()
                    .filter(|c| !matches!(c.kind, model::CheckKind::File(_)))
                {
                    info!(
                        "{} healthchecker for service {} for VS {}",
                        if on { "Activating" } else { "Suspending" },
                        svc.vs.real_name(real),
                        svc.vs.name()
                    );
                }
            }
            gate.send_replace(on);
        }
    }

    /// The interfaces the XDP program runs on now (after a reload that kept this balancer).
    pub fn set_xdp_ifaces(&mut self, ifaces: Vec<u32>) {
        self.xdp_ifaces = ifaces;
    }

    /// Whether some service would follow a VIP it does not follow now, or the other way
    /// round (a reload changed the VRRP instances' addresses).
    pub fn follows_changed(&self, vip: impl Fn(IpAddr) -> bool) -> bool {
        self.services
            .iter()
            .flat_map(|s| &s.keys)
            .any(|(k, f)| (f & LB_SVC_FOLLOW_VIP != 0) != vip(k.addr()))
    }

    /// Whether any service counts open flows (lc, wlc): then [`Self::count_flows`] runs
    /// every [`COUNT_EVERY`].
    pub fn counts_flows(&self) -> bool {
        self.services.iter().any(|s| s.counts_flows())
    }

    /// lc/wlc: each real server's open flows — flows opened less those its clients closed,
    /// less those idle past their timeout — into its kernel entry, with each CPU's count of
    /// opened flows at this moment (the kernel adds what it opens after). Every
    /// [`SWEEP_EVERY`] counts, the flow table is swept of idle flows.
    pub fn count_flows(&mut self, maps: &mut Maps) {
        self.counted += 1;
        self.collect_sweep();
        if self.counted.is_multiple_of(SWEEP_EVERY) {
            self.start_sweep(maps);
        }
        for svc in &mut self.services {
            if !svc.counts_flows() {
                continue;
            }
            let mut crossed = false;
            for (r, real) in svc.reals.iter_mut().zip(&svc.vs.reals) {
                let Ok(per_cpu) = maps.real_conns(r.index) else {
                    continue;
                };
                let opened: u64 = per_cpu.iter().map(|c| c.opened).sum();
                let closed: u64 = per_cpu.iter().map(|c| c.closed).sum();
                let open = opened.saturating_sub(closed).saturating_sub(r.expired);
                r.conns = open.min(u64::from(u32::MAX)) as u32;
                let overloaded = overloaded(r.overloaded, r.conns, real);
                crossed |= overloaded != r.overloaded;
                r.overloaded = overloaded;
                let _ = maps.set_real(r.index, real_entry(r, r.entered_up, real.addr));
                let _ = maps.set_conns_base(r.index, per_cpu.iter().map(|c| c.opened).collect());
            }
            if crossed || svc.spare_now() != svc.spare {
                svc.publish_xdp(maps);
            }
        }
    }

    /// Starts a sweep of the flow table on a helper thread: flows idle past their timeout
    /// are removed and the open ones left are counted per server. When it is done (see
    /// [`Self::collect_sweep`]), each server's kernel count (opened − closed, as it was when
    /// the sweep began) is set to agree with the table: flows the table evicted, moved to
    /// another server when theirs went, or that went idle, no longer count.
    fn start_sweep(&mut self, maps: &Maps) {
        if !matches!(self.sweep, Sweep::Idle(_)) {
            return;
        }
        let Sweep::Idle(mut table) = std::mem::replace(&mut self.sweep, Sweep::Off) else {
            return;
        };
        let reals = || {
            self.services
                .iter()
                .flat_map(|s| s.reals.iter().chain(&s.sorry))
        };
        // Since when each index has had its real server: a flow last seen before names the
        // one that had it before a reload.
        let since: std::collections::HashMap<u32, std::time::Duration> = reals()
            .filter_map(|r| Some((r.index, r.fresh_since?)))
            .collect();
        let counted: Vec<(u32, u64)> = reals()
            .filter_map(|r| {
                let per_cpu = maps.real_conns(r.index).ok()?;
                // Totals first: a flow opened on one CPU may close on another.
                let opened: u64 = per_cpu.iter().map(|c| c.opened).sum();
                let closed: u64 = per_cpu.iter().map(|c| c.closed).sum();
                Some((r.index, opened.saturating_sub(closed)))
            })
            .collect();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let timeouts = self.timeouts;
        self.helpers.spawn_blocking(move || {
            let now = crate::io::timer::monotonic_now();
            let (gone, open) = tally(&table.flows(), &since, (now, timeouts));
            for key in &gone {
                let _ = table.remove(key);
            }
            let _ = tx.send((table, open));
        });
        self.sweep = Sweep::Running(rx, counted);
    }

    /// A finished sweep's counts applied (see [`Self::start_sweep`]).
    fn collect_sweep(&mut self) {
        let Sweep::Running(rx, _) = &mut self.sweep else {
            return;
        };
        let (table, open) = match rx.try_recv() {
            Ok(done) => done,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
            Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                warn!("The sweep of the balancer's flow table failed; no more sweeps");
                self.sweep = Sweep::Off;
                return;
            }
        };
        let Sweep::Running(_, counted) = std::mem::replace(&mut self.sweep, Sweep::Idle(table))
        else {
            return;
        };
        for r in self
            .services
            .iter_mut()
            .flat_map(|s| s.reals.iter_mut().chain(s.sorry.iter_mut()))
        {
            if let Some((_, c)) = counted.iter().find(|(i, _)| *i == r.index) {
                r.expired = c.saturating_sub(open.get(&r.index).copied().unwrap_or(0));
            }
        }
    }

    /// Gives way to `new`, which a reload started in its place: the checkers stop, the
    /// addresses `new` does not serve leave the data path, and the real servers it does not
    /// have are marked down (their flows get a server of `new`).
    pub fn retire(self, maps: Option<&mut Maps>, new: Option<&Balancer>) {
        for t in &self.tasks {
            t.abort();
        }
        let services = new.map_or(&[][..], |n| &n.services[..]);
        // IPVS services the new configuration does not have are taken out; those it keeps
        // it has entered again already (their connections go on).
        if let Some(ipvs) = &self.ipvs {
            let kept = |id: &crate::netlink::ipvs::ServiceId| {
                services
                    .iter()
                    .filter_map(|s| s.ipvs.as_ref())
                    .any(|e| e.services.iter().any(|n| n.id == *id))
            };
            for s in &self.services {
                s.remove_ipvs(ipvs, kept);
            }
        }
        let kept = |index: u32| {
            services
                .iter()
                .filter(|s| s.ipvs.is_none())
                .flat_map(|s| s.reals.iter().chain(&s.sorry))
                .any(|r| r.index == index)
        };
        if let Some(maps) = maps {
            for (k, _) in self.services.iter().flat_map(|s| &s.keys) {
                if !services.iter().any(|s| s.keys.iter().any(|(o, _)| o == k)) {
                    let _ = maps.remove_service(*k);
                }
            }
            for r in self
                .services
                .iter()
                .filter(|s| s.ipvs.is_none())
                .flat_map(|s| s.reals.iter().chain(&s.sorry))
            {
                if !kept(r.index) {
                    let _ = maps.set_real(r.index, real_entry(r, false, IpAddr::from([0u8; 4])));
                }
            }
        }
        // An IPVS service's servers are known by their address and port (their indices are
        // new at each start).
        let kept_in = |s: &Svc, r: &RealState, real: &model::RealServer| {
            if s.ipvs.is_none() {
                return kept(r.index);
            }
            let name = s.vs.name();
            services.iter().any(|n| {
                n.ipvs.is_some()
                    && n.vs.name() == name
                    && n.vs
                        .reals
                        .iter()
                        .any(|o| (o.addr, o.port) == (real.addr, real.port))
            })
        };
        // keepalived's alert for a live server the reload removed.
        let Some(mail) = &self.mail else { return };
        for s in &self.services {
            for (r, real) in s.reals.iter().zip(&s.vs.reals) {
                if r.alive && !kept_in(s, r, real) && real.smtp_alert.unwrap_or(mail.real_default) {
                    mail.send(
                        &self.helpers,
                        format!(
                            "Realserver {} of virtual server {} - DOWN",
                            s.vs.real_name(real),
                            s.vs.name()
                        ),
                        "=> Removing <=".to_string(),
                    );
                }
            }
        }
    }

    /// Takes every service out of the data path and stops the checkers. Under `omega`, the
    /// live servers' `notify_down` and the service's `quorum_down` run, and their alerts are
    /// mailed (`=> Shutting down <=`), as keepalived does at shutdown: the mails under way are
    /// returned, for the agent to wait for before it exits.
    pub fn stop(self, maps: Option<&mut Maps>, shutdown: bool) -> Vec<JoinHandle<()>> {
        for t in &self.tasks {
            t.abort();
        }
        let mut mails = Vec::new();
        for s in self.services.iter().filter(|s| shutdown && s.vs.omega) {
            for (r, real) in s.reals.iter().zip(&s.vs.reals) {
                if r.alive {
                    run(&real.notify_down, self.run_as);
                    if let Some(mail) = &self.mail
                        && real.smtp_alert.unwrap_or(mail.real_default)
                    {
                        mails.push(mail.send_tracked(
                            &self.helpers,
                            format!(
                                "Realserver {} of virtual server {} - DOWN",
                                s.vs.real_name(real),
                                s.vs.name()
                            ),
                            "=> Shutting down <=".to_string(),
                        ));
                    }
                }
            }
            if s.quorum_up {
                run(&s.vs.quorum_down, self.run_as);
                if let Some(mail) = &self.mail
                    && s.vs.smtp_alert.unwrap_or(mail.virtual_default)
                {
                    mails.push(mail.send_tracked(
                        &self.helpers,
                        format!("Virtualserver {} - DOWN", s.vs.name()),
                        "=> Shutting down <=".to_string(),
                    ));
                }
            }
        }
        if let Some(maps) = maps {
            for s in &self.services {
                for (k, _) in &s.keys {
                    let _ = maps.remove_service(*k);
                }
            }
            let _ = maps.set_nat_on(false);
        }
        // keepalived takes its virtual servers out of IPVS when it stops.
        if let Some(ipvs) = &self.ipvs {
            for s in &self.services {
                s.remove_ipvs(ipvs, |_| false);
            }
        }
        mails
    }

    /// The services as `vrrp-agent status` shows them.
    pub fn describe(&self, maps: Option<&Maps>) -> serde_json::Value {
        let list: Vec<serde_json::Value> = self
            .services
            .iter()
            .map(|s| {
                if let Some(entry) = &s.ipvs {
                    return self.describe_ipvs(s, entry);
                }
                let reals: Vec<serde_json::Value> = s
                    .reals
                    .iter()
                    .zip(&s.vs.reals)
                    .map(|(r, real)| {
                        let t = maps
                            .and_then(|m| m.real_traffic(r.index).ok())
                            .unwrap_or_default();
                        real_json(s, r, real, serde_json::json!({
                            "mac": r.path.map(|p| p.mac).map(|m| m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")),
                            "open_flows": s.counts_flows().then_some(r.conns),
                            "packets": t.packets,
                            "bytes": t.bytes,
                        }))
                    })
                    .collect();
                serde_json::json!({
                    "service": s.vs.name(),
                    "backend": "xdp",
                    "algo": s.vs.algo.name(),
                    "follows_vip": s.keys.iter().any(|(_, f)| f & LB_SVC_FOLLOW_VIP != 0),
                    "addresses": s.vs.entries.iter().map(|&e| std::net::SocketAddr::from(e).to_string()).collect::<Vec<_>>(),
                    // What each address was sent (a group's entries each their own).
                    "address_traffic": s.keys.iter().zip(&s.entries).map(|((k, _), &e)| {
                        let t = maps.and_then(|m| m.entry_traffic(e).ok()).unwrap_or_default();
                        serde_json::json!({
                            "address": k.socket().to_string(),
                            "packets": t.packets,
                            "bytes": t.bytes,
                        })
                    }).collect::<Vec<_>>(),
                    "real_servers": reals,
                })
            })
            .collect();
        serde_json::Value::Array(list)
    }

    /// An IPVS service as `vrrp-agent status` shows it: as an XDP one, with IPVS's counters.
    fn describe_ipvs(&self, s: &Svc, entry: &ipvs::IpvsSvc) -> serde_json::Value {
        let counts = self
            .ipvs
            .as_ref()
            .map(|i| s.ipvs_counts(i))
            .unwrap_or_default();
        let reals: Vec<serde_json::Value> = s
            .reals
            .iter()
            .zip(&s.vs.reals)
            .map(|(r, real)| {
                let c = counts
                    .iter()
                    .find(|(i, _)| *i == r.index)
                    .map(|(_, c)| *c)
                    .unwrap_or_default();
                real_json(
                    s,
                    r,
                    real,
                    serde_json::json!({
                        "active_connections": c.active,
                        "inactive_connections": c.inactive,
                        "connections": c.conns,
                        "packets": c.in_packets,
                        "bytes": c.in_bytes,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "service": s.vs.name(),
            "backend": "ipvs",
            "algo": s.vs.algo.name(),
            "follows_vip": false,
            "addresses": entry.services.iter().map(|e| crate::netlink::ipvs::id_name(&e.id)).collect::<Vec<_>>(),
            "real_servers": reals,
        })
    }
}

/// A real server as `vrrp-agent status` shows it, whatever runs it, with its backend's own
/// fields (`more`, an object).
fn real_json(
    s: &Svc,
    r: &RealState,
    real: &model::RealServer,
    more: serde_json::Value,
) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("address".into(), real.addr.to_string().into());
    m.insert("port".into(), real.port.into());
    let method = if real.nat {
        "NAT"
    } else if real.tun.is_some() {
        "TUN"
    } else {
        "DR"
    };
    m.insert("forwarding".into(), method.into());
    m.insert("weight".into(), r.weight.into());
    m.insert("alive".into(), r.alive.into());
    m.insert("serving".into(), s.serving.contains(&r.index).into());
    if let serde_json::Value::Object(more) = more {
        m.extend(more);
    }
    serde_json::Value::Object(m)
}

/// A real server without checkers: up, its MAC looked for until the neighbour table has it,
/// then looked at again every few seconds.
async fn resolve(
    (addr, tunnel): (IpAddr, bool),
    real: u32,
    tx: mpsc::UnboundedSender<check::Report>,
) {
    loop {
        let path = check::path_to(addr, tunnel);
        let report = check::Report {
            real,
            checker: 0,
            up: true,
            path,
            share: 0,
        };
        if tx.send(report).is_err() {
            return;
        }
        let wait = if path.is_some() { 5000 } else { 200 };
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_common::FLOW_UNCOUNTED;

    /// keepalived's defaults for the checkers' alerts: a real server's on unless
    /// `smtp_alert_checker` or `smtp_alert` says otherwise, a virtual server's off unless one
    /// says so; nothing without a server and recipients.
    #[test]
    fn alert_defaults_and_bodies() {
        use crate::config::{self, ReadOptions, validate::Unchecked};
        let mail = |global: &str| {
            let text = format!("global_defs {{\n{global}}}\n");
            let loaded = config::load_str(
                std::path::Path::new("/t/k.conf"),
                text.as_bytes(),
                &ReadOptions::default(),
                &Unchecked,
            );
            Mail::of(&loaded.config, false)
                .map(|m| (m.real_default, m.virtual_default, m.only_server_changes))
        };
        let smtp = " notification_email {\n  a@b\n }\n smtp_server 127.0.0.1\n";
        assert_eq!(mail(""), None);
        assert_eq!(mail(smtp), Some((true, false, false)));
        assert_eq!(
            mail(&format!("{smtp} smtp_alert false\n")),
            Some((false, false, false))
        );
        assert_eq!(
            mail(&format!("{smtp} smtp_alert\n no_checker_emails\n")),
            Some((true, true, true))
        );
        assert_eq!(
            mail(&format!("{smtp} smtp_alert\n smtp_alert_checker off\n")),
            Some((false, false, false))
        );
        use model::CheckKind;
        assert_eq!(
            alert_body(&CheckKind::Tcp, false),
            "=> TCP CHECK failed on service <="
        );
        assert_eq!(
            alert_body(&CheckKind::Http(Vec::new()), false),
            "=> CHECK failed on service : HTTP request failed <="
        );
        assert_eq!(
            alert_body(&CheckKind::Http(Vec::new()), true),
            "=> CHECK succeed on service <="
        );
        assert_eq!(
            alert_body(&CheckKind::Ping, true),
            "=> ICMP CHECK succeed on service <="
        );
    }

    #[test]
    fn indices_keep_what_stays_and_give_new_ones_what_nothing_used() {
        // The replaced balancer used 0, 1 and 2; 1 stays.
        let mut ix = Indices::new(vec![0, 1, 2], 6);
        assert_eq!(ix.take(Some(1)), Some(1));
        // New ones skip what the old one used while there is other room.
        assert_eq!(ix.take(None), Some(3));
        assert_eq!(ix.take(None), Some(4));
        // Asked for one already taken: the next free one.
        assert_eq!(ix.take(Some(1)), Some(5));
        // Out of fresh room: what the old one used, lowest first.
        assert_eq!(ix.take(None), Some(0));
        assert_eq!(ix.take(None), Some(2));
        assert_eq!(ix.take(None), None);
        ix.give_back(4);
        assert_eq!(ix.take(None), Some(4));
        // Never past the map.
        assert_eq!(Indices::new(vec![], 2).take(Some(7)), Some(0));
    }

    #[test]
    fn the_sweep_removes_idle_and_stale_flows_and_counts_the_open_ones() {
        use std::time::Duration;
        let s = |n: u64| Duration::from_secs(n);
        // IPv4 and IPv6 flows alike (even ports IPv6).
        let key = |sport: u16, proto: u8| {
            if sport.is_multiple_of(2) {
                AnyFlowKey::V6(agent_common::FlowKey6 {
                    src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0],
                    sport,
                    dport: 80,
                    proto,
                    _pad: [0; 3],
                })
            } else {
                AnyFlowKey::V4(agent_common::FlowKey {
                    src: [192, 0, 2, 1],
                    dst: [192, 0, 2, 200],
                    sport,
                    dport: 80,
                    proto,
                    _pad: [0; 3],
                })
            }
        };
        let sport = |k: &AnyFlowKey| match k {
            AnyFlowKey::V4(k) => k.sport,
            AnyFlowKey::V6(k) => k.sport,
        };
        let flow = |real: u32, closed: u32, last: Duration| Flow {
            real,
            closed,
            last_ns: last.as_nanos() as u64,
        };
        let now = s(10_000);
        let flows = [
            // Open TCP, quiet 899 s: counts; 900 s: gone.
            (key(1, 6), flow(0, FLOW_OPEN, now - s(899))),
            (key(2, 6), flow(0, FLOW_OPEN, now - s(900))),
            // UDP: 300 s.
            (key(3, 17), flow(0, FLOW_OPEN, now - s(299))),
            (key(4, 17), flow(0, FLOW_OPEN, now - s(300))),
            // Closed: kept 120 s for its last segments, never counted.
            (key(5, 6), flow(1, FLOW_CLOSED, now - s(119))),
            (key(6, 6), flow(1, FLOW_CLOSED, now - s(120))),
            // Begun elsewhere: kept as an open one, never counted.
            (key(7, 6), flow(1, FLOW_UNCOUNTED, now - s(10))),
            // Index 2 is new to its server since a reload 5 s ago: an older flow was another's.
            (key(8, 6), flow(2, FLOW_OPEN, now - s(6))),
            (key(9, 6), flow(2, FLOW_OPEN, now - s(1))),
        ];
        let since = [(2, now - s(5))].into_iter().collect();
        let defaults = Timeouts::of(&Config::default());
        let (gone, open) = tally(&flows, &since, (now, defaults));
        let gone: Vec<u16> = gone.iter().map(sport).collect();
        assert_eq!(gone, [2, 4, 6, 8]);
        let mut open: Vec<(u32, u64)> = open.into_iter().collect();
        open.sort();
        assert_eq!(open, [(0, 2), (2, 1)]);
        // keepalived's lvs_timeouts: what it sets, 0 or invalid leaving the default.
        let loaded = crate::config::load_str(
            std::path::Path::new("/t/k.conf"),
            b"global_defs {\n lvs_timeouts tcp 60 tcpfin 0 udp x udp tcp 50\n}\n",
            &crate::config::ReadOptions::default(),
            &crate::config::validate::Unchecked,
        );
        let t = Timeouts::of(&loaded.config);
        assert_eq!((t.tcp, t.tcp_fin, t.udp), (s(60), s(120), s(300)));
        let (gone, _) = tally(&flows, &since, (now, t));
        let gone: Vec<u16> = gone.iter().map(sport).collect();
        assert_eq!(gone, [1, 2, 4, 6, 8], "open TCP quiet for 60 s and more");
    }

    #[test]
    fn ipvs_overload_thresholds() {
        let real = |upper: u32, lower: u32| model::RealServer {
            addr: IpAddr::from([10, 0, 0, 2]),
            port: 80,
            weight: 1,
            inhibit_on_failure: false,
            checks: Vec::new(),
            notify_up: None,
            notify_down: None,
            uthreshold: upper,
            lthreshold: lower,
            nat: false,
            tun: None,
            tun_flags: 0,
            smtp_alert: None,
        };
        // None: never.
        assert!(!overloaded(false, 1_000_000, &real(0, 0)));
        // At the upper threshold it is; it stays so down to the lower one.
        let r = real(10, 4);
        assert!(!overloaded(false, 9, &r));
        assert!(overloaded(false, 10, &r));
        assert!(overloaded(true, 4, &r));
        assert!(!overloaded(true, 3, &r));
        // Without a lower one: below 3/4 of the upper.
        let r = real(8, 0);
        assert!(overloaded(true, 6, &r));
        assert!(!overloaded(true, 5, &r));
    }

    #[test]
    fn ring_slices_never_overlap() {
        let mut sl = Slices {
            taken: Vec::new(),
            avoid: vec![(0, 100)],
        };
        // A service that stays keeps its slice.
        assert_eq!(sl.take(Some(0), 100), Some(0));
        // A new one goes after it; one that wants a taken place gets a free one.
        assert_eq!(sl.take(None, 50), Some(100));
        assert_eq!(sl.take(Some(20), 10), Some(150));
        sl.give_back(100);
        assert_eq!(sl.take(None, 40), Some(100));
        // Room left in the ring: none for more than it holds.
        assert_eq!(sl.take(None, LB_RING_SIZE), None);
        let end = LB_RING_SIZE - 160;
        assert_eq!(sl.take(None, end), Some(160));
        assert_eq!(sl.take(None, 1), Some(140));
        // A slice the old balancer still uses is taken only when nothing else fits.
        let mut sl = Slices {
            taken: vec![(100, LB_RING_SIZE - 100)],
            avoid: vec![(0, 60)],
        };
        assert_eq!(sl.take(None, 40), Some(60));
        assert_eq!(sl.take(None, 40), Some(0));
        let mut seen = sl.taken.clone();
        seen.sort();
        assert!(
            seen.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
            "{seen:?}"
        );
    }
}
