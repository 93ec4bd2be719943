//! The runtime: runs every configured VRRP instance. Packets, timers, link changes and the
//! stop signal become [`Event`]s for the sans-IO state machines; their [`Action`]s are carried
//! out here (sockets, netlink, XDP maps, logs).
//!
//! One thread, one loop. Timers are served before packets (a biased select), and only the
//! state machine moves its advert deadline, so a flood of received packets can delay an advert
//! by at most the handling of one packet and never re-arms it.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use agent_common::{IFACE_FILTER_ARMED, IfaceConfig, VipKey, VipValue, VridConfig, VridKey};
use anyhow::{Context as _, Result, anyhow, bail};
use log::{debug, info, warn};
use tokio::sync::mpsc;

use super::{
    garp::{self, FrameSocket},
    socket::{Packet, RxSocket, TxSocket},
    timer::{Timer, monotonic_now},
    tracking::Tracking,
};
use crate::{
    config::model::{Config, Instance as InstanceConfig, VirtualAddress},
    netlink::{
        AddrChange, Link, Netlink,
        route::{self, VirtualRoute},
        rule::{self, VirtualRule},
    },
    notify::{self, Note, Notifier},
    vrrp::{
        instance::{Action, Event, Instance, LogLevel, Received, State},
        packet::{Advert, ChecksumMode, DecodeError},
    },
    xdp::{self, Program, XdpProgram},
};

mod dump;
mod reload;

/// The longest a graceful stop waits for successors before releasing anyway.
const MAX_HANDOVER: Duration = Duration::from_secs(5);
/// The longest the STOP notifications (and any still queued) are waited for at exit.
const MAX_NOTIFY_DRAIN: Duration = Duration::from_secs(3);

/// What the signal handlers and the control socket ask of the runtime.
#[derive(Debug)]
pub enum Control {
    /// SIGTERM / SIGINT: graceful stop.
    Stop,
    /// SIGUSR2 (keepalived's statistics dump): the stats file, and the kernel counters logged.
    DumpStats,
    /// keepalived's STATS_CLEAR (SIGRTMAX-1): the stats file, then the counters zeroed.
    DumpStatsClear,
    /// SIGUSR1: keepalived's data dump.
    DumpData,
    /// keepalived's JSON signal (SIGRTMIN+2): keepalived.json.
    DumpJson,
    /// SIGHUP: the configuration read again (reading happens off the loop).
    Reload(Box<crate::config::Loaded>),
    /// The state of every instance, for `vrrp-agent status` and the JSON dump.
    Status(tokio::sync::oneshot::Sender<serde_json::Value>),
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// keepalived's `-D`: log the detail lines too.
    pub log_detail: bool,
    /// Run without the XDP program (it is still tried by default; failing to load it is a
    /// warning, not a stop).
    pub no_xdp: bool,
    /// Run the virtual servers (off with keepalived's -P, VRRP only).
    pub lvs: bool,
    /// `--lvs-backend`.
    pub lvs_backend: crate::lvs::BackendChoice,
}

/// A virtual address with the interface it goes on.
#[derive(Clone)]
struct Vip {
    link: Link,
    addr: VirtualAddress,
    /// Where the XDP program sees ARP for it: the base interface of a VMAC.
    xdp_ifindex: u32,
}

/// A VMAC interface, and whether this run created it.
struct Vmac {
    link: Link,
    created: bool,
}

struct Slot {
    inst: Instance,
    /// The instance's name for log lines (shared with spaced GARP tasks, no copy per action).
    name: Arc<str>,
    link: Link,
    tx: TxSocket,
    /// Where adverts go: the multicast group, or every unicast peer.
    dsts: Vec<IpAddr>,
    checksum: ChecksumMode,
    v6: bool,
    /// The instance's entry in the XDP VRID filter.
    xdp_entry: Option<(VridKey, VridConfig)>,
    /// The sources its VRID accepts (empty: any), for the XDP peers map.
    xdp_peers: Vec<[u8; 16]>,
    vips: Vec<Vip>,
    excluded: Vec<Vip>,
    vmac: Option<Vmac>,
    /// Where adverts are read: the VMAC if any. Linux's macvlan hands a multicast frame whose
    /// source is a local private macvlan's MAC (the master's adverts, sent from the same
    /// virtual MAC) to that macvlan only, not to its base.
    rx_link: Link,
    /// `virtual_routes`, with the index of their `dev` when they name one.
    routes: Vec<(VirtualRoute, Option<u32>)>,
    /// `virtual_rules`.
    rules: Vec<VirtualRule>,
    /// The spaced GARP burst in progress (`vrrp_garp_interval`).
    garp_task: Option<tokio::task::AbortHandle>,
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: spacing of one burst.
    garp_interval: Duration,
    na_router: bool,
    /// The configured priority (trackers move the effective one from here).
    base_priority: u8,
    /// `dont_track_primary`: the own interface's link changes are ignored.
    dont_track_primary: bool,
    /// The sync group it belongs to (index into `Runtime::groups`).
    group: Option<usize>,
    /// keepalived's `notifies_sent`: a member entering its group's state notifies only once.
    notified: bool,
    /// Starting in FAULT only because scripts have not answered yet: keepalived does not
    /// notify that FAULT.
    quiet_init_fault: bool,
    /// That FAULT was not notified: if it remains once the scripts answer, it is.
    owe_fault_note: bool,
    /// The source is `mcast_src_ip` / `unicast_src_ip`: it does not follow the interface's
    /// addresses.
    src_from_config: bool,
    /// Where the send socket is bound (the VMAC unless `vmac_xmit_base`), and its
    /// `unicast_ttl`, to open it again from another source.
    send_link: Link,
    unicast_ttl: u8,
    /// `notify_priority_changes` (instance, else its sync group, else the global
    /// `vrrp_notify_priority_changes`): FIFO lines for effective priority changes.
    notify_priority: bool,
    /// Removed by a reload: its stop notifies as keepalived's deletion does, not STOP.
    deleting: bool,
    /// Log lines about received packets (rejected or lower-priority adverts).
    packet_log: super::ratelimit::RateLimit,
}

/// A `vrrp_sync_group` (keepalived's vrrp_sync.c): members go FAULT, BACKUP and MASTER
/// together.
struct Group {
    name: String,
    members: Vec<usize>,
    /// Where the group is going (set when a sync starts, so members' own transitions during
    /// the sync do not start another).
    target: State,
    /// What the group last notified (set after its members have moved).
    notified: State,
}

impl Group {
    /// The configuration's sync groups, members as slot indices (the configuration's order).
    fn all(config: &Config) -> Vec<Group> {
        config
            .sync_groups
            .iter()
            .map(|g| Group {
                name: g.name.clone(),
                members: g
                    .members
                    .iter()
                    .filter_map(|m| config.instances.iter().position(|i| &i.name == m))
                    .collect(),
                target: State::Backup,
                notified: State::Init,
            })
            .collect()
    }
}

/// Work that a transition leads to, done in order after it.
enum Work {
    Event(usize, Event),
    Log(String),
    /// The group's members have moved: notify the group's own scripts.
    GroupNotify(usize, State),
}

pub struct Runtime {
    opts: Options,
    slots: Vec<Slot>,
    netlink: Netlink,
    xdp: Option<XdpProgram>,
    frames: HashMap<u32, Arc<FrameSocket>>,
    /// Base interfaces of VMACs: their ARP settings before we changed them.
    base_arp: HashMap<String, (u32, u32)>,
    rx_tx: mpsc::Sender<(u32, bool, Packet)>,
    rx: mpsc::Receiver<(u32, bool, Packet)>,
    tracking: Tracking,
    notifier: Notifier,
    groups: Vec<Group>,
    /// The configured instances: notification targets are the instances, then the groups.
    instances: usize,
    /// The configuration running (a reload is compared with it).
    config: Config,
    /// The helper thread's runtime (trackers and notifications run there).
    helpers: tokio::runtime::Handle,
    /// The receive sockets, one per interface and family, each read by its own task.
    rx_sockets: HashMap<(u32, bool), (Arc<RxSocket>, tokio::task::AbortHandle)>,
    /// The virtual servers, served by the XDP balancer or IPVS (`--lvs-backend`).
    lvs: Option<crate::lvs::Balancer>,
    /// The kernel refused the balancer's XDP program (under `--lvs-backend auto`): VRRP's
    /// program runs alone and IPVS runs the virtual servers.
    lb_refused: bool,
    /// keepalived's `lvs_sync_daemon`: IPVS's connection sync daemon, following its instance.
    syncd: Option<crate::lvs::syncd::SyncDaemon>,
    /// Mails the balancer sent as it stopped (omega's), waited for before the agent exits.
    lvs_mails: Vec<tokio::task::JoinHandle<()>>,
    /// Receive sockets whose filter could not be set (said once each).
    filter_warned: std::collections::HashSet<(u32, bool)>,
    /// Names of interfaces deleted and created again that instances or trackers still use
    /// under their old index (see `follow_interfaces`).
    recreated: std::collections::BTreeSet<String>,
    /// Not being able to follow a re-created interface yet was said once.
    follow_warned: bool,
}

impl Runtime {
    /// Resolves interfaces and addresses, opens sockets and loads the XDP program. Nothing is
    /// sent and no address is touched until [`Runtime::run`].
    pub async fn new(config: &Config, opts: Options) -> Result<Runtime> {
        if config.instances.is_empty() {
            bail!("no vrrp_instance configured: nothing to run");
        }
        let netlink = Netlink::new().context("opening netlink")?;
        let helpers = crate::track::watch::helper_thread().context("starting the helper thread")?;
        let tracking = Tracking::new(config, &netlink, &helpers, None).await?;
        let notifier = Notifier::start(
            notify::Setup::from_config(config, opts.log_detail),
            &helpers,
        );
        let groups = Group::all(config);
        // Bounded: if adverts arrive faster than the loop handles them, the receive tasks wait
        // and the kernel's socket buffer drops the excess, rather than memory growing.
        let (rx_tx, rx) = mpsc::channel(1024);
        let mut rt = Runtime {
            opts,
            slots: Vec::new(),
            netlink,
            xdp: None,
            frames: HashMap::new(),
            base_arp: HashMap::new(),
            rx_tx,
            rx,
            tracking,
            notifier,
            groups,
            instances: config.instances.len(),
            config: config.clone(),
            helpers,
            rx_sockets: HashMap::new(),
            filter_warned: Default::default(),
            lvs: None,
            lb_refused: false,
            syncd: None,
            lvs_mails: Vec::new(),
            recreated: Default::default(),
            follow_warned: false,
        };
        for ic in &config.instances {
            let slot = match rt.slot(config, ic).await {
                Ok(slot) => slot,
                Err(e) => {
                    // Undo what the instances before this one set up (their VMACs).
                    rt.finish().await?;
                    return Err(e);
                }
            };
            if let Err(e) = rt.listen(config, ic, &slot) {
                // Its VMAC, if it made one, goes with the others.
                rt.slots.push(slot);
                rt.finish().await?;
                return Err(e);
            }
            rt.slots.push(slot);
        }
        if let Err(e) = shared_vrid(&rt.slots.iter().collect::<Vec<_>>()) {
            rt.finish().await?;
            return Err(e.context("refusing to start"));
        }
        if !rt.opts.no_xdp {
            rt.xdp = rt.load_xdp();
        }
        Ok(rt)
    }

    /// Adverts for the instance are read: the receive socket of its interface and family is
    /// opened (and read by a task of its own), or the group joined on the one already open;
    /// packet sockets for its VIPs' interfaces (GARP/NA) are opened too.
    fn listen(&mut self, config: &Config, ic: &InstanceConfig, slot: &Slot) -> Result<()> {
        let group = if slot.v6 {
            config.global.vrrp_mcast_group6
        } else {
            config.global.vrrp_mcast_group4
        };
        let unicast = !ic.unicast_peers.is_empty();
        let rx_link = &slot.rx_link;
        let key = (rx_link.index, slot.v6);
        match self.rx_sockets.get(&key) {
            Some((s, _)) if !unicast => {
                // Already joined for another instance; joining again is harmless.
                let _ = s.join(group, rx_link.index);
            }
            Some(_) => {}
            None => {
                let sock = Arc::new(
                    RxSocket::open(&rx_link.name, rx_link.index, group, unicast).with_context(
                        || {
                            format!(
                                "({}) opening the VRRP receive socket on {}",
                                ic.name, rx_link.name
                            )
                        },
                    )?,
                );
                let tx = self.rx_tx.clone();
                let (ifindex, v6) = key;
                let reader = sock.clone();
                let task = tokio::spawn(async move {
                    let sock = reader;
                    loop {
                        match sock.recv().await {
                            Ok(p) => {
                                if tx.send((ifindex, v6, p)).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                warn!("VRRP receive on interface {ifindex}: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                });
                self.rx_sockets.insert(key, (sock, task.abort_handle()));
            }
        }
        for vip in slot.vips.iter().chain(&slot.excluded) {
            if let std::collections::hash_map::Entry::Vacant(e) = self.frames.entry(vip.link.index)
            {
                e.insert(Arc::new(FrameSocket::open(vip.link.index).with_context(
                    || format!("opening a packet socket on {}", vip.link.name),
                )?));
            }
        }
        Ok(())
    }

    async fn slot(&mut self, config: &Config, ic: &InstanceConfig) -> Result<Slot> {
        let mut params = crate::vrrp::instance::Params::from_config(ic, &config.global)?;
        let group = config
            .sync_groups
            .iter()
            .position(|g| g.members.contains(&ic.name));
        params.sync_group = group.is_some();
        let base_priority = params.priority;
        let ifname = ic.interface.as_deref().expect("checked by Params");
        let link = self
            .netlink
            .link(ifname)
            .await
            .with_context(|| format!("({}) interface {ifname}", ic.name))?;
        let v6 = params.is_ipv6();
        let src = match (ic.unicast_src_ip.or(ic.mcast_src_ip), v6) {
            (Some(a), _) => a,
            (None, v6) => self
                .netlink
                .primary_address(link.index, v6)
                .await?
                .ok_or_else(|| {
                    anyhow!(
                        "({}) interface {ifname} has no {} address to send adverts from",
                        ic.name,
                        if v6 { "IPv6 link-local" } else { "IPv4" }
                    )
                })?,
        };
        let vmac = match &ic.use_vmac {
            Some(name) => Some(self.vmac(ic, name, &link, v6, src).await?),
            None => None,
        };
        // RFC 5798 §7.3 / keepalived: with a VMAC, adverts leave from it (source MAC = the
        // virtual MAC) unless `vmac_xmit_base`; VIPs without a `dev` live on it.
        let vip_link = vmac.as_ref().map_or(&link, |v| &v.link).clone();
        let send_link = if ic.vmac_xmit_base { &link } else { &vip_link };
        let tx = TxSocket::open(&send_link.name, send_link.index, src, ic.unicast_ttl)
            .with_context(|| format!("({}) opening the VRRP send socket from {src}", ic.name))?;
        let dsts = if ic.unicast_peers.is_empty() {
            vec![if v6 {
                config.global.vrrp_mcast_group6
            } else {
                config.global.vrrp_mcast_group4
            }]
        } else {
            ic.unicast_peers.iter().map(|p| p.addr).collect()
        };
        let mut vips = Vec::new();
        for a in &ic.virtual_ipaddress {
            vips.push(self.vip(&vip_link, link.index, a).await?);
        }
        let mut excluded = Vec::new();
        for a in &ic.virtual_ipaddress_excluded {
            excluded.push(self.vip(&vip_link, link.index, a).await?);
        }
        // Read but not applied yet: said once, loudly, at start (README: "Not there yet").
        let mut rules = Vec::new();
        for block in &ic.virtual_rules {
            let words: Vec<String> = std::iter::once(block.keyword.clone())
                .chain(block.args.iter().cloned())
                .collect();
            rules.push(rule::parse(&words).with_context(|| format!("({}) {}", ic.name, block.at))?);
        }
        let mut routes = Vec::new();
        for block in &ic.virtual_routes {
            let words: Vec<String> = std::iter::once(block.keyword.clone())
                .chain(block.args.iter().cloned())
                .collect();
            let r = route::parse(&words).with_context(|| format!("({}) {}", ic.name, block.at))?;
            let oif = match &r.dev {
                Some(dev) => Some(
                    self.netlink
                        .link(dev)
                        .await
                        .with_context(|| format!("({}) virtual route via {dev}", ic.name))?
                        .index,
                ),
                None => None,
            };
            routes.push((r, oif));
        }
        let send_link = send_link.clone();
        let mut inst = Instance::new(params, src);
        inst.set_link_initially(link.up || ic.dont_track_primary);
        Ok(Slot {
            name: ic.name.as_str().into(),
            inst,
            xdp_entry: xdp::vrid_entry(ic, &config.global, link.index),
            xdp_peers: xdp::peer_addrs(ic, &config.global),
            na_router: garp::ipv6_forwarding(&link.name),
            link,
            tx,
            dsts,
            checksum: if ic.v3_checksum_as_v2 {
                ChecksumMode::V3AsV2
            } else {
                ChecksumMode::Rfc
            },
            v6,
            vips,
            excluded,
            rx_link: vip_link.clone(),
            vmac,
            routes,
            rules,
            garp_task: None,
            garp_interval: Duration::from_secs_f64(if v6 {
                config.global.vrrp_gna_interval
            } else {
                config.global.vrrp_garp_interval
            }),
            base_priority,
            dont_track_primary: ic.dont_track_primary,
            notify_priority: notify_priority(config, ic, group),
            group,
            notified: false,
            quiet_init_fault: false,
            owe_fault_note: false,
            src_from_config: ic.unicast_src_ip.or(ic.mcast_src_ip).is_some(),
            send_link,
            unicast_ttl: ic.unicast_ttl,
            deleting: false,
            packet_log: Default::default(),
        })
    }

    /// `link`: where VIPs without `dev` go (the VMAC, if any); `base`: the instance's
    /// interface, where the XDP program runs.
    async fn vip(&self, link: &Link, base: u32, a: &VirtualAddress) -> Result<Vip> {
        let (link, xdp_ifindex) = match &a.dev {
            Some(dev) if *dev != link.name => {
                let l = self
                    .netlink
                    .link(dev)
                    .await
                    .with_context(|| format!("virtual address {}: interface {dev}", a.addr))?;
                let i = l.index;
                (l, i)
            }
            _ => (link.clone(), base),
        };
        Ok(Vip {
            link,
            addr: a.clone(),
            xdp_ifindex,
        })
    }

    /// keepalived's `use_vmac`: the macvlan with the virtual MAC, and keepalived's ARP
    /// settings (VMAC: arp_ignore 1, accept_local 1, rp_filter 0; base: arp_ignore 1,
    /// arp_filter 1, put back at stop), so only the VMAC answers ARP for the VIPs.
    /// `src`: the instance's source address. An IPv6 VMAC gets it (the base's link-local
    /// address) as its only address, so adverts leave it from this router's own link-local
    /// address, as keepalived's do.
    async fn vmac(
        &mut self,
        ic: &InstanceConfig,
        name: &str,
        base: &Link,
        v6: bool,
        src: IpAddr,
    ) -> Result<Vmac> {
        let vrid = ic.virtual_router_id.unwrap_or(0);
        let mac = crate::netlink::virtual_mac(vrid, v6);
        let (link, created) = self
            .netlink
            .ensure_vmac(name, base, mac)
            .await
            .with_context(|| format!("({}) use_vmac", ic.name))?;
        if !v6 {
            for (k, v) in [("arp_ignore", 1), ("accept_local", 1), ("rp_filter", 0)] {
                if let Err(e) = crate::netlink::set_sysctl(&link.name, k, v) {
                    warn!("({}) {}: setting {k}: {e}", ic.name, link.name);
                }
            }
            // The base's own values, recorded once however many VMACs share it.
            if !self.base_arp.contains_key(&base.name) {
                let old = (
                    crate::netlink::get_sysctl(&base.name, "arp_ignore").unwrap_or(0),
                    crate::netlink::get_sysctl(&base.name, "arp_filter").unwrap_or(0),
                );
                self.base_arp.insert(base.name.clone(), old);
            }
            for (k, v) in [("arp_ignore", 1), ("arp_filter", 1)] {
                if let Err(e) = crate::netlink::set_sysctl(&base.name, k, v) {
                    warn!("({}) {}: setting {k}: {e}", ic.name, base.name);
                }
            }
            // keepalived sets IPv6 address generation off on an IPv4 VMAC: a backup's VMAC
            // must send nothing (no DAD, no MLD), or the LAN's switches would learn the
            // virtual MAC at the backup's port.
            let _ = std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", link.name),
                "1",
            );
        }
        if v6 {
            // No address of its own (the VMAC's EUI-64 link-local would be the same on every
            // router), no DAD, no router solicitations: it stays quiet until it holds VIPs.
            for (k, v) in [
                ("addr_gen_mode", "1"),
                ("accept_dad", "0"),
                ("router_solicitations", "0"),
            ] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{}/{k}", link.name), v);
            }
        }
        self.netlink
            .set_up(link.index)
            .await
            .with_context(|| format!("({}) bringing {} up", ic.name, link.name))?;
        if v6 {
            let ll = VirtualAddress {
                addr: src,
                prefix: 64,
                brd: None,
                dev: None,
                scope: Some("link".into()),
                label: None,
                peer: None,
                no_track: false,
                preferred_lft: None,
                other: Vec::new(),
                at: ic.at.clone(),
            };
            self.netlink
                .add_address(link.index, &ll)
                .await
                .with_context(|| format!("({}) {src} on {}", ic.name, link.name))?;
        }
        let link = self.netlink.link(&link.name).await?;
        info!(
            "({}) VMAC {} ({}) on {}",
            ic.name,
            link.name,
            crate::netlink::mac_string(mac),
            base.name
        );
        Ok(Vmac { link, created })
    }

    /// Loads the XDP program, attaches it to every instance interface and programs the VRID
    /// filter. Failing is a warning: the agent then runs on its userspace checks alone.
    fn load_xdp(&mut self) -> Option<XdpProgram> {
        // The verifier gives up with EAGAIN when a signal reaches the process during the load
        // (a reload, a dump asked for at start-up): that is tried again, not given up on.
        let mut tries = 0;
        let mut prog = loop {
            let program = self.vrrp_program();
            match XdpProgram::load_only(&[program]) {
                Ok(p) => break p,
                Err(e) if tries < 4 && e.interrupted() => {
                    tries += 1;
                    log::debug!("XDP load interrupted ({e}); trying again");
                }
                // An older kernel's verifier may refuse the balancer (its limits are
                // tighter): VRRP keeps its XDP program, IPVS runs the virtual servers.
                Err(e)
                    if program == Program::VrrpLb
                        && self.opts.lvs_backend == crate::lvs::BackendChoice::Auto =>
                {
                    warn!(
                        "The balancer's XDP program is refused ({e}); VRRP's is loaded alone and IPVS runs the virtual servers"
                    );
                    self.lb_refused = true;
                }
                Err(e) => {
                    warn!("XDP program not loaded, running without it: {e}");
                    return None;
                }
            }
        };
        let all: Vec<usize> = (0..self.slots.len()).collect();
        if let Err(e) = self.xdp_add(&mut prog, &all) {
            warn!("{e}, running without XDP");
            return None;
        }
        Some(prog)
    }

    /// The program for the instances' interfaces: with the balancer when there are virtual
    /// servers to serve, else without it (a seventh of the verifier's work at start-up).
    fn vrrp_program(&self) -> Program {
        if self.opts.lvs
            && !self.config.virtual_servers.is_empty()
            && self.opts.lvs_backend != crate::lvs::BackendChoice::Ipvs
            && !self.lb_refused
        {
            Program::VrrpLb
        } else {
            Program::Vrrp
        }
    }

    /// Attaches the program to the instances' interfaces it is not on yet, arms the filter
    /// there, and enters their VRIDs.
    fn xdp_add(&self, prog: &mut XdpProgram, ks: &[usize]) -> Result<()> {
        let program = self.vrrp_program();
        prog.ensure_loaded(program)
            .with_context(|| format!("XDP program {program:?} not loaded"))?;
        for &k in ks {
            let slot = &self.slots[k];
            if prog
                .attachments()
                .iter()
                .any(|a| a.ifindex == slot.link.index)
            {
                continue;
            }
            prog.attach(&slot.link.name, program)
                .with_context(|| format!("XDP not attached to {}", slot.link.name))?;
            prog.maps
                .set_iface(
                    slot.link.index,
                    IfaceConfig {
                        flags: IFACE_FILTER_ARMED,
                    },
                )
                .context("XDP interface entry")?;
        }
        for &k in ks {
            let slot = &self.slots[k];
            if let Some((key, entry)) = slot.xdp_entry {
                prog.maps
                    .set_peers(key, &slot.xdp_peers)
                    .and_then(|()| prog.maps.set_vrid(key, entry))
                    .with_context(|| format!("({}) XDP VRID entry", slot.name))?;
            }
        }
        Ok(())
    }

    fn now(&self) -> Duration {
        monotonic_now()
    }

    /// The virtual servers, when there are any: served by the XDP program, or said not to be.
    fn start_lvs(&mut self, carried: &crate::lvs::Carried) {
        if self.config.virtual_servers.is_empty() || !self.opts.lvs {
            return;
        }
        use crate::lvs::BackendChoice;
        let (vips, held) = (self.vips(), self.held_vips());
        let count = self.config.virtual_servers.len();
        let backend = self.opts.lvs_backend;
        // The XDP balancer, unless IPVS runs everything; under auto, IPVS is what is left
        // without it.
        let prog = match self.xdp.as_mut() {
            _ if backend == BackendChoice::Ipvs || self.lb_refused => None,
            Some(prog) => match prog.replace(Program::Vrrp, Program::VrrpLb) {
                // A reload brought the first virtual servers: the program with the balancer
                // takes over the interfaces.
                Ok(()) => Some(prog),
                Err(e) if backend == BackendChoice::Xdp => {
                    warn!(
                        "{count} virtual_server(s) configured: the balancer's XDP program is not attached ({e}); not served"
                    );
                    return;
                }
                Err(e) => {
                    warn!(
                        "The balancer's XDP program is not attached ({e}): IPVS runs the virtual servers"
                    );
                    // Interfaces added later get VRRP's program, not this one again.
                    self.lb_refused = true;
                    None
                }
            },
            None if backend == BackendChoice::Xdp => {
                warn!(
                    "{count} virtual_server(s) configured: the balancer is the XDP program, which is off (--no-xdp); not served"
                );
                return;
            }
            None => None,
        };
        let ifaces: Vec<u32> = prog
            .as_ref()
            .map(|p| p.attachments().iter().map(|a| a.ifindex).collect())
            .unwrap_or_default();
        self.lvs = Some(crate::lvs::Balancer::start(
            &self.config,
            (|a| vips.contains(&a), |a| held.contains(&a)),
            (prog.map(|p| &mut p.maps), backend),
            &self.helpers,
            carried,
            (&ifaces, self.opts.log_detail),
        ));
    }

    /// Every instance's virtual addresses.
    fn vips(&self) -> Vec<std::net::IpAddr> {
        self.slots
            .iter()
            .flat_map(|s| s.vips.iter().map(|v| v.addr.addr))
            .collect()
    }

    /// The virtual addresses of the instances that are master (the VIPs this node holds).
    fn held_vips(&self) -> Vec<std::net::IpAddr> {
        self.slots
            .iter()
            .filter(|s| s.inst.state() == State::Master)
            .flat_map(|s| s.vips.iter().map(|v| v.addr.addr))
            .collect()
    }

    /// The balancer taken out of the data path (`shutdown`: the agent stops; else a reload
    /// that changes it), and IPVS's sync daemon stopped.
    fn stop_lvs(&mut self, shutdown: bool) {
        if let Some(lvs) = self.lvs.take() {
            let mails = lvs.stop(self.xdp.as_mut().map(|p| &mut p.maps), shutdown);
            self.lvs_mails.extend(mails);
        }
        if let Some(s) = self.syncd.take() {
            s.stop();
        }
    }

    /// keepalived's `lvs_sync_daemon`, when configured: started as backup for its instance
    /// (master if the instance already is), or in both roles without one.
    fn start_syncd(&mut self) {
        let Some(config) = crate::lvs::syncd::SyncConfig::of(&self.config) else {
            return;
        };
        let vrid = match &config.instance {
            Some(name) => {
                let Some(inst) = self.config.instances.iter().find(|i| i.name == *name) else {
                    warn!("lvs_sync_daemon: vrrp instance {name} is not configured; not started");
                    return;
                };
                inst.virtual_router_id
            }
            None => None,
        };
        let Some(mut syncd) = crate::lvs::syncd::SyncDaemon::start(config, vrid) else {
            return;
        };
        if let Some(name) = syncd.instance().map(str::to_string) {
            let master = self
                .slots
                .iter()
                .any(|s| *s.name == *name && s.inst.state() == State::Master);
            syncd.follow(&name, master);
        }
        self.syncd = Some(syncd);
    }

    /// Each receive socket's classic BPF filter, from the VRID entries of the instances it
    /// receives for (see `sockfilter`). Called whenever the instances change. A socket whose
    /// filter cannot be set (too many VRIDs and peers for one program) takes everything, as
    /// before, and says so once.
    fn refresh_socket_filters(&mut self) {
        for (&(ifindex, v6), (sock, _)) in &self.rx_sockets {
            let accept: Vec<crate::io::sockfilter::Accept> = self
                .slots
                .iter()
                .filter(|s| s.rx_link.index == ifindex && s.v6 == v6)
                .filter_map(|s| {
                    let (key, entry) = s.xdp_entry?;
                    Some(crate::io::sockfilter::Accept::from_entry(
                        key.vrid,
                        &entry,
                        s.xdp_peers.clone(),
                    ))
                })
                .collect();
            let prog = crate::io::sockfilter::program(v6, &accept);
            let r = if prog.len() > crate::io::sockfilter::MAX_INSNS {
                Err(std::io::Error::other(format!(
                    "{} instructions, more than the kernel's {}",
                    prog.len(),
                    crate::io::sockfilter::MAX_INSNS
                )))
            } else {
                sock.set_filter(&prog)
            };
            if let Err(e) = r {
                if self.filter_warned.insert((ifindex, v6)) {
                    warn!(
                        "VRRP receive socket on interface {ifindex}: no socket filter ({e}); every advert reaches userspace"
                    );
                }
                // An older, narrower filter would drop adverts the instances now need.
                let _ = sock.set_filter(&crate::io::sockfilter::program_pass_all());
            }
        }
    }

    /// Runs until [`Control::Stop`], then stops every instance gracefully: XDP detached,
    /// priority-0 adverts, the addresses released once successors advertise (at most
    /// [`MAX_HANDOVER`]; a second Stop releases at once).
    pub async fn run(
        mut self,
        startup_delay: Duration,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<()> {
        // Everything that can fail comes before the instances start, so a failure leaves
        // nothing configured behind (finish() undoes the VMACs).
        let (mut links, mut timer) = match (
            crate::netlink::Netlink::link_changes().context("netlink link monitor"),
            Timer::new().context("timerfd"),
        ) {
            (Ok(l), Ok(t)) => (l, t),
            (Err(e), _) | (_, Err(e)) => {
                self.finish().await?;
                return Err(e);
            }
        };
        let mut addr_changes = match crate::netlink::Netlink::address_changes() {
            Ok(d) => d,
            Err(e) => {
                self.finish().await?;
                return Err(anyhow!(e).context("netlink address monitor"));
            }
        };
        if !startup_delay.is_zero() {
            info!(
                "Delaying startup for {:.6} seconds",
                startup_delay.as_secs_f64()
            );
            tokio::select! {
                _ = control.recv() => return self.finish().await,
                _ = tokio::time::sleep(startup_delay) => {}
            }
        }
        // keepalived removes whatever a previous run left configured (a crash as master leaves
        // the VIPs), so a router starting as backup never holds them.
        for k in 0..self.slots.len() {
            self.remove_leftovers(k).await;
        }
        self.refresh_socket_filters();
        self.start_lvs(&Default::default());
        self.start_syncd();
        self.start_all().await;
        // Loading the XDP program parses the kernel's BTF (tens of MB, freed since): give
        // that memory back to the system, or it stays in the resident set for good.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe {
            libc::malloc_trim(0);
        }
        // Set once a stop was asked for: the instances hand over, then we finish.
        let mut stop_deadline: Option<Duration> = None;
        // Instances waiting for a re-created interface are tried again this often.
        let mut follow_retry = tokio::time::interval(Duration::from_secs(1));
        follow_retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut control_open = true;
        // lc/wlc: the real servers' open flows are counted this often.
        let mut lvs_count = tokio::time::interval(crate::lvs::COUNT_EVERY);
        lvs_count.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(deadline) = stop_deadline {
                let all_stopped = self.slots.iter().all(|s| s.inst.state() == State::Init);
                if all_stopped || self.now() >= deadline {
                    break;
                }
            }
            let next = self
                .slots
                .iter()
                .filter_map(|s| s.inst.next_deadline())
                .min();
            if let Err(e) = timer.set(next) {
                warn!("arming the timer: {e}; stopping");
                break;
            }
            tokio::select! {
                biased;
                c = control.recv(), if control_open => match c {
                    Some(Control::DumpStats) => {
                        if let Some(prog) = &self.xdp {
                            log_xdp_counters(prog, &self.slots);
                        }
                        self.dump_stats(false);
                    }
                    Some(Control::DumpStatsClear) => self.dump_stats(true),
                    Some(Control::DumpData) => self.dump_data().await,
                    Some(Control::DumpJson) => self.dump_json(),
                    Some(Control::Reload(loaded)) if stop_deadline.is_none() => self.reload(*loaded).await,
                    Some(Control::Reload(_)) => info!("Reload ignored: stopping"),
                    Some(Control::Status(reply)) => {
                        let _ = reply.send(self.snapshot());
                    }
                    Some(Control::Stop) if stop_deadline.is_none() => {
                        self.begin_stop().await;
                        stop_deadline = Some(self.now() + MAX_HANDOVER);
                    }
                    // A second stop: release at once.
                    Some(Control::Stop) => break,
                    // Nobody can ask any more (the caller dropped the sender): carry on.
                    None => control_open = false,
                },
                _ = timer.wait() => {
                    // Adverts already received count first: one that arrived before a
                    // backup's deadline must reset it, however late the loop got to it.
                    // Bounded, so a flood cannot hold a master's advert back.
                    tokio::task::yield_now().await;
                    for _ in 0..64 {
                        let Ok((ifindex, v6, packet)) = self.rx.try_recv() else { break };
                        self.dispatch(ifindex, v6, packet).await;
                    }
                    // One time for the whole round: instances whose timers fire together stay
                    // together (their next deadlines are equal), however long the round takes.
                    let now = self.now();
                    for k in 0..self.slots.len() {
                        if let Some(at) = self.slots[k].inst.serve_at(now) {
                            self.event_at(k, at, Event::Timer).await;
                        }
                    }
                }
                Some((ifindex, v6, packet)) = self.rx.recv() => self.dispatch(ifindex, v6, packet).await,
                Some(change) = links.recv() => {
                    if change.deleted {
                        self.link_deleted(change.index);
                    }
                    if !change.deleted
                        && let Some(name) = &change.name
                        && self.uses_other_index(name, change.index)
                    {
                        self.recreated.insert(name.clone());
                    }
                    for k in 0..self.slots.len() {
                        if self.slots[k].link.index == change.index && self.slots[k].link.up != change.up {
                            self.slots[k].link.up = change.up;
                            if self.slots[k].dont_track_primary {
                                continue;
                            }
                            let ev = if change.up { Event::LinkUp } else { Event::LinkDown };
                            info!("Netlink reports {} {}", self.slots[k].link.name, if change.up { "up" } else { "down" });
                            self.event(k, ev).await;
                        }
                    }
                    for k in self.tracking.link_change(change.index, change.up) {
                        self.track(k).await;
                    }
                    if !self.recreated.is_empty() && stop_deadline.is_none() {
                        self.follow_interfaces().await;
                    }
                }
                Some(change) = addr_changes.recv(), if stop_deadline.is_none() => {
                    if change.deleted {
                        self.vip_deleted(&change).await;
                    }
                    self.source_changed(&change).await;
                }
                _ = follow_retry.tick(), if !self.recreated.is_empty() && stop_deadline.is_none() => {
                    self.follow_interfaces().await;
                }
                _ = lvs_count.tick(), if self.lvs.as_ref().is_some_and(|l| l.counts_flows()) => {
                    if let (Some(lvs), Some(prog)) = (self.lvs.as_mut(), self.xdp.as_mut()) {
                        lvs.count_flows(&mut prog.maps);
                    }
                }
                Some(report) = lvs_report(&mut self.lvs) => {
                    if let Some(lvs) = self.lvs.as_mut() {
                        lvs.report(report, self.xdp.as_mut().map(|p| &mut p.maps));
                    }
                }
                Some(update) = self.tracking.rx.recv() => {
                    for k in self.tracking.update(update) {
                        self.track(k).await;
                    }
                }
            }
        }
        self.finish().await
    }

    /// keepalived's reaction to an address deleted under it (netlink_if_address_filter): a
    /// master whose VIP or excluded VIP it was goes to BACKUP and comes back after its skew
    /// ([`Event::VipDeleted`]), putting every address back; `no_track` addresses are the
    /// operator's business. Our own removals happen as instances leave MASTER, so they find
    /// none; in case one is master again already, the address is looked up first.
    async fn vip_deleted(&mut self, gone: &AddrChange) {
        fn ours<'a>(s: &'a Slot, gone: &AddrChange) -> Option<&'a Vip> {
            s.vips.iter().chain(&s.excluded).find(|v| {
                v.link.index == gone.index && v.addr.addr == gone.addr && !v.addr.no_track
            })
        }
        let hit: Vec<usize> = (0..self.slots.len())
            .filter(|&k| {
                self.slots[k].inst.state() == State::Master && ours(&self.slots[k], gone).is_some()
            })
            .collect();
        let Some(ifname) = hit
            .first()
            .and_then(|&k| ours(&self.slots[k], gone))
            .map(|v| v.link.name.clone())
        else {
            return;
        };
        let still_there = self
            .netlink
            .addresses(gone.index, gone.addr.is_ipv6())
            .await
            .is_ok_and(|a| a.contains(&gone.addr));
        if still_there {
            return;
        }
        if self.opts.log_detail {
            info!(
                "Netlink reflector reports IP {} removed from {ifname}",
                gone.addr
            );
        }
        for k in hit {
            self.event(k, Event::VipDeleted).await;
        }
    }

    /// keepalived's handling of the address an instance sends from (netlink_if_address_filter):
    /// deleted, the interface's next address of the family takes its place; none left, the
    /// instance goes FAULT (down_instance) until one is added (try_up_instance). Not for a
    /// configured `mcast_src_ip` / `unicast_src_ip`, nor for an IPv6 VMAC (which carries the
    /// address itself). Our own VIPs are never taken as a source.
    async fn source_changed(&mut self, c: &AddrChange) {
        let v6 = c.addr.is_ipv6();
        if let IpAddr::V6(a) = c.addr
            && !crate::netlink::is_link_local(&a)
        {
            return;
        }
        for k in 0..self.slots.len() {
            let s = &self.slots[k];
            let follows = !s.src_from_config
                && s.link.index == c.index
                && s.v6 == v6
                && !(v6 && s.vmac.is_some())
                && !s.deleting;
            // Most changes are nobody's source (our own VIPs coming and going): nothing to do.
            let lost = c.deleted && s.inst.src() == c.addr && !s.inst.has_no_source();
            let regained = !c.deleted && s.inst.has_no_source();
            if !follows || !(lost || regained) {
                continue;
            }
            let name = s.name.clone();
            let ifname = s.link.name.clone();
            let family = if v6 { "IPv6 link-local" } else { "IPv4" };
            if lost {
                let next = match self.netlink.addresses(c.index, v6).await {
                    Ok(addrs) => addrs.into_iter().find(|a| {
                        *a != c.addr
                            && !self.is_own_vip(*a)
                            && match a {
                                IpAddr::V6(a) => crate::netlink::is_link_local(a),
                                IpAddr::V4(_) => true,
                            }
                    }),
                    Err(_) => None,
                };
                if self.opts.log_detail {
                    info!("Deassigned address {} from interface {ifname}", c.addr);
                }
                if let Some(a) = next
                    && self.switch_src(k, a)
                {
                    info!(
                        "({name}) {} removed from {ifname}: adverts now from {a}",
                        c.addr
                    );
                    continue;
                }
                info!("({name}) {ifname} has no {family} address left to send adverts from");
                self.event(k, Event::NoSource(true)).await;
            } else if !self.is_own_vip(c.addr) && self.switch_src(k, c.addr) {
                info!("({name}) {} added to {ifname}: adverts from it", c.addr);
                self.event(k, Event::NoSource(false)).await;
            }
        }
    }

    fn is_own_vip(&self, a: IpAddr) -> bool {
        self.slots
            .iter()
            .any(|s| s.vips.iter().chain(&s.excluded).any(|v| v.addr.addr == a))
    }

    /// Sends instance `k`'s adverts from `src` (a new socket bound to it); false if it cannot
    /// be opened (said why).
    fn switch_src(&mut self, k: usize, src: IpAddr) -> bool {
        let s = &mut self.slots[k];
        match TxSocket::open(&s.send_link.name, s.send_link.index, src, s.unicast_ttl) {
            Ok(tx) => {
                s.tx = tx;
                s.inst.set_src(src);
                true
            }
            Err(e) => {
                warn!("({}) opening the VRRP send socket from {src}: {e}", s.name);
                false
            }
        }
    }

    /// An interface was deleted: instances on it are told by its link going down (FAULT);
    /// this says why, once per interface, as keepalived does.
    fn link_deleted(&mut self, index: u32) {
        let name = self
            .slots
            .iter()
            .find(|s| s.link.index == index)
            .map(|s| s.link.name.clone());
        if let Some(name) = name {
            info!("Interface {name} deleted");
        }
    }

    /// Whether an instance (its interface, a VIP's `dev`) or a tracker uses interface `name`
    /// under another index than `index`: it was deleted and created again.
    fn uses_other_index(&self, name: &str, index: u32) -> bool {
        let other = |l: &Link| l.name == name && l.index != index;
        self.slots
            .iter()
            .any(|s| other(&s.link) || s.vips.iter().chain(&s.excluded).any(|v| other(&v.link)))
            || self.tracking.tracks_other_index(name, index)
    }

    /// What a previous run may have left: the VIPs (but never the address adverts come
    /// from), routes and rules. keepalived logs "removing VIPs." here too.
    async fn remove_leftovers(&mut self, k: usize) {
        let slot = &self.slots[k];
        let name = slot.inst.name().to_string();
        if self.opts.log_detail {
            info!("({name}) removing VIPs.");
        }
        for r in &slot.rules {
            let _ = self.netlink.del_rule(r).await;
        }
        for (r, oif) in &slot.routes {
            let _ = self.netlink.del_route(r, *oif).await;
        }
        for vip in slot.vips.iter().chain(&slot.excluded) {
            if vip.addr.addr == slot.inst.src() {
                continue;
            }
            if let Err(e) = self.netlink.del_address(vip.link.index, &vip.addr).await {
                warn!("({name}) {e}");
            }
        }
    }

    /// A graceful stop begins. The XDP program goes first, while we are still master and the
    /// VIPs are still on the interface (the kernel answers ARP for them meanwhile): detaching
    /// takes the RTNL lock for milliseconds, and done later it would hold up the new master's
    /// address configuration whenever both share a kernel. Then each instance stops: priority
    /// 0 now, the VIPs once a successor advertises (`Instance::stop`).
    async fn begin_stop(&mut self) {
        // The virtual servers go with the XDP program (their omega scripts run now).
        self.stop_lvs(true);
        if let Some(mut prog) = self.xdp.take() {
            log_xdp_counters(&prog, &self.slots);
            let all: Vec<(u32, String)> = prog
                .attachments()
                .iter()
                .map(|a| (a.ifindex, a.iface.clone()))
                .collect();
            for (index, name) in all {
                if let Err(e) = prog.detach(index) {
                    warn!("{name}: detaching XDP: {e}");
                }
            }
        }
        for k in 0..self.slots.len() {
            self.event(k, Event::Stop).await;
        }
    }

    /// Every instance released (a second Stop releases one still handing over), then the
    /// VMACs go.
    async fn finish(mut self) -> Result<()> {
        if let Some(prog) = &self.xdp {
            log_xdp_counters(prog, &self.slots);
        }
        self.stop_lvs(true);
        for k in 0..self.slots.len() {
            while self.slots[k].inst.state() != State::Init {
                self.event(k, Event::Stop).await;
            }
        }
        // keepalived notifies every group STOP after its members (a group that never
        // started has nothing to stop).
        for g in 0..self.groups.len() {
            if self.groups[g].notified != State::Init {
                self.group_notify(g, State::Init);
            }
        }
        drop(self.xdp.take());
        // keepalived removes the VMACs it made and puts the base's ARP settings back.
        for slot in &self.slots {
            let Some(v) = &slot.vmac else { continue };
            if v.created
                && let Err(e) = self.netlink.delete_link(v.link.index).await
            {
                warn!("{}: removing the VMAC: {e}", v.link.name);
            }
        }
        for (base, (ignore, filter)) in &self.base_arp {
            let _ = crate::netlink::set_sysctl(base, "arp_ignore", *ignore);
            let _ = crate::netlink::set_sysctl(base, "arp_filter", *filter);
        }
        // The STOP notifications (and anything still queued) are delivered before we exit,
        // and so are the balancer's last mails.
        self.notifier.drain(MAX_NOTIFY_DRAIN).await;
        let mails = std::mem::take(&mut self.lvs_mails);
        let _ = tokio::time::timeout(MAX_NOTIFY_DRAIN, async {
            for m in mails {
                let _ = m.await;
            }
        })
        .await;
        Ok(())
    }

    async fn dispatch(&mut self, ifindex: u32, v6: bool, p: Packet) {
        let Some(&vrid) = p.payload.get(1) else {
            return;
        };
        let Some(k) = self
            .slots
            .iter()
            .position(|s| s.rx_link.index == ifindex && s.v6 == v6 && s.inst.params().vrid == vrid)
        else {
            debug!("Unknown VRID({vrid}) received on interface({ifindex}). ignoring...");
            return;
        };
        let advert = match Advert::decode(&p.payload, p.src, p.dst, self.slots[k].checksum) {
            Ok(a) => a,
            Err(e) => {
                // keepalived's counters for what its own checks reject.
                let stats = self.slots[k].inst.stats_mut();
                match e {
                    DecodeError::TooShort(_) | DecodeError::Length { .. } => {
                        stats.packet_len_err += 1
                    }
                    DecodeError::Type(_) => stats.invalid_type_rcvd += 1,
                    DecodeError::AuthType(_) => stats.invalid_authtype += 1,
                    _ => {}
                }
                if self.opts.log_detail {
                    let line = format!(
                        "({}) invalid advert from {}: {e}",
                        self.slots[k].inst.name(),
                        p.src
                    );
                    self.packet_log(k, &line);
                }
                return;
            }
        };
        let multicast = p.dst.is_multicast();
        // The kernel's receive time, never in the future and at most 100 ms old: the stamp is
        // wall-clock time, and a clock step between it and now would otherwise move it.
        let now = self.now();
        let at = p
            .rx_at
            .filter(|t| *t <= now && now - *t < Duration::from_millis(100))
            .unwrap_or(now);
        self.event_at(
            k,
            at,
            Event::Advert(Received {
                src: p.src,
                ttl: p.ttl,
                multicast,
                advert,
            }),
        )
        .await;
    }

    /// A line about one received packet, rate-limited per instance (see `ratelimit`).
    fn packet_log(&mut self, k: usize, line: &str) {
        let now = self.now();
        let slot = &mut self.slots[k];
        let d = slot.packet_log.check(now);
        if d.suppressed_before > 0 {
            info!(
                "({}) {} more lines about received packets not logged in the last {} s",
                slot.name,
                d.suppressed_before,
                super::ratelimit::WINDOW.as_secs()
            );
        }
        if d.log {
            info!("{line}");
        }
    }

    async fn event(&mut self, k: usize, ev: Event) {
        let now = self.now();
        self.event_at(k, now, ev).await;
    }

    /// Everything `vrrp-agent status` shows: per instance its state, priorities, master,
    /// last advert, VIPs, trackers and counters; the XDP mode and counters.
    fn snapshot(&self) -> serde_json::Value {
        use serde_json::json;
        let now = self.now();
        let ago = |t: Option<Duration>| t.map(|t| (now.saturating_sub(t)).as_secs_f64());
        let instances: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let p = s.inst.params();
                // The newest valid advert the XDP program saw for this VRID (its ktime is
                // CLOCK_MONOTONIC, as ours).
                let kernel_age = match (&self.xdp, s.xdp_entry) {
                    (Some(prog), Some((key, _))) => prog
                        .maps
                        .vrid_counters(&key)
                        .ok()
                        .flatten()
                        .and_then(|v| v.last)
                        .map(|l| now.saturating_sub(Duration::from_nanos(l.last_ns)).as_secs_f64()),
                    _ => None,
                };
                let xdp = match (&self.xdp, s.xdp_entry) {
                    (Some(prog), Some((key, _))) => prog.maps.vrid_counters(&key).ok().flatten().map(|v| {
                        let by: serde_json::Map<String, serde_json::Value> = agent_common::VrrpVerdict::ALL
                            .iter()
                            .map(|r| (r.name().to_string(), json!(v.packets(*r))))
                            .collect();
                        json!(by)
                    }),
                    _ => None,
                };
                json!({
                    "name": s.inst.name(),
                    "interface": s.link.name,
                    "vrid": p.vrid,
                    "version": match p.version { crate::vrrp::packet::Version::V2 => 2, crate::vrrp::packet::Version::V3 => 3 },
                    "state": s.inst.state().name(),
                    "priority": s.base_priority,
                    "effective_priority": s.inst.priority(),
                    "master": s.inst.master().map(|(a, _)| a.to_string()),
                    "master_priority": s.inst.master().map(|(_, p)| p),
                    "last_advert_age_s": ago(s.inst.last_rx()),
                    "last_transition_age_s": ago(s.inst.last_transition()),
                    "advert_interval_s": f64::from(p.advert_int_cs) / 100.0,
                    "vips": s.vips.iter().map(|v| v.addr.addr.to_string()).collect::<Vec<_>>(),
                    "sync_group": s.group.map(|g| self.groups[g].name.clone()),
                    "trackers": self.tracking.describe(k),
                    "stats": s.inst.stats(),
                    "transitions": s.inst.transitions().iter().map(|(st, n)| (st.name().to_lowercase(), json!(n))).collect::<serde_json::Map<String, serde_json::Value>>(),
                    "kernel_last_advert_age_s": kernel_age,
                    "xdp_adverts": xdp,
                })
            })
            .collect();
        let xdp = self.xdp.as_ref().map(|prog| {
            let attachments: Vec<serde_json::Value> = prog
                .attachments()
                .iter()
                .map(|a| json!({"interface": a.iface, "ifindex": a.ifindex, "mode": format!("{:?}", a.mode).to_lowercase()}))
                .collect();
            let counters: serde_json::Map<String, serde_json::Value> = prog
                .maps
                .counters()
                .map(|c| c.iter().map(|(n, v)| (n.to_string(), json!(v))).collect())
                .unwrap_or_default();
            json!({"attachments": attachments, "counters": counters})
        });
        let virtual_servers = match &self.lvs {
            Some(lvs) => lvs.describe(self.xdp.as_ref().map(|p| &p.maps)),
            None => json!([]),
        };
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "instances": instances,
            "xdp": xdp,
            "virtual_servers": virtual_servers,
        })
    }

    /// Starts every instance with its trackers' initial verdict, sync groups first (keepalived
    /// notifies a BACKUP or FAULT group before its members start).
    async fn start_all(&mut self) {
        let ks: Vec<usize> = (0..self.slots.len()).collect();
        let gs: Vec<usize> = (0..self.groups.len()).collect();
        self.start(&ks, &gs).await;
    }

    /// Starts instances `ks` and sync groups `gs` (whose members are among `ks`).
    async fn start(&mut self, ks: &[usize], gs: &[usize]) {
        let now = self.now();
        for &k in ks {
            let v = self.tracking.verdict(k);
            let prio = v.priority(self.slots[k].base_priority);
            let fault = v.fault.is_some();
            if let Some(line) = self.tracking.startup_fault_line(k, &self.slots[k].name) {
                info!("{line}");
            }
            self.slots[k].quiet_init_fault = self.tracking.only_pending(k) && self.slots[k].link.up;
            let inst = &mut self.slots[k].inst;
            inst.set_track_fault_initially(fault);
            // Before Start: no "Changing effective priority" line (keepalived sets it quietly).
            let _ = inst.handle(now, Event::Priority(prio));
        }
        for &g in gs {
            // Members waiting only for their scripts' first result are not faulty yet; while
            // any is, keepalived keeps the group in INIT and notifies nothing.
            let members = self.groups[g].members.clone();
            let faulty = members
                .iter()
                .any(|&m| self.slots[m].inst.own_fault() && !self.tracking.only_pending(m));
            let initialising = members.iter().any(|&m| self.tracking.only_pending(m));
            let state = if faulty { State::Fault } else { State::Backup };
            if !faulty && initialising {
                self.groups[g].target = State::Backup;
                continue;
            }
            if faulty {
                info!(
                    "VRRP_Group({}): Syncing {} to FAULT state",
                    self.groups[g].name, self.groups[g].name
                );
                for m in self.groups[g].members.clone() {
                    let _ = self.slots[m].inst.handle(now, Event::GroupFault(true));
                }
            }
            self.groups[g].target = state;
            self.group_notify(g, state);
        }
        for &k in ks {
            self.event(k, Event::Start).await;
        }
    }

    /// A tracker of instance `k` changed: its effective priority and FAULT follow.
    async fn track(&mut self, k: usize) {
        let v = self.tracking.verdict(k);
        let prio = v.priority(self.slots[k].base_priority);
        if prio != self.slots[k].inst.priority() {
            self.event(k, Event::Priority(prio)).await;
            let slot = &self.slots[k];
            if slot.notify_priority && slot.inst.priority() == prio {
                self.notifier.send(Note {
                    target: k,
                    state: if slot.inst.state() == State::Master {
                        notify::State::MasterPriority
                    } else {
                        notify::State::BackupPriority
                    },
                    priority: prio,
                });
            }
        }
        // A weight-0 script that a reload added and that has not answered yet: a running
        // instance does not leave its state for it (at start-up that is keepalived's quiet
        // FAULT (init), set in `start`); its first result decides.
        let fault = v.fault.is_some()
            && (self.slots[k].inst.track_fault() || !self.tracking.only_pending(k));
        if fault != self.slots[k].inst.track_fault() {
            self.event(k, Event::TrackFault(fault)).await;
        }
        // Started in a quiet FAULT while its scripts had not answered: once they have, a FAULT
        // that remains is notified (keepalived's down_instance), and its sync group follows.
        if self.slots[k].owe_fault_note && !self.tracking.only_pending(k) {
            self.slots[k].owe_fault_note = false;
            if self.slots[k].inst.state() == State::Fault {
                self.notifier.send(Note {
                    target: k,
                    state: notify::State::Fault,
                    priority: self.slots[k].inst.priority(),
                });
                self.slots[k].notified = true;
                if let Some(g) = self.slots[k].group {
                    let mut work = VecDeque::new();
                    self.sync(g, k, State::Fault, false, &mut work);
                    self.process(work, self.now()).await;
                }
            }
        }
    }

    /// Handles an event and everything its transitions lead to: sync group members following
    /// (keepalived's vrrp_sync_fault / _backup / _master), in order.
    async fn event_at(&mut self, k: usize, now: Duration, ev: Event) {
        // The queue allocates only when a sync group has follow-up work: a packet or a timer
        // for an instance on its own allocates nothing here.
        let mut work = VecDeque::new();
        self.step(k, now, ev, &mut work).await;
        self.process(work, now).await;
    }

    /// One event for one instance: its actions carried out, its group's rules queued.
    async fn step(&mut self, k: usize, now: Duration, ev: Event, work: &mut VecDeque<Work>) {
        let old = self.slots[k].inst.state();
        let mut actions = self.slots[k].inst.handle(now, ev);
        // The packets go first; the log lines of the batch follow in their order (formatting
        // and writing them costs tens of µs a transition should not wait for). A stable sort
        // in place: a batch is a handful of actions, no allocation.
        actions.sort_by_key(|a| matches!(a, Action::Log(..)));
        let wants_master = actions.contains(&Action::WantMaster);
        for a in actions {
            self.apply(k, a).await;
        }
        if let Some(g) = self.slots[k].group {
            self.sync(g, k, old, wants_master, work);
        }
    }

    async fn process(&mut self, mut work: VecDeque<Work>, now: Duration) {
        while let Some(w) = work.pop_front() {
            let (k, ev) = match w {
                Work::Event(k, ev) => (k, ev),
                Work::Log(line) => {
                    info!("{line}");
                    continue;
                }
                Work::GroupNotify(g, state) => {
                    self.group_notify(g, state);
                    continue;
                }
            };
            self.step(k, now, ev, &mut work).await;
        }
    }

    /// keepalived's sync group rules after member `k` moved from `old`.
    fn sync(
        &mut self,
        g: usize,
        k: usize,
        old: State,
        wants_master: bool,
        work: &mut VecDeque<Work>,
    ) {
        let new = self.slots[k].inst.state();
        // Nothing to do (most events: adverts, timers): return before copying anything.
        let quiet = new == old
            && !wants_master
            && new != State::Fault
            && self.groups[g].target != State::Fault;
        if quiet {
            return;
        }
        let members = self.groups[g].members.clone();
        let name = self.groups[g].name.clone();
        // A member in FAULT for a reason of its own (not scripts still pending at start).
        let own_fault = self.slots[k].inst.own_fault() && !self.tracking.only_pending(k);
        if new == State::Fault && own_fault && self.groups[g].target != State::Fault {
            // One member faulty: all go FAULT, and stay there until none is (each holds the
            // group's fault until then).
            self.groups[g].target = State::Fault;
            work.push_back(Work::Log(format!(
                "VRRP_Group({name}) Syncing instances to FAULT state"
            )));
            for &m in &members {
                work.push_back(Work::Event(m, Event::GroupFault(true)));
            }
            work.push_back(Work::GroupNotify(g, State::Fault));
            return;
        }
        if self.groups[g].target == State::Fault
            && !members.iter().any(|&m| self.slots[m].inst.own_fault())
        {
            // The last faulty member recovered: everyone leaves FAULT together.
            self.groups[g].target = State::Backup;
            work.push_back(Work::Log(format!(
                "VRRP_Group({name}) Syncing instances to BACKUP state"
            )));
            for &m in &members {
                work.push_back(Work::Event(m, Event::GroupFault(false)));
            }
            work.push_back(Work::GroupNotify(g, State::Backup));
            return;
        }
        if old == State::Master && new == State::Backup && self.groups[g].target != State::Backup {
            self.groups[g].target = State::Backup;
            work.push_back(Work::Log(format!(
                "VRRP_Group({name}) Syncing instances to BACKUP state"
            )));
            for &m in members.iter().filter(|&&m| m != k) {
                work.push_back(Work::Event(m, Event::GroupBackup));
            }
            work.push_back(Work::GroupNotify(g, State::Backup));
            return;
        }
        if wants_master {
            // keepalived's vrrp_sync_can_goto_master: only when every other member wants it
            // too (or already is master).
            let all = members.iter().filter(|&&m| m != k).all(|&m| {
                let i = &self.slots[m].inst;
                i.state() == State::Master || i.wants_master()
            });
            if all {
                self.groups[g].target = State::Master;
                work.push_back(Work::Event(k, Event::GroupMaster));
                work.push_back(Work::Log(format!(
                    "VRRP_Group({name}) Syncing instances to MASTER state"
                )));
                for &m in members.iter().filter(|&&m| m != k) {
                    work.push_back(Work::Event(m, Event::GroupMaster));
                }
                work.push_back(Work::GroupNotify(g, State::Master));
            }
        }
    }

    /// Notifies a sync group's own scripts, FIFO line and mail.
    fn group_notify(&mut self, g: usize, state: State) {
        self.groups[g].notified = state;
        if let Some(st) = notify_state(state) {
            self.notifier.send(Note {
                target: self.instances + g,
                state: st,
                priority: 0,
            });
        }
    }

    async fn apply(&mut self, k: usize, action: Action) {
        let slot = &self.slots[k];
        let name = slot.name.clone();
        match action {
            Action::Log(LogLevel::Info, m) => info!("{m}"),
            Action::Log(LogLevel::Packet, m) => self.packet_log(k, &m),
            Action::Log(LogLevel::Detail, m) => {
                if self.opts.log_detail {
                    info!("{m}");
                }
            }
            Action::SendAdvert(ad) => {
                let stats = self.slots[k].inst.stats_mut();
                stats.advert_sent += 1;
                if ad.priority == 0 {
                    stats.pri_zero_sent += 1;
                }
                let slot = &self.slots[k];
                for &dst in &slot.dsts {
                    match ad.encode(slot.inst.src(), dst, slot.checksum) {
                        Ok(bytes) => {
                            if let Err(e) = slot.tx.send(dst, &bytes) {
                                warn!("({name}) sending advert to {dst}: {e}");
                            }
                        }
                        Err(e) => warn!("({name}) cannot encode advert: {e}"),
                    }
                }
            }
            Action::ArmXdp | Action::DisarmXdp => {
                let arm = action == Action::ArmXdp;
                // keepalived's lvs_sync_daemon follows its instance in and out of master.
                if let Some(s) = self.syncd.as_mut() {
                    s.follow(&name, arm);
                }
                // ha_suspend: checkers follow the VIPs this node holds.
                if self.lvs.is_some() {
                    let held = self.held_vips();
                    if let Some(lvs) = self.lvs.as_mut() {
                        lvs.held_changed(|a| held.contains(&a));
                    }
                }
                let slot = &self.slots[k];
                let Some(prog) = self.xdp.as_mut() else {
                    return;
                };
                for vip in &slot.vips {
                    // IPv4: ARP is answered for it; both: virtual servers on it are served.
                    let a = vip.addr.addr;
                    let key = match a {
                        IpAddr::V4(a) => VipKey::v4(vip.xdp_ifindex, 0, a.octets()),
                        IpAddr::V6(a) => VipKey::v6(vip.xdp_ifindex, 0, a.octets()),
                    };
                    let r = if arm {
                        prog.maps.arm_vip(
                            key,
                            VipValue {
                                mac: vip.link.mac,
                                _pad: [0; 2],
                            },
                        )
                    } else {
                        prog.maps.disarm_vip(&key)
                    };
                    if let Err(e) = r {
                        warn!("({name}) XDP VIP {a}: {e}");
                    }
                }
            }
            Action::Garp { repeat } => {
                let interval = slot.garp_interval;
                let targets: Vec<(u32, [u8; 6], IpAddr)> = slot
                    .vips
                    .iter()
                    .chain(&slot.excluded)
                    .map(|v| (v.link.index, v.link.mac, v.addr.addr))
                    .collect();
                if self.opts.log_detail {
                    for v in slot.vips.iter().chain(&slot.excluded) {
                        info!(
                            "({name}) Sending/queueing {} on {} for {}",
                            if v.addr.addr.is_ipv6() {
                                "Unsolicited Neighbour Adverts"
                            } else {
                                "gratuitous ARPs"
                            },
                            v.link.name,
                            v.addr.addr
                        );
                    }
                }
                let router = slot.na_router;
                let targets: Vec<(Arc<FrameSocket>, [u8; 6], IpAddr)> = targets
                    .into_iter()
                    .filter_map(|(i, mac, a)| self.frames.get(&i).map(|f| (f.clone(), mac, a)))
                    .collect();
                let send_round = move |targets: &[(Arc<FrameSocket>, [u8; 6], IpAddr)]| {
                    for (f, mac, addr) in targets {
                        if let Err(e) = f.announce(*mac, *addr, router) {
                            warn!("({name}) gratuitous ARP/NA for {addr}: {e}");
                        }
                    }
                };
                if repeat == 0 {
                    return;
                }
                // The first round goes now, in the transition; with vrrp_garp_interval the
                // rest are spaced in their own task so the loop goes on.
                send_round(&targets);
                if interval.is_zero() {
                    for _ in 1..repeat {
                        send_round(&targets);
                    }
                } else if repeat > 1 {
                    // One spaced burst per instance at a time: a new one replaces it, and
                    // leaving MASTER (RemoveVips) ends it.
                    let task = tokio::spawn(async move {
                        for _ in 1..repeat {
                            tokio::time::sleep(interval).await;
                            send_round(&targets);
                        }
                    });
                    if let Some(old) = self.slots[k].garp_task.replace(task.abort_handle()) {
                        old.abort();
                    }
                }
            }
            Action::AddVips | Action::RemoveVips => {
                let add = action == Action::AddVips;
                if !add && let Some(task) = self.slots[k].garp_task.take() {
                    task.abort();
                }
                let slot = &self.slots[k];
                if self.opts.log_detail {
                    info!(
                        "({name}) {} VIPs.",
                        if add { "setting" } else { "removing" }
                    );
                }
                let t0 = monotonic_now();
                // keepalived: routes and rules go after the addresses they may need, and
                // before them (rules first).
                if !add {
                    for r in &slot.rules {
                        if let Err(e) = self.netlink.del_rule(r).await {
                            warn!("({name}) {e}");
                        }
                    }
                    for (r, oif) in &slot.routes {
                        if let Err(e) = self.netlink.del_route(r, *oif).await {
                            warn!("({name}) {e}");
                        }
                    }
                }
                for vip in slot.vips.iter().chain(&slot.excluded) {
                    let r = if add {
                        self.netlink.add_address(vip.link.index, &vip.addr).await
                    } else {
                        self.netlink.del_address(vip.link.index, &vip.addr).await
                    };
                    if let Err(e) = r {
                        warn!("({name}) {e} on {}", vip.link.name);
                    }
                }
                if add {
                    for (r, oif) in &slot.routes {
                        if let Err(e) = self.netlink.add_route(r, *oif).await {
                            warn!("({name}) {e}");
                        }
                    }
                    for r in &slot.rules {
                        if let Err(e) = self.netlink.add_rule(r).await {
                            warn!("({name}) {e}");
                        }
                    }
                }
                debug!(
                    "({name}) VIPs {} in {:?}",
                    if add { "set" } else { "removed" },
                    monotonic_now() - t0
                );
            }
            Action::Notify(_) if self.slots[k].deleting => {}
            Action::Notify(state) => {
                if std::mem::take(&mut self.slots[k].quiet_init_fault) && state == State::Fault {
                    self.slots[k].owe_fault_note = true;
                    return;
                }
                self.slots[k].owe_fault_note = false;
                let slot = &self.slots[k];
                // keepalived's send_instance_notifies: a sync group member that has notified
                // once does not notify entering the state its group is already in.
                if let Some(g) = slot.group
                    && slot.notified
                    && self.groups[g].notified == state
                {
                    return;
                }
                let priority = slot.inst.priority();
                self.slots[k].notified = true;
                if let Some(st) = notify_state(state) {
                    self.notifier.send(Note {
                        target: k,
                        state: st,
                        priority,
                    });
                }
            }
            Action::NotifyMasterRxLowerPri => self.notifier.send(Note {
                target: k,
                state: notify::State::MasterRxLowerPri,
                priority: slot.inst.priority(),
            }),
            // Handled by the sync group logic after the batch.
            Action::WantMaster => {}
        }
    }
}

/// keepalived reports a VRID used twice on one interface; two instances cannot share one (the
/// second would never hear an advert and become master).
/// The balancer's next checker report; never, without a balancer.
async fn lvs_report(lvs: &mut Option<crate::lvs::Balancer>) -> Option<crate::lvs::check::Report> {
    match lvs {
        Some(b) => b.rx.recv().await,
        None => std::future::pending().await,
    }
}

fn shared_vrid(slots: &[&Slot]) -> Result<()> {
    for (i, a) in slots.iter().enumerate() {
        if let Some(b) = slots[..i].iter().find(|b| {
            b.rx_link.index == a.rx_link.index
                && b.v6 == a.v6
                && b.inst.params().vrid == a.inst.params().vrid
        }) {
            bail!(
                "({}) and ({}) both use VRID {} on {}",
                b.inst.name(),
                a.inst.name(),
                a.inst.params().vrid,
                a.rx_link.name
            );
        }
    }
    Ok(())
}

/// `notify_priority_changes`: the instance's, else its sync group's, else the global
/// `vrrp_notify_priority_changes`.
fn notify_priority(config: &Config, ic: &InstanceConfig, group: Option<usize>) -> bool {
    notify::flag(&ic.other, "notify_priority_changes")
        .or_else(|| {
            group
                .and_then(|g| notify::flag(&config.sync_groups[g].other, "notify_priority_changes"))
        })
        .or_else(|| notify::flag(&config.global.other, "vrrp_notify_priority_changes"))
        .unwrap_or(false)
}

/// keepalived's dump directory: `$TMPDIR` if absolute, else /tmp.
pub fn dump_dir() -> std::path::PathBuf {
    match std::env::var_os("TMPDIR") {
        Some(d) if std::path::Path::new(&d).is_absolute() => d.into(),
        _ => "/tmp".into(),
    }
}

/// Creates a dump file safely in a shared directory: an old file is removed first, and the
/// new one is created exclusively without following symlinks, mode 0600 (keepalived's
/// fopen_safe).
pub fn create_dump_file(name: &str) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dump_dir().join(name);
    let _ = std::fs::remove_file(&path);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    Ok((path, f))
}

/// keepalived's SIGUSR2 text (vrrp_print_stats).
pub fn stats_text(instances: &[(&str, &crate::vrrp::instance::Stats)]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    for (name, s) in instances {
        let _ = writeln!(t, "VRRP Instance: {name}");
        let _ = writeln!(t, "  Advertisements:");
        let _ = writeln!(t, "    Received: {}", s.advert_rcvd);
        let _ = writeln!(t, "    Sent: {}", s.advert_sent);
        let _ = writeln!(t, "  Became master: {}", s.become_master);
        let _ = writeln!(t, "  Released master: {}", s.release_master);
        let _ = writeln!(t, "  Packet Errors:");
        let _ = writeln!(t, "    Length: {}", s.packet_len_err);
        let _ = writeln!(t, "    TTL: {}", s.ip_ttl_err);
        let _ = writeln!(t, "    Invalid Type: {}", s.invalid_type_rcvd);
        let _ = writeln!(t, "    Advertisement Interval: {}", s.advert_interval_err);
        let _ = writeln!(t, "    Address List: {}", s.addr_list_err);
        let _ = writeln!(t, "  Authentication Errors:");
        let _ = writeln!(t, "    Invalid Type: {}", s.invalid_authtype);
        let _ = writeln!(t, "    Type Mismatch: {}", s.authtype_mismatch);
        let _ = writeln!(t, "    Failure: {}", s.auth_failure);
        let _ = writeln!(t, "  Priority Zero:");
        let _ = writeln!(t, "    Received: {}", s.pri_zero_rcvd);
        let _ = writeln!(t, "    Sent: {}", s.pri_zero_sent);
    }
    t
}

/// The notification for entering a state (INIT is where a stopped instance goes: STOP).
fn notify_state(state: State) -> Option<notify::State> {
    Some(match state {
        State::Master => notify::State::Master,
        State::Backup => notify::State::Backup,
        State::Fault => notify::State::Fault,
        State::Init => notify::State::Stop,
    })
}

/// What the kernel saw while we ran: the totals, and per instance the adverts passed and
/// dropped for its VRID (logged at stop; the agent's maps are not pinned).
fn log_xdp_counters(prog: &XdpProgram, slots: &[Slot]) {
    match prog.maps.counters() {
        Ok(c) => {
            let nonzero: Vec<String> = c
                .iter()
                .filter(|(_, v)| *v > 0)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            info!("XDP counters: frames={} {}", c.frames(), nonzero.join(" "));
        }
        Err(e) => warn!("reading XDP counters: {e}"),
    }
    for slot in slots {
        let Some((key, _)) = slot.xdp_entry else {
            continue;
        };
        if let Ok(Some(v)) = prog.maps.vrid_counters(&key) {
            let dropped: u64 = agent_common::VrrpVerdict::ALL
                .iter()
                .filter(|v| **v != agent_common::VrrpVerdict::Valid)
                .map(|r| v.packets(*r))
                .sum();
            info!(
                "({}) XDP: {} valid adverts passed, {dropped} dropped",
                slot.inst.name(),
                v.packets(agent_common::VrrpVerdict::Valid)
            );
        }
    }
}
