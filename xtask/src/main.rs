//! `cargo xtask <task>`: the project's commands. Every task runs `setup` first.
//!
//!   setup        install what a fresh machine lacks (idempotent, non-interactive)
//!   test         setup, fmt check, clippy -D warnings (host and eBPF), every test
//!   demo         setup, build, and show the XDP data path on a namespaced LAN
//!   bench [xdp]  setup, run benchmarks, write BENCHMARKS.md
mod bench;
mod setup;

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(),
        Some("test") => test(),
        Some("demo") => demo(),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <setup|test|demo|bench [xdp]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// Runs `cmd` in the workspace root with stdin closed; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: {}", display(cmd));
    let status = cmd
        .current_dir(root())
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("starting {}", display(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", display(cmd));
    }
    Ok(())
}

pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn test() -> Result<()> {
    setup::run()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args(["clippy", "--all-targets", "--", "-D", "warnings"]))?;
    clippy_ebpf()?;
    if !is_root() {
        eprintln!(
            "xtask: WARNING: not root: the XDP test-run and network-namespace tests will print \
             SKIPPED and not run"
        );
    }
    run(cargo().args(["test", "--all-targets"]))?;
    Ok(())
}

/// Clippy on the eBPF crate, for its own target (it cannot be built for the host).
fn clippy_ebpf() -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "+nightly",
        "clippy",
        "--package",
        "agent-ebpf",
        "--release",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--target-dir",
    ])
    .arg(root().join("target/ebpf-clippy"))
    .args(["--", "-D", "warnings"])
    .env("RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"")
    // The nightly cargo must not pick up the stable toolchain from the outer cargo.
    .env_remove("RUSTC")
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("CARGO");
    cmd.env("CARGO_TERM_QUIET", "true");
    run(&mut cmd)
}

fn demo() -> Result<()> {
    setup::run()?;
    if !is_root() {
        bail!("the demo builds network namespaces and attaches XDP: run it as root");
    }
    run(cargo().args([
        "run",
        "--release",
        "--package",
        "vrrp-tests",
        "--bin",
        "xdp-demo",
    ]))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
