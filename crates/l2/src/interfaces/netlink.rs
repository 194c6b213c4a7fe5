//! Links and addresses from rtnetlink, and a change stream on the same socket.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;

use super::InterfaceInfo;

#[derive(Debug, thiserror::Error)]
pub enum InterfacesError {
    #[error("opening the rtnetlink socket: {0}")]
    Open(#[source] std::io::Error),
    #[error("rtnetlink dump: {0}")]
    Dump(#[from] rtnetlink::Error),
    #[error("the rtnetlink connection closed")]
    Closed,
}

type Notifications = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// One rtnetlink socket: dumps on request, and link/address notifications
/// (so a carrier loss is seen at once, not at the next periodic rescan).
/// The socket lives in the network namespace of the thread that opened it.
pub struct Scanner {
    handle: rtnetlink::Handle,
    notifications: Notifications,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Scanner {
    /// Must be called inside a tokio runtime.
    pub fn open() -> Result<Self, InterfacesError> {
        let groups = [MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr, MulticastGroup::Ipv6Ifaddr];
        let (connection, handle, notifications) =
            rtnetlink::new_multicast_connection(&groups).map_err(InterfacesError::Open)?;
        Ok(Self { handle, notifications, connection: tokio::spawn(connection) })
    }

    /// Every link with its addresses, ordered by index.
    pub async fn scan(&self) -> Result<Vec<InterfaceInfo>, InterfacesError> {
        let mut links = BTreeMap::new();
        let mut dump = self.handle.link().get().execute();
        while let Some(msg) = dump.next().await {
            let info = link_info(&msg?);
            links.insert(info.index, info);
        }
        let mut dump = self.handle.address().get().execute();
        while let Some(msg) = dump.next().await {
            let msg = msg?;
            if let Some(link) = links.get_mut(&msg.header.index) {
                add_address(link, &msg);
            }
        }
        Ok(links.into_values().collect())
    }

    /// Waits for a link or address notification, then for 50 ms more and
    /// swallows what came meanwhile: a burst (a pod's veth pair and its
    /// addresses, an interface flapping) costs one rescan.
    pub async fn changed(&mut self) -> Result<(), InterfacesError> {
        self.notifications.next().await.ok_or(InterfacesError::Closed)?;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while self.notifications.try_recv().is_ok() {}
        Ok(())
    }
}

fn link_info(msg: &LinkMessage) -> InterfaceInfo {
    let flags = msg.header.flags;
    let mut info = InterfaceInfo {
        index: msg.header.index,
        name: String::new(),
        mac: [0; 6],
        up: flags.contains(LinkFlags::Up),
        carrier: flags.contains(LinkFlags::LowerUp),
        broadcast: flags.contains(LinkFlags::Broadcast),
        noarp: flags.contains(LinkFlags::Noarp),
        has_master: false,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        link_local: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Address(a) => {
                if let Ok(mac) = <[u8; 6]>::try_from(a.as_slice()) {
                    info.mac = mac;
                }
            }
            LinkAttribute::Controller(_) => info.has_master = true,
            _ => {}
        }
    }
    info
}

fn add_address(link: &mut InterfaceInfo, msg: &AddressMessage) {
    let mut address = None;
    let mut local = None;
    let mut unusable = msg.header.flags.intersects(AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed);
    for attr in &msg.attributes {
        match attr {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            AddressAttribute::Flags(f) => {
                unusable |= f.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed);
            }
            _ => {}
        }
    }
    let prefix = msg.header.prefix_len;
    match (msg.header.family, local.or(address)) {
        // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point links).
        (AddressFamily::Inet, Some(IpAddr::V4(a))) => {
            if let Ok(net) = ipnet::Ipv4Net::new(a, prefix) {
                link.ipv4.push(net);
            }
        }
        (AddressFamily::Inet6, _) => {
            if let Some(IpAddr::V6(a)) = address {
                if let Ok(net) = ipnet::Ipv6Net::new(a, prefix) {
                    link.ipv6.push(net);
                }
                if a.is_unicast_link_local() && !unusable && link.link_local.is_none() {
                    link.link_local = Some(a);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Netlink dumps need no privilege: this reads the test's own namespace.
    #[tokio::test]
    async fn scan_sees_loopback() {
        let scanner = Scanner::open().expect("netlink");
        let links = scanner.scan().await.expect("scan");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo exists in every namespace");
        assert_eq!(lo.index, 1);
        assert!(!lo.broadcast && !lo.arp_usable(), "{lo:?}");
        if lo.up {
            assert!(lo.ipv4.iter().any(|n| n.addr().is_loopback()), "{lo:?}");
        }
    }
}
