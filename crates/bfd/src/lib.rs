//! ferrolb's BFD (RFC 5880 asynchronous mode; RFC 5881 single hop over IPv4
//! and IPv6, RFC 5883 multi-hop ports and TTL floor) for the BGP sessions of
//! a BGPPeer with a BFDProfile. Knows nothing of Kubernetes.
//!
//! - [`packet`]: pure encode/decode of control packets;
//! - [`echo`]: pure encode/decode of our echo packets and their datagrams;
//! - [`session`]: the pure RFC 5880 §6.8 state machine (events in, actions out);
//! - [`network`]: the only module owning sockets (UDP, AF_PACKET for echo,
//!   rtnetlink for the peer's MAC);
//! - [`Bfd`]: tokio tasks per session behind a small handle (add, update,
//!   remove, watch the state), with MetalLB's BFD metrics.

pub mod echo;
mod instance;
mod metrics;
pub mod network;
pub mod packet;
pub mod profile;
pub mod session;

pub use instance::{Bfd, BfdError, Counters, Fall, SessionConfig, SessionKey, SessionStatus};
pub use profile::{Hop, Profile, ProfileError};
