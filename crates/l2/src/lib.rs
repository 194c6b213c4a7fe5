//! ferrolb's layer 2 answering (speaker.md §3.3-3.7): ARP and IPv6 neighbor
//! discovery for Service addresses, gratuitous announcements and conflict
//! detection. Knows nothing of Kubernetes.

pub mod announcer;
pub mod interfaces;
pub mod packet;

pub use interfaces::{ExcludeList, InterfaceInfo, InterfaceScope};
