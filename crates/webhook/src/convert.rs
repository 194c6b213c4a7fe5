//! The BGPPeer conversion webhook (`/convert`, crds.md §5.3): v1beta2 is the
//! hub; the field mapping itself lives in `ferrolb_api::conversion`.

use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::response::Status;
use serde_json::Value;

use ferrolb_api::{conversion, v1beta1, v1beta2};

const V1BETA1: &str = "metallb.io/v1beta1";
const V1BETA2: &str = "metallb.io/v1beta2";

/// Converts one stored BGPPeer to `desired`.
pub fn convert_object(object: &Value, desired: &str) -> Result<Value, String> {
    let from = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = object.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    if kind != "BGPPeer" {
        return Err(format!("{kind}/{name}: only BGPPeer objects are converted here"));
    }
    if from == desired {
        return Ok(object.clone());
    }
    let mut out = match (from, desired) {
        (V1BETA1, V1BETA2) => {
            let peer: v1beta1::BGPPeer = serde_json::from_value(object.clone())
                .map_err(|e| format!("BGPPeer/{name}: reading {from}: {e}"))?;
            serde_json::to_value(conversion::to_v1beta2(&peer))
        }
        (V1BETA2, V1BETA1) => {
            let peer: v1beta2::BGPPeer = serde_json::from_value(object.clone())
                .map_err(|e| format!("BGPPeer/{name}: reading {from}: {e}"))?;
            serde_json::to_value(conversion::to_v1beta1(&peer))
        }
        _ => return Err(format!("BGPPeer/{name}: cannot convert from {from:?} to {desired:?}")),
    }
    .map_err(|e| format!("BGPPeer/{name}: writing {desired}: {e}"))?;
    // The API server requires metadata back unchanged; copy it verbatim rather
    // than trusting a round trip through the typed ObjectMeta.
    if let (Some(o), Some(meta)) = (out.as_object_mut(), object.get("metadata")) {
        o.insert("metadata".into(), meta.clone());
        o.insert("apiVersion".into(), desired.into());
        o.insert("kind".into(), "BGPPeer".into());
    }
    Ok(out)
}

fn convert_request(request: ConversionRequest) -> ConversionResponse {
    let desired = request.desired_api_version.clone();
    let converted: Result<Vec<Value>, String> =
        request.objects.iter().map(|o| convert_object(o, &desired)).collect();
    let response = ConversionResponse::for_request(request);
    match converted {
        Ok(objects) => response.success(objects),
        Err(message) => response.failure(Status::failure(&message, "ConversionFailed")),
    }
}

/// Handles a ConversionReview body; always answers with a review.
pub fn handle(body: &[u8]) -> Vec<u8> {
    let review: Result<ConversionReview, String> =
        serde_json::from_slice(body).map_err(|e| format!("decoding ConversionReview: {e}"));
    let response = match review.and_then(|r| {
        ConversionRequest::from_review(r).map_err(|e| format!("ConversionReview without request: {e}"))
    }) {
        Ok(request) => convert_request(request),
        Err(message) => ConversionResponse::invalid(Status::failure(&message, "BadRequest")),
    };
    serde_json::to_vec(&response.into_review()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn review(desired: &str, objects: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "u-1", "desiredAPIVersion": desired, "objects": objects}
        }))
        .unwrap()
    }

    fn v1beta1_peer() -> Value {
        json!({
            "apiVersion": V1BETA1, "kind": "BGPPeer",
            "metadata": {"name": "p", "namespace": "metallb-system", "uid": "x", "resourceVersion": "7",
                          "labels": {"a": "b"}},
            "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1",
                     "nodeSelectors": [{"matchLabels": {"k": "v"}}]}
        })
    }

    #[test]
    fn v1beta1_to_v1beta2_and_back() {
        let out: Value = serde_json::from_slice(&handle(&review(V1BETA2, vec![v1beta1_peer()]))).unwrap();
        let resp = &out["response"];
        assert_eq!(resp["uid"], "u-1");
        assert_eq!(resp["result"]["status"], "Success", "{out}");
        let peer = &resp["convertedObjects"][0];
        assert_eq!(peer["apiVersion"], V1BETA2);
        assert_eq!(peer["metadata"], v1beta1_peer()["metadata"]);
        assert_eq!(peer["spec"]["peerPort"], 179);
        assert_eq!(peer["spec"]["holdTime"], "0s");
        assert_eq!(peer["spec"]["nodeSelectors"][0]["matchLabels"], json!({"k": "v"}));

        let mut v2 = peer.clone();
        v2["spec"]["vrf"] = json!("red");
        let back = convert_object(&v2, V1BETA1).unwrap();
        assert_eq!(back["apiVersion"], V1BETA1);
        assert_eq!(back["spec"]["peerAddress"], "10.0.0.1");
        assert!(back["spec"].get("vrf").is_none());
    }

    #[test]
    fn same_version_passes_through() {
        let p = v1beta1_peer();
        assert_eq!(convert_object(&p, V1BETA1).unwrap(), p);
    }

    #[test]
    fn failures_are_reported_in_the_review() {
        let mut bad = v1beta1_peer();
        bad["spec"]["myASN"] = json!("not a number");
        let out: Value = serde_json::from_slice(&handle(&review(V1BETA2, vec![bad]))).unwrap();
        assert_eq!(out["response"]["result"]["status"], "Failure");
        assert!(out["response"]["result"]["message"].as_str().unwrap().contains("BGPPeer/p"));
        let out: Value = serde_json::from_slice(&handle(&review("metallb.io/v9", vec![v1beta1_peer()]))).unwrap();
        assert_eq!(out["response"]["result"]["status"], "Failure");
        let out: Value = serde_json::from_slice(&handle(b"[]")).unwrap();
        assert_eq!(out["response"]["result"]["status"], "Failure");
    }
}
