//! Every rule and bound of the generated CRDs, sent a violating object on a
//! real kube-apiserver (tests/kube-fixture) with no webhook registered: the
//! API server itself must refuse it, with the expected message.
//!
//! The constraints are enumerated from `ferrolb_api::crds::all()` (every
//! `x-kubernetes-validations` rule, every `minimum`, `maximum`, `enum`,
//! `required`, `format`, `minItems`/`maxItems`, `minLength`/`maxLength`, and
//! the uniqueness of list-map keys), not from a list kept here, so a rule
//! added later without a violating example fails this test. Bounds get their
//! violating value generated from the bound; CEL rules need a hand-made
//! example (`rule_examples`), keyed by the rule's own message. Any schema
//! keyword that is neither handled nor known to be structural (`pattern`,
//! `multipleOf`, ...) fails the test until a generator is written.
//!
//! Each valid base object is created first (control): a refusal then comes
//! from the violation, not from a broken base.

use std::collections::BTreeMap;

use ferrolb_test_harness::{create_namespace, install_crds, shared, unique_name};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

/// Keywords that bound a value and that this test can violate.
const HANDLED: [&str; 11] = [
    "minimum",
    "maximum",
    "enum",
    "required",
    "format",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "x-kubernetes-validations",
    "x-kubernetes-list-map-keys",
];
/// Keywords that shape a schema without refusing any value of its type.
const STRUCTURAL: [&str; 11] = [
    "type",
    "description",
    "properties",
    "items",
    "additionalProperties",
    "default",
    "nullable",
    "title",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-preserve-unknown-fields",
];

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Prop(String),
    Item,
}

#[derive(Clone, Debug)]
enum Bound {
    Minimum(i64),
    Maximum(i64),
    Enum(Vec<String>),
    Required(String),
    Format(String),
    MinItems(u64),
    MaxItems(u64),
    MinLength(u64),
    MaxLength(u64),
    Rule { rule: String, message: String },
    /// `x-kubernetes-list-type: map`: items are unique by these keys.
    ListMap(Vec<String>),
    Unhandled(String),
}

#[derive(Clone, Debug)]
struct Constraint {
    kind: String,
    version: String,
    path: Vec<Seg>,
    bound: Bound,
}

/// The field path as the API server prints it (`spec.items[0].weight`).
fn shown(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Prop(name) if out.is_empty() => out.push_str(name),
            Seg::Prop(name) => {
                out.push('.');
                out.push_str(name);
            }
            Seg::Item => out.push_str("[0]"),
        }
    }
    out
}

impl Constraint {
    fn id(&self) -> String {
        format!("{} {} {} {:?}", self.kind, self.version, shown(&self.path), self.bound)
    }
}

/// Every constraint of one schema node and its children.
fn collect(kind: &str, version: &str, node: &Value, path: Vec<Seg>, out: &mut Vec<Constraint>) {
    let mut push = |bound| out.push(Constraint { kind: kind.into(), version: version.into(), path: path.clone(), bound });
    // k8s-openapi holds bounds as f64; every bound here is a whole number.
    let int = |v: &Value| match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => f as i64,
        _ => panic!("{kind} {version} {path:?}: non-integer bound {v}"),
    };
    let count = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{kind} {version} {path:?}: non-count bound {v}"));
    if let Some(v) = node.get("minimum") {
        push(Bound::Minimum(int(v)));
    }
    if let Some(v) = node.get("maximum") {
        push(Bound::Maximum(int(v)));
    }
    if let Some(v) = node.get("enum").and_then(Value::as_array) {
        push(Bound::Enum(v.iter().map(|e| e.as_str().unwrap_or_default().to_string()).collect()));
    }
    for field in node.get("required").and_then(Value::as_array).into_iter().flatten() {
        push(Bound::Required(field.as_str().unwrap_or_default().to_string()));
    }
    // int32/int64 are types, checked by structural typing; other formats bound strings.
    if let Some(f) = node.get("format").and_then(Value::as_str).filter(|f| !matches!(*f, "int32" | "int64")) {
        push(Bound::Format(f.to_string()));
    }
    for (key, make) in [
        ("minItems", Bound::MinItems as fn(u64) -> Bound),
        ("maxItems", Bound::MaxItems),
        ("minLength", Bound::MinLength),
        ("maxLength", Bound::MaxLength),
    ] {
        if let Some(v) = node.get(key) {
            push(make(count(v)));
        }
    }
    for rule in node.get("x-kubernetes-validations").and_then(Value::as_array).into_iter().flatten() {
        push(Bound::Rule {
            rule: rule["rule"].as_str().unwrap_or_default().to_string(),
            message: rule["message"].as_str().unwrap_or_default().to_string(),
        });
    }
    if let Some(keys) = node.get("x-kubernetes-list-map-keys").and_then(Value::as_array) {
        push(Bound::ListMap(keys.iter().map(|k| k.as_str().unwrap_or_default().to_string()).collect()));
    }
    for key in node.as_object().into_iter().flat_map(|m| m.keys()) {
        if !HANDLED.contains(&key.as_str()) && !STRUCTURAL.contains(&key.as_str()) {
            // A keyword this test knows nothing about may refuse values.
            push(Bound::Unhandled(key.clone()));
        }
    }
    for (name, child) in node.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let mut p = path.clone();
        p.push(Seg::Prop(name.clone()));
        collect(kind, version, child, p, out);
    }
    if let Some(items) = node.get("items") {
        let mut p = path.clone();
        p.push(Seg::Item);
        collect(kind, version, items, p, out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        // Map values: no bound may hide there unnoticed.
        let mut inner = Vec::new();
        collect(kind, version, values, path.clone(), &mut inner);
        assert!(inner.is_empty(), "{kind} {version} {path:?}: bounds inside a map are not handled: {inner:?}");
    }
}

struct Schema {
    kind: String,
    version: String,
    plural: String,
    root: Value,
}

fn schemas() -> Vec<Schema> {
    let mut out = Vec::new();
    for crd in ferrolb_api::crds::all() {
        for version in crd.spec.versions.iter().filter(|v| v.served) {
            let root = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .map(|s| serde_json::to_value(s).expect("schema serialises"))
                .unwrap_or_else(|| panic!("{} {} has no schema", crd.spec.names.kind, version.name));
            out.push(Schema {
                kind: crd.spec.names.kind.clone(),
                version: version.name.clone(),
                plural: crd.spec.names.plural.clone(),
                root,
            });
        }
    }
    out
}

/// A valid object of each kind and version (spec and status), which the API
/// server must accept; violations are made from it.
fn base(kind: &str, version: &str) -> Value {
    let peer = json!({"spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "10.0.0.1"}});
    let service_status = json!({"status": {"node": "n1", "serviceName": "web", "serviceNamespace": "default"}});
    match (kind, version) {
        ("BGPPeer", _) => peer,
        ("IPAddressPool", _) => json!({
            "spec": {"addresses": ["10.0.0.0/24"]},
            "status": {"assignedIPv4": 0, "assignedIPv6": 0, "availableIPv4": 256, "availableIPv6": 0},
        }),
        ("ConfigurationState", _) => json!({
            "status": {"result": "Valid", "conditions": [{
                "type": "Ready", "status": "True", "reason": "Ok", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]},
        }),
        ("ServiceL2Status" | "ServiceBGPStatus", _) => service_status,
        _ => json!({"spec": {}}),
    }
}

/// A violating example of a CEL rule: a merge patch onto the base object,
/// or, for a transition rule, the patch the object is created with and the
/// patch that then changes it.
enum Example {
    Create(Value),
    Change { initial: Value, change: Value },
}

fn rule_examples() -> BTreeMap<(&'static str, &'static str, &'static str, &'static str), Example> {
    use Example::{Change, Create};
    let spec = |v: Value| json!({"spec": v});
    let status = |v: Value| json!({"status": v});
    let mut m = BTreeMap::new();
    let selectors_msg = "serviceSelectors and aggregationLength are mutually exclusive, can only be used together with default aggregationLength (32) and aggregationLengthV6 (128)";
    m.insert(
        ("BGPAdvertisement", "v1beta1", "spec", selectors_msg),
        Create(spec(json!({"serviceSelectors": [{"matchLabels": {"a": "b"}}], "aggregationLength": 24}))),
    );
    for version in ["v1beta1", "v1beta2"] {
        m.insert(("BGPPeer", version, "spec", "missing local ASN"), Create(spec(json!({"myASN": 0}))));
        m.insert(
            ("BGPPeer", version, "spec", "invalid ebgp-multihop parameter set for an ibgp peer"),
            Create(spec(json!({"peerASN": 64500, "ebgpMultiHop": true}))),
        );
    }
    m.insert(("BGPPeer", "v1beta2", "spec", "missing peer ASN and dynamicASN"), Create(spec(json!({"peerASN": 0}))));
    m.insert(
        ("BGPPeer", "v1beta2", "spec", "both peer ASN and dynamicASN specified"),
        Create(spec(json!({"dynamicASN": "external"}))),
    );
    m.insert(
        ("BGPPeer", "v1beta2", "spec", "peer has no Address or Interface specified"),
        Create(spec(json!({"peerAddress": ""}))),
    );
    m.insert(
        ("BGPPeer", "v1beta2", "spec", "peer has both Address and Interface specified"),
        Create(spec(json!({"interface": "eth0"}))),
    );
    m.insert(
        ("BGPPeer", "v1beta2", "spec.connectTime", "connect time should be between 1 seconds to 65535"),
        Create(spec(json!({"connectTime": "0s"}))),
    );
    m.insert(
        ("BGPPeer", "v1beta2", "spec.connectTime", "connect time should contain a whole number of seconds"),
        Create(spec(json!({"connectTime": "1500ms"}))),
    );
    m.insert(
        ("BGPPeer", "v1beta2", "spec.enableGracefulRestart", "EnableGracefulRestart cannot be changed after creation"),
        Change { initial: spec(json!({"enableGracefulRestart": true})), change: spec(json!({"enableGracefulRestart": false})) },
    );
    m.insert(
        ("IPAddressPool", "v1beta1", "spec.addresses", "pool has no prefixes defined"),
        Create(spec(json!({"addresses": []}))),
    );
    for kind in ["ServiceL2Status", "ServiceBGPStatus"] {
        for (path, field) in [
            ("status.node", "node"),
            ("status.serviceName", "serviceName"),
            ("status.serviceNamespace", "serviceNamespace"),
        ] {
            m.insert((kind, "v1beta1", path, "Value is immutable"), Change {
                initial: json!({}),
                change: status(json!({field: "changed"})),
            });
        }
    }
    m
}

/// JSON merge patch (RFC 7386): objects merge, `null` removes, the rest replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// The least value a schema node accepts (objects with their required
/// fields, arrays with their minimum of items).
fn minimal(node: &Value) -> Value {
    if let Some(first) = node.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    match node.get("type").and_then(Value::as_str) {
        Some("object") => {
            let mut map = Map::new();
            for field in node.get("required").and_then(Value::as_array).into_iter().flatten() {
                let name = field.as_str().unwrap_or_default();
                map.insert(name.to_string(), minimal(&node["properties"][name]));
            }
            Value::Object(map)
        }
        Some("array") => {
            let n = node.get("minItems").and_then(Value::as_u64).unwrap_or(0);
            Value::Array((0..n).map(|_| minimal(&node["items"])).collect())
        }
        Some("integer") | Some("number") => json!(node.get("minimum").and_then(Value::as_f64).map_or(1, |m| m as i64)),
        Some("boolean") => json!(false),
        _ => match node.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2026-01-01T00:00:00Z"),
            _ => json!("x".repeat(node.get("minLength").and_then(Value::as_u64).unwrap_or(1) as usize)),
        },
    }
}

/// The schema node at `path`.
fn node_at<'a>(root: &'a Value, path: &[Seg]) -> &'a Value {
    path.iter().fold(root, |node, seg| match seg {
        Seg::Prop(name) => &node["properties"][name],
        Seg::Item => &node["items"],
    })
}

/// The value at `path` in `object`, created (minimal, first item) where missing.
fn ensure<'a>(object: &'a mut Value, root: &Value, path: &[Seg]) -> &'a mut Value {
    let mut value = object;
    let mut node = root;
    for seg in path {
        match seg {
            Seg::Prop(name) => {
                node = &node["properties"][name];
                if !value.is_object() {
                    *value = Value::Object(Map::new());
                }
                let map = value.as_object_mut().expect("object");
                value = map.entry(name.clone()).or_insert_with(|| minimal(node));
            }
            Seg::Item => {
                node = &node["items"];
                if value.as_array().is_none_or(|a| a.is_empty()) {
                    *value = json!([minimal(node)]);
                }
                value = &mut value.as_array_mut().expect("array")[0];
            }
        }
    }
    value
}

/// What to send and what the refusal must say.
struct Case {
    id: String,
    plural: String,
    version: String,
    kind: String,
    /// Created first (status, if any, then written through the status
    /// subresource): the violation itself, or the object a change violates.
    first: Value,
    /// Sent as a merge patch after creating `first` (status paths go to the
    /// status subresource), when the violation is a change.
    then: Option<Value>,
    expect: Vec<String>,
}

fn case(schema: &Schema, c: &Constraint, examples: &BTreeMap<(&str, &str, &str, &str), Example>) -> Result<Case, String> {
    let at = shown(&c.path);
    let mut object = base(&c.kind, &c.version);
    let mut then = None;
    let expect = match &c.bound {
        Bound::Minimum(m) => {
            *ensure(&mut object, &schema.root, &c.path) = json!(m - 1);
            vec![format!("{at}: Invalid value: {}: {at} in body should be greater than or equal to {m}", m - 1)]
        }
        Bound::Maximum(m) => {
            *ensure(&mut object, &schema.root, &c.path) = json!(m + 1);
            vec![format!("{at}: Invalid value: {}: {at} in body should be less than or equal to {m}", m + 1)]
        }
        Bound::Enum(values) => {
            *ensure(&mut object, &schema.root, &c.path) = json!("not-an-enum-value");
            let supported: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            vec![format!("{at}: Unsupported value: \"not-an-enum-value\": supported values: {}", supported.join(", "))]
        }
        Bound::Required(field) => {
            if let Some(map) = ensure(&mut object, &schema.root, &c.path).as_object_mut() {
                map.remove(field);
            }
            let full = if at.is_empty() { field.clone() } else { format!("{at}.{field}") };
            vec![format!("{full}: Required value")]
        }
        Bound::Format(format) => {
            *ensure(&mut object, &schema.root, &c.path) = json!("not-a-value");
            // The inner path is relative to the subresource written (no
            // `status.` for a status write), so only its tail is checked.
            vec![
                format!("{at}: Invalid value: \"not-a-value\": "),
                format!("in body must be of type {format}: \"not-a-value\""),
            ]
        }
        Bound::ListMap(keys) => {
            let list = ensure(&mut object, &schema.root, &c.path);
            let first = list.as_array().and_then(|a| a.first()).cloned().unwrap_or_else(|| {
                minimal(&node_at(&schema.root, &c.path)["items"])
            });
            for key in keys {
                assert!(first.get(key).is_some(), "{}: the first item has no key {key}", c.id());
            }
            *list = json!([first.clone(), first]);
            vec![format!("{at}[1]: Duplicate value: ")]
        }
        Bound::MinItems(n) | Bound::MaxItems(n) => {
            let items = minimal(&node_at(&schema.root, &c.path)["items"]);
            let len = if matches!(c.bound, Bound::MinItems(_)) { n.saturating_sub(1) } else { n + 1 };
            *ensure(&mut object, &schema.root, &c.path) = Value::Array(vec![items; len as usize]);
            let what = if matches!(c.bound, Bound::MinItems(_)) { "at least" } else { "at most" };
            vec![format!("{at}: Invalid value: {len}: {at} in body should have {what} {n} items")]
        }
        Bound::MinLength(n) => {
            *ensure(&mut object, &schema.root, &c.path) = json!("x".repeat(n.saturating_sub(1) as usize));
            vec![format!("{at}: Invalid value:"), format!("should be at least {n} chars long")]
        }
        Bound::MaxLength(n) => {
            *ensure(&mut object, &schema.root, &c.path) = json!("x".repeat(*n as usize + 1));
            vec![format!("{at}: Too long: may not be")]
        }
        Bound::Rule { rule, message } => {
            let key = (c.kind.as_str(), c.version.as_str(), at.as_str(), message.as_str());
            let example = examples
                .iter()
                .find(|(k, _)| **k == key)
                .map(|(_, e)| e)
                .ok_or_else(|| format!("no violating example for rule {rule:?} ({message})"))?;
            match example {
                Example::Create(patch) => merge(&mut object, patch),
                Example::Change { initial, change } => {
                    merge(&mut object, initial);
                    then = Some(change.clone());
                }
            }
            vec![format!("{at}: "), message.clone()]
        }
        Bound::Unhandled(keyword) => return Err(format!("no violating value generator for `{keyword}`")),
    };
    Ok(Case {
        id: c.id(),
        plural: schema.plural.clone(),
        version: c.version.clone(),
        kind: c.kind.clone(),
        first: object,
        then,
        expect,
    })
}

fn resource(case_kind: &str, version: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "metallb.io".into(),
        version: version.into(),
        api_version: format!("metallb.io/{version}"),
        kind: case_kind.into(),
        plural: plural.into(),
    }
}

fn message(e: kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}

/// Creates `object` (spec on create, status through the subresource).
async fn put(api: &Api<DynamicObject>, ar: &ApiResource, name: &str, object: &Value) -> Result<(), String> {
    let mut body = object.clone();
    let status = body.as_object_mut().and_then(|m| m.remove("status"));
    merge(&mut body, &json!({"apiVersion": ar.api_version, "kind": ar.kind, "metadata": {"name": name}}));
    let obj: DynamicObject = serde_json::from_value(body).map_err(|e| e.to_string())?;
    api.create(&PostParams::default(), &obj).await.map_err(message)?;
    if let Some(status) = status {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": status})))
            .await
            .map_err(message)?;
    }
    Ok(())
}

async fn change(api: &Api<DynamicObject>, name: &str, patch: &Value) -> Result<(), String> {
    let params = PatchParams::default();
    if let Some(status) = patch.get("status") {
        api.patch_status(name, &params, &Patch::Merge(json!({"status": status}))).await.map_err(message)?;
    }
    if let Some(spec) = patch.get("spec") {
        api.patch(name, &params, &Patch::Merge(json!({"spec": spec}))).await.map_err(message)?;
    }
    Ok(())
}

async fn client() -> (Client, String) {
    let fixture = shared().await.expect("kube fixture");
    let client = fixture.client().expect("client");
    install_crds(&client, &ferrolb_api::crds::render_yaml()).await.expect("CRDs");
    let ns = unique_name("crd-rules");
    create_namespace(&client, &ns).await.expect("namespace");
    (client, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_schema_rule_and_bound_is_refused_by_the_api_server() {
    let schemas = schemas();
    let examples = rule_examples();
    let mut constraints = Vec::new();
    for s in &schemas {
        collect(&s.kind, &s.version, &s.root, Vec::new(), &mut constraints);
    }
    // The enumeration itself must see the rules docs/crd-validation.md lists.
    let rules = constraints.iter().filter(|c| matches!(c.bound, Bound::Rule { .. })).count();
    assert_eq!(rules, 19, "CEL rules in the CRDs");
    assert!(constraints.len() > 60, "only {} constraints found", constraints.len());

    let mut cases = Vec::new();
    let mut missing = Vec::new();
    for c in &constraints {
        let schema = schemas.iter().find(|s| s.kind == c.kind && s.version == c.version).expect("schema");
        match case(schema, c, &examples) {
            Ok(case) => cases.push(case),
            Err(why) => missing.push(format!("{}: {why}", c.id())),
        }
    }
    assert!(missing.is_empty(), "constraints without a violating example:\n{}", missing.join("\n"));
    // Every example is for a rule that exists.
    for key in examples.keys() {
        let used = constraints.iter().any(|c| {
            matches!(&c.bound, Bound::Rule { message, .. } if (c.kind.as_str(), c.version.as_str(), shown(&c.path).as_str(), message.as_str()) == *key)
        });
        assert!(used, "example for a rule the CRDs do not have: {key:?}");
    }

    let (client, ns) = client().await;
    // Controls: every base object is accepted.
    for s in &schemas {
        let ar = resource(&s.kind, &s.version, &s.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let name = format!("base-{}-{}", s.plural, s.version);
        put(&api, &ar, &name, &base(&s.kind, &s.version))
            .await
            .unwrap_or_else(|e| panic!("base {} {} refused: {e}", s.kind, s.version));
    }

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let ar = resource(&case.kind, &case.version, &case.plural);
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
        let name = format!("case-{i}");
        let outcome = match &case.then {
            None => put(&api, &ar, &name, &case.first).await,
            Some(patch) => match put(&api, &ar, &name, &case.first).await {
                Ok(()) => change(&api, &name, patch).await,
                Err(e) => {
                    failures.push(format!("{}: the object before the change was refused: {e}", case.id));
                    continue;
                }
            },
        };
        match outcome {
            Ok(()) => failures.push(format!("{}: accepted", case.id)),
            Err(text) => {
                if let Some(missing) = case.expect.iter().find(|e| !text.contains(e.as_str())) {
                    failures.push(format!("{}: refused, but {missing:?} is not in {text:?}", case.id));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases:\n{}", failures.len(), cases.len(), failures.join("\n"));
    eprintln!("{} violations refused by the API server with the expected message", cases.len());
}
