//! Kubernetes label selectors (`matchLabels` + `matchExpressions`).

use std::collections::{BTreeMap, BTreeSet};

/// A label selector with Kubernetes semantics: every `match_labels` pair and
/// every requirement must hold. An empty selector matches every label set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: BTreeSet<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            // Kubernetes: NotIn also matches when the key is absent.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl LabelSelector {
    /// A selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(LabelSelector::everything().matches(&labels(&[])));
        assert!(LabelSelector::everything().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_needs_every_pair() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web"), ("tier", "fe")]),
            match_expressions: vec![],
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "web")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "be")])));
    }

    #[test]
    fn operators_follow_kubernetes() {
        let l = labels(&[("env", "prod")]);
        let empty = labels(&[]);
        let is = |r: Requirement, l: &BTreeMap<String, String>| {
            LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![r],
            }
            .matches(l)
        };
        assert!(is(req("env", Operator::In, &["prod", "dev"]), &l));
        assert!(!is(req("env", Operator::In, &["dev"]), &l));
        assert!(!is(req("env", Operator::In, &["prod"]), &empty));
        assert!(is(req("env", Operator::NotIn, &["dev"]), &l));
        assert!(!is(req("env", Operator::NotIn, &["prod"]), &l));
        assert!(is(req("env", Operator::NotIn, &["prod"]), &empty));
        assert!(is(req("env", Operator::Exists, &[]), &l));
        assert!(!is(req("env", Operator::Exists, &[]), &empty));
        assert!(!is(req("env", Operator::DoesNotExist, &[]), &l));
        assert!(is(req("env", Operator::DoesNotExist, &[]), &empty));
    }

    #[test]
    fn labels_and_expressions_are_anded() {
        let sel = LabelSelector {
            match_labels: labels(&[("app", "web")]),
            match_expressions: vec![req("env", Operator::In, &["prod"])],
        };
        assert!(sel.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("env", "dev")])));
        assert!(!sel.matches(&labels(&[("app", "db"), ("env", "prod")])));
    }
}
