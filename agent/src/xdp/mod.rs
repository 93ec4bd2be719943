//! The XDP program: loading, attaching (native mode, falling back to SKB mode), and typed
//! access to its maps.
//!
//! The program is never pinned: the kernel detaches it when the last file descriptor of its
//! link closes, so when the agent process dies nothing keeps answering ARP for its VIPs.

mod entries;
pub mod maps;

use std::fmt;

use agent_common::{
    LB_NAT_PROGRAM, LB_NAT6_PROGRAM, LB_PROG_NAT, LB_PROG_NAT6, LB_PROG_V6, LB_PROGS_MAP,
    LB_V6_PROGRAM, PASS_PROGRAM, VRRP_LB_PROGRAM, VRRP_PROGRAM,
};
use aya::{
    Ebpf, EbpfError,
    maps::MapError,
    programs::{ProgramError, TestRun, TestRunOptions, Xdp, XdpMode, xdp::XdpLinkId},
};
use log::{info, warn};

pub use entries::{peer_addrs, vrid_entry};
pub use maps::{Counters, VridCounters};

/// The compiled XDP object, built by build.rs.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("loading the XDP object: {0}")]
    Load(#[from] Box<EbpfError>),
    #[error("XDP program {0} not found in the object")]
    MissingProgram(&'static str),
    #[error("XDP map {0} not found in the object")]
    MissingMap(&'static str),
    #[error("XDP program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("no interface named {0:?}")]
    NoInterface(String),
    #[error("attaching XDP to {iface}: native mode: {native}; SKB mode: {skb}")]
    Attach {
        iface: String,
        native: Box<ProgramError>,
        skb: Box<ProgramError>,
    },
    #[error("attaching XDP to {iface} in {mode} mode: {source}")]
    AttachMode {
        iface: String,
        mode: AttachMode,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("XDP map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
}

/// How the program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// In the driver, before any socket buffer exists (XDP_FLAGS_DRV_MODE).
    Native,
    /// Generic XDP in the network stack (XDP_FLAGS_SKB_MODE): works on every device.
    Skb,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Skb => "skb",
        })
    }
}

impl AttachMode {
    fn flags(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Skb => XdpMode::Skb,
        }
    }
}

/// Which program to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// The VRRP filter and ARP responder.
    Vrrp,
    /// The same with the virtual servers' balancer (most of the verifier's work at load).
    VrrpLb,
    /// Passes everything (benchmark floor; the peer side of a veth for native XDP_TX).
    Pass,
}

impl Program {
    const fn name(self) -> &'static str {
        match self {
            Program::Vrrp => VRRP_PROGRAM,
            Program::VrrpLb => VRRP_LB_PROGRAM,
            Program::Pass => PASS_PROGRAM,
        }
    }
}

/// An interface the program is attached to.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    pub ifindex: u32,
    pub mode: AttachMode,
    pub program: Program,
    link: XdpLinkId,
}

/// Result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// XDP action (`XDP_DROP` = 1, `XDP_PASS` = 2, `XDP_TX` = 3, ...).
    pub action: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Mean time per repetition as the kernel measured it.
    pub duration: std::time::Duration,
}

/// The loaded XDP object: programs, maps and the interfaces they are attached to.
impl XdpError {
    /// The verifier gave up because a signal reached the process (EAGAIN): loading again
    /// will do.
    pub fn interrupted(&self) -> bool {
        matches!(
            self,
            XdpError::Program { source, .. }
                if matches!(
                    source.as_ref(),
                    ProgramError::LoadError { io_error, .. }
                        if io_error.raw_os_error() == Some(libc::EAGAIN)
                )
        )
    }
}

pub struct XdpProgram {
    ebpf: Ebpf,
    pub maps: maps::Maps,
    attachments: Vec<Attachment>,
}

impl XdpProgram {
    /// Loads (and verifies) every program and opens the maps (test-run fixtures,
    /// benchmarks). Needs root (CAP_BPF/CAP_NET_ADMIN).
    pub fn load() -> Result<Self, XdpError> {
        Self::load_only(&[Program::Vrrp, Program::VrrpLb, Program::Pass])
    }

    /// Loads the object and opens the maps, verifying only `programs`: the verifier's work
    /// is most of what loading costs (the balancer's part most of it), so the agent asks for
    /// the one program it attaches, and a lab's bridge ports for the pass program alone.
    pub fn load_only(programs: &[Program]) -> Result<Self, XdpError> {
        let mut ebpf = Ebpf::load(OBJECT).map_err(Box::new)?;
        let maps = maps::Maps::take(&mut ebpf)?;
        let mut prog = XdpProgram {
            ebpf,
            maps,
            attachments: Vec::new(),
        };
        for &program in programs {
            prog.ensure_loaded(program)?;
        }
        Ok(prog)
    }

    /// How many instructions the verifier processed to load `program` (None: not loaded,
    /// or the kernel does not say).
    pub fn verified_insns(&self, program: Program) -> Option<u32> {
        let xdp: &Xdp = self.ebpf.program(program.name())?.try_into().ok()?;
        xdp.info().ok()?.verified_instruction_count()
    }

    /// Loads (verifies) `program` unless it is loaded already. The balancer's comes with
    /// the NAT and IPv6 programs it tail-calls, entered in `LB_PROGS`.
    pub fn ensure_loaded(&mut self, program: Program) -> Result<(), XdpError> {
        let xdp = program_mut(&mut self.ebpf, program)?;
        if xdp.fd().is_ok() {
            return Ok(());
        }
        xdp.load().map_err(|source| XdpError::Program {
            name: program.name(),
            source: Box::new(source),
        })?;
        if program == Program::VrrpLb {
            self.load_tail(LB_NAT_PROGRAM, LB_PROG_NAT)?;
            // IPv6 virtual servers are a program of their own: one this kernel refuses leaves
            // the rest running (their traffic then goes to the kernel), said here and for each
            // IPv6 virtual server.
            match self.load_tail(LB_V6_PROGRAM, LB_PROG_V6) {
                Ok(()) => {
                    self.maps.set_ipv6_balancer(true);
                    // And IPv6 NAT's, which `vrrp_lb_v6` tail-calls.
                    match self.load_tail(LB_NAT6_PROGRAM, LB_PROG_NAT6) {
                        Ok(()) => self.maps.set_ipv6_nat(true),
                        Err(e) => warn!("{e}: IPv6 NAT servers cannot be served"),
                    }
                }
                Err(e) => warn!("{e}: IPv6 virtual servers cannot be served"),
            }
        }
        Ok(())
    }

    /// A tail-called program (`vrrp_lb_nat`, `vrrp_lb_v6`, `vrrp_lb_nat6`), loaded and entered
    /// in `LB_PROGS` at `slot` (the entry lasts while the object holds the map).
    fn load_tail(&mut self, name: &'static str, slot: u32) -> Result<(), XdpError> {
        let program_err = |source| XdpError::Program {
            name,
            source: Box::new(source),
        };
        let tail: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(XdpError::MissingProgram(name))?
            .try_into()
            .map_err(program_err)?;
        if tail.fd().is_err() {
            tail.load().map_err(program_err)?;
        }
        let fd = tail
            .fd()
            .map_err(program_err)?
            .try_clone()
            .map_err(|e| XdpError::Map {
                map: LB_PROGS_MAP,
                source: MapError::SyscallError(aya::sys::SyscallError {
                    call: "dup",
                    io_error: e,
                }),
            })?;
        let map = self
            .ebpf
            .map_mut(LB_PROGS_MAP)
            .ok_or(XdpError::MissingMap(LB_PROGS_MAP))?;
        let mut progs = aya::maps::ProgramArray::try_from(map).map_err(|source| XdpError::Map {
            map: LB_PROGS_MAP,
            source,
        })?;
        progs.set(slot, &fd, 0).map_err(|source| XdpError::Map {
            map: LB_PROGS_MAP,
            source,
        })
    }

    /// Puts `to` where `from` is attached, on every interface (loading `to` first if it is
    /// not): atomically where the kernel can (a link update), else detached and attached
    /// again. Attaching the balancer's program when a reload brings the first virtual
    /// servers.
    pub fn replace(&mut self, from: Program, to: Program) -> Result<(), XdpError> {
        self.ensure_loaded(to)?;
        let attachments = std::mem::take(&mut self.attachments);
        let mut result = Ok(());
        for a in attachments {
            if a.program != from {
                self.attachments.push(a);
                continue;
            }
            let (iface, mode) = (a.iface.clone(), a.mode);
            let link = program_mut(&mut self.ebpf, from).and_then(|xdp| {
                xdp.take_link(a.link).map_err(|source| XdpError::Program {
                    name: from.name(),
                    source: Box::new(source),
                })
            });
            let link = match link {
                Ok(link) => link,
                Err(e) => {
                    // Not a link of `from` (never the case): the rest are replaced all the same.
                    warn!("{iface}: XDP link of {} not found: {e}", from.name());
                    result = Err(e);
                    continue;
                }
            };
            match program_mut(&mut self.ebpf, to)?.attach_to_link(link) {
                Ok(id) => {
                    info!(
                        "{iface}: XDP program {} replaces {} ({mode} mode)",
                        to.name(),
                        from.name(),
                    );
                    self.attachments.push(Attachment {
                        iface,
                        ifindex: a.ifindex,
                        mode,
                        program: to,
                        link: id,
                    });
                }
                Err(e) => {
                    // The old link went with the failed update: attached afresh.
                    warn!("{iface}: XDP link not updated ({e}); attaching again");
                    if let Err(e) = self.attach(&iface, to) {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// Attaches `program` to `iface` in native mode, or in SKB mode where the driver has no
    /// native XDP, and logs which one it got.
    pub fn attach(&mut self, iface: &str, program: Program) -> Result<&Attachment, XdpError> {
        let ifindex = ifindex(iface)?;
        let xdp = program_mut(&mut self.ebpf, program)?;
        let (mode, link) = match xdp.attach_to_if_index(ifindex, XdpMode::Driver) {
            Ok(link) => (AttachMode::Native, link),
            Err(native) => {
                warn!("{iface}: native XDP not available ({native}), falling back to SKB mode");
                match xdp.attach_to_if_index(ifindex, XdpMode::Skb) {
                    Ok(link) => (AttachMode::Skb, link),
                    Err(skb) => {
                        return Err(XdpError::Attach {
                            iface: iface.to_string(),
                            native: Box::new(native),
                            skb: Box::new(skb),
                        });
                    }
                }
            }
        };
        Ok(self.record(iface, ifindex, mode, program, link))
    }

    /// Attaches in exactly `mode`, with no fallback (tests and benchmarks).
    pub fn attach_mode(
        &mut self,
        iface: &str,
        program: Program,
        mode: AttachMode,
    ) -> Result<&Attachment, XdpError> {
        let ifindex = ifindex(iface)?;
        let link = program_mut(&mut self.ebpf, program)?
            .attach_to_if_index(ifindex, mode.flags())
            .map_err(|source| XdpError::AttachMode {
                iface: iface.to_string(),
                mode,
                source: Box::new(source),
            })?;
        Ok(self.record(iface, ifindex, mode, program, link))
    }

    fn record(
        &mut self,
        iface: &str,
        ifindex: u32,
        mode: AttachMode,
        program: Program,
        link: XdpLinkId,
    ) -> &Attachment {
        info!(
            "{iface}: XDP program {} attached in {mode} mode",
            program.name()
        );
        self.attachments.push(Attachment {
            iface: iface.to_string(),
            ifindex,
            mode,
            program,
            link,
        });
        self.attachments.last().expect("just pushed")
    }

    /// Detaches from the interface `ifindex` (every program attached there). An interface
    /// deleted meanwhile took its attachment with it: its record goes all the same.
    pub fn detach(&mut self, ifindex: u32) -> Result<(), XdpError> {
        let (gone, kept): (Vec<Attachment>, Vec<Attachment>) =
            std::mem::take(&mut self.attachments)
                .into_iter()
                .partition(|a| a.ifindex == ifindex);
        self.attachments = kept;
        let mut result = Ok(());
        for attachment in gone {
            let program = attachment.program;
            let detached = program_mut(&mut self.ebpf, program).and_then(|xdp| {
                xdp.detach(attachment.link)
                    .map_err(|source| XdpError::Program {
                        name: program.name(),
                        source: Box::new(source),
                    })
            });
            match detached {
                Ok(()) => info!(
                    "{}: XDP program {} detached",
                    attachment.iface,
                    program.name()
                ),
                Err(e) => result = Err(e),
            }
        }
        result
    }

    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Runs `program` once on `frame` with BPF_PROG_TEST_RUN (no network involved; the
    /// ingress interface is the namespace's loopback). Needs root.
    pub fn test_run(&self, program: Program, frame: &[u8]) -> Result<TestRunOutput, XdpError> {
        self.test_run_repeat(program, frame, 1)
    }

    /// As [`Self::test_run`], `repeat` times over the same buffer (a frame the program rewrites
    /// is rewritten again on the next repetition).
    pub fn test_run_repeat(
        &self,
        program: Program,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestRunOutput, XdpError> {
        let xdp: &Xdp = self
            .ebpf
            .program(program.name())
            .ok_or(XdpError::MissingProgram(program.name()))?
            .try_into()
            .map_err(|source| XdpError::Program {
                name: program.name(),
                source: Box::new(source),
            })?;
        // Room for the frame to grow: an empty data_out would let the kernel write past it, and
        // one smaller than the result fails with ENOSPC.
        let mut out = vec![0u8; frame.len() + 256];
        let result = xdp
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat: repeat.max(1),
                ..Default::default()
            })
            .map_err(|source| XdpError::Program {
                name: program.name(),
                source: Box::new(source),
            })?;
        out.truncate(result.data_size_out as usize);
        Ok(TestRunOutput {
            action: result.return_value,
            frame: out,
            duration: result.duration,
        })
    }
}

fn program_mut(ebpf: &mut Ebpf, program: Program) -> Result<&mut Xdp, XdpError> {
    ebpf.program_mut(program.name())
        .ok_or(XdpError::MissingProgram(program.name()))?
        .try_into()
        .map_err(|source| XdpError::Program {
            name: program.name(),
            source: Box::new(source),
        })
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> Result<u32, XdpError> {
    crate::iface::index(name).ok_or_else(|| XdpError::NoInterface(name.to_string()))
}
