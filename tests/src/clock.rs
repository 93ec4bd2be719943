//! A per-process wall clock a test can step (`wall_clock_shim.c`), so a clock step is tested
//! without moving the machine's clock under everything else running on it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

const SOURCE: &str = include_str!("wall_clock_shim.c");

/// The shim built into `dir` (with the system's C compiler). Preload it with
/// `LD_PRELOAD=<it>` and `WALL_CLOCK_OFFSET_FILE=<file>` holding the offset in seconds.
pub fn shim(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("wall_clock_shim.c");
    let lib = dir.join("wall_clock_shim.so");
    std::fs::write(&src, SOURCE)?;
    let out = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&src)
        .arg("-ldl")
        .output()
        .context("running cc")?;
    if !out.status.success() {
        bail!("cc: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(lib)
}
