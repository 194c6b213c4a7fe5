//! MetalLB-compatible admission webhooks (observability.md §6).
pub mod options;
pub mod tls;
pub mod certs;
