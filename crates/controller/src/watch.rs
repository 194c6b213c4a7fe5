//! Always-on caches (reflectors) of what the controller reads, and the
//! change notifications that drive the reconcile session.
//!
//! The caches run whether or not this replica leads, so a standby that takes
//! over starts from warm caches. Notifications go to the current session
//! only; a session that starts later begins with a full pass anyway.
//!
//! The notification channel is bounded ([`CHANGE_CAPACITY`]) with
//! back-pressure: when it is full, a reflector waits before it takes its
//! next watch event, so nothing is dropped and its cache never runs ahead
//! of what the session was told. The session drains the whole channel on
//! every turn of its loop and coalesces it (a set per kind), so the channel
//! fills only while the session is busy acting on a batch.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use ferrolb_api::v1beta1::{Community, ConfigurationState, IPAddressPool};
use futures::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};

use crate::service_record::{self, ServiceCache};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// `namespace/name` of a Service. Shared, not copied: the cache, the
/// step's tables and the write queue each hold it for every Service, and a
/// clone is a reference count (the cache interns namespaces).
pub type ServiceId = (Arc<str>, Arc<str>);

/// What changed, at the granularity the session acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A Service was added, modified or deleted.
    Service(ServiceId),
    /// The Service cache was rebuilt from a fresh list (watch expired or
    /// reconnected); deletions in between may have gone unnoticed.
    ServicesRelisted,
    /// Pools, Communities or Namespaces changed: rebuild the pool configuration.
    Config,
    /// An IPAddressPool was created or modified (its status may need a rewrite).
    Pool(String),
    /// ConfigurationState/controller was created, modified or deleted.
    ConfigState,
}

/// Notifications that may wait for the session before reflectors pause.
pub const CHANGE_CAPACITY: usize = 1024;

/// Where notifications go: the current session, if any.
#[derive(Clone)]
pub struct ChangeRouter {
    current: Arc<Mutex<Option<mpsc::Sender<Change>>>>,
    capacity: usize,
}

impl Default for ChangeRouter {
    fn default() -> Self {
        ChangeRouter::with_capacity(CHANGE_CAPACITY)
    }
}

impl ChangeRouter {
    /// A router whose channels hold at most `capacity` (at least 1) notifications.
    pub fn with_capacity(capacity: usize) -> Self {
        ChangeRouter { current: Arc::default(), capacity: capacity.max(1) }
    }

    /// Routes every later notification to a new receiver.
    pub fn subscribe(&self) -> mpsc::Receiver<Change> {
        let (tx, rx) = mpsc::channel(self.capacity);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    pub fn unsubscribe(&self) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Delivers `change` to the current session, waiting while its channel
    /// is full; returns at once when no session listens.
    pub async fn send(&self, change: Change) {
        let tx = self.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tx) = tx {
            // A closed receiver means the session just ended; the next one
            // starts with a full pass.
            let _ = tx.send(change).await;
        }
    }
}

#[derive(Clone)]
pub struct Caches {
    pub services: ServiceCache,
    pub namespaces: Store<Namespace>,
    pub pools: Store<IPAddressPool>,
    pub communities: Store<Community>,
    pub config_states: Store<ConfigurationState>,
}

impl Caches {
    /// Waits until every cache has completed its first list.
    pub async fn ready(&self) {
        // A dropped writer means the reflector task ended, which only happens
        // at shutdown; the session is being torn down then.
        self.services.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.pools.wait_until_ready().await;
        let _ = self.communities.wait_until_ready().await;
        let _ = self.config_states.wait_until_ready().await;
    }
}

/// Name of the controller's ConfigurationState object.
pub const CONFIG_STATE_NAME: &str = ferrolb_runtime::config_state::CONTROLLER_OBJECT;

/// Starts the reflectors on `tasks`; they run until the set is dropped.
pub fn start(client: &Client, namespace: &str, router: &ChangeRouter, tasks: &mut JoinSet<()>) -> Caches {
    // Services are cached as records of the fields the controller reads
    // (service_record), not as the objects: kube's reflector store is not used.
    let (services, mut writer) = service_record::cache();
    let stream = watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map_ok(move |ev| writer.apply(ev));
    tasks.spawn(drive("services", stream, router.clone(), |ev, out| match ev {
        Event::Apply(id) | Event::Delete(id) => out.push(Change::Service(id.clone())),
        Event::InitDone => out.push(Change::ServicesRelisted),
        Event::Init | Event::InitApply(_) => {}
    }));
    let namespaces = spawn_reflector(
        tasks,
        "namespaces",
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        config_change,
    );
    let pools = spawn_reflector(
        tasks,
        "ipaddresspools",
        Api::<IPAddressPool>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        |ev, out| {
            if let Event::Apply(p) = ev {
                out.push(Change::Pool(p.name_any()));
            }
            config_change(ev, out);
        },
    );
    let communities = spawn_reflector(
        tasks,
        "communities",
        Api::<Community>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
        drop_managed_fields,
        router.clone(),
        config_change,
    );
    let config_states = spawn_reflector(
        tasks,
        "configurationstates",
        Api::<ConfigurationState>::namespaced(client.clone(), namespace),
        watcher::Config::default().fields(&format!("metadata.name={CONFIG_STATE_NAME}")),
        drop_managed_fields,
        router.clone(),
        |ev, out| match ev {
            Event::Apply(_) | Event::Delete(_) | Event::InitDone => out.push(Change::ConfigState),
            Event::Init | Event::InitApply(_) => {}
        },
    );
    Caches { services, namespaces, pools, communities, config_states }
}

fn config_change<K>(ev: &Event<K>, out: &mut Vec<Change>) {
    match ev {
        Event::Apply(_) | Event::Delete(_) | Event::InitDone => out.push(Change::Config),
        Event::Init | Event::InitApply(_) => {}
    }
}

/// managedFields are never read and are the bulk of a large object.
fn drop_managed_fields<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

fn spawn_reflector<K, F>(
    tasks: &mut JoinSet<()>,
    what: &'static str,
    api: Api<K>,
    cfg: watcher::Config,
    prune: fn(&mut K),
    router: ChangeRouter,
    notify: F,
) -> Store<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
    F: Fn(&Event<K>, &mut Vec<Change>) + Send + 'static,
{
    let (reader, writer) = reflector::store();
    // What the controller never reads is dropped before caching.
    let stream = watcher(api, cfg).default_backoff().modify(prune);
    let stream = reflector::reflector(writer, stream);
    tasks.spawn(drive(what, stream, router, notify));
    reader
}

async fn drive<K, S, F>(what: &'static str, stream: S, router: ChangeRouter, notify: F)
where
    S: Stream<Item = Result<Event<K>, watcher::Error>>,
    F: Fn(&Event<K>, &mut Vec<Change>),
{
    let mut stream = std::pin::pin!(stream);
    let mut changes = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                notify(&ev, &mut changes);
                // Back-pressure: the next watch event is taken only once
                // the session has room for these.
                for change in changes.drain(..) {
                    router.send(change).await;
                }
            }
            // The watcher retries with backoff (and relists on 410 Gone);
            // errors are only reported.
            Err(error) => tracing::warn!(resource = what, %error, "watch failed, retrying"),
        }
    }
}

use kube::runtime::watcher::watcher;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn svc(i: usize) -> Change {
        Change::Service(("ns".into(), format!("s{i}").into()))
    }

    #[tokio::test]
    async fn a_full_channel_makes_the_sender_wait_and_loses_nothing() {
        let router = ChangeRouter::with_capacity(4);
        // Nobody listens: sends return at once.
        router.send(svc(0)).await;
        let mut rx = router.subscribe();
        for i in 0..4 {
            router.send(svc(i)).await;
        }
        let sender = router.clone();
        let blocked = tokio::spawn(async move {
            for i in 4..10 {
                sender.send(svc(i)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!blocked.is_finished(), "the sender waits for room");
        assert_eq!(rx.len(), 4, "the channel holds no more than its bound");
        let mut got = Vec::new();
        while got.len() < 10 {
            got.push(rx.recv().await.expect("change"));
        }
        blocked.await.expect("sender");
        assert_eq!(got, (0..10).map(svc).collect::<Vec<_>>(), "every change arrives, in order");
        // A session that ended (receiver dropped) does not block reflectors.
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), router.send(svc(11))).await.expect("no wait on a closed channel");
        router.unsubscribe();
        router.send(svc(12)).await;
    }
}
