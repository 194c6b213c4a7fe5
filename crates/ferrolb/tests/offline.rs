//! The offline commands through the real binary, against the contract in
//! shared/spec/cli-contract.md: output shape, order, exit codes, messages.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn ferrolb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(args)
        .env_remove("METALLB_NAMESPACE")
        .env_remove("METALLB_BGP_TYPE")
        .output()
        .expect("the ferrolb binary runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn quickstart() -> String {
    repo().join("examples/quickstart").display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.display().to_string()
}

/// An IPAddressPool document in the MetalLB namespace with an inline spec.
fn pool(name: &str, spec: &str) -> String {
    format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}\n")
}

/// A Service document: `metadata` and `spec` as inline YAML mappings' contents,
/// `rest` any further top-level fields (e.g. a status).
fn svc(metadata: &str, spec: &str, rest: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{{metadata}}}\nspec: {{{spec}}}\n{rest}")
}

/// A file of documents joined with `---`.
fn manifest(dir: &Path, name: &str, docs: &[String]) -> String {
    write(dir, name, &docs.join("---\n"))
}

fn plan_json(args: &[&str]) -> Value {
    let mut all = vec!["plan", "-o", "json"];
    all.extend_from_slice(args);
    let out = ferrolb(&all);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("plan prints JSON")
}

fn service<'a>(plan: &'a Value, ns: &str, name: &str) -> &'a Value {
    plan["services"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["namespace"] == ns && s["name"] == name))
        .unwrap_or_else(|| panic!("{ns}/{name} in plan: {plan}"))
}

#[test]
fn quickstart_plan_resolves_priority_only_pools_and_explains_the_pending_service() {
    let plan = plan_json(&["-f", &quickstart()]);
    // Priority-only pools serve every namespace: lower number first.
    assert_eq!(service(&plan, "shop", "storefront")["pool"], "primary");
    assert_eq!(service(&plan, "shop", "storefront")["ips"][0], "198.51.100.10");
    assert_eq!(service(&plan, "shop", "search")["pool"], "overflow");
    // The namespace-selected pool has the best priority and wins for its namespace.
    assert_eq!(service(&plan, "checkout", "api")["pool"], "payments");
    // autoAssign: false is used when asked for by name.
    assert_eq!(service(&plan, "shop", "admin")["pool"], "reserved");
    let pending = service(&plan, "blog", "newsletter");
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["pool"], Value::Null);
    let reason = pending["reason"].as_str().expect("pending has a reason");
    assert!(reason.starts_with("no available IPs"), "{reason}");
    for expected in [
        "pool \"primary\" is full",
        "pool \"overflow\" is full",
        "pool \"payments\" does not select namespace \"blog\"",
        "pool \"reserved\" has autoAssign disabled",
    ] {
        assert!(reason.contains(expected), "{expected:?} missing from {reason}");
    }
    let ignored = service(&plan, "shop", "database");
    assert_eq!(ignored["status"], "ignored");
    assert_eq!(ignored["reason"], "not of type LoadBalancer");
    // Assigned services carry no reason key at all.
    assert!(service(&plan, "shop", "cart").get("reason").is_none());
}

#[test]
fn plan_lists_services_and_pools_sorted_with_exact_counters() {
    let plan = plan_json(&["-f", &quickstart()]);
    let keys: Vec<(String, String)> = plan["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| (s["namespace"].as_str().unwrap_or("").into(), s["name"].as_str().unwrap_or("").into()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert_eq!(keys.len(), 9, "every Service in the input is listed");
    let pools = plan["pools"].as_array().expect("pools");
    let names: Vec<&str> = pools.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["overflow", "payments", "primary", "reserved"]);
    let payments = &pools[1];
    assert_eq!(payments["assignedIPv4"], 1);
    assert_eq!(payments["availableIPv4"], 3);
    assert_eq!(payments["assignedIPv6"], 0);
    assert_eq!(payments["availableIPv6"], 4);
    assert_eq!(pools[3]["availableIPv4"], 15);
}

#[test]
fn yaml_and_table_outputs_carry_the_same_plan() {
    let json = plan_json(&["-f", &quickstart()]);
    let out = ferrolb(&["plan", "-o", "yaml", "-f", &quickstart()]);
    assert_eq!(out.status.code(), Some(0));
    let yaml: Value = serde_saphyr::from_str(&stdout(&out)).expect("plan prints YAML");
    assert_eq!(yaml, json);
    let table = ferrolb(&["plan", "-f", &quickstart()]);
    assert_eq!(table.status.code(), Some(0));
    let text = stdout(&table);
    assert!(text.starts_with("NAMESPACE"), "{text}");
    assert!(text.contains("newsletter") && text.contains("pending"), "{text}");
}

#[test]
fn seed_scenario_priority_only_pools_fill_lower_number_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut docs = vec![
        pool("second", "{addresses: [10.2.0.0/31], serviceAllocation: {priority: 2}}"),
        pool("first", "{addresses: [10.1.0.0/31], serviceAllocation: {priority: 1}}"),
    ];
    for i in 0..5 {
        docs.push(svc(
            &format!("name: s{i}, namespace: ns{i}, creationTimestamp: \"2026-01-01T00:00:0{i}Z\""),
            &format!("type: LoadBalancer, clusterIP: 10.96.0.{i}, ports: [{{port: 80}}]"),
            "",
        ));
    }
    let file = manifest(dir.path(), "seed.yaml", &docs);
    let plan = plan_json(&["-f", &file]);
    let got: Vec<(String, String)> = (0..5)
        .map(|i| {
            let s = service(&plan, &format!("ns{i}"), &format!("s{i}"));
            (s["pool"].as_str().unwrap_or("-").to_string(), s["ips"][0].as_str().unwrap_or("-").to_string())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("first".to_string(), "10.1.0.0".to_string()),
            ("first".into(), "10.1.0.1".into()),
            ("second".into(), "10.2.0.0".into()),
            ("second".into(), "10.2.0.1".into()),
            ("-".into(), "-".into()),
        ]
    );
}

#[test]
fn existing_assignments_are_kept_before_new_services_are_placed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = manifest(
        dir.path(),
        "restart.yaml",
        &[
            pool("p", "{addresses: [10.0.0.0/30]}"),
            svc(
                "name: early, namespace: a, creationTimestamp: \"2020-01-01T00:00:00Z\"",
                "type: LoadBalancer, clusterIP: 10.96.0.1",
                "",
            ),
            svc(
                "name: holder, namespace: z",
                "type: LoadBalancer, clusterIP: 10.96.0.2",
                "status: {loadBalancer: {ingress: [{ip: 10.0.0.0}]}}\n",
            ),
        ],
    );
    let plan = plan_json(&["-f", &file]);
    assert_eq!(service(&plan, "z", "holder")["ips"][0], "10.0.0.0");
    assert_eq!(service(&plan, "a", "early")["ips"][0], "10.0.0.1");
}

#[test]
fn invalid_configuration_exits_1_with_one_line_per_error_naming_the_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = manifest(
        dir.path(),
        "bad.yaml",
        &[pool("a", "{addresses: [10.0.0.0/24]}"), pool("b", "{addresses: [10.0.0.128/25, 10.9.9.9-10.9.9.1]}")],
    );
    for cmd in ["plan", "validate"] {
        let out = ferrolb(&[cmd, "-f", &file]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{cmd} prints nothing on stdout: {}", stdout(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{cmd}: {err}");
        assert!(lines.iter().all(|l| l.starts_with("IPAddressPool/b: ")), "{err}");
        assert!(err.contains("overlaps with already defined CIDR"), "{err}");
        assert!(err.contains("is after the end IP"), "{err}");
    }
    let ok = ferrolb(&["validate", "-f", &quickstart()]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(stdout(&ok), "ok\n");
}

#[test]
fn unreadable_input_exits_2_naming_file_document_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = manifest(
        dir.path(),
        "typo.yaml",
        &[pool("a", "{addresses: [10.0.0.0/24]}"), pool("b", "{addresses: [10.1.0.0/24], autoAssign: maybe}")],
    );
    for cmd in [&["plan", "-f", &file][..], &["validate", "-f", &file], &["explain", "-f", &file, "a/b"]] {
        let out = ferrolb(cmd);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("typo.yaml"), "{err}");
        assert!(err.contains("autoAssign"), "{err}");
        assert!(err.contains('2'), "document index: {err}");
    }
    let garbage = write(dir.path(), "garbage.yaml", "key: [unclosed\n  - : :\n\u{0}");
    let out = ferrolb(&["plan", "-f", &garbage]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let missing = ferrolb(&["plan", "-f", "/nonexistent/ferrolb-input"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn schema_errors_name_the_object_like_configuration_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = manifest(
        dir.path(),
        "bfd.yaml",
        &[
            pool("a", "{addresses: [10.0.0.0/24]}"),
            "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: slow, namespace: metallb-system}\nspec: {receiveInterval: 5}\n".to_string(),
        ],
    );
    for cmd in ["plan", "validate"] {
        let out = ferrolb(&[cmd, "-f", &file]);
        // Still unreadable input (the schema refuses it), not an invalid configuration.
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{err}");
        let expected = format!(
            "BFDProfile/slow: {file}: document 2 (line 5): spec.receiveInterval: Invalid value: 5: spec.receiveInterval in body should be greater than or equal to 10"
        );
        assert_eq!(lines[0], expected);
    }
}

/// An ignored Service's addresses are not ferrolb's: none listed, none counted,
/// and the reason says whose they are.
#[test]
fn ignored_services_list_no_addresses_and_say_whose_they_are() {
    let dir = tempfile::tempdir().expect("tempdir");
    let held = "status: {loadBalancer: {ingress: [{ip: 10.0.0.0}]}}\n";
    let file = manifest(
        dir.path(),
        "ignored.yaml",
        &[
            pool("p", "{addresses: [10.0.0.0/30]}"),
            svc("name: other, namespace: a", "type: LoadBalancer, clusterIP: 10.96.0.1, loadBalancerClass: example.com/lb", held),
            svc("name: plain, namespace: a", "type: ClusterIP, clusterIP: 10.96.0.2", held),
            svc("name: fresh, namespace: a", "type: LoadBalancer, clusterIP: 10.96.0.3", ""),
        ],
    );
    let plan = plan_json(&["-f", &file]);
    let other = service(&plan, "a", "other");
    assert_eq!(other["status"], "ignored");
    assert_eq!(other["ips"], serde_json::json!([]));
    assert_eq!(other["pool"], Value::Null);
    assert_eq!(
        other["reason"],
        "spec.loadBalancerClass \"example.com/lb\" is not handled by this controller; its addresses 10.0.0.0 belong to the load-balancer implementation of class \"example.com/lb\""
    );
    let plain = service(&plan, "a", "plain");
    assert_eq!(plain["ips"], serde_json::json!([]));
    assert_eq!(
        plain["reason"],
        "not of type LoadBalancer; the controller clears the addresses left in its status (10.0.0.0)"
    );
    // Neither holds 10.0.0.0 for ferrolb: the managed Service gets it.
    assert_eq!(service(&plan, "a", "fresh")["ips"], serde_json::json!(["10.0.0.0"]));
    assert_eq!(plan["pools"][0]["assignedIPv4"], 1);

    // With --lb-class the class-less Service belongs to the default implementation.
    let plan = plan_json(&["--lb-class", "example.com/lb", "-f", &file]);
    let fresh = service(&plan, "a", "fresh");
    assert_eq!(fresh["status"], "ignored");
    assert_eq!(fresh["reason"], "has no spec.loadBalancerClass; only class \"example.com/lb\" is handled");
    assert_eq!(
        service(&plan, "a", "plain")["reason"],
        "has no spec.loadBalancerClass; only class \"example.com/lb\" is handled; its addresses 10.0.0.0 belong to the cluster's default load-balancer implementation (the one for Services without a class)"
    );
    assert_eq!(service(&plan, "a", "other")["ips"], serde_json::json!(["10.0.0.0"]));

    let out = ferrolb(&["explain", "-f", &file, "a/other"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Outcome: ignored: spec.loadBalancerClass \"example.com/lb\" is not handled by this controller; its addresses 10.0.0.0 belong to"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unknown_kinds_and_foreign_namespaces_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        dir.path(),
        "mixed.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: elsewhere, namespace: kube-system}
spec: {addresses: [10.0.0.0/24]}
---
apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: here, namespace: metallb-system}
  spec: {addresses: [10.1.0.0/24]}
",
    );
    let out = ferrolb(&["plan", "-o", "json", "-f", &file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "one warning per skipped document: {err}");
    assert!(err.contains("Deployment"), "{err}");
    assert!(err.contains("kube-system"), "{err}");
    let plan: Value = serde_json::from_slice(&out.stdout).expect("json");
    let pools: Vec<&str> = plan["pools"].as_array().expect("pools").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(pools, ["here"]);
    // --namespace moves the MetalLB namespace.
    let moved = ferrolb(&["plan", "-o", "json", "--namespace", "kube-system", "-f", &file]);
    let plan: Value = serde_json::from_slice(&moved.stdout).expect("json");
    let pools: Vec<&str> = plan["pools"].as_array().expect("pools").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(pools, ["elsewhere"]);
}

#[test]
fn lb_class_selects_which_services_are_handled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = manifest(
        dir.path(),
        "class.yaml",
        &[
            pool("p", "{addresses: [10.0.0.0/30]}"),
            svc("name: classless, namespace: a", "type: LoadBalancer, clusterIP: 10.96.0.1", ""),
            svc(
                "name: classy, namespace: a",
                "type: LoadBalancer, clusterIP: 10.96.0.2, loadBalancerClass: example.com/lb",
                "",
            ),
        ],
    );
    let plan = plan_json(&["-f", &file]);
    assert_eq!(service(&plan, "a", "classless")["status"], "assigned");
    assert_eq!(service(&plan, "a", "classy")["status"], "ignored");
    let plan = plan_json(&["--lb-class", "example.com/lb", "-f", &file]);
    assert_eq!(service(&plan, "a", "classless")["status"], "ignored");
    assert_eq!(service(&plan, "a", "classy")["status"], "assigned");
}

#[test]
fn explain_lists_every_pool_in_order_with_the_outcome() {
    let out = ferrolb(&["explain", "-f", &quickstart(), "blog/newsletter"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let order: Vec<usize> = ["payments", "primary", "overflow", "reserved"]
        .iter()
        .map(|p| text.find(&format!(" {p} ")).unwrap_or_else(|| panic!("{p} missing: {text}")))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "consideration order: {text}");
    assert!(text.contains("Outcome: pending: no available IPs"), "{text}");

    let assigned = ferrolb(&["explain", "-f", &quickstart(), "shop/storefront"]);
    let text = stdout(&assigned);
    assert!(text.contains("Outcome: assigned 198.51.100.10 from pool \"primary\""), "{text}");
    assert!(text.contains("was chosen"), "{text}");

    let missing = ferrolb(&["explain", "-f", &quickstart(), "shop/nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("shop/nope"));
}

#[test]
fn crds_command_prints_what_deploy_holds() {
    let out = ferrolb(&["crds"]);
    assert_eq!(out.status.code(), Some(0));
    let on_disk = std::fs::read_to_string(repo().join("deploy/crds/metallb.io.yaml")).expect("deploy/crds");
    assert!(
        stdout(&out) == on_disk,
        "deploy/crds/metallb.io.yaml is stale: run `cargo run -p ferrolb -- crds > deploy/crds/metallb.io.yaml`"
    );
}

#[test]
fn unknown_bgp_type_is_an_error_not_a_silent_default() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["validate", "-f", &quickstart()])
        .env("METALLB_BGP_TYPE", "bird")
        .output()
        .expect("the ferrolb binary runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("METALLB_BGP_TYPE"), "{}", stderr(&out));
    let frr = Command::new(env!("CARGO_BIN_EXE_ferrolb"))
        .args(["validate", "-f", &quickstart()])
        .env("METALLB_BGP_TYPE", "frr")
        .output()
        .expect("the ferrolb binary runs");
    assert_eq!(frr.status.code(), Some(0), "{}", stderr(&frr));
}
