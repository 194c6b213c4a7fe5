//! Runs the controller's allocation over a fixed set of Services, as a
//! freshly started controller would (cli-contract.md "Order of processing"),
//! using the same `converge` the live controller calls.

use std::cmp::Ordering;

use ferrolb_allocator::{
    Allocator, ConvergeOptions, Convergence, PoolDef, ServiceView, SyncResult, annotations, converge,
};

/// The live controller repeats a reprocess-all pass while one asks for it;
/// a fixed set of objects settles in two passes (the second only moves
/// pending Services onto addresses freed during the first). The bound keeps
/// a pathological input from looping.
const MAX_PASSES: usize = 4;

/// One Service's final state.
pub struct Outcome {
    pub view: ServiceView,
    pub convergence: Convergence,
}

/// Sees every convergence: `explain` reads the allocator's state right
/// before the convergence that decided a Service's outcome.
pub trait Observer {
    fn before(&mut self, allocator: &Allocator, view: &ServiceView);
    /// `decisive`: this convergence set the Service's outcome (first pass,
    /// or a later pass that changed it).
    fn after(&mut self, view: &ServiceView, convergence: &Convergence, decisive: bool);
}

impl Observer for () {
    fn before(&mut self, _: &Allocator, _: &ServiceView) {}
    fn after(&mut self, _: &ServiceView, _: &Convergence, _: bool) {}
}

/// Sorts Services in the contract's order: those already holding addresses
/// first (namespace, name), then the rest by creation time (missing last),
/// namespace, name.
pub fn contract_order(views: &mut [ServiceView]) {
    views.sort_by(|a, b| {
        // false (holds addresses) sorts before true.
        let holds_none = |v: &ServiceView| v.ingress_ips.is_empty();
        holds_none(a).cmp(&holds_none(b)).then_with(|| {
            if a.ingress_ips.is_empty() {
                by_creation(a, b)
            } else {
                Ordering::Equal
            }
            .then_with(|| a.namespace.cmp(&b.namespace))
            .then_with(|| a.name.cmp(&b.name))
        })
    });
}

fn by_creation(a: &ServiceView, b: &ServiceView) -> Ordering {
    // RFC 3339 timestamps from the API server are all UTC with the same
    // layout, so their text order is their time order.
    match (&a.creation_timestamp, &b.creation_timestamp) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Runs passes until none asks for a reprocess, and returns every Service's
/// final state in processing order.
pub fn run(
    pools: Vec<PoolDef>,
    mut views: Vec<ServiceView>,
    opts: &ConvergeOptions,
    observer: &mut dyn Observer,
) -> (Allocator, Vec<Outcome>) {
    let mut allocator = Allocator::new();
    allocator.set_pools(pools);
    contract_order(&mut views);

    let mut results: Vec<Option<Convergence>> = vec![None; views.len()];
    for pass in 0..MAX_PASSES {
        let mut again = false;
        for (view, slot) in views.iter_mut().zip(results.iter_mut()) {
            observer.before(&allocator, view);
            let convergence = converge(&mut allocator, view, opts);
            observer.after(view, &convergence, pass == 0 || convergence.changed);
            again |= convergence.result == SyncResult::ReprocessAll;
            apply(view, &convergence);
            *slot = Some(convergence);
        }
        if !again {
            break;
        }
    }

    let outcomes = views
        .into_iter()
        .zip(results)
        .filter_map(|(view, c)| c.map(|convergence| Outcome { view, convergence }))
        .collect();
    (allocator, outcomes)
}

/// What the controller would have written back: the next pass sees it, as
/// the live controller's next pass sees the updated Service.
fn apply(view: &mut ServiceView, c: &Convergence) {
    if !c.managed || !c.changed {
        return;
    }
    view.ingress_ips = c.ingress.clone();
    match &c.pool {
        Some(pool) => {
            view.annotations
                .insert(annotations::IP_ALLOCATED_FROM_POOL.to_string(), pool.clone());
        }
        None => {
            view.annotations.remove(annotations::IP_ALLOCATED_FROM_POOL);
        }
    }
}
