//! Named network namespaces (`ip netns`) that delete themselves, and processes run inside them
//! that are killed when dropped.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    process::{Child, Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};

const NETNS_DIR: &str = "/var/run/netns";

/// Runs `ip ARGS` and fails with its stderr if it fails.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A network namespace, deleted (with every process still in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` with its loopback up.
    pub fn create(name: &str) -> Result<Netns> {
        ip(&["netns", "add", name])?;
        let ns = Netns {
            name: name.to_string(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Takes ownership of an existing namespace: it is deleted when this drops.
    pub fn adopt(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `argv` in the namespace to completion and returns its output, whatever the status.
    pub fn output(&self, argv: &[&str]) -> Result<Output> {
        self.command(argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {argv:?} in {}", self.name))
    }

    /// Runs `argv` in the namespace; fails unless it exits 0. Returns stdout.
    pub fn run(&self, argv: &[&str]) -> Result<String> {
        let out = self.output(argv)?;
        if !out.status.success() {
            bail!(
                "{argv:?} in {} exited with {}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `cmd` (from [`Self::command`]); the process is killed when the handle drops.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Process> {
        let child = cmd.spawn().with_context(|| format!("spawning {cmd:?}"))?;
        Ok(Process { child })
    }

    /// Runs `f` on a thread that has entered this namespace. Sockets opened there stay in
    /// the namespace after the thread ends; interface names and indexes are the namespace's.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let file = File::open(format!("{NETNS_DIR}/{}", self.name))
            .with_context(|| format!("opening namespace {}", self.name))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns on a valid namespace fd affects this thread only.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(io::Error::last_os_error())
                            .with_context(|| format!("setns into {}", self.name));
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Starts a thread that lives in this namespace (for long-running probes).
    pub fn thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<std::thread::JoinHandle<Result<T>>> {
        let file = File::open(format!("{NETNS_DIR}/{}", self.name))
            .with_context(|| format!("opening namespace {}", self.name))?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            // SAFETY: setns on a valid namespace fd affects this thread only.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error())
                    .with_context(|| format!("setns into {name}"));
            }
            Ok(f())
        }))
    }

    /// Kills every process in the namespace (keeps the namespace).
    pub fn kill_all(&self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: plain kill(2).
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_all();
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Names of the namespaces that exist now.
pub fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A child process, killed and reaped on drop.
#[derive(Debug)]
pub struct Process {
    pub child: Child,
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap: the process gets no chance to clean up (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
