//! The XDP program on a real (namespaced) LAN: attached to a router's interface in native and
//! in SKB mode, it answers a real `arping` for a VIP no interface holds, counts crafted adverts
//! per VRID and reason as read back from userspace, and is gone the moment its process dies.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    net::IpAddr,
    process::{ChildStdin, ChildStdout, Stdio},
    time::Duration,
};

use vrrp_agent::xdp::{AttachMode, Program, XdpProgram};
use vrrp_tests::{
    Capture, Lab, Process,
    frames::{Advert, Checksum, Wire},
    lab::mac_string,
    poll, skip_unless_root,
};

const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x03];
const VMAC: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 51];
const VIP: &str = "10.77.0.100";

/// The xdp-holder fixture running in a namespace, driven over its stdin/stdout.
struct Holder {
    process: Process,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// What it printed when attached: "attached eth0 native".
    attached: String,
}

impl Holder {
    fn start(lab: &Lab, host: &str, args: &[&str]) -> Holder {
        let ns = &lab.host(host).ns;
        let mut cmd = ns.command(env!("CARGO_BIN_EXE_xdp-holder"));
        cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut process = ns.spawn(&mut cmd).expect("start xdp-holder");
        let stdin = process.child.stdin.take().unwrap();
        let mut stdout = BufReader::new(process.child.stdout.take().unwrap());
        let mut attached = String::new();
        stdout.read_line(&mut attached).unwrap();
        assert!(
            attached.starts_with("attached"),
            "xdp-holder failed to attach (printed {attached:?})"
        );
        Holder {
            process,
            stdin,
            stdout,
            attached: attached.trim().to_string(),
        }
    }

    fn ask(&mut self, command: &str) -> HashMap<String, u64> {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    }
}

/// A router and a client on one LAN.
fn lab() -> Lab {
    let mut lab = Lab::new().expect("create lab");
    lab.add_host("router", "eth0", ROUTER_MAC, "10.77.0.1/24")
        .unwrap();
    lab.add_host("client", "eth0", CLIENT_MAC, "10.77.0.2/24")
        .unwrap();
    lab.add_host("peer", "eth0", PEER_MAC, "10.77.0.3/24")
        .unwrap();
    lab
}

/// `arping` once from the client; the MAC that answered, if any.
fn arping(lab: &Lab, wait_s: &str) -> Option<String> {
    let out = lab
        .host("client")
        .ns
        .output(&["arping", "-c", "1", "-w", wait_s, "-I", "eth0", VIP])
        .expect("run arping (iputils-arping)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.contains("reply from"))
        .and_then(|l| l.split('[').nth(1)?.split(']').next())
        .map(|mac| mac.to_lowercase())
}

/// "xdp" (native) or "xdpgeneric" (SKB) as `ip link` reports for the router's eth0.
fn xdp_shown(lab: &Lab) -> Option<&'static str> {
    let out = lab
        .host("router")
        .ns
        .run(&["ip", "-d", "link", "show", "eth0"])
        .unwrap();
    if out.contains("xdpgeneric") {
        Some("xdpgeneric")
    } else if out.contains(" xdp ") || out.contains("prog/xdp") {
        Some("xdp")
    } else {
        None
    }
}

fn run_scenario(mode: AttachMode) {
    let lab = lab();
    // Native XDP_TX on a veth is delivered only if the peer end runs an XDP program too.
    let _peer_side = (mode == AttachMode::Native).then(|| {
        let port = lab.port_of("router", "eth0").to_string();
        lab.lan()
            .enter(move || {
                let mut pass = XdpProgram::load_only(&[Program::Pass]).expect("load");
                pass.attach_mode(&port, Program::Pass, AttachMode::Native)
                    .expect("attach pass");
                pass
            })
            .unwrap()
    });

    let vip_arg = format!("{VIP}={}", mac_string(VMAC));
    let mut holder = Holder::start(
        &lab,
        "router",
        &[
            "--iface",
            "eth0",
            "--mode",
            &mode.to_string(),
            "--vip",
            &vip_arg,
            "--vrid",
            "51:v2,ttl,pass=1111",
            "--filter",
        ],
    );
    assert_eq!(holder.attached, format!("attached eth0 {mode}"));
    let want_shown = if mode == AttachMode::Native {
        "xdp"
    } else {
        "xdpgeneric"
    };
    assert_eq!(
        xdp_shown(&lab),
        Some(want_shown),
        "ip link shows the program in {mode} mode"
    );

    // A real arping gets its answer from XDP: no interface in the lab holds the VIP.
    assert_eq!(
        arping(&lab, "3").as_deref(),
        Some(mac_string(VMAC).as_str()),
        "arping answered with the VIP's MAC"
    );
    assert!(holder.ask("counters")["arp_reply"] >= 1);

    // Crafted adverts from a peer: counted per VRID and reason, as read back from userspace.
    let peer = Capture::open(&lab.host("peer").ns, "eth0").unwrap();
    let wire = Wire::vrrp_multicast(PEER_MAC, "10.77.0.3".parse().unwrap());
    let vips: Vec<IpAddr> = vec![VIP.parse().unwrap()];
    let valid = Advert::v2_pass(51, 100, &vips, "1111");
    let sends = [
        (wire.vrrp(&valid), 3),
        (wire.vrrp(&Advert::v2_pass(51, 100, &vips, "wrong")), 2),
        (wire.clone().with(|w| w.ttl = 254).vrrp(&valid), 1),
        (
            wire.vrrp(&valid.clone().with(|a| a.checksum = Checksum::Corrupt)),
            1,
        ),
        (wire.vrrp(&Advert::v2_pass(99, 100, &vips, "1111")), 1),
    ];
    for (frame, times) in &sends {
        for _ in 0..*times {
            peer.send(frame).unwrap();
        }
    }
    let want_51 = [("valid", 3), ("auth", 2), ("ttl", 1), ("checksum", 1)];
    let seen = poll(Duration::from_secs(5), || {
        let vrid51 = holder.ask("vrid 51 4");
        let vrid99 = holder.ask("vrid 99 4");
        let done = want_51.iter().all(|(k, v)| vrid51[*k] == *v) && vrid99["unknown_vrid"] == 1;
        done.then_some((vrid51, vrid99))
    });
    let (vrid51, vrid99) = seen.unwrap_or_else(|| {
        panic!(
            "per-VRID counters: vrid 51 {:?}, vrid 99 {:?}",
            holder.ask("vrid 51 4"),
            holder.ask("vrid 99 4")
        )
    });
    assert_eq!(
        vrid51["unknown_vrid"] + vrid51["version"] + vrid51["type"] + vrid51["length"],
        0
    );
    assert_eq!(vrid99["valid"], 0);

    // The process dies without any chance to clean up: the kernel detaches the program with
    // it, so nothing answers ARP for the VIP any more.
    holder.process.kill();
    assert!(
        poll(Duration::from_secs(5), || xdp_shown(&lab)
            .is_none()
            .then_some(()))
        .is_some(),
        "XDP still attached after its process died"
    );
    assert_eq!(
        arping(&lab, "1"),
        None,
        "ARP answered after the process died"
    );
}

#[test]
fn native_mode_answers_arp_counts_adverts_and_dies_with_its_process() {
    if skip_unless_root("native_mode_answers_arp_counts_adverts_and_dies_with_its_process") {
        return;
    }
    run_scenario(AttachMode::Native);
}

#[test]
fn skb_mode_answers_arp_counts_adverts_and_dies_with_its_process() {
    if skip_unless_root("skb_mode_answers_arp_counts_adverts_and_dies_with_its_process") {
        return;
    }
    run_scenario(AttachMode::Skb);
}

#[test]
fn lab_namespaces_are_removed_even_when_a_test_panics() {
    if skip_unless_root("lab_namespaces_are_removed_even_when_a_test_panics") {
        return;
    }
    let prefix = std::panic::catch_unwind(|| {
        let lab = lab();
        let prefix = format!("{}-", lab.prefix());
        assert_eq!(
            vrrp_tests::netns::list()
                .iter()
                .filter(|n| n.starts_with(&prefix))
                .count(),
            4
        );
        std::panic::panic_any(prefix);
    })
    .unwrap_err()
    .downcast::<String>()
    .unwrap();
    let left: Vec<String> = vrrp_tests::netns::list()
        .into_iter()
        .filter(|n| n.starts_with(&*prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
