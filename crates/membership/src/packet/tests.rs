use super::*;
use proptest::prelude::*;

fn header() -> Header {
    Header { sender: "n1".into(), boot: 1, seq: 2, timestamp_ms: 3 }
}

fn env(msg: Message) -> Envelope {
    Envelope { header: header(), msg }
}

fn record(name: &str, meta: &[u8]) -> Record {
    Record {
        name: name.into(),
        incarnation: 7,
        status: Status::Dead,
        addr: "[fd00::1]:7946".parse().unwrap(),
        meta: meta.to_vec(),
    }
}

const KEY: [u8; 32] = [0x42; 32];

#[test]
fn heartbeat_bytes() {
    let bytes = encode(&env(Message::Heartbeat { incarnation: 0x0102, digest: 0xAABB }), None).unwrap();
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        b'F', b'L', b'B', b'M', 1, 0, 1,        // magic, version, flags, kind
        2, b'n', b'1',                          // sender
        0, 0, 0, 0, 0, 0, 0, 1,                 // boot
        0, 0, 0, 0, 0, 0, 0, 2,                 // seq
        0, 0, 0, 0, 0, 0, 0, 3,                 // timestamp
        0, 0, 0, 0, 0, 0, 1, 2,                 // incarnation
        0, 0, 0, 0, 0, 0, 0xAA, 0xBB,           // digest
    ];
    assert_eq!(bytes, want);
    assert_eq!(decode(&want, None).unwrap(), env(Message::Heartbeat { incarnation: 0x0102, digest: 0xAABB }));
}

#[test]
fn alive_record_bytes() {
    let rec = Record {
        name: "b".into(),
        incarnation: 5,
        status: Status::Alive,
        addr: "10.0.0.2:7946".parse().unwrap(),
        meta: vec![0xEE],
    };
    let bytes = encode(&env(Message::Alive { record: rec.clone(), want_sync: true }), None).unwrap();
    #[rustfmt::skip]
    let body: Vec<u8> = vec![
        1,                                      // want_sync
        1, b'b', 0, 0, 0, 0, 0, 0, 0, 5, 0,     // name, incarnation, status alive
        4, 10, 0, 0, 2, 0x1F, 0x0A,             // IPv4 10.0.0.2 port 7946
        0, 1, 0xEE,                             // meta
    ];
    assert_eq!(bytes[6], 2, "kind");
    assert_eq!(&bytes[bytes.len() - body.len()..], &body[..]);
    assert_eq!(decode(&bytes, None).unwrap().msg, Message::Alive { record: rec, want_sync: true });
}

fn every_kind() -> Vec<Message> {
    vec![
        Message::Heartbeat { incarnation: 9, digest: u64::MAX },
        Message::Alive { record: record("a", b"meta"), want_sync: false },
        Message::Dead { name: "x".into(), incarnation: 3 },
        Message::Leave { incarnation: 4, nonce: 5 },
        Message::Ping { nonce: 6 },
        Message::PingReq { nonce: 7, target: "t".into(), addr: "1.2.3.4:5".parse().unwrap() },
        Message::Ack { nonce: 8 },
        Message::Sync { records: vec![record("a", b""), record("b", &[1; 40])], reply: true },
        Message::Sync { records: vec![], reply: false },
    ]
}

#[test]
fn every_kind_round_trips_with_and_without_key() {
    for msg in every_kind() {
        for key in [None, Some(&KEY)] {
            let bytes = encode(&env(msg.clone()), key).unwrap();
            assert_eq!(decode(&bytes, key).unwrap(), env(msg.clone()), "{msg:?} key {}", key.is_some());
        }
    }
}

#[test]
fn authentication() {
    let msg = Message::Ping { nonce: 1 };
    let tagged = encode(&env(msg.clone()), Some(&KEY)).unwrap();
    let plain = encode(&env(msg), None).unwrap();
    assert_eq!(tagged.len(), plain.len() + TAG_LEN);
    assert_eq!(decode(&tagged, Some(&[0x43; 32])), Err(DecodeError::BadTag));
    assert_eq!(decode(&plain, Some(&KEY)), Err(DecodeError::MissingTag));
    assert_eq!(decode(&tagged, None), Err(DecodeError::UnexpectedTag));
    // Any flipped bit, in the body or the tag, is refused.
    for i in 6..tagged.len() {
        let mut t = tagged.clone();
        t[i] ^= 0x01;
        assert_eq!(decode(&t, Some(&KEY)), Err(DecodeError::BadTag), "byte {i}");
    }
}

#[test]
fn typed_errors() {
    let good = encode(&env(Message::Ack { nonce: 1 }), None).unwrap();
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad, None), Err(DecodeError::BadMagic));
    let mut bad = good.clone();
    bad[4] = 2;
    assert_eq!(decode(&bad, None), Err(DecodeError::UnsupportedVersion(2)));
    let mut bad = good.clone();
    bad[6] = 99;
    assert_eq!(decode(&bad, None), Err(DecodeError::UnknownKind(99)));
    let mut bad = good.clone();
    bad[5] = 0x80;
    assert_eq!(decode(&bad, None), Err(DecodeError::UnknownFlags(0x80)));
    let mut bad = good.clone();
    bad.push(0);
    assert_eq!(decode(&bad, None), Err(DecodeError::TrailingBytes(1)));
    assert_eq!(decode(&vec![0; MAX_DATAGRAM + 1], None), Err(DecodeError::Oversize(MAX_DATAGRAM + 1)));
    let mut bad = good.clone();
    bad[7] = 0;
    assert_eq!(decode(&bad, None), Err(DecodeError::EmptyName("sender")));
    let mut bad = good;
    bad[7] = 254;
    bad.splice(8..10, std::iter::repeat_n(b'n', 254));
    assert_eq!(decode(&bad, None), Err(DecodeError::NameTooLong("sender")));
}

#[test]
fn every_truncation_is_an_error() {
    let msg = Message::Sync { records: vec![record("a", b"xyz"), record("bb", b"")], reply: true };
    for key in [None, Some(&KEY)] {
        let bytes = encode(&env(msg.clone()), key).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], key).is_err(), "length {len}");
        }
    }
}

#[test]
fn encode_refuses_what_decode_would() {
    let long = "x".repeat(MAX_NAME + 1);
    assert_eq!(encode(&env(Message::Dead { name: long, incarnation: 1 }), None), Err(EncodeError::BadName(MAX_NAME + 1)));
    let rec = record("a", &vec![0; MAX_META + 1]);
    assert_eq!(
        encode(&env(Message::Alive { record: rec, want_sync: false }), None),
        Err(EncodeError::MetaTooLong(MAX_META + 1))
    );
}

#[test]
fn largest_single_record_fits() {
    let mut h = header();
    h.sender = "s".repeat(MAX_NAME);
    let mut rec = record(&"r".repeat(MAX_NAME), &vec![0; MAX_META]);
    rec.addr = "[::1]:1".parse().unwrap();
    let msg = Message::Alive { record: rec.clone(), want_sync: true };
    assert!(encode(&Envelope { header: h.clone(), msg }, Some(&KEY)).is_ok());
    let chunks = split(&h.sender, Message::Sync { records: vec![rec; 3], reply: true });
    assert_eq!(chunks.len(), 3);
}

#[test]
fn split_keeps_every_record_and_fits() {
    let records: Vec<Record> = (0..300).map(|i| record(&format!("node-{i:04}"), &[i as u8; 30])).collect();
    let chunks = split("sender", Message::Sync { records: records.clone(), reply: true });
    assert!(chunks.len() > 1);
    let mut joined = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let h = Header { sender: "sender".into(), ..header() };
        let bytes = encode(&Envelope { header: h, msg: c.clone() }, Some(&KEY)).unwrap();
        assert!(bytes.len() <= MAX_DATAGRAM);
        let Message::Sync { records, reply } = c else { panic!("not a sync") };
        assert_eq!(*reply, i == 0);
        joined.extend(records.iter().cloned());
    }
    assert_eq!(joined, records);
    // Non-Sync messages and empty views pass through as one message.
    assert_eq!(split("s", Message::Ack { nonce: 1 }), vec![Message::Ack { nonce: 1 }]);
    assert_eq!(split("s", Message::Sync { records: vec![], reply: true }).len(), 1);
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::from(a), p)),
    ]
}

fn arb_record() -> impl Strategy<Value = Record> {
    ("[a-z0-9.-]{1,40}", any::<u64>(), 0u8..3, arb_addr(), proptest::collection::vec(any::<u8>(), 0..64)).prop_map(
        |(name, incarnation, s, addr, meta)| Record {
            name,
            incarnation,
            status: Status::from_code(s).unwrap(),
            addr,
            meta,
        },
    )
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(incarnation, digest)| Message::Heartbeat { incarnation, digest }),
        (arb_record(), any::<bool>()).prop_map(|(record, want_sync)| Message::Alive { record, want_sync }),
        ("[a-z]{1,20}", any::<u64>()).prop_map(|(name, incarnation)| Message::Dead { name, incarnation }),
        (any::<u64>(), any::<u64>()).prop_map(|(incarnation, nonce)| Message::Leave { incarnation, nonce }),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        (any::<u64>(), "[a-z]{1,20}", arb_addr()).prop_map(|(nonce, target, addr)| Message::PingReq { nonce, target, addr }),
        any::<u64>().prop_map(|nonce| Message::Ack { nonce }),
        (proptest::collection::vec(arb_record(), 0..8), any::<bool>())
            .prop_map(|(records, reply)| Message::Sync { records, reply }),
    ]
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
        let _ = decode(&bytes, None);
        let _ = decode(&bytes, Some(&KEY));
    }

    #[test]
    fn damaged_datagrams_never_panic(msg in arb_message(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
        let bytes = encode(&env(msg.clone()), None).unwrap();
        let _ = decode(&bytes[..cut % (bytes.len() + 1)], None);
        let mut flipped = bytes.clone();
        let i = flip.0 % flipped.len();
        flipped[i] ^= flip.1;
        let _ = decode(&flipped, None);
        prop_assert_eq!(decode(&bytes, None).unwrap().msg, msg);
    }

    #[test]
    fn messages_round_trip(msg in arb_message(), boot in any::<u64>(), seq in any::<u64>()) {
        let e = Envelope { header: Header { boot, seq, ..header() }, msg };
        prop_assert_eq!(decode(&encode(&e, Some(&KEY)).unwrap(), Some(&KEY)).unwrap(), e);
    }
}
