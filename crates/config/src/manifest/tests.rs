use super::*;
use std::fs;

fn read(text: &str) -> Result<Manifests, InputError> {
    read_str("input.yaml", text, &ReadOptions::default())
}

fn err(text: &str) -> String {
    match read(text) {
        Ok(_) => panic!("input unexpectedly accepted"),
        Err(e) => e.to_string(),
    }
}

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: prod\n  namespace: metallb-system\nspec:\n  addresses: [10.0.0.0/24]\n";

#[test]
fn multi_document_file() {
    let text = format!(
        "{POOL}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{type: LoadBalancer}}\n---\n# empty\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a, labels: {{team: a}}}}\n"
    );
    let m = read(&text).unwrap();
    assert_eq!(m.pools.len(), 1);
    assert_eq!(m.services.len(), 1);
    assert_eq!(m.services[0].metadata.namespace.as_deref(), Some("default"));
    // The Namespace object read, plus an implicit label-less `default` for
    // the Service whose namespace has no object (cli-contract.md).
    let names: Vec<(&str, usize)> = m
        .namespaces
        .iter()
        .map(|n| {
            let labels = n.metadata.labels.as_ref().map_or(0, |l| l.len());
            (n.metadata.name.as_deref().unwrap_or(""), labels)
        })
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&("team-a", 1)), "{names:?}");
    assert!(names.contains(&("default", 0)), "{names:?}");
    assert!(m.warnings.is_empty());
}

#[test]
fn lists_are_unwrapped() {
    let text = r#"
apiVersion: v1
kind: List
items:
- {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: a}, spec: {addresses: [10.0.0.0/24]}}
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPoolList
  items:
  - {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: b}, spec: {addresses: [10.1.0.0/24]}}
"#;
    let m = read(text).unwrap();
    let names: Vec<_> = m.pools.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["a", "b"]);
    // Objects without a namespace are taken to be meant for MetalLB's.
    assert_eq!(m.pools[0].metadata.namespace.as_deref(), Some("metallb-system"));
}

#[test]
fn list_item_error_names_the_item() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: a}, spec: {addresses: [x]}}\n- {apiVersion: metallb.io/v1beta1, kind: IPAddressPool, metadata: {name: b}, spec: {addresses: [x], autoAssign: maybe}}\n";
    let e = err(text);
    assert!(e.starts_with("IPAddressPool/b: input.yaml: document 1 (line 1): items[1].spec.autoAssign: invalid type: string \"maybe\", expected a boolean"), "{e}");
}

#[test]
fn unknown_kinds_warn_once_each() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n---\n{POOL}---\napiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {{name: s}}\n---\napiVersion: metallb.io/v1\nkind: IPAddressPool\nmetadata: {{name: future}}\n"
    );
    let m = read(&text).unwrap();
    assert_eq!(m.pools.len(), 1);
    assert_eq!(
        m.warnings,
        [
            "input.yaml: document 1: skipping v1 ConfigMap \"cm\": not a kind ferrolb reads",
            "input.yaml: document 2: skipping apps/v1 Deployment \"d\": not a kind ferrolb reads",
            "input.yaml: document 4: skipping metallb.io/v1beta1 ServiceL2Status \"s\": not a kind ferrolb reads",
            "input.yaml: document 5: skipping metallb.io/v1 IPAddressPool \"future\": not a kind ferrolb reads",
        ]
    );
}

#[test]
fn bad_yaml_names_file_document_and_line() {
    let text = format!("{POOL}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web\n");
    let e = err(&text);
    assert!(e.starts_with("input.yaml: document 2 (line "), "{e}");
}

#[test]
fn schema_mismatch_names_the_field() {
    let text = format!("{POOL}---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: x}}\nspec:\n  addresses: 10.0.0.0/24\n");
    let e = err(&text);
    assert!(e.starts_with("IPAddressPool/x: input.yaml: document 2 (line 8): spec.addresses: invalid type: string \"10.0.0.0/24\", expected a sequence"), "{e}");
}

#[test]
fn missing_kind_or_name() {
    assert_eq!(err("apiVersion: v1\nmetadata: {name: x}\n"), "input.yaml: document 1 (line 1): kind: Required value");
    assert_eq!(err("- a\n- b\n"), "input.yaml: document 1 (line 1): expected an object with apiVersion and kind");
    assert_eq!(
        err("apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {}\n"),
        "input.yaml: document 1 (line 1): metadata.name: Required value: name or generateName is required"
    );
}

/// cli-contract.md: error lines name the object as `Kind/name`, also for the
/// errors found while a document is read against its schema.
#[test]
fn schema_errors_name_the_object() {
    let e = read("apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: slow}\nspec: {receiveInterval: 5}\n").unwrap_err();
    assert_eq!(e.object.as_deref(), Some("BFDProfile/slow"));
    assert_eq!(
        e.to_string(),
        "BFDProfile/slow: input.yaml: document 1 (line 1): spec.receiveInterval: Invalid value: 5: spec.receiveInterval in body should be greater than or equal to 10"
    );
    let e = read("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: x}]}\n").unwrap_err();
    assert!(e.to_string().starts_with("Service/web: input.yaml: document 1 (line 1): spec.ports[0].port: "), "{e}");
    // Nothing to name: no kind, or no name.
    assert_eq!(read("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err().object, None);
    assert_eq!(read("apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {}\n").unwrap_err().object, None);
    // A YAML syntax error is about the text, not an object.
    assert_eq!(read("apiVersion: v1\nkind: Service\nmetadata: {name: web\n").unwrap_err().object, None);
}

#[test]
fn schema_ranges() {
    let e = err("apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: x}\nspec: {preferredNodeSelectors: [{weight: 0, preference: {}}]}\n");
    assert!(e.ends_with("spec.preferredNodeSelectors[0].weight: Invalid value: 0: spec.preferredNodeSelectors[0].weight in body should be greater than or equal to 1"), "{e}");
    let e = err("apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: x}\nspec: {aggregationLength: 0}\n");
    assert!(e.contains("spec.aggregationLength: Invalid value: 0"), "{e}");
    let e = err("apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: x}\nspec: {detectMultiplier: 300}\n");
    assert!(e.contains("spec.detectMultiplier: Invalid value: 300: spec.detectMultiplier in body should be less than or equal to 255"), "{e}");
    let peer = |extra: &str| format!("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: p}}\nspec: {{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, {extra}}}\n");
    assert!(err(&peer("peerPort: 0")).contains("spec.peerPort: Invalid value: 0"));
    assert!(err(&peer("peerPort: 70000")).contains("spec.peerPort: invalid value"));
    assert!(err(&peer("holdTime: soon")).contains("spec.holdTime: time: invalid duration \"soon\""));
    assert!(err(&peer("connectTime: 1500ms")).contains("spec.connectTime: connect time should contain a whole number of seconds"));
    assert!(err(&peer("connectTime: 0s")).contains("spec.connectTime: connect time should be between 1 seconds to 65535"));
    assert!(err(&peer("dynamicASN: sideways")).contains("spec.dynamicASN: unknown variant `sideways`"));
    read(&peer("connectTime: 10s")).unwrap();
}

#[test]
fn metallb_objects_outside_the_namespace_are_ignored() {
    let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: other}\nspec: {addresses: [10.0.0.0/24]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: kube-system}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: other}\n";
    let m = read(text).unwrap();
    assert!(m.pools.is_empty());
    assert!(m.secrets.is_empty());
    assert_eq!(m.services.len(), 1);
    assert_eq!(
        m.warnings,
        [
            "input.yaml: document 1: ignoring IPAddressPool \"a\" in namespace \"other\": MetalLB reads its objects from namespace \"metallb-system\"",
            "input.yaml: document 2: ignoring Secret \"s\" in namespace \"kube-system\": MetalLB reads its objects from namespace \"metallb-system\"",
        ]
    );
    let custom = ReadOptions { namespace: "other".into(), ..Default::default() };
    assert_eq!(read_str("x", text, &custom).unwrap().pools.len(), 1);
}

#[test]
fn v1beta1_peer_converted() {
    let m = read("apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: p}\nspec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1}\n").unwrap();
    let p = &m.bgp_peers[0];
    assert_eq!(p.spec.peer_port, 179);
    assert_eq!(p.spec.hold_time.as_deref(), Some("0s"));
    assert_eq!(p.spec.keepalive_time.as_deref(), Some("0s"));
}

#[test]
fn secrets_data_and_string_data() {
    let m = read("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/basic-auth\ndata: {password: cHc=}\nstringData: {username: me}\n").unwrap();
    let s = &m.secrets[0];
    assert_eq!(s.data.as_ref().unwrap()["password"].0, b"pw");
    assert_eq!(s.string_data.as_ref().unwrap()["username"], "me");
    let e = err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {password: '***'}\n");
    assert!(e.contains("data.password"), "{e}");
}

#[test]
fn json_documents() {
    let m = read(r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "labels": {"zone": "a"}}}]}"#).unwrap();
    assert_eq!(m.nodes.len(), 1);
}

#[test]
fn hundred_thousand_documents() {
    let mut text = String::with_capacity(100_000 * 120);
    for i in 0..100_000u32 {
        let [_, a, b, c] = i.to_be_bytes();
        text.push_str(&format!(
            "---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: p{i}}}\nspec: {{addresses: [10.{a}.{b}.{c}/32]}}\n"
        ));
    }
    let m = read(&text).unwrap();
    assert_eq!(m.pools.len(), 100_000);
    let cfg = crate::assemble::build_config(&m.config_input(BgpMode::Native, "metallb-system")).unwrap();
    assert_eq!(cfg.pools.len(), 100_000);
}

/// Hostile input meets a named limit, reported with its place.
#[test]
fn hostile_inputs_meet_their_limits() {
    let deep = format!("a: {}{}", "[".repeat(100_000), "]".repeat(100_000));
    let e = read(&deep).unwrap_err();
    assert!(e.message.starts_with("recursion limit exceeded"), "{e}");
    let mut bomb = String::from("apiVersion: v1\nkind: Service\nmetadata: {name: x}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..15 {
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    let e = read(&bomb).unwrap_err();
    assert!(e.message.starts_with("alias replay limit exceeded: total_replayed_events=250001 > 250000 "), "{e}");
    assert_eq!(e.document, Some(1));
    let huge = "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 99999999999999999999999999999999}]}\n";
    let e = read(huge).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("spec.ports[0].port"));
    assert!(e.message.starts_with("invalid type: floating point"), "{e}");
    let garbage: String = (0..4096u32).map(|i| char::from_u32((i * 7919) % 0xD7FF).unwrap_or('x')).collect();
    let e = read(&garbage).unwrap_err();
    assert!(e.message.starts_with("unexpected character"), "{e}");
}

#[test]
fn total_node_budget() {
    let opts = ReadOptions { limits: Limits { max_total_nodes: 15, ..Limits::default() }, ..Default::default() };
    let text = format!("{POOL}---\n{POOL}");
    let e = read_str("x", &text, &opts).unwrap_err();
    assert!(e.message.contains("YAML nodes"), "{e}");
}

#[test]
fn directories_recursive_lexical_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("b/nested")).unwrap();
    fs::create_dir_all(root.join("a")).unwrap();
    let pool = |name: &str, net: &str| {
        format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec: {{addresses: [{net}]}}\n")
    };
    fs::write(root.join("b/nested/z.yml"), pool("from-b-nested", "10.0.3.0/24")).unwrap();
    fs::write(root.join("b/a.yaml"), pool("from-b", "10.0.2.0/24")).unwrap();
    fs::write(root.join("a/x.json"), r#"{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool","metadata":{"name":"from-a"},"spec":{"addresses":["10.0.1.0/24"]}}"#).unwrap();
    fs::write(root.join("c.txt"), "not: [yaml").unwrap();
    fs::write(root.join("README.md"), "# docs").unwrap();
    let m = read_paths(&[root.to_path_buf()]).unwrap();
    let names: Vec<_> = m.pools.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["from-a", "from-b", "from-b-nested"]);
    // A file named explicitly is read whatever its extension, after the directory.
    fs::write(root.join("extra.txt"), pool("explicit", "10.0.4.0/24")).unwrap();
    let m = read_paths(&[root.join("b"), root.join("extra.txt")]).unwrap();
    let names: Vec<_> = m.pools.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["from-b", "from-b-nested", "explicit"]);
}

#[test]
fn file_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let e = read_paths(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(e.file, missing.display().to_string());
    let bin = dir.path().join("bin.yaml");
    fs::write(&bin, [0xff, 0xfe, 0x00, 0x41, 0x80]).unwrap();
    let e = read_paths(std::slice::from_ref(&bin)).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: not UTF-8 text", bin.display())), "{e}");
    let bad = dir.path().join("bad.yaml");
    fs::write(&bad, format!("{POOL}---\n{POOL}---\nkind: [\n")).unwrap();
    let e = read_paths(std::slice::from_ref(&bad)).unwrap_err();
    assert_eq!(e.file, bad.display().to_string());
    assert_eq!(e.document, Some(3));
    let big = dir.path().join("big.yaml");
    fs::write(&big, "#".repeat(2000)).unwrap();
    let opts = ReadOptions { limits: Limits { max_file_bytes: 1000, ..Limits::default() }, ..Default::default() };
    assert!(read_paths_with(std::slice::from_ref(&big), &opts).unwrap_err().message.contains("larger than 1000 bytes"));
    // Two files each under the per-file cap but over the total one.
    let opts = ReadOptions { limits: Limits { max_total_bytes: 3000, ..Limits::default() }, ..Default::default() };
    let e = read_paths_with(&[big.clone(), big.clone()], &opts).unwrap_err();
    assert_eq!(e.message, "input is larger than 3000 bytes in total");
    // Any other failure keeps its own message under the total budget.
    let e = read_paths_with(&[big.clone(), bin.clone()], &opts).unwrap_err();
    assert!(e.message.starts_with("not UTF-8 text"), "{e}");
}

#[cfg(unix)]
#[test]
fn symlink_loops_terminate() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink(dir.path(), dir.path().join("d/loop")).unwrap();
    fs::write(dir.path().join("d/p.yaml"), POOL).unwrap();
    assert_eq!(read_paths(&[dir.path().to_path_buf()]).unwrap().pools.len(), 1);
}

#[test]
fn service_namespaces_without_objects_get_label_less_namespaces() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: team}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team, labels: {t: x}}\n---\n\
apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec: {addresses: [10.0.0.0/24], serviceAllocation: {namespaceSelectors: [{matchExpressions: [{key: t, operator: DoesNotExist}]}]}}\n";
    let m = read(text).unwrap();
    let names: Vec<_> = m.namespaces.iter().map(|n| n.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["team", "default"]);
    assert_eq!(m.namespaces[0].metadata.labels.as_ref().unwrap()["t"], "x");
    let cfg = crate::assemble::build_config(&m.config_input(BgpMode::Native, "metallb-system")).unwrap();
    let ns: Vec<_> = cfg.pools[0].allocation.as_ref().unwrap().namespaces.iter().cloned().collect();
    assert_eq!(ns, ["default"]);
}
