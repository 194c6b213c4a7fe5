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

    #[test]
    fn deep_nesting_rejected() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_document(&deep, &Limits::default()).is_err());
        let deep_block: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert!(parse_document(&deep_block, &Limits::default()).is_err());
    }

    #[test]
    fn alias_bomb_rejected() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let err = parse_document(&bomb, &Limits::default()).unwrap_err();
        assert!(!err.message.is_empty());
    }

    #[test]
    fn huge_numbers_do_not_panic() {
        let r = parse_document("a: 123456789012345678901234567890123456789\nb: 1e999\n", &Limits::default());
        assert!(r.is_ok() || r.is_err());
        if let Ok(Some(v)) = r {
            assert!(v["a"].is_number() || v["a"].is_string());
        }
    }
}
