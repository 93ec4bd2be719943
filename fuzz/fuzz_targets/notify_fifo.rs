//! The notify FIFO's lines for every instance and sync group an arbitrary configuration
//! names: each note is exactly one line, and a reader gets back the kind, the name, the
//! state and the priority that were written.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vrrp_agent::{
    config::{self, ReadOptions, validate::Unchecked},
    notify::{Kind, State, Target},
};

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions { config_id: "fuzz".into(), follow_includes: false };
    let loaded = config::load_str(Path::new("/fuzz/keepalived.conf"), data, &opts, &Unchecked);
    let c = &loaded.config;
    let names = c
        .instances
        .iter()
        .map(|i| (Kind::Instance, &i.name))
        .chain(c.sync_groups.iter().map(|g| (Kind::Group, &g.name)));
    for (kind, name) in names {
        let target = Target { kind: Some(kind), name: name.clone(), ..Default::default() };
        for state in State::ALL {
            let line = target.fifo_line(state, 100);
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            let prio = if kind == Kind::Group { 0 } else { 100 };
            assert_eq!(
                Target::parse_fifo_line(&line),
                Some((kind, name.as_str(), state.word(), prio)),
                "{line:?}"
            );
        }
    }
});
