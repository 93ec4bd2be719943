//! keepalived.conf: the language (lexer, tree), the typed model, and validation with
//! keepalived's diagnostics. No I/O but reading the config files (and, for the checks of `-t`,
//! looking at the host through [`validate::Host`]).

pub mod diag;
pub mod lexer;
pub mod lvs;
pub mod model;
pub mod parse;
pub mod print;
pub mod specs;
pub mod tree;
pub mod validate;

use std::path::Path;

pub use diag::{Diagnostic, Diags};
pub use lexer::ReadOptions;
pub use model::Config;

/// A configuration as read, with everything said about it.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub diags: Diags,
}

impl Loaded {
    /// The exit status keepalived 2.2.7's `-t` gives for this file.
    pub fn exit_code(&self) -> i32 {
        self.diags.exit_code()
    }
}

/// Reads `path` (and its includes), builds the model and applies keepalived's rules, looking
/// at `host` for interfaces and scripts.
pub fn load(path: &Path, opts: &ReadOptions, host: &dyn validate::Host) -> Loaded {
    let mut diags = Diags::default();
    if !path.exists() {
        // keepalived -t exits 0 here; a config test of nothing must not pass, so vrrp-agent
        // exits with keepalived's own "no config" status instead (README: differences).
        diags.stop(
            diag::EXIT_NO_CONFIG,
            None,
            format!("Config files missing '{}'.", path.display()),
        );
        return Loaded {
            config: Config::default(),
            diags,
        };
    }
    let lines = lexer::read(path, opts, &mut diags);
    from_lines(&lines, host, diags)
}

/// As [`load`], for config text in memory (tests, fuzzing); `name` anchors relative includes.
pub fn load_str(name: &Path, text: &[u8], opts: &ReadOptions, host: &dyn validate::Host) -> Loaded {
    let mut diags = Diags::default();
    let lines = lexer::read_str(name, text, opts, &mut diags);
    from_lines(&lines, host, diags)
}

fn from_lines(lines: &[lexer::Line], host: &dyn validate::Host, mut diags: Diags) -> Loaded {
    let stmts = tree::build(lines, &mut diags);
    let mut config = parse::build(&stmts, &mut diags);
    if diags.stopped.is_none() {
        validate::validate(&mut config, host, &mut diags);
    }
    Loaded { config, diags }
}

#[cfg(test)]
mod round_trip;

#[cfg(test)]
mod hostile_input {
    //! Whatever the file holds, loading it ends, in bounded time and memory, with a verdict and
    //! located diagnostics: never a panic.
    use std::time::{Duration, Instant};

    use super::*;

    fn load_bytes(text: &[u8]) -> Loaded {
        let started = Instant::now();
        let loaded = load_str(
            Path::new("/nonexistent/keepalived.conf"),
            text,
            &ReadOptions {
                config_id: "x".into(),
                follow_includes: true,
            },
            &validate::Unchecked,
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        loaded
    }

    #[test]
    fn invalid_utf8_is_read_lossily() {
        let loaded = load_bytes(
            b"vrrp_instance V\xff\xfe {\n interface eth0\n virtual_router_id 5\xc3\n}\n",
        );
        assert_eq!(loaded.config.instances.len(), 1);
        assert_eq!(
            loaded.exit_code(),
            diag::EXIT_CONFIG,
            "{:?}",
            loaded.diags.list
        );
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut text = "a {\n".repeat(200_000);
        text.push_str(&"}\n".repeat(200_000));
        let loaded = load_bytes(text.as_bytes());
        assert!(
            loaded
                .diags
                .list
                .iter()
                .any(|d| d.message.contains("nested deeper"))
        );
        let unbalanced = "x {".repeat(100_000);
        let loaded = load_bytes(unbalanced.as_bytes());
        assert_eq!(loaded.exit_code(), diag::EXIT_CONFIG);
    }

    #[test]
    fn huge_numbers_are_errors_not_overflows() {
        let text = "global_defs {\n vrrp_garp_master_refresh 99999999999999999999999999\n smtp_connect_timeout -99999999999999999999\n}\n\
                    vrrp_instance V {\n interface eth0\n virtual_router_id 1e308\n priority 18446744073709551617\n advert_int 1e309\n preempt_delay NaN\n}\n";
        let loaded = load_bytes(text.as_bytes());
        assert_eq!(loaded.exit_code(), diag::EXIT_CONFIG);
        assert!(loaded.diags.list.len() >= 5, "{:?}", loaded.diags.list);
        assert!(
            loaded
                .diags
                .list
                .iter()
                .all(|d| d.loc.is_some() || d.message.starts_with('('))
        );
    }

    fn load_file(path: &Path) -> Loaded {
        load(
            path,
            &ReadOptions {
                config_id: "x".into(),
                follow_includes: true,
            },
            &validate::Unchecked,
        )
    }

    #[test]
    fn include_loops_end() {
        let dir = std::env::temp_dir().join(format!("vrrp-agent-loop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.conf"), "include b.conf\nrouter_id x\n").unwrap();
        std::fs::write(dir.join("b.conf"), "include a.conf\n").unwrap();
        let loaded = load_file(&dir.join("a.conf"));
        assert!(
            loaded
                .diags
                .list
                .iter()
                .any(|d| d.message.contains("includes itself"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_glob_matching_thousands_of_files_is_refused_quickly() {
        let dir = std::env::temp_dir().join(format!("vrrp-agent-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        for i in 0..lexer::MAX_GLOB_FILES + 10 {
            std::fs::write(dir.join(format!("d/{i}.conf")), "").unwrap();
        }
        std::fs::write(dir.join("main.conf"), "include d/*.conf\n").unwrap();
        let loaded = load_file(&dir.join("main.conf"));
        assert!(
            loaded
                .diags
                .list
                .iter()
                .any(|d| d.message.contains("matches")),
            "{:?}",
            loaded.diags.list
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_prefix_of_a_seed_config_loads() {
        let seed = include_bytes!("../../../tests/configs/seed-lvs-dr-master.conf");
        for cut in 0..seed.len() {
            let _ = load_bytes(&seed[..cut]);
        }
    }

    #[test]
    fn exploding_parameters_and_generators_are_cut_off() {
        let text = "$A=$A$A$A$A\n$B=${A}\nx $B\n~SEQ(i,0,9999999999) y\n~LST(v,$A,$A) $v\n";
        let loaded = load_bytes(text.as_bytes());
        assert_eq!(loaded.exit_code(), diag::EXIT_CONFIG);
    }
}

#[cfg(test)]
mod keyword_families {
    //! Defaults and ranges, keyword family by keyword family, as `--dump-config` shows them
    //! after keepalived's rules are applied.
    use serde_json::{Value, json};

    use super::*;

    fn check(text: &str, pointer: &str, want: Value, exit: i32) {
        let opts = ReadOptions {
            config_id: "t".into(),
            follow_includes: true,
        };
        let loaded = load_str(
            Path::new("/t/keepalived.conf"),
            text.as_bytes(),
            &opts,
            &validate::Unchecked,
        );
        let model = serde_json::to_value(&loaded.config).unwrap();
        // A pointer past the end of a list reads as null: "this entry was dropped".
        let got = model.pointer(pointer).unwrap_or(&Value::Null);
        assert_eq!(
            got, &want,
            "{pointer} for:\n{text}\n{:?}",
            loaded.diags.list
        );
        assert_eq!(
            loaded.exit_code(),
            exit,
            "exit for:\n{text}\n{:?}",
            loaded.diags.list
        );
    }

    const INSTANCE: &str = "vrrp_instance V {\n interface eth0\n virtual_router_id 7\n";

    /// An instance with `body`, and one VIP unless `body` has its own (keepalived reports an
    /// instance without VIPs).
    fn inst(body: &str) -> String {
        let vip = if body.contains("virtual_ipaddress") {
            ""
        } else {
            " virtual_ipaddress {\n 10.1.1.1\n }\n"
        };
        format!("{INSTANCE}{vip}{body}\n}}\n")
    }

    #[test]
    fn global_defs_defaults() {
        let text = "global_defs {\n}\n";
        for (pointer, want) in [
            ("/global/vrrp_version", json!(2)),
            ("/global/vrrp_garp_master_delay", json!(5)),
            ("/global/vrrp_garp_master_repeat", json!(5)),
            ("/global/vrrp_garp_master_refresh", json!(0)),
            ("/global/vrrp_down_timer_adverts", json!(3)),
            ("/global/smtp_connect_timeout", json!(30)),
            ("/global/vrrp_mcast_group4", json!("224.0.0.18")),
            ("/global/vrrp_mcast_group6", json!("ff02::12")),
            ("/global/enable_script_security", json!(false)),
        ] {
            check(text, pointer, want, 0);
        }
    }

    #[test]
    fn global_defs_values_and_ranges() {
        check(
            "global_defs {\n vrrp_version 3\n}\n",
            "/global/vrrp_version",
            json!(3),
            0,
        );
        check(
            "global_defs {\n vrrp_version 4\n}\n",
            "/global/vrrp_version",
            json!(2),
            5,
        );
        check(
            "global_defs {\n vrrp_garp_master_delay 256\n}\n",
            "/global/vrrp_garp_master_delay",
            json!(5),
            5,
        );
        check(
            "global_defs {\n smtp_server 10.0.0.1 2525\n}\n",
            "/global/smtp_server",
            json!({"host": "10.0.0.1", "port": 2525}),
            0,
        );
        check(
            "global_defs {\n smtp_server 10.0.0.1\n}\n",
            "/global/smtp_server/port",
            json!(25),
            0,
        );
        check(
            "global_defs {\n script_user nobody nogroup\n}\n",
            "/global/script_group",
            json!("nogroup"),
            0,
        );
        check(
            "global_defs {\n vrrp_mcast_group4 10.0.0.1\n}\n",
            "/global/vrrp_mcast_group4",
            json!("224.0.0.18"),
            5,
        );
    }

    #[test]
    fn instance_defaults() {
        let text = inst("");
        for (pointer, want) in [
            ("/instances/0/state", json!("BACKUP")),
            ("/instances/0/priority", json!(100)),
            ("/instances/0/advert_int_cs", json!(100)),
            ("/instances/0/version", json!(2)),
            ("/instances/0/nopreempt", json!(false)),
            ("/instances/0/preempt_delay", json!(0.0)),
            ("/instances/0/unicast_ttl", json!(255)),
            ("/instances/0/auth", json!("None")),
        ] {
            check(&text, pointer, want, 0);
        }
        // The global version is every instance's default, wherever global_defs stands.
        check(
            &format!("{}global_defs {{\n vrrp_version 3\n}}\n", inst("")),
            "/instances/0/version",
            json!(3),
            0,
        );
    }

    #[test]
    fn use_vmac_without_a_name_is_vrrp_vrid_even_before_the_vrid() {
        let text = "vrrp_instance V {\n interface eth0\n use_vmac\n virtual_router_id 42\n \
                    virtual_ipaddress {\n 10.1.1.1\n }\n}\n";
        check(text, "/instances/0/use_vmac", json!("vrrp.42"), 0);
        check(
            &inst("use_vmac vmac7"),
            "/instances/0/use_vmac",
            json!("vmac7"),
            0,
        );
    }

    #[test]
    fn priority_state_and_owner() {
        check(
            &inst("priority 150"),
            "/instances/0/priority",
            json!(150),
            0,
        );
        check(
            &inst("priority 255"),
            "/instances/0/priority",
            json!(255),
            0,
        );
        check(&inst("priority 0"), "/instances/0/priority", json!(100), 5);
        check(
            &inst("priority 256"),
            "/instances/0/priority",
            json!(100),
            5,
        );
        check(
            &inst("priority abc"),
            "/instances/0/priority",
            json!(100),
            5,
        );
        check(
            &inst("state MASTER"),
            "/instances/0/priority",
            json!(255),
            0,
        );
        check(
            &inst("state MASTER\n priority 120"),
            "/instances/0/priority",
            json!(120),
            0,
        );
        check(
            &inst("state master"),
            "/instances/0/state",
            json!("BACKUP"),
            5,
        );
        check(&inst("priority"), "/instances/0/priority", json!(100), 2);
    }

    #[test]
    fn vrid_and_advert_int_per_version() {
        check(
            "vrrp_instance V {\n interface eth0\n virtual_router_id 0\n virtual_ipaddress {\n 10.1.1.1\n }\n}\n",
            "/instances/0/virtual_router_id",
            json!(null),
            5,
        );
        check(
            "vrrp_instance V {\n interface eth0\n virtual_router_id 255\n virtual_ipaddress {\n 10.1.1.1\n }\n}\n",
            "/instances/0/virtual_router_id",
            json!(255),
            0,
        );
        check(
            &inst("advert_int 3"),
            "/instances/0/advert_int_cs",
            json!(300),
            0,
        );
        check(
            &inst("advert_int 0.5"),
            "/instances/0/advert_int_cs",
            json!(100),
            5,
        );
        check(
            &inst("advert_int 2.5"),
            "/instances/0/advert_int_cs",
            json!(300),
            5,
        );
        check(
            &inst("version 3\n advert_int 0.01"),
            "/instances/0/advert_int_cs",
            json!(1),
            0,
        );
        check(
            &inst("version 3\n advert_int 40.95"),
            "/instances/0/advert_int_cs",
            json!(4095),
            0,
        );
        check(
            &inst("version 3\n advert_int 41"),
            "/instances/0/advert_int_cs",
            json!(4095),
            5,
        );
        check(
            &inst("advert_int 0"),
            "/instances/0/advert_int_cs",
            json!(100),
            5,
        );
    }

    #[test]
    fn preemption() {
        check(&inst("nopreempt"), "/instances/0/nopreempt", json!(true), 0);
        check(
            &inst("state MASTER\n nopreempt"),
            "/instances/0/nopreempt",
            json!(false),
            5,
        );
        check(
            &inst("preempt_delay 300"),
            "/instances/0/preempt_delay",
            json!(300.0),
            0,
        );
        check(
            &inst("preempt_delay 1001"),
            "/instances/0/preempt_delay",
            json!(0.0),
            5,
        );
        check(
            &inst("nopreempt\n preempt_delay 10"),
            "/instances/0/preempt_delay",
            json!(0.0),
            5,
        );
    }

    #[test]
    fn authentication_by_version_and_strict_mode() {
        let pass = "authentication {\n auth_type PASS\n auth_pass 123456789\n }";
        check(
            &inst(pass),
            "/instances/0/auth",
            json!({"Pass": "12345678"}),
            5,
        );
        check(
            &inst("authentication {\n auth_type PASS\n auth_pass 1111\n }"),
            "/instances/0/auth",
            json!({"Pass": "1111"}),
            0,
        );
        check(
            &inst(&format!("version 3\n {pass}")),
            "/instances/0/auth",
            json!("None"),
            5,
        );
        check(
            &format!("global_defs {{\n vrrp_strict\n}}\n{}", inst(pass)),
            "/instances/0/auth",
            json!("None"),
            5,
        );
    }

    #[test]
    fn virtual_addresses() {
        let vips = "virtual_ipaddress {\n 10.0.0.1\n 10.0.0.2/24 brd 10.0.0.255 dev eth1 scope link label eth1:1\n 10.0.0.3/33\n 10.0.0.300\n }";
        check(
            &inst(vips),
            "/instances/0/virtual_ipaddress/0/prefix",
            json!(32),
            5,
        );
        check(
            &inst(vips),
            "/instances/0/virtual_ipaddress/1",
            json!({"at": "/t/keepalived.conf:6", "addr": "10.0.0.2", "prefix": 24, "brd": "10.0.0.255", "dev": "eth1", "scope": "link", "label": "eth1:1", "peer": null, "no_track": false, "preferred_lft": null, "other": []}),
            5,
        );
        check(
            &inst(vips),
            "/instances/0/virtual_ipaddress/2/prefix",
            json!(32),
            5,
        );
        check(
            &inst(vips),
            "/instances/0/virtual_ipaddress/3",
            json!(null),
            5,
        );
        check(
            &inst("virtual_ipaddress {\n 10.0.0.1\n 2001:db8::1\n }"),
            "/instances/0/virtual_ipaddress/1",
            json!(null),
            5,
        );
        check(
            &inst("virtual_ipaddress {\n fd00::1\n }"),
            "/instances/0/virtual_ipaddress/0/prefix",
            json!(128),
            0,
        );
    }

    #[test]
    fn trackers_and_weights() {
        let script = "vrrp_script chk {\n script \"/bin/true\"\n}\n";
        check(
            script,
            "/scripts/0",
            json!({"at": "/t/keepalived.conf:1", "name": "chk", "script": ["/bin/true"], "interval": 1.0, "timeout": null, "weight": 0, "weight_reverse": false, "rise": 1, "fall": 1, "init_fail": false, "user": null, "group": null, "other": {}}),
            0,
        );
        let secure = "global_defs {\n enable_script_security\n}\n";
        check(
            &format!(
                "{secure}vrrp_script chk {{\n script \"/bin/x a 'b c'\"\n weight -20 reverse\n rise 3\n fall 2\n}}\n"
            ),
            "/scripts/0/script",
            json!(["/bin/x", "a", "b c"]),
            0,
        );
        check(
            &format!("{secure}vrrp_script chk {{\n script /bin/true\n weight 254\n}}\n"),
            "/scripts/0/weight",
            json!(0),
            5,
        );
        let tracked = format!(
            "{secure}{script}{}",
            inst("track_script {\n chk weight -30\n }")
        );
        check(
            &tracked,
            "/instances/0/track_scripts/0/weight",
            json!(-30),
            0,
        );
        check(
            &format!("{secure}{script}{}", inst("track_script {\n nope\n }")),
            "/instances/0/track_scripts/0",
            json!(null),
            5,
        );
        // The address owner keeps no weighted script.
        check(
            &format!(
                "{secure}{script}{}",
                inst("priority 255\n track_script {\n chk weight 10\n }")
            ),
            "/instances/0/track_scripts/0",
            json!(null),
            5,
        );
        check(
            &inst("track_interface {\n eth1 weight 255\n }"),
            "/instances/0/track_interfaces/0",
            json!(null),
            5,
        );
        check(
            &inst("track_interface {\n eth0\n }"),
            "/instances/0/track_interfaces/0",
            json!(null),
            5,
        );
    }

    #[test]
    fn sync_groups() {
        let two = format!(
            "{}{}",
            inst(""),
            inst("")
                .replace("vrrp_instance V ", "vrrp_instance W ")
                .replace("virtual_router_id 7", "virtual_router_id 8")
        );
        check(
            &format!("{two}vrrp_sync_group G {{\n group {{\n V\n W\n }}\n}}\n"),
            "/sync_groups/0/members",
            json!(["V", "W"]),
            0,
        );
        check(
            &format!("{two}vrrp_sync_group G {{\n group {{\n V\n X\n }}\n}}\n"),
            "/sync_groups/0/members",
            json!(["V"]),
            5,
        );
    }

    #[test]
    fn sync_group_members_lose_weighted_trackers_unless_the_group_allows_them() {
        let script =
            "global_defs {\n enable_script_security\n}\nvrrp_script chk {\n script /bin/true\n}\n";
        let member = |name: &str, vrid: u8| {
            format!(
                "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n virtual_ipaddress {{\n 10.1.1.{vrid}\n }}\n \
                 track_script {{\n chk weight -20\n }}\n track_interface {{\n eth1 weight -10\n }}\n}}\n"
            )
        };
        let group =
            |extra: &str| format!("vrrp_sync_group G {{\n group {{\n V\n W\n }}\n{extra}}}\n");
        let text = format!("{script}{}{}{}", member("V", 1), member("W", 2), group(""));
        check(&text, "/instances/0/track_scripts/0", json!(null), 5);
        check(&text, "/instances/0/track_interfaces/0/weight", json!(0), 5);
        let allowed = format!(
            "{script}{}{}{}",
            member("V", 1),
            member("W", 2),
            group(" sync_group_tracking_weight\n")
        );
        check(
            &allowed,
            "/instances/0/track_scripts/0/weight",
            json!(-20),
            0,
        );
        check(
            &allowed,
            "/instances/0/track_interfaces/0/weight",
            json!(-10),
            0,
        );
    }

    #[test]
    fn virtual_addresses_decide_version_and_validity() {
        let bare = format!("{INSTANCE}}}\n");
        check(&bare, "/instances/0/name", json!("V"), 5); // "at least one is sensible"
        let v3 = format!("global_defs {{\n vrrp_version 3\n}}\n{bare}");
        check(&v3, "/instances/0", json!(null), 5); // "at least one is required": dropped
        check(
            &inst("virtual_ipaddress {\n fd00::1\n }"),
            "/instances/0/version",
            json!(3),
            0,
        );
        check(
            &inst("version 2\n virtual_ipaddress {\n fd00::1\n }"),
            "/instances/0/version",
            json!(2),
            0,
        );
        check(
            &inst("priority 255"),
            "/instances/0/state",
            json!("MASTER"),
            0,
        );
    }

    #[test]
    fn strict_mode_consequences() {
        let strict = |body: &str| format!("global_defs {{\n vrrp_strict\n}}\n{}", inst(body));
        check(&strict(""), "/instances/0/accept", json!(false), 0);
        check(
            &strict("priority 255"),
            "/instances/0/accept",
            json!(true),
            0,
        );
        check(&strict("accept"), "/instances/0/accept", json!(false), 5);
        check(
            &strict("preempt_delay 5"),
            "/instances/0/preempt_delay",
            json!(0.0),
            5,
        );
        check(
            &strict("down_timer_adverts 5"),
            "/instances/0/down_timer_adverts",
            json!(3),
            5,
        );
        check(
            &strict("garp_lower_prio_repeat 2"),
            "/instances/0/garp_lower_prio_repeat",
            json!(0),
            5,
        );
        check(
            &strict("higher_prio_send_advert"),
            "/instances/0/higher_prio_send_advert",
            json!(false),
            5,
        );
        check(
            &strict("state MASTER\n priority 100"),
            "/instances/0/state",
            json!("BACKUP"),
            5,
        );
        check(
            &strict("version 2\n virtual_ipaddress {\n fd00::1\n }"),
            "/instances/0/version",
            json!(3),
            5,
        );
        // strict_mode on the instance does the same without the global switch.
        check(
            &inst("strict_mode\n preempt_delay 5"),
            "/instances/0/preempt_delay",
            json!(0.0),
            5,
        );
    }

    #[test]
    fn malformed_values_say_where() {
        let opts = ReadOptions {
            config_id: "t".into(),
            follow_includes: true,
        };
        let text = inst("priority 300\n garp_master_delay abc");
        let loaded = load_str(
            Path::new("/t/k.conf"),
            text.as_bytes(),
            &opts,
            &validate::Unchecked,
        );
        let shown: Vec<String> = loaded.diags.list.iter().map(ToString::to_string).collect();
        assert!(
            shown.contains(
                &"(/t/k.conf: Line 7, column 10) number '300' outside range [1, 255]".to_string()
            ),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d
                    .starts_with("(/t/k.conf: Line 8, column 20) garp_master_delay 'abc' invalid")),
            "{shown:#?}"
        );
    }
}
