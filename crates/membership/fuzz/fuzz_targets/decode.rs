//! Any datagram, with or without a key: decoding returns a value or a typed
//! error, never panics; whatever decodes re-encodes to a datagram that
//! decodes to the same message.
#![no_main]

use ferrolb_membership::packet::{decode, encode};
use libfuzzer_sys::fuzz_target;

const KEY: [u8; 32] = [0x5a; 32];

fuzz_target!(|data: &[u8]| {
    for key in [None, Some(&KEY)] {
        if let Ok(env) = decode(data, key) {
            let bytes = encode(&env, key).expect("a decoded message re-encodes");
            assert_eq!(decode(&bytes, key).expect("re-encoded decodes"), env);
        }
    }
});
