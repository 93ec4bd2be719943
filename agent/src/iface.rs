//! Interface lookups in the calling thread's network namespace (shared by `config`'s host
//! checks and `xdp`'s attach, which must not depend on each other).

use std::ffi::CString;

/// The index of interface `name`, if it exists.
pub fn index(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: c_name is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => None,
        index => Some(index),
    }
}
