//! A classic BPF filter on each VRRP receive socket: the kernel drops, before queueing them,
//! adverts for VRIDs no instance on that socket runs, multicast adverts whose TTL / hop limit
//! is not 255, and adverts from outside a VRID's named peers — the first three checks of the
//! XDP program, built from the same entries ([`crate::xdp::entries`]).
//!
//! Behind the XDP program this costs a few instructions per valid advert. Without it
//! (`--no-xdp`, or a host that cannot load eBPF) it keeps a flood of those kinds out of the
//! socket's queue, where it would crowd out the peer's adverts and cost the agent a wakeup
//! per packet. What needs the whole message (checksum, authentication) is still checked in
//! userspace. These drops are not counted (classic BPF has no maps); the XDP counters are.

use agent_common::{VRID_CHECK_SRC, VRID_CHECK_TTL, VridConfig};

/// One VRID a socket receives for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accept {
    pub vrid: u8,
    /// Multicast: TTL / hop limit must be 255.
    pub check_ttl: bool,
    /// Empty: any source. IPv4 addresses in the first 4 bytes.
    pub peers: Vec<[u8; 16]>,
}

impl Accept {
    /// From the VRID's XDP entry and its peers (`entries::peer_addrs`).
    pub fn from_entry(vrid: u8, config: &VridConfig, peers: Vec<[u8; 16]>) -> Accept {
        Accept {
            vrid,
            check_ttl: config.flags & VRID_CHECK_TTL != 0,
            peers: if config.flags & VRID_CHECK_SRC != 0 {
                peers
            } else {
                Vec::new()
            },
        }
    }
}

// Classic BPF opcodes (linux/filter.h, linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const LD_B_ABS: u16 = 0x30;
const LD_B_IND: u16 = 0x50;
const LDX_B_MSH: u16 = 0xb1;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// Loads relative to the network header (SKF_NET_OFF): an IPv6 raw socket's filter sees the
/// packet from the VRRP message on, its IP header only through this.
const SKF_NET_OFF: u32 = (-0x100000i32) as u32;
/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// What the assembler emits: an instruction, or an unconditional jump to a label resolved at
/// the end (`ja` takes a 32-bit offset; conditional jumps only ever skip one instruction, so
/// no 8-bit jump offset can overflow however many VRIDs and peers there are).
enum Op {
    Insn(libc::sock_filter),
    Ja(usize),
    Label(usize),
}

struct Asm {
    ops: Vec<Op>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn insn(&mut self, code: u16, k: u32) {
        self.ops.push(Op::Insn(libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }));
    }

    /// A == k: go to `to`; else fall through.
    fn if_eq_goto(&mut self, k: u32, to: usize) {
        self.ops.push(Op::Insn(libc::sock_filter {
            code: JMP_JEQ_K,
            jt: 0,
            jf: 1,
            k,
        }));
        self.ops.push(Op::Ja(to));
    }

    /// A != k: go to `to`; else fall through.
    fn if_ne_goto(&mut self, k: u32, to: usize) {
        self.ops.push(Op::Insn(libc::sock_filter {
            code: JMP_JEQ_K,
            jt: 1,
            jf: 0,
            k,
        }));
        self.ops.push(Op::Ja(to));
    }

    fn finish(self) -> Vec<libc::sock_filter> {
        let mut at = vec![0usize; self.labels];
        let mut pos = 0;
        for op in &self.ops {
            match op {
                Op::Label(l) => at[*l] = pos,
                _ => pos += 1,
            }
        }
        let mut out = Vec::with_capacity(pos);
        for op in self.ops {
            match op {
                Op::Insn(i) => out.push(i),
                Op::Ja(l) => {
                    let k = (at[l] - (out.len() + 1)) as u32;
                    out.push(libc::sock_filter {
                        code: JMP_JA,
                        jt: 0,
                        jf: 0,
                        k,
                    })
                }
                Op::Label(_) => {}
            }
        }
        out
    }
}

/// The filter of a receive socket of family `v6` for `accept` (each VRID once). Jumps only
/// forwards, every path ends in a return: what the kernel's checker requires.
pub fn program(v6: bool, accept: &[Accept]) -> Vec<libc::sock_filter> {
    let mut a = Asm {
        ops: Vec::new(),
        labels: 0,
    };
    let (drop, pass) = (a.label(), a.label());
    // Where the VRRP message, the TTL and the source are.
    let (vrid_load, ttl_off, src_off, src_words) = if v6 {
        ((LD_B_ABS, 1), SKF_NET_OFF + 7, SKF_NET_OFF + 8, 4)
    } else {
        // X = the IPv4 header's length; the VRID is at X + 1.
        a.insn(LDX_B_MSH, 0);
        ((LD_B_IND, 1), 8, 12, 1)
    };
    a.insn(vrid_load.0, vrid_load.1);
    let blocks: Vec<usize> = accept.iter().map(|_| a.label()).collect();
    for (acc, &block) in accept.iter().zip(&blocks) {
        a.if_eq_goto(u32::from(acc.vrid), block);
    }
    // No instance here runs this VRID.
    a.ops.push(Op::Ja(drop));
    for (acc, &block) in accept.iter().zip(&blocks) {
        a.ops.push(Op::Label(block));
        if acc.check_ttl {
            a.insn(LD_B_ABS, ttl_off);
            a.if_ne_goto(255, drop);
        }
        for peer in &acc.peers {
            let next = a.label();
            for w in 0..src_words {
                let word = u32::from_be_bytes(peer[w * 4..w * 4 + 4].try_into().unwrap_or([0; 4]));
                a.insn(LD_W_ABS, src_off + (w as u32) * 4);
                a.if_ne_goto(word, next);
            }
            a.ops.push(Op::Ja(pass));
            a.ops.push(Op::Label(next));
        }
        if acc.peers.is_empty() {
            a.ops.push(Op::Ja(pass));
        } else {
            a.ops.push(Op::Ja(drop));
        }
    }
    a.ops.push(Op::Label(drop));
    a.insn(RET_K, 0);
    a.ops.push(Op::Label(pass));
    a.insn(RET_K, u32::MAX);
    a.finish()
}

/// A filter that takes every packet (one `ret`).
pub fn program_pass_all() -> Vec<libc::sock_filter> {
    vec![libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: u32::MAX,
    }]
}

/// A classic BPF interpreter for the instructions [`program`] emits, over a packet as the
/// filter sees it (`net`: the IP header; `data`: where loads without SKF_NET_OFF start).
/// The unit tests run the programs with it; the lab tests run them in the kernel.
#[cfg(test)]
fn run(prog: &[libc::sock_filter], net: &[u8], data: &[u8]) -> u32 {
    let load = |off: u32, n: usize| -> Option<u32> {
        let (buf, off) = if off >= SKF_NET_OFF {
            (net, (off - SKF_NET_OFF) as usize)
        } else {
            (data, off as usize)
        };
        let b = buf.get(off..off + n)?;
        Some(b.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)))
    };
    let (mut acc, mut x, mut pc) = (0u32, 0u32, 0usize);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => match load(i.k, 4) {
                Some(v) => acc = v,
                None => return 0,
            },
            LD_B_ABS => match load(i.k, 1) {
                Some(v) => acc = v,
                None => return 0,
            },
            LD_B_IND => match load(x + i.k, 1) {
                Some(v) => acc = v,
                None => return 0,
            },
            LDX_B_MSH => match load(i.k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return 0,
            },
            JMP_JA => pc += i.k as usize,
            JMP_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
            RET_K => return i.k,
            c => panic!("opcode {c:#x} not emitted by program()"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(b: [u8; 4]) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&b);
        a
    }

    /// An IPv4 packet as a raw IPv4 socket's filter sees it: header (with `options` words of
    /// options), then a VRRP header for `vrid`.
    fn ipv4(ttl: u8, src: [u8; 4], vrid: u8, options: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20 + options * 4];
        p[0] = 0x45 + options as u8;
        p[8] = ttl;
        p[9] = 112;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&[224, 0, 0, 18]);
        p.extend_from_slice(&[0x21, vrid, 100, 1, 0, 1, 0, 0, 192, 168, 0, 1]);
        p
    }

    fn accepts_v4(prog: &[libc::sock_filter], p: &[u8]) -> bool {
        run(prog, p, p) != 0
    }

    #[test]
    fn only_the_vrids_of_the_socket_pass_with_ttl_255_when_multicast() {
        let prog = program(
            false,
            &[
                Accept {
                    vrid: 51,
                    check_ttl: true,
                    peers: vec![],
                },
                Accept {
                    vrid: 52,
                    check_ttl: false,
                    peers: vec![],
                },
            ],
        );
        let src = [192, 168, 11, 12];
        assert!(accepts_v4(&prog, &ipv4(255, src, 51, 0)));
        assert!(accepts_v4(&prog, &ipv4(255, src, 51, 2)), "IP options");
        assert!(!accepts_v4(&prog, &ipv4(254, src, 51, 0)), "TTL 254");
        // A unicast instance accepts any TTL, as keepalived does.
        assert!(accepts_v4(&prog, &ipv4(3, src, 52, 0)));
        assert!(!accepts_v4(&prog, &ipv4(255, src, 99, 0)), "another VRID");
        assert!(
            !accepts_v4(&prog, &ipv4(255, src, 51, 0)[..20]),
            "truncated"
        );
    }

    #[test]
    fn named_peers_are_the_only_sources_that_pass() {
        let prog = program(
            false,
            &[Accept {
                vrid: 51,
                check_ttl: true,
                peers: vec![v4([192, 168, 11, 12]), v4([192, 168, 11, 13])],
            }],
        );
        assert!(accepts_v4(&prog, &ipv4(255, [192, 168, 11, 12], 51, 0)));
        assert!(accepts_v4(&prog, &ipv4(255, [192, 168, 11, 13], 51, 0)));
        assert!(!accepts_v4(&prog, &ipv4(255, [192, 168, 11, 66], 51, 0)));
        assert!(!accepts_v4(&prog, &ipv4(254, [192, 168, 11, 12], 51, 0)));
    }

    #[test]
    fn ipv6_reads_hop_limit_and_source_from_the_network_header() {
        let peer: std::net::Ipv6Addr = "fe80::12".parse().unwrap();
        let prog = program(
            true,
            &[Accept {
                vrid: 7,
                check_ttl: true,
                peers: vec![peer.octets()],
            }],
        );
        let packet = |hop: u8, src: std::net::Ipv6Addr, vrid: u8| {
            let mut net = vec![0u8; 40];
            net[0] = 0x60;
            net[6] = 112;
            net[7] = hop;
            net[8..24].copy_from_slice(&src.octets());
            let vrrp = vec![0x31, vrid, 100, 0, 0, 100, 0, 0];
            net.extend_from_slice(&vrrp);
            (net, vrrp)
        };
        let ok = |(net, vrrp): (Vec<u8>, Vec<u8>)| run(&prog, &net, &vrrp) != 0;
        assert!(ok(packet(255, peer, 7)));
        assert!(!ok(packet(254, peer, 7)));
        assert!(!ok(packet(255, "fe80::66".parse().unwrap(), 7)));
        assert!(!ok(packet(255, peer, 8)));
    }

    #[test]
    fn every_vrid_with_peers_fits_and_jumps_stay_in_range() {
        let accept: Vec<Accept> = (1..=255u8)
            .map(|vrid| Accept {
                vrid,
                check_ttl: true,
                peers: vec![v4([10, 0, 0, vrid])],
            })
            .collect();
        let prog = program(false, &accept);
        assert!(prog.len() <= MAX_INSNS, "{} instructions", prog.len());
        for (pc, i) in prog.iter().enumerate() {
            let ends = match i.code {
                JMP_JA => pc + 1 + i.k as usize,
                JMP_JEQ_K => pc + 1 + usize::from(i.jt.max(i.jf)),
                _ => pc,
            };
            assert!(ends < prog.len(), "jump past the end at {pc}");
        }
        assert_eq!(prog.last().map(|i| i.code), Some(RET_K));
        assert!(accepts_v4(&prog, &ipv4(255, [10, 0, 0, 200], 200, 0)));
        assert!(!accepts_v4(&prog, &ipv4(255, [10, 0, 0, 201], 200, 0)));
    }

    #[test]
    fn no_vrid_at_all_drops_everything() {
        let prog = program(false, &[]);
        assert!(!accepts_v4(&prog, &ipv4(255, [1, 2, 3, 4], 1, 0)));
    }
}
