//! One shared copy of each string of a small vocabulary that many objects
//! repeat: node names in EndpointSlices, namespaces in object keys. A
//! cluster has few nodes and namespaces and many Services and slices (1,000
//! Services with 10 slices each on 10 nodes: 30,000 node names, 10
//! distinct), so objects hold pointers to these instead of their own strings
//! (docs/benchmarks-speaker.md). Strings are never dropped: a set is bounded
//! by the names the cluster ever had while this speaker ran.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, LazyLock, Mutex};

/// Each distinct value once, shared: what the process-wide sets below are
/// made of, and what a state that shares values of its own keeps.
#[derive(Debug)]
pub struct SharedSet<T: ?Sized>(HashSet<Arc<T>>);

impl<T: ?Sized> Default for SharedSet<T> {
    fn default() -> Self {
        SharedSet(HashSet::new())
    }
}

impl<T: ?Sized + Hash + Eq> SharedSet<T>
where
    for<'a> Arc<T>: From<&'a T>,
{
    /// The shared copy of `value`, made on first sight.
    pub fn share(&mut self, value: &T) -> Arc<T> {
        if let Some(known) = self.0.get(value) {
            return known.clone();
        }
        let shared: Arc<T> = Arc::from(value);
        self.0.insert(shared.clone());
        shared
    }
}

type Global<T> = LazyLock<Mutex<SharedSet<T>>>;

fn share<T: ?Sized + Hash + Eq>(set: &Global<T>, value: &T) -> Arc<T>
where
    for<'a> Arc<T>: From<&'a T>,
{
    // Every insert leaves the set whole, so a poisoned lock is still usable.
    set.lock().unwrap_or_else(|p| p.into_inner()).share(value)
}

/// The shared copy of a namespace's name, for every watch's keys.
pub fn namespace(name: &str) -> Arc<str> {
    static NAMESPACES: Global<str> = LazyLock::new(Mutex::default);
    share(&NAMESPACES, name)
}

/// The shared copy of a peer's or an interface's name, as status objects
/// list them.
pub fn item(name: &str) -> Arc<str> {
    static ITEMS: Global<str> = LazyLock::new(Mutex::default);
    share(&ITEMS, name)
}

/// The shared copy of a list of peers or interfaces as status objects list
/// them: 10,000 objects naming the same peer hold one list.
pub fn items(names: &[String]) -> Arc<[Arc<str>]> {
    static LISTS: Global<[Arc<str>]> = LazyLock::new(Mutex::default);
    let list: Vec<Arc<str>> = names.iter().map(|n| item(n)).collect();
    share(&LISTS, list.as_slice())
}

/// The shared copy of a node's name, for EndpointSlices and status objects.
pub fn node(name: &str) -> Arc<str> {
    static NODES: Global<str> = LazyLock::new(Mutex::default);
    share(&NODES, name)
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
