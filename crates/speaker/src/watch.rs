//! Watches that keep only what the speaker reads of each object.
//!
//! A speaker runs on every node and sees every Service and EndpointSlice of
//! the cluster; keeping whole objects (managed fields, annotations of other
//! tools, every port) would make its memory grow with everybody else's
//! metadata. Each watch projects an object to a small value on arrival and
//! keeps only that.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ferrolb_allocator::ServiceKey;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// Namespace and name; the namespace is empty for cluster-scoped objects.
/// The same shared-string key as a Service's, so a Service's key is copied
/// between caches, inputs and decision without allocating.
pub type ObjectKey = ServiceKey;

pub fn key_of<K: Resource>(obj: &K) -> ObjectKey {
    ObjectKey::new(crate::intern::namespace(obj.meta().namespace.as_deref().unwrap_or_default()), obj.name_any())
}

/// The projected objects of one kind, and whether the first list is complete.
pub struct Projected<V> {
    map: Arc<RwLock<HashMap<ObjectKey, V>>>,
    /// Bumped on every change of the map: a reader that planned from one
    /// generation knows nothing changed while it is still current.
    generation: Arc<AtomicU64>,
    /// Which objects changed since [`Projected::take_changes`] was last
    /// called; only for watches started with [`spawn_journaled`], whose one
    /// reader works from the changes instead of reading everything.
    journal: Option<Arc<Mutex<Changes>>>,
    synced: watch::Receiver<bool>,
}

impl<V> Clone for Projected<V> {
    fn clone(&self) -> Self {
        Projected { map: self.map.clone(), generation: self.generation.clone(), journal: self.journal.clone(), synced: self.synced.clone() }
    }
}

#[cfg(test)]
impl<V: PartialEq> Projected<V> {
    /// A journaled cache with no watch behind it, already synced.
    pub fn detached() -> Self {
        let (_, synced) = watch::channel(true);
        Projected { map: Arc::default(), generation: Arc::default(), journal: Some(Arc::default()), synced }
    }

    /// What the watch task does with an object event (`None` = deleted).
    pub fn put(&self, key: ObjectKey, value: Option<V>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.get(&key) == value.as_ref() {
            return;
        }
        match value {
            Some(v) => map.insert(key.clone(), v),
            None => map.remove(&key),
        };
        if let Some(journal) = &self.journal {
            journal.lock().unwrap_or_else(|p| p.into_inner()).record(&key);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }
}

/// What changed in a journaled watch since its reader last looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The whole map was replaced (the first list, or a relist after the
    /// watch fell behind): read everything.
    All,
    Keys(HashSet<ObjectKey>),
}

impl Default for Changes {
    /// Before the first list every object is new.
    fn default() -> Self {
        Changes::All
    }
}

impl Changes {
    fn record(&mut self, key: &ObjectKey) {
        if let Changes::Keys(keys) = self
            && !keys.contains(key)
        {
            keys.insert(key.clone());
        }
    }
}

impl<V: Clone> Projected<V> {
    /// A consistent copy of the values (the map is never held across awaits).
    pub fn values(&self) -> Vec<V> {
        self.read(|m| m.values().cloned().collect())
    }

    pub fn get(&self, key: &ObjectKey) -> Option<V> {
        self.read(|m| m.get(key).cloned())
    }
}

impl<V> Projected<V> {
    pub fn read<T>(&self, f: impl FnOnce(&HashMap<ObjectKey, V>) -> T) -> T {
        // A writer that panicked left a consistent map (every update is one
        // insert or remove), so a poisoned lock is still safe to read.
        let guard = self.map.read().unwrap_or_else(|p| p.into_inner());
        f(&guard)
    }

    /// The objects changed since the last call (everything on the first
    /// one). Take them before reading the map: a change landing in between
    /// is then read twice, never missed. A watch without a journal always
    /// says everything changed.
    pub fn take_changes(&self) -> Changes {
        match &self.journal {
            // Every update leaves the journal whole: a poisoned lock is usable.
            Some(journal) => std::mem::replace(&mut *journal.lock().unwrap_or_else(|p| p.into_inner()), Changes::Keys(HashSet::new())),
            None => Changes::All,
        }
    }

    /// Changes since the watch started (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Waits until the first complete list has arrived.
    pub async fn synced(&self) {
        let mut rx = self.synced.clone();
        // An error means the watch task ended, which happens only at shutdown.
        let _ = rx.wait_for(|done| *done).await;
    }
}

/// How a watch reports changes to its reader: by waking it, and for a
/// journaled watch also by the keys ([`Projected::take_changes`]).
pub struct Wake {
    pub notify: Arc<Notify>,
    pub journaled: bool,
}

/// Starts a watch of `api` on `tasks`, projecting each object with `project`
/// (`None` = not interesting, dropped) and waking `changed` on every change.
/// An update whose projection is unchanged (most updates: status written by
/// others, fields the speaker does not read) changes nothing and wakes
/// nobody.
pub fn spawn<K, V, P>(
    tasks: &mut JoinSet<()>,
    what: &'static str,
    api: Api<K>,
    config: watcher::Config,
    project: P,
    changed: Arc<Notify>,
) -> Projected<V>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    V: PartialEq + Send + Sync + 'static,
    P: Fn(&K) -> Option<V> + Send + 'static,
{
    spawn_with(tasks, what, api, config, move |_, obj| project(obj), Wake { notify: changed, journaled: false })
}

/// [`spawn`], where `wake` says whether to keep a journal of the changed
/// keys for the one reader ([`Projected::take_changes`]), and `project` is
/// given the object's key too: a value that holds its key shares the
/// cache's (one allocation of the name per object, not two).
pub fn spawn_with<K, V, P>(
    tasks: &mut JoinSet<()>,
    what: &'static str,
    api: Api<K>,
    config: watcher::Config,
    project: P,
    wake: Wake,
) -> Projected<V>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    V: PartialEq + Send + Sync + 'static,
    P: Fn(&ObjectKey, &K) -> Option<V> + Send + 'static,
{
    let changed = wake.notify;
    let journal: Option<Arc<Mutex<Changes>>> = wake.journaled.then(Arc::default);
    let map: Arc<RwLock<HashMap<ObjectKey, V>>> = Arc::default();
    let (synced_tx, synced) = watch::channel(false);
    let generation = Arc::new(AtomicU64::new(0));
    let (shared, bump, log) = (map.clone(), generation.clone(), journal.clone());
    let record = move |change: Option<&ObjectKey>| {
        if let Some(log) = &log {
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            match change {
                Some(key) => log.record(key),
                None => *log = Changes::All,
            }
        }
    };
    tasks.spawn(async move {
        let mut relist: Option<HashMap<ObjectKey, V>> = None;
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    // The backoff retries; say why the cache may lag meanwhile.
                    tracing::warn!(watch = what, error = %err, "watch failed, retrying with backoff");
                    continue;
                }
            };
            let mut map = shared.write().unwrap_or_else(|p| p.into_inner());
            match event {
                Event::Init => relist = Some(HashMap::new()),
                Event::InitApply(obj) => {
                    if let Some(fresh) = relist.as_mut() {
                        let key = key_of(&obj);
                        if let Some(value) = project(&key, &obj) {
                            fresh.insert(key, value);
                        }
                    }
                }
                Event::InitDone => {
                    if let Some(fresh) = relist.take() {
                        *map = fresh;
                    }
                    drop(map);
                    record(None);
                    bump.fetch_add(1, Ordering::Release);
                    let _ = synced_tx.send(true);
                    changed.notify_one();
                    continue;
                }
                Event::Apply(obj) => {
                    let key = key_of(&obj);
                    let value = project(&key, &obj);
                    if map.get(&key) == value.as_ref() {
                        continue;
                    }
                    match value {
                        Some(value) => map.insert(key.clone(), value),
                        None => map.remove(&key),
                    };
                    drop(map);
                    record(Some(&key));
                    bump.fetch_add(1, Ordering::Release);
                    changed.notify_one();
                    continue;
                }
                Event::Delete(obj) => {
                    let key = key_of(&obj);
                    if map.remove(&key).is_none() {
                        continue;
                    }
                    drop(map);
                    record(Some(&key));
                    bump.fetch_add(1, Ordering::Release);
                    changed.notify_one();
                    continue;
                }
            }
        }
    });
    Projected { map, generation, journal, synced }
}
