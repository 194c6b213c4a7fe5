//! Property tests on stable: no decoder and no announcer input panics on any
//! bytes, and encode/decode are inverse on every frame the crate can build.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrolb_l2::announcer::text::parse_script;
use ferrolb_l2::announcer::{Announcer, Input, Output, Timing};
use ferrolb_l2::packet::{
    ArpOp, ArpPacket, Frame, Mac, NdpMessage, NeighborAdvertisement, NeighborSolicitation, solicited_node,
};
use ferrolb_l2::InterfaceScope;
use proptest::prelude::*;

fn mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

fn arp_frame() -> impl Strategy<Value = Frame> {
    (any::<bool>(), mac(), mac(), any::<u32>(), mac(), any::<u32>(), mac()).prop_map(
        |(req, dst, sha, spa, tha, tpa, src)| {
            let op = if req { ArpOp::Request } else { ArpOp::Reply };
            Frame::arp(dst, src, ArpPacket { op, sha, spa: Ipv4Addr::from(spa), tha, tpa: Ipv4Addr::from(tpa) })
        },
    )
}

fn unicast_v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from).prop_filter("not multicast", |a| !a.is_multicast())
}

fn ndp_frame() -> impl Strategy<Value = Frame> {
    (
        any::<bool>(),
        mac(),
        mac(),
        any::<u128>(),
        any::<u128>(),
        unicast_v6(),
        proptest::option::of(mac()),
        any::<[bool; 3]>(),
    )
        .prop_map(|(ns, dst, src, s, d, target, lla, [r, so, o])| {
            let msg = if ns {
                NdpMessage::Solicitation(NeighborSolicitation { target, source_lla: lla })
            } else {
                NdpMessage::Advertisement(NeighborAdvertisement {
                    router: r,
                    solicited: so,
                    override_flag: o,
                    target,
                    target_lla: lla,
                })
            };
            Frame::ndp(dst, src, Ipv6Addr::from(s), Ipv6Addr::from(d), msg)
        })
}

fn any_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![arp_frame(), ndp_frame()]
}

/// An announcer owning addresses on two usable links, past its first round.
fn busy_announcer() -> Announcer {
    let mut a = Announcer::new(Timing::default());
    let script = "@0 interfaces
  2 eth0 02:00:00:00:00:11 up carrier broadcast ll=fe80::ff:fe00:11
  3 eth1 02:00:00:00:00:12 up carrier broadcast ll=fe80::ff:fe00:12
";
    for (at, input) in parse_script(script).expect("script") {
        a.handle(at, input);
    }
    let set: BTreeMap<IpAddr, InterfaceScope> = [
        ("198.51.100.200".parse().expect("ip"), InterfaceScope::All),
        ("2001:db8::200".parse().expect("ip"), InterfaceScope::All),
    ]
    .into();
    a.handle(Duration::ZERO, Input::SetAnnounced(set));
    a
}

/// Whatever the announcer sends must itself be a valid frame.
fn check_outputs(outs: &[Output]) -> Result<(), TestCaseError> {
    for o in outs {
        if let Output::Send { frame, .. } = o {
            prop_assert!(Frame::decode(frame).is_ok(), "announcer sent an invalid frame: {frame:02x?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Frame::decode(&bytes);
        let _ = ArpPacket::decode(&bytes);
    }

    #[test]
    fn decode_never_panics_on_cut_or_mutated_frames(
        frame in any_frame(), cut in any::<prop::sample::Index>(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4)
    ) {
        let mut bytes = frame.encode();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let keep = cut.index(bytes.len() + 1);
        let _ = Frame::decode(&bytes[..keep]);
    }

    #[test]
    fn encode_then_decode_is_identity(frame in any_frame()) {
        let bytes = frame.encode();
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    #[test]
    fn ndp_checksum_catches_every_single_byte_change(frame in ndp_frame(), at in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let mut bytes = frame.encode();
        // Only the ICMPv6 message and the addresses are covered by the checksum.
        let i = 22 + at.index(bytes.len() - 22);
        bytes[i] = bytes[i].wrapping_add(delta);
        prop_assert!(Frame::decode(&bytes) != Ok(frame));
    }

    #[test]
    fn announcer_never_panics_on_random_frames(
        frames in proptest::collection::vec((0u32..5, proptest::collection::vec(any::<u8>(), 0..120)), 1..20)
    ) {
        let mut a = busy_announcer();
        for (i, (ifindex, bytes)) in frames.into_iter().enumerate() {
            let outs = a.handle(Duration::from_millis(i as u64 * 300), Input::Frame { ifindex, bytes });
            check_outputs(&outs)?;
        }
    }

    #[test]
    fn announcer_never_panics_on_valid_looking_frames(
        frames in proptest::collection::vec((0u32..5, any_frame(), any::<prop::sample::Index>()), 1..20)
    ) {
        let mut a = busy_announcer();
        let owned6: Ipv6Addr = "2001:db8::200".parse().expect("ip");
        for (i, (ifindex, frame, cut)) in frames.into_iter().enumerate() {
            // Aim some of them at our addresses so the answering paths run.
            let frame = match frame {
                Frame::Ndp { eth, ip, msg: NdpMessage::Solicitation(ns) } if i % 2 == 0 => Frame::Ndp {
                    eth,
                    ip: ferrolb_l2::packet::Ipv6Header { dst: solicited_node(&owned6), ..ip },
                    msg: NdpMessage::Solicitation(NeighborSolicitation { target: owned6, ..ns }),
                },
                Frame::Arp { eth, arp } if i % 2 == 0 => {
                    Frame::Arp { eth, arp: ArpPacket { tpa: "198.51.100.200".parse().expect("ip"), ..arp } }
                }
                other => other,
            };
            let bytes = frame.encode();
            let keep = if i % 3 == 0 { cut.index(bytes.len() + 1) } else { bytes.len() };
            let outs = a.handle(Duration::from_millis(i as u64 * 300), Input::Frame { ifindex, bytes: bytes[..keep].to_vec() });
            check_outputs(&outs)?;
        }
    }
}
