//! The ferrolb condition on a Service, derived from a convergence result, so
//! `kubectl get svc -o yaml` says whether the Service has its addresses and,
//! if not, why (with the allocator's per-pool explanation).

use ferrolb_allocator::{Convergence, ServiceView};

use crate::service_status::ConditionSpec;

/// Reason of the condition when addresses are assigned.
pub const REASON_ASSIGNED: &str = "IPAllocated";
/// Reason while a LoadBalancer Service waits without a known failure.
pub const REASON_PENDING: &str = "Pending";

/// `None`: the Service is not a LoadBalancer any more, so the condition
/// is removed along with the rest of the controller's state.
pub fn for_convergence(view: &ServiceView, conv: &Convergence) -> Option<ConditionSpec> {
    if !view.is_load_balancer() {
        return None;
    }
    if let Some(f) = &conv.failure {
        return Some(ConditionSpec {
            status: false,
            // FailureKind's variant names are the documented reasons
            // (NoMatchingPool, PoolExhausted, ...), valid CamelCase.
            reason: format!("{:?}", f.kind),
            message: f.message.clone(),
        });
    }
    if conv.ingress.is_empty() {
        return Some(ConditionSpec {
            status: false,
            reason: REASON_PENDING.to_string(),
            message: "no address assigned yet".to_string(),
        });
    }
    let ips = conv.ingress.iter().map(|ip| format!("{ip:?}")).collect::<Vec<_>>().join(" ");
    let message = match &conv.pool {
        Some(pool) => format!("Assigned IP [{ips}] from pool {pool:?}"),
        None => format!("Assigned IP [{ips}]"),
    };
    Some(ConditionSpec { status: true, reason: REASON_ASSIGNED.to_string(), message })
}
