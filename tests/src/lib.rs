//! Test support for vrrp-agent: frame builders, network namespaces, a LAN lab of namespaced
//! hosts on a bridge, and raw packet capture/injection inside a namespace.
//!
//! Everything that needs privileges checks [`is_root`] first; tests call [`skip_unless_root`]
//! so that a non-root run says visibly what it skipped instead of failing or silently passing.

pub mod capture;
pub mod chart;
pub mod clock;
pub mod fixture;
pub mod frames;
pub mod lab;
pub mod lvs;
pub mod netns;
pub mod probe;
pub mod routers;
pub mod smtp;
pub mod vm;

pub use capture::{Capture, Sender};
pub use lab::{Host, Lab};
pub use netns::{Netns, Process};

/// CPU time of processes in clock ticks (`/proc/PID/stat`), summed over them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTicks {
    pub user: u64,
    pub system: u64,
    /// Of their waited-for children (scripts).
    pub children: u64,
}

impl CpuTicks {
    pub fn of(pids: &[u32]) -> anyhow::Result<CpuTicks> {
        use anyhow::Context as _;
        let mut sum = CpuTicks::default();
        for pid in pids {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .with_context(|| format!("process {pid}"))?;
            // After the name: state(0) ppid ... utime(11) stime(12) cutime(13) cstime(14).
            let rest = &stat[stat.rfind(')').context("/proc stat")? + 2..];
            let f: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
            anyhow::ensure!(f.len() > 14, "process {pid}: short stat line");
            sum.user += f[11];
            sum.system += f[12];
            sum.children += f[13] + f[14];
        }
        Ok(sum)
    }

    /// Their own time (user + system).
    pub fn own(&self) -> u64 {
        self.user + self.system
    }
}

/// True when running as root (CI and sessions here are).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns true (and prints why) when the test must be skipped because it needs root.
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    // Straight to fd 2: the test harness captures eprintln! of passing tests, and a skip must
    // be seen. `cargo xtask test` counts these lines as skipped tests.
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (BPF, network namespaces)"
    );
    true
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn poll<T>(timeout: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Median, minimum and maximum of the samples (None without any), as BENCHMARKS.md shows them.
pub fn median_min_max(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    Some((median, v[0], v[v.len() - 1]))
}

/// "DATE on CPU, N cores, Linux VERSION": where and when a benchmark ran, for BENCHMARKS.md.
pub fn machine() -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{date} on {cpu}, {cores} cores, Linux {}", kernel.trim())
}
