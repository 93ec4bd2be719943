//! `cargo xtask <task>`: the project's commands. Every task runs `setup` first.
//!
//!   setup        install what a fresh machine lacks (idempotent, non-interactive)
//!   test         setup, fmt check, clippy -D warnings (host and eBPF), every test
//!   demo         setup, build, and run two agents on the seed pair: election, crash, outage
//!   bench [NAME] setup, run benchmarks, write BENCHMARKS.md
//!   fuzz [TARGET [SECONDS]]  setup, run a cargo-fuzz target (default: every target, 60 s each)
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
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|test|demo|bench [NAME...]|fuzz [TARGET [SECONDS]]>"
            );
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
    let totals = cargo_test()?;
    // A short smoke run of every fuzz target: no crash, no hang, no leak within the time.
    for target in FUZZ_TARGETS {
        fuzz_run(target, FUZZ_SMOKE_SECONDS)?;
    }
    // Last, so it is the closing line of the run.
    println!("{totals}");
    Ok(())
}

/// cargo-fuzz targets in fuzz/fuzz_targets.
const FUZZ_TARGETS: &[&str] = &["config", "vrrp_decode"];
const FUZZ_SMOKE_SECONDS: u32 = 20;

fn fuzz(args: &[String]) -> Result<()> {
    setup::run()?;
    let seconds: u32 = match args.get(1) {
        Some(s) => s.parse().with_context(|| format!("SECONDS: {s}"))?,
        None => 60,
    };
    match args.first() {
        Some(target) => fuzz_run(target, seconds),
        None => FUZZ_TARGETS.iter().try_for_each(|t| fuzz_run(t, seconds)),
    }
}

/// Runs `target` for `seconds`; a crash fails (and leaves the input in fuzz/artifacts).
fn fuzz_run(target: &str, seconds: u32) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo", "fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .args(["-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1"])
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    run(&mut cmd)
}

/// `cargo test`, echoing its output. Returns the totals of every test binary as one line,
/// `tests: N passed, N failed, N skipped` (skipped = ignored + root-only tests that printed
/// SKIPPED); on failure prints it and fails.
fn cargo_test() -> Result<String> {
    use std::{
        io::{BufRead, BufReader, Write},
        process::Stdio,
        sync::mpsc,
    };
    let mut cmd = cargo();
    cmd.args(["test", "--all-targets"])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    eprintln!("xtask: {}", display(&cmd));
    let mut child = cmd.spawn().context("starting cargo test")?;
    let (tx, rx) = mpsc::channel::<String>();
    let echo =
        |stream: Box<dyn std::io::Read + Send>, to_stderr: bool, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if to_stderr {
                        let _ = writeln!(std::io::stderr(), "{line}");
                    } else {
                        let _ = writeln!(std::io::stdout(), "{line}");
                    }
                    let _ = tx.send(line);
                }
            })
        };
    let out = echo(
        Box::new(child.stdout.take().expect("piped")),
        false,
        tx.clone(),
    );
    let err = echo(Box::new(child.stderr.take().expect("piped")), true, tx);
    let status = child.wait().context("waiting for cargo test")?;
    let _ = (out.join(), err.join());
    let (mut passed, mut failed, mut skipped, mut root_skips) = (0u64, 0u64, 0u64, 0u64);
    for line in rx.try_iter() {
        if let Some(result) = line.strip_prefix("test result: ") {
            let number = |word: &str| {
                result
                    .split(';')
                    .find_map(|part| {
                        part.trim()
                            .strip_suffix(word)?
                            .trim()
                            .rsplit(' ')
                            .next()?
                            .parse::<u64>()
                            .ok()
                    })
                    .unwrap_or(0)
            };
            passed += number("passed");
            failed += number("failed");
            skipped += number("ignored");
        } else if line.starts_with("SKIPPED ") {
            root_skips += 1;
        }
    }
    // A root-only test that returned early was reported as passed by the harness.
    let passed = passed.saturating_sub(root_skips);
    let skipped = skipped + root_skips;
    let totals = format!("tests: {passed} passed, {failed} failed, {skipped} skipped");
    if !status.success() {
        println!("{totals}");
        bail!("cargo test failed ({status})");
    }
    Ok(totals)
}

/// Clippy on the eBPF crate, for its own target (it cannot be built for the host).
fn clippy_ebpf() -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "--quiet",
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
    // The outer (stable) cargo's variables must not leak into the nightly one.
    .env_remove("RUSTC")
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("CARGO");
    run(&mut cmd)
}

fn demo() -> Result<()> {
    setup::run()?;
    if !is_root() {
        bail!("the demo builds network namespaces and attaches XDP: run it as root");
    }
    // The demo runs the real binary; it finds it through VRRP_AGENT.
    run(cargo().args(["build", "--release", "--package", "vrrp-agent"]))?;
    run(cargo()
        .args([
            "run",
            "--release",
            "--package",
            "vrrp-tests",
            "--bin",
            "vrrp-demo",
        ])
        .env("VRRP_AGENT", root().join("target/release/vrrp-agent")))
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
