//! Round trip: model → printed keepalived.conf → model gives the same model (locations
//! aside), for every corpus config and for many generated models.

use crate::test_rng::Rng;
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use super::{
    diag::{Diags, Loc},
    lexer::{ReadOptions, read_str},
    model::*,
    parse, print, tree,
};

fn parse_only(text: &str) -> (Config, Diags) {
    let mut diags = Diags::default();
    let lines = read_str(
        Path::new("/rt/keepalived.conf"),
        text.as_bytes(),
        &ReadOptions {
            config_id: "rt".into(),
            follow_includes: true,
        },
        &mut diags,
    );
    let stmts = tree::build(&lines, &mut diags);
    (parse::build(&stmts, &mut diags), diags)
}

/// The model as JSON without locations.
fn shape(config: &Config) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.remove("at");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(config).expect("model serialises");
    strip(&mut v);
    v
}

fn assert_round_trip(config: &Config, what: &str) {
    let text = print::print(config);
    let (again, diags) = parse_only(&text);
    assert!(
        diags.stopped.is_none(),
        "{what}: printed text does not read back: {:?}\n{text}",
        diags.list
    );
    let (a, b) = (shape(config), shape(&again));
    if a != b {
        panic!(
            "{what}: round trip changed the model\nprinted:\n{text}\nbefore: {}\nafter:  {}",
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}

#[test]
fn every_corpus_config_round_trips() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let (config, diags) = parse_only(&text);
            if diags.stopped.is_some() {
                continue; // keepalived stops reading these; nothing complete to print.
            }
            assert_round_trip(&config, &path.display().to_string());
            n += 1;
        }
    }
    assert!(n >= 40, "only {n} corpus configs read completely");
}

impl Rng {
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn chance(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn name(&mut self) -> String {
        let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789_.-";
        let len = 1 + self.below(10) as usize;
        let mut s = String::from("n");
        s.extend((0..len).map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char));
        s
    }
    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.chance() { Some(f(self)) } else { None }
    }
    /// A number of seconds with a finite decimal form, in [lo, hi].
    fn secs(&mut self, lo: f64, hi: f64) -> f64 {
        let steps = ((hi - lo) * 1000.0) as u64;
        lo + self.below(steps + 1) as f64 / 1000.0
    }
    fn v4(&mut self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self.next() as u32))
    }
    fn v6(&mut self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(
            ((self.next() as u128) << 64) | self.next() as u128,
        ))
    }
    fn tracked(&mut self) -> Vec<Tracked> {
        (0..self.below(3))
            .map(|_| Tracked {
                name: self.name(),
                weight: self.maybe(|r| r.range(-254, 254) as i32),
                reverse: self.maybe(Rng::chance),
                at: loc(),
            })
            .collect()
    }
    fn notify_script(&mut self) -> NotifyScript {
        let argv = self.argv();
        let user = self.maybe(Rng::name);
        let group = if user.is_some() {
            self.maybe(Rng::name)
        } else {
            None
        };
        NotifyScript { argv, user, group }
    }

    fn argv(&mut self) -> Vec<String> {
        let mut argv = vec![format!("/usr/bin/{}", self.name())];
        argv.extend((0..self.below(3)).map(|_| self.name()));
        argv
    }
}

fn loc() -> Loc {
    Loc {
        file: std::sync::Arc::new("/rt/keepalived.conf".into()),
        line: 1,
    }
}

fn generate(rng: &mut Rng) -> Config {
    let mut c = Config::default();
    let g = &mut c.global;
    g.router_id = rng.maybe(Rng::name);
    g.notification_email = (0..rng.below(3))
        .map(|_| format!("{}@example.com", rng.name()))
        .collect();
    g.smtp_server = rng.maybe(|r| SmtpServer {
        host: r.name(),
        port: r.range(1, 65535) as u16,
    });
    g.smtp_connect_timeout = rng.range(1, 100_000) as u32;
    g.smtp_alert = rng.maybe(|r| r.chance());
    g.smtp_alert_checker = rng.maybe(|r| r.chance());
    g.no_checker_emails = rng.chance();
    g.checker_log_all_failures = rng.chance();
    g.enable_script_security = rng.chance();
    g.vrrp_version = rng.range(2, 3) as u8;
    g.vrrp_strict = rng.chance();
    g.vrrp_garp_master_delay = rng.range(0, 255) as u32;
    g.vrrp_garp_master_repeat = rng.range(1, 255) as u32;
    g.vrrp_garp_interval = rng.secs(0.0, 1.0);
    g.vrrp_down_timer_adverts = rng.range(1, 100) as u32;
    g.vrrp_startup_delay = rng.secs(0.0, 3600.0);
    g.vrrp_lower_prio_no_advert = rng.chance();
    let version = g.vrrp_version;
    for _ in 0..rng.below(3) {
        c.scripts.push(VrrpScript {
            name: rng.name(),
            at: loc(),
            script: rng.argv(),
            interval: rng.secs(0.001, 100.0),
            timeout: rng.maybe(|r| r.secs(0.001, 100.0)),
            weight: rng.range(-253, 253) as i32,
            weight_reverse: rng.chance(),
            rise: rng.range(1, 10) as u32,
            fall: rng.range(1, 10) as u32,
            init_fail: rng.chance(),
            user: rng.maybe(Rng::name),
            group: None,
            other: Other::new(),
        });
    }
    for _ in 0..rng.below(5) {
        let mut i = Instance::new(rng.name(), loc(), version);
        i.state = if rng.chance() {
            State::Master
        } else {
            State::Backup
        };
        i.interface = rng.maybe(Rng::name);
        i.virtual_router_id = rng.maybe(|r| r.range(1, 255) as u8);
        if rng.chance() {
            i.priority = rng.range(1, 255) as u8;
            i.priority_set = true;
        }
        i.version = rng.range(2, 3) as u8;
        i.advert_int_cs = if i.version == 3 {
            rng.range(1, 4095) as u32
        } else {
            rng.range(1, 255) as u32 * 100
        };
        i.nopreempt = rng.chance();
        i.preempt_delay = rng.secs(0.0, 1000.0);
        i.auth = match rng.below(3) {
            0 => Auth::None,
            1 => Auth::Pass(rng.name().chars().take(8).collect()),
            _ => Auth::Ah(rng.name().chars().take(8).collect()),
        };
        let v6 = rng.chance();
        for _ in 0..rng.below(4) {
            let addr = if v6 { rng.v6() } else { rng.v4() };
            i.virtual_ipaddress.push(VirtualAddress {
                addr,
                prefix: rng.range(0, if v6 { 128 } else { 32 }) as u8,
                brd: if v6 { None } else { rng.maybe(Rng::v4) },
                dev: rng.maybe(Rng::name),
                scope: rng.maybe(Rng::name),
                label: rng.maybe(Rng::name),
                peer: None,
                no_track: rng.chance(),
                preferred_lft: rng.maybe(|r| r.range(0, 1000) as u32),
                other: Vec::new(),
                at: loc(),
            });
        }
        i.track_interfaces = rng.tracked();
        i.track_scripts = rng.tracked();
        i.mcast_src_ip = rng.maybe(Rng::v4);
        i.unicast_peers = (0..rng.below(3))
            .map(|_| UnicastPeer {
                addr: rng.v4(),
                min_ttl: None,
                max_ttl: rng.maybe(|r| r.range(1, 255) as u8),
            })
            .collect();
        i.unicast_ttl = rng.range(1, 255) as u8;
        i.accept = rng.maybe(Rng::chance);
        i.garp_master_delay = rng.maybe(|r| r.range(0, 255) as u32);
        i.garp_master_refresh = rng.maybe(|r| r.range(0, 100_000) as u32);
        i.notify.master = rng.maybe(Rng::notify_script);
        i.notify.generic = rng.maybe(Rng::notify_script);
        i.smtp_alert = rng.chance();
        i.strict_mode = rng.maybe(Rng::chance);
        i.v3_checksum_as_v2 = rng.chance();
        c.instances.push(i);
    }
    for _ in 0..rng.below(2) {
        let members = c.instances.iter().map(|i| i.name.clone()).collect();
        c.sync_groups.push(SyncGroup {
            name: rng.name(),
            at: loc(),
            members,
            track_scripts: rng.tracked(),
            track_interfaces: Vec::new(),
            track_files: Vec::new(),
            track_processes: Vec::new(),
            track_bfds: rng.tracked(),
            notify: Notify {
                backup: rng.maybe(Rng::notify_script),
                ..Notify::default()
            },
            smtp_alert: rng.chance(),
            sync_group_tracking_weight: rng.chance(),
            other: Other::new(),
        });
    }
    c
}

#[test]
fn generated_models_round_trip() {
    for seed in 1..=500u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let config = generate(&mut rng);
        assert_round_trip(&config, &format!("seed {seed}"));
    }
}
