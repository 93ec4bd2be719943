//! The helper thread: track scripts, file and process watchers, and notifications run here,
//! on a runtime of their own, so forking a script, reading /proc or waiting on an SMTP server
//! never takes time from the VRRP loop. Results come back as [`Update`]s over a channel.

use std::io;

use super::exec::Outcome;

/// What a tracker reports to the runtime.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// A `vrrp_script` run ended.
    Script { index: usize, outcome: Outcome },
    /// A `track_file`'s number changed (or was re-read).
    File { index: usize, value: i64 },
    /// A `vrrp_track_process` quorum changed (held for its delay).
    Process { index: usize, ok: bool, count: u32 },
}

/// Starts the helper thread and returns its runtime's handle. The thread lives as long as the
/// process: tasks on it are aborted (their processes killed) by dropping what they hold.
pub fn helper_thread() -> io::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("vrrp-helpers".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}
