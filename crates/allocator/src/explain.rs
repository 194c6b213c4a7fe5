//! `ferrolb explain`: every pool in the order the allocator considers them,
//! eligible or not and why, and the outcome — computed on a copy of the
//! allocator so explaining never changes anything.

use std::fmt;

use crate::allocator::Allocator;
use crate::claim::ClaimantParts;
use crate::converge::{
    AllocationPath, ConvergeOptions, Convergence, EventType, Trace, converge_traced,
};
use crate::gofmt::quote;
use crate::select::Shape;
use crate::service::{ServiceKey, ServiceView};
use crate::verdict::{Mode, PoolVerdict, VerdictReason, shape_of};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub service: ServiceKey,
    pub path: AllocationPath,
    /// Every pool, in consideration order.
    pub pools: Vec<PoolVerdict>,
    /// What converging the Service now would do.
    pub outcome: Convergence,
}

/// Explains with the default options (no `--lb-class`).
pub fn explain(alloc: &Allocator, view: &ServiceView) -> Explanation {
    explain_with(alloc, view, &ConvergeOptions::default())
}

pub fn explain_with(alloc: &Allocator, view: &ServiceView, opts: &ConvergeOptions) -> Explanation {
    let mut sim = alloc.clone();
    let mut trace = Trace::default();
    let outcome = converge_traced(&mut sim, view, opts, Some(&mut trace));
    let path = trace.path.unwrap_or(AllocationPath::NotAttempted);
    let pools = if trace.pools.is_empty() {
        static_verdicts(&sim, view, &path, &outcome)
    } else {
        trace.pools
    };
    Explanation {
        service: view.key(),
        path,
        pools,
        outcome,
    }
}

/// Verdicts when no allocation was attempted: the pool holding kept
/// addresses, and every other pool's eligibility.
fn static_verdicts(
    sim: &Allocator,
    view: &ServiceView,
    path: &AllocationPath,
    outcome: &Convergence,
) -> Vec<PoolVerdict> {
    let parts = ClaimantParts::of(view);
    let c = parts.claimant(view);
    let shape = match view.family() {
        Ok(family) => shape_of(family, view.policy(), view.primary_family()),
        Err(_) => return names_only(sim),
    };
    let mut verdicts = sim.verdicts(&c, Mode::Auto, shape);
    if *path == AllocationPath::Kept {
        let holder = outcome.pool.as_deref();
        for v in &mut verdicts {
            if Some(&*v.pool) == holder {
                v.reason = VerdictReason::Kept;
                v.eligible = true;
            } else if v.eligible {
                v.reason = VerdictReason::NotTriedKept;
            }
        }
    }
    let _: Shape = shape;
    verdicts
}

fn names_only(sim: &Allocator) -> Vec<PoolVerdict> {
    sim.consideration_order()
        .into_iter()
        .map(|p| PoolVerdict {
            pool: sim.shared_pool_name(p),
            eligible: false,
            reason: VerdictReason::Rejected {
                error: "the service's cluster IPs have no usable family".to_string(),
            },
        })
        .collect()
}

impl fmt::Display for AllocationPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocationPath::Unmanaged => f.write_str("not handled (load-balancer class)"),
            AllocationPath::NotLoaded => f.write_str("no pool configuration loaded yet"),
            AllocationPath::NotLoadBalancer => f.write_str("not of type LoadBalancer"),
            AllocationPath::NotAttempted => f.write_str("no allocation attempted"),
            AllocationPath::Kept => f.write_str("keeps its current addresses"),
            AllocationPath::RequestedIps(ips) => {
                let list: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
                write!(f, "requested addresses {}", list.join(", "))
            }
            AllocationPath::RequestedPool(p) => write!(f, "requested pool {}", quote(p)),
            AllocationPath::Automatic => f.write_str("automatic allocation"),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "service {}", self.service)?;
        writeln!(f, "path: {}", self.path)?;
        if self.pools.is_empty() {
            writeln!(f, "pools: none")?;
        } else {
            writeln!(f, "pools, in the order the allocator considers them:")?;
            for (i, v) in self.pools.iter().enumerate() {
                let state = if v.eligible {
                    "eligible"
                } else {
                    "not eligible"
                };
                writeln!(f, "  {}. {} ({state}): {}", i + 1, quote(&v.pool), v.reason)?;
            }
        }
        let o = &self.outcome;
        if let Some(why) = &o.ignored {
            writeln!(f, "outcome: ignored: {why}")?;
        } else if let Some(failure) = &o.failure {
            writeln!(f, "outcome: pending: {}", failure.message)?;
        } else if o.ingress.is_empty() {
            writeln!(f, "outcome: no address")?;
        } else {
            write!(f, "outcome: assigned {}", o.ingress.join(", "))?;
            match &o.pool {
                Some(p) => writeln!(f, " from pool {}", quote(p))?,
                None => writeln!(f)?,
            }
        }
        for e in &o.events {
            let t = match e.type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            };
            writeln!(f, "event: {t} {}: {}", e.reason, e.message)?;
        }
        Ok(())
    }
}
