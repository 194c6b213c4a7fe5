//! Offline input for the CLI (cli-contract.md "Input"): `-f PATH` files and
//! directories, multi-document YAML or JSON, `List` unwrapping, known kinds typed,
//! unknown kinds skipped with a warning, MetalLB objects outside the MetalLB
//! namespace ignored with a warning. Hostile input is bounded by [`Limits`].

mod files;
mod kinds;
mod schema;
mod split;
#[cfg(test)]
mod tests;
mod yaml;

pub use yaml::Limits;

use crate::assemble::{BgpMode, ConfigInput, DEFAULT_NAMESPACE};
use ferrolb_api::{v1beta1, v1beta2};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use kinds::{Kind, Rejection};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything read from the input, by kind, in reading order.
#[derive(Debug, Clone, Default)]
pub struct Manifests {
    pub pools: Vec<v1beta1::IPAddressPool>,
    pub l2_advertisements: Vec<v1beta1::L2Advertisement>,
    pub bgp_advertisements: Vec<v1beta1::BGPAdvertisement>,
    pub communities: Vec<v1beta1::Community>,
    pub bfd_profiles: Vec<v1beta1::BFDProfile>,
    /// v1beta1 peers already converted (crds.md §5.3).
    pub bgp_peers: Vec<v1beta2::BGPPeer>,
    pub services: Vec<Service>,
    /// Namespace objects read, then a label-less one for every Service namespace that
    /// had none (cli-contract.md).
    pub namespaces: Vec<Namespace>,
    pub nodes: Vec<Node>,
    /// Secrets of the MetalLB namespace.
    pub secrets: Vec<Secret>,
    /// One line per skipped document, for stderr.
    pub warnings: Vec<String>,
}

impl Manifests {
    /// The builder's view of these objects.
    pub fn config_input<'a>(&'a self, mode: BgpMode, namespace: &'a str) -> ConfigInput<'a> {
        ConfigInput {
            pools: &self.pools,
            l2_advertisements: &self.l2_advertisements,
            bgp_advertisements: &self.bgp_advertisements,
            bgp_peers: &self.bgp_peers,
            communities: &self.communities,
            bfd_profiles: &self.bfd_profiles,
            secrets: &self.secrets,
            namespaces: &self.namespaces,
            nodes: &self.nodes,
            mode,
            namespace,
            secret_passthrough: false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// The MetalLB namespace (`--namespace`).
    pub namespace: String,
    pub limits: Limits,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { namespace: DEFAULT_NAMESPACE.to_string(), limits: Limits::default() }
    }
}

/// Unreadable input (exit code 2): names the file and, when known, the object
/// (`Kind/name`), the document (1-based), its first line, and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// `Kind/name` of the object the document describes, when its kind is one
    /// ferrolb reads and it has a name: the same prefix as a configuration
    /// error's, so every line about one object starts alike (cli-contract.md).
    /// Boxed to keep the error small (clippy::result_large_err).
    pub object: Option<Box<str>>,
    pub file: String,
    pub document: Option<usize>,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl InputError {
    pub(crate) fn file(path: &Path, message: impl Into<String>) -> Self {
        InputError {
            object: None,
            file: path.display().to_string(),
            document: None,
            line: None,
            field: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        write!(f, "{}", self.file)?;
        if let Some(doc) = self.document {
            write!(f, ": document {doc}")?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Reads every path with the default options.
pub fn read_paths(paths: &[PathBuf]) -> Result<Manifests, InputError> {
    read_paths_with(paths, &ReadOptions::default())
}

pub fn read_paths_with(paths: &[PathBuf], options: &ReadOptions) -> Result<Manifests, InputError> {
    let mut reader = Reader::new(options);
    for file in files::expand(paths)? {
        let remaining = options.limits.max_total_bytes.saturating_sub(reader.bytes);
        let max = options.limits.max_file_bytes.min(remaining);
        let text = files::read_text(&file, max).map_err(|mut e| {
            // The cap was the total budget, not the per-file one: say so.
            if max < options.limits.max_file_bytes && e.message.starts_with(files::TOO_LARGE) {
                e.message = format!("input is larger than {} bytes in total", options.limits.max_total_bytes);
            }
            e
        })?;
        reader.read_str(&file.display().to_string(), &text)?;
    }
    Ok(reader.finish())
}

/// Reads YAML/JSON text from memory (tests, fuzzing, stdin).
pub fn read_str(source: &str, text: &str, options: &ReadOptions) -> Result<Manifests, InputError> {
    let mut reader = Reader::new(options);
    reader.read_str(source, text)?;
    Ok(reader.finish())
}

/// Accumulates documents from several sources under one budget.
struct Reader<'o> {
    options: &'o ReadOptions,
    out: Manifests,
    bytes: u64,
    nodes: usize,
}

/// Where a document sits, for messages.
struct Place<'a> {
    source: &'a str,
    document: usize,
    line: usize,
}

impl Place<'_> {
    fn error(&self, field: Option<String>, message: impl Into<String>) -> InputError {
        InputError {
            object: None,
            file: self.source.to_string(),
            document: Some(self.document),
            line: Some(self.line),
            field: field.filter(|f| !f.is_empty()),
            message: message.into(),
        }
    }

    fn prefix(&self) -> String {
        format!("{}: document {}", self.source, self.document)
    }
}

impl<'o> Reader<'o> {
    fn new(options: &'o ReadOptions) -> Self {
        Reader { options, out: Manifests::default(), bytes: 0, nodes: 0 }
    }

    /// cli-contract.md: a Service's namespace without a Namespace object is a namespace
    /// with no labels. It gets an implicit label-less Namespace so `namespaceSelectors`
    /// (`{}`, `NotIn`, `DoesNotExist`) see it as they would in a cluster.
    fn finish(mut self) -> Manifests {
        let mut known: std::collections::HashSet<String> =
            self.out.namespaces.iter().filter_map(|n| n.metadata.name.clone()).collect();
        for svc in &self.out.services {
            let Some(ns) = &svc.metadata.namespace else { continue };
            if known.insert(ns.clone()) {
                self.out.namespaces.push(Namespace {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(ns.clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                });
            }
        }
        self.out
    }

    fn read_str(&mut self, source: &str, text: &str) -> Result<(), InputError> {
        self.bytes = self.bytes.saturating_add(text.len() as u64);
        let limits = &self.options.limits;
        if self.bytes > limits.max_total_bytes {
            return Err(InputError {
                object: None,
                file: source.to_string(),
                document: None,
                line: None,
                field: None,
                message: format!("input is larger than {} bytes in total", limits.max_total_bytes),
            });
        }
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, chunk) in split::split(text).into_iter().enumerate() {
            let place = Place { source, document: i + 1, line: chunk.first_line };
            let value = yaml::parse_document(chunk.text, limits).map_err(|e| {
                let mut err = place.error(None, e.message);
                if let Some(l) = e.line {
                    err.line = Some(chunk.first_line + l - 1);
                }
                err
            })?;
            let Some(value) = value else { continue };
            self.nodes = self.nodes.saturating_add(yaml::count_nodes(&value));
            if self.nodes > limits.max_total_nodes {
                return Err(place.error(None, format!("input has more than {} YAML nodes in total", limits.max_total_nodes)));
            }
            self.document(&place, value, "")?;
        }
        Ok(())
    }

    /// One document or `List` item; `path` prefixes fields of list items.
    fn document(&mut self, place: &Place<'_>, value: Value, path: &str) -> Result<(), InputError> {
        let field = |f: &str| -> Option<String> {
            Some(match (path.is_empty(), f.is_empty()) {
                (true, _) => f.to_string(),
                (false, true) => path.to_string(),
                (false, false) => format!("{path}.{f}"),
            })
        };
        let Value::Object(map) = &value else {
            return Err(place.error(field(""), "expected an object with apiVersion and kind"));
        };
        let text = |key: &str| -> Result<String, InputError> {
            match map.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(Value::String(_)) | None => Err(place.error(field(key), "Required value")),
                Some(_) => Err(place.error(field(key), "expected a string")),
            }
        };
        let api_version = text("apiVersion")?;
        let kind_name = text("kind")?;
        if kind_name.ends_with("List") && map.contains_key("items") {
            if !matches!(map.get("items"), Some(Value::Array(_))) {
                return Err(place.error(field("items"), "expected a list"));
            }
            let Value::Object(mut map) = value else { return Ok(()) };
            let Some(Value::Array(items)) = map.remove("items") else { return Ok(()) };
            for (i, item) in items.into_iter().enumerate() {
                let item_path = if path.is_empty() { format!("items[{i}]") } else { format!("{path}.items[{i}]") };
                self.document(place, item, &item_path)?;
            }
            return Ok(());
        }
        let name = map
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let Some(kind) = Kind::of(&api_version, &kind_name) else {
            let at = if path.is_empty() { String::new() } else { format!(" ({path})") };
            self.out.warnings.push(format!(
                "{}{at}: skipping {api_version} {kind_name} {name:?}: not a kind ferrolb reads",
                place.prefix()
            ));
            return Ok(());
        };
        match kinds::store(kind, value, &self.options.namespace, &mut self.out) {
            Ok(()) => Ok(()),
            Err(Rejection::Invalid((f, message))) => {
                let mut err = place.error(field(&f), message);
                // A nameless object cannot be named; its error says `metadata.name`.
                err.object = (!name.is_empty()).then(|| format!("{kind_name}/{name}").into());
                Err(err)
            }
            Err(Rejection::OtherNamespace(ns)) => {
                let at = if path.is_empty() { String::new() } else { format!(" ({path})") };
                self.out.warnings.push(format!(
                    "{}{at}: ignoring {kind_name} {name:?} in namespace {ns:?}: MetalLB reads its objects from namespace {:?}",
                    place.prefix(),
                    self.options.namespace
                ));
                debug_assert!(kind.lives_in_metallb_namespace());
                Ok(())
            }
        }
    }
}
