//! Helpers shared by the integration tests: fixture loading and schema lookup.
#![allow(dead_code)] // each test binary uses a different subset

pub mod openapi;

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn fixture_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// Every document of a fixture file, typed.
pub fn load<T: DeserializeOwned>(name: &str) -> Vec<T> {
    let text = fixture_text(name);
    serde_saphyr::from_multiple(&text).unwrap_or_else(|err| panic!("parsing {name}: {err}"))
}

/// Every document of a fixture file as JSON values (the shape the API server sees).
pub fn load_values(name: &str) -> Vec<Value> {
    load::<Value>(name)
}

pub fn crd(name: &str) -> CustomResourceDefinition {
    ferrolb_api::crds::all()
        .into_iter()
        .find(|crd| crd.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no CRD named {name}"))
}

/// The openAPIV3Schema of one version of a CRD, as JSON.
pub fn schema(crd_name: &str, version: &str) -> Value {
    let crd = crd(crd_name);
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.name == version)
        .unwrap_or_else(|| panic!("{crd_name} has no version {version}"));
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .unwrap_or_else(|| panic!("{crd_name}/{} has no schema", version.name));
    serde_json::to_value(schema).expect("schema serialises")
}

/// Follows a path of property names (`"spec.peerPort"`) through `properties`.
pub fn property<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, name| {
        node.get("properties")
            .and_then(|props| props.get(name))
            .unwrap_or_else(|| panic!("no property {name} on the way to {path}"))
    })
}

/// Every fixture file (each document is an object MetalLB accepts as valid).
pub const FIXTURE_FILES: [&str; 8] = [
    "ipaddresspools.yaml",
    "l2advertisements.yaml",
    "bgpadvertisements.yaml",
    "communities.yaml",
    "bfdprofiles.yaml",
    "bgppeers-v1beta1.yaml",
    "bgppeers-v1beta2.yaml",
    "statuses.yaml",
];

/// The schema that serves an object, found from its `apiVersion` and `kind`.
pub fn schema_for(object: &Value) -> Value {
    let kind = object["kind"].as_str().expect("object has a kind");
    let api_version = object["apiVersion"]
        .as_str()
        .expect("object has an apiVersion");
    let (group, version) = api_version.split_once('/').expect("group/version");
    let crd = ferrolb_api::crds::all()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind && crd.spec.group == group)
        .unwrap_or_else(|| panic!("no CRD for {api_version} {kind}"));
    let name = crd.metadata.name.clone().expect("CRD has a name");
    schema(&name, version)
}
