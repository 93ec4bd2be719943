//! `vrrp_track_process`: how many processes match, against the quorum.
//!
//! keepalived follows the kernel's process events (the proc connector); here /proc is scanned
//! every [`SCAN_PERIOD`] on the helper thread. A change is seen within that period, and a
//! process that lives shorter than it may be missed — both well inside the `delay` that
//! process tracking is normally configured with.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::watch::Update;
use crate::config::model::TrackProcess;

/// How often /proc is scanned.
pub const SCAN_PERIOD: Duration = Duration::from_millis(200);

/// keepalived's `param_match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamMatch {
    /// No parameters compared (name only, or `full_command` without parameters).
    Any,
    /// The parameters must be exactly the configured ones.
    Exact,
    /// The configured parameters must come first; more may follow.
    Partial,
    /// As partial, and the last configured parameter may be a prefix.
    Initial,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    pub name: String,
    pub params: Vec<String>,
    /// Compare argv[0] of the command line rather than the 15-character process name.
    pub full_command: bool,
    pub mode: ParamMatch,
}

impl Matcher {
    pub fn from_config(t: &TrackProcess) -> Matcher {
        let name = t.process.first().cloned().unwrap_or_default();
        let params: Vec<String> = t.process.iter().skip(1).cloned().collect();
        let param_match = t.other.get("param_match").and_then(|v| v.last());
        let mode = match param_match.and_then(|a| a.first()).map(String::as_str) {
            Some("initial") => ParamMatch::Initial,
            Some("partial") => ParamMatch::Partial,
            _ if param_match.is_some() || !params.is_empty() => ParamMatch::Exact,
            _ => ParamMatch::Any,
        };
        // Parameters or param_match imply full_command (keepalived).
        let full_command = t.other.contains_key("full_command") || mode != ParamMatch::Any;
        Matcher {
            name,
            params,
            full_command,
            mode,
        }
    }

    /// Whether a process with this name (`comm`) and command line matches.
    pub fn matches(&self, comm: &str, cmdline: &[String]) -> bool {
        if !self.full_command {
            return comm == self.name;
        }
        if cmdline.first() != Some(&self.name) {
            return false;
        }
        let args = &cmdline[1..];
        let n = self.params.len();
        match self.mode {
            ParamMatch::Any => true,
            ParamMatch::Exact => args == self.params.as_slice(),
            ParamMatch::Partial => args.len() >= n && args[..n] == self.params[..],
            ParamMatch::Initial => {
                if n == 0 {
                    return true;
                }
                args.len() >= n
                    && args[..n - 1] == self.params[..n - 1]
                    && args[n - 1].starts_with(&self.params[n - 1])
            }
        }
    }
}

/// One tracked process set.
#[derive(Clone, Debug)]
pub struct Job {
    pub index: usize,
    pub matcher: Matcher,
    pub quorum: u32,
    pub quorum_max: u32,
    /// A change is reported once it has held this long (`delay`).
    pub delay: Duration,
}

impl Job {
    pub fn from_config(index: usize, t: &TrackProcess) -> Job {
        let quorum_max = t.quorum_max.unwrap_or(u32::MAX);
        Job {
            index,
            matcher: Matcher::from_config(t),
            // quorum_max 0: "fail if any is running".
            quorum: if quorum_max == 0 { 0 } else { t.quorum },
            quorum_max,
            delay: Duration::from_secs_f64(t.delay.unwrap_or(0.0).max(0.0)),
        }
    }

    pub fn ok(&self, count: u32) -> bool {
        (self.quorum..=self.quorum_max).contains(&count)
    }
}

/// A process as /proc shows it.
struct Proc {
    comm: String,
    cmdline: Vec<String>,
}

/// Every process (not thread) alive, zombies left out.
fn scan(need_cmdline: bool) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "PID (COMM) S ...": the name may hold spaces and parentheses; the last ')' ends it.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if stat[close + 1..].trim_start().starts_with('Z') {
            continue;
        }
        let comm = stat[open + 1..close].to_string();
        let cmdline = if need_cmdline {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    b.split(|c| *c == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        out.push(Proc { comm, cmdline });
    }
    out
}

/// How many processes match each job now.
pub fn counts(jobs: &[Job]) -> Vec<u32> {
    let procs = scan(jobs.iter().any(|j| j.matcher.full_command));
    jobs.iter()
        .map(|j| {
            procs
                .iter()
                .filter(|p| j.matcher.matches(&p.comm, &p.cmdline))
                .count() as u32
        })
        .collect()
}

/// Scans /proc every [`SCAN_PERIOD`] and reports each job's quorum when it has changed and held
/// for the job's delay. `initial` is what the runtime already knows.
pub async fn watch(jobs: Vec<Job>, initial: Vec<bool>, tx: UnboundedSender<Update>) {
    let mut reported = initial;
    // A change seen and since when.
    let mut pending: Vec<Option<tokio::time::Instant>> = vec![None; jobs.len()];
    let mut tick = tokio::time::interval(SCAN_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A reload replaces the trackers: the runtime drops the receiver, and the scans end.
        tokio::select! {
            _ = tx.closed() => return,
            _ = tick.tick() => {}
        }
        // A scan reads /proc (a process stuck in D state can make that slow): off the helper
        // thread's runtime.
        let scan_jobs = jobs.clone();
        let Ok(counts) = tokio::task::spawn_blocking(move || counts(&scan_jobs)).await else {
            continue;
        };
        let now = tokio::time::Instant::now();
        for (k, job) in jobs.iter().enumerate() {
            let ok = job.ok(counts[k]);
            if ok == reported[k] {
                pending[k] = None;
                continue;
            }
            let since = *pending[k].get_or_insert(now);
            if now.duration_since(since) >= job.delay {
                reported[k] = ok;
                pending[k] = None;
                if tx
                    .send(Update::Process {
                        index: job.index,
                        ok,
                        count: counts[k],
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, params: &[&str], full: bool, mode: ParamMatch) -> Matcher {
        Matcher {
            name: name.into(),
            params: params.iter().map(|s| s.to_string()).collect(),
            full_command: full,
            mode,
        }
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keepalived_name_match_is_exact_on_the_process_name() {
        let x = m("nginx", &[], false, ParamMatch::Any);
        assert!(x.matches("nginx", &argv(&["nginx: master process"])));
        assert!(!x.matches("nginx2", &[]));
        assert!(!x.matches("ngin", &[]));
    }

    #[test]
    fn keepalived_full_command_compares_argv0_and_the_params() {
        let any = m("/usr/sbin/nginx", &[], true, ParamMatch::Any);
        assert!(any.matches("nginx", &argv(&["/usr/sbin/nginx", "-g", "x"])));
        assert!(!any.matches("nginx", &argv(&["nginx"])));
        let exact = m("/bin/sleep", &["100"], true, ParamMatch::Exact);
        assert!(exact.matches("sleep", &argv(&["/bin/sleep", "100"])));
        assert!(!exact.matches("sleep", &argv(&["/bin/sleep", "100", "x"])));
        let partial = m("/bin/sleep", &["100"], true, ParamMatch::Partial);
        assert!(partial.matches("sleep", &argv(&["/bin/sleep", "100", "x"])));
        assert!(!partial.matches("sleep", &argv(&["/bin/sleep", "1000"])));
        let initial = m("/bin/sleep", &["10"], true, ParamMatch::Initial);
        assert!(initial.matches("sleep", &argv(&["/bin/sleep", "1000"])));
        assert!(!initial.matches("sleep", &argv(&["/bin/sleep", "20"])));
    }

    #[test]
    fn keepalived_quorum_max_zero_means_none_may_run() {
        let mut t = TrackProcess {
            name: "p".into(),
            at: crate::config::diag::Loc {
                file: std::sync::Arc::new("t.conf".into()),
                line: 1,
            },
            process: vec!["x".into()],
            weight: 0,
            weight_reverse: false,
            quorum: 1,
            quorum_max: Some(0),
            delay: None,
            other: Default::default(),
        };
        let j = Job::from_config(0, &t);
        assert!(j.ok(0));
        assert!(!j.ok(1));
        t.quorum_max = Some(2);
        let j = Job::from_config(0, &t);
        assert!(!j.ok(0));
        assert!(j.ok(2));
        assert!(!j.ok(3));
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        let job = Job {
            index: 0,
            matcher: m(me.trim(), &[], false, ParamMatch::Any),
            quorum: 1,
            quorum_max: u32::MAX,
            delay: Duration::ZERO,
        };
        assert!(counts(&[job])[0] >= 1);
    }
}
