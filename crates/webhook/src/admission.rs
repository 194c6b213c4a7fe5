//! AdmissionReview (admission.k8s.io/v1) decoding and encoding.

use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use crate::endpoints::Kind;
use crate::policy::{Op, Review, Verdict};

/// Decodes a review body. On failure, the returned response is what to send
/// back (an "invalid request" review, as the API server expects a review even then).
pub fn decode(body: &[u8], kind: Kind) -> Result<(AdmissionRequest<DynamicObject>, Review), Box<AdmissionResponse>> {
    let invalid = |m: String| Box::new(AdmissionResponse::invalid(m));
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("decoding AdmissionReview: {e}")))?;
    let request: AdmissionRequest<DynamicObject> = review
        .try_into()
        .map_err(|e| invalid(format!("AdmissionReview without request: {e}")))?;
    let to_value = |o: &Option<DynamicObject>| -> Result<Option<Value>, Box<AdmissionResponse>> {
        o.as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| invalid(format!("re-encoding the object: {e}")))
    };
    let review = Review {
        kind,
        op: match request.operation {
            Operation::Create => Op::Create,
            Operation::Update => Op::Update,
            Operation::Delete => Op::Delete,
            Operation::Connect => Op::Connect,
        },
        name: request.name.clone(),
        namespace: request.namespace.clone(),
        object: to_value(&request.object)?,
        old_object: to_value(&request.old_object)?,
    };
    Ok((request, review))
}

/// The response review for a decided request.
pub fn respond(request: &AdmissionRequest<DynamicObject>, verdict: Verdict) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::from(request);
    if !verdict.allowed {
        // controller-runtime's Denied(): 403 with the reason as message.
        response = response.deny(verdict.message);
        response.result.code = 403;
        response.result.reason = "Forbidden".into();
    }
    if !verdict.warnings.is_empty() {
        response.warnings = Some(verdict.warnings);
    }
    response.into_review()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(op: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "metallb.io", "version": "v1beta1", "kind": "IPAddressPool"},
                "resource": {"group": "metallb.io", "version": "v1beta1", "resource": "ipaddresspools"},
                "name": "p1",
                "namespace": "metallb-system",
                "operation": op,
                "userInfo": {"username": "admin"},
                "object": {
                    "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": {"name": "p1", "namespace": "metallb-system"},
                    "spec": {"addresses": ["10.0.0.0/24"]}
                },
                "oldObject": null,
                "dryRun": false
            }
        }))
        .unwrap()
    }

    #[test]
    fn decodes_request() {
        let (req, r) = decode(&body("CREATE"), Kind::IPAddressPool).unwrap();
        assert_eq!(req.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(r.op, Op::Create);
        assert_eq!(r.name, "p1");
        assert_eq!(r.namespace.as_deref(), Some("metallb-system"));
        assert_eq!(r.object.unwrap()["spec"]["addresses"][0], "10.0.0.0/24");
        assert!(r.old_object.is_none());
    }

    #[test]
    fn garbage_is_an_invalid_review() {
        let resp = decode(b"{not json", Kind::IPAddressPool).unwrap_err();
        assert!(!resp.allowed);
        assert!(resp.result.message.contains("decoding AdmissionReview"), "{}", resp.result.message);
        let resp = decode(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, Kind::Community)
            .unwrap_err();
        assert!(!resp.allowed);
    }

    #[test]
    fn denial_carries_uid_message_and_code() {
        let (req, _) = decode(&body("UPDATE"), Kind::IPAddressPool).unwrap();
        let out = serde_json::to_value(respond(&req, Verdict::deny("nope"))).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["kind"], "AdmissionReview");
        let resp = &out["response"];
        assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(resp["allowed"], false);
        assert_eq!(resp["status"]["message"], "nope");
        assert_eq!(resp["status"]["code"], 403);
    }

    #[test]
    fn allowed_with_warning() {
        let (req, _) = decode(&body("CREATE"), Kind::IPAddressPool).unwrap();
        let mut v = Verdict::allow();
        v.warnings.push("w".into());
        let out = serde_json::to_value(respond(&req, v)).unwrap();
        assert_eq!(out["response"]["allowed"], true);
        assert_eq!(out["response"]["warnings"], json!(["w"]));
    }
}
