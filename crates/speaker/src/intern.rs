//! One shared copy of each string of a small vocabulary that many objects
//! repeat: node names in EndpointSlices, namespaces in object keys. A
//! cluster has few nodes and namespaces and many Services and slices (1,000
//! Services with 10 slices each on 10 nodes: 30,000 node names, 10
//! distinct), so objects hold pointers to these instead of their own strings
//! (docs/benchmarks-speaker.md). Strings are never dropped: a set is bounded
//! by the names the cluster ever had while this speaker ran.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};

#[derive(Debug, Default)]
struct Interner(Mutex<HashSet<Arc<str>>>);

impl Interner {
    fn intern(&self, name: &str) -> Arc<str> {
        // Every insert leaves the set whole, so a poisoned lock is still usable.
        let mut names = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = names.get(name) {
            return known.clone();
        }
        let name: Arc<str> = Arc::from(name);
        names.insert(name.clone());
        name
    }
}

/// The shared copy of a namespace's name, for every watch's keys.
pub fn namespace(name: &str) -> Arc<str> {
    static NAMESPACES: LazyLock<Interner> = LazyLock::new(Interner::default);
    NAMESPACES.intern(name)
}

/// The shared copy of a peer's or an interface's name, as status objects
/// list them.
pub fn item(name: &str) -> Arc<str> {
    static ITEMS: LazyLock<Interner> = LazyLock::new(Interner::default);
    ITEMS.intern(name)
}

/// The shared copy of a list of peers or interfaces as status objects list
/// them: 10,000 objects naming the same peer hold one list.
pub fn items(names: &[String]) -> Arc<[Arc<str>]> {
    static LISTS: LazyLock<Mutex<HashSet<Arc<[Arc<str>]>>>> = LazyLock::new(Mutex::default);
    let list: Vec<Arc<str>> = names.iter().map(|n| item(n)).collect();
    // Every insert leaves the set whole, so a poisoned lock is still usable.
    let mut lists = LISTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = lists.get(list.as_slice()) {
        return known.clone();
    }
    let list: Arc<[Arc<str>]> = list.into();
    lists.insert(list.clone());
    list
}

/// The shared copy of a node's name, for EndpointSlices and status objects.
pub fn node(name: &str) -> Arc<str> {
    static NODES: LazyLock<Interner> = LazyLock::new(Interner::default);
    NODES.intern(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_copy() {
        let (a, b) = (node("n1"), node(&String::from("n1")));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &node("n2")));
        assert!(Arc::ptr_eq(&namespace("default"), &namespace("default")));
        let (x, y) = (items(&["r1".into(), "r2".into()]), items(&["r1".into(), "r2".into()]));
        assert!(Arc::ptr_eq(&x, &y) && Arc::ptr_eq(&x[0], &item("r1")));
        assert!(!Arc::ptr_eq(&x, &items(&["r2".into(), "r1".into()])), "order is kept, as written");
    }
}
