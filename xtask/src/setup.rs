//! `cargo xtask setup`: installs what a fresh machine of this kind lacks. Idempotent: when
//! everything is present it only checks (well under 2 s). Never reads stdin (CI has none).

use std::{process::Command, time::Instant};

use anyhow::{Context as _, Result, bail};

use crate::run as exec;

/// Debian packages the build and the tests use.
const APT_PACKAGES: &[&str] = &[
    // bpf-linker links eBPF objects with LLVM 22 (/usr/bin/llvm-config is LLVM 14).
    "llvm-22-dev",
    // ip netns / veth / bridge for the test lab.
    "iproute2",
    // arping: a real ARP client for the XDP responder tests.
    "iputils-arping",
    // The real peer for interoperability tests and benchmarks.
    "keepalived",
    "tcpdump",
    "nftables",
    // The seed nginx deployments (track script failover, LVS-DR real servers) and their
    // client.
    "nginx-light",
    "curl",
    // The LVS-DR lab's client sends with complete checksums (veth offload leaves them
    // partial, and a frame the XDP balancer forwards loses that mark).
    "ethtool",
    // The LVS benchmark's HTTP load.
    "wrk",
    // Self-signed certificates for the SSL_GET lab test.
    "openssl",
    // The IPVS backend's test boots Debian's kernel (this one has no IPVS) under qemu, with
    // busybox as its initramfs, depmod for its modules, and ipvsadm to look at IPVS.
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "ipvsadm",
];

const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";
const CARGO_DEB_VERSION: &str = "3.8.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

pub fn run() -> Result<()> {
    let started = Instant::now();
    apt()?;
    rust_toolchains()?;
    bpf_linker()?;
    cargo_fuzz()?;
    cargo_deb()?;
    vm_kernel()?;
    eprintln!(
        "xtask: setup complete ({:.2} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stdin(std::process::Stdio::null()).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn apt() -> Result<()> {
    let status = output(
        Command::new("dpkg-query")
            .args(["-W", "-f", "${Package} ${Status}\\n"])
            .args(APT_PACKAGES),
    )
    .unwrap_or_default();
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !status
                .lines()
                .any(|l| l.starts_with(&format!("{p} ")) && l.ends_with("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let apt = |args: &[&str]| -> Result<()> {
        exec(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .env("NEEDRESTART_MODE", "a"),
        )
    };
    apt(&["update", "-q"])?;
    let mut args = vec![
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confdef",
        "-o",
        "Dpkg::Options::=--force-confold",
    ];
    args.extend(missing);
    apt(&args)
}

/// Debian's kernel (it has IPVS as modules) for the VM tests, in `target/vm/kernel`: the
/// package `linux-image-amd64` depends on, downloaded and unpacked (not installed), its
/// modules indexed by depmod.
fn vm_kernel() -> Result<()> {
    let vm = crate::root().join("target/vm");
    let kernel = vm.join("kernel");
    let has_image = std::fs::read_dir(kernel.join("boot")).is_ok_and(|d| {
        d.filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("vmlinuz-"))
    });
    if has_image {
        return Ok(());
    }
    let depends = output(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))
        .unwrap_or_default();
    let Some(package) = depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
    else {
        bail!("apt-cache names no kernel package for linux-image-amd64");
    };
    eprintln!("xtask: fetching {package} for the VM tests");
    let _ = std::fs::remove_dir_all(&vm);
    std::fs::create_dir_all(&vm)?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&vm)
            .stdin(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        exec(Command::new("apt-get").args(["update", "-q"]))?;
        if !download() {
            bail!("apt-get download {package} failed");
        }
    }
    let deb = std::fs::read_dir(&vm)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("the downloaded package")?;
    exec(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&kernel))?;
    std::fs::remove_file(&deb)?;
    let version = package.trim_start_matches("linux-image-");
    exec(Command::new("depmod").arg("-b").arg(&kernel).arg(version))
}

fn rust_toolchains() -> Result<()> {
    let toolchains =
        output(Command::new("rustup").args(["toolchain", "list"])).context("running rustup")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        bail!(
            "the nightly toolchain is missing; it builds the eBPF crate and cannot be fetched \
             here (rustup cannot download toolchains on this machine kind)"
        );
    }
    let installed = |toolchain: &str| {
        output(Command::new("rustup").args([
            "component",
            "list",
            "--installed",
            "--toolchain",
            toolchain,
        ]))
        .unwrap_or_default()
    };
    let nightly = installed("nightly");
    if !nightly.lines().any(|l| l.starts_with("rust-src")) {
        exec(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    let stable = installed("stable");
    for component in ["clippy", "rustfmt"] {
        if !stable.lines().any(|l| l.starts_with(component)) {
            exec(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                "stable",
            ]))?;
        }
    }
    if !nightly.lines().any(|l| l.starts_with("clippy")) {
        exec(Command::new("rustup").args([
            "component",
            "add",
            "clippy",
            "--toolchain",
            "nightly",
        ]))?;
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let version = output(Command::new("bpf-linker").arg("--version")).unwrap_or_default();
    if version.trim() == format!("bpf-linker {BPF_LINKER_VERSION}") {
        return Ok(());
    }
    eprintln!("xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "install",
                &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                "--locked",
                "--no-default-features",
                "--features",
                "llvm-22",
            ])
            .env("LLVM_PREFIX", LLVM_PREFIX),
    )
}

fn cargo_deb() -> Result<()> {
    let version = output(Command::new("cargo-deb").arg("--version")).unwrap_or_default();
    if version.split_whitespace().last() == Some(CARGO_DEB_VERSION) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-deb {CARGO_DEB_VERSION}");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            &format!("cargo-deb@{CARGO_DEB_VERSION}"),
            "--locked",
        ]),
    )
}

fn cargo_fuzz() -> Result<()> {
    let version = output(Command::new("cargo-fuzz").arg("--version")).unwrap_or_default();
    if version.trim() == format!("cargo-fuzz {CARGO_FUZZ_VERSION}") {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION}");
    exec(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "install",
            &format!("cargo-fuzz@{CARGO_FUZZ_VERSION}"),
            "--locked",
        ]),
    )
}
