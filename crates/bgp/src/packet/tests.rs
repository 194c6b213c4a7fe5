//! Byte vectors written out from the RFCs (field by field in the comments),
//! checked against the encoder and fed back through the decoder.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::packet::notification::Notification as N;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

const MARKER: &str = "ffffffffffffffffffffffffffffffff";

fn msg(len: u16, kind: u8, body: &str) -> Vec<u8> {
    hex(&format!("{MARKER} {len:04x} {kind:02x} {body}"))
}

/// A message whose header length is right.
fn framed(kind: u8, body: &str) -> Vec<u8> {
    let len = 19 + hex(body).len() as u16;
    msg(len, kind, body)
}

fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("prefix")
}

fn all_caps() -> Capabilities {
    Capabilities {
        families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
        four_octet_as: None,
        route_refresh: true,
        graceful_restart: Some(GracefulRestart {
            restarting: false,
            restart_time: 120,
            families: vec![(Family::Ipv4Unicast, true)],
        }),
    }
}

#[test]
fn open_with_all_capabilities() {
    let open = Open::new(65001, 90, Ipv4Addr::new(198, 51, 100, 11), all_caps());
    let want = framed(
        1,
        "04 fde9 005a c633640b 1e
         02 1c
           01 04 0001 00 01
           01 04 0002 00 01
           02 00
           40 06 0078 0001 01 80
           41 04 0000fde9",
    );
    assert_eq!(open.encode().expect("encode"), want);
    let Message::Open(back) = decode(&want, false).expect("decode") else {
        panic!("not an OPEN")
    };
    assert_eq!(back, open);
    assert_eq!(back.asn(), 65001);
}

#[test]
fn open_with_four_octet_asn_carries_as_trans() {
    let open = Open::new(
        4_200_000_001,
        3,
        Ipv4Addr::new(203, 0, 113, 1),
        Capabilities::default(),
    );
    let want = framed(1, "04 5ba0 0003 cb007101 08 02 06 41 04 fa56ea01");
    assert_eq!(open.encode().expect("encode"), want);
    let Message::Open(back) = decode(&want, false).expect("decode") else {
        panic!("not an OPEN")
    };
    assert_eq!(back.my_as, open::AS_TRANS);
    assert_eq!(back.asn(), 4_200_000_001);
}

#[test]
fn open_without_capability_65_uses_my_as() {
    let m = framed(1, "04 fde8 00b4 c6336401 00");
    let Message::Open(o) = decode(&m, false).expect("decode") else {
        panic!("not an OPEN")
    };
    assert_eq!(
        (o.asn(), o.hold_time, o.caps.clone()),
        (65000, 180, Capabilities::default())
    );
}

fn ebgp_attrs() -> RouteAttrs {
    RouteAttrs {
        next_hop: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
        as_path: vec![65001],
        local_pref: None,
        communities: vec![(65000 << 16) | 100],
        large_communities: vec![(65001, 1, 2)],
    }
}

#[test]
fn update_ipv4_ebgp_with_communities() {
    let got = encode_announce(
        Family::Ipv4Unicast,
        &ebgp_attrs(),
        &[net("203.0.113.10/32")],
        true,
        false,
    )
    .expect("encode");
    let want = framed(
        2,
        "0000 002a
         40 01 01 00
         40 02 06 02 01 0000fde9
         40 03 04 c633640b
         c0 08 04 fde80064
         c0 20 0c 0000fde9 00000001 00000002
         20 cb00710a",
    );
    assert_eq!(got, vec![want.clone()]);
    let Message::Update(u) = decode(&want, true).expect("decode") else {
        panic!("not an UPDATE")
    };
    assert_eq!((u.announced, u.withdrawn, u.end_of_rib), (1, 0, None));
}

#[test]
fn update_ipv4_ibgp_has_local_pref_and_empty_as_path() {
    let attrs = RouteAttrs {
        as_path: vec![],
        local_pref: Some(150),
        communities: vec![],
        large_communities: vec![],
        ..ebgp_attrs()
    };
    let got = encode_announce(
        Family::Ipv4Unicast,
        &attrs,
        &[net("198.51.100.0/24")],
        true,
        false,
    )
    .expect("encode");
    let want = framed(
        2,
        "0000 0015
         40 01 01 00
         40 02 00
         40 03 04 c633640b
         40 05 04 00000096
         18 c63364",
    );
    assert_eq!(got, vec![want.clone()]);
    assert!(matches!(decode(&want, true), Ok(Message::Update(_))));
}

#[test]
fn update_two_octet_peer_gets_as_trans_and_as4_path() {
    let attrs = RouteAttrs {
        as_path: vec![4_200_000_001],
        communities: vec![],
        large_communities: vec![],
        ..ebgp_attrs()
    };
    let got = encode_announce(
        Family::Ipv4Unicast,
        &attrs,
        &[net("203.0.113.0/24")],
        false,
        false,
    )
    .expect("encode");
    let want = framed(
        2,
        "0000 001b
         40 01 01 00
         40 02 04 02 01 5ba0
         40 03 04 c633640b
         c0 11 06 02 01 fa56ea01
         18 cb0071",
    );
    assert_eq!(got, vec![want.clone()]);
    assert!(matches!(decode(&want, false), Ok(Message::Update(_))));
}

#[test]
fn update_ipv6_in_mp_reach() {
    let attrs = RouteAttrs {
        next_hop: "2001:db8::11".parse().expect("ip"),
        communities: vec![],
        large_communities: vec![],
        ..ebgp_attrs()
    };
    let got = encode_announce(
        Family::Ipv6Unicast,
        &attrs,
        &[net("2001:db8::200/128")],
        true,
        false,
    )
    .expect("encode");
    let want = framed(
        2,
        "0000 0037
         40 01 01 00
         40 02 06 02 01 0000fde9
         90 0e 0026 0002 01 10 20010db8000000000000000000000011 00
            80 20010db8000000000000000000000200",
    );
    assert_eq!(got, vec![want.clone()]);
    let Message::Update(u) = decode(&want, true).expect("decode") else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced, 1);
}

#[test]
fn update_ipv4_over_mp_reach() {
    let attrs = RouteAttrs {
        communities: vec![],
        large_communities: vec![],
        ..ebgp_attrs()
    };
    let got = encode_announce(
        Family::Ipv4Unicast,
        &attrs,
        &[net("203.0.113.10/32")],
        true,
        true,
    )
    .expect("encode");
    let want = framed(
        2,
        "0000 001f
         40 01 01 00
         40 02 06 02 01 0000fde9
         90 0e 000e 0001 01 04 c633640b 00 20 cb00710a",
    );
    assert_eq!(got, vec![want.clone()]);
    let Message::Update(u) = decode(&want, true).expect("decode") else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced, 1);
}

#[test]
fn withdrawals_ipv4_classic_and_ipv6_mp_unreach() {
    let v4 =
        encode_withdraw(Family::Ipv4Unicast, &[net("203.0.113.10/32")], false).expect("encode");
    assert_eq!(v4, vec![framed(2, "0005 20cb00710a 0000")]);
    let v6 =
        encode_withdraw(Family::Ipv6Unicast, &[net("2001:db8::200/128")], false).expect("encode");
    let want = framed(
        2,
        "0000 0018 90 0f 0014 0002 01 80 20010db8000000000000000000000200",
    );
    assert_eq!(v6, vec![want.clone()]);
    let Message::Update(u) = decode(&want, true).expect("decode") else {
        panic!("not an UPDATE")
    };
    assert_eq!((u.withdrawn, u.end_of_rib), (1, None));
}

#[test]
fn end_of_rib_both_families() {
    let v4 = encode_end_of_rib(Family::Ipv4Unicast, false).expect("encode");
    assert_eq!(v4, framed(2, "0000 0000"));
    let v6 = encode_end_of_rib(Family::Ipv6Unicast, false).expect("encode");
    assert_eq!(v6, framed(2, "0000 0007 90 0f 0003 0002 01"));
    for (m, f) in [(v4, Family::Ipv4Unicast), (v6, Family::Ipv6Unicast)] {
        let Message::Update(u) = decode(&m, true).expect("decode") else {
            panic!("not an UPDATE")
        };
        assert_eq!(u.end_of_rib, Some(f));
    }
}

#[test]
fn keepalive_notification_route_refresh() {
    assert_eq!(encode_keepalive(), framed(4, ""));
    assert_eq!(decode(&framed(4, ""), true), Ok(Message::Keepalive));
    let n = N::new(6, 2, vec![]);
    assert_eq!(n.encode(), framed(3, "06 02"));
    assert_eq!(
        decode(&framed(3, "04 00 beef"), true),
        Ok(Message::Notification(N::new(4, 0, vec![0xbe, 0xef])))
    );
    let rr = encode_route_refresh(Family::Ipv6Unicast).expect("encode");
    assert_eq!(rr, framed(5, "0002 00 01"));
    assert_eq!(
        decode(&rr, true),
        Ok(Message::RouteRefresh(Some(Family::Ipv6Unicast)))
    );
}

#[test]
fn large_announcements_are_split_under_4096_bytes() {
    let prefixes: Vec<ipnet::IpNet> = (0..2000u32)
        .map(|i| {
            ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).expect("net"),
            )
        })
        .collect();
    let msgs = encode_announce(Family::Ipv4Unicast, &ebgp_attrs(), &prefixes, true, false)
        .expect("encode");
    assert!(msgs.len() >= 2);
    let mut total = 0;
    for m in &msgs {
        assert!(m.len() <= MAX_MESSAGE_LEN);
        let Message::Update(u) = decode(m, true).expect("decode") else {
            panic!("not an UPDATE")
        };
        total += u.announced;
    }
    assert_eq!(total, prefixes.len());
}

fn notif(m: &[u8], asn4: bool) -> N {
    decode(m, asn4).expect_err("must be refused").notification()
}

#[test]
fn header_errors() {
    let mut bad_marker = msg(19, 4, "");
    bad_marker[3] = 0;
    assert_eq!(notif(&bad_marker, true), N::new(1, 1, vec![]));
    // Length below the minimum, a KEEPALIVE longer than 19, above 4096.
    assert_eq!(notif(&msg(18, 4, ""), true), N::new(1, 2, vec![0, 18]));
    assert_eq!(notif(&msg(20, 4, "00"), true), N::new(1, 2, vec![0, 20]));
    assert_eq!(
        notif(&msg(22, 2, "000000"), true),
        N::new(1, 2, vec![0, 22])
    );
    assert_eq!(
        notif(&msg(5000, 2, "0000 0000"), true),
        N::new(1, 2, vec![0x13, 0x88])
    );
    assert_eq!(notif(&msg(19, 9, ""), true), N::new(1, 3, vec![9]));
}

#[test]
fn open_errors() {
    // Version 3: netgauze answers 2/1.
    let n = notif(&framed(1, "03 fde8 00b4 c6336401 00"), false);
    assert_eq!((n.code, n.subcode), (2, 1));
}

#[test]
fn unknown_optional_transitive_attribute_is_accepted() {
    let m = framed(
        2,
        "0000 0013
         40 01 01 00
         40 02 00
         40 03 04 c633640b
         c0 63 02 abcd
         18 cb0071",
    );
    let Message::Update(u) = decode(&m, true).expect("accepted") else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.announced, 1);
}

#[test]
fn unknown_well_known_attribute_is_3_2_with_the_attribute() {
    let m = framed(
        2,
        "0000 0013
         40 01 01 00
         40 02 00
         40 03 04 c633640b
         40 63 02 abcd
         18 cb0071",
    );
    assert_eq!(notif(&m, true), N::new(3, 2, hex("40 63 02 abcd")));
}

#[test]
fn attribute_list_overrun_is_3_1() {
    // Total attribute length 0x30 runs past the message.
    let m = framed(2, "0000 0030 40 01 01 00 40 02 00");
    assert_eq!(notif(&m, true), N::new(3, 1, vec![]));
    // An attribute whose own length runs past the list.
    let m = framed(2, "0000 0007 40 01 01 00 40 02 05");
    assert_eq!(notif(&m, true), N::new(3, 1, vec![]));
}

#[test]
fn truncated_mp_reach_is_an_update_error() {
    // MP_REACH claims a /128 but holds only 8 bytes of it.
    let m = framed(
        2,
        "0000 0029
         40 01 01 00
         40 02 00
         90 0e 001e 0002 01 10 20010db8000000000000000000000011 00 80 20010db800000000",
    );
    let n = notif(&m, true);
    assert_eq!(n.code, 3, "{n}");
    assert!([1, 9].contains(&n.subcode), "{n}");
}
