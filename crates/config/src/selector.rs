//! Label selectors: conversion from the Kubernetes form, validation as
//! `metav1.LabelSelectorAsSelector` does it, and duplicate detection (crds.md §10.2).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::{BTreeMap, HashSet};

mod labels;

pub use labels::{validate_label_key, validate_label_value};

/// Validated selectors are the allocator's type, so pools need no second conversion.
pub use ferrolb_allocator::{LabelSelector as Selector, Operator, Requirement};

/// True when at least one selector of the list matches; an empty list matches nothing
/// (callers decide what "no selectors" means for their field).
pub fn any_matches(selectors: &[Selector], labels: &BTreeMap<String, String>) -> bool {
    selectors.iter().any(|s| s.matches(labels))
}

/// Converts one selector; the error is the apimachinery-style parser message.
pub fn convert(sel: &LabelSelector) -> Result<Selector, String> {
    let mut out = Selector::default();
    if let Some(labels) = &sel.match_labels {
        for (k, v) in labels {
            validate_label_key(k).map_err(|e| format!("key: Invalid value: {k:?}: {e}"))?;
            validate_label_value(v).map_err(|e| format!("values[0][{k}]: Invalid value: {v:?}: {e}"))?;
            out.match_labels.insert(k.clone(), v.clone());
        }
    }
    for expr in sel.match_expressions.iter().flatten() {
        out.match_expressions.push(convert_requirement(expr)?);
    }
    Ok(out)
}

fn convert_requirement(expr: &LabelSelectorRequirement) -> Result<Requirement, String> {
    let operator = match expr.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => return Err(format!("{other:?} is not a valid label selector operator")),
    };
    validate_label_key(&expr.key).map_err(|e| format!("key: Invalid value: {:?}: {e}", expr.key))?;
    let values: Vec<String> = expr.values.clone().unwrap_or_default();
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => {
            return Err("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".into());
        }
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            return Err(format!(
                "values: Invalid value: {}: values set must be empty for exists and does not exist",
                go_string_slice(&values)
            ));
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        validate_label_value(v).map_err(|e| format!("values[{i}][{}]: Invalid value: {v:?}: {e}", expr.key))?;
    }
    Ok(Requirement {
        key: expr.key.clone(),
        operator,
        values: values.into_iter().collect(),
    })
}

fn go_string_slice(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Go's `%v` rendering of a `LabelSelectorRequirement` with sorted values, as upstream
/// prints it in duplicate errors.
pub fn requirement_text(expr: &LabelSelectorRequirement) -> String {
    let mut values = expr.values.clone().unwrap_or_default();
    values.sort();
    format!(
        "&LabelSelectorRequirement{{Key:{},Operator:{},Values:[{}],}}",
        expr.key,
        expr.operator,
        values.join(" ")
    )
}

/// Canonical text of a selector (gogo-proto `String()` of `metav1.LabelSelector` after
/// sorting each expression's values): equal texts are duplicates (crds.md §10.2).
pub fn canonical_text(sel: &LabelSelector) -> String {
    let mut labels = String::from("map[string]string{");
    for (k, v) in sel.match_labels.iter().flatten() {
        labels.push_str(&format!("{k}: {v},"));
    }
    labels.push('}');
    let mut exprs = String::from("[]LabelSelectorRequirement{");
    for e in sel.match_expressions.iter().flatten() {
        exprs.push_str(requirement_text(e).trim_start_matches('&'));
        exprs.push(',');
    }
    exprs.push('}');
    format!("&LabelSelector{{MatchLabels:{labels},MatchExpressions:{exprs},}}")
}

/// Duplicate checks inside one selector list field: repeated values in one expression
/// (L3), repeated expressions in one selector (L4), repeated selectors (P9/L2).
/// `field` is the MetalLB field name used in the message (`nodeSelectors`, ...).
pub fn check_duplicates(field: &str, selectors: &[LabelSelector]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for sel in selectors {
        let mut exprs_seen = HashSet::new();
        for expr in sel.match_expressions.iter().flatten() {
            let mut values_seen = HashSet::new();
            for v in expr.values.iter().flatten() {
                if !values_seen.insert(v) {
                    return Err(format!(
                        "duplicate definition of match expression value in label selector {v:?}"
                    ));
                }
            }
            let text = requirement_text(expr);
            if !exprs_seen.insert(text.clone()) {
                return Err(format!("duplicate definition of match expressions {text:?}"));
            }
        }
        let text = canonical_text(sel);
        if !seen.insert(text.clone()) {
            return Err(format!("duplicate definition of {field} {text:?}"));
        }
    }
    Ok(())
}

/// Duplicate names in a plain string list (`ipAddressPools`, `peers`, ...).
pub fn check_duplicate_names(field: &str, names: &[String]) -> Result<(), String> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(format!("duplicate definition of {field} {n:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
