//! Process plumbing shared by ferrolb's controller and speaker.
//!
//! - [`client`]: kube client from `--kubeconfig` or in-cluster, with a
//!   request-counting tower layer;
//! - [`logging`]: MetalLB's `--log-level` values, JSON or text lines;
//! - [`http_server`]: `/metrics` and pluggable `/healthz`, `/readyz`;
//! - [`leader`]: Lease-based leader election;
//! - [`events`]: core/v1 Event recorder with aggregation and rate limiting;
//! - [`retry`]: exponential backoff per key;
//! - [`status`]: the generic keyed status writer;
//! - [`config_state`]: a component's `ConfigurationState`, on that writer;
//! - [`owner`]: the owner reference to the component's own Pod;
//! - [`k8s_client_metrics`]: the `metallb_k8s_client_*` families;
//! - [`Error`]: start-up failures, with a bounded metric label.
//!
//! docs/interfaces.md lists the public API.

#![warn(missing_docs)]

pub mod client;
pub mod config_state;
pub mod error;
pub mod events;
pub mod http_server;
pub mod k8s_client_metrics;
pub mod leader;
pub mod logging;
pub mod mem;
pub mod owner;
pub mod retry;
pub mod status;

pub use error::Error;
