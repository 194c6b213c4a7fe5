//! The routers' link-local addresses on an interface, for BGP unnumbered
//! (a BGPPeer with `interface` and no address). FRR learns them from Router
//! Advertisements; so does the kernel, which keeps each advertising router
//! in its neighbour table with the router flag. Reading that table (over
//! rtnetlink, the maintained crate the layer 2 crate uses too) gives the
//! same answer without a second RA listener.

use std::net::Ipv6Addr;

use futures::StreamExt;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState};
use netlink_packet_route::AddressFamily;

#[derive(Debug, thiserror::Error)]
pub enum NeighborsError {
    #[error("opening an rtnetlink socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("rtnetlink neighbour dump: {0}")]
    Dump(#[from] rtnetlink::Error),
}

/// The link-local addresses of the routers the kernel knows on interface
/// `name` (usable entries only), sorted; none when there is no such
/// interface.
pub async fn routers_on(name: &str) -> Result<Vec<Ipv6Addr>, NeighborsError> {
    let index = super::if_index(name);
    if index == 0 {
        return Ok(Vec::new());
    }
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NeighborsError::Open)?;
    let connection = tokio::spawn(connection);
    let mut dump = handle.neighbours().get().set_address_family(AddressFamily::Inet6).execute();
    let mut routers = Vec::new();
    let mut failure = None;
    while let Some(msg) = dump.next().await {
        match msg {
            Ok(msg) => routers.extend(router_address(&msg, index)),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    connection.abort();
    if let Some(e) = failure {
        return Err(e.into());
    }
    routers.sort();
    routers.dedup();
    Ok(routers)
}

/// The entry's address when it is a usable router entry on `index`.
fn router_address(msg: &NeighbourMessage, index: u32) -> Option<Ipv6Addr> {
    let h = &msg.header;
    let usable = !matches!(h.state, NeighbourState::Failed | NeighbourState::Incomplete | NeighbourState::None);
    if h.ifindex != index || !h.flags.contains(NeighbourFlags::Router) || !usable {
        return None;
    }
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) if is_link_local(ip) => Some(*ip),
        _ => None,
    })
}

fn is_link_local(ip: &Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u32, flags: NeighbourFlags, state: NeighbourState, ip: &str) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.ifindex = index;
        m.header.flags = flags;
        m.header.state = state;
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip.parse().unwrap())));
        m
    }

    #[test]
    fn only_usable_link_local_routers_of_the_interface() {
        let router = NeighbourFlags::Router;
        assert_eq!(router_address(&entry(2, router, NeighbourState::Stale, "fe80::1"), 2), Some("fe80::1".parse().unwrap()));
        assert_eq!(router_address(&entry(3, router, NeighbourState::Stale, "fe80::1"), 2), None, "another interface");
        assert_eq!(router_address(&entry(2, NeighbourFlags::empty(), NeighbourState::Reachable, "fe80::2"), 2), None, "a host");
        assert_eq!(router_address(&entry(2, router, NeighbourState::Failed, "fe80::3"), 2), None, "unreachable");
        assert_eq!(router_address(&entry(2, router, NeighbourState::Reachable, "2001:db8::1"), 2), None, "not link-local");
    }
}
