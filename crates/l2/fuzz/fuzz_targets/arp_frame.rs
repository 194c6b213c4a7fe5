//! Any bytes as the payload of an ARP Ethernet frame, through the decoder
//! and the announcer.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrolb_l2::packet::ArpPacket::decode(data);
    // Broadcast, from 02:00:00:00:00:01, ethertype ARP.
    let mut frame = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06];
    frame.extend_from_slice(data);
    common::exercise(&frame);
});
