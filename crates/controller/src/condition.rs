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
            reason: f.kind.reason().to_string(),
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ferrolb_allocator::FailureKind;

    /// The reasons docs/controller.md promises operators (the `False` row of the
    /// condition table) are exactly the ones written.
    #[test]
    fn documented_reasons_are_the_written_ones() {
        let doc = include_str!("../../../docs/controller.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| False | the allocator's `FailureKind`"))
            .expect("docs/controller.md has the FailureKind row of the condition table");
        let cell = row.split('|').nth(2).expect("reason cell");
        let documented: BTreeSet<&str> = cell.split('`').skip(1).step_by(2).filter(|w| *w != "FailureKind").collect();
        let written: BTreeSet<&str> = FailureKind::ALL.iter().map(|k| k.reason()).collect();
        assert_eq!(documented, written);
        assert_eq!(written.len(), FailureKind::ALL.len());
    }
}
