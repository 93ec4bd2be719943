//! Property test of the state machine: simulated routers on a simulated LAN, driven through
//! random starts, graceful stops, crashes, restarts, priority changes and packet loss, then left
//! alone. RFC 5798's promise, checked for every seed: after a quiet period of
//! Master_Down_Interval + one advert interval there is exactly one master, the router with the
//! highest (priority, address), and it stays so.

use std::{net::IpAddr, time::Duration};

use crate::test_rng::Rng;

use super::{
    instance::{Action, Event, GarpSchedule, Instance, Params, Received, State},
    packet::{Auth, Version},
};

impl Rng {
    fn chance_percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Router {
    inst: Instance,
    /// Running (a crashed or stopped router neither sends nor receives).
    up: bool,
    /// Stopping gracefully: still running while it hands over.
    stopping: bool,
}

struct Lan {
    routers: Vec<Router>,
    now: Duration,
    /// (delivery time, to, from, advert) — in flight on the wire.
    wire: Vec<(Duration, usize, usize, super::packet::Advert)>,
    loss_percent: u64,
    latency: Duration,
}

impl Lan {
    fn new(n: usize, version: Version, int_cs: u16, rng: &mut Rng) -> Lan {
        let routers = (0..n)
            .map(|k| {
                let p = Params {
                    name: format!("R{k}"),
                    vrid: 7,
                    version,
                    priority: 1 + rng.below(254) as u8,
                    advert_int_cs: int_cs,
                    down_timer_adverts: 3,
                    want_master: rng.chance_percent(30),
                    nopreempt: false,
                    preempt_delay: Duration::ZERO,
                    addrs: vec!["192.0.2.100".parse().unwrap()],
                    auth: if version == Version::V2 {
                        Auth::Pass(*b"secret\0\0")
                    } else {
                        Auth::None
                    },
                    unicast: false,
                    peers: Vec::new(),
                    check_unicast_src: false,
                    allowed_peers: Vec::new(),
                    lower_prio_no_advert: false,
                    higher_prio_send_advert: false,
                    skip_check_adv_addr: false,
                    garp: GarpSchedule::default(),
                    sync_group: false,
                };
                let src: IpAddr = format!("192.0.2.{}", k + 1).parse().unwrap();
                Router {
                    inst: Instance::new(p, src),
                    up: false,
                    stopping: false,
                }
            })
            .collect();
        Lan {
            routers,
            now: Duration::ZERO,
            wire: Vec::new(),
            loss_percent: 0,
            latency: Duration::from_micros(200),
        }
    }

    fn apply(&mut self, from: usize, actions: Vec<Action>, rng: &mut Rng) {
        for a in actions {
            if let Action::SendAdvert(ad) = a {
                for to in 0..self.routers.len() {
                    if to != from && !rng.chance_percent(self.loss_percent) {
                        self.wire
                            .push((self.now + self.latency, to, from, ad.clone()));
                    }
                }
            }
        }
    }

    fn event(&mut self, k: usize, ev: Event, rng: &mut Rng) {
        let actions = self.routers[k].inst.handle(self.now, ev);
        self.apply(k, actions, rng);
        // A graceful stop ends when the instance has handed over: the process exits.
        let r = &mut self.routers[k];
        if r.up && r.stopping && r.inst.state() == State::Init {
            r.up = false;
            r.stopping = false;
            r.inst = Instance::new(r.inst.params().clone(), r.inst.src());
        }
    }

    /// Runs every timer and delivery up to `until`.
    fn run(&mut self, until: Duration, rng: &mut Rng) {
        for step in 0.. {
            // A livelock (routers answering each other forever) is a failure, not a hang.
            assert!(step < 1_000_000, "livelock at {:?}", self.now);
            let timer = self
                .routers
                .iter()
                .enumerate()
                .filter(|(_, r)| r.up)
                .filter_map(|(k, r)| r.inst.next_deadline().map(|t| (t, k)))
                .min();
            let delivery = self.wire.iter().enumerate().map(|(i, w)| (w.0, i)).min();
            let next = match (timer, delivery) {
                (Some(t), Some(d)) => t.0.min(d.0),
                (Some(t), None) => t.0,
                (None, Some(d)) => d.0,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if let Some((t, i)) = delivery
                && t == next
            {
                let (_, to, from, advert) = self.wire.swap_remove(i);
                if self.routers[to].up {
                    let src = self.routers[from].inst.src();
                    let ev = Event::Advert(Received {
                        src,
                        ttl: 255,
                        multicast: true,
                        advert,
                    });
                    self.event(to, ev, rng);
                }
                continue;
            }
            if let Some((_, k)) = timer {
                self.event(k, Event::Timer, rng);
            }
        }
        self.now = until;
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&k| {
                let r = &self.routers[k];
                r.up && r.inst.state() == State::Master && !r.inst.handing_over()
            })
            .collect()
    }

    /// The router that must win: highest (priority, address) among those running.
    fn rightful(&self) -> Option<usize> {
        (0..self.routers.len())
            .filter(|&k| self.routers[k].up && !self.routers[k].stopping)
            .max_by_key(|&k| {
                let i = &self.routers[k].inst;
                (i.priority(), i.src())
            })
    }
}

fn chaos_then_quiet(seed: u64, version: Version, int_cs: u16) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n = 2 + rng.below(4) as usize;
    let mut lan = Lan::new(n, version, int_cs, &mut rng);
    let interval = Duration::from_millis(u64::from(int_cs) * 10);
    for k in 0..n {
        lan.routers[k].up = true;
        lan.event(k, Event::Start, &mut rng);
    }
    // Chaos: a random event every fraction of an interval, with packet loss.
    for _ in 0..(20 + rng.below(60)) {
        lan.loss_percent = rng.below(60);
        let k = rng.below(n as u64) as usize;
        match rng.below(6) {
            0 if lan.routers[k].up => {
                // Crash: silent, no priority-0 advert; addresses are gone with the process.
                lan.routers[k].up = false;
                lan.routers[k].stopping = false;
                lan.routers[k].inst = Instance::new(
                    lan.routers[k].inst.params().clone(),
                    lan.routers[k].inst.src(),
                );
            }
            1 if lan.routers[k].up && !lan.routers[k].stopping => {
                lan.routers[k].stopping = true;
                lan.event(k, Event::Stop, &mut rng);
            }
            2 if !lan.routers[k].up => {
                lan.routers[k].up = true;
                lan.event(k, Event::Start, &mut rng);
            }
            3 => {
                let p = 1 + rng.below(254) as u8;
                lan.event(k, Event::Priority(p), &mut rng);
            }
            _ => {}
        }
        let step = interval.mul_f64(rng.below(300) as f64 / 100.0);
        let until = lan.now + step;
        lan.run(until, &mut rng);
    }
    // Quiet: no loss, no events. Make sure somebody is running.
    lan.loss_percent = 0;
    if lan.rightful().is_none() {
        // Let graceful stops finish, then start one router.
        let until = lan.now + interval * 2;
        lan.run(until, &mut rng);
        let k = (0..n)
            .find(|&k| !lan.routers[k].up)
            .expect("a stopped router");
        lan.routers[k].up = true;
        lan.event(k, Event::Start, &mut rng);
    }
    let quiet_from = lan.now;
    let right = lan.rightful().unwrap();
    let bound = lan.routers[right].inst.master_down_interval() + interval;
    lan.run(quiet_from + bound, &mut rng);
    assert_eq!(
        lan.masters(),
        [right],
        "seed {seed}: {n} routers, {:?} {int_cs} cs: not exactly the rightful master {bound:?} into the quiet period",
        version
    );
    // And it stays so.
    lan.run(lan.now + interval * 10, &mut rng);
    assert_eq!(
        lan.masters(),
        [right],
        "seed {seed}: mastership moved while quiet"
    );
}

#[test]
fn any_chaos_ends_with_exactly_the_rightful_master_v2() {
    for seed in 0..300 {
        chaos_then_quiet(seed, Version::V2, 100);
    }
}

#[test]
fn any_chaos_ends_with_exactly_the_rightful_master_v3() {
    for seed in 0..300 {
        chaos_then_quiet(seed, Version::V3, 1 + (seed % 100) as u16);
    }
}
