use super::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: if values.is_empty() { None } else { Some(values.iter().map(|v| v.to_string()).collect()) },
    }
}

fn sel(pairs: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_labels: if pairs.is_empty() { None } else { Some(labels(pairs)) },
        match_expressions: if exprs.is_empty() { None } else { Some(exprs) },
    }
}

#[test]
fn empty_selector_matches_everything() {
    let s = convert(&LabelSelector::default()).unwrap();
    assert!(s.matches(&labels(&[])));
    assert!(s.matches(&labels(&[("a", "b")])));
}

#[test]
fn operators() {
    let s = convert(&sel(
        &[("team", "a")],
        vec![
            expr("env", "In", &["prod", "stage"]),
            expr("tier", "NotIn", &["db"]),
            expr("zone", "Exists", &[]),
            expr("legacy", "DoesNotExist", &[]),
        ],
    ))
    .unwrap();
    assert!(s.matches(&labels(&[("team", "a"), ("env", "prod"), ("zone", "z")])));
    assert!(!s.matches(&labels(&[("team", "b"), ("env", "prod"), ("zone", "z")])));
    assert!(!s.matches(&labels(&[("team", "a"), ("env", "dev"), ("zone", "z")])));
    assert!(!s.matches(&labels(&[("team", "a"), ("env", "prod"), ("zone", "z"), ("tier", "db")])));
    assert!(!s.matches(&labels(&[("team", "a"), ("env", "prod")])));
    assert!(!s.matches(&labels(&[("team", "a"), ("env", "prod"), ("zone", "z"), ("legacy", "")])));
}

#[test]
fn bad_operator() {
    let err = convert(&sel(&[], vec![expr("a", "Equals", &["x"])])).unwrap_err();
    assert_eq!(err, "\"Equals\" is not a valid label selector operator");
}

#[test]
fn in_without_values() {
    let err = convert(&sel(&[], vec![expr("a", "In", &[])])).unwrap_err();
    assert!(err.contains("values set can't be empty"), "{err}");
}

#[test]
fn exists_with_values() {
    let err = convert(&sel(&[], vec![expr("a", "Exists", &["x"])])).unwrap_err();
    assert!(err.contains("values set must be empty for exists and does not exist"), "{err}");
}

#[test]
fn invalid_keys_and_values() {
    assert!(convert(&sel(&[("bad key", "v")], vec![])).unwrap_err().contains("name part must consist"));
    assert!(convert(&sel(&[("k", "bad value")], vec![])).unwrap_err().contains("a valid label must be"));
    assert!(convert(&sel(&[("Example.com/k", "v")], vec![])).unwrap_err().contains("prefix part"));
    assert!(convert(&sel(&[("/k", "v")], vec![])).unwrap_err().contains("prefix part must be non-empty"));
    assert!(convert(&sel(&[("a/b/c", "v")], vec![])).unwrap_err().contains("qualified name"));
    assert!(convert(&sel(&[(&"k".repeat(64), "v")], vec![])).unwrap_err().contains("63"));
    assert!(convert(&sel(&[("k", &"v".repeat(64))], vec![])).unwrap_err().contains("63"));
    assert!(convert(&sel(&[], vec![expr("k", "In", &["-x"])])).unwrap_err().contains("a valid label must be"));
    assert!(convert(&sel(&[("example.com/my_key.1", ""), ("k8s.io/x", "A-b_c.9")], vec![])).is_ok());
}

#[test]
fn duplicate_selectors_detected_with_sorted_values() {
    let a = sel(&[("x", "1")], vec![expr("env", "In", &["b", "a"])]);
    let b = sel(&[("x", "1")], vec![expr("env", "In", &["a", "b"])]);
    let err = check_duplicates("namespaceSelectors", &[a, b]).unwrap_err();
    assert_eq!(
        err,
        "duplicate definition of namespaceSelectors \"&LabelSelector{MatchLabels:map[string]string{x: 1,},MatchExpressions:[]LabelSelectorRequirement{LabelSelectorRequirement{Key:env,Operator:In,Values:[a b],},},}\""
    );
}

#[test]
fn expression_order_matters_for_duplicates() {
    let a = sel(&[], vec![expr("a", "Exists", &[]), expr("b", "Exists", &[])]);
    let b = sel(&[], vec![expr("b", "Exists", &[]), expr("a", "Exists", &[])]);
    assert!(check_duplicates("serviceSelectors", &[a, b]).is_ok());
}

#[test]
fn duplicate_value_in_expression() {
    let a = sel(&[], vec![expr("env", "In", &["a", "a"])]);
    assert_eq!(
        check_duplicates("nodeSelectors", &[a]).unwrap_err(),
        "duplicate definition of match expression value in label selector \"a\""
    );
}

#[test]
fn duplicate_expression_in_selector() {
    let a = sel(&[], vec![expr("env", "In", &["a", "b"]), expr("env", "In", &["b", "a"])]);
    assert_eq!(
        check_duplicates("nodeSelectors", &[a]).unwrap_err(),
        "duplicate definition of match expressions \"&LabelSelectorRequirement{Key:env,Operator:In,Values:[a b],}\""
    );
}

#[test]
fn duplicate_names() {
    let names = vec!["a".to_string(), "b".to_string(), "a".to_string()];
    assert_eq!(
        check_duplicate_names("ipAddressPools", &names).unwrap_err(),
        "duplicate definition of ipAddressPools \"a\""
    );
    assert!(check_duplicate_names("peers", &names[..2]).is_ok());
}
