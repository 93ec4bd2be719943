//! Tracking: what moves an instance's priority or puts it in FAULT besides VRRP itself —
//! `vrrp_script`, `track_interface`, `track_file` and `vrrp_track_process` — with keepalived
//! 2.2.7's semantics.
//!
//! This module is the sans-IO core: tracker states, the rise/fall counter of scripts, and how
//! weights combine into an effective priority ([`Verdict`]). The watchers that produce the
//! states (processes run, files read, /proc scanned) live in [`script`], [`file`] and
//! [`process`], on a thread of their own so that nothing they do can delay an advert.

pub mod exec;
pub mod file;
pub mod process;
pub mod script;
pub mod security;
pub mod watch;

use crate::vrrp::instance::PRIORITY_OWNER;

/// A tracked object: scripts, files and processes by their index in the configuration,
/// interfaces by ifindex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrackerId {
    Script(usize),
    File(usize),
    Process(usize),
    Interface(u32),
}

/// What a tracker says now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A script that has not finished its first run yet.
    Pending,
    /// Script succeeded / interface up / process quorum held (true), or not (false).
    Up(bool),
    /// A track_file's number.
    Value(i64),
}

/// One tracker as an instance tracks it (`track_script { chk weight -20 }`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dep {
    pub id: TrackerId,
    /// The name for log lines (script, file or process name; interface name).
    pub name: String,
    pub weight: i32,
    pub reverse: bool,
}

/// keepalived's limit on one tracker's contribution (`track_file` status range).
const MAX_CONTRIBUTION: i64 = 253;
/// keepalived's FAULT marker for a track_file status.
const FILE_FAULT: i64 = -254;

/// What one tracker does to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contribution {
    Weight(i32),
    Fault,
}

impl Dep {
    /// keepalived's rules (vrrp_track.c): a weighted tracker adds `weight` while up when the
    /// weight is positive and while down when it is negative (`reverse` flips the sign); a
    /// weight-0 tracker puts the instance in FAULT while down (while up with `reverse`). A
    /// script adds nothing until its first result, but a weight-0 one holds FAULT meanwhile.
    pub fn contribution(&self, status: Status) -> Contribution {
        let m = if self.reverse { -1 } else { 1 };
        match status {
            Status::Pending if self.weight == 0 => Contribution::Fault,
            Status::Pending => Contribution::Weight(0),
            Status::Up(up) => {
                if self.weight == 0 {
                    return if up == self.reverse {
                        Contribution::Fault
                    } else {
                        Contribution::Weight(0)
                    };
                }
                let applies = if self.weight > 0 { up } else { !up };
                Contribution::Weight(if applies { self.weight * m } else { 0 })
            }
            Status::Value(v) => {
                if self.weight == 0 {
                    return if (v != 0) != self.reverse {
                        Contribution::Fault
                    } else {
                        Contribution::Weight(0)
                    };
                }
                let status = v
                    .saturating_mul(i64::from(self.weight) * m as i64)
                    .clamp(FILE_FAULT, MAX_CONTRIBUTION);
                if status == FILE_FAULT {
                    Contribution::Fault
                } else {
                    Contribution::Weight(status as i32)
                }
            }
        }
    }
}

/// The sum of an instance's trackers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub delta: i32,
    /// The first tracker holding the instance in FAULT, if any (for the log line).
    pub fault: Option<String>,
}

impl Verdict {
    pub fn of(deps: &[Dep], status: impl Fn(TrackerId) -> Status) -> Verdict {
        let mut v = Verdict::default();
        for d in deps {
            match d.contribution(status(d.id)) {
                Contribution::Weight(w) => v.delta = v.delta.saturating_add(w),
                Contribution::Fault => {
                    if v.fault.is_none() {
                        v.fault = Some(d.name.clone());
                    }
                }
            }
        }
        v
    }

    /// Base priority plus the trackers, kept within 1..=254; an address owner never moves.
    pub fn priority(&self, base: u8) -> u8 {
        if base == PRIORITY_OWNER {
            return base;
        }
        (i32::from(base) + self.delta).clamp(1, i32::from(PRIORITY_OWNER) - 1) as u8
    }
}

/// The rise/fall counter of a `vrrp_script` (keepalived's `vrrp_script_child_thread`): a
/// result in 0..rise+fall-1, up when ≥ rise. From up, `fall` failures in a row bring it down;
/// from down, `rise` successes bring it up; the first result decides at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    rise: u32,
    fall: u32,
    result: u32,
    decided: bool,
}

impl Counter {
    pub fn new(rise: u32, fall: u32) -> Counter {
        // Bounded so rise + fall never overflows (keepalived reads them as ints).
        let bound = |v: u32| v.clamp(1, u32::MAX / 4);
        let (rise, fall) = (bound(rise), bound(fall));
        Counter {
            rise,
            fall,
            // keepalived's vrrp_init_script: one success is enough to start up.
            result: rise - 1,
            decided: false,
        }
    }

    /// `init_fail`: starts decided and down, so `rise` successes are needed to come up.
    pub fn failed(rise: u32, fall: u32) -> Counter {
        let mut c = Counter::new(rise, fall);
        c.result = 0;
        c.decided = true;
        c
    }

    /// None until the first result.
    pub fn up(&self) -> Option<bool> {
        self.decided.then_some(self.result >= self.rise)
    }

    /// Records one run's result; returns the new state when it changes (always on the first
    /// result).
    pub fn record(&mut self, success: bool) -> Option<bool> {
        let (r, f) = (self.rise, self.fall);
        let first = !self.decided;
        self.decided = true;
        if success {
            if self.result < r - 1 {
                self.result += 1;
                None
            } else if self.result != r + f - 1 {
                let rose = self.result < r;
                self.result = r + f - 1;
                rose.then_some(true)
            } else {
                None
            }
        } else if self.result > r {
            self.result -= 1;
            None
        } else {
            let fell = self.result == r || first;
            self.result = 0;
            fell.then_some(false)
        }
    }
}

#[cfg(test)]
mod tests;
