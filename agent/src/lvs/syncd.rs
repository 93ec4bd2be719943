//! keepalived's `lvs_sync_daemon`: IPVS's connection sync daemon, so the director that takes
//! over knows the connections the other one balanced. With an instance named, the daemon
//! follows it (keepalived's vrrp side): backup at start, master while the instance is master,
//! backup again when it leaves; without one, both roles run from the start (keepalived's
//! checker side). Stopped when the agent stops.

use std::net::IpAddr;

use log::{info, warn};

use crate::{
    config::model::Config,
    netlink::ipvs::{Daemon, Ipvs},
};

/// `lvs_sync_daemon IFNAME [inst INSTANCE] [id N] [maxlen N] [port N] [ttl N] [group ADDR]`,
/// or the old `IFNAME INSTANCE [SYNCID]`. Values the config check reported invalid are left
/// at the kernel's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncConfig {
    pub ifname: String,
    pub instance: Option<String>,
    pub syncid: Option<u32>,
    pub maxlen: u16,
    pub port: u16,
    pub ttl: u8,
    pub group: Option<IpAddr>,
}

impl SyncConfig {
    /// The configuration's `lvs_sync_daemon` (the last one written), if any.
    pub fn of(config: &Config) -> Option<SyncConfig> {
        let words = config.global.other.get("lvs_sync_daemon")?.last()?;
        let (ifname, rest) = words.split_first()?;
        if ifname.len() >= 16 {
            return None;
        }
        let mut c = SyncConfig {
            ifname: ifname.clone(),
            ..Default::default()
        };
        let known = ["inst", "id", "maxlen", "port", "ttl", "group"];
        match rest {
            // The old positional form.
            [inst, more @ ..] if !known.contains(&inst.as_str()) => {
                c.instance = Some(inst.clone());
                c.syncid = more
                    .first()
                    .and_then(|v| v.parse().ok())
                    .filter(|v| *v <= 255);
            }
            _ => {
                let mut it = rest.iter();
                while let Some(option) = it.next() {
                    let Some(v) = it.next() else { break };
                    match option.as_str() {
                        "inst" => c.instance = Some(v.clone()),
                        "id" => c.syncid = v.parse().ok().filter(|v| *v <= 255),
                        "maxlen" => c.maxlen = v.parse().ok().filter(|v| *v <= 65507).unwrap_or(0),
                        "port" => c.port = v.parse().unwrap_or(0),
                        "ttl" => c.ttl = v.parse().unwrap_or(0),
                        "group" => {
                            c.group = v.split(['-', '/']).next().and_then(|g| g.parse().ok())
                        }
                        _ => {}
                    }
                }
            }
        }
        Some(c)
    }
}

/// The running daemon(s).
pub struct SyncDaemon {
    config: SyncConfig,
    daemon: Daemon,
    ipvs: Ipvs,
    /// The roles running: (master, backup).
    running: (bool, bool),
}

impl SyncDaemon {
    /// Starts it: backup when it follows an instance (whose VRID is the default sync id),
    /// else both roles. Any left by an earlier run are stopped first, as keepalived does.
    pub fn start(config: SyncConfig, vrid: Option<u8>) -> Option<SyncDaemon> {
        let ipvs = match Ipvs::open() {
            Ok(i) => i,
            Err(e) => {
                warn!("lvs_sync_daemon: {e}; not started");
                return None;
            }
        };
        let daemon = Daemon {
            ifname: config.ifname.clone(),
            syncid: config
                .syncid
                .or_else(|| config.instance.as_ref().and(vrid.map(u32::from)))
                .unwrap_or(0),
            maxlen: config.maxlen,
            port: config.port,
            ttl: config.ttl,
            group: config.group,
        };
        let _ = ipvs.stop_daemon(true);
        let _ = ipvs.stop_daemon(false);
        let mut s = SyncDaemon {
            running: (false, false),
            daemon,
            ipvs,
            config,
        };
        let both = s.config.instance.is_none();
        s.set(both, true);
        Some(s)
    }

    /// The instance it follows, if any.
    pub fn instance(&self) -> Option<&str> {
        self.config.instance.as_deref()
    }

    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Its instance became master (`true`) or left master: the roles change over.
    pub fn follow(&mut self, instance: &str, master: bool) {
        if self.config.instance.as_deref() == Some(instance) && self.running.0 != master {
            self.set(master, !master);
        }
    }

    /// Stops what runs.
    pub fn stop(mut self) {
        self.set(false, false);
    }

    fn set(&mut self, master: bool, backup: bool) {
        // Stop first: the kernel takes one daemon per role.
        for (role, want, running) in [
            (true, master, self.running.0),
            (false, backup, self.running.1),
        ] {
            if running && !want {
                match self.ipvs.stop_daemon(role) {
                    Ok(()) => info!(
                        "IPVS {} sync daemon stopped",
                        if role { "master" } else { "backup" }
                    ),
                    Err(e) => warn!("lvs_sync_daemon: {e}"),
                }
            }
        }
        for (role, want, running) in [
            (true, master, self.running.0),
            (false, backup, self.running.1),
        ] {
            if want && !running {
                match self.ipvs.start_daemon(role, &self.daemon) {
                    Ok(()) => info!(
                        "IPVS {} sync daemon started on {} (syncid {})",
                        if role { "master" } else { "backup" },
                        self.daemon.ifname,
                        self.daemon.syncid
                    ),
                    Err(e) => warn!("lvs_sync_daemon: {e}"),
                }
            }
        }
        self.running = (master, backup);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ReadOptions, validate::Unchecked};

    fn of(line: &str) -> Option<SyncConfig> {
        let text = format!("global_defs {{\n  {line}\n}}\n");
        let loaded = config::load_str(
            std::path::Path::new("/t/k.conf"),
            text.as_bytes(),
            &ReadOptions::default(),
            &Unchecked,
        );
        SyncConfig::of(&loaded.config)
    }

    #[test]
    fn keepalived_forms() {
        assert_eq!(
            of("lvs_sync_daemon eth0 inst VI_1 id 10 maxlen 1472 port 8848 ttl 1 group 224.0.0.81"),
            Some(SyncConfig {
                ifname: "eth0".into(),
                instance: Some("VI_1".into()),
                syncid: Some(10),
                maxlen: 1472,
                port: 8848,
                ttl: 1,
                group: Some("224.0.0.81".parse().unwrap()),
            })
        );
        // The old positional form, with and without its sync id.
        let old = of("lvs_sync_daemon eth0 VI_1 7").unwrap();
        assert_eq!(
            (old.instance.as_deref(), old.syncid),
            (Some("VI_1"), Some(7))
        );
        let bare = of("lvs_sync_daemon eth1").unwrap();
        assert_eq!(
            (bare.ifname.as_str(), bare.instance, bare.syncid),
            ("eth1", None, None)
        );
        // An id out of range is left to the default (the VRID).
        assert_eq!(
            of("lvs_sync_daemon eth0 inst VI_1 id 300").unwrap().syncid,
            None
        );
        assert_eq!(of("lvs_sync_daemon"), None);
    }
}
