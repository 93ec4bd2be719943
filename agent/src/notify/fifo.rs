//! `notify_fifo` / `vrrp_notify_fifo`: named pipes that get one line per transition, and the
//! scripts that read them (`notify_fifo_script`, started with the FIFO's path appended).
//!
//! As keepalived: the FIFO is created (mode 0644) if missing, its script started, then it is
//! opened read-write and non-blocking, so having no reader never blocks us and a full pipe
//! only loses lines. At exit, unlike keepalived (which kills the script before writing the
//! STOP lines), the STOP lines are written, then the FIFO is closed so the script reads them
//! and end-of-file; it is terminated only if it has not exited a second later.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    time::Duration,
};

use log::warn;

use super::Script;
use crate::track::exec;

/// One configured FIFO.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub path: String,
    pub script: Option<Script>,
    /// "" for `notify_fifo`, "vrrp_" for `vrrp_notify_fifo` (keepalived's messages).
    pub prefix: &'static str,
}

struct Open {
    fd: OwnedFd,
    path: String,
    created: bool,
    script: Option<tokio::process::Child>,
}

pub struct Fifos {
    open: Vec<Open>,
}

impl Fifos {
    pub fn open(specs: &[Spec]) -> Fifos {
        let mut open = Vec::new();
        for s in specs {
            let Ok(c) = CString::new(s.path.as_str()) else {
                continue;
            };
            // SAFETY: valid C string.
            let created = if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0 {
                true
            } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::EEXIST) {
                false
            } else {
                warn!("Unable to create {}notify fifo {}", s.prefix, s.path);
                continue;
            };
            let script = s.script.as_ref().and_then(|sc| {
                let mut argv = sc.argv.clone();
                argv.push(s.path.clone());
                match exec::spawn_detached(&argv, sc.run_as) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        warn!("Error exec-ing command '{}', error: {e}", argv[0]);
                        None
                    }
                }
            });
            // SAFETY: valid C string; the fd is owned below.
            let fd = unsafe {
                libc::open(
                    c.as_ptr(),
                    libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOFOLLOW,
                )
            };
            // SAFETY: fstat into a zeroed struct on our descriptor.
            let is_fifo = fd >= 0
                && unsafe {
                    let mut st: libc::stat = std::mem::zeroed();
                    libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFIFO
                };
            if fd >= 0 && !is_fifo {
                // Never write notifications into a regular file (or device) at that path.
                warn!(
                    "{}notify fifo {} is not a FIFO - ignoring",
                    s.prefix, s.path
                );
                // SAFETY: our descriptor, closed once.
                unsafe { libc::close(fd) };
                continue;
            }
            if fd < 0 {
                warn!(
                    "Unable to open {}notify fifo {} - errno {}",
                    s.prefix,
                    s.path,
                    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
                );
                if created {
                    let _ = std::fs::remove_file(&s.path);
                }
                continue;
            }
            open.push(Open {
                // SAFETY: a fresh descriptor we own.
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
                path: s.path.clone(),
                created,
                script,
            });
        }
        Fifos { open }
    }

    /// Writes one line to every FIFO; a full pipe loses it (lines are atomic: < PIPE_BUF).
    pub fn write(&self, line: &str) {
        for f in &self.open {
            // SAFETY: writing our buffer to our descriptor.
            let _ = unsafe { libc::write(f.fd.as_raw_fd(), line.as_ptr().cast(), line.len()) };
        }
    }

    /// Closes the FIFOs (their readers see end-of-file), gives the scripts a second to finish,
    /// then terminates them; FIFOs we created are removed.
    pub async fn close(&mut self) {
        for f in self.open.drain(..) {
            drop(f.fd);
            if let Some(mut child) = f.script
                && tokio::time::timeout(Duration::from_secs(1), child.wait())
                    .await
                    .is_err()
                && let Some(pid) = child.id()
            {
                // SAFETY: plain syscall on the script's process group.
                unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
                if tokio::time::timeout(Duration::from_secs(1), child.wait())
                    .await
                    .is_err()
                {
                    // SAFETY: as above.
                    unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                }
            }
            if f.created {
                let _ = std::fs::remove_file(&f.path);
            }
        }
    }
}
