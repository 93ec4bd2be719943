//! keepalived's logging: to syslog (`/dev/log`, facility daemon) unless `-G`, and to the
//! console with `-l`, each line as `DATE: message` as keepalived prints it there.

use std::{io::Write as _, os::unix::net::UnixDatagram, sync::Mutex};

use log::{Level, LevelFilter, Log, Metadata, Record};

pub struct Logger {
    console: bool,
    syslog: Option<Mutex<UnixDatagram>>,
    /// keepalived's `-g FILE`: every line, as on the console.
    file: Option<Mutex<std::fs::File>>,
    /// The syslog facility: daemon (3), or local0..local7 (16..23) with keepalived's `-S N`.
    facility: u8,
    level: LevelFilter,
}

/// The time now, local, in strftime's `format` (at most 63 bytes of output).
pub fn local_time(format: &std::ffi::CStr) -> String {
    // SAFETY: time/localtime_r/strftime on stack buffers of the sizes passed.
    unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        let mut buf = [0u8; 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// `Sun Nov 22 05:57:01 2026`, local time, as keepalived's console lines start.
fn ctime_now() -> String {
    local_time(c"%a %b %e %H:%M:%S %Y")
}

impl Logger {
    /// Installs the logger. `RUST_LOG=debug` adds the debug lines.
    pub fn init(console: bool, syslog: bool) {
        Logger::init_with_file(console, syslog, None, None);
    }

    /// As [`Logger::init`], also appending to `file` (keepalived's `-g`; created 0640).
    /// `local`: keepalived's `-S N` (0..7): syslog facility localN instead of daemon.
    pub fn init_with_file(
        console: bool,
        syslog: bool,
        file: Option<&std::path::Path>,
        local: Option<u8>,
    ) {
        use std::os::unix::fs::OpenOptionsExt as _;
        let level = match std::env::var("RUST_LOG").as_deref() {
            Ok("debug") | Ok("trace") => LevelFilter::Debug,
            Ok("warn") => LevelFilter::Warn,
            Ok("error") => LevelFilter::Error,
            _ => LevelFilter::Info,
        };
        let syslog = syslog
            .then(|| {
                let s = UnixDatagram::unbound().ok()?;
                s.connect("/dev/log").ok()?;
                Some(Mutex::new(s))
            })
            .flatten();
        let file = file.and_then(|f| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(f)
                .map_err(|e| eprintln!("vrrp-agent: log file {}: {e}", f.display()))
                .ok()
                .map(Mutex::new)
        });
        let logger = Logger {
            console,
            syslog,
            file,
            facility: local.filter(|n| *n <= 7).map_or(3, |n| 16 + n),
            level,
        };
        if log::set_boxed_logger(Box::new(logger)).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let msg = r.args().to_string();
        if self.console || self.file.is_some() {
            let line = format!("{}: {msg}\n", ctime_now());
            if self.console {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            if let Some(f) = &self.file
                && let Ok(mut f) = f.lock()
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
        if let Some(s) = &self.syslog {
            // Facility daemon (3); severity from the level.
            let severity = match r.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            // The pid at the time of logging: the daemon forks after the logger is set up.
            let line = format!(
                "<{}>vrrp-agent[{}]: {msg}",
                u32::from(self.facility) * 8 + severity,
                std::process::id()
            );
            if let Ok(s) = s.lock() {
                let _ = s.send(line.as_bytes());
            }
        }
    }

    fn flush(&self) {}
}
