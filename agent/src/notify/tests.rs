//! keepalived's notification formats.

use super::*;

fn script(argv: &[&str]) -> Option<Script> {
    Some(Script {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        run_as: RunAs::ROOT,
    })
}

fn vi1() -> Target {
    Target {
        kind: Some(Kind::Instance),
        name: "VI_1".into(),
        master: script(&["/bin/m", "x"]),
        generic: script(&["/bin/n"]),
        ..Target::default()
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn keepalived_runs_the_state_script_then_notify_with_four_arguments() {
    let t = vi1();
    assert_eq!(
        t.scripts(State::Master, 101),
        vec![
            (argv(&["/bin/m", "x"]), RunAs::ROOT),
            (
                argv(&["/bin/n", "INSTANCE", "VI_1", "MASTER", "101"]),
                RunAs::ROOT
            ),
        ]
    );
    assert_eq!(
        t.scripts(State::Backup, 100),
        vec![(
            argv(&["/bin/n", "INSTANCE", "VI_1", "BACKUP", "100"]),
            RunAs::ROOT
        )]
    );
    // notify is never called for MASTER_RX_LOWER_PRI.
    assert!(t.scripts(State::MasterRxLowerPri, 100).is_empty());
}

#[test]
fn keepalived_groups_report_priority_zero() {
    let g = Target {
        kind: Some(Kind::Group),
        name: "G1".into(),
        generic: script(&["/bin/n"]),
        ..Target::default()
    };
    assert_eq!(
        g.scripts(State::Fault, 100),
        vec![(argv(&["/bin/n", "GROUP", "G1", "FAULT", "0"]), RunAs::ROOT)]
    );
    assert_eq!(g.fifo_line(State::Backup, 100), "GROUP \"G1\" BACKUP 0\n");
}

#[test]
fn keepalived_fifo_line_format() {
    assert_eq!(
        vi1().fifo_line(State::Master, 100),
        "INSTANCE \"VI_1\" MASTER 100\n"
    );
    assert_eq!(
        vi1().fifo_line(State::MasterRxLowerPri, 100),
        "INSTANCE \"VI_1\" MASTER_RX_LOWER_PRI 100\n"
    );
}

#[test]
fn fifo_lines_read_back_whatever_the_name() {
    for name in ["VI_1", "with space", "q\"uote\"", ""] {
        let t = Target {
            name: name.into(),
            ..vi1()
        };
        for state in State::ALL {
            assert_eq!(
                Target::parse_fifo_line(&t.fifo_line(state, 7)),
                Some((Kind::Instance, name, state.word(), 7))
            );
        }
    }
    assert_eq!(Target::parse_fifo_line("INSTANCE \"x\" MASTER 100"), None);
    assert_eq!(Target::parse_fifo_line("VRRP \"x\" MASTER 100\n"), None);
    assert_eq!(Target::parse_fifo_line("GROUP \"x\" MASTER 256\n"), None);
}

#[test]
fn keepalived_mail_subjects_and_bodies() {
    assert_eq!(
        vi1().mail("LVS_DEVEL", State::Master),
        Some((
            "[LVS_DEVEL] VRRP Instance VI_1 - Entering MASTER state".into(),
            "=> VRRP Instance is now owning VRRP VIPs <=".into()
        ))
    );
    assert_eq!(
        vi1().mail("r", State::Stop),
        Some((
            "[r] VRRP Instance VI_1 - Stopping".into(),
            "=> VRRP Instance stopping <=".into()
        ))
    );
    let g = Target {
        kind: Some(Kind::Group),
        name: "G".into(),
        ..Target::default()
    };
    assert_eq!(
        g.mail("r", State::Fault).unwrap().1,
        "=> All VRRP group instances are now in FAULT state <="
    );
    assert_eq!(vi1().mail("r", State::MasterRxLowerPri), None);
}

#[test]
fn one_targets_scripts_run_in_order_and_never_overlap() {
    let dir = std::env::temp_dir().join(format!("notify-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    // Each run appends "start N" then, after a pause, "end N": overlapping runs would interleave.
    let s = format!(
        "echo start $3 >> {0}; sleep 0.02; echo end $3 >> {0}",
        log.display()
    );
    let t = Target {
        kind: Some(Kind::Instance),
        name: "VI_1".into(),
        generic: Some(Script {
            argv: argv(&["/bin/sh", "-c", &s, "sh"]),
            run_as: RunAs::ROOT,
        }),
        ..Target::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = Notifier::start(
            Setup {
                targets: vec![t],
                ..Setup::default()
            },
            &Handle::current(),
        );
        let states = [
            State::Backup,
            State::Master,
            State::Fault,
            State::Backup,
            State::Master,
        ];
        for (k, st) in states.iter().enumerate() {
            n.send(Note {
                target: 0,
                state: *st,
                priority: k as u8,
            });
        }
        n.drain(Duration::from_secs(20)).await;
    });
    let got = std::fs::read_to_string(&log).unwrap();
    let want: String = ["BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER"]
        .iter()
        .map(|s| format!("start {s}\nend {s}\n"))
        .collect();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_reload_reorders_targets_by_name() {
    let dir = std::env::temp_dir().join(format!("notify-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let s = format!("echo $2 $3 >> {}", log.display());
    let target = |name: &str| Target {
        kind: Some(Kind::Instance),
        name: name.into(),
        generic: Some(Script {
            argv: argv(&["/bin/sh", "-c", &s, "sh"]),
            run_as: RunAs::ROOT,
        }),
        ..Target::default()
    };
    let setup = |names: &[&str]| Setup {
        targets: names.iter().map(|n| target(n)).collect(),
        ..Setup::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = Notifier::start(setup(&["A", "B"]), &Handle::current());
        let note = |target, state| Note {
            target,
            state,
            priority: 100,
        };
        // Before the reload, target 0 is A; after it (A removed, C added), B then C.
        n.send(note(0, State::Deleted));
        n.update(setup(&["B", "C"]));
        n.send(note(0, State::Backup));
        n.send(note(1, State::Master));
        n.drain(Duration::from_secs(20)).await;
    });
    let got = std::fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = got.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["A DELETED", "B BACKUP", "C MASTER"]);
    let _ = std::fs::remove_dir_all(&dir);
}
