//! The admission decision for one request (observability.md §6.2): namespace
//! rule, the BGPPeer `disableMP` and BFDProfile-deletion special cases, and the
//! partial set of objects handed to the configuration builder.

use serde_json::Value;

use crate::endpoints::Kind;

/// The operation of an admission request, as far as the policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Connect,
}

/// One admission request, reduced to what the policy reads.
#[derive(Clone, Debug)]
pub struct Review {
    pub kind: Kind,
    pub op: Op,
    pub name: String,
    pub namespace: Option<String>,
    /// The new object (create/update).
    pub object: Option<Value>,
    /// The stored object (update/delete).
    pub old_object: Option<Value>,
}

/// The answer to an admission request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub message: String,
    pub warnings: Vec<String>,
}

impl Verdict {
    pub fn allow() -> Self {
        Verdict { allowed: true, message: String::new(), warnings: Vec::new() }
    }
    pub fn deny(message: impl Into<String>) -> Self {
        Verdict { allowed: false, message: message.into(), warnings: Vec::new() }
    }
}

/// Read access to the cluster. Reads go to the API server, not a cache
/// (observability.md §6.1), so that a just-created object is seen.
pub trait Cluster {
    /// Objects of `kind` in the MetalLB namespace, in name order.
    fn list(&self, kind: Kind) -> impl Future<Output = Result<Vec<Value>, String>> + Send;
    /// All Node objects.
    fn nodes(&self) -> impl Future<Output = Result<Vec<Value>, String>> + Send;
}

/// The objects fed to the configuration builder for one request. Kinds that
/// the endpoint does not read stay empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub pools: Vec<Value>,
    pub peers: Vec<Value>,
    pub bgp_advertisements: Vec<Value>,
    pub l2_advertisements: Vec<Value>,
    pub communities: Vec<Value>,
    pub nodes: Vec<Value>,
}

pub const DISABLE_MP_WARNING: &str =
    "disable mp is deprecated and has no effect since it's the default behavior now";

/// The static part of the policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The MetalLB namespace.
    pub namespace: String,
}

impl Policy {
    /// Decides one request. `check` runs the configuration builder over the
    /// assembled objects and returns its error texts.
    pub async fn review<C, F>(&self, cluster: &C, check: F, r: &Review) -> Verdict
    where
        C: Cluster,
        F: FnOnce(&Snapshot) -> Result<(), Vec<String>>,
    {
        match r.op {
            Op::Connect => Verdict::allow(),
            // Deleting anything but a BFD profile is always allowed (a pool in use
            // included: its Services are re-addressed).
            Op::Delete if r.kind == Kind::BFDProfile => self.bfd_delete(cluster, r).await,
            Op::Delete => Verdict::allow(),
            Op::Create | Op::Update => self.create_or_update(cluster, check, r).await,
        }
    }

    async fn bfd_delete<C: Cluster>(&self, cluster: &C, r: &Review) -> Verdict {
        let peers = match cluster.list(Kind::BGPPeer).await {
            Ok(p) => p,
            Err(e) => return Verdict::deny(format!("failed to get existing BGPPeer objects: {e}")),
        };
        for peer in &peers {
            if peer.pointer("/spec/bfdProfile").and_then(Value::as_str) == Some(r.name.as_str()) {
                return Verdict::deny(format!(
                    "failed to delete BFDProfile {}, used by BGPPeer {}",
                    r.name,
                    object_name(peer)
                ));
            }
        }
        Verdict::allow()
    }

    async fn create_or_update<C, F>(&self, cluster: &C, check: F, r: &Review) -> Verdict
    where
        C: Cluster,
        F: FnOnce(&Snapshot) -> Result<(), Vec<String>>,
    {
        let Some(object) = r.object.as_ref() else {
            return Verdict::deny(format!("{}/{}: no object in the admission request", r.kind.name(), r.name));
        };
        // Upstream admits such a peer before any other check, the namespace
        // rule included (crds.md §1.1).
        if r.kind == Kind::BGPPeer
            && r.op == Op::Create
            && object.pointer("/spec/disableMP").and_then(Value::as_bool) == Some(true)
        {
            let mut v = Verdict::allow();
            v.warnings.push(DISABLE_MP_WARNING.into());
            return v;
        }
        if r.op == Op::Create {
            let ns = r
                .namespace
                .as_deref()
                .or_else(|| object.pointer("/metadata/namespace").and_then(Value::as_str))
                .unwrap_or_default();
            if ns != self.namespace {
                return Verdict::deny(format!("resource must be created in {} namespace", self.namespace));
            }
        }
        if r.kind == Kind::BFDProfile {
            // Ranges are enforced by the CRD schema; the native-mode rejection is
            // left to the speakers (observability.md §6.2).
            return Verdict::allow();
        }
        let snapshot = match assemble(cluster, r.kind, object).await {
            Ok(s) => s,
            Err(e) => return Verdict::deny(e),
        };
        match check(&snapshot) {
            Ok(()) => Verdict::allow(),
            Err(errors) => Verdict::deny(errors.join("; ")),
        }
    }
}

fn object_name(v: &Value) -> &str {
    v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()
}

/// Existing objects of the kind with `object` in place of the stored one of the
/// same name, or appended after them.
fn merged(mut existing: Vec<Value>, object: &Value) -> Vec<Value> {
    let name = object_name(object).to_string();
    match existing.iter_mut().find(|e| object_name(e) == name) {
        Some(slot) => *slot = object.clone(),
        None => existing.push(object.clone()),
    }
    existing
}

async fn list_or_err<C: Cluster>(cluster: &C, kind: Kind) -> Result<Vec<Value>, String> {
    cluster
        .list(kind)
        .await
        .map_err(|e| format!("failed to get existing {} objects: {e}", kind.name()))
}

async fn nodes_or_err<C: Cluster>(cluster: &C) -> Result<Vec<Value>, String> {
    cluster.nodes().await.map_err(|e| format!("failed to get existing Node objects: {e}"))
}

/// Which objects each endpoint feeds to the builder (observability.md §6.2).
pub async fn assemble<C: Cluster>(cluster: &C, kind: Kind, object: &Value) -> Result<Snapshot, String> {
    let mut s = Snapshot::default();
    let same = merged(list_or_err(cluster, kind).await?, object);
    match kind {
        Kind::IPAddressPool => s.pools = same,
        Kind::BGPPeer => {
            s.peers = same;
            s.nodes = nodes_or_err(cluster).await?;
        }
        Kind::BGPAdvertisement => {
            s.bgp_advertisements = same;
            s.pools = list_or_err(cluster, Kind::IPAddressPool).await?;
            s.nodes = nodes_or_err(cluster).await?;
        }
        Kind::L2Advertisement => {
            s.l2_advertisements = same;
            s.pools = list_or_err(cluster, Kind::IPAddressPool).await?;
        }
        Kind::Community => s.communities = same,
        Kind::BFDProfile => {}
    }
    sanitize(&mut s);
    Ok(s)
}

/// References to objects that may not exist yet are never checked at
/// admission: peers lose `bfdProfile` and `passwordSecret`, advertisements lose
/// community items without `:` (alias names).
pub fn sanitize(s: &mut Snapshot) {
    for peer in &mut s.peers {
        if let Some(spec) = peer.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("bfdProfile");
            spec.remove("passwordSecret");
        }
    }
    for adv in &mut s.bgp_advertisements {
        if let Some(Value::Array(items)) = adv.pointer_mut("/spec/communities") {
            items.retain(|c| c.as_str().is_some_and(|c| c.contains(':')));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Fake {
        objects: HashMap<&'static str, Vec<Value>>,
        nodes: Vec<Value>,
        fail: bool,
        calls: Mutex<Vec<&'static str>>,
    }

    impl Cluster for Fake {
        async fn list(&self, kind: Kind) -> Result<Vec<Value>, String> {
            self.calls.lock().unwrap().push(kind.name());
            if self.fail {
                return Err("connection refused".into());
            }
            Ok(self.objects.get(kind.name()).cloned().unwrap_or_default())
        }
        async fn nodes(&self) -> Result<Vec<Value>, String> {
            self.calls.lock().unwrap().push("Node");
            Ok(self.nodes.clone())
        }
    }

    fn obj(name: &str, ns: &str, spec: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": ns}, "spec": spec})
    }

    fn policy() -> Policy {
        Policy { namespace: "metallb-system".into() }
    }

    fn review(kind: Kind, op: Op, object: Value) -> Review {
        Review {
            kind,
            op,
            name: object_name(&object).to_string(),
            namespace: object.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from),
            old_object: None,
            object: Some(object),
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn create_outside_namespace_is_refused_before_listing() {
        let fake = Fake::default();
        let r = review(Kind::IPAddressPool, Op::Create, obj("p", "default", json!({})));
        let v = block_on(policy().review(&fake, |_| panic!("builder must not run"), &r));
        assert_eq!(v, Verdict::deny("resource must be created in metallb-system namespace"));
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn update_outside_namespace_is_validated_not_refused() {
        let fake = Fake::default();
        let r = review(Kind::IPAddressPool, Op::Update, obj("p", "default", json!({})));
        let v = block_on(policy().review(&fake, |_| Ok(()), &r));
        assert!(v.allowed);
    }

    #[test]
    fn object_replaces_same_name_or_is_appended() {
        let mut fake = Fake::default();
        fake.objects.insert(
            "IPAddressPool",
            vec![obj("a", "metallb-system", json!({"x": 1})), obj("b", "metallb-system", json!({"x": 2}))],
        );
        let new_b = obj("b", "metallb-system", json!({"x": 3}));
        let s = block_on(assemble(&fake, Kind::IPAddressPool, &new_b)).unwrap();
        assert_eq!(s.pools, vec![obj("a", "metallb-system", json!({"x": 1})), new_b]);
        let c = obj("c", "metallb-system", json!({}));
        let s = block_on(assemble(&fake, Kind::IPAddressPool, &c)).unwrap();
        assert_eq!(s.pools.len(), 3);
        assert_eq!(object_name(&s.pools[2]), "c");
    }

    #[test]
    fn builder_errors_deny_with_their_text() {
        let fake = Fake::default();
        let r = review(Kind::IPAddressPool, Op::Create, obj("p", "metallb-system", json!({})));
        let v = block_on(policy().review(&fake, |_| Err(vec!["e1".into(), "e2".into()]), &r));
        assert_eq!(v, Verdict::deny("e1; e2"));
    }

    #[test]
    fn listing_failure_denies_naming_the_kind() {
        let fake = Fake { fail: true, ..Fake::default() };
        let r = review(Kind::L2Advertisement, Op::Create, obj("l", "metallb-system", json!({})));
        let v = block_on(policy().review(&fake, |_| Ok(()), &r));
        assert!(!v.allowed);
        assert_eq!(v.message, "failed to get existing L2Advertisement objects: connection refused");
    }

    #[test]
    fn endpoints_read_their_kinds() {
        let fake = Fake::default();
        let o = obj("x", "metallb-system", json!({}));
        for (kind, expected) in [
            (Kind::IPAddressPool, vec!["IPAddressPool"]),
            (Kind::BGPPeer, vec!["BGPPeer", "Node"]),
            (Kind::BGPAdvertisement, vec!["BGPAdvertisement", "IPAddressPool", "Node"]),
            (Kind::L2Advertisement, vec!["L2Advertisement", "IPAddressPool"]),
            (Kind::Community, vec!["Community"]),
        ] {
            fake.calls.lock().unwrap().clear();
            block_on(assemble(&fake, kind, &o)).unwrap();
            assert_eq!(*fake.calls.lock().unwrap(), expected, "{kind:?}");
        }
    }

    #[test]
    fn references_are_stripped() {
        let mut fake = Fake::default();
        fake.objects.insert(
            "BGPPeer",
            vec![obj("p1", "metallb-system", json!({"bfdProfile": "b", "passwordSecret": {"name": "s"}, "myASN": 1}))],
        );
        let s = block_on(assemble(&fake, Kind::BGPPeer, &obj("p2", "metallb-system", json!({"bfdProfile": "c"})))).unwrap();
        assert_eq!(s.peers[0]["spec"], json!({"myASN": 1}));
        assert_eq!(s.peers[1]["spec"], json!({}));
        let adv = obj("a", "metallb-system", json!({"communities": ["1:2", "alias", "large:1:2:3"]}));
        let s = block_on(assemble(&fake, Kind::BGPAdvertisement, &adv)).unwrap();
        assert_eq!(s.bgp_advertisements[0]["spec"]["communities"], json!(["1:2", "large:1:2:3"]));
    }

    #[test]
    fn disable_mp_peer_skips_every_check_on_create_only() {
        let fake = Fake::default();
        let peer = obj("p", "elsewhere", json!({"disableMP": true}));
        let v = block_on(policy().review(&fake, |_| Err(vec!["bad".into()]), &review(Kind::BGPPeer, Op::Create, peer.clone())));
        assert!(v.allowed);
        assert_eq!(v.warnings, vec![DISABLE_MP_WARNING.to_string()]);
        let v = block_on(policy().review(&fake, |_| Err(vec!["bad".into()]), &review(Kind::BGPPeer, Op::Update, peer)));
        assert_eq!(v, Verdict::deny("bad"));
    }

    #[test]
    fn bfd_profile_create_checks_namespace_only() {
        let fake = Fake::default();
        let r = review(Kind::BFDProfile, Op::Create, obj("b", "metallb-system", json!({"echoMode": true})));
        assert!(block_on(policy().review(&fake, |_| Err(vec!["x".into()]), &r)).allowed);
        let r = review(Kind::BFDProfile, Op::Create, obj("b", "other", json!({})));
        assert!(!block_on(policy().review(&fake, |_| Ok(()), &r)).allowed);
    }

    #[test]
    fn bfd_profile_delete_refused_while_referenced() {
        let mut fake = Fake::default();
        fake.objects.insert(
            "BGPPeer",
            vec![
                obj("other", "metallb-system", json!({"bfdProfile": "slow"})),
                obj("peer1", "metallb-system", json!({"bfdProfile": "fast"})),
            ],
        );
        let mut r = review(Kind::BFDProfile, Op::Delete, obj("fast", "metallb-system", json!({})));
        r.old_object = r.object.take();
        let v = block_on(policy().review(&fake, |_| Ok(()), &r));
        assert_eq!(v, Verdict::deny("failed to delete BFDProfile fast, used by BGPPeer peer1"));
        r.name = "unused".into();
        assert!(block_on(policy().review(&fake, |_| Ok(()), &r)).allowed);
    }

    #[test]
    fn other_deletes_are_allowed() {
        let fake = Fake { fail: true, ..Fake::default() };
        let r = review(Kind::IPAddressPool, Op::Delete, obj("p", "metallb-system", json!({})));
        assert!(block_on(policy().review(&fake, |_| Err(vec!["x".into()]), &r)).allowed);
    }
}
