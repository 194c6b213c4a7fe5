//! What the controller wrote (or is writing) to a Service that the watch
//! cache may not show yet.
//!
//! Without it, a pass running between a write and its watch echo would see
//! the old status, treat the Service as unassigned, and write again (or
//! worse, pick another address). An entry is dropped as soon as the cache
//! holds a version at least as new as the written one.

use crate::service_status::Current;

#[derive(Clone, Debug, PartialEq)]
pub enum WriteState {
    /// Queued or sent, no answer yet.
    InFlight,
    /// Accepted by the API server at this resourceVersion.
    Written(String),
    /// Failed; retried with backoff. Allocation keeps believing the
    /// addresses (so a retry rewrites the same ones), comparison uses the cache.
    Failed,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Overlay {
    pub uid: Option<String>,
    pub believed: Current,
    pub state: WriteState,
}

pub use ferrolb_runtime::status::cache_caught_up;
