//! The real binary's config commands, as an operator runs them.

use std::{path::PathBuf, process::Command};

fn agent() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrrp-agent"));
    cmd.current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."));
    cmd
}

#[test]
fn dump_config_shows_the_effective_configuration_as_json() {
    let out = agent()
        .args([
            "--dump-config",
            "-f",
            "tests/configs/seed-hot-standby-master.conf",
        ])
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let vi = &config["instances"][0];
    assert_eq!(vi["name"], "VI_1");
    assert_eq!(vi["state"], "MASTER");
    assert_eq!(vi["virtual_router_id"], 51);
    assert_eq!(vi["priority"], 100);
    assert_eq!(vi["advert_int_cs"], 100);
    assert_eq!(vi["auth"], serde_json::json!({"Pass": "1111"}));
    let vips: Vec<&str> = vi["virtual_ipaddress"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["addr"].as_str().unwrap())
        .collect();
    assert_eq!(vips, ["192.168.11.200", "192.168.11.201", "192.168.11.202"]);
    assert_eq!(config["global"]["router_id"], "LVS_DEVEL");
}

#[test]
fn config_test_to_a_file_writes_the_messages_there() {
    let file = std::env::temp_dir().join(format!("vrrp-agent-ct-{}.txt", std::process::id()));
    let out = agent()
        .arg(format!("--config-test={}", file.display()))
        .args(["-f", "tests/configs/state-lowercase.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let messages = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    assert!(
        messages.contains("(VI_1) unknown state 'master', defaulting to BACKUP"),
        "{messages}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unknown state"),
        "messages went to the file, not stderr"
    );
}

#[test]
fn running_with_a_missing_interface_fails_clearly() {
    let dir = std::env::temp_dir().join(format!("vrrp-agent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n interface vtnosuch0\n virtual_router_id 5\n virtual_ipaddress {\n 10.9.9.9\n }\n}\n",
    )
    .unwrap();
    let pid = dir.join("pid");
    let out = agent()
        .args(["-n", "-l", "-G", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(&pid)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(VI_1) interface vtnosuch0: interface vtnosuch0 does not exist"),
        "{stderr}"
    );
    assert!(!pid.exists(), "the pid file is removed on exit");
}

#[test]
fn a_missing_config_file_fails_the_config_test() {
    let out = agent()
        .args(["-t", "-f", "tests/configs/does-not-exist.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Config files missing"));
}

#[test]
fn a_running_agent_in_the_pid_file_is_refused_before_forking() {
    let dir = std::env::temp_dir().join(format!("vrrp-agent-cli-pid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("k.conf");
    std::fs::write(
        &conf,
        "vrrp_instance VI_1 {\n interface lo\n virtual_router_id 5\n virtual_ipaddress {\n 10.9.9.9\n }\n}\n",
    )
    .unwrap();
    // This test process stands in for a running agent.
    let pid = dir.join("pid");
    std::fs::write(&pid, format!("{}\n", std::process::id())).unwrap();
    // Without -n: the refusal must reach the caller, not a forked child.
    let out = agent()
        .args(["-G", "-f"])
        .arg(&conf)
        .arg("-p")
        .arg(&pid)
        .output()
        .unwrap();
    let kept = std::fs::read_to_string(&pid).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("vrrp-agent is already running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        kept.trim(),
        std::process::id().to_string(),
        "the pid file is untouched"
    );
}

#[test]
fn script_security_refuses_scripts_others_could_change() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("vrrp-agent-sec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A directory anyone may write to (no sticky bit): its script could be swapped.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let script = dir.join("chk.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("k.conf");
    let text = |security: bool| {
        format!(
            "global_defs {{\n{}}}\nvrrp_script chk {{\n script \"{}\"\n}}\n\
             vrrp_instance VI_1 {{\n interface lo\n virtual_router_id 5\n track_script {{\n chk\n }}\n\
             notify_master \"/bin/true\" nosuchuser\n virtual_ipaddress {{\n 10.9.9.9\n }}\n}}\n",
            if security {
                " enable_script_security\n"
            } else {
                ""
            },
            script.display()
        )
    };
    std::fs::write(&conf, text(true)).unwrap();
    let out = agent().arg("-t").arg("-f").arg(&conf).output().unwrap();
    let msgs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        msgs.contains(&format!(
            "Unsafe permissions found for script '{}' - disabling.",
            script.display()
        )),
        "{msgs}"
    );
    assert!(
        msgs.contains("Disabling track script chk due to insecure"),
        "{msgs}"
    );
    assert!(
        msgs.contains("Unable to resolve script username 'nosuchuser' - ignoring"),
        "{msgs}"
    );
    // Without security the script runs, and keepalived's warning says why that is unsafe.
    std::fs::write(&conf, text(false)).unwrap();
    let out = agent().arg("-t").arg("-f").arg(&conf).output().unwrap();
    let msgs = String::from_utf8_lossy(&out.stderr).to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        msgs.contains("SECURITY VIOLATION - scripts are being executed but script_security not enabled. There are insecure scripts."),
        "{msgs}"
    );
    assert!(!msgs.contains("Disabling track script"), "{msgs}");
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED the_systemd_unit_passes_systemd_analyze_verify: no systemd-analyze");
        return;
    }
    let unit = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/vrrp-agent.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // Verified against the binary just built (the packaged path is /usr/sbin).
    let dir = std::env::temp_dir().join(format!("vrrp-agent-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("vrrp-agent.service");
    std::fs::write(
        &file,
        unit.replace("/usr/sbin/vrrp-agent", env!("CARGO_BIN_EXE_vrrp-agent")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
