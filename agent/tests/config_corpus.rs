//! The config test against keepalived itself: every `tests/configs/*.conf` is checked by the
//! real `keepalived -t` (2.2.7, installed by `cargo xtask setup`) and by `vrrp-agent -t`, in a
//! namespace that has the interfaces the configs name (eth0, eth1, eth2, ens33), and the two
//! must give the same exit status. `NAME.expect` records what keepalived gave when the corpus
//! was written (args, exit status, messages); the live run is the reference.

use std::{collections::BTreeMap, os::unix::fs::PermissionsExt, path::PathBuf};

use vrrp_tests::{Netns, skip_unless_root};

/// Configs on which keepalived 2.2.7 itself crashes under `-t`, and the verdict vrrp-agent gives
/// instead.
/// LVS configs whose messages are not keepalived's word for word, and why (every other
/// `lvs-*` config must give the same lines in the same order).
const LVS_MESSAGES_DIFFER: &[(&str, &str)] = &[
    (
        "lvs-notify-fifo-missing",
        "keepalived leaves the file name out of this one location; ours always has it",
    ),
    ("lvs-http-get-no-url", "keepalived crashes after its line"),
];

/// The messages as compared: without the column ours adds to a malformed value's location,
/// and without blank lines.
fn comparable(messages: &str) -> Vec<String> {
    messages
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match (l.find(", column "), l.find(") ")) {
            (Some(c), Some(end)) if c < end => format!("{}{}", &l[..c], &l[end..]),
            _ => l.to_string(),
        })
        .collect()
}

const KEEPALIVED_CRASHES: &[(&str, i32, &str)] = &[
    (
        "lvs-http-get-no-url",
        5,
        "keepalived reports the checker has no url, then segfaults (use after free)",
    ),
    (
        "script-user-nobody",
        0,
        "keepalived SIGTERMs itself after checking a script run as an unprivileged user",
    ),
];

/// Where the corpus's scripts are installed for the run: a root-owned directory, as
/// keepalived's script security wants, at a path that does not depend on where the repository
/// is checked out.
const SCRIPTS: &str = "/run/vrrp-agent-tests/scripts";

fn install_scripts() {
    std::fs::create_dir_all(SCRIPTS).unwrap();
    for dir in ["/run/vrrp-agent-tests", SCRIPTS] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for entry in std::fs::read_dir(root().join("tests/configs/scripts")).unwrap() {
        let entry = entry.unwrap();
        let to = PathBuf::from(SCRIPTS).join(entry.file_name());
        std::fs::copy(entry.path(), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A namespace with the interfaces the corpus names, addressed as when it was recorded.
fn host() -> Netns {
    let ns = Netns::create(&format!("vt-{}-corpus", std::process::id())).unwrap();
    for (i, (name, addr)) in [
        ("eth0", Some("192.168.1.10/24")),
        ("eth1", None),
        ("eth2", None),
        ("ens33", Some("192.168.11.1/24")),
    ]
    .iter()
    .enumerate()
    {
        let peer = format!("peer{i}");
        ns.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])
            .unwrap();
        if let Some(addr) = addr {
            ns.ip(&["addr", "add", addr, "dev", name]).unwrap();
        }
        ns.ip(&["link", "set", name, "up"]).unwrap();
        ns.ip(&["link", "set", &peer, "up"]).unwrap();
    }
    ns
}

struct Expect {
    args: Vec<String>,
    exit: i32,
}

fn expect(path: &std::path::Path) -> Expect {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
    };
    Expect {
        args: field("args:")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        exit: field("exit:")
            .parse()
            .unwrap_or_else(|_| panic!("{}: no exit line", path.display())),
    }
}

fn status(ns: &Netns, program: &str, args: &[String], file: &str) -> (i32, String) {
    let mut cmd = ns.command(program);
    cmd.args(args).args(["-f", file]).current_dir(root());
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    use std::os::unix::process::ExitStatusExt;
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn vrrp_agent_gives_keepalived_verdict_on_every_corpus_config() {
    if skip_unless_root("vrrp_agent_gives_keepalived_verdict_on_every_corpus_config") {
        return;
    }
    let dir = root().join("tests/configs");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".conf")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 40,
        "the corpus has {} configs (want at least 40)",
        names.len()
    );
    install_scripts();
    let ns = host();
    let agent = env!("CARGO_BIN_EXE_vrrp-agent");
    let mut mismatches = Vec::new();
    let mut verdicts: BTreeMap<i32, usize> = BTreeMap::new();
    for name in &names {
        let file = format!("tests/configs/{name}.conf");
        let expect = expect(&dir.join(format!("{name}.expect")));
        let (keepalived, theirs) = status(&ns, "keepalived", &expect.args, &file);
        let (ours, messages) = status(&ns, agent, &expect.args, &file);
        let want = match KEEPALIVED_CRASHES.iter().find(|(n, ..)| n == name) {
            Some((_, verdict, _)) => *verdict,
            None => keepalived,
        };
        *verdicts.entry(want).or_default() += 1;
        // The LVS configs: keepalived's lines too, word for word and in order.
        if name.starts_with("lvs-")
            && !LVS_MESSAGES_DIFFER.iter().any(|(n, _)| n == name)
            && comparable(&messages) != comparable(&theirs)
        {
            mismatches.push(format!(
                "{name}: keepalived said\n    {}\nvrrp-agent said\n    {}",
                theirs.trim().replace('\n', "\n    "),
                messages.trim().replace('\n', "\n    ")
            ));
        }
        if ours != want {
            mismatches.push(format!(
                "{name}: keepalived {keepalived} (recorded {}), vrrp-agent {ours}\n    {}",
                expect.exit,
                messages.trim().replace('\n', "\n    ")
            ));
        }
    }
    // keepalived copies the config into `config_save_dir` even under -t (kw-config-save-dir).
    for entry in std::fs::read_dir("/run/vrrp-agent-tests")
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with("keepalived.conf.")
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    eprintln!("corpus: {} configs, verdicts {verdicts:?}", names.len());
    assert!(
        mismatches.is_empty(),
        "{} of {} configs differ:\n{}",
        mismatches.len(),
        names.len(),
        mismatches.join("\n")
    );
}
