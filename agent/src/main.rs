use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use clap::Parser;
use vrrp_agent::{
    config::{self, ReadOptions, validate::System},
    io::runtime::{Control, Options, Runtime},
    logging::Logger,
};

const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";
const DEFAULT_PID_FILE: &str = "/run/vrrp-agent.pid";

/// vrrp-agent: keepalived's VRRP side, with an XDP data path. Reads keepalived.conf.
#[derive(Parser, Debug)]
#[command(name = "vrrp-agent", version, about, disable_version_flag = true)]
struct Cli {
    /// Print the version and exit (keepalived's -v).
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),

    /// Use the specified configuration file (keepalived's -f).
    #[arg(short = 'f', long = "use-file", value_name = "FILE")]
    use_file: Option<PathBuf>,

    /// Check the configuration (and what it needs from this host) and exit with keepalived's
    /// status: 0 fine, 2 a keyword missing its value, 4 cannot run, 5 errors or warnings,
    /// 6 script security or a required file missing. With =FILE, the messages go to FILE
    /// instead of stderr (as keepalived's).
    #[arg(short = 't', long = "config-test", value_name = "FILE", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    config_test: Option<String>,

    /// Configuration id for `@ID` lines (keepalived's -i; default: the short host name).
    #[arg(short = 'i', long = "config-id", value_name = "ID")]
    config_id: Option<String>,

    /// Print the effective configuration (after includes, parameters and defaults) as JSON.
    #[arg(long)]
    dump_config: bool,

    /// Stay in the foreground (keepalived's -n).
    #[arg(short = 'n', long = "dont-fork")]
    dont_fork: bool,

    /// Log to the console (stderr) too (keepalived's -l).
    #[arg(short = 'l', long = "log-console")]
    log_console: bool,

    /// Detailed log messages (keepalived's -D).
    #[arg(short = 'D', long = "log-detail")]
    log_detail: bool,

    /// Also log to FILE (keepalived's -g).
    #[arg(short = 'g', long = "log-file", value_name = "FILE")]
    log_file: Option<PathBuf>,

    /// Dump the effective configuration to the log at start (keepalived's -d).
    #[arg(short = 'd', long = "dump-conf")]
    dump_conf: bool,

    /// keepalived's SNMP subagent (-x): not supported; accepted so unit files keep working.
    #[arg(short = 'x', long = "snmp")]
    snmp: bool,

    /// Do not log to syslog (keepalived's -G).
    #[arg(short = 'G', long = "no-syslog")]
    no_syslog: bool,

    /// Run the VRRP side only, not the virtual servers (keepalived's -P).
    #[arg(short = 'P', long = "vrrp")]
    vrrp_only: bool,

    /// Syslog facility local0..local7 (keepalived's -S N; default daemon).
    #[arg(short = 'S', long = "log-facility", value_name = "N", value_parser = clap::value_parser!(u8).range(0..=7))]
    log_facility: Option<u8>,

    /// Main pid file (keepalived's -p; default /run/vrrp-agent.pid).
    #[arg(short = 'p', long = "pid", value_name = "FILE")]
    pid_file: Option<PathBuf>,

    /// VRRP pid file (keepalived's -r): vrrp-agent is one process, so it holds the same pid.
    #[arg(short = 'r', long = "vrrp_pid", value_name = "FILE")]
    vrrp_pid_file: Option<PathBuf>,

    /// Run without the XDP program (for hosts where BPF is not allowed).
    #[arg(long)]
    no_xdp: bool,

    /// What runs the virtual servers: the XDP balancer, with IPVS (where the kernel has it)
    /// for what XDP cannot run (auto); XDP only; or IPVS only, as keepalived.
    #[arg(long, value_name = "BACKEND", value_enum, default_value_t)]
    lvs_backend: vrrp_agent::lvs::BackendChoice,

    /// The control socket's name (an abstract unix socket, one per network namespace).
    #[arg(long, value_name = "NAME", default_value = vrrp_agent::ops::control::DEFAULT_SOCKET)]
    socket: String,

    /// Print the signal number for STOP, RELOAD, DATA, STATS, STATS_CLEAR or JSON, and exit
    /// (keepalived's --signum).
    #[arg(long, value_name = "SIGFUNC")]
    signum: Option<String>,

    /// Serve Prometheus/OpenMetrics at http://ADDR:PORT/metrics (off by default; e.g.
    /// 127.0.0.1:9650).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Show the running agent's instances (state, priorities, master, last advert, VIPs,
    /// trackers, counters), its virtual servers and their real servers, and its XDP mode and
    /// counters. Root only.
    Status {
        /// The raw JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The control socket's name.
        #[arg(long, value_name = "NAME", default_value = vrrp_agent::ops::control::DEFAULT_SOCKET)]
        socket: String,
    },
    /// Print the man page (roff) on stdout (used to build the package).
    #[command(hide = true)]
    Man,
    /// Print shell completions for SHELL on stdout (used to build the package).
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

/// keepalived's signal for a function name (`--signum`).
fn signum(name: &str) -> Option<i32> {
    Some(match name {
        "STOP" => libc::SIGTERM,
        "RELOAD" => libc::SIGHUP,
        "DATA" => libc::SIGUSR1,
        "STATS" => libc::SIGUSR2,
        "STATS_CLEAR" => libc::SIGRTMAX() - 1,
        "JSON" => libc::SIGRTMIN() + 2,
        _ => return None,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(name) = &cli.signum {
        // keepalived's --signum: the number to `kill -s` for a function.
        return match signum(name) {
            Some(n) => {
                println!("{n}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("Unknown sigfunc {name}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Some(Command::Status { json, socket }) => return status(*json, socket),
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).section("8");
            return match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            };
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "vrrp-agent", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    let running = cli.config_test.is_none() && !cli.dump_config;
    // Where the final error goes besides the log: stderr, unless the log already writes there.
    let also_stderr = running && !cli.log_console;
    if running {
        Logger::init_with_file(
            cli.log_console,
            !cli.no_syslog,
            cli.log_file.as_deref(),
            cli.log_facility,
        );
    } else {
        Logger::init(true, false);
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log::error!("{e:#}");
            if also_stderr {
                eprintln!("vrrp-agent: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `vrrp-agent status`: asks the agent of this network namespace.
fn status(json: bool, socket: &str) -> ExitCode {
    match vrrp_agent::ops::control::request_status(socket) {
        Ok(v) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", vrrp_agent::ops::control::render(&v));
            }
            ExitCode::SUCCESS
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            eprintln!(
                "vrrp-agent status: no vrrp-agent is running in this network namespace (control socket @{socket})"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vrrp-agent status: @{socket}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let path = cli
        .use_file
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG.into());
    let mut opts = ReadOptions::default();
    if let Some(id) = &cli.config_id {
        opts.config_id = id.clone();
    }
    let loaded = config::load(&path, &opts, &System);
    let messages: String = loaded.diags.list.iter().map(|d| format!("{d}\n")).collect();
    let code = loaded.exit_code();
    if cli.config_test.is_some() || cli.dump_config {
        match cli.config_test.as_deref() {
            Some(out) if !out.is_empty() => {
                std::fs::write(out, &messages)
                    .with_context(|| format!("writing the config test messages to {out}"))?;
            }
            _ => eprint!("{messages}"),
        }
        if cli.dump_config {
            println!("{}", serde_json::to_string_pretty(&loaded.config)?);
        }
        return Ok(code as u8);
    }
    // Running: keepalived reports what is wrong with the file and runs what it can.
    for d in &loaded.diags.list {
        log::warn!("{d}");
    }
    if cli.vrrp_only && !loaded.config.virtual_servers.is_empty() {
        log::info!("-P (VRRP only): the virtual servers are not run");
    }
    let _ = cli.log_facility;
    if cli.snmp {
        log::warn!("SNMP (-x) is not supported by vrrp-agent: use --metrics-listen");
    }
    if cli.dump_conf {
        // keepalived's -d: the configuration as it will run, in keepalived's syntax.
        for line in config::print::print(&loaded.config).lines() {
            log::info!("{line}");
        }
    }
    let pid_files: Vec<PathBuf> = [
        Some(
            cli.pid_file
                .clone()
                .unwrap_or_else(|| DEFAULT_PID_FILE.into()),
        ),
        cli.vrrp_pid_file.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Refuse a second agent before forking, so the caller sees the failure.
    for f in &pid_files {
        if let Some(pid) = running_pid(f) {
            bail!("{}: vrrp-agent is already running (pid {pid})", f.display());
        }
    }
    if !cli.dont_fork {
        daemonize()?;
    }
    for (n, f) in pid_files.iter().enumerate() {
        if let Err(e) = write_pid_file(f) {
            for written in &pid_files[..n] {
                let _ = std::fs::remove_file(written);
            }
            return Err(e);
        }
    }
    log::info!("Starting vrrp-agent {} (VRRP)", env!("CARGO_PKG_VERSION"));
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(async {
            // Signals first: a SIGTERM during start-up is a graceful stop too.
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(signals(tx.clone(), path.clone(), opts.clone()));
            if let Some(addr) = cli.metrics_listen {
                let l = vrrp_agent::ops::metrics::bind(addr)
                    .await
                    .with_context(|| format!("--metrics-listen {addr}"))?;
                log::info!("Serving metrics on http://{addr}/metrics");
                tokio::spawn(vrrp_agent::ops::metrics::serve(l, tx.clone()));
            }
            match vrrp_agent::ops::control::bind(&cli.socket) {
                Ok(l) => {
                    tokio::spawn(vrrp_agent::ops::control::serve(l, tx));
                }
                Err(e) => log::warn!(
                    "control socket @{}: {e} (another vrrp-agent in this network namespace?): `vrrp-agent status` cannot reach this one",
                    cli.socket
                ),
            }
            let rt = Runtime::new(
                &loaded.config,
                Options {
                    log_detail: cli.log_detail,
                    no_xdp: cli.no_xdp,
                    lvs: !cli.vrrp_only,
                    lvs_backend: cli.lvs_backend,
                },
            )
            .await?;
            // Config loaded, sockets open, XDP attached: ready (systemd Type=notify).
            vrrp_agent::ops::systemd::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
            rt.run(
                Duration::from_secs_f64(loaded.config.global.vrrp_startup_delay.max(0.0)),
                rx,
            )
            .await
        });
    for f in &pid_files {
        let _ = std::fs::remove_file(f);
    }
    result?;
    log::info!("Stopped vrrp-agent");
    Ok(0)
}

/// keepalived's signals: SIGTERM / SIGINT stop gracefully (a second one releases at once),
/// SIGHUP reloads (the file read here, off the VRRP loop), SIGUSR1 / SIGUSR2 / JSON /
/// STATS_CLEAR write keepalived's dump files.
async fn signals(
    tx: tokio::sync::mpsc::UnboundedSender<Control>,
    path: PathBuf,
    opts: ReadOptions,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (
        Ok(mut term),
        Ok(mut int),
        Ok(mut hup),
        Ok(mut usr1),
        Ok(mut usr2),
        Ok(mut json),
        Ok(mut clear),
    ) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::from_raw(
            signum("JSON").unwrap_or(libc::SIGRTMIN() + 2),
        )),
        signal(SignalKind::from_raw(
            signum("STATS_CLEAR").unwrap_or(libc::SIGRTMAX() - 1),
        )),
    )
    else {
        log::error!("cannot install signal handlers; stopping");
        let _ = tx.send(Control::Stop);
        return;
    };
    // Runs for the life of the process: a second SIGTERM during a graceful stop's hand-over
    // releases at once.
    loop {
        let stop = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => true,
            _ = hup.recv() => {
                // Read off the loop (a big configuration takes milliseconds), then applied by it.
                let (p, o) = (path.clone(), opts.clone());
                match tokio::task::spawn_blocking(move || config::load(&p, &o, &System)).await {
                    Ok(loaded) => { let _ = tx.send(Control::Reload(Box::new(loaded))); }
                    Err(e) => log::warn!("Reload: reading {}: {e}", path.display()),
                }
                false
            }
            _ = usr1.recv() => { let _ = tx.send(Control::DumpData); false }
            _ = usr2.recv() => { let _ = tx.send(Control::DumpStats); false }
            _ = json.recv() => { let _ = tx.send(Control::DumpJson); false }
            _ = clear.recv() => { let _ = tx.send(Control::DumpStatsClear); false }
        };
        if stop {
            log::info!("Stopping");
            vrrp_agent::ops::systemd::notify("STOPPING=1");
            if tx.send(Control::Stop).is_err() {
                return;
            }
        }
    }
}

/// keepalived's default: detach into the background (fork, new session, stdio to /dev/null).
fn daemonize() -> anyhow::Result<()> {
    // SAFETY: single-threaded at this point (no runtime yet); the parent exits at once.
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain syscalls on this process.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    std::env::set_current_dir("/").context("chdir /")?;
    Ok(())
}

/// The pid in `path` if that process still runs (keepalived refuses to start over it).
fn running_pid(path: &std::path::Path) -> Option<i32> {
    let pid = std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()?;
    (pid != std::process::id() as i32 && std::path::Path::new(&format!("/proc/{pid}")).exists())
        .then_some(pid)
}

/// Writes our pid, refusing to start over a running instance (as keepalived does).
fn write_pid_file(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(pid) = running_pid(path) {
        bail!(
            "{}: vrrp-agent is already running (pid {pid})",
            path.display()
        );
    }
    std::fs::write(path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing pid file {}", path.display()))
}
