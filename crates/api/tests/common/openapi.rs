//! A small OpenAPI v3 checker covering what the API server enforces for a
//! CRD: the structural-schema rules on the schema itself, and type, required,
//! enum, bounds and unknown-field checks on objects. Tests use it to show
//! that real MetalLB manifests pass and that the schema is one a real API
//! server accepts, without a cluster.

use serde_json::{Map, Value};

/// Keywords a structural schema must not contain anywhere (we never need
/// the logical junctors, and `$ref`/`definitions` are not allowed at all).
const FORBIDDEN_KEYWORDS: [&str; 10] = [
    "$ref",
    "$schema",
    "definitions",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "nullable",
    "title",
    "uniqueItems",
];

const TYPES: [&str; 6] = ["object", "array", "string", "integer", "number", "boolean"];

/// Problems that would make the API server reject the schema as
/// non-structural (or that MetalLB's schema does not have).
pub fn structural_problems(schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk_structural(schema, "", &mut problems);
    problems
}

fn walk_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(map) = node.as_object() else {
        problems.push(format!("{path}: schema is not an object"));
        return;
    };
    for keyword in FORBIDDEN_KEYWORDS {
        if map.contains_key(keyword) {
            problems.push(format!("{path}: has {keyword}"));
        }
    }
    if map.contains_key("x-kubernetes-preserve-unknown-fields") {
        problems.push(format!("{path}: preserves unknown fields"));
    }
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let ty = map.get("type").and_then(Value::as_str);
    match ty {
        Some(ty) if TYPES.contains(&ty) => {}
        Some(ty) => problems.push(format!("{path}: unknown type {ty}")),
        None if int_or_string => {}
        None => problems.push(format!("{path}: has no type")),
    }
    if map.contains_key("properties") && map.contains_key("additionalProperties") {
        problems.push(format!("{path}: both properties and additionalProperties"));
    }
    if (map.contains_key("properties") || map.contains_key("additionalProperties"))
        && ty != Some("object")
    {
        problems.push(format!("{path}: properties on a non-object"));
    }
    if ty == Some("array") && !map.get("items").is_some_and(Value::is_object) {
        problems.push(format!("{path}: array without a single items schema"));
    }
    if let Some(format) = map.get("format").and_then(Value::as_str)
        && ty == Some("integer")
        && !["int32", "int64"].contains(&format)
    {
        problems.push(format!("{path}: unknown integer format {format}"));
    }
    if let Some(required) = map.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if map.get("properties").and_then(|p| p.get(name)).is_none() {
                problems.push(format!("{path}: requires undeclared {name}"));
            }
        }
    }
    if let Some(default) = map.get("default") {
        for problem in value_problems(node, default, &format!("{path}(default)")) {
            problems.push(problem);
        }
    }
    if let Some(keys) = map
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
    {
        let item_required = map
            .get("items")
            .and_then(|items| items.get("required"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for key in keys {
            if !item_required.contains(key) {
                problems.push(format!(
                    "{path}: list-map key {key} is not required in the items"
                ));
            }
        }
    }
    for (name, child) in map
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        walk_structural(child, &format!("{path}.{name}"), problems);
    }
    if let Some(items) = map.get("items") {
        walk_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(values) = map.get("additionalProperties").filter(|v| v.is_object()) {
        walk_structural(values, &format!("{path}{{}}"), problems);
    }
}

/// Why the API server would reject `value` (or silently prune part of it),
/// checking everything except CEL rules.
pub fn value_problems(schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    check_value(schema, value, path, &mut problems);
    problems
}

fn check_value(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    let empty = Map::new();
    let map = schema.as_object().unwrap_or(&empty);
    let ty = map.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        problems.push(format!(
            "{path}: {value} is not of type {}",
            ty.unwrap_or("?")
        ));
        return;
    }
    if let Some(allowed) = map.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{path}: {value} not in enum"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = map.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            problems.push(format!("{path}: {number} below minimum {min}"));
        }
        if let Some(max) = map.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            problems.push(format!("{path}: {number} above maximum {max}"));
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(min) = map.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            problems.push(format!("{path}: fewer than {min} items"));
        }
        if let Some(item_schema) = map.get("items") {
            for (index, item) in items.iter().enumerate() {
                check_value(item_schema, item, &format!("{path}[{index}]"), problems);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = map.get("properties").and_then(Value::as_object);
        let additional = map.get("additionalProperties");
        for name in map
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                problems.push(format!("{path}: missing required {name}"));
            }
        }
        // The API server validates metadata itself; apiVersion/kind likewise.
        let is_root = path.is_empty();
        for (name, child) in object {
            if is_root && ["apiVersion", "kind", "metadata"].contains(&name.as_str()) {
                continue;
            }
            let child_path = format!("{path}.{name}");
            match (properties.and_then(|p| p.get(name)), additional) {
                (Some(child_schema), _) => check_value(child_schema, child, &child_path, problems),
                (None, Some(values)) if values.is_object() => {
                    check_value(values, child, &child_path, problems)
                }
                _ => problems.push(format!("{child_path}: unknown field (would be pruned)")),
            }
        }
    }
}
