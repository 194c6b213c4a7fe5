//! ferrolb's live controller: watches Services, Namespaces, IPAddressPools and
//! Communities, assigns LoadBalancer addresses with `ferrolb_allocator`, and
//! writes Service status, pool status, events, ConfigurationState and metrics
//! (docs/controller.md describes behaviour and the choices made).
//! Process plumbing (client, logging, endpoints, leader election, event
//! recorder, status writes) comes from `ferrolb_runtime`.
//!
//! Entry point: [`run`].

pub mod condition;
pub mod error;
pub mod memberlist;
pub mod metrics;
pub mod options;
pub mod order;
pub mod overlay;
pub mod pool_status;
pub mod service_record;
pub mod service_status;
pub mod session;
pub mod watch;

mod runner;

pub use error::ControllerError;
pub use ferrolb_runtime::logging::LogFormat;
pub use options::ControllerOptions;
pub use runner::{Controller, run, start};
