use anyhow::bail;
use clap::Parser;

/// vrrp-agent: keepalived's VRRP side, with an XDP data path.
#[derive(Parser, Debug)]
#[command(name = "vrrp-agent", version, about)]
struct Cli {
    /// Use the specified configuration file (keepalived's -f).
    #[arg(
        short = 'f',
        long = "use-file",
        default_value = "/etc/keepalived/keepalived.conf"
    )]
    config: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // The XDP data path exists (vrrp_agent::xdp); reading keepalived.conf and running VRRP
    // instances arrive with the config and VRRP engine issues. Until then, refuse clearly
    // rather than pretend to protect anything.
    bail!(
        "{}: running VRRP instances is not implemented yet (config and VRRP engine are still \
         to come); nothing was started",
        cli.config.display()
    )
}
