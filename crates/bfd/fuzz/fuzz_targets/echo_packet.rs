//! Any bytes as what an echo receive socket hands over: an IPv4 or IPv6
//! datagram (first byte picks the family of our address) through the
//! datagram decoder, and the rest as a bare echo payload. Whatever decodes
//! re-encodes to the same packet, and a session fed it (echo running)
//! only ever sends packets that decode.
#![no_main]

use std::net::IpAddr;

use ferrolb_bfd::echo::{EchoPacket, datagram, decode_datagram};
use ferrolb_bfd::packet::{ControlPacket, State};
use ferrolb_bfd::session::{Action, Event, Session};
use ferrolb_bfd::{Hop, Profile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let local: IpAddr = if pick & 1 == 0 { "198.51.100.11".parse().unwrap() } else { "2001:db8::11".parse().unwrap() };
    if let Ok(r) = decode_datagram(rest, local) {
        assert_eq!(decode_datagram(&datagram(local, &r.packet, 1), local).map(|b| b.packet), Ok(r.packet));
    }
    let Ok(echo) = EchoPacket::decode(rest) else { return };
    assert_eq!(EchoPacket::decode(&echo.encode()), Ok(echo));
    // A session with echo running (Up, both sides asked for it).
    let profile = Profile { echo_mode: true, ..Profile::default() };
    let mut session = Session::new(1, profile, Hop::Single, 1);
    session.handle(Event::AdminUp);
    let mut remote = ControlPacket::new(State::Init, 9, 1);
    remote.required_min_echo_rx_us = 50_000;
    session.handle(Event::Received { packet: remote, ttl: 255 });
    assert!(session.echo_active());
    for _ in 0..2 {
        for action in session.handle(Event::EchoReceived(echo)) {
            if let Action::Send(sent) = action {
                assert!(ControlPacket::decode(&sent.encode()).is_ok(), "session sent an invalid packet");
            }
        }
        session.handle(Event::EchoTimer);
    }
});
