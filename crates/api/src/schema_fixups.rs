//! Rewrites the schemas kube-derive produces into the shape MetalLB's
//! controller-gen CRDs have, where the two differ in ways the API server
//! notices:
//!
//! - `nullable: true` (added by schemars for every `Option`) is removed, and
//!   `null` is dropped from enums. Without `nullable`, the API server prunes a
//!   `null` value and applies the field's default, as it does for MetalLB.
//! - Integer formats the API server does not know (`uint16`, `uint32`, ...)
//!   are removed; the bounds stay in `minimum`/`maximum`.
//! - The root `title` schemars adds is removed.
//! - Label selectors are marked atomic for server-side apply
//!   (`x-kubernetes-map-type: atomic`, lists atomic), as in upstream.
//! - `spec` stays required only where MetalLB requires it.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSON, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// Integer formats the API server validates or documents; any other
/// `format` on an integer comes from schemars' Rust type names.
const KNOWN_INTEGER_FORMATS: [&str; 2] = ["int32", "int64"];

/// Applies every fixup to a version's root schema.
pub(crate) fn fix_root(root: &mut JSONSchemaProps, spec_required: bool) {
    root.title = None;
    fix_node(root);
    if !spec_required && let Some(required) = root.required.as_mut() {
        required.retain(|name| name != "spec");
        if required.is_empty() {
            root.required = None;
        }
    }
}

fn fix_node(node: &mut JSONSchemaProps) {
    node.nullable = None;
    if let Some(values) = node.enum_.as_mut() {
        values.retain(|JSON(value)| !value.is_null());
    }
    if node.type_.as_deref() == Some("integer")
        && node
            .format
            .as_deref()
            .is_some_and(|format| !KNOWN_INTEGER_FORMATS.contains(&format))
    {
        node.format = None;
    }
    if is_label_selector(node.properties.as_ref()) {
        mark_label_selector_atomic(node);
    }

    for child in node
        .properties
        .iter_mut()
        .flat_map(|props| props.values_mut())
    {
        fix_node(child);
    }
    match node.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => fix_node(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => items.iter_mut().for_each(fix_node),
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = node.additional_properties.as_mut() {
        fix_node(values);
    }
}

/// A LabelSelector (also the legacy v1beta1 node selector, which has the same
/// two fields) is recognised by its exact property set.
fn is_label_selector(properties: Option<&BTreeMap<String, JSONSchemaProps>>) -> bool {
    properties.is_some_and(|props| {
        props.len() == 2
            && props.contains_key("matchLabels")
            && props.contains_key("matchExpressions")
    })
}

fn mark_label_selector_atomic(selector: &mut JSONSchemaProps) {
    selector.x_kubernetes_map_type = Some("atomic".into());
    let Some(expressions) = selector
        .properties
        .as_mut()
        .and_then(|props| props.get_mut("matchExpressions"))
    else {
        return;
    };
    expressions.x_kubernetes_list_type = Some("atomic".into());
    if let Some(JSONSchemaPropsOrArray::Schema(requirement)) = expressions.items.as_mut()
        && let Some(values) = requirement
            .properties
            .as_mut()
            .and_then(|props| props.get_mut("values"))
    {
        values.x_kubernetes_list_type = Some("atomic".into());
    }
}
