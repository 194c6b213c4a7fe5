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

/// Whether a cached object at `cached_rv` already includes a write that
/// produced `written_rv`.
///
/// resourceVersions are opaque by contract; with the etcd3 storage they are
/// increasing integers, which is used when both parse. Otherwise the cache
/// is trusted (equal: it is the write; different: assumed newer), which at
/// worst costs one redundant, idempotent write.
pub fn cache_caught_up(cached_rv: Option<&str>, written_rv: &str) -> bool {
    let Some(cached) = cached_rv else { return false };
    match (cached.parse::<u64>(), written_rv.parse::<u64>()) {
        (Ok(c), Ok(w)) => c >= w,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_up() {
        assert!(cache_caught_up(Some("10"), "10"));
        assert!(cache_caught_up(Some("11"), "10"));
        assert!(!cache_caught_up(Some("9"), "10"));
        assert!(!cache_caught_up(None, "10"));
        assert!(cache_caught_up(Some("x"), "y"));
        assert!(cache_caught_up(Some("x"), "x"));
    }
}
