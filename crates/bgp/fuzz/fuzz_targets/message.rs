//! Any bytes as one BGP message (with a valid marker and length put in
//! front half of the time, so the fuzzer reaches the bodies), through the
//! decoder with both AS number sizes; a refusal must name a NOTIFICATION
//! that encodes, and an accepted message must never panic the session.
#![no_main]

use ferrolb_bgp::packet::{self, MAX_MESSAGE_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let msg = if mode & 1 == 0 || rest.is_empty() {
        data.to_vec()
    } else {
        let mut m = vec![0xff; 16];
        let len = (19 + rest.len() - 1).min(MAX_MESSAGE_LEN);
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.extend_from_slice(&rest[..len - 18]);
        m
    };
    for asn4 in [false, true] {
        match packet::decode(&msg, asn4) {
            Ok(m) => {
                let _ = m.kind();
            }
            Err(e) => {
                let n = e.notification();
                assert!(n.encode().len() <= MAX_MESSAGE_LEN);
            }
        }
    }
});
