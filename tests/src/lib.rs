//! Test support for vrrp-agent: frame builders, network namespaces, a LAN lab of namespaced
//! hosts on a bridge, and raw packet capture/injection inside a namespace.
//!
//! Everything that needs privileges checks [`is_root`] first; tests call [`skip_unless_root`]
//! so that a non-root run says visibly what it skipped instead of failing or silently passing.

pub mod capture;
pub mod fixture;
pub mod frames;
pub mod lab;
pub mod netns;

pub use capture::Capture;
pub use lab::{Host, Lab};
pub use netns::{Netns, Process};

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
