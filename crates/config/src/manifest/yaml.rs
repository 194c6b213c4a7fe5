//! One YAML document to a JSON value under hard resource limits.

use serde_json::Value;

/// Resource limits of the manifest reader; defaults suit any real configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file read.
    pub max_file_bytes: u64,
    /// Sum of all files read.
    pub max_total_bytes: u64,
    /// Nodes (scalars, sequences, mappings) of one document after alias expansion.
    pub max_document_nodes: usize,
    /// Nodes of all documents together, so aliases cannot multiply memory.
    pub max_total_nodes: usize,
    /// Nesting depth of one document.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 20,
            max_total_bytes: 256 << 20,
            max_document_nodes: 250_000,
            max_total_nodes: 10_000_000,
            max_depth: 64,
        }
    }
}

fn options(limits: &Limits) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = limits.max_depth;
    budget.max_nodes = limits.max_document_nodes;
    budget.max_reader_input_bytes = usize::try_from(limits.max_file_bytes).ok();
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.with_snippet = false;
    // YAML 1.2 core booleans: `y`, `no`, `on` stay strings (label values, names).
    opts.strict_booleans = true;
    opts.alias_limits.max_total_replayed_events = limits.max_document_nodes;
    opts.alias_limits.max_replay_stack_depth = limits.max_depth;
    opts
}

/// A parse failure with its line inside the document, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

/// Parses one document; `Ok(None)` for an empty or null document.
pub fn parse_document(text: &str, limits: &Limits) -> Result<Option<Value>, YamlError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options::<Value>(text, options(limits)).map_err(|e| {
        let inner = e.without_snippet();
        YamlError {
            line: inner.location().map(|l| l.line() as usize).filter(|l| *l > 0),
            message: inner.to_string(),
        }
    })?;
    let mut docs = docs.into_iter().filter(|v| !v.is_null());
    let first = docs.next();
    if docs.next().is_some() {
        // The splitter guarantees one document per chunk; reaching here means the
        // marker syntax fooled it, so refuse rather than guess.
        return Err(YamlError { line: None, message: "more than one YAML document in one section".into() });
    }
    Ok(first)
}

/// Number of nodes of a value, for the total-node budget.
pub fn count_nodes(value: &Value) -> usize {
    let mut count = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        match v {
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_mapping() {
        let v = parse_document("a: 1\nb: [x, y]\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(v, serde_json::json!({"a": 1, "b": ["x", "y"]}));
        assert_eq!(count_nodes(&v), 5);
    }

    #[test]
    fn yaml11_booleans_stay_strings() {
        let v = parse_document("a: [y, no, on, true]\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(v, serde_json::json!({"a": ["y", "no", "on", true]}));
    }

    #[test]
    fn null_and_empty_documents() {
        assert_eq!(parse_document("", &Limits::default()), Ok(None));
        assert_eq!(parse_document("---\n", &Limits::default()), Ok(None));
        assert_eq!(parse_document("# c\n", &Limits::default()), Ok(None));
        assert_eq!(parse_document("~\n", &Limits::default()), Ok(None));
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_document("a: 1\nb: [1, 2\n", &Limits::default()).unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
    }

    #[test]
    fn json_is_accepted() {
        let v = parse_document("{\"kind\": \"List\", \"items\": []}", &Limits::default()).unwrap().unwrap();
        assert_eq!(v["kind"], "List");
    }

    fn flow(depth: usize) -> String {
        format!("{}x{}", "[".repeat(depth), "]".repeat(depth))
    }

    fn block(depth: usize) -> String {
        (0..depth).map(|i| format!("{}a:\n", " ".repeat(i))).collect()
    }

    /// `max_depth` is exact: that many levels parse, one more is refused
    /// with the depth it reached, in flow and in block style.
    #[test]
    fn depth_limit_is_exact() {
        let limits = Limits { max_depth: 8, ..Limits::default() };
        for text in [flow(8), block(8)] {
            assert!(parse_document(&text, &limits).is_ok(), "{text}");
        }
        let err = parse_document(&flow(9), &limits).unwrap_err();
        assert_eq!(err.message, "budget breached: Depth { depth: 9 } at line 1, column 9");
        let err = parse_document(&block(9), &limits).unwrap_err();
        assert_eq!(err.message, "budget breached: Depth { depth: 9 } at line 9, column 9");
        assert_eq!(err.line, Some(9));
    }

    #[test]
    fn deep_nesting_stops_at_the_default_depth() {
        let defaults = Limits::default();
        assert!(parse_document(&flow(defaults.max_depth), &defaults).is_ok());
        let err = parse_document(&flow(100), &defaults).unwrap_err();
        assert!(err.message.starts_with("budget breached: Depth { depth: 65 }"), "{err:?}");
        let err = parse_document(&block(200), &defaults).unwrap_err();
        assert!(err.message.starts_with("budget breached: Depth { depth: 65 }"), "{err:?}");
        // Far deeper flow nesting meets the parser's own recursion guard
        // (256 levels) before any event reaches the depth budget.
        let err = parse_document(&flow(10_000), &defaults).unwrap_err();
        assert_eq!(err.message, "recursion limit exceeded at line 1, column 256");
    }

    /// Each level multiplies the previous one by ten through aliases.
    fn alias_bomb(levels: usize) -> String {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..levels {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        bomb
    }

    /// Alias expansion counts against `max_document_nodes`: 10 levels of
    /// tenfold expansion stop at the first event past the budget.
    #[test]
    fn alias_bomb_stops_at_the_node_budget() {
        let err = parse_document(&alias_bomb(12), &Limits::default()).unwrap_err();
        assert!(
            err.message.starts_with("alias replay limit exceeded: total_replayed_events=250001 > 250000 "),
            "{err:?}"
        );
        let small = Limits { max_document_nodes: 1000, ..Limits::default() };
        // Two levels replay 10 x 11 events: within 1000.
        assert!(parse_document(&alias_bomb(2), &small).is_ok());
        let err = parse_document(&alias_bomb(3), &small).unwrap_err();
        assert!(err.message.starts_with("alias replay limit exceeded: total_replayed_events=1001 > 1000 "), "{err:?}");
    }

    #[test]
    fn node_budget_is_exact() {
        let limits = Limits { max_document_nodes: 20, ..Limits::default() };
        // A mapping, a key, a sequence and its items: 3 + items nodes.
        let items = |n: usize| format!("a: [{}]\n", (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(","));
        assert!(parse_document(&items(17), &limits).is_ok());
        let err = parse_document(&items(18), &limits).unwrap_err();
        assert!(err.message.starts_with("budget breached: Nodes { nodes: 21 }"), "{err:?}");
    }

    /// Integers beyond 64 bits become floats (serde_json's arbitrary
    /// precision is off), so a typed field refuses them by type; a float
    /// that overflows to infinity, and YAML's `.inf`/`.nan`, are refused.
    #[test]
    fn huge_numbers() {
        let v = parse_document("a: 123456789012345678901234567890123456789\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(v["a"].as_f64(), Some(1.2345678901234568e38));
        assert!(!v["a"].is_i64() && !v["a"].is_u64());
        let v = parse_document("a: 18446744073709551615\nb: 18446744073709551616\n", &Limits::default()).unwrap().unwrap();
        assert_eq!(v["a"].as_u64(), Some(u64::MAX));
        assert_eq!(v["b"].as_u64(), None);
        for (text, shown) in [("b: 1e999\n", "1e999"), ("b: -1e999\n", "-1e999"), ("b: .inf\n", ".inf"), ("b: .nan\n", ".nan")] {
            let err = parse_document(text, &Limits::default()).unwrap_err();
            assert_eq!(err.message, format!("non-finite float `{shown}` rejected by the configured policy at line 1, column 4"));
        }
    }
}
