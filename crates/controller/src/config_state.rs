//! `ConfigurationState/controller` (crds.md §9, controller.md §7): the pool
//! loader's verdict as condition `poolReconcilerValid`, with `result` and
//! `errorSummary` computed from it.
//!
//! The object is (re)created with server-side apply when missing (owner: the
//! controller Pod when it can be read), and its status is applied with field
//! manager `poolReconciler`. Writes happen when the verdict changes or the
//! stored object disagrees with it (deleted, edited by hand), not on every
//! evaluation: `lastTransitionTime` is the time of the last write.

use std::time::Duration;

use ferrolb_api::labels::{COMPONENT_CONTROLLER, COMPONENT_TYPE};
use ferrolb_api::v1beta1::{
    CONDITION_POOL_RECONCILER_VALID, ConfigurationResult, ConfigurationState, REASON_CONFIGURATION_ERROR,
    REASON_RECONCILED,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use ferrolb_runtime::status::StatusWriter;
use futures::FutureExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use crate::watch::CONFIG_STATE_NAME;

const RETRY: Duration = Duration::from_secs(2);
const OBJECT_MANAGER: &str = "ferrolb-controller";
const STATUS_MANAGER: &str = "poolReconciler";

/// The pool loader's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
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
}

/// One write: the object when it must be (re)created, then the status.
struct Write {
    object: Option<serde_json::Value>,
    status: serde_json::Value,
}

/// There is one ConfigurationState, so one key.
type Writer = StatusWriter<(), Write, Result<ConfigurationState, kube::Error>>;

pub struct ConfigStateWriter {
    namespace: String,
    owner: Option<OwnerReference>,
    verdict: Option<Verdict>,
    /// Set after a write until the cache shows a newer object.
    written_rv: Option<String>,
    writer: Writer,
}

/// Owner reference to the controller's own Pod, when it can be read.
pub async fn pod_owner(client: &kube::Client, namespace: &str, pod_name: Option<&str>) -> Option<OwnerReference> {
    let name = pod_name.filter(|n| !n.is_empty())?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.get_opt(name).await {
        Ok(Some(pod)) => pod.controller_owner_ref(&()).map(|mut o| {
            o.controller = None;
            o.block_owner_deletion = None;
            o
        }),
        Ok(None) => {
            tracing::warn!(pod = name, "own Pod not found; ConfigurationState gets no owner");
            None
        }
        Err(error) => {
            tracing::warn!(pod = name, %error, "reading own Pod failed; ConfigurationState gets no owner");
            None
        }
    }
}

impl ConfigStateWriter {
    pub fn new(api: Api<ConfigurationState>, namespace: &str, owner: Option<OwnerReference>) -> Self {
        let writer = StatusWriter::new(1, move |(), w: Write| {
            let api = api.clone();
            async move {
                if let Some(body) = w.object {
                    api.patch(CONFIG_STATE_NAME, &PatchParams::apply(OBJECT_MANAGER).force(), &Patch::Apply(&body))
                        .await?;
                }
                api.patch_status(CONFIG_STATE_NAME, &PatchParams::apply(STATUS_MANAGER).force(), &Patch::Apply(&w.status))
                    .await
            }
            .boxed()
        });
        ConfigStateWriter { namespace: namespace.to_string(), owner, verdict: None, written_rv: None, writer }
    }

    pub fn set(&mut self, verdict: Verdict) {
        self.verdict = Some(verdict);
    }

    /// Writes when the stored object disagrees with the verdict (after a
    /// failure, once the retry delay has passed).
    pub fn flush(&mut self, store: &Store<ConfigurationState>) {
        let Some(verdict) = self.verdict.clone() else { return };
        if self.writer.in_flight(&()) {
            return;
        }
        let stored = store.get(&ObjectRef::new(CONFIG_STATE_NAME).within(&self.namespace));
        if let (Some(obj), Some(rv)) = (&stored, &self.written_rv)
            && !crate::overlay::cache_caught_up(obj.metadata.resource_version.as_deref(), rv)
        {
            return;
        }
        self.written_rv = None;
        let needs_object = stored.as_deref().is_none_or(|o| !self.object_ok(o));
        if !needs_object && stored.as_deref().is_some_and(|o| shows(o, &verdict)) {
            // A retry still waiting would write what is already there.
            self.writer.cancel(&());
            return;
        }
        let object = needs_object.then(|| self.object_body());
        self.writer.submit((), Write { object, status: status_body(&verdict) });
    }

    fn object_ok(&self, o: &ConfigurationState) -> bool {
        let labelled = o
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(COMPONENT_TYPE))
            .is_some_and(|v| v == COMPONENT_CONTROLLER);
        let owned = match &self.owner {
            None => true,
            Some(want) => o.owner_references().iter().any(|r| r.uid == want.uid),
        };
        labelled && owned
    }

    fn object_body(&self) -> serde_json::Value {
        let mut meta = json!({
            "name": CONFIG_STATE_NAME,
            "labels": { COMPONENT_TYPE: COMPONENT_CONTROLLER },
        });
        if let Some(owner) = &self.owner {
            meta["ownerReferences"] = json!([owner]);
        }
        json!({
            "apiVersion": ConfigurationState::api_version(&()),
            "kind": ConfigurationState::kind(&()),
            "metadata": meta,
        })
    }

    /// The result of the next finished write; pends while there is none.
    pub async fn next(&mut self) -> Result<ConfigurationState, kube::Error> {
        self.writer.next().await.1
    }

    pub fn finished(&mut self, result: Result<ConfigurationState, kube::Error>, now: Instant) {
        match result {
            Ok(obj) => self.written_rv = obj.metadata.resource_version,
            Err(error) => {
                tracing::warn!(%error, "writing ConfigurationState failed, will retry");
                // The session flushes right after this; that write waits.
                self.writer.hold(&(), now + RETRY);
            }
        }
    }
}

fn status_body(verdict: &Verdict) -> serde_json::Value {
    let (status, reason, message) = verdict.condition_parts();
    let condition = Condition {
        type_: CONDITION_POOL_RECONCILER_VALID.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: message.clone(),
        last_transition_time: Time(Timestamp::now()),
        observed_generation: None,
    };
    let summary = match verdict {
        Verdict::Valid => String::new(),
        Verdict::Invalid(_) => message,
    };
    json!({
        "apiVersion": ConfigurationState::api_version(&()),
        "kind": ConfigurationState::kind(&()),
        "metadata": { "name": CONFIG_STATE_NAME },
        "status": {
            "result": verdict.result(),
            "errorSummary": summary,
            "conditions": [condition],
        }
    })
}

/// Whether the stored status already says what `verdict` says.
fn shows(o: &ConfigurationState, verdict: &Verdict) -> bool {
    let Some(st) = &o.status else { return false };
    let (status, reason, message) = verdict.condition_parts();
    let cond_ok = st
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_POOL_RECONCILER_VALID)
        .is_some_and(|c| c.status == status && c.reason == reason && c.message == message);
    let summary = match verdict {
        Verdict::Valid => String::new(),
        Verdict::Invalid(_) => message,
    };
    cond_ok && st.result == Some(verdict.result()) && st.error_summary == summary
}
