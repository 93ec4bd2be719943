//! One VRRP instance's state machine (RFC 5798 §6.4, RFC 3768 §6.4), with keepalived 2.2.7's
//! behaviour where the RFCs leave room. Sans-IO: [`Instance::handle`] takes the time and an
//! [`Event`] and returns the [`Action`]s to carry out; it never reads a clock or a socket, so
//! every rule is a deterministic test on virtual time.
//!
//! Timers are plain deadlines the runtime asks for ([`Instance::next_deadline`]) and answers
//! with [`Event::Timer`]. Only sending an advert moves the advert deadline: nothing received
//! delays or suppresses our own adverts (keepalived 2.2.7 re-arms its advert timer on every
//! packet read, so 2 invalid packets/s for its VRID silence a master).

use std::{cmp::Ordering, net::IpAddr, time::Duration};

use super::packet::{Advert, Auth, Version};

/// RFC 5798 §6.1: priority of the router that owns the virtual addresses.
pub const PRIORITY_OWNER: u8 = 255;
/// RFC 5798 §6.1: the master is stopping; backups take over after the skew time.
pub const PRIORITY_STOP: u8 = 0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// RFC 5798 §6.4.1: not started, or stopped.
    Init,
    Backup,
    Master,
    /// keepalived's FAULT: the interface (or, later, a tracked object) is down.
    Fault,
}

impl State {
    /// keepalived's name of the state (notify scripts, logs, dumps).
    pub fn name(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

/// keepalived's gratuitous ARP / unsolicited NA schedule (`garp_*` keywords).
#[derive(Clone, Debug, PartialEq)]
pub struct GarpSchedule {
    /// `garp_master_repeat`: GARPs per VIP sent on becoming master (default 5).
    pub repeat: u32,
    /// `garp_master_delay`: a second burst this long after becoming master (0: none).
    pub delay: Duration,
    /// `garp_master_refresh`: a burst of `refresh_repeat` this often while master (0: none).
    pub refresh: Duration,
    pub refresh_repeat: u32,
    /// `garp_lower_prio_repeat`: GARPs sent when a lower-priority advert reaches the master.
    pub lower_prio_repeat: u32,
    /// `garp_lower_prio_delay`: a second such burst this long after.
    pub lower_prio_delay: Duration,
}

impl Default for GarpSchedule {
    fn default() -> Self {
        GarpSchedule {
            repeat: 5,
            delay: Duration::from_secs(5),
            refresh: Duration::ZERO,
            refresh_repeat: 1,
            lower_prio_repeat: 5,
            lower_prio_delay: Duration::from_secs(5),
        }
    }
}

/// What an instance is configured with (see `Params::from_config` in `vrrp::params`).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub name: String,
    pub vrid: u8,
    pub version: Version,
    /// Configured priority (1..=255).
    pub priority: u8,
    /// Our Advertisement_Interval, centiseconds.
    pub advert_int_cs: u16,
    /// Master_Down_Interval in adverts (RFC: 3; keepalived's `down_timer_adverts`).
    pub down_timer_adverts: u32,
    /// `state MASTER`: take over after one interval if nobody advertises (keepalived).
    pub want_master: bool,
    pub nopreempt: bool,
    pub preempt_delay: Duration,
    /// The virtual addresses carried in adverts (and checked in received ones).
    pub addrs: Vec<IpAddr>,
    pub auth: Auth,
    /// Unicast peers configured: adverts go to them, TTL 255 is not required.
    pub unicast: bool,
    /// The unicast peers with their optional TTL bounds (`unicast_peer { ADDR min_ttl N
    /// max_ttl M }`).
    pub peers: Vec<Peer>,
    /// `check_unicast_src` (instance or global): a unicast advert must come from a peer.
    pub check_unicast_src: bool,
    /// vrrp-agent's `allowed_peers`: a multicast advert must come from one of these (empty:
    /// from anyone).
    pub allowed_peers: Vec<IpAddr>,
    /// `lower_prio_no_advert`: a master does not answer a lower-priority advert with its own.
    pub lower_prio_no_advert: bool,
    /// `higher_prio_send_advert`: a master answers a higher-priority advert before yielding.
    pub higher_prio_send_advert: bool,
    /// `skip_check_adv_addr`: do not re-check the address list of the known master's adverts.
    pub skip_check_adv_addr: bool,
    pub garp: GarpSchedule,
    /// A member of a `vrrp_sync_group`: it becomes master only together with the whole group
    /// (the runtime answers [`Action::WantMaster`] with [`Event::GroupMaster`]).
    pub sync_group: bool,
}

/// A unicast peer and the TTL range its adverts must arrive with (keepalived: 0–255 unless
/// set).
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    pub addr: IpAddr,
    pub min_ttl: u8,
    pub max_ttl: u8,
}

/// A received advert, already decoded (checksum and message format checked by the codec, and
/// usually by the XDP filter before it).
#[derive(Clone, Debug, PartialEq)]
pub struct Received {
    pub src: IpAddr,
    /// IPv4 TTL / IPv6 hop limit.
    pub ttl: u8,
    /// Sent to a multicast group (not to one of our addresses).
    pub multicast: bool,
    pub advert: Advert,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Start,
    Stop,
    /// A deadline from [`Instance::next_deadline`] has passed.
    Timer,
    Advert(Received),
    /// The effective priority changed (tracking); ignored for an address owner.
    Priority(u8),
    LinkDown,
    LinkUp,
    /// A tracker with weight 0 failed (true) or every such tracker is fine again (false).
    TrackFault(bool),
    /// Another member of our sync group is faulty (true), or none is any more (false).
    GroupFault(bool),
    /// The sync group goes MASTER: every member that wants to, or is backup, takes over.
    GroupMaster,
    /// A sync group member went back to BACKUP: a master member follows.
    GroupBackup,
    /// Someone else deleted one of our virtual addresses while we are master.
    VipDeleted,
    /// The interface has no address left to send adverts from (true), or has one again
    /// (false; [`Instance::set_src`] first).
    NoSource(bool),
}

/// Why an instance is in FAULT (several can hold at once; all must clear).
const FAULT_LINK: u8 = 1;
const FAULT_TRACK: u8 = 2;
const FAULT_GROUP: u8 = 4;
const FAULT_NO_SOURCE: u8 = 8;

/// keepalived's log levels as the state machine uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Info,
    /// Logged only with `-D` (keepalived's LOG_DETAIL).
    Detail,
    /// About one received packet (a rejected advert, a lower priority one): logged as Info,
    /// but rate-limited by the runtime, since a flood would otherwise become a log flood.
    Packet,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    SendAdvert(Advert),
    /// Let the XDP program answer ARP/ND for the VIPs (before they are on the interface).
    ArmXdp,
    /// Stop answering in the kernel (before the VIPs are removed).
    DisarmXdp,
    AddVips,
    RemoveVips,
    /// Gratuitous ARP / unsolicited NA for every VIP, `repeat` times each.
    Garp {
        repeat: u32,
    },
    /// The instance entered this state (notify scripts and FIFOs).
    Notify(State),
    /// A master received a lower-priority advert (`notify_master_rx_lower_pri`).
    NotifyMasterRxLowerPri,
    /// A sync group member's Master_Down_Timer fired: it becomes master only with its group
    /// (keepalived's `vrrp_sync_can_goto_master`); until then it stays BACKUP.
    WantMaster,
    Log(LogLevel, String),
}

/// keepalived's per-instance counters (`vrrp_stats`, its SIGUSR2 dump and JSON), counted where
/// keepalived counts them. The runtime adds what only it sees (sent adverts, decode errors).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Adverts of the right type, version and length for us (before the address checks).
    pub advert_rcvd: u64,
    pub advert_sent: u64,
    pub become_master: u64,
    pub release_master: u64,
    pub packet_len_err: u64,
    /// keepalived 2.2.7 never counts this; here: a VRRPv2 advert with another interval.
    pub advert_interval_err: u64,
    pub ip_ttl_err: u64,
    pub invalid_type_rcvd: u64,
    pub addr_list_err: u64,
    pub invalid_authtype: u64,
    pub authtype_mismatch: u64,
    pub auth_failure: u64,
    pub pri_zero_rcvd: u64,
    pub pri_zero_sent: u64,
}

/// One VRRP instance.
#[derive(Clone, Debug)]
pub struct Instance {
    p: Params,
    /// Our primary address: the source of our adverts, the tie-breaker at equal priority.
    src: IpAddr,
    state: State,
    priority: u8,
    /// Master_Adver_Interval (RFC 5798 §6.1): the master's interval as learned by a v3 backup.
    master_adv_int_cs: u16,
    /// FAULT_* reasons that hold now.
    faults: u8,
    /// A sync group member whose Master_Down_Timer fired, waiting for its group.
    wants_master: bool,
    /// The last master heard (address, priority).
    master: Option<(IpAddr, u8)>,
    advert_at: Option<Duration>,
    down_at: Option<Duration>,
    garp_delay_at: Option<Duration>,
    garp_refresh_at: Option<Duration>,
    lower_prio_garp_at: Option<Duration>,
    /// preempt_delay: until this time lower-priority adverts still hold us in BACKUP.
    preempt_at: Option<Duration>,
    /// Graceful stop in progress: the addresses go when a successor advertises or then.
    handover_until: Option<Duration>,
    stats: Stats,
    /// When the state last changed (the `now` of that event).
    last_transition: Option<Duration>,
    /// When the last advert we accepted arrived.
    last_rx: Option<Duration>,
    /// Transitions into each state (INIT, BACKUP, MASTER, FAULT).
    transitions: [u64; 4],
}

/// Allowance for the successor's advert to reach us after its skew time.
const HANDOVER_MARGIN: Duration = Duration::from_millis(20);

// ===== impl Instance =====

impl Instance {
    pub fn new(p: Params, src: IpAddr) -> Self {
        Instance {
            priority: p.priority,
            master_adv_int_cs: p.advert_int_cs,
            p,
            src,
            state: State::Init,
            faults: 0,
            wants_master: false,
            master: None,
            advert_at: None,
            down_at: None,
            garp_delay_at: None,
            garp_refresh_at: None,
            lower_prio_garp_at: None,
            preempt_at: None,
            handover_until: None,
            stats: Stats::default(),
            last_transition: None,
            last_rx: None,
            transitions: [0; 4],
        }
    }

    /// How often the instance entered each state: (state, count).
    pub fn transitions(&self) -> [(State, u64); 4] {
        [State::Init, State::Backup, State::Master, State::Fault]
            .map(|st| (st, self.transitions[st as usize]))
    }

    /// When the last advert this instance accepted arrived.
    pub fn last_rx(&self) -> Option<Duration> {
        self.last_rx
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// For the counters only the runtime sees (adverts sent, undecodable packets).
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// When the state last changed.
    pub fn last_transition(&self) -> Option<Duration> {
        self.last_transition
    }

    pub fn params(&self) -> &Params {
        &self.p
    }

    pub fn name(&self) -> &str {
        &self.p.name
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The effective priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// The interface's address changed under us (keepalived takes the interface's next
    /// address): adverts go from `src` from now on, and it decides equal-priority elections.
    pub fn set_src(&mut self, src: IpAddr) {
        self.src = src;
    }

    /// In FAULT because the interface has no address to send from.
    pub fn has_no_source(&self) -> bool {
        self.faults & FAULT_NO_SOURCE != 0
    }

    /// The master we last heard (address, priority), or ourselves while master.
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        match self.state {
            State::Master => Some((self.src, self.priority)),
            _ => self.master,
        }
    }

    pub fn master_adv_int(&self) -> Duration {
        cs(self.master_adv_int_cs)
    }

    /// Whether the link is thought up (before Start: the runtime's initial view).
    pub fn set_link_initially(&mut self, up: bool) {
        if self.state == State::Init {
            self.set_fault(FAULT_LINK, !up);
        }
    }

    /// Whether a weight-0 tracker holds the instance in FAULT (before Start: the initial view).
    pub fn set_track_fault_initially(&mut self, fault: bool) {
        if self.state == State::Init {
            self.set_fault(FAULT_TRACK, fault);
        }
    }

    /// Its own reasons for FAULT (the link, its trackers), not its sync group's.
    pub fn own_fault(&self) -> bool {
        self.faults & (FAULT_LINK | FAULT_TRACK) != 0
    }

    /// A reload's new parameters, in place: state, timers and the master heard are kept; the
    /// next advert carries the new interval, addresses and authentication. The effective
    /// priority follows through [`Event::Priority`] (an address owner's is its own).
    pub fn reconfigure(&mut self, p: Params) {
        if p.priority == PRIORITY_OWNER {
            self.priority = PRIORITY_OWNER;
        } else if self.p.priority == PRIORITY_OWNER {
            self.priority = p.priority;
        }
        if self.state != State::Backup || self.p.version == Version::V2 {
            self.master_adv_int_cs = p.advert_int_cs;
        }
        self.p = p;
    }

    /// Whether a weight-0 tracker holds the instance in FAULT.
    pub fn track_fault(&self) -> bool {
        self.faults & FAULT_TRACK != 0
    }

    /// A sync group member waiting for the group to go master.
    pub fn wants_master(&self) -> bool {
        self.wants_master
    }

    fn set_fault(&mut self, reason: u8, on: bool) {
        if on {
            self.faults |= reason;
        } else {
            self.faults &= !reason;
        }
    }

    /// The earliest time at which [`Event::Timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        [
            self.advert_at,
            self.down_at,
            self.garp_delay_at,
            self.garp_refresh_at,
            self.lower_prio_garp_at,
            self.handover_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether the runtime, awake at `now`, serves this instance's timers, and the time to
    /// hand to [`Instance::handle`]: `now` when a deadline has passed; and a master's advert
    /// due within 1/128 of its interval (7.8 ms at 1 s; at most 8 ms) goes out that much
    /// early, handled at its own deadline, so the next is still due an interval after it
    /// (the phase is kept, nothing adds up). Adverts of many instances due close together
    /// then leave in one wakeup instead of one each. Only adverts: a backup's down timer
    /// orders takeovers by skew, which can be 39 µs apart.
    pub fn serve_at(&self, now: Duration) -> Option<Duration> {
        let d = self.next_deadline()?;
        if d <= now {
            return Some(now);
        }
        let slack = (cs(self.master_adv_int_cs) / 128).min(Duration::from_millis(8));
        (self.state == State::Master && self.advert_at == Some(d) && d <= now + slack).then_some(d)
    }

    /// Skew_Time (RFC 5798 §6.1: ((256 − Priority) × Master_Adver_Interval) / 256; RFC 3768
    /// §6.1: (256 − Priority) / 256 seconds), for priority `prio`.
    fn skew_for(&self, prio: u32) -> Duration {
        match self.p.version {
            Version::V2 => Duration::from_micros(u64::from(prio) * 1_000_000 / 256),
            Version::V3 => Duration::from_micros(
                u64::from(prio) * u64::from(self.master_adv_int_cs) * 10_000 / 256,
            ),
        }
    }

    pub fn skew(&self) -> Duration {
        self.skew_for(256 - u32::from(self.priority))
    }

    /// Master_Down_Interval = down_timer_adverts × Master_Adver_Interval + Skew_Time.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adv_int() * self.p.down_timer_adverts + self.skew()
    }

    /// The advert we send with priority `priority`.
    fn advert(&self, priority: u8) -> Advert {
        Advert {
            version: self.p.version,
            vrid: self.p.vrid,
            priority,
            interval_cs: self.p.advert_int_cs,
            addrs: self.p.addrs.clone(),
            auth: match self.p.version {
                Version::V2 => self.p.auth,
                Version::V3 => Auth::None,
            },
        }
    }

    fn log(&self, out: &mut Vec<Action>, level: LogLevel, msg: String) {
        out.push(Action::Log(level, format!("({}) {msg}", self.p.name)));
    }

    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        let before = self.state;
        let out = self.handle_inner(now, event);
        if self.state != before {
            self.last_transition = Some(now);
            self.transitions[self.state as usize] += 1;
        }
        out
    }

    fn handle_inner(&mut self, now: Duration, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => self.start(now, &mut out),
            Event::Stop => self.stop(now, &mut out),
            Event::Timer => self.timer(now, &mut out),
            Event::Advert(rx) => self.receive(now, rx, &mut out),
            Event::Priority(p) => self.set_priority(p, &mut out),
            Event::LinkDown => self.fault(now, FAULT_LINK, true, &mut out),
            Event::LinkUp => self.fault(now, FAULT_LINK, false, &mut out),
            Event::TrackFault(on) => self.fault(now, FAULT_TRACK, on, &mut out),
            Event::GroupFault(on) => self.fault(now, FAULT_GROUP, on, &mut out),
            Event::NoSource(on) => self.fault(now, FAULT_NO_SOURCE, on, &mut out),
            Event::GroupMaster => {
                if self.state == State::Backup && self.handover_until.is_none() {
                    self.change_state(now, State::Master, &mut out);
                }
            }
            Event::GroupBackup => {
                if self.state == State::Master && self.handover_until.is_none() {
                    self.change_state(now, State::Backup, &mut out);
                }
            }
            Event::VipDeleted => {
                // keepalived's set_vrrp_backup: BACKUP with a priority-0 advert and the
                // addresses released, then "a quick transition back to master": the down
                // timer is only Skew_Time, so unless a better router answers the priority 0
                // first, we take over again and put every address back.
                if self.state == State::Master && self.handover_until.is_none() {
                    out.push(Action::SendAdvert(self.advert(PRIORITY_STOP)));
                    self.change_state(now, State::Backup, &mut out);
                    self.log(&mut out, LogLevel::Detail, "sent 0 priority".into());
                    self.down_at = Some(now + self.skew());
                }
            }
        }
        out
    }

    /// A reason for FAULT starts or ends (keepalived's `down_instance` / `try_up_instance`).
    fn fault(&mut self, now: Duration, reason: u8, on: bool, out: &mut Vec<Action>) {
        let was = self.faults != 0;
        self.set_fault(reason, on);
        // A change while handing over ends the hand-over: we are leaving anyway.
        if self.handover_until.is_some() {
            if was != (self.faults != 0) {
                self.stop(now, out);
            }
            return;
        }
        match (was, self.faults != 0) {
            (false, true) if matches!(self.state, State::Backup | State::Master) => {
                self.change_state(now, State::Fault, out);
            }
            (true, false) if self.state == State::Fault => self.leave_fault(now, out),
            _ => {}
        }
    }

    // ----- start, stop, fault -----

    /// keepalived's `vrrp_init_state`: an address owner asked to start as MASTER takes over at
    /// once; `state MASTER` otherwise waits one advert interval (plus the minimal skew) for a
    /// master to show itself; `state BACKUP` waits the full Master_Down_Interval (RFC 5798
    /// §6.4.1).
    fn start(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state != State::Init {
            return;
        }
        if self.faults != 0 {
            self.log(out, LogLevel::Info, "Entering FAULT STATE (init)".into());
            self.state = State::Fault;
            out.push(Action::Notify(State::Fault));
            return;
        }
        if self.owner_takes_over() {
            self.change_state(now, State::Master, out);
            return;
        }
        self.log(out, LogLevel::Info, "Entering BACKUP STATE (init)".into());
        self.state = State::Backup;
        self.down_at = Some(
            now + if self.p.want_master && self.p.priority == PRIORITY_OWNER {
                // A sync group's owner asks its group at once (keepalived's 1 µs timer).
                Duration::ZERO
            } else if self.p.want_master {
                self.master_adv_int() + self.skew_for(1)
            } else {
                self.master_down_interval()
            },
        );
        out.push(Action::Notify(State::Backup));
    }

    /// RFC 5798 §6.4.3 (Shutdown): a master sends an advert with priority 0; every timer
    /// stops.
    ///
    /// Make before break: the addresses stay until a successor is heard advertising (it takes
    /// over after its Skew_Time) or until the longest skew has passed, so clients are served
    /// all the way through the hand-over. keepalived drops them at once; both share the VIP
    /// for the microseconds between the successor's first advert and our release. A second
    /// Stop releases at once.
    fn stop(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.state == State::Master && self.handover_until.is_none() {
            out.push(Action::SendAdvert(self.advert(PRIORITY_STOP)));
            self.log(out, LogLevel::Detail, "sent 0 priority".into());
            self.clear_timers();
            self.handover_until = Some(now + self.longest_skew() + HANDOVER_MARGIN);
            return;
        }
        if self.state == State::Master {
            self.release_master(false, out);
        }
        self.handover_until = None;
        if self.state != State::Init {
            self.state = State::Init;
            out.push(Action::Notify(State::Init));
        }
        self.clear_timers();
    }

    /// The longest Skew_Time a backup can have (priority 1): how long a successor may take to
    /// answer our priority-0 advert.
    fn longest_skew(&self) -> Duration {
        self.skew_for(255)
    }

    /// Whether a graceful stop is still handing over (addresses kept, waiting for a successor).
    pub fn handing_over(&self) -> bool {
        self.handover_until.is_some()
    }

    /// An address owner asked to be master takes over at once — unless it is in a sync
    /// group, which decides for all its members (keepalived's vrrp_sync_can_goto_master).
    fn owner_takes_over(&self) -> bool {
        self.p.want_master && self.p.priority == PRIORITY_OWNER && !self.p.sync_group
    }

    fn leave_fault(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.owner_takes_over() {
            self.change_state(now, State::Master, out);
        } else {
            self.change_state(now, State::Backup, out);
            if self.p.want_master && self.p.priority == PRIORITY_OWNER {
                self.down_at = Some(now);
            }
        }
    }

    fn set_priority(&mut self, p: u8, out: &mut Vec<Action>) {
        // keepalived: an address owner's priority is not changed by tracking.
        if self.p.priority == PRIORITY_OWNER {
            return;
        }
        let p = p.clamp(1, PRIORITY_OWNER - 1);
        if p != self.priority && self.state != State::Init {
            // keepalived's vrrp_set_effective_priority. The new priority goes out with the
            // next advert; a backup's skew follows from its next Master_Down_Timer.
            self.log(
                out,
                LogLevel::Info,
                format!("Changing effective priority from {} to {p}", self.priority),
            );
        }
        self.priority = p;
    }

    fn clear_timers(&mut self) {
        self.wants_master = false;
        self.advert_at = None;
        self.down_at = None;
        self.garp_delay_at = None;
        self.garp_refresh_at = None;
        self.lower_prio_garp_at = None;
        self.preempt_at = None;
    }

    /// The one place states change (keepalived's `vrrp_state_goto_master`,
    /// `vrrp_state_leave_master`, `vrrp_state_leave_fault`).
    fn change_state(&mut self, now: Duration, new: State, out: &mut Vec<Action>) {
        let old = self.state;
        match (old, new) {
            (_, State::Master) => {
                // RFC 5798 §6.4.1/§6.4.2: send an advert, broadcast gratuitous ARPs, set the
                // advert timer. keepalived sends the advert first so the old master drops its
                // addresses before our GARPs arrive. The XDP responder is armed before the
                // GARPs so any ARP they trigger is answered from the kernel at once; the
                // addresses follow.
                self.log(out, LogLevel::Info, "Entering MASTER STATE".into());
                self.state = State::Master;
                self.stats.become_master += 1;
                self.master_adv_int_cs = self.p.advert_int_cs;
                self.clear_timers();
                out.push(Action::SendAdvert(self.advert(self.priority)));
                out.push(Action::ArmXdp);
                if self.p.garp.repeat > 0 {
                    out.push(Action::Garp {
                        repeat: self.p.garp.repeat,
                    });
                }
                out.push(Action::AddVips);
                out.push(Action::Notify(State::Master));
                self.advert_at = Some(now + cs(self.p.advert_int_cs));
                if !self.p.garp.delay.is_zero() {
                    self.garp_delay_at = Some(now + self.p.garp.delay);
                }
                if !self.p.garp.refresh.is_zero() {
                    self.garp_refresh_at = Some(now + self.p.garp.refresh);
                }
            }
            (State::Master, State::Backup) => {
                self.log(out, LogLevel::Info, "Entering BACKUP STATE".into());
                self.release_master(false, out);
                self.state = State::Backup;
                self.clear_timers();
                self.down_at = Some(now + self.master_down_interval());
                out.push(Action::Notify(State::Backup));
            }
            (State::Master, State::Fault) => {
                // keepalived's leave_master towards FAULT sends priority 0 so a backup takes
                // over after its skew time rather than Master_Down_Interval.
                self.log(out, LogLevel::Info, "Entering FAULT STATE".into());
                self.release_master(true, out);
                self.state = State::Fault;
                self.master_adv_int_cs = self.p.advert_int_cs;
                self.clear_timers();
                out.push(Action::Notify(State::Fault));
            }
            (_, State::Fault) => {
                self.log(out, LogLevel::Info, "Entering FAULT STATE".into());
                self.state = State::Fault;
                self.clear_timers();
                out.push(Action::Notify(State::Fault));
            }
            (State::Fault, State::Backup) => {
                self.log(out, LogLevel::Info, "Entering BACKUP STATE".into());
                self.state = State::Backup;
                self.clear_timers();
                self.down_at = Some(now + self.master_down_interval());
                out.push(Action::Notify(State::Backup));
            }
            (_, State::Backup) | (_, State::Init) => {}
        }
    }

    /// Leaves MASTER: optionally a priority-0 advert, then the kernel stops answering ARP for
    /// the VIPs, then the VIPs go.
    fn release_master(&mut self, send_stop: bool, out: &mut Vec<Action>) {
        self.stats.release_master += 1;
        if send_stop {
            out.push(Action::SendAdvert(self.advert(PRIORITY_STOP)));
            self.log(out, LogLevel::Detail, "sent 0 priority".into());
        }
        out.push(Action::DisarmXdp);
        out.push(Action::RemoveVips);
    }

    // ----- timers -----

    fn timer(&mut self, now: Duration, out: &mut Vec<Action>) {
        let due = |t: Option<Duration>| t.is_some_and(|t| t <= now);
        if due(self.handover_until) {
            // Nobody took over within the longest skew: release anyway.
            self.stop(now, out);
            return;
        }
        match self.state {
            State::Backup if due(self.down_at) && self.p.sync_group => {
                // keepalived's vrrp_sync_can_goto_master: a group member waits (timer reset)
                // until every member wants to be master; the runtime then moves them all.
                if !self.wants_master {
                    self.log(out, LogLevel::Info, "Receive advertisement timeout".into());
                }
                self.wants_master = true;
                self.down_at = Some(now + self.master_down_interval());
                out.push(Action::WantMaster);
            }
            State::Backup if due(self.down_at) => {
                // RFC 5798 §6.4.2: Master_Down_Timer fired.
                self.log(out, LogLevel::Info, "Receive advertisement timeout".into());
                self.change_state(now, State::Master, out);
            }
            State::Master => {
                if due(self.advert_at) {
                    out.push(Action::SendAdvert(self.advert(self.priority)));
                    let next = self.advert_at.unwrap_or(now) + cs(self.p.advert_int_cs);
                    // After a stall, keep the rhythm from now rather than sending a burst.
                    self.advert_at = Some(if next <= now {
                        now + cs(self.p.advert_int_cs)
                    } else {
                        next
                    });
                }
                if due(self.garp_delay_at) {
                    self.garp_delay_at = None;
                    out.push(Action::Garp {
                        repeat: self.p.garp.repeat,
                    });
                }
                if due(self.lower_prio_garp_at) {
                    self.lower_prio_garp_at = None;
                    out.push(Action::Garp {
                        repeat: self.p.garp.lower_prio_repeat,
                    });
                }
                if due(self.garp_refresh_at) {
                    self.garp_refresh_at = Some(now + self.p.garp.refresh);
                    out.push(Action::Garp {
                        repeat: self.p.garp.refresh_repeat,
                    });
                }
            }
            _ => {}
        }
    }

    // ----- receiving -----

    /// RFC 5798 §7.1 and keepalived's `vrrp_check_packet`: what makes a decoded advert one for
    /// this instance. A rejected advert changes nothing (not even a backup's timer).
    fn reject(&self, out: &mut Vec<Action>, msg: String) -> bool {
        self.log(out, LogLevel::Packet, msg);
        false
    }

    fn accept(&mut self, rx: &Received, out: &mut Vec<Action>) -> bool {
        let a = &rx.advert;
        if !self.p.unicast && rx.ttl != super::packet::VRRP_TTL {
            self.stats.ip_ttl_err += 1;
            return self.reject(
                out,
                format!("invalid TTL/HL. Received {} and expect 255", rx.ttl),
            );
        }
        if a.version != self.p.version {
            return self.reject(
                out,
                format!(
                    "wrong version. Received {} and expect {}",
                    version_number(a.version),
                    version_number(self.p.version)
                ),
            );
        }
        if a.vrid != self.p.vrid {
            return false;
        }
        if self.p.version == Version::V2 {
            let (got, want) = (auth_number(a.auth), auth_number(self.p.auth));
            if got != want {
                self.stats.authtype_mismatch += 1;
                return self.reject(out, format!("received a {got} auth, expecting {want}!"));
            }
            if let (Auth::Pass(got), Auth::Pass(want)) = (a.auth, self.p.auth)
                && !constant_time_eq(&got, &want)
            {
                self.stats.auth_failure += 1;
                return self.reject(out, "received an invalid passwd!".into());
            }
            // RFC 3768 §7.1: the interval must be ours ("to prevent concurrent VRID running").
            if a.interval_cs != self.p.advert_int_cs {
                self.stats.advert_interval_err += 1;
                return self.reject(
                    out,
                    format!(
                        "advertisement interval mismatch mine={} sec rcv'd={} sec",
                        self.p.advert_int_cs / 100,
                        a.interval_cs / 100
                    ),
                );
            }
        }
        if rx.multicast == self.p.unicast {
            let (want, got) = if self.p.unicast {
                ("un", "mult")
            } else {
                ("mult", "un")
            };
            self.stats.addr_list_err += 1;
            return self.reject(
                out,
                format!("Expected {want}icast packet but received {got}icast packet"),
            );
        }
        // keepalived: right type, version and length for us — an advertisement.
        self.stats.advert_rcvd += 1;
        if self.p.unicast {
            // keepalived: the sender must be a peer (`check_unicast_src`), and a peer's
            // adverts must arrive within its TTL range.
            match self.p.peers.iter().find(|p| p.addr == rx.src) {
                None if self.p.check_unicast_src => {
                    return self.reject(
                        out,
                        format!("unicast source address {} not a unicast peer", rx.src),
                    );
                }
                Some(p) if !(p.min_ttl..=p.max_ttl).contains(&rx.ttl) => {
                    self.stats.ip_ttl_err += 1;
                    return self.reject(
                        out,
                        format!(
                            "TTL/HL {} not in range {} - {}",
                            rx.ttl, p.min_ttl, p.max_ttl
                        ),
                    );
                }
                _ => {}
            }
        }
        // vrrp-agent's `allowed_peers`: the multicast counterpart of check_unicast_src.
        if !self.p.unicast
            && !self.p.allowed_peers.is_empty()
            && !self.p.allowed_peers.contains(&rx.src)
        {
            return self.reject(
                out,
                format!("advert source address {} not in allowed_peers", rx.src),
            );
        }
        // keepalived: `skip_check_adv_addr` skips the address list only for the master it
        // already knows.
        let known_master =
            self.p.skip_check_adv_addr && self.master.is_some_and(|(m, _)| m == rx.src);
        if !known_master || self.state == State::Master {
            if a.addrs.len() != self.p.addrs.len() {
                return self.reject(
                    out,
                    format!(
                        "received an unexpected ip number count {}, expected {}!",
                        a.addrs.len(),
                        self.p.addrs.len()
                    ),
                );
            }
            if let Some(missing) = self.p.addrs.iter().find(|v| !a.addrs.contains(v)) {
                self.stats.addr_list_err += 1;
                return self.reject(
                    out,
                    format!(
                        "ip address associated with VRID {} not present in MASTER advert: {missing}",
                        self.p.vrid
                    ),
                );
            }
        }
        true
    }

    fn receive(&mut self, now: Duration, rx: Received, out: &mut Vec<Action>) {
        if !matches!(self.state, State::Backup | State::Master) || !self.accept(&rx, out) {
            return;
        }
        if rx.advert.priority == PRIORITY_STOP {
            self.stats.pri_zero_rcvd += 1;
        }
        self.last_rx = Some(now);
        if self.handover_until.is_some() {
            if rx.advert.priority != PRIORITY_STOP && rx.src != self.src {
                // A successor advertises: it holds the VIPs now; let go.
                self.log(
                    out,
                    LogLevel::Detail,
                    format!("{} took over, releasing", rx.src),
                );
                self.stop(now, out);
            }
            return;
        }
        match self.state {
            State::Backup => self.backup_receive(now, &rx, out),
            State::Master => self.master_receive(now, &rx, out),
            _ => {}
        }
    }

    /// RFC 5798 §6.4.2 with keepalived's preempt_delay (`vrrp_state_backup`).
    fn backup_receive(&mut self, now: Duration, rx: &Received, out: &mut Vec<Action>) {
        let prio = rx.advert.priority;
        if prio == PRIORITY_STOP {
            // The master is leaving: take over after Skew_Time only.
            self.log(
                out,
                LogLevel::Detail,
                "Backup received priority 0 advertisement".into(),
            );
            self.down_at = Some(now + self.skew());
            return;
        }
        let delaying = !self.p.preempt_delay.is_zero() && self.preempt_at.is_none_or(|t| t > now);
        if self.p.nopreempt || prio >= self.priority || delaying {
            if self.p.version == Version::V3 {
                // RFC 5798 §6.4.2: Master_Adver_Interval := the advert's interval.
                self.master_adv_int_cs = rx.advert.interval_cs;
            }
            self.down_at = Some(now + self.master_down_interval());
            self.wants_master = false;
            self.master = Some((rx.src, prio));
            if !self.p.preempt_delay.is_zero() {
                if prio >= self.priority {
                    if self.preempt_at.take().is_some() {
                        self.log(out, LogLevel::Detail, "stop preempt delay".into());
                    }
                } else if self.preempt_at.is_none() {
                    self.preempt_at = Some(now + self.p.preempt_delay);
                    self.log(
                        out,
                        LogLevel::Detail,
                        format!(
                            "start preempt delay ({:.6})",
                            self.p.preempt_delay.as_secs_f64()
                        ),
                    );
                }
            }
        } else {
            // Lower priority and we preempt: ignore it; Master_Down_Timer runs out.
            self.log(
                out,
                LogLevel::Packet,
                format!(
                    "received lower priority ({prio}) advert from {} - discarding",
                    rx.src
                ),
            );
            self.master = Some((rx.src, prio));
        }
    }

    /// RFC 5798 §6.4.3 with keepalived's additions (`vrrp_state_master_rx`).
    fn master_receive(&mut self, now: Duration, rx: &Received, out: &mut Vec<Action>) {
        let prio = rx.advert.priority;
        let cmp = compare_addrs(rx.src, self.src);
        let higher = prio > self.priority || (prio == self.priority && cmp == Ordering::Greater);
        if prio == PRIORITY_STOP || (self.p.higher_prio_send_advert && higher) {
            out.push(Action::SendAdvert(self.advert(self.priority)));
            if prio == PRIORITY_STOP {
                // RFC 5798 §6.4.3: send an advert and reset the Adver_Timer (the next one
                // follows an interval after the one just sent; nothing is skipped).
                self.advert_at = Some(now + cs(self.p.advert_int_cs));
                self.log(
                    out,
                    LogLevel::Detail,
                    "Master received priority 0 message".into(),
                );
                return;
            }
        }
        if prio == self.priority {
            if cmp == Ordering::Equal {
                self.log(
                    out,
                    LogLevel::Packet,
                    "WARNING - equal priority advert received from remote host with our IP address."
                        .into(),
                );
                return;
            } else if self.priority == PRIORITY_OWNER {
                self.log(out, LogLevel::Info, "CONFIGURATION ERROR: local instance and a remote instance are both configured as address owner, please fix - reducing local priority".into());
                self.priority = PRIORITY_OWNER - 1;
                self.p.priority = PRIORITY_OWNER - 1;
            }
        }
        let higher = prio > self.priority || (prio == self.priority && cmp == Ordering::Greater);
        if !higher {
            // keepalived's default: answer at once so the lower router sees a master and
            // backs off, and refresh the LAN's ARP caches.
            self.log(
                out,
                LogLevel::Packet,
                format!(
                    "Received advert from {} with lower priority {prio}, ours {}{}",
                    rx.src,
                    self.priority,
                    if self.p.lower_prio_no_advert {
                        ""
                    } else {
                        ", forcing new election"
                    }
                ),
            );
            if !self.p.lower_prio_no_advert {
                out.push(Action::SendAdvert(self.advert(self.priority)));
            }
            if self.p.garp.lower_prio_repeat > 0 {
                out.push(Action::Garp {
                    repeat: self.p.garp.lower_prio_repeat,
                });
                if !self.p.garp.lower_prio_delay.is_zero() {
                    self.lower_prio_garp_at = Some(now + self.p.garp.lower_prio_delay);
                }
            }
            out.push(Action::NotifyMasterRxLowerPri);
            return;
        }
        if prio > self.priority {
            self.log(
                out,
                LogLevel::Info,
                format!(
                    "Master received advert from {} with higher priority {prio}, ours {}",
                    rx.src, self.priority
                ),
            );
        } else {
            self.log(
                out,
                LogLevel::Info,
                format!(
                    "Master received advert from {} with same priority {prio} but higher IP address than ours",
                    rx.src
                ),
            );
        }
        self.master = Some((rx.src, prio));
        self.change_state(now, State::Backup, out);
        if self.p.version == Version::V3 {
            self.master_adv_int_cs = rx.advert.interval_cs;
            self.down_at = Some(now + self.master_down_interval());
        }
    }
}

/// Centiseconds as a duration.
fn cs(v: u16) -> Duration {
    Duration::from_millis(u64::from(v) * 10)
}

fn version_number(v: Version) -> u8 {
    match v {
        Version::V2 => 2,
        Version::V3 => 3,
    }
}

fn auth_number(a: Auth) -> u8 {
    match a {
        Auth::None => 0,
        Auth::Pass(_) => 1,
        Auth::Ah => 2,
    }
}

/// Compares addresses as unsigned integers in network byte order (RFC 5798 §6.4.3: the
/// primary IP address breaks priority ties).
pub fn compare_addrs(a: IpAddr, b: IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets().cmp(&b.octets()),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets().cmp(&b.octets()),
        (a, b) => a.is_ipv6().cmp(&b.is_ipv6()),
    }
}

/// keepalived compares passwords in constant time (`memcmp_constant_time`).
fn constant_time_eq(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
