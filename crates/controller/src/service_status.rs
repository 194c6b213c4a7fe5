//! What the controller writes on a Service, and the single request that
//! writes it: a strategic-merge PATCH of the `status` subresource carrying
//! `status.loadBalancer.ingress`, the ferrolb condition and the
//! `metallb.io/ip-allocated-from-pool` annotation together (the Service status
//! strategy keeps metadata changes sent to /status; verified by the fixture
//! tests, see docs/controller.md).
//!
//! Fencing (docs/fencing.md): the session's patches carry
//! `metadata.resourceVersion` of the state they were computed from
//! ([`precondition`]), so the API server refuses (409) a write whose base
//! someone has changed since, in particular a deposed leader's write to an
//! object the new leader has written; and every request goes through the
//! leadership [`Fence`], so none is sent, or waited for, past the renew
//! deadline.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use ferrolb_runtime::leader::{Fence, NotLeader};
use ferrolb_runtime::status::StatusWriter;
use futures::FutureExt;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::watch::ServiceId;

/// Annotation naming the pool of the current addresses (written, never read).
pub const POOL_ANNOTATION: &str = "metallb.io/ip-allocated-from-pool";

/// Condition type on Services answering "does it have its addresses, and if
/// not, why". Domain-prefixed so it can't clash with Kubernetes' own types.
pub const CONDITION_TYPE: &str = "ferrolb.metallb.io/IPAllocated";

/// Longest condition message the API server accepts.
const MAX_MESSAGE: usize = 32 * 1024;

/// The ferrolb condition, without timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionSpec {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// Everything the controller owns on one Service.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Desired {
    /// `status.loadBalancer.ingress[].ip`, in this order.
    pub ips: Vec<String>,
    /// Value of [`POOL_ANNOTATION`]; `None` removes it.
    pub pool: Option<String>,
    /// `None` removes the condition (Services the controller no longer manages).
    pub condition: Option<ConditionSpec>,
}

/// The same fields as read from a Service object.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Current {
    /// One entry per ingress item; `None` for an item without `ip`
    /// (written by someone else; the controller drops those).
    pub ingress: Vec<Option<String>>,
    pub pool: Option<String>,
    /// Boxed: most of this type's size, and one is kept per Service.
    pub condition: Option<Box<Condition>>,
    pub generation: Option<i64>,
    /// `metadata.resourceVersion` of the object these fields were read from
    /// (or that the controller's write produced): the precondition of the
    /// next write.
    pub resource_version: Option<String>,
}

impl Current {
    /// What the status writer compares, read as the cache reads it.
    pub fn of(svc: &Service) -> Self {
        crate::service_record::ServiceRecord::from(svc.clone()).status
    }

    /// The non-empty ingress IPs, what allocation reads as "current addresses".
    pub fn ips(&self) -> Vec<String> {
        self.ingress.iter().flatten().cloned().collect()
    }

    fn ingress_matches(&self, ips: &[String]) -> bool {
        self.ingress.len() == ips.len()
            && self.ingress.iter().zip(ips).all(|(have, want)| have.as_deref() == Some(want.as_str()))
    }

    fn condition_matches(&self, want: Option<&ConditionSpec>) -> bool {
        match (self.condition.as_deref(), want) {
            (None, None) => true,
            (Some(c), Some(w)) => {
                c.status == status_text(w.status)
                    && c.reason == w.reason
                    && c.message == truncate(&w.message)
                    && (c.observed_generation == self.generation || self.generation.is_none())
            }
            _ => false,
        }
    }

    /// True when writing `desired` would change something.
    pub fn differs_from(&self, desired: &Desired) -> bool {
        !self.ingress_matches(&desired.ips)
            || self.pool != desired.pool
            || !self.condition_matches(desired.condition.as_ref())
    }
}

fn status_text(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE - 3;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

/// The strategic-merge patch turning `current` into `desired`.
///
/// `metadata.uid` makes the API server refuse the patch if the Service was
/// deleted and recreated under the same name since it was read.
pub fn patch_body(uid: Option<&str>, current: &Current, desired: &Desired, now: Timestamp) -> Value {
    let ingress = if desired.ips.is_empty() {
        Value::Null
    } else {
        Value::Array(desired.ips.iter().map(|ip| json!({ "ip": ip })).collect())
    };
    let condition = match &desired.condition {
        None => json!({ "type": CONDITION_TYPE, "$patch": "delete" }),
        Some(want) => {
            let status = status_text(want.status);
            let since = match &current.condition {
                Some(c) if c.status == status => c.last_transition_time.clone(),
                _ => Time(now),
            };
            let cond = Condition {
                type_: CONDITION_TYPE.to_string(),
                status: status.to_string(),
                reason: want.reason.clone(),
                message: truncate(&want.message),
                last_transition_time: since,
                observed_generation: current.generation,
            };
            serde_json::to_value(cond).unwrap_or(Value::Null)
        }
    };
    let mut metadata = json!({ "annotations": { POOL_ANNOTATION: desired.pool } });
    if let Some(uid) = uid {
        metadata["uid"] = json!(uid);
    }
    json!({
        "metadata": metadata,
        "status": {
            "loadBalancer": { "ingress": ingress },
            "conditions": [condition],
        }
    })
}

/// Makes `body` conditional on the object still being at `resource_version`:
/// the API server answers 409 Conflict, and changes nothing, if it is not.
pub fn precondition(body: &mut Value, resource_version: &str) {
    body["metadata"]["resourceVersion"] = json!(resource_version);
}

/// Whether a write was refused because its precondition failed (the object
/// changed since the state the write was computed from).
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409)
}

/// Why a status write did not complete.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Not sent, or abandoned, because the leadership fence no longer holds.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
    /// The API server refused it or could not be reached.
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Sends the patch; returns the updated Service.
pub async fn write<B: serde::Serialize + std::fmt::Debug + ?Sized>(
    api: &Api<Service>,
    name: &str,
    body: &B,
) -> Result<Service, kube::Error> {
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(body))
        .await
}

/// The PATCH body, already serialised: a burst queues thousands of writes
/// while only a few are in flight, and compact JSON text is about a tenth of
/// the memory of a `serde_json::Value` tree.
pub type Body = Box<RawValue>;

/// Service status writes, keyed by `namespace/name`; each carries the
/// session's number for it, returned with the answer.
pub type Writer = StatusWriter<ServiceId, (u64, Body), (u64, Result<Service, WriteError>)>;

/// A writer sending at most `limit` patches at once, each only while `fence`
/// holds.
pub fn writer(client: Client, limit: usize, fence: Fence) -> Writer {
    StatusWriter::new(limit, move |id: ServiceId, (n, body): (u64, Body)| {
        let api: Api<Service> = Api::namespaced(client.clone(), &id.0);
        let fence = fence.clone();
        async move {
            let result = match fence.guard(write(&api, &id.1, &body)).await {
                Ok(r) => r.map_err(WriteError::from),
                Err(not_leader) => Err(not_leader.into()),
            };
            (n, result)
        }
        .boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};

    fn svc(ips: &[&str], pool: Option<&str>) -> Service {
        let mut s = Service::default();
        s.metadata.generation = Some(1);
        if let Some(p) = pool {
            s.metadata.annotations = Some([(POOL_ANNOTATION.to_string(), p.to_string())].into());
        }
        s.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    ips.iter()
                        .map(|ip| LoadBalancerIngress { ip: Some(ip.to_string()), ip_mode: Some("VIP".into()), ..Default::default() })
                        .collect(),
                ),
            }),
            conditions: None,
        });
        s
    }

    fn ok(pool: &str) -> Desired {
        Desired {
            ips: vec!["10.0.0.1".into()],
            pool: Some(pool.into()),
            condition: Some(ConditionSpec { status: true, reason: "IPAllocated".into(), message: "m".into() }),
        }
    }

    #[test]
    fn ip_mode_defaulted_by_the_server_is_not_a_difference() {
        let desired = ok("a");
        let mut s = svc(&["10.0.0.1"], Some("a"));
        let now = Timestamp::now();
        let body = patch_body(None, &Current::of(&s), &desired, now);
        let cond: Condition = serde_json::from_value(body["status"]["conditions"][0].clone()).unwrap();
        s.status.as_mut().unwrap().conditions = Some(vec![Condition { observed_generation: Some(1), ..cond }]);
        assert!(!Current::of(&s).differs_from(&desired));
        assert!(Current::of(&s).differs_from(&ok("b")));
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let then = Timestamp::from_second(1_700_000_000).unwrap();
        let mut s = svc(&["10.0.0.1"], Some("a"));
        s.status.as_mut().unwrap().conditions = Some(vec![Condition {
            type_: CONDITION_TYPE.into(),
            status: "True".into(),
            reason: "IPAllocated".into(),
            message: "old".into(),
            last_transition_time: Time(then),
            observed_generation: Some(1),
        }]);
        let cur = Current::of(&s);
        let body = patch_body(None, &cur, &ok("a"), Timestamp::now());
        assert_eq!(body["status"]["conditions"][0]["lastTransitionTime"], json!(Time(then)));
        let mut failed = ok("a");
        failed.condition = Some(ConditionSpec { status: false, reason: "PoolExhausted".into(), message: "x".into() });
        let body = patch_body(None, &cur, &failed, Timestamp::now());
        assert_ne!(body["status"]["conditions"][0]["lastTransitionTime"], json!(Time(then)));
    }

    #[test]
    fn clearing_removes_ingress_annotation_and_condition() {
        let s = svc(&["10.0.0.1"], Some("a"));
        let body = patch_body(Some("u"), &Current::of(&s), &Desired::default(), Timestamp::now());
        assert_eq!(body["status"]["loadBalancer"]["ingress"], Value::Null);
        assert_eq!(body["metadata"]["annotations"][POOL_ANNOTATION], Value::Null);
        assert_eq!(body["metadata"]["uid"], "u");
        assert_eq!(body["status"]["conditions"][0]["$patch"], "delete");
    }

    #[test]
    fn hostname_only_entries_are_rewritten() {
        let mut s = svc(&["10.0.0.1"], Some("a"));
        s.status.as_mut().unwrap().load_balancer.as_mut().unwrap().ingress.as_mut().unwrap().push(
            LoadBalancerIngress { hostname: Some("lb.example".into()), ..Default::default() },
        );
        let cur = Current::of(&s);
        assert_eq!(cur.ips(), vec!["10.0.0.1".to_string()]);
        let mut want = ok("a");
        want.condition = None;
        assert!(cur.differs_from(&want));
    }

    #[test]
    fn the_precondition_is_the_resource_version_read() {
        let mut s = svc(&[], None);
        s.metadata.resource_version = Some("4711".into());
        let cur = Current::of(&s);
        assert_eq!(cur.resource_version.as_deref(), Some("4711"));
        let mut body = patch_body(Some("u"), &cur, &ok("a"), Timestamp::now());
        assert!(body["metadata"].get("resourceVersion").is_none(), "unconditional unless asked");
        precondition(&mut body, "4711");
        assert_eq!(body["metadata"]["resourceVersion"], "4711");
        assert_eq!(body["metadata"]["uid"], "u");
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let m = "é".repeat(MAX_MESSAGE);
        let t = truncate(&m);
        assert!(t.len() <= MAX_MESSAGE);
        assert!(t.ends_with("..."));
    }
}
