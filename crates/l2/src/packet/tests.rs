//! Frames captured with `tcpdump -xx` between two network namespaces (Linux
//! 6.18 kernels talking to each other: 02:00:00:00:00:01 = 198.51.100.1 /
//! 2001:db8::1, 02:00:00:00:00:11 = 198.51.100.11 / 2001:db8::11).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("test hex"))
        .collect()
}

const MAC1: Mac = Mac([2, 0, 0, 0, 0, 1]);
const MAC11: Mac = Mac([2, 0, 0, 0, 0, 0x11]);

// "Request who-has 198.51.100.11 tell 198.51.100.1"
const KERNEL_ARP_REQUEST: &str = "ffff ffff ffff 0200 0000 0001 0806 0001 0800 0604 0001 0200 0000 0001 c633 6401 0000 0000 0000 c633 640b";
// "Reply 198.51.100.11 is-at 02:00:00:00:00:11"
const KERNEL_ARP_REPLY: &str = "0200 0000 0001 0200 0000 0011 0806 0001 0800 0604 0002 0200 0000 0011 c633 640b 0200 0000 0001 c633 6401";
// 2001:db8::1 > ff02::1:ff00:11: neighbor solicitation, who has 2001:db8::11
const KERNEL_NS: &str = "3333 ff00 0011 0200 0000 0001 86dd 6000 0000 0020 3aff 2001 0db8 0000 0000 0000 0000 0000 0001 ff02 0000 0000 0000 0000 0001 ff00 0011 8700 1c09 0000 0000 2001 0db8 0000 0000 0000 0000 0000 0011 0101 0200 0000 0001";
// 2001:db8::11 > 2001:db8::1: neighbor advertisement, tgt is 2001:db8::11 (S, O)
const KERNEL_NA: &str = "0200 0000 0001 0200 0000 0011 86dd 6000 0000 0020 3aff 2001 0db8 0000 0000 0000 0000 0000 0011 2001 0db8 0000 0000 0000 0000 0000 0001 8800 8a44 6000 0000 2001 0db8 0000 0000 0000 0000 0000 0011 0201 0200 0000 0011";
// :: > ff02::1:ff00:11: DAD solicitation for fe80::ff:fe00:11, with a nonce option (type 14, RFC 7527)
const KERNEL_DAD_NS: &str = "3333 ff00 0011 0200 0000 0011 86dd 6000 0000 0020 3aff 0000 0000 0000 0000 0000 0000 0000 0000 ff02 0000 0000 0000 0000 0001 ff00 0011 8700 2f9d 0000 0000 fe80 0000 0000 0000 0000 00ff fe00 0011 0e01 2bdc 787a 9b08";

#[test]
fn kernel_arp_request_decodes_and_reencodes_bit_for_bit() {
    let bytes = hex(KERNEL_ARP_REQUEST);
    let frame = Frame::decode(&bytes).expect("decode");
    let expected = Frame::arp(
        Mac::BROADCAST,
        MAC1,
        ArpPacket {
            op: ArpOp::Request,
            sha: MAC1,
            spa: Ipv4Addr::new(198, 51, 100, 1),
            tha: Mac::ZERO,
            tpa: Ipv4Addr::new(198, 51, 100, 11),
        },
    );
    assert_eq!(frame, expected);
    assert_eq!(expected.encode(), bytes);
}

#[test]
fn kernel_arp_reply_decodes_and_reencodes_bit_for_bit() {
    let bytes = hex(KERNEL_ARP_REPLY);
    let expected = Frame::arp(
        MAC1,
        MAC11,
        ArpPacket {
            op: ArpOp::Reply,
            sha: MAC11,
            spa: Ipv4Addr::new(198, 51, 100, 11),
            tha: MAC1,
            tpa: Ipv4Addr::new(198, 51, 100, 1),
        },
    );
    assert_eq!(Frame::decode(&bytes), Ok(expected.clone()));
    assert_eq!(expected.encode(), bytes);
}

#[test]
fn arp_with_ethernet_padding_decodes() {
    // Frames shorter than 60 bytes are padded on real wires.
    let mut bytes = hex(KERNEL_ARP_REQUEST);
    bytes.resize(60, 0);
    assert!(matches!(Frame::decode(&bytes), Ok(Frame::Arp { .. })));
}

#[test]
fn kernel_ns_decodes_and_reencodes_bit_for_bit() {
    let bytes = hex(KERNEL_NS);
    let v6: Ipv6Addr = "2001:db8::11".parse().expect("addr");
    let expected = Frame::ndp(
        Mac::ipv6_multicast(&solicited_node(&v6)),
        MAC1,
        "2001:db8::1".parse().expect("addr"),
        solicited_node(&v6),
        NdpMessage::Solicitation(NeighborSolicitation { target: v6, source_lla: Some(MAC1) }),
    );
    assert_eq!(Frame::decode(&bytes), Ok(expected.clone()));
    // Includes the checksum 0x1c09 the kernel computed.
    assert_eq!(expected.encode(), bytes);
}

#[test]
fn kernel_na_decodes_and_reencodes_bit_for_bit() {
    let bytes = hex(KERNEL_NA);
    let v6: Ipv6Addr = "2001:db8::11".parse().expect("addr");
    let expected = Frame::ndp(
        MAC1,
        MAC11,
        v6,
        "2001:db8::1".parse().expect("addr"),
        NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited: true,
            override_flag: true,
            target: v6,
            target_lla: Some(MAC11),
        }),
    );
    assert_eq!(Frame::decode(&bytes), Ok(expected.clone()));
    assert_eq!(expected.encode(), bytes);
}

#[test]
fn dad_ns_skips_unknown_options_and_has_no_source_lla() {
    let frame = Frame::decode(&hex(KERNEL_DAD_NS)).expect("decode");
    let Frame::Ndp { ip, msg, .. } = frame else { panic!("not NDP: {frame:?}") };
    assert_eq!(ip.src, Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        msg,
        NdpMessage::Solicitation(NeighborSolicitation {
            target: "fe80::ff:fe00:11".parse().expect("addr"),
            source_lla: None
        })
    );
}

#[test]
fn solicited_node_group_and_its_mac() {
    let a: Ipv6Addr = "2001:db8::12:3456:789a".parse().expect("addr");
    assert_eq!(solicited_node(&a), "ff02::1:ff56:789a".parse::<Ipv6Addr>().expect("addr"));
    assert_eq!(Mac::ipv6_multicast(&solicited_node(&a)), Mac([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a]));
}

#[test]
fn mac_text_round_trip_and_errors() {
    assert_eq!("02:00:00:00:00:11".parse::<Mac>(), Ok(MAC11));
    assert_eq!(MAC11.to_string(), "02:00:00:00:00:11");
    assert!("02:00:00:00:00".parse::<Mac>().is_err());
    assert!("02:00:00:00:00:11:22".parse::<Mac>().is_err());
    assert!("zz:00:00:00:00:11".parse::<Mac>().is_err());
}

fn corrupt(s: &str, at: usize, value: u8) -> Vec<u8> {
    let mut b = hex(s);
    b[at] = value;
    b
}

#[test]
fn typed_errors() {
    let req = hex(KERNEL_ARP_REQUEST);
    assert_eq!(
        Frame::decode(&req[..13]),
        Err(DecodeError::Truncated { what: "Ethernet header", need: 14, have: 13 })
    );
    assert_eq!(
        Frame::decode(&req[..41]),
        Err(DecodeError::Truncated { what: "ARP packet", need: 28, have: 27 })
    );
    assert_eq!(Frame::decode(&corrupt(KERNEL_ARP_REQUEST, 13, 0x00)), Err(DecodeError::UnsupportedEtherType(0x0800)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_ARP_REQUEST, 15, 6)), Err(DecodeError::BadHardwareType(6)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_ARP_REQUEST, 16, 0x86)), Err(DecodeError::BadProtocolType(0x8600)));
    assert_eq!(
        Frame::decode(&corrupt(KERNEL_ARP_REQUEST, 18, 8)),
        Err(DecodeError::BadAddressLengths { hlen: 8, plen: 4 })
    );
    assert_eq!(Frame::decode(&corrupt(KERNEL_ARP_REQUEST, 21, 3)), Err(DecodeError::BadArpOperation(3)));

    assert_eq!(Frame::decode(&corrupt(KERNEL_NS, 14, 0x40)), Err(DecodeError::BadIpVersion(4)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_NS, 20, 17)), Err(DecodeError::NotIcmpv6(17)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_NS, 21, 64)), Err(DecodeError::BadHopLimit(64)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_NS, 54, 128)), Err(DecodeError::NotNdp(128)));
    assert_eq!(Frame::decode(&corrupt(KERNEL_NS, 55, 1)), Err(DecodeError::BadIcmpv6Code(1)));
    assert_eq!(
        Frame::decode(&corrupt(KERNEL_NS, 57, 0x0a)),
        Err(DecodeError::BadChecksum { found: 0x1c0a, computed: 0x1c09 })
    );
    let ns = hex(KERNEL_NS);
    assert_eq!(
        Frame::decode(&ns[..ns.len() - 1]),
        Err(DecodeError::Truncated { what: "IPv6 payload", need: 72, have: 71 })
    );
}

#[test]
fn option_errors_and_multicast_target() {
    // Re-encode with a valid checksum so only the option is wrong.
    let with_body = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = hex(KERNEL_NS);
        edit(&mut b);
        let src: Ipv6Addr = "2001:db8::1".parse().expect("addr");
        let dst = solicited_node(&"2001:db8::11".parse().expect("addr"));
        b[56] = 0;
        b[57] = 0;
        let sum = icmpv6_checksum(&src, &dst, &b[54..]);
        b[56..58].copy_from_slice(&sum.to_be_bytes());
        Frame::decode(&b)
    };
    // option length 0
    assert_eq!(with_body(&|b| b[79] = 0), Err(DecodeError::BadOption));
    // option length past the end
    assert_eq!(with_body(&|b| b[79] = 2), Err(DecodeError::BadOption));
    // multicast target
    assert_eq!(
        with_body(&|b| b[62] = 0xff),
        Err(DecodeError::MulticastTarget("ff01:db8::11".parse().expect("addr")))
    );
    assert!(with_body(&|_| ()).is_ok());
}
