//! One test per rule, on virtual time. Each names the RFC section or keepalived behaviour.

use std::net::Ipv4Addr;

use super::*;

const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const LOWER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const HIGHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

fn v2(priority: u8) -> Params {
    Params {
        name: "VI_1".into(),
        vrid: 51,
        version: Version::V2,
        priority,
        advert_int_cs: 100,
        down_timer_adverts: 3,
        want_master: false,
        nopreempt: false,
        preempt_delay: Duration::ZERO,
        addrs: vec![VIP],
        auth: Auth::Pass(*b"1111\0\0\0\0"),
        unicast: false,
        peers: Vec::new(),
        check_unicast_src: false,
        allowed_peers: Vec::new(),
        lower_prio_no_advert: false,
        higher_prio_send_advert: false,
        skip_check_adv_addr: false,
        garp: GarpSchedule::default(),
        sync_group: false,
    }
}

fn v3(priority: u8, int_cs: u16) -> Params {
    Params {
        version: Version::V3,
        advert_int_cs: int_cs,
        auth: Auth::None,
        ..v2(priority)
    }
}

/// The advert a peer with the same configuration sends with `priority`.
fn from(p: &Params, src: IpAddr, priority: u8) -> Event {
    Event::Advert(Received {
        src,
        ttl: 255,
        multicast: !p.unicast,
        advert: Advert {
            version: p.version,
            vrid: p.vrid,
            priority,
            interval_cs: p.advert_int_cs,
            addrs: p.addrs.clone(),
            auth: p.auth,
        },
    })
}

fn started(p: Params) -> Instance {
    let mut i = Instance::new(p, ME);
    i.handle(Duration::ZERO, Event::Start);
    i
}

/// Runs timers up to `until`, returning every action with its time.
fn run_until(i: &mut Instance, until: Duration) -> Vec<(Duration, Action)> {
    let mut out = Vec::new();
    while let Some(t) = i.next_deadline().filter(|t| *t <= until) {
        out.extend(i.handle(t, Event::Timer).into_iter().map(|a| (t, a)));
    }
    out
}

fn master(p: Params) -> Instance {
    let mut i = started(p);
    let t = i.next_deadline().expect("backup has a down timer");
    i.handle(t, Event::Timer);
    assert_eq!(i.state(), State::Master);
    i
}

fn logs(actions: &[Action]) -> Vec<&str> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(_, m) => Some(m.as_str()),
            _ => None,
        })
        .collect()
}

fn adverts(actions: &[Action]) -> Vec<u8> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendAdvert(a) => Some(a.priority),
            _ => None,
        })
        .collect()
}

fn without_logs(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Log(..)))
        .collect()
}

// ----- timers and their formulas -----

#[test]
fn rfc3768_skew_is_256_minus_priority_over_256_seconds() {
    let i = Instance::new(v2(100), ME);
    assert_eq!(i.skew(), us(156 * 1_000_000 / 256));
    assert_eq!(i.master_down_interval(), ms(3000) + us(609_375));
}

#[test]
fn rfc5798_skew_is_fractional_and_scales_with_the_interval() {
    // v3, 10 ms adverts, priority 200: (56 × 10 ms) / 256 = 2.1875 ms (not rounded to cs).
    let i = Instance::new(v3(200, 1), ME);
    assert_eq!(i.skew(), us(2187));
    assert_eq!(i.master_down_interval(), ms(30) + us(2187));
}

#[test]
fn keepalived_down_timer_adverts_replaces_the_rfc_3() {
    let mut p = v3(100, 100);
    p.down_timer_adverts = 5;
    let i = Instance::new(p, ME);
    assert_eq!(i.master_down_interval(), ms(5000) + us(609_375));
}

#[test]
fn a_masters_advert_may_be_served_early_by_a_fraction_of_its_interval_a_backups_timer_never() {
    let b = started(v2(100));
    let down = b.next_deadline().unwrap();
    assert_eq!(b.serve_at(down - us(1)), None);
    assert_eq!(b.serve_at(down + us(5)), Some(down + us(5)));
    let m = master(v2(100));
    let due = m.next_deadline().unwrap();
    // v2, 1 s: 1/128 of it.
    let slack = us(7812) + Duration::from_nanos(500);
    assert_eq!(m.serve_at(due - slack), Some(due));
    assert_eq!(m.serve_at(due - slack - us(1)), None);
    // 3 s: capped at 8 ms.
    let m = master(Params {
        advert_int_cs: 300,
        ..v2(100)
    });
    let due = m.next_deadline().unwrap();
    assert_eq!(m.serve_at(due - ms(8)), Some(due));
    assert_eq!(m.serve_at(due - ms(9)), None);
    // v3 at 10 ms: 1/128 of it.
    let m = master(v3(100, 1));
    let due = m.next_deadline().unwrap();
    assert_eq!(m.serve_at(due - Duration::from_nanos(78_125)), Some(due));
}

#[test]
fn an_advert_served_early_keeps_the_timer_phase() {
    let mut m = master(v2(100));
    let due = m.next_deadline().unwrap();
    let at = m.serve_at(due - ms(5)).unwrap();
    let a = m.handle(at, Event::Timer);
    assert_eq!(adverts(&a), [100]);
    assert_eq!(m.next_deadline(), Some(due + ms(1000)));
}

// ----- start-up (RFC 5798 §6.4.1, keepalived vrrp_init_state) -----

#[test]
fn rfc5798_6_4_1_backup_starts_with_master_down_timer() {
    let mut i = Instance::new(v2(100), ME);
    let a = i.handle(ms(7), Event::Start);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(logs(&a), ["(VI_1) Entering BACKUP STATE (init)"]);
    assert!(a.contains(&Action::Notify(State::Backup)));
    assert_eq!(i.next_deadline(), Some(ms(7) + i.master_down_interval()));
}

#[test]
fn rfc5798_6_4_1_address_owner_starting_as_master_takes_over_at_once() {
    let mut p = v2(255);
    p.want_master = true;
    let mut i = Instance::new(p, ME);
    let a = i.handle(ms(0), Event::Start);
    assert_eq!(i.state(), State::Master);
    assert_eq!(adverts(&a), [255]);
}

#[test]
fn keepalived_state_master_waits_one_interval_and_minimal_skew_for_a_master() {
    let mut p = v2(100);
    p.want_master = true;
    let mut i = Instance::new(p, ME);
    i.handle(ms(0), Event::Start);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.next_deadline(), Some(ms(1000) + us(3906)));
}

#[test]
fn start_with_link_down_enters_fault_init() {
    let mut i = Instance::new(v2(100), ME);
    i.set_link_initially(false);
    let a = i.handle(ms(0), Event::Start);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(logs(&a), ["(VI_1) Entering FAULT STATE (init)"]);
    assert_eq!(i.next_deadline(), None);
}

// ----- becoming master -----

#[test]
fn rfc5798_6_4_2_master_down_timer_makes_backup_master_in_keepalived_order() {
    let mut i = started(v2(100));
    let t = i.next_deadline().unwrap();
    let a = i.handle(t, Event::Timer);
    assert_eq!(
        logs(&a),
        [
            "(VI_1) Receive advertisement timeout",
            "(VI_1) Entering MASTER STATE"
        ]
    );
    // Advert first (the old master drops its addresses), then the kernel answers ARP, then
    // GARPs, then the addresses go on the interface.
    let a = without_logs(a);
    assert!(matches!(&a[0], Action::SendAdvert(ad) if ad.priority == 100));
    assert_eq!(
        a[1..],
        [
            Action::ArmXdp,
            Action::Garp { repeat: 5 },
            Action::AddVips,
            Action::Notify(State::Master)
        ]
    );
}

#[test]
fn rfc5798_6_4_3_master_advertises_every_interval() {
    let mut i = master(v3(100, 10));
    let t0 = i.next_deadline().unwrap();
    let mut times = Vec::new();
    for (t, a) in run_until(&mut i, t0 + ms(450)) {
        if matches!(a, Action::SendAdvert(_)) {
            times.push(t);
        }
    }
    assert_eq!(times.len(), 5);
    assert!(times.windows(2).all(|w| w[1] - w[0] == ms(100)));
}

#[test]
fn flood_of_received_adverts_never_delays_our_adverts() {
    // keepalived 2.2.7 re-arms its advert timer on every packet read; we must not.
    let p = v3(100, 100);
    let mut i = master(p.clone());
    let first = i.next_deadline().unwrap();
    let mut bad = from(&p, LOWER_IP, 50);
    if let Event::Advert(rx) = &mut bad {
        rx.ttl = 254;
    }
    let mut t = first - ms(99);
    while t < first {
        i.handle(t, bad.clone());
        i.handle(t, from(&p, LOWER_IP, 50));
        t += ms(1);
    }
    assert_eq!(i.next_deadline(), Some(first));
    let a = i.handle(first, Event::Timer);
    assert_eq!(adverts(&a), [100]);
}

#[test]
fn keepalived_garp_master_delay_sends_a_second_burst() {
    let mut i = master(v2(100));
    let became = i.next_deadline().unwrap() - ms(1000);
    let garps: Vec<_> = run_until(&mut i, became + ms(5000))
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Garp { .. }))
        .collect();
    assert_eq!(garps, [(became + ms(5000), Action::Garp { repeat: 5 })]);
}

#[test]
fn keepalived_garp_master_refresh_repeats_while_master() {
    let mut p = v2(100);
    p.garp.delay = Duration::ZERO;
    p.garp.refresh = ms(2000);
    p.garp.refresh_repeat = 2;
    let mut i = master(p);
    let became = i.next_deadline().unwrap() - ms(1000);
    let garps: Vec<_> = run_until(&mut i, became + ms(6000))
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::Garp { .. }))
        .map(|(t, _)| t - became)
        .collect();
    assert_eq!(garps, [ms(2000), ms(4000), ms(6000)]);
}

// ----- backup receiving (RFC 5798 §6.4.2) -----

#[test]
fn rfc5798_6_4_2_higher_priority_advert_resets_master_down_timer() {
    let p = v2(100);
    let mut i = started(p.clone());
    i.handle(ms(2000), from(&p, HIGHER_IP, 150));
    assert_eq!(i.next_deadline(), Some(ms(2000) + i.master_down_interval()));
    assert_eq!(i.master(), Some((HIGHER_IP, 150)));
}

#[test]
fn rfc5798_6_4_2_equal_priority_advert_holds_backup() {
    let p = v2(100);
    let mut i = started(p.clone());
    i.handle(ms(2000), from(&p, LOWER_IP, 100));
    assert_eq!(i.next_deadline(), Some(ms(2000) + i.master_down_interval()));
}

#[test]
fn rfc5798_6_4_2_lower_priority_advert_is_discarded_when_preempting() {
    let p = v2(100);
    let mut i = started(p.clone());
    let deadline = i.next_deadline();
    let a = i.handle(ms(2000), from(&p, HIGHER_IP, 50));
    assert_eq!(
        logs(&a),
        ["(VI_1) received lower priority (50) advert from 10.0.0.3 - discarding"]
    );
    assert_eq!(i.next_deadline(), deadline);
    run_until(&mut i, deadline.unwrap());
    assert_eq!(i.state(), State::Master);
}

#[test]
fn rfc5798_6_4_2_nopreempt_backup_follows_a_lower_priority_master() {
    let mut p = v2(100);
    p.nopreempt = true;
    let mut i = started(p.clone());
    i.handle(ms(2000), from(&p, HIGHER_IP, 50));
    assert_eq!(i.next_deadline(), Some(ms(2000) + i.master_down_interval()));
    run_until(&mut i, ms(4000));
    i.handle(ms(4000), from(&p, HIGHER_IP, 50));
    run_until(&mut i, ms(6000));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn rfc5798_6_4_2_priority_zero_makes_backup_take_over_after_skew() {
    let p = v2(100);
    let mut i = started(p.clone());
    i.handle(ms(2000), from(&p, HIGHER_IP, 0));
    assert_eq!(i.next_deadline(), Some(ms(2000) + i.skew()));
    let skew = i.skew();
    run_until(&mut i, ms(2000) + skew);
    assert_eq!(i.state(), State::Master);
}

#[test]
fn rfc5798_6_4_2_v3_backup_adopts_the_masters_interval() {
    let p = v3(100, 100);
    let mut i = started(p.clone());
    let mut ev = from(&p, HIGHER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        rx.advert.interval_cs = 5;
    }
    i.handle(ms(0), ev);
    assert_eq!(i.master_adv_int(), ms(50));
    // 3 × 50 ms + (156 × 50 ms) / 256.
    assert_eq!(i.next_deadline(), Some(ms(150) + us(30_468)));
}

#[test]
fn rfc3768_7_1_v2_advert_with_another_interval_is_dropped() {
    let p = v2(100);
    let mut i = started(p.clone());
    let deadline = i.next_deadline();
    let mut ev = from(&p, HIGHER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        rx.advert.interval_cs = 200;
    }
    let a = i.handle(ms(100), ev);
    assert_eq!(
        logs(&a),
        ["(VI_1) advertisement interval mismatch mine=1 sec rcv'd=2 sec"]
    );
    assert_eq!(i.next_deadline(), deadline);
}

#[test]
fn keepalived_preempt_delay_holds_backup_behind_a_lower_master() {
    let mut p = v2(100);
    p.preempt_delay = ms(5000);
    let mut i = started(p.clone());
    // Adverts from a lower master every second: held until the delay has run out.
    let mut t = ms(0);
    while i.state() == State::Backup && t < ms(20_000) {
        i.handle(t, from(&p, HIGHER_IP, 50));
        t += ms(1000);
        run_until(&mut i, t);
    }
    assert_eq!(i.state(), State::Master);
    // First advert at 0 starts the delay; the advert at 5 s is discarded; Master_Down after
    // the last accepted one (at 4 s) ends it.
    assert!(t > ms(5000) && t <= ms(9000), "took over at {t:?}");
}

#[test]
fn keepalived_preempt_delay_is_cancelled_by_a_higher_advert() {
    let mut p = v2(100);
    p.preempt_delay = ms(5000);
    let mut i = started(p.clone());
    i.handle(ms(0), from(&p, HIGHER_IP, 50));
    i.handle(ms(1000), from(&p, HIGHER_IP, 150));
    i.handle(ms(2000), from(&p, HIGHER_IP, 50));
    // The delay restarted at 2 s, so at 6 s the lower master still holds us.
    i.handle(ms(6000), from(&p, HIGHER_IP, 50));
    assert_eq!(i.next_deadline(), Some(ms(6000) + i.master_down_interval()));
}

// ----- master receiving (RFC 5798 §6.4.3) -----

#[test]
fn rfc5798_6_4_3_master_yields_to_higher_priority() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, LOWER_IP, 150));
    assert_eq!(i.state(), State::Backup);
    assert_eq!(
        logs(&a),
        [
            "(VI_1) Master received advert from 10.0.0.1 with higher priority 150, ours 100",
            "(VI_1) Entering BACKUP STATE"
        ]
    );
    // No priority-0 advert; the kernel stops answering before the addresses go.
    assert_eq!(
        without_logs(a),
        [
            Action::DisarmXdp,
            Action::RemoveVips,
            Action::Notify(State::Backup)
        ]
    );
    assert_eq!(i.next_deadline(), Some(ms(5000) + i.master_down_interval()));
}

#[test]
fn rfc5798_6_4_3_equal_priority_higher_address_wins() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, HIGHER_IP, 100));
    assert_eq!(i.state(), State::Backup);
    assert_eq!(
        logs(&a)[0],
        "(VI_1) Master received advert from 10.0.0.3 with same priority 100 but higher IP address than ours"
    );
}

#[test]
fn rfc5798_6_4_3_equal_priority_lower_address_loses() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, LOWER_IP, 100));
    assert_eq!(i.state(), State::Master);
    assert_eq!(adverts(&a), [100]);
}

#[test]
fn keepalived_master_answers_lower_priority_with_advert_and_garps() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, HIGHER_IP, 50));
    assert_eq!(i.state(), State::Master);
    assert_eq!(
        logs(&a),
        [
            "(VI_1) Received advert from 10.0.0.3 with lower priority 50, ours 100, forcing new election"
        ]
    );
    assert_eq!(adverts(&a), [100]);
    assert!(a.contains(&Action::Garp { repeat: 5 }));
    assert!(a.contains(&Action::NotifyMasterRxLowerPri));
}

#[test]
fn keepalived_lower_prio_no_advert_stays_quiet() {
    let mut p = v2(100);
    p.lower_prio_no_advert = true;
    p.garp.lower_prio_repeat = 0;
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, HIGHER_IP, 50));
    assert_eq!(
        logs(&a),
        ["(VI_1) Received advert from 10.0.0.3 with lower priority 50, ours 100"]
    );
    assert!(adverts(&a).is_empty());
}

#[test]
fn keepalived_higher_prio_send_advert_answers_before_yielding() {
    let mut p = v2(100);
    p.higher_prio_send_advert = true;
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, LOWER_IP, 150));
    assert_eq!(adverts(&a), [100]);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn rfc5798_6_4_3_master_answers_priority_zero_with_an_advert() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(5000), from(&p, HIGHER_IP, 0));
    assert_eq!(adverts(&a), [100]);
    assert_eq!(i.state(), State::Master);
    // ... and resets its Adver_Timer from that advert.
    assert_eq!(i.next_deadline(), Some(ms(6000)));
}

#[test]
fn keepalived_two_address_owners_reduce_local_priority() {
    let mut p = v2(255);
    p.want_master = true;
    let mut i = Instance::new(p.clone(), ME);
    i.handle(ms(0), Event::Start);
    let a = i.handle(ms(500), from(&p, HIGHER_IP, 255));
    assert!(logs(&a)[0].contains("CONFIGURATION ERROR"));
    assert_eq!(i.priority(), 254);
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn rfc5798_6_4_3_v3_master_yielding_adopts_the_new_masters_interval() {
    let p = v3(100, 100);
    let mut i = master(p.clone());
    let mut ev = from(&p, LOWER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        rx.advert.interval_cs = 10;
    }
    i.handle(ms(5000), ev);
    assert_eq!(i.master_adv_int(), ms(100));
    assert_eq!(i.next_deadline(), Some(ms(5000) + i.master_down_interval()));
    assert!(i.master_down_interval() < ms(400));
}

// ----- receive checks (RFC 5798 §7.1, keepalived vrrp_check_packet) -----

fn rejected(p: &Params, mutate: impl FnOnce(&mut Received)) -> Vec<Action> {
    let mut i = started(p.clone());
    let deadline = i.next_deadline();
    let mut ev = from(p, HIGHER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        mutate(rx);
    }
    let a = i.handle(ms(100), ev);
    assert_eq!(
        i.next_deadline(),
        deadline,
        "a rejected advert moved the timer"
    );
    a
}

#[test]
fn rfc5798_7_1_ttl_below_255_is_rejected() {
    let a = rejected(&v2(100), |rx| rx.ttl = 254);
    assert_eq!(
        logs(&a),
        ["(VI_1) invalid TTL/HL. Received 254 and expect 255"]
    );
}

#[test]
fn keepalived_unicast_peers_do_not_check_ttl() {
    let mut p = v2(100);
    p.unicast = true;
    let mut i = started(p.clone());
    let mut ev = from(&p, HIGHER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        rx.ttl = 64;
    }
    i.handle(ms(100), ev);
    assert_eq!(i.master(), Some((HIGHER_IP, 150)));
}

#[test]
fn rfc5798_7_1_other_version_is_rejected() {
    let a = rejected(&v2(100), |rx| rx.advert.version = Version::V3);
    assert_eq!(logs(&a), ["(VI_1) wrong version. Received 3 and expect 2"]);
}

#[test]
fn rfc3768_7_1_wrong_password_is_rejected() {
    let a = rejected(&v2(100), |rx| rx.advert.auth = Auth::Pass(*b"2222\0\0\0\0"));
    assert_eq!(logs(&a), ["(VI_1) received an invalid passwd!"]);
}

#[test]
fn rfc3768_7_1_other_auth_type_is_rejected() {
    let a = rejected(&v2(100), |rx| rx.advert.auth = Auth::None);
    assert_eq!(logs(&a), ["(VI_1) received a 0 auth, expecting 1!"]);
}

#[test]
fn keepalived_address_list_must_match() {
    let a = rejected(&v2(100), |rx| {
        rx.advert.addrs = vec!["10.0.0.101".parse().unwrap()]
    });
    assert_eq!(
        logs(&a),
        ["(VI_1) ip address associated with VRID 51 not present in MASTER advert: 10.0.0.100"]
    );
    let a = rejected(&v2(100), |rx| rx.advert.addrs.push(LOWER_IP));
    assert_eq!(
        logs(&a),
        ["(VI_1) received an unexpected ip number count 2, expected 1!"]
    );
}

#[test]
fn keepalived_unicast_instance_rejects_multicast_adverts() {
    let mut p = v2(100);
    p.unicast = true;
    let a = rejected(&p, |rx| rx.multicast = true);
    assert_eq!(
        logs(&a),
        ["(VI_1) Expected unicast packet but received multicast packet"]
    );
}

#[test]
fn keepalived_skip_check_adv_addr_trusts_the_known_master() {
    let mut p = v2(100);
    p.skip_check_adv_addr = true;
    let mut i = started(p.clone());
    i.handle(ms(0), from(&p, HIGHER_IP, 150));
    let mut ev = from(&p, HIGHER_IP, 150);
    if let Event::Advert(rx) = &mut ev {
        rx.advert.addrs.clear();
    }
    i.handle(ms(1000), ev.clone());
    assert_eq!(i.next_deadline(), Some(ms(1000) + i.master_down_interval()));
    // Another sender is still checked.
    if let Event::Advert(rx) = &mut ev {
        rx.src = LOWER_IP;
    }
    i.handle(ms(2000), ev);
    assert_eq!(i.next_deadline(), Some(ms(1000) + i.master_down_interval()));
}

// ----- stop, fault, priority -----

#[test]
fn rfc5798_6_4_3_shutdown_sends_priority_zero_and_hands_over_before_releasing() {
    let p = v2(100);
    let mut i = master(p.clone());
    let a = i.handle(ms(9000), Event::Stop);
    // Priority 0 at once; the addresses stay while a successor takes over (make before break).
    assert_eq!(adverts(&a), [0]);
    assert!(!a.contains(&Action::RemoveVips));
    assert!(i.handing_over());
    // Our own adverts stop.
    assert_eq!(
        i.next_deadline(),
        Some(ms(9000) + us(255 * 1_000_000 / 256) + ms(20))
    );
    // The successor's first advert: release (kernel responder off before the addresses go).
    let a = without_logs(i.handle(ms(9600), from(&p, HIGHER_IP, 90)));
    assert_eq!(
        a,
        [
            Action::DisarmXdp,
            Action::RemoveVips,
            Action::Notify(State::Init)
        ]
    );
    assert_eq!(i.state(), State::Init);
    assert_eq!(i.next_deadline(), None);
}

#[test]
fn shutdown_without_a_successor_releases_after_the_longest_skew() {
    let mut i = master(v3(100, 10));
    i.handle(ms(9000), Event::Stop);
    let t = i.next_deadline().unwrap();
    assert_eq!(t, ms(9000) + us(255 * 100_000 / 256) + ms(20));
    let a = i.handle(t, Event::Timer);
    assert!(a.contains(&Action::RemoveVips));
    assert_eq!(i.state(), State::Init);
}

#[test]
fn a_second_stop_releases_at_once_and_a_backup_stops_at_once() {
    let mut i = master(v2(100));
    i.handle(ms(9000), Event::Stop);
    let a = i.handle(ms(9001), Event::Stop);
    assert!(a.contains(&Action::RemoveVips));
    assert!(adverts(&a).is_empty(), "priority 0 was sent once");
    let mut b = started(v2(100));
    let a = b.handle(ms(10), Event::Stop);
    assert_eq!(a, [Action::Notify(State::Init)]);
}

#[test]
fn keepalived_link_down_master_enters_fault_with_priority_zero() {
    let mut i = master(v2(100));
    let a = i.handle(ms(9000), Event::LinkDown);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(logs(&a)[0], "(VI_1) Entering FAULT STATE");
    assert_eq!(adverts(&a), [0]);
    assert!(a.contains(&Action::RemoveVips));
    let a = i.handle(ms(9500), Event::LinkUp);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(logs(&a), ["(VI_1) Entering BACKUP STATE"]);
    assert_eq!(i.next_deadline(), Some(ms(9500) + i.master_down_interval()));
}

#[test]
fn adverts_are_ignored_in_fault() {
    let p = v2(100);
    let mut i = started(p.clone());
    i.handle(ms(1), Event::LinkDown);
    let a = i.handle(ms(2), from(&p, HIGHER_IP, 0));
    assert!(a.is_empty());
    assert_eq!(i.next_deadline(), None);
}

#[test]
fn priority_change_moves_skew_and_adverts() {
    let mut i = master(v2(100));
    i.handle(ms(5000), Event::Priority(90));
    let t = i.next_deadline().unwrap();
    assert_eq!(adverts(&i.handle(t, Event::Timer)), [90]);
    let mut owner = v2(255);
    owner.want_master = true;
    let mut o = Instance::new(owner, ME);
    o.handle(ms(0), Event::Priority(10));
    assert_eq!(o.priority(), 255, "an address owner's priority is fixed");
}

#[test]
fn keepalived_check_unicast_src_rejects_non_peers() {
    let mut p = v2(100);
    p.unicast = true;
    p.check_unicast_src = true;
    p.peers = vec![Peer {
        addr: LOWER_IP,
        min_ttl: 0,
        max_ttl: 255,
    }];
    let a = rejected(&p, |rx| rx.src = HIGHER_IP);
    assert_eq!(
        logs(&a),
        ["(VI_1) unicast source address 10.0.0.3 not a unicast peer"]
    );
}

#[test]
fn allowed_peers_reject_other_multicast_sources() {
    let mut p = v2(100);
    p.allowed_peers = vec![LOWER_IP];
    let a = rejected(&p, |rx| rx.src = HIGHER_IP);
    assert_eq!(
        logs(&a),
        ["(VI_1) advert source address 10.0.0.3 not in allowed_peers"]
    );
}

#[test]
fn keepalived_unicast_peer_ttl_range_is_enforced() {
    let mut p = v2(100);
    p.unicast = true;
    p.peers = vec![Peer {
        addr: HIGHER_IP,
        min_ttl: 250,
        max_ttl: 255,
    }];
    let a = rejected(&p, |rx| rx.ttl = 64);
    assert_eq!(logs(&a), ["(VI_1) TTL/HL 64 not in range 250 - 255"]);
}

#[test]
fn a_link_flap_while_handing_over_ends_the_stop() {
    let mut i = master(v2(100));
    i.handle(ms(9000), Event::Stop);
    i.handle(ms(9010), Event::LinkDown);
    let a = i.handle(ms(9020), Event::LinkUp);
    assert_eq!(i.state(), State::Init, "{a:?}");
    assert_eq!(i.next_deadline(), None);
}

#[test]
fn keepalived_set_vrrp_backup_a_vip_deleted_under_a_master_releases_and_comes_back_after_skew() {
    let mut i = master(v2(100));
    let t = ms(5000);
    let a = i.handle(t, Event::VipDeleted);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(adverts(&a), [0]);
    assert!(a.contains(&Action::RemoveVips));
    assert_eq!(
        logs(&a),
        ["(VI_1) Entering BACKUP STATE", "(VI_1) sent 0 priority"]
    );
    // The quick way back: Skew_Time, not Master_Down_Interval.
    assert_eq!(i.next_deadline(), Some(t + i.skew()));
    let a = i.handle(t + i.skew(), Event::Timer);
    assert_eq!(i.state(), State::Master);
    assert!(a.contains(&Action::AddVips));
    // A backup has no addresses to lose.
    let mut b = started(v2(100));
    assert!(b.handle(ms(10), Event::VipDeleted).is_empty());
    assert_eq!(b.state(), State::Backup);
}

#[test]
fn a_vip_deleted_lets_a_better_backup_answer_the_priority_0_first() {
    let p = v2(100);
    let mut i = master(p.clone());
    i.handle(ms(5000), Event::VipDeleted);
    // The other router (priority 150) took over on our priority 0: we stay backup.
    i.handle(ms(5100), from(&p, HIGHER_IP, 150));
    let skew = i.skew();
    assert!(run_until(&mut i, ms(5000) + skew).is_empty());
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn keepalived_down_instance_no_source_address_is_a_fault_until_one_comes_back() {
    let mut i = master(v2(100));
    let a = i.handle(ms(5000), Event::NoSource(true));
    assert_eq!(i.state(), State::Fault);
    assert!(i.has_no_source());
    assert_eq!(adverts(&a), [0]);
    i.set_src(HIGHER_IP);
    i.handle(ms(6000), Event::NoSource(false));
    assert_eq!(i.state(), State::Backup);
    assert!(!i.has_no_source());
    let t = i.next_deadline().unwrap();
    let a = i.handle(t, Event::Timer);
    assert_eq!(i.state(), State::Master);
    let sent = a.iter().find_map(|a| match a {
        Action::SendAdvert(ad) => Some(ad.priority),
        _ => None,
    });
    assert_eq!(sent, Some(100));
    assert_eq!(i.src(), HIGHER_IP);
}

// ----- tracking and sync groups -----

#[test]
fn keepalived_effective_priority_change_is_logged_once_running() {
    let mut i = Instance::new(v2(100), ME);
    // Before start: set quietly (keepalived's initialise_tracking_priorities).
    assert!(logs(&i.handle(ms(0), Event::Priority(102))).is_empty());
    assert_eq!(i.priority(), 102);
    i.handle(ms(0), Event::Start);
    let a = i.handle(ms(10), Event::Priority(101));
    assert_eq!(
        logs(&a),
        ["(VI_1) Changing effective priority from 102 to 101"]
    );
    assert!(logs(&i.handle(ms(20), Event::Priority(101))).is_empty());
}

#[test]
fn keepalived_weight_zero_tracker_failure_is_fault_until_every_reason_clears() {
    let mut i = master(v2(100));
    let a = i.handle(ms(9000), Event::TrackFault(true));
    assert_eq!(i.state(), State::Fault);
    assert_eq!(
        adverts(&a),
        [0],
        "a master leaving for FAULT sends priority 0"
    );
    // The link goes down too; the tracker recovering is not enough.
    i.handle(ms(9100), Event::LinkDown);
    i.handle(ms(9200), Event::TrackFault(false));
    assert_eq!(i.state(), State::Fault);
    let a = i.handle(ms(9300), Event::LinkUp);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(logs(&a), ["(VI_1) Entering BACKUP STATE"]);
}

#[test]
fn a_pending_tracker_at_start_is_fault_init() {
    let mut i = Instance::new(v2(100), ME);
    i.set_track_fault_initially(true);
    let a = i.handle(ms(0), Event::Start);
    assert_eq!(i.state(), State::Fault);
    assert_eq!(logs(&a), ["(VI_1) Entering FAULT STATE (init)"]);
    i.handle(ms(500), Event::TrackFault(false));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn keepalived_sync_group_member_waits_for_its_group_to_go_master() {
    let mut p = v2(100);
    p.sync_group = true;
    let mut i = started(p);
    let t = i.next_deadline().unwrap();
    let a = i.handle(t, Event::Timer);
    assert_eq!(i.state(), State::Backup, "not master alone");
    assert!(a.contains(&Action::WantMaster));
    assert!(i.wants_master());
    // The timer is re-armed and asks again, without logging the timeout twice.
    let t2 = i.next_deadline().unwrap();
    assert_eq!(t2, t + i.master_down_interval());
    let a = i.handle(t2, Event::Timer);
    assert!(a.contains(&Action::WantMaster));
    assert!(logs(&a).is_empty());
    let a = i.handle(t2 + ms(1), Event::GroupMaster);
    assert_eq!(i.state(), State::Master);
    assert_eq!(logs(&a), ["(VI_1) Entering MASTER STATE"]);
    assert!(!i.wants_master());
}

#[test]
fn keepalived_sync_group_member_stops_wanting_master_when_a_master_is_heard() {
    let mut p = v2(100);
    p.sync_group = true;
    let mut i = started(p.clone());
    let t = i.next_deadline().unwrap();
    i.handle(t, Event::Timer);
    assert!(i.wants_master());
    i.handle(t + ms(10), from(&p, HIGHER_IP, 150));
    assert!(!i.wants_master());
}

#[test]
fn keepalived_sync_group_backup_and_fault_move_members() {
    let mut i = master(v2(100));
    let a = i.handle(ms(9000), Event::GroupBackup);
    assert_eq!(i.state(), State::Backup);
    assert!(
        adverts(&a).is_empty(),
        "following the group to BACKUP sends no priority 0"
    );
    let mut i = master(v2(100));
    i.handle(ms(9000), Event::GroupFault(true));
    assert_eq!(i.state(), State::Fault);
    assert!(!i.own_fault(), "the group's fault is not the member's own");
    i.handle(ms(9100), Event::GroupFault(false));
    assert_eq!(i.state(), State::Backup);
}

#[test]
fn keepalived_an_owner_in_a_sync_group_asks_its_group_first() {
    let mut p = v2(255);
    p.want_master = true;
    p.sync_group = true;
    let mut i = Instance::new(p, ME);
    i.handle(ms(0), Event::Start);
    assert_eq!(i.state(), State::Backup, "the group decides");
    assert_eq!(i.next_deadline(), Some(ms(0)));
    let a = i.handle(ms(0), Event::Timer);
    assert!(a.contains(&Action::WantMaster));
    i.handle(ms(1), Event::GroupMaster);
    assert_eq!(i.state(), State::Master);
    // Back from FAULT: the group again.
    i.handle(ms(10), Event::LinkDown);
    i.handle(ms(20), Event::LinkUp);
    assert_eq!(i.state(), State::Backup);
    assert_eq!(i.next_deadline(), Some(ms(20)));
}
