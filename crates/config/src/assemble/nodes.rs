//! Node objects as selector targets, and selector-list conversion shared by the kinds.

use super::types::NodeSet;
use crate::selector::{self, Selector};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

pub(crate) struct NodeIndex {
    nodes: Vec<(String, BTreeMap<String, String>)>,
}

impl NodeIndex {
    pub(crate) fn new(nodes: &[Node]) -> Self {
        NodeIndex {
            nodes: nodes
                .iter()
                .map(|n| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()))
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes selected by `selectors` (no selectors = every node).
    pub(crate) fn node_set(&self, selectors: Vec<Selector>) -> NodeSet {
        let nodes = self
            .nodes
            .iter()
            .filter(|(_, labels)| selectors.is_empty() || selector::any_matches(&selectors, labels))
            .map(|(name, _)| name.clone())
            .collect();
        NodeSet { selectors, nodes }
    }

    pub(crate) fn labels(&self) -> impl Iterator<Item = (&str, &BTreeMap<String, String>)> {
        self.nodes.iter().map(|(n, l)| (n.as_str(), l))
    }
}

/// Converts every selector of a list; the error is the first parser message with the
/// index of the offending selector.
pub(crate) fn convert_all(sels: &[LabelSelector]) -> Result<Vec<Selector>, (usize, String)> {
    sels.iter()
        .enumerate()
        .map(|(i, s)| selector::convert(s).map_err(|e| (i, e)))
        .collect()
}
