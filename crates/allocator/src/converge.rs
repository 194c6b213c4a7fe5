//! Processing one Service: controller.md §3.3 (convergence steps) and §3.4
//! (result code, deprecation events), as a pure function over the allocator.

use std::net::IpAddr;

use crate::allocator::Allocator;
use crate::claim::{Claimant, ClaimantParts};
use crate::error::AllocError;
use crate::family::{
    Policy, ServiceFamily, family_changed, family_for_addresses, go_ip_text, parse_ip,
};
use crate::gofmt::{ip_text, prefixed_quoted_ips, quote, quoted_list};
use crate::service::{ServiceView, annotations};
use crate::verdict::{Failure, FailureKind, Mode, PoolVerdict, VerdictReason, shape_of};

/// Controller options that change convergence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvergeOptions {
    /// `--lb-class`; `None` handles only Services without a class.
    pub lb_class: Option<String>,
}

pub use ferrolb_api::events::EventType;

/// A Kubernetes event to record against the Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub type_: EventType,
    pub reason: String,
    pub message: String,
}

/// controller.md §3.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncResult {
    Success,
    /// Only produced by the caller (failed write); listed for completeness.
    ErrorRetry,
    ReprocessAll,
    ErrorNoRetry,
}

/// How the addresses were (or were not) obtained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocationPath {
    /// Filtered out by load-balancer class.
    Unmanaged,
    /// No pool configuration loaded yet.
    NotLoaded,
    NotLoadBalancer,
    /// Stopped before any allocation was attempted.
    NotAttempted,
    /// The current addresses were kept (allocation.md §10.1).
    Kept,
    RequestedIps(Vec<IpAddr>),
    RequestedPool(String),
    Automatic,
}

/// The outcome of processing one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Convergence {
    /// false: filtered out by load-balancer class; the Service must not be touched.
    pub managed: bool,
    /// Why the Service is not handled (other class, not a LoadBalancer).
    pub ignored: Option<String>,
    /// `status.loadBalancer.ingress[].ip` after convergence, in order.
    pub ingress: Vec<String>,
    /// Value of `metallb.io/ip-allocated-from-pool`; `None` = absent.
    pub pool: Option<String>,
    pub events: Vec<Event>,
    pub result: SyncResult,
    /// Set when the Service ends without the addresses it needs.
    pub failure: Option<Failure>,
    /// Status or pool annotation differ from the view: the caller writes.
    pub changed: bool,
}

impl Convergence {
    /// The ingress addresses that parse as IPs.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.ingress.iter().filter_map(|s| parse_ip(s)).collect()
    }
}

/// What `explain` learns while converging.
#[derive(Clone, Debug, Default)]
pub(crate) struct Trace {
    pub path: Option<AllocationPath>,
    pub pools: Vec<PoolVerdict>,
}

struct Work {
    ingress: Vec<String>,
    pool: Option<String>,
    events: Vec<Event>,
    failure: Option<Failure>,
    failed: bool,
}

impl Work {
    fn clear(&mut self, alloc: &mut Allocator, key: &str) {
        alloc.release_key(key);
        self.ingress.clear();
        self.pool = None;
    }

    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(Event {
            type_,
            reason: reason.to_string(),
            message,
        });
    }

    fn fail(&mut self, failure: Failure) {
        self.failed = true;
        self.failure = Some(failure);
    }
}

/// Converges one Service (controller.md §3.3, §3.4): updates the allocator
/// and says what to write, which events to emit and the result code.
pub fn converge(alloc: &mut Allocator, view: &ServiceView, opts: &ConvergeOptions) -> Convergence {
    converge_traced(alloc, view, opts, None)
}

pub(crate) fn converge_traced(
    alloc: &mut Allocator,
    view: &ServiceView,
    opts: &ConvergeOptions,
    mut trace: Option<&mut Trace>,
) -> Convergence {
    let current_pool = view
        .annotations
        .get(annotations::IP_ALLOCATED_FROM_POOL)
        .cloned();
    let untouched = |ignored: Option<String>, managed: bool| Convergence {
        managed,
        ignored,
        ingress: view.ingress_ips.clone(),
        pool: current_pool.clone(),
        events: Vec::new(),
        result: SyncResult::Success,
        failure: None,
        changed: false,
    };
    if !view.handled_by(opts.lb_class.as_deref()) {
        set_path(&mut trace, AllocationPath::Unmanaged);
        let why = match (&view.load_balancer_class, &opts.lb_class) {
            (Some(class), _) => format!(
                "spec.loadBalancerClass {} is not handled by this controller",
                quote(class)
            ),
            (None, Some(wanted)) => format!(
                "has no spec.loadBalancerClass; only class {} is handled",
                quote(wanted)
            ),
            (None, None) => "not handled by this controller".to_string(),
        };
        return untouched(Some(why), false);
    }
    if !alloc.is_loaded() {
        set_path(&mut trace, AllocationPath::NotLoaded);
        return untouched(None, true);
    }

    let parts = ClaimantParts::of(view);
    let c = parts.claimant(view);
    let prev_slot = alloc.records.find(c.key);
    let prev_ips: Vec<IpAddr> = prev_slot
        .and_then(|s| alloc.records.get(s))
        .map(|r| r.ip_vec())
        .unwrap_or_default();
    let prev_key = allocation_key(alloc, prev_slot);

    let mut w = Work {
        ingress: view.ingress_ips.clone(),
        pool: current_pool.clone(),
        events: Vec::new(),
        failure: None,
        failed: false,
    };
    steps(alloc, view, &c, &mut w, &mut trace);

    let mut result = if w.failed {
        SyncResult::ErrorNoRetry
    } else {
        SyncResult::Success
    };
    let slot = alloc.records.find(c.key);
    if allocation_key(alloc, slot) != prev_key {
        result = SyncResult::ReprocessAll;
    }
    let changed = w.ingress != view.ingress_ips || w.pool != current_pool;
    if changed {
        for key in view.deprecated_annotation_keys() {
            w.event(
                EventType::Warning,
                "deprecatedAnnotation",
                format!("Service uses deprecated annotation {key}"),
            );
        }
        if !prev_ips.is_empty() && slot.is_none() && alloc.pool_for_ips(&prev_ips).is_some() {
            result = SyncResult::ReprocessAll;
        }
    }
    Convergence {
        managed: true,
        ignored: (!view.is_load_balancer()).then(|| "not of type LoadBalancer".to_string()),
        ingress: w.ingress,
        pool: w.pool,
        events: w.events,
        result,
        failure: w.failure,
        changed,
    }
}

fn set_path(trace: &mut Option<&mut Trace>, path: AllocationPath) {
    if let Some(t) = trace.as_deref_mut() {
        t.path = Some(path);
    }
}

/// (sharing key, backend key) of the record; the empty pair when unallocated.
fn allocation_key(alloc: &Allocator, slot: Option<u32>) -> (String, String) {
    slot.and_then(|s| alloc.records.get(s))
        .map(|r| {
            let (s, b) = alloc.keys.get(r.sharing);
            (s.to_string(), b.to_string())
        })
        .unwrap_or_default()
}

fn steps(
    alloc: &mut Allocator,
    view: &ServiceView,
    c: &Claimant,
    w: &mut Work,
    trace: &mut Option<&mut Trace>,
) {
    let key = c.key;
    set_path(trace, AllocationPath::NotAttempted);
    if !view.is_load_balancer() {
        set_path(trace, AllocationPath::NotLoadBalancer);
        w.clear(alloc, key);
        return;
    }
    if !alloc.has_pools() {
        w.clear(alloc, key);
        w.fail(Failure::simple(
            FailureKind::NoPools,
            "no IPAddressPool is configured",
        ));
        return;
    }
    if !view.has_cluster_ip() {
        w.clear(alloc, key);
        w.fail(Failure::simple(
            FailureKind::NoClusterIP,
            "the service has no cluster IP",
        ));
        return;
    }
    let mut lb: Vec<Option<IpAddr>> = view
        .ingress_ips
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| parse_ip(s))
        .collect();
    let policy = view.policy();
    if policy == Policy::RequireDualStack && view.cluster_ips.len() < 2 {
        let message = format!(
            "Service requires dual stack but not enough clusterips {}",
            quoted_list(&view.cluster_ips)
        );
        w.event(EventType::Warning, "not enough clusterips", message.clone());
        w.clear(alloc, key);
        w.fail(Failure::simple(FailureKind::NotEnoughClusterIPs, message));
        return;
    }

    let mut cluster_family = None;
    if lb.is_empty() {
        w.clear(alloc, key);
    } else {
        let texts: Vec<String> = lb.iter().map(|ip| go_ip_text(ip.as_ref())).collect();
        let lb_family = family_for_addresses(&texts);
        if let Err(e) = &lb_family {
            w.event(
                EventType::Warning,
                "nolbIPsIPFamily",
                format!(
                    "Failed to retrieve LBIPs IPFamily for {}: {e}",
                    quoted_list(&texts)
                ),
            );
        }
        match view.family() {
            Err(e) => {
                w.event(
                    EventType::Warning,
                    "noclusterIPsIPFamily",
                    format!(
                        "Failed to retrieve ClusterIPs IPFamily for {} {}: {e}",
                        quoted_list(&view.cluster_ips),
                        view.cluster_ip.as_deref().unwrap_or("")
                    ),
                );
                w.fail(Failure::simple(FailureKind::InvalidClusterIPs, e));
                return;
            }
            Ok(family) => {
                cluster_family = Some(family);
                if family_changed(lb_family.ok(), family, policy) {
                    w.clear(alloc, key);
                    lb.clear();
                }
            }
        }
    }

    if !lb.is_empty() {
        if let Err(e) = alloc.claim(c, &lb) {
            w.event(
                EventType::Normal,
                "ClearAssignment",
                format!(
                    "current IP for {} not allowed by config, will attempt for new IP assignment: {e}",
                    quote(key)
                ),
            );
            w.clear(alloc, key);
            lb.clear();
        }
        let desired_pool = view.requested_pool();
        if !lb.is_empty()
            && !desired_pool.is_empty()
            && record_pool(alloc, key) != Some(desired_pool)
        {
            w.clear(alloc, key);
            lb.clear();
        }
        match view.desired_ips() {
            Err(e) => {
                w.event(
                    EventType::Warning,
                    "LoadBalancerFailed",
                    format!("invalid requested loadbalancer IPs: {e}"),
                );
                w.fail(Failure::simple(FailureKind::InvalidRequest, e));
                return;
            }
            Ok(Some(desired)) => {
                // Upstream sorts the current list in place while comparing, so
                // the status order becomes the text order (allocation.md §10.1).
                lb.sort_by_key(|ip| go_ip_text(ip.as_ref()));
                alloc.reorder_record(key, &lb);
                let mut wanted = desired.ips.clone();
                wanted.sort_by_key(|ip| ip.to_string());
                let current: Vec<IpAddr> = lb.iter().flatten().copied().collect();
                if current.len() != lb.len() || current != wanted {
                    w.clear(alloc, key);
                    lb.clear();
                }
            }
            Ok(None) => {}
        }
        if !lb.is_empty() {
            set_path(trace, AllocationPath::Kept);
        }
    }

    if lb.len() == 1
        && policy == Policy::PreferDualStack
        && cluster_family == Some(ServiceFamily::Dual)
    {
        let pool = alloc
            .records
            .find(key)
            .and_then(|s| alloc.records.get(s))
            .map(|r| r.pool);
        if let (Some(existing), Some(pool)) = (lb[0], pool) {
            match alloc.allocate_additional(c, existing, pool) {
                Err(e) => w.event(
                    EventType::Normal,
                    "AdditionalAssignFailed",
                    format!("cannot assign additional IP in PreferDualStack: {e}"),
                ),
                Ok(ip) => {
                    lb.push(Some(ip));
                    w.event(
                        EventType::Normal,
                        "IPAllocated",
                        format!("Assigned additional IP {}", quote(&ip_text(&ip))),
                    );
                }
            }
        }
    }

    if lb.is_empty() {
        match allocate(alloc, view, c, trace) {
            Err(failure) => {
                w.event(
                    EventType::Warning,
                    "AllocationFailed",
                    format!(
                        "Failed to allocate IP for {}: {}",
                        quote(key),
                        failure.message
                    ),
                );
                w.fail(failure);
                return;
            }
            Ok(ips) => {
                w.event(
                    EventType::Normal,
                    "IPAllocated",
                    prefixed_quoted_ips("Assigned IP ", ips.iter().flatten()),
                );
                lb = ips;
            }
        }
    }

    let pool = record_pool(alloc, key).map(str::to_string);
    let Some(pool) = pool.filter(|_| !lb.is_empty()) else {
        let message = if lb.is_empty() {
            "didn't allocate an IP but also did not fail"
        } else {
            "allocated an IP that has no pool"
        };
        w.event(EventType::Warning, "InternalError", message.to_string());
        w.clear(alloc, key);
        w.fail(Failure::simple(FailureKind::Internal, message));
        return;
    };
    w.ingress = lb.iter().map(|ip| go_ip_text(ip.as_ref())).collect();
    w.pool = Some(pool);
}

fn record_pool<'a>(alloc: &'a Allocator, key: &str) -> Option<&'a str> {
    let slot = alloc.records.find(key)?;
    alloc.records.get(slot).map(|r| alloc.pool_name(r.pool))
}

/// upstream `allocateIPs`: requested addresses, else requested pool, else automatic.
fn allocate(
    alloc: &mut Allocator,
    view: &ServiceView,
    c: &Claimant,
    trace: &mut Option<&mut Trace>,
) -> Result<Vec<Option<IpAddr>>, Failure> {
    let family = view
        .family()
        .map_err(|e| Failure::simple(FailureKind::InvalidClusterIPs, e))?;
    let desired = view
        .desired_ips()
        .map_err(|e| Failure::simple(FailureKind::InvalidRequest, e))?;
    let shape = shape_of(family, view.policy(), view.primary_family());
    let desired_pool = view.requested_pool();

    if let Some(desired) = desired {
        set_path(trace, AllocationPath::RequestedIps(desired.ips.clone()));
        let mode = Mode::Ips(&desired.ips);
        record_verdicts(alloc, c, mode, shape, trace);
        if family != desired.family {
            let err = AllocError::FamilyMismatch(desired.ips.clone());
            return Err(alloc.failure(c, mode, None, &err));
        }
        let ips: Vec<Option<IpAddr>> = desired.ips.iter().copied().map(Some).collect();
        let pool = alloc
            .claim(c, &ips)
            .map_err(|e| alloc.failure(c, mode, Some(shape), &e))?;
        if !desired_pool.is_empty() && alloc.pool_name(pool) != desired_pool {
            alloc.release_key(c.key);
            let err = AllocError::RequestedPoolMismatch {
                ips: desired.ips.clone(),
                pool: desired_pool.to_string(),
            };
            return Err(alloc.failure(c, mode, None, &err));
        }
        mark_chosen(alloc, pool, trace, false);
        return Ok(ips);
    }
    if !desired_pool.is_empty() {
        set_path(
            trace,
            AllocationPath::RequestedPool(desired_pool.to_string()),
        );
        let mode = Mode::Pool(desired_pool);
        record_verdicts(alloc, c, mode, shape, trace);
        let (ips, pool) = alloc
            .allocate_from_pool(c, desired_pool, shape)
            .map_err(|e| alloc.failure(c, mode, Some(shape), &e))?;
        mark_chosen(alloc, pool, trace, false);
        return Ok(ips);
    }
    set_path(trace, AllocationPath::Automatic);
    record_verdicts(alloc, c, Mode::Auto, shape, trace);
    let (ips, pool) = alloc
        .allocate_auto(c, shape)
        .map_err(|e| alloc.failure(c, Mode::Auto, Some(shape), &e))?;
    mark_chosen(alloc, pool, trace, true);
    Ok(ips)
}

fn record_verdicts(
    alloc: &Allocator,
    c: &Claimant,
    mode: Mode,
    shape: crate::select::Shape,
    trace: &mut Option<&mut Trace>,
) {
    if let Some(t) = trace.as_deref_mut() {
        t.pools = alloc.verdicts(c, mode, shape);
    }
}

/// After a success, the chosen pool reads `Chosen` and the eligible pools
/// considered after it `NotTried`.
fn mark_chosen(alloc: &Allocator, pool: u32, trace: &mut Option<&mut Trace>, automatic: bool) {
    let Some(t) = trace.as_deref_mut() else {
        return;
    };
    let name = alloc.pool_name(pool);
    let mut after = false;
    for v in &mut t.pools {
        if &*v.pool == name {
            v.reason = VerdictReason::Chosen;
            v.eligible = true;
            after = true;
        } else if automatic && after && v.eligible {
            v.reason = VerdictReason::NotTried;
        }
    }
}

impl Allocator {
    /// Puts a record's addresses in `order` (same set), mirroring upstream's
    /// in-place sort of the shared slice.
    pub(crate) fn reorder_record(&mut self, key: &str, order: &[Option<IpAddr>]) {
        let Some(slot) = self.records.find(key) else {
            return;
        };
        let Some(record) = self.records.get_mut(slot) else {
            return;
        };
        let ips: Vec<IpAddr> = order.iter().flatten().copied().collect();
        let mut mine = record.ip_vec();
        let mut sorted = ips.clone();
        mine.sort();
        sorted.sort();
        if mine == sorted && !ips.is_empty() {
            record.first = ips[0];
            record.second = ips.get(1).copied();
        }
    }
}
