//! ferrolb's "says why": per-pool verdicts and structured failures.
//!
//! MetalLB only says `no available IPs`; ferrolb keeps that text first (it is
//! what operators search for) and appends, pool by pool, why none was used.

use std::fmt::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

use crate::allocator::Allocator;
use crate::claim::{Claimant, Probe};
use crate::error::AllocError;
use crate::family::{Family, Policy, ServiceFamily};
use crate::gofmt::{quote, write_quoted};
use crate::pool::Incompatibility;
use crate::select::Shape;

/// Why a Service got no address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No pool is eligible for the Service (selectors, autoAssign).
    NoMatchingPool,
    /// Eligible pools exist but are full.
    PoolExhausted,
    /// Requested addresses lie in no pool (or in several, or are skipped by avoidBuggyIPs).
    RequestedIPOutsidePools,
    /// Sharing key or port conflict on an address.
    SharingConflict,
    /// Eligible pools lack the Service's address family.
    FamilyUnavailable,
    UnknownPool,
    /// The pool holding the requested addresses does not serve the Service.
    IncompatiblePool,
    /// Malformed or contradictory request (annotations, loadBalancerIP, family).
    InvalidRequest,
    /// RequireDualStack with single-stack cluster IPs.
    NotEnoughClusterIPs,
    /// Cluster IPs whose family cannot be determined.
    InvalidClusterIPs,
    /// The Service has no cluster IP at all.
    NoClusterIP,
    /// The loaded configuration has no pools.
    NoPools,
    /// Should not happen (controller.md §3.3 step 10).
    Internal,
}

impl FailureKind {
    /// Every kind, in declaration order.
    pub const ALL: [FailureKind; 13] = [
        FailureKind::NoMatchingPool,
        FailureKind::PoolExhausted,
        FailureKind::RequestedIPOutsidePools,
        FailureKind::SharingConflict,
        FailureKind::FamilyUnavailable,
        FailureKind::UnknownPool,
        FailureKind::IncompatiblePool,
        FailureKind::InvalidRequest,
        FailureKind::NotEnoughClusterIPs,
        FailureKind::InvalidClusterIPs,
        FailureKind::NoClusterIP,
        FailureKind::NoPools,
        FailureKind::Internal,
    ];

    /// The reason the Service condition carries (docs/controller.md, "The Service condition"): a
    /// CamelCase word, fixed here so that renaming a variant cannot change it.
    pub fn reason(self) -> &'static str {
        match self {
            FailureKind::NoMatchingPool => "NoMatchingPool",
            FailureKind::PoolExhausted => "PoolExhausted",
            FailureKind::RequestedIPOutsidePools => "RequestedIPOutsidePools",
            FailureKind::SharingConflict => "SharingConflict",
            FailureKind::FamilyUnavailable => "FamilyUnavailable",
            FailureKind::UnknownPool => "UnknownPool",
            FailureKind::IncompatiblePool => "IncompatiblePool",
            FailureKind::InvalidRequest => "InvalidRequest",
            FailureKind::NotEnoughClusterIPs => "NotEnoughClusterIPs",
            FailureKind::InvalidClusterIPs => "InvalidClusterIPs",
            FailureKind::NoClusterIP => "NoClusterIP",
            FailureKind::NoPools => "NoPools",
            FailureKind::Internal => "Internal",
        }
    }
}

/// A Service that got no address: MetalLB's error text, ferrolb's full
/// message (that text plus per-pool detail) and the verdict of every pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// MetalLB's error, verbatim.
    pub error: String,
    /// `error`, then `: ` and the per-pool detail when there is any.
    pub message: String,
    /// Every pool in consideration order (empty when pools played no part).
    pub pools: Vec<PoolVerdict>,
}

impl Failure {
    pub(crate) fn simple(kind: FailureKind, error: impl Into<String>) -> Self {
        let error = error.into();
        Failure {
            kind,
            message: error.clone(),
            error,
            pools: Vec::new(),
        }
    }

    /// `detail` lists what to append after `error`, joined with `; `.
    pub(crate) fn with_detail<D: fmt::Display>(
        kind: FailureKind,
        error: String,
        detail: impl IntoIterator<Item = D>,
        pools: Vec<PoolVerdict>,
    ) -> Self {
        let mut message = error.clone();
        for (i, d) in detail.into_iter().enumerate() {
            message.push_str(if i == 0 { ": " } else { "; " });
            let _ = write!(message, "{d}");
        }
        Failure {
            kind,
            error,
            message,
            pools,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One pool as the allocator saw it for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolVerdict {
    pub pool: Arc<str>,
    pub eligible: bool,
    pub reason: VerdictReason,
}

impl fmt::Display for PoolVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdictReason {
    /// The Service's addresses were taken from this pool.
    Chosen,
    /// The pool holds the Service's current addresses, which are kept.
    Kept,
    /// Eligible, but an earlier pool was chosen.
    NotTried,
    /// Not looked at: the Service keeps its current addresses elsewhere.
    NotTriedKept,
    /// Has a usable address for the Service.
    Usable,
    /// PreferDualStack: offers only this family.
    OffersOnly(Family),
    NamespaceNotSelected {
        namespace: String,
    },
    SelectsNoNamespace,
    LabelsNotSelected,
    AutoAssignDisabled,
    NoAddressOfFamily(Family),
    NoFreeAddressOfFamily(Family),
    Full,
    NotRequested {
        requested: String,
    },
    DoesNotContainRequestedIps,
    /// The claim on this pool failed with this (MetalLB) error.
    Rejected {
        error: String,
    },
}

impl VerdictReason {
    /// Whether the reason explains a non-use (goes into a failure message).
    pub fn is_negative(&self) -> bool {
        !matches!(
            self,
            VerdictReason::Chosen
                | VerdictReason::Kept
                | VerdictReason::NotTried
                | VerdictReason::NotTriedKept
                | VerdictReason::Usable
                | VerdictReason::NotRequested { .. }
                | VerdictReason::DoesNotContainRequestedIps
        )
    }
}

impl VerdictReason {
    /// Writes the text with plain `write_str` calls: a failure message lists
    /// every pool, and the formatting machinery would dominate its cost.
    pub fn write_to<W: Write>(&self, out: &mut W) -> fmt::Result {
        let fam = |f: &Family| match f {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        };
        match self {
            VerdictReason::Chosen => out.write_str("was chosen"),
            VerdictReason::Kept => out.write_str("holds the current addresses, which are kept"),
            VerdictReason::NotTried => out.write_str("was not tried: an earlier pool was chosen"),
            VerdictReason::NotTriedKept => {
                out.write_str("was not tried: the service keeps its current addresses")
            }
            VerdictReason::Usable => out.write_str("has a usable address"),
            VerdictReason::OffersOnly(f) => {
                out.write_str("offers only ")?;
                out.write_str(fam(f))?;
                out.write_str(" addresses")
            }
            VerdictReason::NamespaceNotSelected { namespace } => {
                out.write_str("does not select namespace ")?;
                write_quoted(out, namespace)
            }
            VerdictReason::SelectsNoNamespace => {
                out.write_str("selects no namespace (its namespace constraint matches none)")
            }
            VerdictReason::LabelsNotSelected => {
                out.write_str("does not select the service's labels")
            }
            VerdictReason::AutoAssignDisabled => out.write_str("has autoAssign disabled"),
            VerdictReason::NoAddressOfFamily(f) => {
                out.write_str("has no ")?;
                out.write_str(fam(f))?;
                out.write_str(" addresses")
            }
            VerdictReason::NoFreeAddressOfFamily(f) => {
                out.write_str("has no free ")?;
                out.write_str(fam(f))?;
                out.write_str(" address")
            }
            VerdictReason::Full => out.write_str("is full"),
            VerdictReason::NotRequested { requested } => {
                out.write_str("is not the requested pool ")?;
                write_quoted(out, requested)
            }
            VerdictReason::DoesNotContainRequestedIps => {
                out.write_str("does not contain the requested IP(s)")
            }
            VerdictReason::Rejected { error } => {
                out.write_str("rejected the claim: ")?;
                out.write_str(error)
            }
        }
    }
}

impl fmt::Display for VerdictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl PoolVerdict {
    /// `pool "<name>" <reason>`, without the formatting machinery.
    pub fn write_to<W: Write>(&self, out: &mut W) -> fmt::Result {
        out.write_str("pool ")?;
        write_quoted(out, &self.pool)?;
        out.write_char(' ')?;
        self.reason.write_to(out)
    }
}

/// What the Service asked for, to judge pools against.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode<'a> {
    Auto,
    Pool(&'a str),
    Ips(&'a [IpAddr]),
}

fn incompatibility(reason: Incompatibility, namespace: &str) -> VerdictReason {
    match reason {
        Incompatibility::SelectsNoNamespace => VerdictReason::SelectsNoNamespace,
        Incompatibility::NamespaceNotSelected => VerdictReason::NamespaceNotSelected {
            namespace: namespace.to_string(),
        },
        Incompatibility::LabelsNotSelected => VerdictReason::LabelsNotSelected,
    }
}

impl Allocator {
    /// Every pool in consideration order: phase-1 (pinned) pools by
    /// priority, then phase-2 pools by name.
    pub(crate) fn consideration_order(&self) -> Vec<u32> {
        self.pinned
            .iter()
            .chain(self.fallback.iter())
            .copied()
            .collect()
    }

    /// Judges one pool for picking addresses of `shape` (read-only).
    pub(crate) fn judge(
        &self,
        c: &Claimant,
        probe: Probe,
        pool: u32,
        shape: Shape,
        respect_auto_assign: bool,
    ) -> VerdictReason {
        let state = self.pool_state(pool);
        if let Err(why) = state.def.compatibility(c.namespace, c.labels) {
            return incompatibility(why, c.namespace);
        }
        if respect_auto_assign && !state.def.auto_assign {
            return VerdictReason::AutoAssignDisabled;
        }
        let has = |f: Family| state.space(f).has_addresses();
        let missing = |f: Family| {
            if has(f) {
                VerdictReason::NoFreeAddressOfFamily(f)
            } else {
                VerdictReason::NoAddressOfFamily(f)
            }
        };
        let pair = self.pair(c, probe, pool, shape.family);
        match shape.family.as_single() {
            Some(f) => {
                if pair.get(f).is_some() {
                    VerdictReason::Usable
                } else if has(f) && !has(f.other()) {
                    VerdictReason::Full
                } else {
                    missing(f)
                }
            }
            None => match (pair.v4.is_some(), pair.v6.is_some()) {
                (true, true) => VerdictReason::Usable,
                (false, false) if has(Family::V4) && has(Family::V6) => VerdictReason::Full,
                (false, false) => missing(if has(Family::V4) {
                    Family::V6
                } else {
                    Family::V4
                }),
                (v4, _) => {
                    let (present, absent) = if v4 {
                        (Family::V4, Family::V6)
                    } else {
                        (Family::V6, Family::V4)
                    };
                    if shape.policy == Policy::PreferDualStack {
                        VerdictReason::OffersOnly(present)
                    } else {
                        missing(absent)
                    }
                }
            },
        }
    }

    /// Verdicts of every pool for a request, before anything is claimed.
    pub(crate) fn verdicts(&self, c: &Claimant, mode: Mode, shape: Shape) -> Vec<PoolVerdict> {
        let holder = match mode {
            Mode::Ips(ips) => {
                let ips: Vec<Option<IpAddr>> = ips.iter().copied().map(Some).collect();
                self.pool_for(&ips)
            }
            _ => None,
        };
        let probe = self.probe(c);
        self.consideration_order()
            .into_iter()
            .map(|pool| {
                let reason = match mode {
                    Mode::Auto => self.judge(c, probe, pool, shape, true),
                    Mode::Pool(name) if name == self.pool_name(pool) => {
                        self.judge(c, probe, pool, shape, false)
                    }
                    Mode::Pool(name) => VerdictReason::NotRequested {
                        requested: name.to_string(),
                    },
                    Mode::Ips(ips) if holder == Some(pool) => self.judge_ips(c, pool, ips),
                    Mode::Ips(_) => VerdictReason::DoesNotContainRequestedIps,
                };
                let eligible =
                    matches!(reason, VerdictReason::Usable | VerdictReason::OffersOnly(_));
                PoolVerdict {
                    pool: self.shared_pool_name(pool),
                    eligible,
                    reason,
                }
            })
            .collect()
    }

    fn judge_ips(&self, c: &Claimant, pool: u32, ips: &[IpAddr]) -> VerdictReason {
        if let Err(why) = self
            .pool_state(pool)
            .def
            .compatibility(c.namespace, c.labels)
        {
            return incompatibility(why, c.namespace);
        }
        for ip in ips {
            if let Some(Err(e)) = self.locate(ip).map(|loc| self.check_sharing(c, loc, ip)) {
                return VerdictReason::Rejected {
                    error: e.to_string(),
                };
            }
        }
        VerdictReason::Usable
    }

    /// Where each requested address is, for `[..] is not allowed in config`.
    pub(crate) fn locate_requested(&self, ips: &[IpAddr]) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen_pool: Option<u32> = None;
        let mut spread = false;
        for ip in ips {
            match self.locate_ignoring_buggy(ip) {
                None => out.push(format!("{} is in no pool", quote(&ip.to_string()))),
                Some(pool) => {
                    if self.locate(ip).is_none() {
                        out.push(format!(
                            "{} is skipped by avoidBuggyIPs in pool {}",
                            quote(&ip.to_string()),
                            quote(self.pool_name(pool))
                        ));
                    }
                    if seen_pool.is_some_and(|p| p != pool) {
                        spread = true;
                    }
                    seen_pool = Some(pool);
                }
            }
        }
        if spread {
            out.push("the requested IPs are in different pools".to_string());
        }
        out
    }

    /// Builds the failure for an allocation error, with the pools' verdicts
    /// (computed on the state the attempt started from).
    pub(crate) fn failure(
        &self,
        c: &Claimant,
        mode: Mode,
        shape: Option<Shape>,
        err: &AllocError,
    ) -> Failure {
        let error = err.to_string();
        let pools = match shape {
            Some(shape) if !matches!(err, AllocError::UnknownPool(_)) => {
                self.verdicts(c, mode, shape)
            }
            _ => Vec::new(),
        };
        let mut located = Vec::new();
        let mut per_pool = true;
        let kind = match err {
            AllocError::NoAvailableIps => {
                let any = |f: &dyn Fn(&VerdictReason) -> bool| pools.iter().any(|v| f(&v.reason));
                if any(&|r| {
                    matches!(
                        r,
                        VerdictReason::Full | VerdictReason::NoFreeAddressOfFamily(_)
                    )
                }) {
                    FailureKind::PoolExhausted
                } else if any(&|r| matches!(r, VerdictReason::NoAddressOfFamily(_))) {
                    FailureKind::FamilyUnavailable
                } else {
                    FailureKind::NoMatchingPool
                }
            }
            AllocError::UnknownPool(_) => FailureKind::UnknownPool,
            AllocError::PoolExhausted(_) => FailureKind::PoolExhausted,
            AllocError::NoIpsForFamily { .. } => FailureKind::FamilyUnavailable,
            AllocError::NotAllowed(_) => match mode {
                Mode::Ips(requested) => {
                    located = self.locate_requested(requested);
                    per_pool = false;
                    FailureKind::RequestedIPOutsidePools
                }
                _ => FailureKind::FamilyUnavailable,
            },
            AllocError::NotCompatible(_) => FailureKind::IncompatiblePool,
            AllocError::CantChangeSharingKey { .. } | AllocError::PortInUse { .. } => {
                per_pool = false;
                FailureKind::SharingConflict
            }
            AllocError::MoreThanTwo(_)
            | AllocError::SameFamily(..)
            | AllocError::FamilyMismatch(_)
            | AllocError::RequestedPoolMismatch { .. }
            | AllocError::InvalidRequest(_) => {
                per_pool = false;
                FailureKind::InvalidRequest
            }
            AllocError::InvalidClusterIps(_) => FailureKind::InvalidClusterIPs,
        };
        if !per_pool {
            return Failure::with_detail(kind, error, located, pools);
        }
        let mut message = String::with_capacity(error.len() + 40 * pools.len());
        message.push_str(&error);
        for (i, v) in pools.iter().filter(|v| v.reason.is_negative()).enumerate() {
            message.push_str(if i == 0 { ": " } else { "; " });
            let _ = v.write_to(&mut message);
        }
        Failure {
            kind,
            error,
            message,
            pools,
        }
    }
}

/// The Service family as a `Shape` input, when it can be determined.
pub(crate) fn shape_of(family: ServiceFamily, policy: Policy, primary: Family) -> Shape {
    Shape {
        family,
        policy,
        primary,
    }
}

#[cfg(test)]
mod tests {
    use super::FailureKind;

    /// metav1.Condition's reason: `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, at most 1024 bytes.
    fn valid_condition_reason(r: &str) -> bool {
        let b = r.as_bytes();
        let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':');
        !b.is_empty()
            && b.len() <= 1024
            && b[0].is_ascii_alphabetic()
            && b.iter().all(inner)
            && (b.len() == 1 || b[b.len() - 1].is_ascii_alphanumeric() || b[b.len() - 1] == b'_')
    }

    #[test]
    fn reasons_are_distinct_valid_condition_reasons() {
        let mut seen = std::collections::BTreeSet::new();
        for kind in FailureKind::ALL {
            let r = kind.reason();
            assert!(valid_condition_reason(r), "{r:?} is not a valid condition reason");
            assert!(seen.insert(r), "{r:?} used twice");
        }
        assert!(!valid_condition_reason("No Matching"), "the check refuses a space");
        assert!(!valid_condition_reason("Pool:"), "the check refuses a trailing colon");
    }
}
