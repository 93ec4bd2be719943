//! The whole config reader (lexer, preprocessor, tree, model, validation, the LVS side's
//! virtual servers) on arbitrary bytes:
//! it must never panic, hang or grow without bound.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vrrp_agent::config::{self, ReadOptions, validate::Unchecked};

fuzz_target!(|data: &[u8]| {
    let opts = ReadOptions { config_id: "fuzz".into(), follow_includes: false };
    let loaded = config::load_str(Path::new("/fuzz/keepalived.conf"), data, &opts, &Unchecked);
    let _ = loaded.exit_code();
    // What the LVS side makes of the virtual servers: a service, or the reason it is not run.
    // (For either backend: IPVS takes marks and more.)
    use vrrp_agent::lvs::model::{Backend, service};
    for vs in &loaded.config.virtual_servers {
        for backend in [Backend::Xdp, Backend::Ipvs] {
            if let Ok(s) = service(
                vs,
                &loaded.config.virtual_server_groups,
                &loaded.config.track_files,
                backend,
            ) {
                let _ = s.name();
            }
        }
    }
    // What was read prints and reads back without panicking too.
    let printed = config::print::print(&loaded.config);
    let _ = config::load_str(Path::new("/fuzz/printed.conf"), printed.as_bytes(), &opts, &Unchecked);
});
