//! The control socket's two sides on arbitrary bytes: the agent's request reader (only the
//! exact word `status` asks for anything), and `vrrp-agent status`'s answer reader and table
//! renderer (whatever JSON comes back, it never panics).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vrrp_agent::ops::control::{self, Request};

fuzz_target!(|data: &[u8]| {
    if let Request::Status = control::parse_request(data) {
        assert_eq!(data.trim_ascii(), b"status");
    }
    if let Ok(v) = control::parse_answer(data) {
        let _ = control::render(&v);
    }
});
