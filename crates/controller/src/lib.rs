//! ferrolb's live controller: watches Services, Namespaces, IPAddressPools and
//! Communities, assigns LoadBalancer addresses with `ferrolb_allocator`, and
//! writes Service status, pool status, events, ConfigurationState and metrics
//! (docs/controller.md describes behaviour and the choices made).

pub mod client;
pub mod error;
pub mod events;
pub mod http_server;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod options;
pub mod service_status;

pub use error::ControllerError;
pub use options::ControllerOptions;
