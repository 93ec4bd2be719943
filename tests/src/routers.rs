//! VRRP routers in a [`Lab`]: vrrp-agent or keepalived 2.2.7 started in their own namespaces
//! from a config text, a client to probe the VIP from, and the operations the end-to-end
//! tests, the demo and the failover benchmark share (crash, graceful stop, who holds the VIP).
//!
//! Every LAN-side bridge port runs the pass XDP program, because native-mode XDP_TX on a veth
//! (the XDP ARP responder) is delivered only when the peer end has an XDP program too.

use std::{
    collections::HashMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use vrrp_agent::xdp::{AttachMode, Program, XdpProgram};

use crate::{
    Lab, Process,
    lab::mac_string,
    poll,
    probe::{Probe, Record},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Agent,
    Keepalived,
}

impl Daemon {
    pub fn name(self) -> &'static str {
        match self {
            Daemon::Agent => "vrrp-agent",
            Daemon::Keepalived => "keepalived",
        }
    }
}

struct Router {
    iface: String,
    mac: [u8; 6],
    process: Option<Process>,
    log: PathBuf,
    /// False between [`VrrpLab::crash`] and [`VrrpLab::power_on`]: its link is down, so
    /// whatever it still has configured serves nobody.
    powered: bool,
}

pub struct VrrpLab {
    pub lab: Lab,
    dir: PathBuf,
    agent: PathBuf,
    routers: HashMap<String, Router>,
    /// Pass programs on the LAN side of each port (dropped, they detach).
    port_programs: Vec<XdpProgram>,
    client: Option<(String, String, [u8; 6], Ipv4Addr)>,
}

/// The MACs of the standard pair lab ([`VrrpLab::pair`]): routers a and b, and the client.
pub const A_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
pub const B_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xcc];

/// The vrrp-agent binary: `VRRP_AGENT`, or next to the running executable's target dir.
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VRRP_AGENT") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    // target/debug/deps/test-xxxx → target/debug
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("vrrp-agent")
}

impl VrrpLab {
    pub fn new(agent: &Path) -> Result<VrrpLab> {
        let lab = Lab::new()?;
        let dir = std::env::temp_dir().join(lab.prefix());
        std::fs::create_dir_all(&dir)?;
        Ok(VrrpLab {
            lab,
            dir,
            agent: agent.to_path_buf(),
            routers: HashMap::new(),
            port_programs: Vec::new(),
            client: None,
        })
    }

    /// The LAN most tests and benchmarks run: routers a (192.168.11.11) and b (.12) on their
    /// `eth0`, and with `client` a client at .100, all on 192.168.11.0/24.
    pub fn pair(agent: &Path, client: bool) -> Result<VrrpLab> {
        let mut lab = VrrpLab::new(agent)?;
        lab.add_router("a", "eth0", A_MAC, "192.168.11.11/24")?;
        lab.add_router("b", "eth0", B_MAC, "192.168.11.12/24")?;
        if client {
            lab.add_client(
                "client",
                "eth0",
                CLIENT_MAC,
                Ipv4Addr::new(192, 168, 11, 100),
                24,
            )?;
        }
        Ok(lab)
    }

    /// `vrrp-agent status --json` as the agent on `router` answers it (Null when none does).
    pub fn status(&self, router: &str) -> serde_json::Value {
        let agent = self.agent.to_string_lossy().into_owned();
        self.lab
            .host(router)
            .ns
            .output(&[agent.as_str(), "status", "--json"])
            .ok()
            .and_then(|out| serde_json::from_slice(&out.stdout).ok())
            .unwrap_or_default()
    }

    fn pass_on_port(&mut self, host: &str, iface: &str) -> Result<()> {
        let port = self.lab.port_of(host, iface).to_string();
        let prog = self.lab.lan().enter(move || -> Result<XdpProgram> {
            let mut pass = XdpProgram::load_only(&[Program::Pass])?;
            pass.attach_mode(&port, Program::Pass, AttachMode::Native)?;
            Ok(pass)
        })??;
        self.port_programs.push(prog);
        Ok(())
    }

    /// A router host `name` with interface `iface` (MAC, address/prefix) on the LAN.
    pub fn add_router(&mut self, name: &str, iface: &str, mac: [u8; 6], cidr: &str) -> Result<()> {
        self.lab.add_host(name, iface, mac, cidr)?;
        self.pass_on_port(name, iface)?;
        self.routers.insert(
            name.to_string(),
            Router {
                iface: iface.to_string(),
                mac,
                process: None,
                log: self.dir.join(format!("{name}.log")),
                powered: true,
            },
        );
        Ok(())
    }

    /// Another interface of router `name` on the LAN.
    pub fn add_interface(
        &mut self,
        name: &str,
        iface: &str,
        mac: [u8; 6],
        cidr: &str,
    ) -> Result<()> {
        self.add_interface_on(name, iface, mac, cidr, crate::lab::LAN_BRIDGE)
    }

    /// Another interface of router `name` on a segment of its own (`bridge`, see
    /// [`crate::lab::Lab::add_interface_on`]), as a router's interfaces usually are.
    pub fn add_interface_on(
        &mut self,
        name: &str,
        iface: &str,
        mac: [u8; 6],
        cidr: &str,
        bridge: &str,
    ) -> Result<()> {
        self.lab.add_interface_on(name, iface, mac, cidr, bridge)?;
        self.pass_on_port(name, iface)
    }

    /// The directory of this lab's files (configs, logs, pid files); removed with the lab.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The client host that probes VIPs.
    pub fn add_client(
        &mut self,
        name: &str,
        iface: &str,
        mac: [u8; 6],
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<()> {
        self.lab
            .add_host(name, iface, mac, &format!("{addr}/{prefix}"))?;
        self.pass_on_port(name, iface)?;
        self.client = Some((name.to_string(), iface.to_string(), mac, addr));
        Ok(())
    }

    pub fn mac(&self, router: &str) -> [u8; 6] {
        self.routers[router].mac
    }

    /// Starts `daemon` on `router` with `config`; its output goes to the router's log.
    pub fn start(&mut self, router: &str, daemon: Daemon, config: &str) -> Result<()> {
        self.start_with(router, daemon, config, &[], &[])
    }

    /// [`Self::start`] with extra command-line arguments and environment variables.
    pub fn start_with(
        &mut self,
        router: &str,
        daemon: Daemon,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<()> {
        let conf = self.dir.join(format!("{router}.conf"));
        std::fs::write(&conf, config)?;
        let r = self.routers.get_mut(router).context("no such router")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&r.log)?;
        let ns = &self.lab.host(router).ns;
        let pid = |what: &str| self.dir.join(format!("{router}-{what}.pid"));
        let mut cmd = match daemon {
            Daemon::Agent => {
                let mut c = ns.command(self.agent.to_str().context("agent path")?);
                c.args(["-n", "-l", "-G", "-D", "-f"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(pid("main"));
                c
            }
            Daemon::Keepalived => {
                let mut c = ns.command("keepalived");
                c.args(["-n", "-l", "-G", "-D", "-P", "-f"])
                    .arg(&conf)
                    .arg("-p")
                    .arg(pid("main"))
                    .arg("-r")
                    .arg(pid("vrrp"));
                c
            }
        };
        cmd.args(args).envs(env.iter().copied());
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let log_path = r.log.clone();
        let from = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        r.process = Some(ns.spawn(&mut cmd)?);
        if daemon == Daemon::Agent {
            // Until the agent has loaded its XDP program (or said it runs without) and its
            // instances run: the verifier takes most of a second of CPU, and two agents
            // verifying at once on a busy machine would otherwise start their timers in
            // whatever order the verifier finishes, not the order the test started them.
            let process = r.process.as_mut().context("just started")?;
            poll(Duration::from_secs(30), || {
                let text = std::fs::read(&log_path).unwrap_or_default();
                let new = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
                let ready = ["Entering ", "XDP program", "running without", "XDP not"]
                    .iter()
                    .any(|m| new.contains(m));
                (ready || process.child.try_wait().ok().flatten().is_some()).then_some(())
            });
        }
        Ok(())
    }

    /// SIGKILL the daemon and take the router's link down: a power cut. (A killed keepalived
    /// leaves its VIPs configured; a dead box answers nothing.)
    pub fn crash(&mut self, router: &str) -> Result<()> {
        let r = self.routers.get_mut(router).context("no such router")?;
        r.powered = false;
        let iface = r.iface.clone();
        let process = r.process.take();
        let ns = &self.lab.host(router).ns;
        // The link first, so nothing more leaves the box (not even a dying daemon's
        // priority-0 advert); then every process of the router at once, since keepalived's
        // VRRP child would otherwise notice its parent's death and stop gracefully.
        ns.ip(&["link", "set", &iface, "down"])?;
        ns.kill_all();
        drop(process);
        Ok(())
    }

    /// Brings a crashed router's link back (its daemon is started again with [`Self::start`]).
    pub fn power_on(&mut self, router: &str) -> Result<()> {
        let iface = self.routers[router].iface.clone();
        let ns = &self.lab.host(router).ns;
        // Addresses a killed daemon left behind are gone with the "reboot".
        let out = ns.run(&["ip", "-o", "-4", "addr", "show", "dev", &iface])?;
        for line in out.lines().skip(1) {
            if let Some(a) = line.split_whitespace().nth(3) {
                ns.ip(&["addr", "del", a, "dev", &iface])?;
            }
        }
        ns.ip(&["link", "set", &iface, "up"])?;
        // A reboot empties /run: pid files of killed daemons must not block their restart
        // (an orphaned child may linger as a zombie nobody reaps in a container).
        for what in ["main", "vrrp"] {
            let _ = std::fs::remove_file(self.dir.join(format!("{router}-{what}.pid")));
        }
        if let Some(r) = self.routers.get_mut(router) {
            r.powered = true;
        }
        Ok(())
    }

    /// SIGTERM, and wait (up to `timeout`) for the daemon to exit.
    pub fn stop(&mut self, router: &str, timeout: Duration) -> Result<()> {
        let r = self.routers.get_mut(router).context("no such router")?;
        let Some(mut p) = r.process.take() else {
            return Ok(());
        };
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(p.pid() as i32, libc::SIGTERM) };
        let exited = poll(timeout, || p.child.try_wait().ok().flatten());
        if exited.is_none() {
            bail!("{router}: the daemon did not exit within {timeout:?} of SIGTERM");
        }
        Ok(())
    }

    /// Sends `signal` to the router's daemon.
    pub fn signal(&self, router: &str, signal: i32) -> Result<()> {
        let p = self.routers[router]
            .process
            .as_ref()
            .context("the daemon is not running")?;
        // SAFETY: plain kill(2) on our child.
        if unsafe { libc::kill(p.pid() as i32, signal) } != 0 {
            bail!("kill: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Every process of the router's daemon, from its pid files: vrrp-agent's one process,
    /// keepalived's parent and VRRP child.
    pub fn daemon_pids(&self, router: &str) -> Result<Vec<u32>> {
        let read = |what: &str| -> Option<Result<u32>> {
            let file = self.dir.join(format!("{router}-{what}.pid"));
            let text = std::fs::read_to_string(&file).ok()?;
            Some(
                text.trim()
                    .parse()
                    .with_context(|| format!("{}: {text:?}", file.display())),
            )
        };
        let main = read("main").with_context(|| format!("{router}: no pid file"))??;
        let mut pids = vec![main];
        if let Some(child) = read("vrrp") {
            pids.push(child?);
        }
        Ok(pids)
    }

    /// The pid of the router's daemon (its main process).
    pub fn pid(&self, router: &str) -> Option<u32> {
        self.routers[router].process.as_ref().map(Process::pid)
    }

    pub fn is_running(&mut self, router: &str) -> bool {
        self.routers
            .get_mut(router)
            .and_then(|r| r.process.as_mut())
            .is_some_and(|p| p.child.try_wait().ok().flatten().is_none())
    }

    /// Whether `router` has `vip` on one of its interfaces.
    pub fn holds(&self, router: &str, vip: &str) -> bool {
        self.lab
            .host(router)
            .ns
            .run(&["ip", "-o", "addr", "show"])
            .is_ok_and(|out| {
                out.split_whitespace()
                    .any(|w| w.split('/').next() == Some(vip))
            })
    }

    /// The powered routers holding `vip` now.
    pub fn holders(&self, vip: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .routers
            .iter()
            .filter(|(_, r)| r.powered)
            .map(|(n, _)| n)
            .filter(|r| self.holds(r, vip))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Waits until exactly `router` holds `vip`; the time it took.
    pub fn wait_sole_holder(&self, router: &str, vip: &str, timeout: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        poll(timeout, || (self.holders(vip) == [router]).then_some(()))
            .with_context(|| {
                format!(
                    "{router} did not become the only holder of {vip} within {timeout:?} (holders: {:?})\n{}",
                    self.holders(vip),
                    self.logs()
                )
            })?;
        Ok(t0.elapsed())
    }

    pub fn log(&self, router: &str) -> String {
        std::fs::read_to_string(&self.routers[router].log).unwrap_or_default()
    }

    /// Every router's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut names: Vec<&String> = self.routers.keys().collect();
        names.sort();
        names
            .into_iter()
            .map(|n| format!("----- {n} -----\n{}", self.log(n)))
            .collect()
    }

    /// Waits until `router`'s log contains `line`.
    pub fn wait_log(&self, router: &str, line: &str, timeout: Duration) -> Result<()> {
        poll(timeout, || self.log(router).contains(line).then_some(()))
            .with_context(|| format!("{router} never logged {line:?}\n{}", self.logs()))
    }

    /// Starts probing `vip` from the client.
    pub fn probe(&self, vip: Ipv4Addr, interval: Duration, arp_every: u16) -> Result<Probe> {
        let (name, iface, mac, addr) = self.client.as_ref().context("no client")?;
        Probe::start(
            &self.lab.host(name).ns,
            iface,
            *mac,
            *addr,
            vip,
            interval,
            arp_every,
        )
    }

    /// The router whose MAC is `mac`.
    pub fn router_of(&self, mac: [u8; 6]) -> Option<String> {
        self.routers
            .iter()
            .find(|(_, r)| r.mac == mac)
            .map(|(n, _)| n.clone())
    }

    pub fn describe(&self, rec: &Record) -> String {
        let names: Vec<String> = rec
            .macs_since(Instant::now() - Duration::from_secs(3600))
            .into_iter()
            .map(|m| self.router_of(m).unwrap_or_else(|| mac_string(m)))
            .collect();
        format!(
            "{} probes, {} replies, from {names:?}",
            rec.sent.len(),
            rec.replies.len()
        )
    }
}

impl Drop for VrrpLab {
    fn drop(&mut self) {
        for r in self.routers.values_mut() {
            r.process.take();
        }
        self.port_programs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
