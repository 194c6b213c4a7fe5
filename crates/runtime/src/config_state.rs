//! A component's `ConfigurationState` (crds.md §9): the verdict of its last
//! configuration load as one condition, with `result` and `errorSummary`
//! computed from it. The controller writes `controller` (condition
//! `poolReconcilerValid`), each speaker `speaker-<node>` (condition
//! `configReconcilerValid`); [`Identity`] says which.
//!
//! The object is (re)created with server-side apply when missing or when its
//! labels or owner are not the identity's, and its status is applied with
//! the identity's status field manager. Writes happen when the verdict
//! changes or the stored object disagrees with it (deleted, edited by hand),
//! not on every evaluation: `lastTransitionTime` is the time of the last
//! write. The caller feeds [`ConfigStateWriter::flush`] with what its watch
//! cache holds of the object, and polls [`ConfigStateWriter::next`].

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_api::labels::{COMPONENT_CONTROLLER, COMPONENT_SPEAKER, COMPONENT_TYPE, NODE_NAME};
use ferrolb_api::v1beta1::{
    CONDITION_CONFIG_RECONCILER_VALID, CONDITION_POOL_RECONCILER_VALID, ConfigurationResult, ConfigurationState,
    REASON_CONFIGURATION_ERROR, REASON_RECONCILED,
};
use futures::FutureExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::status::{StatusWriter, cache_caught_up};

/// Name of the controller's ConfigurationState.
pub const CONTROLLER_OBJECT: &str = "controller";
/// Delay before a failed write is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// Which component's ConfigurationState this is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Object name, in the MetalLB namespace.
    pub name: String,
    /// Labels the object must carry.
    pub labels: BTreeMap<String, String>,
    /// The one condition type this component writes.
    pub condition: String,
    /// Field manager of the object's metadata (labels, owner).
    pub object_manager: String,
    /// Field manager of the status, MetalLB's reconciler name.
    pub status_manager: String,
}

impl Identity {
    /// `ConfigurationState/controller`, written by the pool reconciler.
    pub fn controller() -> Self {
        Identity {
            name: CONTROLLER_OBJECT.to_string(),
            labels: BTreeMap::from([(COMPONENT_TYPE.to_string(), COMPONENT_CONTROLLER.to_string())]),
            condition: CONDITION_POOL_RECONCILER_VALID.to_string(),
            object_manager: "ferrolb-controller".to_string(),
            status_manager: "poolReconciler".to_string(),
        }
    }

    /// `ConfigurationState/speaker-<node>`, written by that node's speaker.
    pub fn speaker(node: &str) -> Self {
        Identity {
            name: format!("speaker-{node}"),
            labels: BTreeMap::from([
                (COMPONENT_TYPE.to_string(), COMPONENT_SPEAKER.to_string()),
                (NODE_NAME.to_string(), node.to_string()),
            ]),
            condition: CONDITION_CONFIG_RECONCILER_VALID.to_string(),
            object_manager: "ferrolb-speaker".to_string(),
            status_manager: "configReconciler".to_string(),
        }
    }
}

/// The verdict of a configuration load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Loaded and applied.
    Valid,
    /// Refused; the text follows `configuration error: ` in the condition.
    Invalid(String),
}

impl Verdict {
    fn condition_parts(&self) -> (&'static str, &'static str, String) {
        match self {
            Verdict::Valid => ("True", REASON_RECONCILED, String::new()),
            Verdict::Invalid(e) => ("False", REASON_CONFIGURATION_ERROR, format!("configuration error: {e}")),
        }
    }

    fn result(&self) -> ConfigurationResult {
        match self {
            Verdict::Valid => ConfigurationResult::Valid,
            Verdict::Invalid(_) => ConfigurationResult::Invalid,
        }
    }

    /// `errorSummary`: the messages of the ConfigurationError conditions,
    /// here at most one.
    fn summary(&self) -> String {
        match self {
            Verdict::Valid => String::new(),
            Verdict::Invalid(_) => self.condition_parts().2,
        }
    }
}

/// One write: the object when it must be (re)created, then the status.
struct Write {
    object: Option<serde_json::Value>,
    status: serde_json::Value,
}

/// There is one ConfigurationState per writer, so one key.
type Writer = StatusWriter<(), Write, Result<ConfigurationState, kube::Error>>;

/// Keeps one component's ConfigurationState showing its latest verdict.
pub struct ConfigStateWriter {
    identity: Identity,
    owner: Option<OwnerReference>,
    verdict: Option<Verdict>,
    /// Set after a write until the cache shows a newer object.
    written_rv: Option<String>,
    writer: Writer,
}

impl ConfigStateWriter {
    /// A writer of `identity`'s object through `api` (namespaced to the
    /// MetalLB namespace), owned by `owner` (the writing Pod) when known.
    pub fn new(api: Api<ConfigurationState>, identity: Identity, owner: Option<OwnerReference>) -> Self {
        let (name, object_manager, status_manager) =
            (identity.name.clone(), identity.object_manager.clone(), identity.status_manager.clone());
        let writer = StatusWriter::new(1, move |(), w: Write| {
            let (api, name) = (api.clone(), name.clone());
            let object_params = PatchParams::apply(&object_manager).force();
            let status_params = PatchParams::apply(&status_manager).force();
            async move {
                if let Some(body) = w.object {
                    api.patch(&name, &object_params, &Patch::Apply(&body)).await?;
                }
                api.patch_status(&name, &status_params, &Patch::Apply(&w.status)).await
            }
            .boxed()
        });
        ConfigStateWriter { identity, owner, verdict: None, written_rv: None, writer }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Records the latest verdict; [`Self::flush`] writes it.
    pub fn set(&mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
    }

    /// Writes when `stored` (the watch cache's copy of the object, `None`
    /// when absent) disagrees with the verdict; after a failure, once the
    /// retry delay has passed.
    pub fn flush(&mut self, stored: Option<&ConfigurationState>) {
        let Some(verdict) = self.verdict.clone() else { return };
        if self.writer.in_flight(&()) {
            return;
        }
        if let (Some(obj), Some(rv)) = (stored, &self.written_rv)
            && !cache_caught_up(obj.metadata.resource_version.as_deref(), rv)
        {
            return;
        }
        self.written_rv = None;
        let needs_object = stored.is_none_or(|o| !self.object_ok(o));
        if !needs_object && stored.is_some_and(|o| self.shows(o, &verdict)) {
            // A retry still waiting would write what is already there.
            self.writer.cancel(&());
            return;
        }
        let object = needs_object.then(|| self.object_body());
        let status = self.status_body(&verdict);
        self.writer.submit((), Write { object, status });
    }

    /// The result of the next finished write; pends while there is none.
    /// Cancel-safe, for a `select!` loop.
    pub async fn next(&mut self) -> Result<ConfigurationState, kube::Error> {
        self.writer.next().await.1
    }

    /// Takes a result from [`Self::next`]; the caller flushes afterwards (a
    /// failed write is then retried after a delay).
    pub fn finished(&mut self, result: Result<ConfigurationState, kube::Error>, now: Instant) {
        match result {
            Ok(obj) => self.written_rv = obj.metadata.resource_version,
            Err(error) => {
                tracing::warn!(object = %self.identity.name, %error, "writing ConfigurationState failed, will retry");
                self.writer.hold(&(), now + RETRY);
            }
        }
    }

    fn object_ok(&self, o: &ConfigurationState) -> bool {
        let labels = o.labels();
        let labelled = self.identity.labels.iter().all(|(k, v)| labels.get(k) == Some(v));
        let owned = match &self.owner {
            None => true,
            Some(want) => o.owner_references().iter().any(|r| r.uid == want.uid),
        };
        labelled && owned
    }

    fn object_body(&self) -> serde_json::Value {
        let mut meta = json!({ "name": self.identity.name, "labels": self.identity.labels });
        if let Some(owner) = &self.owner {
            meta["ownerReferences"] = json!([owner]);
        }
        json!({
            "apiVersion": ConfigurationState::api_version(&()),
            "kind": ConfigurationState::kind(&()),
            "metadata": meta,
        })
    }

    fn status_body(&self, verdict: &Verdict) -> serde_json::Value {
        let (status, reason, message) = verdict.condition_parts();
        let condition = Condition {
            type_: self.identity.condition.clone(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            last_transition_time: Time(Timestamp::now()),
            observed_generation: None,
        };
        json!({
            "apiVersion": ConfigurationState::api_version(&()),
            "kind": ConfigurationState::kind(&()),
            "metadata": { "name": self.identity.name },
            "status": {
                "result": verdict.result(),
                "errorSummary": verdict.summary(),
                "conditions": [condition],
            }
        })
    }

    /// Whether the stored status already says what `verdict` says.
    fn shows(&self, o: &ConfigurationState, verdict: &Verdict) -> bool {
        let Some(st) = &o.status else { return false };
        let (status, reason, message) = verdict.condition_parts();
        let cond_ok = st
            .conditions
            .iter()
            .find(|c| c.type_ == self.identity.condition)
            .is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
        cond_ok && st.result == Some(verdict.result()) && st.error_summary == verdict.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_api::v1beta1::ConfigurationStateStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn stored(identity: &Identity, verdict: Option<&Verdict>, owner: Option<&str>) -> ConfigurationState {
        let mut o = ConfigurationState::new(&identity.name, Default::default());
        o.metadata = ObjectMeta {
            name: Some(identity.name.clone()),
            labels: Some(identity.labels.clone()),
            owner_references: owner.map(|uid| vec![OwnerReference { uid: uid.into(), ..Default::default() }]),
            resource_version: Some("5".into()),
            ..Default::default()
        };
        if let Some(v) = verdict {
            let (status, reason, message) = v.condition_parts();
            o.status = Some(ConfigurationStateStatus {
                result: Some(v.result()),
                error_summary: v.summary(),
                conditions: vec![Condition {
                    type_: identity.condition.clone(),
                    status: status.into(),
                    reason: reason.into(),
                    message,
                    last_transition_time: Time(Timestamp::now()),
                    observed_generation: None,
                }],
            });
        }
        o
    }

    /// A writer whose API is never reached (tests look at its decisions only).
    fn writer(identity: Identity, owner: Option<&str>) -> ConfigStateWriter {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let owner = owner.map(|uid| OwnerReference { uid: uid.into(), ..Default::default() });
        ConfigStateWriter::new(Api::namespaced(client, "metallb-system"), identity, owner)
    }

    #[test]
    fn identities_follow_the_spec() {
        let s = Identity::speaker("n1");
        assert_eq!(s.name, "speaker-n1");
        assert_eq!(s.labels.get("metallb.io/component-type").map(String::as_str), Some("speaker"));
        assert_eq!(s.labels.get("metallb.io/node-name").map(String::as_str), Some("n1"));
        assert_eq!((s.condition.as_str(), s.status_manager.as_str()), ("configReconcilerValid", "configReconciler"));
        let c = Identity::controller();
        assert_eq!((c.name.as_str(), c.condition.as_str(), c.status_manager.as_str()), ("controller", "poolReconcilerValid", "poolReconciler"));
    }

    #[tokio::test]
    async fn invalid_status_has_result_summary_and_condition() {
        let w = writer(Identity::speaker("n1"), None);
        let body = w.status_body(&Verdict::Invalid("pool p overlaps".into()));
        assert_eq!(body["metadata"]["name"], "speaker-n1");
        assert_eq!(body["status"]["result"], "Invalid");
        assert_eq!(body["status"]["errorSummary"], "configuration error: pool p overlaps");
        let c = &body["status"]["conditions"][0];
        assert_eq!((c["type"].as_str(), c["status"].as_str(), c["reason"].as_str()), (Some("configReconcilerValid"), Some("False"), Some("ConfigurationError")));
        let valid = w.status_body(&Verdict::Valid);
        assert_eq!((valid["status"]["result"].as_str(), valid["status"]["errorSummary"].as_str()), (Some("Valid"), Some("")));
        assert_eq!(valid["status"]["conditions"][0]["reason"], "Reconciled");
    }

    #[tokio::test]
    async fn object_carries_labels_and_owner() {
        let w = writer(Identity::speaker("n1"), Some("u1"));
        let body = w.object_body();
        assert_eq!(body["metadata"]["labels"]["metallb.io/node-name"], "n1");
        assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(body["kind"], "ConfigurationState");
    }

    #[tokio::test]
    async fn writes_only_what_the_stored_object_lacks() {
        let id = Identity::speaker("n1");
        let mut w = writer(id.clone(), Some("u1"));
        w.flush(None);
        assert_eq!(w.writer.backlog(), 0, "no verdict yet: nothing to write");

        let verdict = Verdict::Invalid("bad".into());
        w.set(verdict.clone());
        w.flush(Some(&stored(&id, Some(&verdict), Some("u1"))));
        assert_eq!(w.writer.backlog(), 0, "the stored object already says it");

        // Hand-edited to Valid: only the status is rewritten.
        w.flush(Some(&stored(&id, Some(&Verdict::Valid), Some("u1"))));
        assert!(w.writer.busy(&()));
        let mut other = writer(id.clone(), Some("u1"));
        other.set(verdict.clone());
        // Labels removed or another owner: the object is rewritten too.
        let mut unlabelled = stored(&id, Some(&verdict), Some("u1"));
        unlabelled.metadata.labels = None;
        assert!(!other.object_ok(&unlabelled));
        assert!(!other.object_ok(&stored(&id, Some(&verdict), Some("u2"))));
        assert!(other.object_ok(&stored(&id, Some(&verdict), Some("u1"))));
        assert!(!other.shows(&stored(&id, Some(&Verdict::Invalid("other".into())), Some("u1")), &verdict));
        assert!(!other.shows(&stored(&id, None, Some("u1")), &verdict));
    }
}
