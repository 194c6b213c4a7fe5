//! The allocator state: pools, records and per-address bookkeeping
//! (allocation.md §1), configuration changes (§10.2) and counters (§9).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::family::{Family, is_buggy};
use crate::intern::{Protocols, SharingKeys};
use crate::pool::{PoolDef, pinned_order};
use crate::records::{Record, Records};
use crate::service::ServiceKey;
use crate::space::{FamilySpace, Holders, SharedSet, cidr_capacity, from_ip, usable_range};

#[derive(Clone, Debug)]
pub(crate) struct PoolState {
    pub def: PoolDef,
    /// The name again, shared with verdicts so listing pools copies nothing.
    pub name: Arc<str>,
    pub spaces: [FamilySpace; 2],
    pub capacity: [i64; 2],
}

impl PoolState {
    pub fn space(&self, family: Family) -> &FamilySpace {
        &self.spaces[family.slot()]
    }
}

/// Where an address lives: its pool, family and index in that pool's space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub pool: u32,
    pub family: Family,
    pub index: u128,
}

const NO_SEGMENT: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct LookupEntry {
    start: u128,
    end: u128,
    pool: u32,
    seg: u32,
}

/// Per-pool counters of allocation.md §9 (IPAddressPool status and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    pub assigned_v4: i64,
    pub available_v4: i64,
    pub assigned_v6: i64,
    pub available_v6: i64,
    pub capacity_v4: i64,
    pub capacity_v6: i64,
}

impl PoolCounters {
    /// `metallb_allocator_addresses_total`.
    pub fn capacity_total(&self) -> i64 {
        self.capacity_v4.saturating_add(self.capacity_v6)
    }

    /// `metallb_allocator_addresses_in_use_total`.
    pub fn assigned_total(&self) -> i64 {
        self.assigned_v4.saturating_add(self.assigned_v6)
    }
}

/// In-memory allocation state of the controller. Pure: no I/O, no clock.
#[derive(Clone, Debug, Default)]
pub struct Allocator {
    loaded: bool,
    pub(crate) pools: Vec<PoolState>,
    by_name: HashMap<String, u32>,
    /// Pools with a `serviceAllocation`, phase-1 order (allocation.md §4.3).
    pub(crate) pinned: Vec<u32>,
    /// Pools without one, by name (phase-2 order).
    pub(crate) fallback: Vec<u32>,
    lookup: [Vec<LookupEntry>; 2],
    pub(crate) records: Records,
    pub(crate) keys: SharingKeys,
    pub(crate) protos: Protocols,
    /// Per pool: counters may have changed since `take_dirty_pools`.
    dirty: Vec<bool>,
    /// Pools removed by `set_pools` since `take_dirty_pools`.
    removed: BTreeSet<String>,
}

impl Allocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a pool configuration has been loaded once (controller.md §3.1:
    /// before that, processing does nothing).
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// Replaces the pool configuration and re-homes existing records
    /// (allocation.md §10.2): a record whose addresses now lie in another
    /// pool moves there, one whose addresses lie in no single pool is dropped.
    ///
    /// Pools are expected validated (unique names, no overlapping CIDRs). To
    /// stay total on bad input, a repeated name or a CIDR overlapping an
    /// earlier one is ignored.
    pub fn set_pools(&mut self, defs: Vec<PoolDef>) {
        let old_names: Vec<String> = self.pools.iter().map(|p| p.def.name.clone()).collect();
        let old_records: Vec<(Record, String, String)> = {
            let records = std::mem::take(&mut self.records);
            records
                .iter()
                .map(|(_, r)| {
                    let (s, b) = self.keys.get(r.sharing);
                    (r.clone(), s.to_string(), b.to_string())
                })
                .collect()
        };
        self.keys = SharingKeys::default();
        self.build_pools(defs);
        self.loaded = true;
        self.dirty = vec![true; self.pools.len()];
        self.removed.extend(
            old_names
                .into_iter()
                .filter(|n| !self.by_name.contains_key(n)),
        );
        for (mut record, sharing, backend) in old_records {
            let ips: Vec<Option<IpAddr>> = record.ips().map(Some).collect();
            if let Some(pool) = self.pool_for(&ips) {
                record.pool = pool;
                record.sharing = self.keys.acquire(&sharing, &backend);
                self.insert_record(record);
            }
        }
    }

    fn build_pools(&mut self, defs: Vec<PoolDef>) {
        self.pools.clear();
        self.by_name.clear();
        self.lookup = [Vec::new(), Vec::new()];
        let mut taken: [BTreeMap<u128, u128>; 2] = [BTreeMap::new(), BTreeMap::new()];
        for def in defs {
            if self.by_name.contains_key(&def.name) {
                continue;
            }
            let id = self.pools.len() as u32;
            let mut spaces = [FamilySpace::new(Family::V4), FamilySpace::new(Family::V6)];
            let mut capacity = [0i64; 2];
            for cidr in &def.cidrs {
                let (family, start, end) = cidr_bounds(cidr);
                let slot = family.slot();
                if overlaps(&taken[slot], start, end) {
                    continue;
                }
                taken[slot].insert(start, end);
                capacity[slot] =
                    capacity[slot].saturating_add(cidr_capacity(cidr, def.avoid_buggy_ips));
                // A CIDR with no usable address still gets a lookup entry
                // (segment NONE) so explanations can name its pool.
                let seg = usable_range(cidr, def.avoid_buggy_ips)
                    .and_then(|(base, last, stride)| spaces[slot].push(base, last, stride))
                    .map_or(NO_SEGMENT, |s| s as u32);
                self.lookup[slot].push(LookupEntry {
                    start,
                    end,
                    pool: id,
                    seg,
                });
            }
            for s in &mut spaces {
                s.seal();
            }
            self.by_name.insert(def.name.clone(), id);
            self.pools.push(PoolState {
                name: Arc::from(def.name.as_str()),
                def,
                spaces,
                capacity,
            });
        }
        for table in &mut self.lookup {
            table.sort_by_key(|e| e.start);
        }
        let mut pinned: Vec<u32> = (0..self.pools.len() as u32)
            .filter(|p| self.pools[*p as usize].def.allocation.is_some())
            .collect();
        pinned.sort_by(|a, b| {
            pinned_order(&self.pools[*a as usize].def, &self.pools[*b as usize].def)
        });
        let mut fallback: Vec<u32> = (0..self.pools.len() as u32)
            .filter(|p| self.pools[*p as usize].def.allocation.is_none())
            .collect();
        fallback.sort_by(|a, b| {
            self.pools[*a as usize]
                .def
                .name
                .cmp(&self.pools[*b as usize].def.name)
        });
        self.pinned = pinned;
        self.fallback = fallback;
    }

    pub fn pool_defs(&self) -> impl Iterator<Item = &PoolDef> {
        self.pools.iter().map(|p| &p.def)
    }

    pub fn pool(&self, name: &str) -> Option<&PoolDef> {
        self.pool_id(name).map(|id| &self.pools[id as usize].def)
    }

    pub(crate) fn pool_id(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn pool_state(&self, id: u32) -> &PoolState {
        &self.pools[id as usize]
    }

    pub(crate) fn pool_name(&self, id: u32) -> &str {
        &self.pools[id as usize].def.name
    }

    pub(crate) fn shared_pool_name(&self, id: u32) -> Arc<str> {
        Arc::clone(&self.pools[id as usize].name)
    }

    pub fn has_pools(&self) -> bool {
        !self.pools.is_empty()
    }

    /// allocation.md §9; `None` for a pool the allocator does not know.
    pub fn pool_counters(&self, name: &str) -> Option<PoolCounters> {
        let pool = &self.pools[self.pool_id(name)? as usize];
        let assigned = |f: Family| i64::try_from(pool.space(f).holders.len()).unwrap_or(i64::MAX);
        let (a4, a6) = (assigned(Family::V4), assigned(Family::V6));
        let (c4, c6) = (pool.capacity[0], pool.capacity[1]);
        Some(PoolCounters {
            assigned_v4: a4,
            available_v4: c4.saturating_sub(a4).max(0),
            assigned_v6: a6,
            available_v6: c6.saturating_sub(a6).max(0),
            capacity_v4: c4,
            capacity_v6: c6,
        })
    }

    /// Pools whose counters may have changed since the last call, including
    /// pools that were removed (controller.md §6).
    pub fn take_dirty_pools(&mut self) -> BTreeSet<String> {
        let mut out = std::mem::take(&mut self.removed);
        for (id, flag) in self.dirty.iter_mut().enumerate() {
            if std::mem::take(flag) {
                out.insert(self.pools[id].def.name.clone());
            }
        }
        out
    }

    /// The addresses recorded for a Service, in status order.
    pub fn assigned_ips(&self, key: &ServiceKey) -> Option<Vec<IpAddr>> {
        let slot = self.records.find(&key.to_string())?;
        self.records.get(slot).map(Record::ip_vec)
    }

    /// The pool a Service's addresses come from.
    pub fn assigned_pool(&self, key: &ServiceKey) -> Option<&str> {
        let slot = self.records.find(&key.to_string())?;
        self.records.get(slot).map(|r| self.pool_name(r.pool))
    }

    /// Number of Services holding addresses.
    pub fn service_count(&self) -> usize {
        self.records.len()
    }

    /// Releases a Service's allocation (deleted Service, allocation.md §10.4).
    /// Returns whether it had one.
    pub fn release(&mut self, key: &ServiceKey) -> bool {
        self.release_key(&key.to_string())
    }

    pub(crate) fn release_key(&mut self, key: &str) -> bool {
        match self.records.find(key) {
            Some(slot) => {
                self.unassign_slot(slot);
                true
            }
            None => false,
        }
    }

    /// The pool holding every one of `ips` (upstream `poolFor`); `None` when
    /// an address is missing, in no pool, `.0`/`.255` in an avoiding pool, or
    /// when they are spread over pools.
    pub fn pool_for_ips(&self, ips: &[IpAddr]) -> Option<&str> {
        let ips: Vec<Option<IpAddr>> = ips.iter().copied().map(Some).collect();
        self.pool_for(&ips).map(|p| self.pool_name(p))
    }

    pub(crate) fn pool_for(&self, ips: &[Option<IpAddr>]) -> Option<u32> {
        self.pool_and_locs(ips).map(|(pool, _)| pool)
    }

    /// `pool_for`, also returning where the first two addresses live.
    pub(crate) fn pool_and_locs(&self, ips: &[Option<IpAddr>]) -> Option<(u32, [Option<Loc>; 2])> {
        let mut pool = None;
        let mut locs = [None; 2];
        for (i, ip) in ips.iter().enumerate() {
            let loc = self.locate(ip.as_ref()?)?;
            match pool {
                None => pool = Some(loc.pool),
                Some(p) if p == loc.pool => {}
                Some(_) => return None,
            }
            if let Some(slot) = locs.get_mut(i) {
                *slot = Some(loc);
            }
        }
        pool.map(|p| (p, locs))
    }

    /// The pool whose CIDRs contain `ip`, even where avoidBuggyIPs skips it.
    pub(crate) fn locate_ignoring_buggy(&self, ip: &IpAddr) -> Option<u32> {
        let (family, raw) = from_ip(ip);
        let table = &self.lookup[family.slot()];
        let pos = table.partition_point(|e| e.start <= raw);
        let entry = table.get(pos.checked_sub(1)?)?;
        (raw <= entry.end).then_some(entry.pool)
    }

    pub(crate) fn locate(&self, ip: &IpAddr) -> Option<Loc> {
        let (family, raw) = from_ip(ip);
        let table = &self.lookup[family.slot()];
        let pos = table.partition_point(|e| e.start <= raw);
        let entry = table.get(pos.checked_sub(1)?)?;
        if raw > entry.end {
            return None;
        }
        let pool = &self.pools[entry.pool as usize];
        if pool.def.avoid_buggy_ips && is_buggy(ip) {
            return None;
        }
        let index = pool
            .space(family)
            .segments
            .get(entry.seg as usize)?
            .index(raw)?;
        Some(Loc {
            pool: entry.pool,
            family,
            index,
        })
    }

    /// Stores a record and marks its addresses held. The caller has checked
    /// that the assignment is allowed.
    pub(crate) fn insert_record(&mut self, record: Record) -> u32 {
        let locs = [Some(record.first), record.second].map(|ip| ip.and_then(|ip| self.locate(&ip)));
        self.insert_record_at(record, locs)
    }

    /// `insert_record` with the addresses already located.
    pub(crate) fn insert_record_at(&mut self, record: Record, locs: [Option<Loc>; 2]) -> u32 {
        let pool = record.pool;
        let sharing = record.sharing;
        let shares = !self.keys.get(sharing).0.is_empty();
        let slot = self.records.insert(record);
        for loc in locs.into_iter().flatten() {
            let space = &mut self.pools[loc.pool as usize].spaces[loc.family.slot()];
            match space.holders.get_mut(&loc.index) {
                Some(h) => h.add(slot),
                None => {
                    space.free.take(loc.index);
                    space.holders.insert(loc.index, Holders::One(slot));
                }
            }
            if shares {
                match space.shared.get_mut(&sharing) {
                    Some(set) => set.insert(loc.index),
                    None => {
                        space.shared.insert(sharing, SharedSet::One(loc.index));
                    }
                }
            }
        }
        self.mark_dirty(pool);
        slot
    }

    pub(crate) fn unassign_slot(&mut self, slot: u32) {
        let Some(record) = self.records.remove(slot) else {
            return;
        };
        let shares = !self.keys.get(record.sharing).0.is_empty();
        for ip in record.ips() {
            let Some(loc) = self.locate(&ip) else {
                continue;
            };
            let space = &mut self.pools[loc.pool as usize].spaces[loc.family.slot()];
            let now_free = space
                .holders
                .get_mut(&loc.index)
                .is_some_and(|h| h.remove(slot));
            if now_free {
                space.holders.remove(&loc.index);
                space.free.put(loc.index);
                if shares {
                    let emptied = space
                        .shared
                        .get_mut(&record.sharing)
                        .is_some_and(|set| set.remove(loc.index));
                    if emptied {
                        space.shared.remove(&record.sharing);
                    }
                }
            }
        }
        self.keys.release(record.sharing);
        self.mark_dirty(record.pool);
    }

    fn mark_dirty(&mut self, pool: u32) {
        if let Some(flag) = self.dirty.get_mut(pool as usize) {
            *flag = true;
        }
    }
}

fn cidr_bounds(cidr: &IpNet) -> (Family, u128, u128) {
    match cidr {
        IpNet::V4(n) => (
            Family::V4,
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (
            Family::V6,
            u128::from(n.network()),
            u128::from(n.broadcast()),
        ),
    }
}

fn overlaps(taken: &BTreeMap<u128, u128>, start: u128, end: u128) -> bool {
    let before = taken
        .range(..=start)
        .next_back()
        .is_some_and(|(_, e)| *e >= start);
    let after = taken.range(start..).next().is_some_and(|(s, _)| *s <= end);
    before || after
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, cidrs: &[&str], avoid: bool) -> PoolDef {
        PoolDef {
            avoid_buggy_ips: avoid,
            ..PoolDef::new(name, cidrs.iter().map(|c| c.parse().unwrap()).collect())
        }
    }

    #[test]
    fn a_slash_8_with_avoid_buggy_ips_is_one_segment_and_one_interval() {
        let mut a = Allocator::new();
        a.set_pools(vec![pool("big", &["10.0.0.0/8"], true)]);
        let space = a.pool_state(0).space(Family::V4);
        assert_eq!(space.segments.len(), 1);
        assert_eq!(space.free.interval_count(), 1);
        assert_eq!(space.free.count(), 65_536 * 254);
        assert_eq!(a.pool_counters("big").unwrap().available_v4, 65_536 * 254);
    }

    #[test]
    fn many_ranges_share_one_free_interval() {
        let cidrs: Vec<String> = (0..1000)
            .map(|i| format!("10.{}.{}.0/30", i / 250, i % 250))
            .collect();
        let refs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
        let mut a = Allocator::new();
        a.set_pools(vec![pool("r", &refs, false)]);
        let space = a.pool_state(0).space(Family::V4);
        assert_eq!(space.segments.len(), 1000);
        assert_eq!(space.free.interval_count(), 1);
        assert_eq!(space.address(3999).unwrap().to_string(), "10.3.249.3");
        assert_eq!(space.address(4000), None);
    }

    #[test]
    fn overlapping_and_repeated_input_is_ignored_not_fatal() {
        let mut a = Allocator::new();
        a.set_pools(vec![
            pool("a", &["10.0.0.0/24"], false),
            pool("b", &["10.0.0.128/25", "10.1.0.0/30"], false),
            pool("a", &["10.2.0.0/24"], false),
        ]);
        assert_eq!(a.pool_defs().count(), 2);
        assert_eq!(a.pool_for_ips(&["10.0.0.200".parse().unwrap()]), Some("a"));
        assert_eq!(a.pool_counters("b").unwrap().capacity_v4, 4);
        assert_eq!(a.pool_for_ips(&["10.2.0.1".parse().unwrap()]), None);
    }

    #[test]
    fn lookups_honour_avoid_buggy_ips() {
        let mut a = Allocator::new();
        a.set_pools(vec![
            pool("p", &["10.0.0.0/23"], true),
            pool("q", &["fc00::/120"], true),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(a.locate(&ip("10.0.0.0")).is_none());
        assert!(a.locate(&ip("10.0.0.255")).is_none());
        assert!(a.locate(&ip("10.0.1.0")).is_none());
        assert_eq!(a.locate(&ip("10.0.1.1")).map(|l| l.index), Some(254));
        assert_eq!(a.locate_ignoring_buggy(&ip("10.0.1.0")), Some(0));
        assert_eq!(a.locate(&ip("fc00::ff")).map(|l| l.index), Some(255));
        assert_eq!(a.pool_for_ips(&[ip("10.0.0.1"), ip("fc00::1")]), None);
    }
}
