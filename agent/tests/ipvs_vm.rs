//! The IPVS backend end to end, in a VM whose kernel has IPVS (this machine's has not; see
//! `vrrp_tests::vm`). `tests/vm/ipvs.sh` runs there: a director running vrrp-agent with its
//! default `--lvs-backend auto` (the VM's kernel refuses the XDP balancer, so IPVS runs every
//! virtual server), holding the VIP by VRRP, two real servers and a client in namespaces on a
//! bridge. It checks what an operator sees: the services in `ipvsadm -Ln`, requests spread
//! round robin, a real server whose httpd stops taken out (with keepalived's line) and put
//! back, a `virtual_server fwmark` answering what nftables marks, `vrrp-agent status`, and
//! the services gone from IPVS when the agent stops.

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

#[test]
fn ipvs_runs_the_virtual_servers_where_the_kernel_has_it() {
    if skip_unless_root("ipvs_runs_the_virtual_servers_where_the_kernel_has_it") {
        return;
    }
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vm/ipvs.sh"));
    let agent = Path::new(env!("CARGO_BIN_EXE_vrrp-agent"));
    let out = vrrp_tests::vm::run(
        &script.canonicalize().expect("the scenario script"),
        &[agent],
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
