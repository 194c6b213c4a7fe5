//! ferrolb's layer 2 answering (speaker.md §3.3-3.7): ARP and IPv6 neighbor
//! discovery for Service addresses, gratuitous announcements and conflict
//! detection. Knows nothing of Kubernetes.
//!
//! - [`packet`]: pure encode/decode of the frames;
//! - [`announcer`]: the pure state machine (inputs in, frames/joins/reports out);
//! - [`interfaces`]: netlink scan and change stream, exclusion list, usability;
//! - [`network`]: the only module owning sockets;
//! - [`Responder`]: the async handle tying them together.

pub mod announcer;
pub mod interfaces;
mod metrics;
pub mod network;
pub mod packet;
mod responder;
mod strict_arp;

pub use interfaces::{ExcludeList, InterfaceInfo, InterfaceScope};
pub use responder::{L2Error, L2Report, Responder, ResponderConfig};
pub use strict_arp::{judge as judge_strict_arp, strict_arp_problem};
