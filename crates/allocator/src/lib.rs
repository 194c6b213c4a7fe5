//! Address allocation for ferrolb, a drop-in replacement for MetalLB.
//!
//! Pure Rust, no I/O: the controller and the offline `ferrolb plan` /
//! `ferrolb explain` commands share it. The rules are those of
//! `allocation.md` and `controller.md` §3; ferrolb's deliberate deviations
//! are listed in `docs/allocation.md`.
//!
//! Entry points: [`Allocator::set_pools`], [`converge`], [`Allocator::release`],
//! [`Allocator::pool_counters`] and [`explain`].

mod allocator;
mod claim;
mod converge;
mod error;
mod explain;
pub mod family;
mod freeset;
mod gofmt;
mod intern;
mod pool;
mod records;
mod select;
mod selector;
mod service;
mod space;
mod verdict;

pub use allocator::{Allocator, PoolCounters};
pub use converge::{
    AllocationPath, ConvergeOptions, Convergence, Event, EventType, SyncResult, converge,
};
pub use error::AllocError;
pub use explain::{Explanation, explain, explain_with};
pub use family::{Family, Policy, ServiceFamily};
pub use gofmt::{plain_list as go_plain_list, quote as go_quote, quoted_list as go_quoted_list};
pub use pool::{Incompatibility, PoolAllocation, PoolDef};
pub use selector::{LabelSelector, Operator, Requirement};
pub use service::{DesiredIps, Port, ServiceKey, ServiceView, annotations};
pub use verdict::{Failure, FailureKind, PoolVerdict, VerdictReason};

/// Deprecated-annotation warnings for a Service about to be written
/// (controller.md §3.4 step 3), for callers that decide to write on grounds
/// the view does not show.
pub fn deprecated_annotation_events(view: &ServiceView) -> Vec<Event> {
    view.deprecated_annotation_keys()
        .map(|key| Event {
            type_: EventType::Warning,
            reason: "deprecatedAnnotation".to_string(),
            message: format!("Service uses deprecated annotation {key}"),
        })
        .collect()
}
