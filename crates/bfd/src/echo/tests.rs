//! Byte vectors (computed apart from this code, with a few lines of Python
//! over the RFC 768 / RFC 1071 definitions) and every decoder check.

use super::*;

const V4: &str = "45c0002c12340000ff11544fc633640bc633640b0ec90ec900188c9601100000000000070000000000000001";
const V6: &str = "6c000000001811ff20010db800000000000000000000001120010db80000000000000000000000110ec90ec90018858001100000000000070000000000000001";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn me4() -> IpAddr {
    "198.51.100.11".parse().expect("ip")
}
fn me6() -> IpAddr {
    "2001:db8::11".parse().expect("ip")
}

const ECHO: EchoPacket = EchoPacket { my_discriminator: 7, sequence: 1 };

#[test]
fn payload_bytes() {
    assert_eq!(ECHO.encode(), [1, 16, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(EchoPacket::decode(&ECHO.encode()), Ok(ECHO));
    // Reserved bytes and a tail are ignored.
    let mut b = ECHO.encode().to_vec();
    b[2] = 9;
    b.push(0xff);
    assert_eq!(EchoPacket::decode(&b), Ok(ECHO));
}

#[test]
fn payload_checks() {
    let good = ECHO.encode();
    assert_eq!(EchoPacket::decode(&good[..15]), Err(EchoDecodeError::TooShort { len: 15 }));
    let mut b = good;
    b[0] = 2;
    assert_eq!(EchoPacket::decode(&b), Err(EchoDecodeError::Version(2)));
    let mut b = good;
    b[1] = 24;
    assert_eq!(EchoPacket::decode(&b), Err(EchoDecodeError::Length(24)));
    let b = EchoPacket { my_discriminator: 0, sequence: 3 }.encode();
    assert_eq!(EchoPacket::decode(&b), Err(EchoDecodeError::ZeroDiscriminator));
}

#[test]
fn datagram_bytes_v4_and_v6() {
    assert_eq!(datagram(me4(), &ECHO, 0x1234), hex(V4));
    assert_eq!(datagram(me6(), &ECHO, 0x1234), hex(V6));
}

#[test]
fn datagrams_decode_back_with_the_looped_ttl() {
    for (me, bytes) in [(me4(), hex(V4)), (me6(), hex(V6))] {
        let mut b = bytes;
        assert_eq!(decode_datagram(&b, me), Ok(ReturnedEcho { packet: ECHO, ttl: 255 }));
        // The peer's forwarding decrements the TTL (and, IPv4, fixes the
        // header checksum: RFC 1624 incremental update, +0x0100).
        if me.is_ipv4() {
            b[8] = 254;
            let c = u16::from_be_bytes([b[10], b[11]]).wrapping_add(0x0100);
            b[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            b[7] = 254;
        }
        assert_eq!(decode_datagram(&b, me).map(|r| r.ttl), Ok(254));
    }
}

#[test]
fn datagram_checks() {
    let v4 = hex(V4);
    let check = |b: &[u8], me: IpAddr| decode_datagram(b, me).expect_err("refused");
    assert_eq!(check(&v4[..27], me4()), EchoDecodeError::DatagramTooShort { len: 27 });
    assert_eq!(check(&hex(V6), me4()), EchoDecodeError::IpVersion(6));
    let other: IpAddr = "198.51.100.1".parse().expect("ip");
    assert_eq!(check(&v4, other), EchoDecodeError::NotOurs { from: me4(), to: me4() });
    let mut b = v4.clone();
    b[0] = 0x44;
    assert_eq!(check(&b, me4()), EchoDecodeError::HeaderLength(16));
    let mut b = v4.clone();
    b[3] = 0xff;
    assert_eq!(check(&b, me4()), EchoDecodeError::IpLength { length: 0xff, len: 44 });
    let mut b = v4.clone();
    b[15] ^= 1;
    assert_eq!(check(&b, me4()), EchoDecodeError::IpChecksum);
    let mut b = v4.clone();
    b[6] = 0x20; // more fragments
    b[10..12].copy_from_slice(&0u16.to_be_bytes());
    let c = fold(sum(&b[..20], 0));
    b[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(check(&b, me4()), EchoDecodeError::Fragment);
    let mut b = v4.clone();
    b[23] = 0x84; // destination port 3716
    assert_eq!(check(&b, me4()), EchoDecodeError::Port(3716));
    let mut b = v4.clone();
    b[25] = 0x30;
    assert_eq!(check(&b, me4()), EchoDecodeError::UdpLength { length: 0x30, room: 24 });
    let mut b = v4.clone();
    b[43] ^= 1;
    assert_eq!(check(&b, me4()), EchoDecodeError::UdpChecksum);
    // IPv4 without a UDP checksum is accepted; IPv6 without one is not.
    let mut b = v4.clone();
    b[26..28].copy_from_slice(&[0, 0]);
    assert!(decode_datagram(&b, me4()).is_ok());
    let mut b = hex(V6);
    b[46..48].copy_from_slice(&[0, 0]);
    assert_eq!(check(&b, me6()), EchoDecodeError::UdpChecksum);
    let mut b = hex(V6);
    b[6] = 0; // hop-by-hop options header first
    assert_eq!(check(&b, me6()), EchoDecodeError::NotUdp(0));
    let mut b = hex(V6);
    b[5] = 4;
    assert_eq!(check(&b, me6()), EchoDecodeError::UdpLength { length: 4, room: 4 });
}

proptest::proptest! {
    #[test]
    fn any_echo_round_trips(discr in 1u32.., sequence: u64, id: u16, v6: bool) {
        let me = if v6 { me6() } else { me4() };
        let p = EchoPacket { my_discriminator: discr, sequence };
        proptest::prop_assert_eq!(decode_datagram(&datagram(me, &p, id), me), Ok(ReturnedEcho { packet: p, ttl: 255 }));
    }

    #[test]
    fn any_bytes_decode_without_panic(bytes: Vec<u8>, v6: bool) {
        let me = if v6 { me6() } else { me4() };
        let _ = decode_datagram(&bytes, me);
        let _ = EchoPacket::decode(&bytes);
    }
}
