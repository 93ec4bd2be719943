//! `cargo xtask bench [NAME...]`: runs benchmarks and writes their sections of BENCHMARKS.md.
//! Each benchmark prints a Markdown section; it replaces the text between its markers
//! (`<!-- bench:NAME -->` … `<!-- /bench:NAME -->`), so benchmarks can be re-run one at a time.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::{display, is_root, root, setup};

/// (name, binary in vrrp-tests) of every benchmark, in the order BENCHMARKS.md lists them.
const BENCHES: &[(&str, &str)] = &[
    ("xdp", "xdp-bench"),
    ("config", "config-bench"),
    ("failover", "failover-bench"),
    ("track", "track-bench"),
    ("flood", "flood-bench"),
    ("idle", "idle-bench"),
    ("lvs", "lvs-bench"),
];

pub fn run(names: &[String]) -> Result<()> {
    setup::run()?;
    if !is_root() {
        bail!("benchmarks load BPF programs and build network namespaces: run them as root");
    }
    let selected: Vec<&(&str, &str)> = if names.is_empty() {
        BENCHES.iter().collect()
    } else {
        names
            .iter()
            .map(|n| {
                BENCHES.iter().find(|(name, _)| name == n).with_context(|| {
                    let known: Vec<&str> = BENCHES.iter().map(|(n, _)| *n).collect();
                    format!("unknown benchmark {n} (known: {})", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    // Benchmarks that run the real binary find it through VRRP_AGENT.
    crate::run(
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
            "build",
            "--quiet",
            "--release",
            "--package",
            "vrrp-agent",
        ]),
    )?;
    let agent = root().join("target/release/vrrp-agent");
    for (name, bin) in selected {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args([
            "run",
            "--quiet",
            "--release",
            "--package",
            "vrrp-tests",
            "--bin",
            bin,
        ])
        .current_dir(root())
        .env("VRRP_AGENT", &agent)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
        eprintln!("xtask: {}", display(&cmd));
        let out = cmd.output().with_context(|| format!("running {bin}"))?;
        if !out.status.success() {
            bail!("{bin} failed ({})", out.status);
        }
        let section = String::from_utf8(out.stdout).context("benchmark output is not UTF-8")?;
        print!("{section}");
        write_section(name, &section)?;
        eprintln!("xtask: BENCHMARKS.md: section {name} updated");
    }
    Ok(())
}

fn write_section(name: &str, section: &str) -> Result<()> {
    let path = root().join("BENCHMARKS.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nWritten by `cargo xtask bench` (one section per benchmark, each with the date and \
         machine it was measured on). Never pass/fail: machines here are shared and noisy, so every \
         figure is a median with its min–max.\n"
            .to_string()
    });
    let (start, end) = (
        format!("<!-- bench:{name} -->"),
        format!("<!-- /bench:{name} -->"),
    );
    let block = format!("{start}\n{}\n{end}", section.trim_end());
    match (text.find(&start), text.find(&end)) {
        (Some(s), Some(e)) if e > s => text.replace_range(s..e + end.len(), &block),
        _ => {
            text.push('\n');
            text.push_str(&block);
            text.push('\n');
        }
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}
