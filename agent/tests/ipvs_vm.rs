//! The IPVS backend end to end, in a VM whose kernel (Debian 12's 6.1) has IPVS (this
//! machine's has not; see `vrrp_tests::vm`). `tests/vm/ipvs.sh` runs there: a director
//! running vrrp-agent, holding the VIP by VRRP, two real servers and a client in namespaces on
//! a bridge. It checks what an operator sees: the services in `ipvsadm -Ln` (or the status),
//! requests spread round robin, a real server whose httpd stops taken out (with keepalived's
//! line) and put back, a `virtual_server fwmark` answering what nftables marks, `lvs_timeouts`
//! in IPVS, `vrrp-agent status`, a reload, and the services gone from IPVS when the agent
//! stops. Under `--lvs-backend ipvs` IPVS runs both services; under `auto` the XDP balancer
//! runs the TCP one on that older kernel, and IPVS the mark's.

use std::{path::Path, time::Duration};

use vrrp_tests::skip_unless_root;

/// What the scenario needs of the kernel's modules (with what they depend on).
const MODULES: &[&str] = &[
    "crc32c_generic",
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "overlay",
    "veth",
    "bridge",
    "ip_vs",
    "ip_vs_rr",
    "ip_vs_wrr",
    "nf_tables",
];

/// One VM at a time: two under software emulation on two cores would each take twice as long.
static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(test: &str, backend: &str) {
    if skip_unless_root(test) {
        return;
    }
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vm/ipvs.sh"));
    let agent = Path::new(env!("CARGO_BIN_EXE_vrrp-agent"));
    let out = vrrp_tests::vm::run(
        &script.canonicalize().expect("the scenario script"),
        &[agent, Path::new(backend)],
        MODULES,
        Duration::from_secs(600),
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    for line in out
        .lines()
        .filter(|l| l.starts_with("CHECK ok") || l.starts_with("INFO"))
    {
        eprintln!("{line}");
    }
    assert!(out.contains("VM-RESULT PASS"), "{out}");
}

#[test]
fn ipvs_runs_every_virtual_server_under_lvs_backend_ipvs() {
    scenario(
        "ipvs_runs_every_virtual_server_under_lvs_backend_ipvs",
        "ipvs",
    );
}

#[test]
fn auto_runs_the_xdp_balancer_and_ipvs_side_by_side_on_debian_12s_kernel() {
    scenario(
        "auto_runs_the_xdp_balancer_and_ipvs_side_by_side_on_debian_12s_kernel",
        "auto",
    );
}
