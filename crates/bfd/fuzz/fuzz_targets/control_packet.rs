//! Any bytes as a BFD datagram: through the decoder and, when they decode,
//! through a running session; whatever decodes re-encodes to the same
//! packet, and every packet the session sends back decodes.
#![no_main]

use ferrolb_bfd::packet::ControlPacket;
use ferrolb_bfd::session::{Action, Event, Session};
use ferrolb_bfd::{Hop, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = ControlPacket::decode(data) else { return };
    assert_eq!(ControlPacket::decode(&packet.encode()).as_ref(), Ok(&packet));
    let mut session = Session::new(1, Profile::default(), Hop::Single, 1);
    session.handle(Event::AdminUp);
    // Twice: the second one meets whatever state the first left.
    for _ in 0..2 {
        for action in session.handle(Event::Received { packet: packet.clone(), ttl: 255 }) {
            if let Action::Send(sent) = action {
                assert!(ControlPacket::decode(&sent.encode()).is_ok(), "session sent an invalid packet");
            }
        }
    }
});
