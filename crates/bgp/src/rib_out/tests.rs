use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// What a peer's Adj-RIB-In holds after applying the changes in order.
fn apply(rib: &mut BTreeMap<IpNet, RouteAttrs>, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Announce {
                family,
                attrs,
                prefixes,
            } => {
                for p in prefixes {
                    assert_eq!(Family::of(p), *family);
                    rib.insert(*p, attrs.clone());
                }
            }
            Change::Withdraw { family, prefixes } => {
                for p in prefixes {
                    assert_eq!(Family::of(p), *family);
                    rib.remove(p);
                }
            }
            Change::EndOfRib(_) => {}
        }
    }
}

fn prefix(i: u8) -> IpNet {
    if i.is_multiple_of(2) {
        IpNet::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, i)), 32).expect("v4")
    } else {
        IpNet::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(i))),
            128,
        )
        .expect("v6")
    }
}

fn attrs(p: &IpNet, k: u8) -> RouteAttrs {
    RouteAttrs {
        next_hop: match p {
            IpNet::V4(_) => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11)),
            IpNet::V6(_) => "2001:db8::11".parse().expect("ip"),
        },
        as_path: vec![64512],
        local_pref: k.is_multiple_of(3).then_some(u32::from(k)),
        communities: (0..k % 4).map(|c| (64512 << 16) | u32::from(c)).collect(),
        large_communities: if k.is_multiple_of(2) {
            vec![]
        } else {
            vec![(64512, 1, u32::from(k))]
        },
    }
}

fn desired_strategy() -> impl Strategy<Value = BTreeMap<IpNet, RouteAttrs>> {
    proptest::collection::btree_map(0u8..24, 0u8..6, 0..16).prop_map(|m| {
        m.into_iter()
            .map(|(i, k)| {
                let p = prefix(i);
                (p, attrs(&p, k))
            })
            .collect()
    })
}

fn families_strategy() -> impl Strategy<Value = Vec<Family>> {
    prop_oneof![
        Just(vec![Family::Ipv4Unicast]),
        Just(vec![Family::Ipv6Unicast]),
        Just(vec![Family::Ipv4Unicast, Family::Ipv6Unicast]),
    ]
}

/// `d` as the RIB-Out holds it.
fn shared(d: &BTreeMap<IpNet, RouteAttrs>) -> Routes {
    d.iter().map(|(p, a)| (*p, Arc::new(a.clone()))).collect()
}

fn in_families(d: &BTreeMap<IpNet, RouteAttrs>, f: &[Family]) -> BTreeMap<IpNet, RouteAttrs> {
    d.iter()
        .filter(|(p, _)| f.contains(&Family::of(p)))
        .map(|(p, a)| (*p, a.clone()))
        .collect()
}

proptest! {
    #[test]
    /// Whether each step hands over the whole set ([`RibOut::diff`]) or
    /// only the prefixes that changed ([`RibOut::update`]), mixed, the
    /// peer ends up with the desired set by the fewest UPDATEs.
    fn updates_reproduce_the_desired_set(
        steps in proptest::collection::vec((desired_strategy(), any::<bool>()), 1..8),
        families in families_strategy(),
    ) {
        let mut rib_out = RibOut::new();
        let mut peer = BTreeMap::new();
        rib_out.set_desired(shared(&steps[0].0));
        let first = rib_out.initial(&families);
        let eors: Vec<_> = first.iter().filter(|c| matches!(c, Change::EndOfRib(_))).collect();
        prop_assert_eq!(eors.len(), families.len());
        prop_assert!(matches!(first.last(), Some(Change::EndOfRib(_))));
        apply(&mut peer, &first);
        prop_assert_eq!(&peer, &in_families(&steps[0].0, &families));
        for pair in steps.windows(2) {
            let ((before, _), (desired, one_at_a_time)) = (&pair[0], &pair[1]);
            let changes = if *one_at_a_time {
                let changed: Vec<(IpNet, Option<Arc<RouteAttrs>>)> = before
                    .keys()
                    .chain(desired.keys())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|p| before.get(*p) != desired.get(*p))
                    .map(|p| (*p, desired.get(p).map(|a| Arc::new(a.clone()))))
                    .collect();
                rib_out.update(changed, &families)
            } else {
                rib_out.set_desired(shared(desired));
                rib_out.diff(&families)
            };
            // Minimal: each prefix at most once, only changed ones, one
            // UPDATE per distinct attribute set.
            let mut seen = BTreeSet::new();
            let mut groups = BTreeSet::new();
            for c in &changes {
                match c {
                    Change::Announce { prefixes, attrs, family } => {
                        prop_assert!(groups.insert((*family, attrs.clone())));
                        for p in prefixes {
                            prop_assert!(seen.insert(*p));
                            prop_assert_ne!(peer.get(p), Some(attrs));
                        }
                    }
                    Change::Withdraw { prefixes, .. } => {
                        for p in prefixes {
                            prop_assert!(seen.insert(*p));
                            prop_assert!(peer.contains_key(p));
                        }
                    }
                    Change::EndOfRib(_) => prop_assert!(false, "End-of-RIB after the initial send"),
                }
            }
            apply(&mut peer, &changes);
            prop_assert_eq!(&peer, &in_families(desired, &families));
            prop_assert_eq!(rib_out.desired(), &shared(desired));
            prop_assert!(rib_out.diff(&families).is_empty());
        }
    }

    #[test]
    fn refresh_resends_one_family_in_full(desired in desired_strategy()) {
        let all = [Family::Ipv4Unicast, Family::Ipv6Unicast];
        let mut rib_out = RibOut::new();
        rib_out.set_desired(shared(&desired));
        rib_out.initial(&all);
        let mut peer = BTreeMap::new();
        apply(&mut peer, &rib_out.refresh(Family::Ipv6Unicast));
        prop_assert_eq!(peer, in_families(&desired, &[Family::Ipv6Unicast]));
    }
}

#[test]
fn resolve_fills_next_hop_as_path_and_local_pref_for_ibgp_only() {
    let mut ads = BTreeMap::new();
    ads.insert(
        prefix(2),
        Advertisement {
            local_pref: Some(150),
            communities: vec![3, 1, 3],
            large_communities: vec![],
        },
    );
    ads.insert(prefix(3), Advertisement::default());
    let mut ctx = AttrContext {
        ibgp: false,
        local_asn: 64512,
        next_hop_v4: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11))),
        next_hop_v6: None,
        default_local_pref: 100,
    };
    let ebgp = resolve(&ads, &ctx);
    assert_eq!(
        ebgp.len(),
        1,
        "no IPv6 next hop: the IPv6 route is left out"
    );
    let a = &ebgp[&prefix(2)];
    assert_eq!(
        (a.as_path.clone(), a.local_pref, a.communities.clone()),
        (vec![64512], None, vec![1, 3])
    );
    ctx.ibgp = true;
    ctx.next_hop_v6 = Some("2001:db8::11".parse().expect("ip"));
    let ibgp = resolve(&ads, &ctx);
    assert_eq!(ibgp[&prefix(2)].local_pref, Some(150));
    assert_eq!(ibgp[&prefix(3)].local_pref, Some(100));
    assert!(ibgp[&prefix(3)].as_path.is_empty());
}

/// An advertisement with one community.
fn ad(c: u32) -> Advertisement {
    Advertisement { local_pref: None, communities: vec![c], large_communities: vec![] }
}

/// Two IPv4 routes alike, one IPv4 route apart, one IPv6 route alike but
/// for its next hop.
fn mixed_ads() -> BTreeMap<IpNet, Advertisement> {
    BTreeMap::from([(prefix(2), ad(1)), (prefix(4), ad(1)), (prefix(6), ad(2)), (prefix(3), ad(1))])
}

fn ebgp_ctx(next_hop_v6: Option<IpAddr>) -> AttrContext {
    AttrContext {
        ibgp: false,
        local_asn: 64512,
        next_hop_v4: Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 11))),
        next_hop_v6,
        default_local_pref: 100,
    }
}

#[test]
fn routes_with_equal_attributes_share_them() {
    let ads = mixed_ads();
    let ctx = ebgp_ctx(Some("2001:db8::11".parse().expect("ip")));
    let routes = resolve(&ads, &ctx);
    assert!(Arc::ptr_eq(&routes[&prefix(2)], &routes[&prefix(4)]));
    assert!(!Arc::ptr_eq(&routes[&prefix(2)], &routes[&prefix(6)]));
    assert!(!Arc::ptr_eq(&routes[&prefix(2)], &routes[&prefix(3)]));
    assert_eq!(routes[&prefix(3)].next_hop, ctx.next_hop_v6.expect("v6"));
    // What the peer has been sent shares them too.
    let mut rib_out = RibOut::new();
    rib_out.set_desired(routes);
    rib_out.initial(&[Family::Ipv4Unicast, Family::Ipv6Unicast]);
    assert!(Arc::ptr_eq(&rib_out.sent()[&prefix(2)], &rib_out.sent()[&prefix(4)]));
}

#[test]
fn routes_resolved_one_at_a_time_equal_and_share_those_resolved_together() {
    let ads = mixed_ads();
    let ctx = ebgp_ctx(None);
    let together = resolve(&ads, &ctx);
    let mut cache = AttrCache::default();
    let one: BTreeMap<IpNet, Arc<RouteAttrs>> =
        ads.iter().filter_map(|(p, a)| Some((*p, cache.resolve_one(p, a, &ctx)?))).collect();
    assert_eq!(one, together, "no IPv6 next hop: left out alike");
    assert!(Arc::ptr_eq(&one[&prefix(2)], &one[&prefix(4)]));
    assert!(!Arc::ptr_eq(&one[&prefix(2)], &one[&prefix(6)]));
    cache.clear();
    assert!(!Arc::ptr_eq(&cache.resolve_one(&prefix(2), &ad(1), &ctx).expect("v4"), &one[&prefix(2)]), "a cleared cache resolves anew");
}
