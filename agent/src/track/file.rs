//! `track_file`: a number read from a file, re-read whenever the file is written, moved or
//! deleted (inotify on its directory, as keepalived watches it).

use std::{
    collections::HashMap,
    ffi::OsString,
    io,
    path::{Path, PathBuf},
};

use futures_util::StreamExt as _;
use inotify::{EventMask, Inotify, WatchMask};
use log::warn;
use tokio::sync::mpsc::UnboundedSender;

use super::watch::Update;

/// keepalived reads at most 127 bytes and parses them with `strtol(buf, NULL, 0)`: leading
/// blanks, a sign, then decimal, `0x` hex or `0` octal; trailing text is ignored; no number at
/// all is 0. A number outside the 32-bit range is refused (None: keep the previous value).
pub fn parse(text: &[u8]) -> Option<i64> {
    let text = &text[..text.len().min(127)];
    let mut i = 0;
    while i < text.len() && (text[i] == b' ' || (b'\t'..=b'\r').contains(&text[i])) {
        i += 1;
    }
    let mut negative = false;
    if i < text.len() && (text[i] == b'+' || text[i] == b'-') {
        negative = text[i] == b'-';
        i += 1;
    }
    let (radix, start) = if text[i..].starts_with(b"0x") || text[i..].starts_with(b"0X") {
        if text.get(i + 2).is_some_and(u8::is_ascii_hexdigit) {
            (16, i + 2)
        } else {
            (10, i)
        }
    } else if text[i..].starts_with(b"0") {
        (8, i)
    } else {
        (10, i)
    };
    let mut value: i128 = 0;
    for &b in &text[start..] {
        let Some(d) = (b as char).to_digit(radix) else {
            break;
        };
        value = value * i128::from(radix) + i128::from(d);
        if value > i128::from(u64::MAX) {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    (i128::from(i32::MIN)..=i128::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value as i64)
}

/// The file's number now: a missing or unreadable file is 0, as in keepalived. At most 127
/// bytes are read, and the file is opened non-blocking (a FIFO put there cannot hang us).
pub fn read(path: &Path) -> Option<i64> {
    use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _};
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    else {
        return Some(0);
    };
    let mut buf = [0u8; 127];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    parse(&buf[..n])
}

/// keepalived's `init_file [VALUE] [overwrite]`: write VALUE if the file does not exist, or
/// always with `overwrite`.
pub fn init(path: &Path, value: i64, overwrite: bool) -> io::Result<()> {
    if !overwrite && path.exists() {
        return Ok(());
    }
    if overwrite && path.exists() && !path.metadata()?.is_file() {
        return Err(io::Error::other("it is not a regular file"));
    }
    std::fs::write(path, format!("{value}\n"))
}

/// Watches the files (index, path) and sends their new numbers.
pub async fn watch(files: Vec<(usize, PathBuf)>, tx: UnboundedSender<Update>) {
    if let Err(e) = watch_inner(files, &tx).await {
        warn!("Unable to monitor track files: {e}");
    }
}

async fn watch_inner(files: Vec<(usize, PathBuf)>, tx: &UnboundedSender<Update>) -> io::Result<()> {
    let inotify = Inotify::init()?;
    // (watch descriptor, file name) → the track_files it is.
    let mut by_name: HashMap<(inotify::WatchDescriptor, OsString), Vec<(usize, PathBuf)>> =
        HashMap::new();
    for (index, path) in files {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            warn!("track file {} is not accessible - ignoring", path.display());
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match inotify.watches().add(
            dir,
            WatchMask::CLOSE_WRITE | WatchMask::DELETE | WatchMask::MOVE,
        ) {
            Ok(wd) => by_name
                .entry((wd, name.to_os_string()))
                .or_default()
                .push((index, path.clone())),
            Err(_) => warn!(
                "Track file directory for {} does not exist - removing",
                path.display()
            ),
        }
    }
    if by_name.is_empty() {
        return Ok(());
    }
    let mut events = inotify.into_event_stream([0u8; 4096])?;
    loop {
        // A reload replaces the trackers: the runtime drops the receiver, and the watch ends.
        let ev = tokio::select! {
            _ = tx.closed() => return Ok(()),
            ev = events.next() => ev,
        };
        let Some(ev) = ev else { break };
        let ev = ev?;
        let Some(name) = ev.name else { continue };
        let Some(files) = by_name.get(&(ev.wd.clone(), name)) else {
            continue;
        };
        for (index, path) in files {
            let value = if ev
                .mask
                .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
            {
                Some(0)
            } else {
                read(path)
            };
            let Some(value) = value else {
                warn!("Invalid number read from {} - ignoring", path.display());
                continue;
            };
            if tx
                .send(Update::File {
                    index: *index,
                    value,
                })
                .is_err()
            {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn keepalived_reads_the_number_as_strtol_base_0() {
        assert_eq!(parse(b"42\n"), Some(42));
        assert_eq!(parse(b"  -7 apples"), Some(-7));
        assert_eq!(parse(b"+3"), Some(3));
        assert_eq!(parse(b"0x10"), Some(16));
        assert_eq!(parse(b"010"), Some(8));
        assert_eq!(parse(b"0"), Some(0));
        assert_eq!(parse(b""), Some(0));
        assert_eq!(parse(b"abc"), Some(0));
        assert_eq!(parse(b"0x"), Some(0));
        assert_eq!(parse(b"99999999999"), None);
        assert_eq!(parse(b"2147483648"), Some(2147483648));
        assert_eq!(parse(b"-2147483649"), None);
    }
}
