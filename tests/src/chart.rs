//! The client's view of a failover as a PNG strip chart (BENCHMARKS.md): one band per run,
//! one pixel column per time slice, coloured by what the client's pings got in that slice.
//! No text in the image (no font needed): BENCHMARKS.md says which band is which.

use std::{
    collections::HashMap,
    io::BufWriter,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::probe::Record;

/// What the client saw in one time slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Every ping answered, the last by the first router (the old master).
    A,
    /// Every ping answered, the last by the second router (the new master).
    B,
    /// At least one ping unanswered.
    Lost,
    /// No ping sent in the slice (before the first one; later ones carry on the one before).
    Nothing,
}

/// One band: `width` slices of `slice` each, starting at `from`; `b` is the new master's MAC
/// (any other answer counts as the old master's).
pub fn band(rec: &Record, from: Instant, slice: Duration, width: usize, b: [u8; 6]) -> Vec<Seen> {
    let answered: HashMap<u16, [u8; 6]> = rec.echoes().map(|r| (r.seq, r.mac)).collect();
    let mut out = vec![Seen::Nothing; width];
    for (seq, sent) in rec.sent.iter().enumerate() {
        let Some(since) = sent.checked_duration_since(from) else {
            continue;
        };
        let col = (since.as_nanos() / slice.as_nanos().max(1)) as usize;
        if col >= width {
            continue;
        }
        let seen = match answered.get(&(seq as u16)) {
            Some(mac) if *mac == b => Seen::B,
            Some(_) => Seen::A,
            None => Seen::Lost,
        };
        if out[col] != Seen::Lost {
            out[col] = seen;
        }
    }
    // A column the prober skipped (it was not scheduled in time) carries on the one before:
    // it saw nothing new.
    for col in 1..width {
        if out[col] == Seen::Nothing {
            out[col] = out[col - 1];
        }
    }
    out
}

const BAND: usize = 36;
const GAP: usize = 14;

fn colour(s: Seen) -> [u8; 3] {
    match s {
        Seen::A => [0x1f, 0x77, 0xb4],
        Seen::B => [0x2c, 0xa0, 0x2c],
        Seen::Lost => [0xd6, 0x27, 0x28],
        Seen::Nothing => [0xee, 0xee, 0xee],
    }
}

/// Writes the bands one above the other; under each, a tick every `tick` columns, and a black
/// line across every band at column `fault`.
pub fn write_png(path: &Path, bands: &[Vec<Seen>], tick: usize, fault: usize) -> Result<()> {
    let width = bands.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let height = bands.len().max(1) * (BAND + GAP);
    let mut px = vec![0xffu8; width * height * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        let i = (y * width + x) * 3;
        px[i..i + 3].copy_from_slice(&c);
    };
    for (k, band) in bands.iter().enumerate() {
        let top = k * (BAND + GAP);
        for (x, s) in band.iter().enumerate() {
            let c = if x == fault { [0, 0, 0] } else { colour(*s) };
            for y in top..top + BAND {
                put(x, y, c);
            }
        }
        for x in (0..width).step_by(tick.max(1)) {
            for y in top + BAND + 2..top + BAND + 8 {
                put(x, y, [0x55, 0x55, 0x55]);
            }
        }
    }
    let file = std::fs::File::create(path).with_context(|| format!("{}", path.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(&px)?;
    Ok(())
}
