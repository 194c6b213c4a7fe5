//! ferrolb's speaker (speaker.md): one per node. It never allocates; it reads
//! the addresses the controller wrote and decides, with the pure [`decide`]
//! module, what this node announces, then drives the protocol crates
//! (`ferrolb-l2`, `ferrolb-bgp`, `ferrolb-bfd`) that put those decisions on the wire.

mod bgp_sessions;
pub mod cluster;
pub mod config_load;
pub mod decide;
pub mod error;
pub mod inputs;
pub mod intern;
pub mod metrics;
pub mod netmeta;
pub mod options;
pub mod passes;
mod status_sync;
pub mod svcstatus;
pub mod watch;

mod runner;

pub use error::SpeakerError;
pub use options::SpeakerOptions;
pub use runner::{COMPONENT, run};
