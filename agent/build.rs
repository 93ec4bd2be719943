//! Builds the XDP program (agent-ebpf) for bpfel-unknown-none with the nightly toolchain and
//! bpf-linker (both installed by `cargo xtask setup`), and leaves it in OUT_DIR for
//! `include_bytes_aligned!`.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "agent-ebpf")
        .ok_or_else(|| anyhow!("package agent-ebpf not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("agent-ebpf manifest has no parent directory"))?;
    // The eBPF crate's shared types live in agent-common: rebuild when they change too.
    println!("cargo:rerun-if-changed={}/../agent-common/src", root_dir);
    aya_build::build_ebpf(
        [Package {
            name: "agent-ebpf",
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context(
        "building the XDP program failed; `cargo xtask setup` installs what it needs \
         (nightly rust-src, bpf-linker built against LLVM 22)",
    )
}
