//! A naive reference allocator, written from /work/shared/spec/allocation.md
//! and ferrolb's documented choices (docs/allocation.md "deliberate
//! deviations"), to compare the fast allocator with.
//!
//! It is slow on purpose and shares no decision code with the allocator: its
//! own record of who holds what, address walks over plain integers, its own
//! label-selector matching (Kubernetes semantics) and namespace resolution,
//! its own pool order and family rules. Only the allocator's *inputs*
//! (`PoolDef`, `ServiceView`) are built from the model's description.
#![allow(dead_code)] // not every test binary uses every part

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_allocator::{
    LabelSelector, Operator, PoolAllocation, PoolDef, Requirement, ServiceKey, ServiceView,
    annotations,
};

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A label selector as written in a manifest.
#[derive(Clone, Debug, Default)]
pub struct Sel {
    pub labels: Vec<(String, String)>,
    pub exprs: Vec<(String, Op, Vec<String>)>,
}

/// Kubernetes label-selector semantics: every `matchLabels` pair and every
/// expression must hold; `NotIn` and `DoesNotExist` hold for a missing key;
/// the empty selector matches everything.
pub fn sel_matches(sel: &Sel, labels: &Labels) -> bool {
    for (k, v) in &sel.labels {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for (key, op, values) in &sel.exprs {
        let value = labels.get(key);
        let holds = match op {
            Op::In => match value {
                Some(v) => values.contains(v),
                None => false,
            },
            Op::NotIn => match value {
                Some(v) => !values.contains(v),
                None => true,
            },
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
        };
        if !holds {
            return false;
        }
    }
    true
}

#[derive(Clone, Copy, Debug)]
pub struct Cidr {
    pub v6: bool,
    /// First address as an integer (IPv4 in the low 32 bits).
    pub base: u128,
    pub prefix: u8,
}

impl Cidr {
    fn last(&self) -> u128 {
        let width = if self.v6 { 128 } else { 32 };
        let host_bits = width - u32::from(self.prefix);
        if host_bits == 128 {
            u128::MAX
        } else {
            self.base + ((1u128 << host_bits) - 1)
        }
    }

    pub fn size(&self) -> u128 {
        self.last() - self.base + 1
    }

    pub fn ip(&self, raw: u128) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(raw))
        } else {
            IpAddr::V4(Ipv4Addr::from(raw as u32))
        }
    }

    fn holds(&self, ip: &IpAddr) -> bool {
        let (v6, raw) = raw_of(ip);
        v6 == self.v6 && raw >= self.base && raw <= self.last()
    }

    fn text(&self) -> String {
        format!("{}/{}", self.ip(self.base), self.prefix)
    }
}

fn raw_of(ip: &IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(*a))),
        IpAddr::V6(a) => (true, u128::from(*a)),
    }
}

#[derive(Clone, Debug, Default)]
pub struct Alloc {
    pub priority: i32,
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<Sel>,
    pub service_selectors: Vec<Sel>,
}

#[derive(Clone, Debug)]
pub struct Pool {
    pub name: String,
    pub cidrs: Vec<Cidr>,
    pub auto_assign: bool,
    pub avoid_buggy: bool,
    pub alloc: Option<Alloc>,
}

/// The namespaces of the cluster, by name, with their labels.
pub type Namespaces = BTreeMap<String, Labels>;

impl Pool {
    /// allocation.md §6 rule 3 (first half): inside a CIDR, and not an IPv4
    /// `.0`/`.255` in a pool that avoids them.
    fn usable(&self, ip: &IpAddr) -> bool {
        let buggy = match ip {
            IpAddr::V4(a) => matches!(a.octets()[3], 0 | 255),
            IpAddr::V6(_) => false,
        };
        self.cidrs.iter().any(|c| c.holds(ip)) && !(self.avoid_buggy && buggy)
    }

    /// The namespace set of §3.1 rule 1, `None` when no namespace constraint
    /// was written.
    fn namespace_set(&self, namespaces: &Namespaces) -> Option<BTreeSet<String>> {
        let a = self.alloc.as_ref()?;
        if a.namespaces.is_empty() && a.namespace_selectors.is_empty() {
            return None;
        }
        let mut set: BTreeSet<String> = a.namespaces.iter().cloned().collect();
        for (name, labels) in namespaces {
            if a.namespace_selectors.iter().any(|s| sel_matches(s, labels)) {
                set.insert(name.clone());
            }
        }
        Some(set)
    }

    /// §3.1, with ferrolb's rule that a namespace constraint selecting no
    /// namespace serves nobody (docs/allocation.md deviation 3).
    pub fn compatible(&self, svc: &Service, namespaces: &Namespaces) -> bool {
        let Some(a) = &self.alloc else { return true };
        if let Some(set) = self.namespace_set(namespaces)
            && !set.contains(&svc.namespace)
        {
            return false;
        }
        a.service_selectors.is_empty() || a.service_selectors.iter().any(|s| sel_matches(s, &svc.labels))
    }

    /// §4.3 with ferrolb's determinism rule: priority >= 1 ascending, then
    /// the rest, ties by name.
    fn order_key(&self) -> (u8, i32, String) {
        match self.alloc.as_ref().map(|a| a.priority) {
            Some(p) if p > 0 => (0, p, self.name.clone()),
            _ => (1, 0, self.name.clone()),
        }
    }

    /// The allocator's input for this pool. Namespace selectors are resolved
    /// here (the configuration builder's job, not the allocator's); service
    /// selectors are handed over as written and matched by the allocator.
    pub fn def(&self, namespaces: &Namespaces) -> PoolDef {
        let cidrs = self.cidrs.iter().map(|c| c.text().parse().expect("model CIDR")).collect();
        let mut def = PoolDef::new(self.name.clone(), cidrs);
        def.auto_assign = self.auto_assign;
        def.avoid_buggy_ips = self.avoid_buggy;
        def.allocation = self.alloc.as_ref().map(|a| PoolAllocation {
            priority: a.priority,
            namespaces: self.namespace_set(namespaces).unwrap_or_default(),
            has_namespace_constraint: !a.namespaces.is_empty() || !a.namespace_selectors.is_empty(),
            service_selectors: a.service_selectors.iter().map(selector).collect(),
        });
        def
    }
}

fn selector(sel: &Sel) -> LabelSelector {
    LabelSelector {
        match_labels: sel.labels.iter().cloned().collect(),
        match_expressions: sel
            .exprs
            .iter()
            .map(|(key, op, values)| Requirement {
                key: key.clone(),
                operator: match op {
                    Op::In => Operator::In,
                    Op::NotIn => Operator::NotIn,
                    Op::Exists => Operator::Exists,
                    Op::DoesNotExist => Operator::DoesNotExist,
                },
                values: values.iter().cloned().collect(),
            })
            .collect(),
    }
}

/// The Service's address family (§2) as the test builds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    /// Two cluster IPs.
    Dual { require: bool, primary_v6: bool },
    /// `PreferDualStack` with one (IPv4) cluster IP: single-family (§2 rule 6).
    PreferSingleV4,
}

#[derive(Clone, Debug)]
pub enum Request {
    None,
    Pool(String),
    /// `metallb.io/loadBalancerIPs`, in order.
    Ips(Vec<IpAddr>),
    /// `spec.loadBalancerIP`.
    SpecIp(IpAddr),
    /// Both of the above: always refused.
    Both(Vec<IpAddr>, IpAddr),
    IpsInPool(Vec<IpAddr>, String),
}

#[derive(Clone, Debug)]
pub struct Service {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub family: Family,
    pub sharing: String,
    /// `Some(app)`: externalTrafficPolicy Local with selector `app=<app>`.
    pub local_app: Option<String>,
    pub ports: BTreeSet<(String, i32)>,
    pub request: Request,
}

impl Service {
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(self.namespace.clone(), self.name.clone())
    }

    /// §8: `k=v` of the selector for Local Services, empty otherwise.
    fn backend(&self) -> String {
        self.local_app.as_ref().map(|a| format!("app={a}")).unwrap_or_default()
    }

    /// The allocator's input for this Service, with no status (fresh).
    pub fn view(&self) -> ServiceView {
        let mut v = ServiceView {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            type_: Some("LoadBalancer".into()),
            ports: self.ports.iter().cloned().collect(),
            ..Default::default()
        };
        let (cluster_ips, policy, families): (&[&str], Option<&str>, &[&str]) = match self.family {
            Family::V4 => (&["10.96.0.10"], None, &["IPv4"]),
            Family::V6 => (&["fd00::10"], None, &["IPv6"]),
            Family::PreferSingleV4 => (&["10.96.0.11"], Some("PreferDualStack"), &["IPv4"]),
            Family::Dual { require, primary_v6 } => (
                if primary_v6 { &["fd00::5", "10.96.0.5"] } else { &["10.96.0.5", "fd00::5"] },
                Some(if require { "RequireDualStack" } else { "PreferDualStack" }),
                if primary_v6 { &["IPv6", "IPv4"] } else { &["IPv4", "IPv6"] },
            ),
        };
        v.cluster_ip = Some(cluster_ips[0].to_string());
        v.cluster_ips = cluster_ips.iter().map(|s| s.to_string()).collect();
        v.ip_family_policy = policy.map(str::to_string);
        v.ip_families = families.iter().map(|s| s.to_string()).collect();
        if !self.sharing.is_empty() {
            v.annotations.insert(annotations::ALLOW_SHARED_IP.into(), self.sharing.clone());
        }
        if let Some(app) = &self.local_app {
            v.external_traffic_policy = Some("Local".into());
            v.selector.insert("app".into(), app.clone());
        }
        let list = |ips: &[IpAddr]| ips.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(",");
        match &self.request {
            Request::None => {}
            Request::Pool(p) => {
                v.annotations.insert(annotations::ADDRESS_POOL.into(), p.clone());
            }
            Request::Ips(ips) => {
                v.annotations.insert(annotations::LOADBALANCER_IPS.into(), list(ips));
            }
            Request::SpecIp(ip) => v.load_balancer_ip = Some(ip.to_string()),
            Request::Both(ips, ip) => {
                v.annotations.insert(annotations::LOADBALANCER_IPS.into(), list(ips));
                v.load_balancer_ip = Some(ip.to_string());
            }
            Request::IpsInPool(ips, p) => {
                v.annotations.insert(annotations::LOADBALANCER_IPS.into(), list(ips));
                v.annotations.insert(annotations::ADDRESS_POOL.into(), p.clone());
            }
        }
        v
    }
}

/// Why the model refuses; each maps to the start of MetalLB's error text
/// (allocation.md §12).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    BothRequested,
    SameFamily,
    FamilyMismatch,
    NotAllowed,
    NotCompatible(String),
    Sharing,
    Port,
    UnknownPool(String),
    NoneInPool(String),
    NoneInPoolForDual(String),
    NotInRequestedPool(String),
    NoneAvailable,
}

impl Refusal {
    /// Text the allocator's `Failure.error` must contain.
    pub fn text(&self) -> String {
        match self {
            Refusal::BothRequested => "service can not have both".into(),
            Refusal::SameFamily => "same address family".into(),
            Refusal::FamilyMismatch => "does not match the ipFamily of the service".into(),
            Refusal::NotAllowed => "is not allowed in config".into(),
            Refusal::NotCompatible(p) => format!("pool {p} not compatible for ip assignment"),
            Refusal::Sharing => "can't change sharing key for".into(),
            Refusal::Port => "is already in use on".into(),
            Refusal::UnknownPool(p) => format!("unknown pool \"{p}\""),
            Refusal::NoneInPool(p) => format!("no available IPs in pool {p}"),
            Refusal::NoneInPoolForDual(p) => format!("no available IPs in pool {p} for dual IPFamily"),
            Refusal::NotInRequestedPool(p) => format!("is not compatible with requested address pool {p}"),
            Refusal::NoneAvailable => "no available IPs".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub pool: String,
    /// In status order.
    pub ips: Vec<IpAddr>,
    sharing: String,
    backend: String,
    ports: BTreeSet<(String, i32)>,
}

/// The model: pools, namespaces and who holds what.
pub struct Model {
    pub pools: Vec<Pool>,
    pub namespaces: Namespaces,
    pub held: BTreeMap<ServiceKey, Holding>,
    /// `held` by address, only so that a scan over thousands of addresses
    /// with hundreds of holders stays quick in a debug build.
    holders: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
}

impl Model {
    pub fn new(pools: Vec<Pool>, namespaces: Namespaces) -> Self {
        Model { pools, namespaces, held: BTreeMap::new(), holders: BTreeMap::new() }
    }

    pub fn defs(&self) -> Vec<PoolDef> {
        self.pools.iter().map(|p| p.def(&self.namespaces)).collect()
    }

    pub fn release(&mut self, key: &ServiceKey) {
        if let Some(h) = self.held.remove(key) {
            for ip in &h.ips {
                if let Some(keys) = self.holders.get_mut(ip) {
                    keys.remove(key);
                    if keys.is_empty() {
                        self.holders.remove(ip);
                    }
                }
            }
        }
    }

    fn hold(&mut self, key: ServiceKey, holding: Holding) {
        for ip in &holding.ips {
            self.holders.entry(*ip).or_default().insert(key.clone());
        }
        self.held.insert(key, holding);
    }

    /// §8's sharing test for `svc` on `ip` against every other holder.
    fn sharing(&self, svc: &Service, ip: &IpAddr) -> Result<(), Refusal> {
        let key = svc.key();
        let others: Vec<&Holding> = self
            .holders
            .get(ip)
            .into_iter()
            .flatten()
            .filter(|k| **k != key)
            .filter_map(|k| self.held.get(k))
            .collect();
        for h in &others {
            if h.sharing.is_empty() || svc.sharing.is_empty() || h.sharing != svc.sharing || h.backend != svc.backend() {
                return Err(Refusal::Sharing);
            }
        }
        for h in &others {
            if h.ports.iter().any(|p| svc.ports.contains(p)) {
                return Err(Refusal::Port);
            }
        }
        Ok(())
    }

    /// §6: the lowest usable address of one family, CIDRs in list order.
    fn first_free(&self, pool: &Pool, svc: &Service, v6: bool) -> Option<IpAddr> {
        for c in pool.cidrs.iter().filter(|c| c.v6 == v6) {
            let mut raw = c.base;
            loop {
                let ip = c.ip(raw);
                if pool.usable(&ip) && self.sharing(svc, &ip).is_ok() {
                    return Some(ip);
                }
                if raw == c.last() {
                    break;
                }
                raw += 1;
            }
        }
        None
    }

    /// §7.3.
    fn claim(&self, svc: &Service, ips: &[IpAddr]) -> Result<String, Refusal> {
        let pool = self
            .pools
            .iter()
            .find(|p| ips.iter().all(|ip| p.usable(ip)))
            .ok_or(Refusal::NotAllowed)?;
        if !pool.compatible(svc, &self.namespaces) {
            return Err(Refusal::NotCompatible(pool.name.clone()));
        }
        if ips.len() == 2 && ips[0].is_ipv6() == ips[1].is_ipv6() {
            return Err(Refusal::SameFamily);
        }
        for ip in ips {
            self.sharing(svc, ip)?;
        }
        Ok(pool.name.clone())
    }

    /// Requested addresses (§7.1): their family must be the Service's.
    fn requested(&self, svc: &Service, ips: &[IpAddr], pool: Option<&str>) -> Result<(String, Vec<IpAddr>), Refusal> {
        if ips.len() == 2 && ips[0].is_ipv6() == ips[1].is_ipv6() {
            return Err(Refusal::SameFamily);
        }
        let fits = match svc.family {
            Family::V4 | Family::PreferSingleV4 => ips.len() == 1 && ips[0].is_ipv4(),
            Family::V6 => ips.len() == 1 && ips[0].is_ipv6(),
            Family::Dual { .. } => ips.len() == 2,
        };
        if !fits {
            return Err(Refusal::FamilyMismatch);
        }
        let got = self.claim(svc, ips)?;
        if let Some(wanted) = pool
            && wanted != got
        {
            return Err(Refusal::NotInRequestedPool(wanted.to_string()));
        }
        Ok((got, ips.to_vec()))
    }

    /// §5.3: the addresses a winning pool gives, IPv4 first.
    fn pick(svc: &Service, v4: Option<IpAddr>, v6: Option<IpAddr>) -> Vec<IpAddr> {
        match svc.family {
            Family::V4 | Family::PreferSingleV4 => v4.into_iter().collect(),
            Family::V6 => v6.into_iter().collect(),
            Family::Dual { .. } => v4.into_iter().chain(v6).collect(),
        }
    }

    /// §7.2.
    fn requested_pool(&self, svc: &Service, name: &str) -> Result<(String, Vec<IpAddr>), Refusal> {
        let pool = self.pools.iter().find(|p| p.name == name).ok_or(Refusal::UnknownPool(name.into()))?;
        let (v4, v6) = (self.first_free(pool, svc, false), self.first_free(pool, svc, true));
        if v4.is_none() && v6.is_none() {
            return Err(Refusal::NoneInPool(name.into()));
        }
        let ips = match svc.family {
            // Upstream's `["<nil>"]` quirk: the missing family becomes an
            // address no pool holds.
            Family::V4 | Family::PreferSingleV4 if v4.is_none() => return Err(Refusal::NotAllowed),
            Family::V6 if v6.is_none() => return Err(Refusal::NotAllowed),
            Family::Dual { require: true, .. } if v4.is_none() || v6.is_none() => {
                return Err(Refusal::NoneInPoolForDual(name.into()));
            }
            _ => Self::pick(svc, v4, v6),
        };
        Ok((self.claim(svc, &ips)?, ips))
    }

    /// §4 and §5: phase 1 (pinned pools), then phase 2 (fallback pools).
    fn automatic(&self, svc: &Service) -> Result<(String, Vec<IpAddr>), Refusal> {
        let mut pinned: Vec<&Pool> = self
            .pools
            .iter()
            .filter(|p| p.alloc.is_some() && p.auto_assign && p.compatible(svc, &self.namespaces))
            .collect();
        pinned.sort_by_key(|p| p.order_key());
        let mut fallback: Vec<&Pool> = self.pools.iter().filter(|p| p.alloc.is_none() && p.auto_assign).collect();
        fallback.sort_by_key(|p| p.name.clone());
        for phase in [pinned, fallback] {
            let pairs: Vec<(&Pool, Option<IpAddr>, Option<IpAddr>)> = phase
                .iter()
                .map(|p| (*p, self.first_free(p, svc, false), self.first_free(p, svc, true)))
                .collect();
            let first = |want: &dyn Fn(&Option<IpAddr>, &Option<IpAddr>) -> bool| {
                pairs.iter().find(|(_, a, b)| want(a, b)).copied()
            };
            let winner = match svc.family {
                Family::V4 | Family::PreferSingleV4 => first(&|a, _| a.is_some()),
                Family::V6 => first(&|_, b| b.is_some()),
                Family::Dual { require, primary_v6 } => first(&|a, b| a.is_some() && b.is_some()).or_else(|| {
                    if require {
                        None
                    } else if primary_v6 {
                        first(&|_, b| b.is_some()).or_else(|| first(&|a, _| a.is_some()))
                    } else {
                        first(&|a, _| a.is_some()).or_else(|| first(&|_, b| b.is_some()))
                    }
                }),
            };
            if let Some((pool, v4, v6)) = winner {
                let ips = Self::pick(svc, v4, v6);
                // §5.4: a failed claim fails the phase.
                if let Ok(name) = self.claim(svc, &ips) {
                    debug_assert_eq!(name, pool.name);
                    return Ok((name, ips));
                }
            }
        }
        Err(Refusal::NoneAvailable)
    }

    /// Allocates for a Service that holds nothing (released first), in the
    /// controller's order of requests (§7), and records the result.
    pub fn allocate(&mut self, svc: &Service) -> Result<(String, Vec<IpAddr>), Refusal> {
        self.release(&svc.key());
        let result = match &svc.request {
            Request::Both(..) => Err(Refusal::BothRequested),
            Request::Ips(ips) => self.requested(svc, ips, None),
            Request::SpecIp(ip) => self.requested(svc, std::slice::from_ref(ip), None),
            Request::IpsInPool(ips, pool) => self.requested(svc, ips, Some(pool)),
            Request::Pool(pool) => self.requested_pool(svc, pool),
            Request::None => self.automatic(svc),
        };
        if let Ok((pool, ips)) = &result {
            self.hold(
                svc.key(),
                Holding {
                    pool: pool.clone(),
                    ips: ips.clone(),
                    sharing: svc.sharing.clone(),
                    backend: svc.backend(),
                    ports: svc.ports.clone(),
                },
            );
        }
        result
    }
}
