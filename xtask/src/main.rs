//! `cargo xtask <task>`: the project's commands. Every task runs `setup` first.
//!
//!   setup        install what a fresh machine lacks (idempotent, non-interactive)
//!   test         setup, fmt check, clippy -D warnings (host and eBPF), every test
//!   demo         setup, build, and run two agents on the seed pair: election, crash, outage
//!   bench [NAME] setup, run benchmarks, write BENCHMARKS.md
//!   fuzz [TARGET [SECONDS]]  setup, run a cargo-fuzz target, or `xdp_frames` (the XDP property
//!                            test); default: every one, 60 s each
//!   deb          setup, build the Debian package (binary, systemd unit, man page, completions)
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
        Some("deb") => setup::run()
            .and_then(|()| deb())
            .map(|p| println!("{}", p.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|test|demo|bench [NAME...]|fuzz [TARGET [SECONDS]]|deb>"
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
    // The package builds, and unpacked into a directory it holds what it should.
    check_deb(&deb()?)?;
    // Last, so it is the closing line of the run.
    println!("{totals}");
    Ok(())
}

/// Builds the release binary, generates the man page and completions from it, and packages
/// them with the systemd unit (cargo-deb). Returns the .deb's path.
fn deb() -> Result<std::path::PathBuf> {
    run(cargo().args(["build", "--release", "--package", "vrrp-agent"]))?;
    let bin = root().join("target/release/vrrp-agent");
    let assets = root().join("target/deb-assets");
    std::fs::create_dir_all(&assets)?;
    let capture = |args: &[&str]| -> Result<Vec<u8>> {
        let out = Command::new(&bin).args(args).output()?;
        if !out.status.success() {
            bail!("vrrp-agent {} failed", args.join(" "));
        }
        Ok(out.stdout)
    };
    std::fs::write(assets.join("vrrp-agent.8"), capture(&["man"])?)?;
    let _ = std::fs::remove_file(assets.join("vrrp-agent.8.gz"));
    run(Command::new("gzip")
        .args(["-9n"])
        .arg(assets.join("vrrp-agent.8")))?;
    for (shell, file) in [
        ("bash", "vrrp-agent.bash"),
        ("zsh", "_vrrp-agent"),
        ("fish", "vrrp-agent.fish"),
    ] {
        std::fs::write(assets.join(file), capture(&["completions", shell])?)?;
    }
    let out_dir = root().join("target/debian");
    run(cargo()
        .args(["deb", "--package", "vrrp-agent", "--no-build", "--output"])
        .arg(&out_dir))?;
    let deb = std::fs::read_dir(&out_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .context("cargo deb wrote no .deb")?;
    eprintln!("xtask: built {}", deb.display());
    Ok(deb)
}

/// Unpacks the package into a scratch directory (no install on this machine) and checks it:
/// every file in place, the binary runs, the unit passes `systemd-analyze verify`.
fn check_deb(deb: &std::path::Path) -> Result<()> {
    let dir = root().join("target/deb-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir))?;
    for f in [
        "usr/sbin/vrrp-agent",
        "lib/systemd/system/vrrp-agent.service",
        "usr/share/man/man8/vrrp-agent.8.gz",
        "usr/share/bash-completion/completions/vrrp-agent",
        "usr/share/zsh/vendor-completions/_vrrp-agent",
        "usr/share/fish/vendor_completions.d/vrrp-agent.fish",
    ] {
        if !dir.join(f).is_file() {
            bail!("{}: {f} missing from the package", deb.display());
        }
    }
    let bin = dir.join("usr/sbin/vrrp-agent");
    run(Command::new(&bin).arg("--version"))?;
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let unit = std::fs::read_to_string(dir.join("lib/systemd/system/vrrp-agent.service"))?;
        let check = dir.join("vrrp-agent.service");
        std::fs::write(
            &check,
            unit.replace("/usr/sbin/vrrp-agent", &bin.to_string_lossy()),
        )?;
        run(Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&check))?;
    }
    eprintln!(
        "xtask: {} unpacks with every file, runs, and its unit verifies",
        deb.display()
    );
    Ok(())
}

/// cargo-fuzz targets in fuzz/fuzz_targets.
const FUZZ_TARGETS: &[&str] = &["config", "vrrp_decode", "status", "notify_fifo"];
const FUZZ_SMOKE_SECONDS: u32 = 20;

fn fuzz(args: &[String]) -> Result<()> {
    setup::run()?;
    let seconds: u32 = match args.get(1) {
        Some(s) => s.parse().with_context(|| format!("SECONDS: {s}"))?,
        None => 60,
    };
    match args.first().map(String::as_str) {
        Some(XDP_FRAMES) => xdp_frames(seconds),
        Some(target) => fuzz_run(target, seconds),
        None => {
            FUZZ_TARGETS.iter().try_for_each(|t| fuzz_run(t, seconds))?;
            xdp_frames(seconds)
        }
    }
}

/// Not a cargo-fuzz target: the XDP program's random-frame property test
/// (tests/tests/xdp_property.rs), run for `seconds`.
const XDP_FRAMES: &str = "xdp_frames";

fn xdp_frames(seconds: u32) -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "--package",
        "vrrp-tests",
        "--test",
        "xdp_property",
        "--",
        "--nocapture",
    ])
    .current_dir(root())
    .env("XDP_PROPERTY_SECONDS", seconds.to_string());
    run(&mut cmd)
}

/// Runs `target` for `seconds`; a crash fails (and leaves the input in fuzz/artifacts).
///
/// Without AddressSanitizer (`-s none`): what every target reaches is safe Rust (the
/// config reader with includes off and no host checks, the codec, the control and FIFO line
/// readers), where ASan has nothing to find, and its allocator made the config targets about
/// five times slower. Panics, arithmetic overflow (debug assertions stay on), hangs and
/// memory growth still fail the run.
fn fuzz_run(target: &str, seconds: u32) -> Result<()> {
    let mut cmd = Command::new("rustup");
    cmd.args([
        "run", "nightly", "cargo", "fuzz", "run", "-s", "none", target, "--",
    ])
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
