//! ferrolb's in-process BGP engine: wire format ([`packet`]), the RFC 4271
//! session state machine as a pure function ([`session`]), per-peer
//! Adj-RIB-Out diffing ([`rib_out`]), sockets ([`network`]) and the tokio
//! tasks driving them ([`speaker`]). Knows nothing of Kubernetes.

pub mod network;
pub mod packet;
pub mod rib_out;
pub mod session;
pub mod speaker;
