//! Processing order of a reprocess-all pass.
//!
//! controller.md §4 / allocation.md §10.3: Services with more ingress
//! entries first (2, then 1, then 0). Upstream leaves ties unspecified; ferrolb
//! breaks them as `ferrolb plan` does (cli-contract.md) so that a freshly
//! started controller and the offline plan agree: Services with addresses by
//! namespace then name, the rest by creation time (missing last), namespace,
//! name.

use std::cmp::{Ordering, Reverse};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassEntry<K> {
    pub key: K,
    pub namespace: String,
    pub name: String,
    pub ingress_count: usize,
    /// RFC 3339 creation timestamp (sorts chronologically as text).
    pub created: Option<String>,
}

pub fn sort<K>(entries: &mut [PassEntry<K>]) {
    entries.sort_by(compare);
}

fn compare<K>(a: &PassEntry<K>, b: &PassEntry<K>) -> Ordering {
    Reverse(a.ingress_count)
        .cmp(&Reverse(b.ingress_count))
        .then_with(|| {
            if a.ingress_count > 0 {
                Ordering::Equal
            } else {
                // None sorts last: compare (is_none, value).
                (a.created.is_none(), &a.created).cmp(&(b.created.is_none(), &b.created))
            }
        })
        .then_with(|| a.namespace.cmp(&b.namespace))
        .then_with(|| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ns: &str, name: &str, n: usize, created: Option<&str>) -> PassEntry<()> {
        PassEntry { key: (), namespace: ns.into(), name: name.into(), ingress_count: n, created: created.map(Into::into) }
    }

    #[test]
    fn order() {
        let mut v = vec![
            e("b", "late", 0, Some("2025-01-02T00:00:00Z")),
            e("a", "none", 0, None),
            e("z", "early", 0, Some("2025-01-01T00:00:00Z")),
            e("b", "one", 1, Some("2020-01-01T00:00:00Z")),
            e("a", "one", 1, Some("2029-01-01T00:00:00Z")),
            e("c", "two", 2, None),
        ];
        sort(&mut v);
        let names: Vec<_> = v.iter().map(|x| format!("{}/{}", x.namespace, x.name)).collect();
        assert_eq!(names, ["c/two", "a/one", "b/one", "z/early", "b/late", "a/none"]);
    }
}
