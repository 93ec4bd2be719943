//! A timer with nanosecond resolution on CLOCK_MONOTONIC (timerfd), for the state machines'
//! deadlines. tokio's timer wheel ticks in milliseconds, which alone would put a backup's
//! takeover up to 1 ms after Master_Down_Interval; keepalived's fires within 0.3 ms.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    time::Duration,
};

use tokio::io::{Interest, unix::AsyncFd};

/// CLOCK_MONOTONIC now, as the state machines' time.
pub fn monotonic_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

pub struct Timer {
    fd: AsyncFd<OwnedFd>,
    armed: Option<Duration>,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        // The default 50 µs timer slack would let the kernel fire a deadline that much late.
        // SAFETY: prctl(PR_SET_TIMERSLACK) on this thread (the runtime's only one).
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        // SAFETY: plain timerfd_create; the descriptor is owned at once.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: raw is fresh and valid.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the OwnedFd stays open and the same until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Timer { fd, armed: None })
    }

    /// Fires at monotonic time `at` (at once if it has passed); None disarms.
    pub fn set(&mut self, at: Option<Duration>) -> io::Result<()> {
        if self.armed == at {
            return Ok(());
        }
        // A zero it_value disarms, so a deadline at time zero becomes 1 ns.
        let at_ts = at.map(|d| d.max(Duration::from_nanos(1)));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: at_ts.map_or(0, |d| d.as_secs() as libc::time_t),
                tv_nsec: at_ts.map_or(0, |d| libc::c_long::from(d.subsec_nanos() as i32)),
            },
        };
        // SAFETY: spec is a valid itimerspec; the old value is not asked for.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = at;
        Ok(())
    }

    /// Waits until the armed time (forever while disarmed).
    pub async fn wait(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 8];
            // SAFETY: reading 8 bytes into an 8-byte buffer.
            let n = unsafe {
                libc::read(
                    guard.get_inner().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n == 8 {
                self.armed = None;
                return Ok(());
            }
            guard.clear_ready();
        }
    }
}
