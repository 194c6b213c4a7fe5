//! MetalLB-compatible admission webhooks (observability.md §6).
pub mod options;
pub mod tls;
pub mod certs;
pub mod endpoints;
pub mod policy;
pub mod admission;
pub mod cluster;
pub mod convert;
pub mod inject;
pub mod server;
