use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::Parser;
use vrrp_agent::config::{self, ReadOptions, validate::System};

const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";

/// vrrp-agent: keepalived's VRRP side, with an XDP data path. Reads keepalived.conf.
#[derive(Parser, Debug)]
#[command(name = "vrrp-agent", version, about)]
struct Cli {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vrrp-agent: {e:#}");
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
    match cli.config_test.as_deref() {
        Some(out) if !out.is_empty() => {
            std::fs::write(out, &messages)
                .with_context(|| format!("writing the config test messages to {out}"))?;
        }
        _ => eprint!("{messages}"),
    }
    let code = loaded.exit_code();
    if cli.config_test.is_some() {
        return Ok(code as u8);
    }
    if cli.dump_config {
        println!("{}", serde_json::to_string_pretty(&loaded.config)?);
        return Ok(code as u8);
    }
    if !loaded.config.virtual_servers.is_empty() || !loaded.config.virtual_server_groups.is_empty()
    {
        log::warn!(
            "{}: virtual_server blocks are read but not active: vrrp-agent does not run the LVS side yet",
            path.display()
        );
    }
    // The XDP data path exists (vrrp_agent::xdp) and the config is read; running VRRP
    // instances arrives with the VRRP engine. Refuse clearly rather than pretend.
    bail!(
        "{}: running VRRP instances is not implemented yet (the VRRP engine is still to come); \
         nothing was started",
        path.display()
    )
}
