//! Running external programs (track scripts, notify scripts) the way keepalived does: in their
//! own process group, as the configured user, with no terminal and no output kept, and killed
//! as a group when they overrun their timeout.
//!
//! Output goes to /dev/null so a script that floods stdout can neither block on a full pipe
//! nor make us read megabytes; keepalived does the same for track scripts.

use std::{ffi::CString, io, process::Stdio, time::Duration};

use tokio::process::Command;

/// keepalived's grace between the SIGTERM of a timed-out script and the SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Who a program runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    pub const ROOT: RunAs = RunAs { uid: 0, gid: 0 };

    /// The user (and the group, or the user's primary group) by name.
    pub fn lookup(user: &str, group: Option<&str>) -> Option<RunAs> {
        let c = CString::new(user).ok()?;
        // SAFETY: valid C string; the fields are copied out before any other getpw* call on
        // this thread (lookups happen while the configuration is read, on one thread).
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            return None;
        }
        // SAFETY: checked non-null above.
        let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
        if let Some(g) = group {
            let c = CString::new(g).ok()?;
            // SAFETY: as above.
            let gr = unsafe { libc::getgrnam(c.as_ptr()) };
            if gr.is_null() {
                return None;
            }
            // SAFETY: checked non-null above.
            gid = unsafe { (*gr).gr_gid };
        }
        Some(RunAs { uid, gid })
    }
}

/// Who scripts run as when they name nobody: `script_user [GROUP]`, else the user
/// `keepalived_script` if it exists, else root (keepalived's default).
pub fn default_run_as(script_user: Option<&str>, script_group: Option<&str>) -> RunAs {
    match script_user {
        Some(u) => RunAs::lookup(u, script_group).unwrap_or(RunAs::ROOT),
        None => {
            RunAs::lookup(crate::config::validate::DEFAULT_SCRIPT_USER, None).unwrap_or(RunAs::ROOT)
        }
    }
}

/// A script's own `user [group]`, else the default. None when the named user or group does
/// not exist: such a script never runs (never as root instead).
pub fn run_as(user: Option<&str>, group: Option<&str>, default: RunAs) -> Option<RunAs> {
    match user {
        Some(u) => RunAs::lookup(u, group),
        None => Some(default),
    }
}

/// argv with its program resolved to the canonical path that was security-checked
/// (keepalived runs the realpath too, so a symlink swapped later cannot redirect it).
pub fn canonical(argv: &[String]) -> Vec<String> {
    let mut out = argv.to_vec();
    if let Some(p) = out.first_mut()
        && let Ok(real) = std::fs::canonicalize(&*p)
        && let Some(real) = real.to_str()
    {
        *p = real.to_string();
    }
    out
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal (not by us).
    Signalled(i32),
    /// Overran its timeout and was killed (SIGTERM to its group, SIGKILL after [`KILL_GRACE`]).
    TimedOut,
    /// Could not be started: not found, not executable, deleted.
    NotStarted(String),
    /// Could not be started for want of resources (fork or exec failing with EAGAIN or
    /// ENOMEM, no file descriptor left): says nothing about what the script checks.
    NoResources(String),
}

/// Spawn errors that are the host running short, not the script being wrong.
fn starved(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE)
    )
}

fn not_started(e: io::Error) -> Outcome {
    if starved(&e) {
        Outcome::NoResources(e.to_string())
    } else {
        Outcome::NotStarted(e.to_string())
    }
}

impl Outcome {
    pub fn success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

fn command(argv: &[String], run_as: RunAs) -> io::Result<Command> {
    let Some(program) = argv.first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, so a timeout kills what it forked too.
        .process_group(0)
        .kill_on_drop(false);
    if run_as != RunAs::ROOT {
        // Supplementary groups are cleared by std when a gid is set with groups(); set the
        // gid before the uid (std orders them so).
        cmd.uid(run_as.uid).gid(run_as.gid);
    }
    Ok(cmd)
}

/// Runs `argv` to completion, or until `timeout` (then the whole process group is killed).
pub async fn run(argv: &[String], run_as: RunAs, timeout: Option<Duration>) -> Outcome {
    let mut child = match command(argv, run_as).and_then(|mut c| c.spawn()) {
        Ok(c) => c,
        Err(e) => return not_started(e),
    };
    let pid = child.id().map(|p| p as i32);
    let status = match timeout {
        None => child.wait().await,
        Some(t) => match tokio::time::timeout(t, child.wait()).await {
            Ok(s) => s,
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid, libc::SIGTERM);
                }
                if tokio::time::timeout(KILL_GRACE, child.wait())
                    .await
                    .is_err()
                    && let Some(pid) = pid
                {
                    kill_group(pid, libc::SIGKILL);
                    let _ = child.wait().await;
                }
                // Whatever is left of the group (a child that ignored SIGTERM) goes too.
                if let Some(pid) = pid {
                    kill_group(pid, libc::SIGKILL);
                }
                return Outcome::TimedOut;
            }
        },
    };
    match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (s.code(), s.signal()) {
                (Some(code), _) => Outcome::Exited(code),
                (None, Some(sig)) => Outcome::Signalled(sig),
                (None, None) => Outcome::Exited(-1),
            }
        }
        Err(e) => Outcome::NotStarted(e.to_string()),
    }
}

/// Starts `argv` and does not wait (notify scripts whose end nobody waits for).
pub fn spawn_detached(argv: &[String], run_as: RunAs) -> io::Result<tokio::process::Child> {
    command(argv, run_as)?.spawn()
}

fn kill_group(pgid: i32, sig: i32) {
    // SAFETY: plain syscall; a group that is already gone gives ESRCH, which is fine.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn exit_status_is_reported() {
        rt().block_on(async {
            assert_eq!(
                run(&sh("exit 0"), RunAs::ROOT, None).await,
                Outcome::Exited(0)
            );
            assert_eq!(
                run(&sh("exit 3"), RunAs::ROOT, None).await,
                Outcome::Exited(3)
            );
            assert_eq!(
                run(&sh("kill -USR1 $$"), RunAs::ROOT, None).await,
                Outcome::Signalled(libc::SIGUSR1)
            );
        });
    }

    #[test]
    fn scripts_run_as_the_configured_user() {
        let Some(nobody) = RunAs::lookup("nobody", None) else {
            return;
        };
        rt().block_on(async {
            let check = format!(
                "test \"$(id -u)\" = {} && test \"$(id -g)\" = {}",
                nobody.uid, nobody.gid
            );
            assert_eq!(run(&sh(&check), nobody, None).await, Outcome::Exited(0));
            assert_eq!(
                run(&sh("test \"$(id -u)\" = 0"), nobody, None).await,
                Outcome::Exited(1)
            );
        });
    }

    #[test]
    fn a_missing_program_does_not_start() {
        rt().block_on(async {
            let out = run(&["/nonexistent/x".into()], RunAs::ROOT, None).await;
            assert!(matches!(out, Outcome::NotStarted(_)), "{out:?}");
        });
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        rt().block_on(async {
            let dir = std::env::temp_dir().join(format!("exec-test-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let pidfile = dir.join("child.pid");
            // The script forks a child that would outlive it, then hangs.
            let script = format!("sleep 30 & echo $! > {}; sleep 30", pidfile.display());
            let out = run(&sh(&script), RunAs::ROOT, Some(Duration::from_millis(200))).await;
            assert_eq!(out, Outcome::TimedOut);
            let child: i32 = std::fs::read_to_string(&pidfile)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            // The forked child got the group's SIGTERM too (poll: it may take a moment to die
            // and be reaped by init).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                // SAFETY: signal 0 only checks for existence.
                let alive = unsafe { libc::kill(child, 0) } == 0
                    && std::fs::read_to_string(format!("/proc/{child}/stat"))
                        .is_ok_and(|s| !s.contains(") Z "));
                if !alive {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "child {child} survived"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = std::fs::remove_dir_all(&dir);
        });
    }

    #[test]
    fn output_floods_do_not_block() {
        rt().block_on(async {
            let out = run(
                &sh("head -c 50000000 /dev/zero; exit 0"),
                RunAs::ROOT,
                Some(Duration::from_secs(20)),
            )
            .await;
            assert_eq!(out, Outcome::Exited(0));
        });
    }
}
