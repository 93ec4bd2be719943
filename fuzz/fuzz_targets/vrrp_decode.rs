//! The VRRP decoder on arbitrary bytes, for both families and checksum modes: it never panics,
//! and whatever it accepts (AH aside) encodes back to an advert that decodes the same.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use vrrp_agent::vrrp::packet::{Advert, Auth, ChecksumMode};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    let (src, dst): (IpAddr, IpAddr) = if selector & 1 == 0 {
        ("10.0.0.1".parse().unwrap(), "224.0.0.18".parse().unwrap())
    } else {
        ("fe80::1".parse().unwrap(), "ff02::12".parse().unwrap())
    };
    let mode = if selector & 2 == 0 { ChecksumMode::Rfc } else { ChecksumMode::V3AsV2 };
    // AH-authenticated adverts travel inside IPsec and are not encoded by this codec.
    if let Ok(advert) = Advert::decode(bytes, src, dst, mode)
        && advert.auth != Auth::Ah
    {
        let again = advert.encode(src, dst, mode).expect("a decoded advert encodes");
        assert_eq!(Advert::decode(&again, src, dst, mode).as_ref(), Ok(&advert));
    }
});
