//! schemars field/struct transforms that add the Kubernetes schema
//! extensions kube-derive has no attribute for in our setup; used as
//! `#[schemars(transform = ...)]` on the API types.

use crate::cel::CelRule;

/// Schema transform that appends CEL rules to a schema's
/// `x-kubernetes-validations`; used as `#[schemars(transform = Validations(&[...]))]`.
pub(crate) struct Validations(pub &'static [CelRule]);

impl schemars::transform::Transform for Validations {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        let rules = self
            .0
            .iter()
            .map(|r| serde_json::json!({ "rule": r.rule, "message": r.message }));
        match schema.get_mut(VALIDATIONS_KEY) {
            Some(serde_json::Value::Array(existing)) => existing.extend(rules),
            _ => {
                schema.insert(
                    VALIDATIONS_KEY.into(),
                    serde_json::Value::Array(rules.collect()),
                );
            }
        }
    }
}

/// Schema transform marking a list as a map keyed by the given fields, so
/// server-side apply merges entries (e.g. conditions by `type`).
pub(crate) struct ListMapKeys(pub &'static [&'static str]);

impl schemars::transform::Transform for ListMapKeys {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        schema.insert("x-kubernetes-list-type".into(), "map".into());
        schema.insert(
            "x-kubernetes-list-map-keys".into(),
            serde_json::json!(self.0),
        );
    }
}

const VALIDATIONS_KEY: &str = "x-kubernetes-validations";

/// Schema transform marking an object atomic for server-side apply (one
/// manager owns it as a whole), as upstream does for Secret references.
pub(crate) struct MapTypeAtomic;

impl schemars::transform::Transform for MapTypeAtomic {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        schema.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
}
