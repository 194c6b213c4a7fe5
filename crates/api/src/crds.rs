//! The CustomResourceDefinitions ferrolb installs: every metallb.io kind,
//! with BGPPeer's two versions merged into one CRD.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition,
};
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;

use crate::schema_fixups::fix_root;
use crate::{v1beta1, v1beta2};

/// Conversion strategy of the BGPPeer CRD. MetalLB converts through a
/// webhook; until ferrolb serves one, the API server only rewrites
/// `apiVersion` (differences listed in docs/api.md).
pub const BGPPEER_CONVERSION_STRATEGY: &str = "None";

/// Kinds whose schema requires `spec` (only IPAddressPool in MetalLB; the
/// other kinds accept an object without `spec`).
const SPEC_REQUIRED_KINDS: [&str; 1] = ["IPAddressPool"];

/// Every metallb.io CRD, sorted by name, schemas in their final form.
pub fn all() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        v1beta1::IPAddressPool::crd(),
        v1beta1::L2Advertisement::crd(),
        v1beta1::BGPAdvertisement::crd(),
        bgppeers(),
        v1beta1::Community::crd(),
        v1beta1::BFDProfile::crd(),
        v1beta1::ServiceL2Status::crd(),
        v1beta1::ServiceBGPStatus::crd(),
        v1beta1::ConfigurationState::crd(),
    ];
    for crd in &mut crds {
        finish(crd);
    }
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// BGPPeer v1beta1 (served, deprecated) and v1beta2 (served, storage) in one CRD.
fn bgppeers() -> CustomResourceDefinition {
    // Both inputs are generated from this crate's own types with the same
    // group, kind and scope, which is all merge_crds checks; the
    // crds_are_generated test exercises this path.
    let mut crd = merge_crds(
        vec![v1beta1::BGPPeer::crd(), v1beta2::BGPPeer::crd()],
        "v1beta2",
    )
    .expect("v1beta1 and v1beta2 BGPPeer CRDs share group, kind and scope");
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: BGPPEER_CONVERSION_STRATEGY.into(),
        webhook: None,
    });
    crd
}

fn finish(crd: &mut CustomResourceDefinition) {
    let spec_required = SPEC_REQUIRED_KINDS.contains(&crd.spec.names.kind.as_str());
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|validation| validation.open_api_v3_schema.as_mut())
        {
            fix_root(root, spec_required);
        }
    }
}

/// All CRDs as one multi-document YAML stream, sorted by CRD name: what
/// `ferrolb crds` prints and `deploy/crds/metallb.io.yaml` holds.
pub fn render_yaml() -> String {
    let documents: Vec<serde_json::Value> = all()
        .iter()
        .map(|crd| integral_floats_as_integers(serde_json::to_value(crd).unwrap_or_default()))
        .collect();
    // JSON is valid YAML, so if the YAML emitter ever refused a document the
    // stream stays usable.
    serde_saphyr::to_string_multiple(&documents).unwrap_or_else(|_| {
        documents
            .iter()
            .map(|document| format!("{document}\n"))
            .collect::<Vec<_>>()
            .join("---\n")
    })
}

/// `minimum`/`maximum` are `f64` in the CRD types; printing `16384` rather
/// than `16384.0` keeps the YAML identical to what a human would write.
fn integral_floats_as_integers(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float)
                if !number.is_i64()
                    && !number.is_u64()
                    && float.fract() == 0.0
                    && float.abs() < 9.0e15 =>
            {
                Value::from(float as i64)
            }
            _ => Value::Number(number),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(integral_floats_as_integers).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, item)| (key, integral_floats_as_integers(item)))
                .collect(),
        ),
        other => other,
    }
}
