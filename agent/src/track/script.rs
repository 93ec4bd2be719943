//! Running a `vrrp_script` every `interval`: the run loop (on the helper thread) and the log
//! lines keepalived writes for its results (in the runtime).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::{
    exec::{self, Outcome, RunAs},
    watch::Update,
};

/// One `vrrp_script`, ready to run.
#[derive(Clone, Debug)]
pub struct Job {
    pub index: usize,
    pub argv: Vec<String>,
    pub run_as: RunAs,
    pub interval: Duration,
    /// keepalived: `timeout` 0 or unset means the interval.
    pub timeout: Duration,
}

/// Runs the script at once, then every `interval` from the start of the previous run. A run
/// that is still going when the next is due is waited for (keepalived 2.2.7 starts a second
/// copy anyway, a bug fixed upstream since); the timeout bounds the wait.
pub async fn run_loop(job: Job, tx: UnboundedSender<Update>) {
    let mut next = tokio::time::Instant::now();
    loop {
        // A reload replaces the trackers: the runtime drops the receiver, and the loop ends
        // (a run in progress finishes first, bounded by its timeout).
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        next = tokio::time::Instant::now() + job.interval;
        let outcome = exec::run(&job.argv, job.run_as, Some(job.timeout)).await;
        if tx
            .send(Update::Script {
                index: job.index,
                outcome,
            })
            .is_err()
        {
            return;
        }
    }
}

/// keepalived's line for a script that went down.
pub fn failed_line(name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(code) => format!("VRRP_Script({name}) failed (exited with status {code})"),
        Outcome::Signalled(sig) => format!("VRRP_Script({name}) failed (due to signal {sig})"),
        Outcome::TimedOut => format!("VRRP_Script({name}) timed_out"),
        // keepalived counts a script it cannot exec as a success (its child exits 0): a
        // health check that cannot run is not healthy, so here it fails, and says why.
        Outcome::NotStarted(e) => format!("VRRP_Script({name}) failed (cannot run it: {e})"),
        // Never counted as a result (see `Tracking::update`).
        Outcome::NoResources(e) => format!("VRRP_Script({name}) could not be started ({e})"),
    }
}

pub fn succeeded_line(name: &str) -> String {
    format!("VRRP_Script({name}) succeeded")
}

/// The exit code keepalived compares for "Script `x` now returning N" (it starts at 0).
pub fn status_code(outcome: &Outcome) -> Option<i32> {
    match outcome {
        Outcome::Exited(c) => Some(*c),
        _ => None,
    }
}

/// What a script's timeout is: keepalived uses the interval when none (or 0) is set.
pub fn timeout(interval: f64, timeout: Option<f64>) -> Duration {
    let t = timeout.filter(|t| *t > 0.0).unwrap_or(interval);
    Duration::from_secs_f64(t.max(0.001))
}
