use proptest::prelude::*;

use super::*;

/// A Down packet as FRR's bfdd sends it before it knows the peer: 1 s
/// transmit (slow start), 100 ms receive, 50 ms echo, no discriminator yet.
const FRR_DOWN: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, // v1 diag 0, Down, mult 3, len 24
    0x38, 0xa1, 0x7c, 0xfe, // my discriminator 950107390
    0x00, 0x00, 0x00, 0x00, // your discriminator 0
    0x00, 0x0f, 0x42, 0x40, // desired min tx 1 000 000 us
    0x00, 0x01, 0x86, 0xa0, // required min rx 100 000 us
    0x00, 0x00, 0xc3, 0x50, // required min echo rx 50 000 us
];

fn up_packet() -> ControlPacket {
    ControlPacket {
        poll: true,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        ..ControlPacket::new(State::Up, 7, 9)
    }
}

#[test]
fn decodes_frr_down_packet() {
    let p = ControlPacket::decode(&FRR_DOWN).expect("valid");
    assert_eq!(p.state, State::Down);
    assert_eq!(p.diag, Diagnostic::None);
    assert_eq!(p.detect_mult, 3);
    assert_eq!(p.my_discriminator, 950_107_390);
    assert_eq!(p.your_discriminator, 0);
    assert_eq!(p.desired_min_tx_us, 1_000_000);
    assert_eq!(p.required_min_rx_us, 100_000);
    assert_eq!(p.required_min_echo_rx_us, 50_000);
    assert!(!p.poll && !p.final_ && !p.demand && p.auth.is_none());
    assert_eq!(p.encode(), FRR_DOWN);
}

#[test]
fn encodes_flags_and_diag_at_their_bits() {
    let mut p = up_packet();
    p.diag = Diagnostic::ControlDetectionTimeExpired;
    let b = p.encode();
    assert_eq!(b[0], 0x21, "version 1, diag 1");
    assert_eq!(b[1], 0xe0, "Up (3 << 6) | P");
    p.poll = false;
    p.final_ = true;
    p.control_plane_independent = true;
    p.demand = true;
    assert_eq!(p.encode()[1], 0xc0 | 0x10 | 0x08 | 0x02);
    assert_eq!(&b[4..12], &[0, 0, 0, 7, 0, 0, 0, 9]);
}

fn with(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v[at] = value;
    v
}

#[test]
fn reception_checks_of_6_8_6() {
    let ok = FRR_DOWN;
    assert_eq!(ControlPacket::decode(&ok[..23]), Err(DecodeError::TooShort { len: 23 }));
    assert_eq!(ControlPacket::decode(&with(&ok, 0, 0x40)), Err(DecodeError::Version(2)));
    assert_eq!(ControlPacket::decode(&with(&ok, 0, 0x00)), Err(DecodeError::Version(0)));
    assert_eq!(
        ControlPacket::decode(&with(&ok, 3, 23)),
        Err(DecodeError::LengthTooSmall { length: 23, min: 24, auth: false })
    );
    assert_eq!(
        ControlPacket::decode(&with(&ok, 3, 25)),
        Err(DecodeError::LengthBeyondPayload { length: 25, payload: 24 })
    );
    // A bit set, Length 24: the auth section's two bytes are missing.
    assert_eq!(
        ControlPacket::decode(&with(&ok, 1, 0x44)),
        Err(DecodeError::LengthTooSmall { length: 24, min: 26, auth: true })
    );
    assert_eq!(ControlPacket::decode(&with(&ok, 2, 0)), Err(DecodeError::ZeroDetectMult));
    assert_eq!(ControlPacket::decode(&with(&ok, 1, 0x41)), Err(DecodeError::Multipoint));
    let mut no_mine = ok;
    no_mine[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(ControlPacket::decode(&no_mine), Err(DecodeError::ZeroMyDiscriminator));
    // Your Discriminator zero is fine in Down and AdminDown only.
    assert!(ControlPacket::decode(&with(&ok, 1, 0x00)).is_ok());
    assert_eq!(ControlPacket::decode(&with(&ok, 1, 0x80)), Err(DecodeError::ZeroYourDiscriminator(State::Init)));
    assert_eq!(ControlPacket::decode(&with(&ok, 1, 0xc0)), Err(DecodeError::ZeroYourDiscriminator(State::Up)));
    assert_eq!(ControlPacket::decode(&with(&ok, 1, 0x70)), Err(DecodeError::PollAndFinal));
}

#[test]
fn trailing_bytes_past_length_are_ignored() {
    let mut long = FRR_DOWN.to_vec();
    long.extend_from_slice(&[0xff; 8]);
    assert_eq!(ControlPacket::decode(&long).expect("valid").encode(), FRR_DOWN);
}

#[test]
fn authentication_section_is_parsed_and_framed() {
    // Keyed SHA1: type 4, len 28, key id, reserved, sequence, 20-byte hash.
    let mut p = up_packet();
    p.auth = Some(Authentication { auth_type: AuthType::KeyedSha1, data: vec![0xab; 26] });
    let b = p.encode();
    assert_eq!(b.len(), 52);
    assert_eq!(b[3], 52);
    assert_eq!(b[1] & 0x04, 0x04);
    assert_eq!(&b[24..26], &[4, 28]);
    assert_eq!(ControlPacket::decode(&b), Ok(p.clone()));
    // Simple password "secret": type 1, len 3 + 6, key id 1.
    let mut simple = up_packet().encode();
    simple[1] |= 0x04;
    simple.extend_from_slice(&[1, 9, 1, b's', b'e', b'c', b'r', b'e', b't']);
    simple[3] = 33;
    let d = ControlPacket::decode(&simple).expect("valid");
    assert_eq!(d.auth.map(|a| (a.auth_type, a.data.len())), Some((AuthType::SimplePassword, 7)));
    // Keyed MD5 claiming 20 bytes: wrong length for the type.
    let mut md5 = up_packet().encode();
    md5[1] |= 0x04;
    md5.extend_from_slice(&[2, 20]);
    md5.extend_from_slice(&[0; 18]);
    md5[3] = 44;
    assert_eq!(
        ControlPacket::decode(&md5),
        Err(DecodeError::AuthLength { auth_type: AuthType::KeyedMd5, auth_len: 20 })
    );
    // Auth Len running past Length.
    let mut past = up_packet().encode();
    past[1] |= 0x04;
    past.extend_from_slice(&[1, 19, 1, b'x']);
    past[3] = 28;
    assert_eq!(ControlPacket::decode(&past), Err(DecodeError::AuthBeyondLength { auth_len: 19, room: 4 }));
}

#[test]
fn diagnostic_codes_round_trip() {
    for code in 0..32u8 {
        assert_eq!(Diagnostic::from_code(code).code(), code);
    }
    assert_eq!(Diagnostic::from_code(3), Diagnostic::NeighborSignaledSessionDown);
    assert_eq!(Diagnostic::Reserved(9).name(), "reserved-9");
}

fn arb_packet() -> impl Strategy<Value = ControlPacket> {
    (
        (0u8..32, 0u8..4, any::<bool>(), any::<bool>(), any::<bool>(), 1u8..=255),
        (1u32.., any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 2..=17)),
    )
        .prop_map(|((diag, state, poll_or_final, cpi, demand, mult), (mine, yours, tx, rx, echo), pw)| {
            let state = State::from_bits(state);
            let your = if matches!(state, State::Down | State::AdminDown) { yours } else { yours.max(1) };
            ControlPacket {
                diag: Diagnostic::from_code(diag),
                state,
                poll: poll_or_final,
                final_: !poll_or_final && cpi,
                control_plane_independent: cpi,
                demand,
                multipoint: false,
                detect_mult: mult,
                my_discriminator: mine,
                your_discriminator: your,
                desired_min_tx_us: tx,
                required_min_rx_us: rx,
                required_min_echo_rx_us: echo,
                auth: pw.map(|data| Authentication { auth_type: AuthType::SimplePassword, data }),
            }
        })
}

proptest! {
    #[test]
    fn encode_decode_round_trips(p in arb_packet()) {
        prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn any_bytes_decode_or_fail_typed(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(p) = ControlPacket::decode(&bytes) {
            // Whatever decodes re-encodes to a packet that decodes the same.
            prop_assert_eq!(ControlPacket::decode(&p.encode()), Ok(p));
        }
    }
}
