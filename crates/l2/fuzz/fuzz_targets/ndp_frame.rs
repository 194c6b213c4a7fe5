//! Any bytes as the payload of an IPv6 Ethernet frame (IPv6 header + ICMPv6),
//! through the decoder and the announcer.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // To the solicited-node MAC of 2001:db8::200, from 02:00:00:00:00:01, ethertype IPv6.
    let mut frame = vec![0x33, 0x33, 0xff, 0x00, 0x02, 0x00, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    frame.extend_from_slice(data);
    common::exercise(&frame);
});
