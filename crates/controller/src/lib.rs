//! ferrolb's live controller: watches Services, Namespaces, IPAddressPools and
//! Communities, assigns LoadBalancer addresses with `ferrolb_allocator`, and
//! writes Service status, pool status, events, ConfigurationState and metrics
//! (docs/controller.md describes behaviour and the choices made).
//!
//! Entry point: [`run`].

pub mod client;
pub mod condition;
pub mod config_state;
pub mod error;
pub mod events;
pub mod http_server;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod order;
pub mod overlay;
pub mod pool_status;
pub mod retry;
pub mod service_status;
pub mod session;
pub mod view;
pub mod watch;
pub mod writer;

mod runner;

pub use error::ControllerError;
pub use options::{ControllerOptions, LogFormat};
pub use runner::{Controller, run, start};
