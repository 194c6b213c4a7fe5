//! Kubernetes Events (core/v1) with aggregation and rate limiting, so an
//! object that stays in a failing state does not produce an Event per
//! reprocess. `source.component` and `reportingComponent` are the caller's
//! (`metallb-controller`, `metallb-speaker`).
//!
//! - An event identical to one already emitted for the same object (same
//!   type, reason and message) within [`AGGREGATION_WINDOW`] is not created
//!   again: its `count` and `lastTimestamp` are increased in memory and
//!   written with one PATCH at most every `flush_interval`.
//! - Distinct new events per object pass a token bucket (burst 25, one more
//!   every 5 minutes, client-go's defaults), so a flapping object cannot
//!   flood the API server either.
//!
//! Sending never blocks the reconcile loop: events go through a channel to a
//! background task with a few requests in flight. While the caller's status
//! writes are queued (the [`Backlog`] it publishes), new Event requests
//! wait: during a burst the API server's capacity goes to the status first,
//! and the events follow.
//!
//! Memory is bounded with back-pressure, nothing is dropped for lack of
//! room: the task holds at most [`MAX_QUEUED`] requests not yet started and
//! stops taking occurrences from the channel while it holds that many; the
//! channel holds at most [`CHANNEL_CAPACITY`] occurrences sent with
//! [`Recorder::try_record`] or [`Slot::record`], so a producer that uses
//! them waits ([`Recorder::reserve`]) instead of growing the queue. When the
//! task's queue is full, Event requests start even while status writes are
//! queued, so a waiting producer always gets room. [`Recorder::record`]
//! never waits and is not counted against the channel's bound: it is for
//! producers with few events. A queued request holds only what its Event
//! is made of (the object reference shared with the aggregation entry);
//! the Event object is built when a sender takes the request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{Semaphore, SemaphorePermit, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod occurrence;
use occurrence::Occurrence;

/// A repeat later than this after the previous occurrence starts a new Event object.
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);

const BURST: f64 = 25.0;
const REFILL_PER_SEC: f64 = 1.0 / 300.0;
const MAX_IN_FLIGHT: usize = 4;
/// Events (and per-object rate limits) remembered for aggregation. client-go's
/// correlator keeps the same number (`maxLruCacheEntries`) in its LRU caches;
/// beyond it the oldest are forgotten, so a repeat of a forgotten event
/// creates a new Event instead of raising a count. Without a bound the table
/// grows with the Services (one `IPAllocated` each, kept for the 10-minute
/// window, about 1 KiB each: 100 MiB for 100,000 Services after a restart).
const MAX_ENTRIES: usize = 4096;
/// Event requests the task holds before it stops reading occurrences.
pub const MAX_QUEUED: usize = 1024;
/// Occurrences sent through the bounded path that may wait in the channel.
pub const CHANNEL_CAPACITY: usize = 1024;

/// The `type` of a core/v1 Event (defined once, in `ferrolb_api`).
pub use ferrolb_api::events::EventType;

/// One occurrence: what is recorded against an object. Shared strings: the
/// recorder keeps a copy per aggregation entry, pending request and changed
/// entry (thousands after a burst), and a component that records the same
/// text for many objects (a speaker's `nodeAssigned` for each of 10,000
/// Services) can hand the same one to every occurrence.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventSpec {
    /// `type`.
    pub type_: EventType,
    /// `reason`: a short CamelCase word (`IPAllocated`, `AllocationFailed`).
    pub reason: Arc<str>,
    /// `message`: the human-readable text.
    pub message: Arc<str>,
}

/// Identity of an object for aggregation: uid when known, else namespace/name.
/// Shared by the object's aggregation entries, rate-limit bucket and queued
/// requests (thousands of each after a burst), not copied.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ObjectKey(Arc<str>);

impl ObjectKey {
    fn of(r: &ObjectReference) -> Self {
        match r.uid.as_deref().filter(|u| !u.is_empty()) {
            Some(uid) => ObjectKey(uid.into()),
            None => ObjectKey(
                format!(
                    "{}/{}/{}",
                    r.kind.as_deref().unwrap_or(""),
                    r.namespace.as_deref().unwrap_or(""),
                    r.name.as_deref().unwrap_or("")
                )
                .into(),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct EventKey {
    object: ObjectKey,
    spec: EventSpec,
}

/// What to do with one occurrence of an event.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    Create,
    Aggregate,
    Suppress,
}

/// Pure aggregation / rate-limit bookkeeping (the I/O lives in [`RecorderTask`]).
#[derive(Default)]
struct Aggregator {
    /// Boxed entries: the table is sized for up to [`MAX_ENTRIES`] keys
    /// (twice that in slots), and most slots are empty.
    entries: HashMap<EventKey, Box<Entry>>,
    buckets: HashMap<ObjectKey, Bucket>,
    dirty: HashSet<EventKey>,
}

#[derive(Debug)]
struct Entry {
    /// Shared with the queued request that creates or updates the Event.
    involved: Arc<ObjectReference>,
    /// Namespace and name of the Event object once created.
    object: Option<(String, String)>,
    count: i32,
    written: i32,
    first_seen: Timestamp,
    last_seen: Timestamp,
    last_seen_at: Instant,
    last_write_at: Instant,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Aggregator {
    fn decide(&mut self, key: &EventKey, involved: &ObjectReference, now: Instant, wall: Timestamp) -> Decision {
        if let Some(e) = self.entries.get_mut(key)
            && now.duration_since(e.last_seen_at) < AGGREGATION_WINDOW
        {
            e.count = e.count.saturating_add(1);
            e.last_seen = wall;
            e.last_seen_at = now;
            self.dirty.insert(key.clone());
            return Decision::Aggregate;
        }
        let bucket = self
            .buckets
            .entry(key.object.clone())
            .or_insert(Bucket { tokens: BURST, at: now });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * REFILL_PER_SEC).min(BURST);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Decision::Suppress;
        }
        bucket.tokens -= 1.0;
        if self.buckets.len() > MAX_ENTRIES {
            forget_oldest(&mut self.buckets, |b| b.at);
        }
        if self.entries.len() >= MAX_ENTRIES {
            forget_oldest(&mut self.entries, |e| e.last_seen_at);
        }
        self.entries.insert(
            key.clone(),
            Box::new(Entry {
                involved: Arc::new(involved.clone()),
                object: None,
                count: 1,
                written: 1,
                first_seen: wall,
                last_seen: wall,
                last_seen_at: now,
                last_write_at: now,
            }),
        );
        self.dirty.remove(key);
        Decision::Create
    }

    /// Entries whose count must be written now.
    fn due(&mut self, now: Instant, interval: Duration) -> Vec<Job> {
        let mut out = Vec::new();
        self.dirty.retain(|k| {
            let Some(e) = self.entries.get_mut(k) else { return false };
            let Some((ns, name)) = e.object.clone() else { return true };
            if e.count <= e.written {
                return false;
            }
            if now.duration_since(e.last_write_at) < interval {
                return true;
            }
            e.written = e.count;
            e.last_write_at = now;
            out.push(Job::Patch {
                key: k.clone(),
                ns,
                name,
                count: e.count,
                first: e.first_seen,
                last: e.last_seen,
                involved: e.involved.clone(),
            });
            false
        });
        out
    }

    /// Forgets entries outside the aggregation window and idle buckets.
    fn expire(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| now.duration_since(e.last_seen_at) < AGGREGATION_WINDOW);
        let full_after = Duration::from_secs_f64(BURST / REFILL_PER_SEC);
        self.buckets.retain(|_, b| now.duration_since(b.at) < full_after);
        let entries = &self.entries;
        self.dirty.retain(|k| entries.contains_key(k));
    }
}

/// Forgets the oldest quarter of `map` by `age` (at least one entry), so
/// that bounding a full table costs one sort per `MAX_ENTRIES / 4` inserts
/// rather than a scan per insert.
fn forget_oldest<K, V>(map: &mut HashMap<K, V>, age: impl Fn(&V) -> Instant) {
    let mut ages: Vec<Instant> = map.values().map(&age).collect();
    if ages.is_empty() {
        return;
    }
    ages.sort_unstable();
    let cut = ages[(ages.len() / 4).min(ages.len() - 1)];
    map.retain(|_, v| age(v) > cut);
}

/// Number of status writes queued or in flight, published by the caller;
/// while it is above zero no new Event request starts.
#[derive(Clone, Default)]
pub struct Backlog(Arc<AtomicUsize>);

impl Backlog {
    /// Publishes the number of status writes queued or in flight.
    pub fn set(&self, n: usize) {
        self.0.store(n, Ordering::Relaxed);
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// Namespace and name of the Event written.
type JobResult = Result<(String, String), kube::Error>;

/// Handle used by the reconcile loop. Cloning is cheap.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Occurrence>,
    /// Free places of the bounded path.
    room: Arc<Semaphore>,
}

/// A place in the channel, reserved by [`Recorder::reserve`].
pub struct Slot<'a> {
    permit: SemaphorePermit<'a>,
    tx: &'a mpsc::UnboundedSender<Occurrence>,
}

impl Slot<'_> {
    /// Queues one occurrence in the reserved place.
    pub fn record(self, object: ObjectReference, spec: EventSpec) {
        self.permit.forget();
        // The receiver lives as long as the session; a send after it ended is moot.
        let _ = self.tx.send(Occurrence::pack(&object, spec, true));
    }
}

impl Recorder {
    /// Queues one occurrence; never blocks, never drops, and is not counted
    /// against [`CHANNEL_CAPACITY`] (for producers with few events; a
    /// producer of bursts uses [`Recorder::try_record`]).
    pub fn record(&self, object: &ObjectReference, spec: EventSpec) {
        // The receiver lives as long as the session; a send after it ended is moot.
        let _ = self.tx.send(Occurrence::pack(object, spec, false));
    }

    /// Queues one occurrence if the channel has room; otherwise hands it
    /// back, for the caller to keep until [`Recorder::reserve`] gives room.
    #[allow(clippy::result_large_err)]
    pub fn try_record(&self, object: ObjectReference, spec: EventSpec) -> Result<(), (ObjectReference, EventSpec)> {
        match self.room.try_acquire() {
            Ok(permit) => {
                Slot { permit, tx: &self.tx }.record(object, spec);
                Ok(())
            }
            Err(_) => Err((object, spec)),
        }
    }

    /// Waits for a place in the channel (cancel-safe).
    pub async fn reserve(&self) -> Slot<'_> {
        match self.room.acquire().await {
            Ok(permit) => Slot { permit, tx: &self.tx },
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        }
    }
}

/// Who writes the Events, and how often aggregated counts are written.
#[derive(Clone, Debug)]
pub struct RecorderConfig {
    /// `source.component` and `reportingComponent`, e.g. `metallb-controller`.
    pub component: String,
    /// `reportingInstance` (the Pod or leader identity).
    pub instance: String,
    /// Aggregated counts of one Event are written at most this often.
    pub flush_interval: Duration,
}

/// Counters the recorder increments; register them under the process's names.
#[derive(Clone, Debug, Default)]
pub struct EventCounters {
    /// Event objects created.
    pub emitted: Counter,
    /// Occurrences folded into the count of an existing Event.
    pub aggregated: Counter,
}

/// The background half of [`recorder`]: run it on a task.
pub struct RecorderTask {
    client: Client,
    cfg: RecorderConfig,
    counters: EventCounters,
    rx: mpsc::UnboundedReceiver<Occurrence>,
    room: Arc<Semaphore>,
    backlog: Backlog,
    agg: Aggregator,
    queue: VecDeque<Job>,
    in_flight: JoinSet<(Job, JobResult)>,
    name_clock: i64,
}

/// A request waiting for a sender. A `Create` holds only what the Event is
/// made of; the Event object itself is built when a sender takes the job
/// ([`RecorderTask::start_jobs`]), so a full queue costs tens of bytes per
/// request plus the shared object reference, not a whole Event.
#[derive(Clone, Debug)]
enum Job {
    Create { key: EventKey, involved: Arc<ObjectReference>, count: i32, first: Timestamp, last: Timestamp },
    Patch { key: EventKey, ns: String, name: String, count: i32, first: Timestamp, last: Timestamp, involved: Arc<ObjectReference> },
}

/// What a sender sends: the Event built from a `Create` job, or a count update.
enum Request {
    Create(Box<Event>),
    Patch { ns: String, name: String, count: i32, last: Timestamp },
}

/// A recorder handle and the task that writes what it records.
pub fn recorder(
    client: Client,
    cfg: RecorderConfig,
    counters: EventCounters,
    backlog: Backlog,
) -> (Recorder, RecorderTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(CHANNEL_CAPACITY));
    (
        Recorder { tx, room: room.clone() },
        RecorderTask {
            client,
            cfg,
            counters,
            rx,
            room,
            backlog,
            agg: Aggregator::default(),
            queue: VecDeque::new(),
            in_flight: JoinSet::new(),
            name_clock: 0,
        },
    )
}

impl RecorderTask {
    /// Writes until `cancel` or until every [`Recorder`] is dropped.
    pub async fn run(mut self, cancel: CancellationToken) {
        // Also how soon deferred events start once the status writes are done.
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut expire = tokio::time::interval(Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                // Back-pressure: occurrences wait in the channel (and their
                // producers for room) while the queue is full.
                msg = self.rx.recv(), if self.accepts() => match msg {
                    Some(o) => {
                        if o.counted {
                            self.room.add_permits(1);
                        }
                        let (object, spec) = o.unpack();
                        self.observe(object, spec)
                    }
                    None => return,
                },
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Ok((job, result)) = done {
                        self.finished(job, result);
                    }
                }
                _ = tick.tick() => {
                    // Counts not taken now stay due for a later tick.
                    if self.accepts() {
                        let now = Instant::now();
                        self.queue.extend(self.agg.due(now, self.cfg.flush_interval));
                    }
                }
                _ = expire.tick() => self.agg.expire(Instant::now()),
            }
            self.start_jobs();
        }
    }

    fn observe(&mut self, obj: ObjectReference, spec: EventSpec) {
        let key = EventKey { object: ObjectKey::of(&obj), spec };
        let wall = Timestamp::now();
        match self.agg.decide(&key, &obj, Instant::now(), wall) {
            Decision::Create => {
                // The entry just made holds the reference: share it.
                let involved = match self.agg.entries.get(&key) {
                    Some(e) => e.involved.clone(),
                    None => Arc::new(obj),
                };
                self.queue.push_back(Job::Create { key, involved, count: 1, first: wall, last: wall });
            }
            Decision::Aggregate => {
                self.counters.aggregated.inc();
            }
            Decision::Suppress => tracing::debug!(
                object = ?obj.name, reason = %key.spec.reason,
                "event rate limit reached for object, dropping event"
            ),
        }
    }

    /// The Event a `Create` job stands for (called when a sender takes it).
    fn build(&mut self, obj: &ObjectReference, spec: &EventSpec, count: i32, first: Timestamp, last: Timestamp) -> Event {
        // client-go names events `<object>.<unix nanos in hex>` (here: of the
        // latest occurrence); the clock is kept strictly increasing so two
        // events in one nanosecond differ.
        let nanos = i64::try_from(last.as_nanosecond()).unwrap_or(i64::MAX);
        self.name_clock = nanos.max(self.name_clock.saturating_add(1));
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", obj.name.as_deref().unwrap_or("object"), self.name_clock)),
                namespace: Some(obj.namespace.clone().unwrap_or_else(|| "default".to_string())),
                ..Default::default()
            },
            involved_object: obj.clone(),
            reason: Some(spec.reason.to_string()),
            message: Some(spec.message.to_string()),
            type_: Some(spec.type_.as_str().to_string()),
            count: Some(count),
            first_timestamp: Some(Time(first)),
            last_timestamp: Some(Time(last)),
            source: Some(EventSource { component: Some(self.cfg.component.clone()), host: None }),
            reporting_component: Some(self.cfg.component.clone()),
            reporting_instance: Some(self.cfg.instance.clone()),
            ..Default::default()
        }
    }

    /// Whether the queue takes more requests.
    fn accepts(&self) -> bool {
        self.queue.len() < MAX_QUEUED
    }

    /// Whether requests may start now: not while status writes are queued,
    /// unless the queue is full (a producer may be waiting for room).
    fn may_start(&self) -> bool {
        !self.backlog.busy() || !self.accepts()
    }

    fn start_jobs(&mut self) {
        if !self.may_start() {
            return;
        }
        while self.in_flight.len() < MAX_IN_FLIGHT {
            let Some(job) = self.queue.pop_front() else { return };
            let request = self.request(&job);
            let client = self.client.clone();
            self.in_flight.spawn(async move {
                let result = send(client, request).await;
                (job, result)
            });
        }
    }

    /// The request a sender makes for `job`; a `Create` builds its Event now.
    fn request(&mut self, job: &Job) -> Request {
        match job {
            Job::Create { key, involved, count, first, last } => {
                Request::Create(Box::new(self.build(involved, &key.spec, *count, *first, *last)))
            }
            Job::Patch { ns, name, count, last, .. } => {
                Request::Patch { ns: ns.clone(), name: name.clone(), count: *count, last: *last }
            }
        }
    }

    fn finished(&mut self, job: Job, result: Result<(String, String), kube::Error>) {
        match (job, result) {
            (Job::Create { key, .. }, Ok(object)) => {
                self.counters.emitted.inc();
                if let Some(e) = self.agg.entries.get_mut(&key) {
                    e.object = Some(object);
                }
            }
            (Job::Patch { key, first, last, count, involved, .. }, Err(kube::Error::Api(s))) if s.code == 404 => {
                // The Event expired (API server event TTL): start a new one with the total.
                tracing::debug!(error = %s, reason = %key.spec.reason, "event to update is gone; creating it again");
                if let Some(e) = self.agg.entries.get_mut(&key) {
                    e.object = None;
                }
                self.queue.push_back(Job::Create { key, involved, count, first, last });
            }
            (Job::Patch { .. }, Ok(_)) => {}
            (job, Err(error)) => {
                let (reason, message) = match &job {
                    Job::Create { key, .. } | Job::Patch { key, .. } => (&key.spec.reason, &key.spec.message),
                };
                tracing::warn!(%error, %reason, %message, "writing event failed, dropping it");
                if let Job::Create { key, .. } = &job {
                    self.agg.entries.remove(key);
                }
            }
        }
    }
}

async fn send(client: Client, request: Request) -> Result<(String, String), kube::Error> {
    match request {
        Request::Create(event) => {
            let ns = event.metadata.namespace.clone().unwrap_or_default();
            let api: Api<Event> = Api::namespaced(client, &ns);
            let created = api.create(&PostParams::default(), &event).await?;
            Ok((ns, created.metadata.name.unwrap_or_default()))
        }
        Request::Patch { ns, name, count, last } => {
            let api: Api<Event> = Api::namespaced(client, &ns);
            let patch = serde_json::json!({ "count": count, "lastTimestamp": Time(last) });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            Ok((ns, name))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> ObjectReference {
        ObjectReference { name: Some("svc".into()), namespace: Some("ns".into()), ..Default::default() }
    }

    fn key(uid: &str, msg: &str) -> EventKey {
        EventKey {
            object: ObjectKey(uid.into()),
            spec: EventSpec { type_: EventType::Warning, reason: "AllocationFailed".into(), message: msg.into() },
        }
    }

    #[test]
    fn identical_events_aggregate_and_flush_once_per_interval() {
        let mut a = Aggregator::default();
        let t0 = Instant::now();
        let w = Timestamp::now();
        let k = key("u1", "no available IPs");
        assert_eq!(a.decide(&k, &r(), t0, w), Decision::Create);
        for i in 1..1000 {
            assert_eq!(a.decide(&k, &r(), t0 + Duration::from_millis(i), w), Decision::Aggregate);
        }
        // Not created yet on the server: nothing to patch.
        assert!(a.due(t0 + Duration::from_secs(60), Duration::from_secs(30)).is_empty());
        a.entries.get_mut(&k).unwrap().object = Some(("ns".into(), "svc.1".into()));
        assert!(a.due(t0 + Duration::from_secs(1), Duration::from_secs(30)).is_empty());
        let due = a.due(t0 + Duration::from_secs(31), Duration::from_secs(30));
        assert_eq!(due.len(), 1);
        assert!(matches!(&due[0], Job::Patch { count: 1000, .. }));
        assert!(a.due(t0 + Duration::from_secs(100), Duration::from_secs(30)).is_empty());
    }

    #[test]
    fn different_messages_are_rate_limited_per_object() {
        let mut a = Aggregator::default();
        let t0 = Instant::now();
        let w = Timestamp::now();
        let created = (0..100)
            .filter(|i| a.decide(&key("u1", &format!("m{i}")), &r(), t0, w) == Decision::Create)
            .count();
        assert_eq!(created, 25);
        // Another object has its own bucket.
        assert_eq!(a.decide(&key("u2", "m0"), &r(), t0, w), Decision::Create);
        // Tokens come back with time.
        assert_eq!(a.decide(&key("u1", "later"), &r(), t0 + Duration::from_secs(301), w), Decision::Create);
    }

    fn task() -> (Recorder, RecorderTask) {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = Client::try_from(config).expect("client");
        let cfg = RecorderConfig { component: "c".into(), instance: "i".into(), flush_interval: Duration::from_secs(1) };
        recorder(client, cfg, EventCounters::default(), Backlog::default())
    }

    fn occurrence(i: usize) -> (ObjectReference, EventSpec) {
        let object = ObjectReference { name: Some(format!("svc{i}")), namespace: Some("ns".into()), uid: Some(format!("u{i}")), ..Default::default() };
        (object, EventSpec { type_: EventType::Normal, reason: "IPAllocated".into(), message: "m".into() })
    }

    #[tokio::test]
    async fn the_channel_is_bounded_and_hands_back_what_does_not_fit() {
        let (rec, mut task) = task();
        for i in 0..CHANNEL_CAPACITY {
            let (o, s) = occurrence(i);
            assert!(rec.try_record(o, s).is_ok());
        }
        let (o, s) = occurrence(CHANNEL_CAPACITY);
        let (back, _) = rec.try_record(o, s).expect_err("full");
        assert_eq!(back.name.as_deref(), Some(format!("svc{CHANNEL_CAPACITY}").as_str()), "the occurrence comes back, not lost");
        assert!(tokio::time::timeout(Duration::from_millis(50), rec.reserve()).await.is_err(), "no room: reserve waits");
        // The task taking one occurrence makes room for exactly one more.
        let o = task.rx.recv().await.expect("occurrence");
        assert!(o.counted);
        task.room.add_permits(1);
        let slot = tokio::time::timeout(Duration::from_secs(1), rec.reserve()).await.expect("room after a take");
        let (o, s) = occurrence(0);
        slot.record(o, s);
        let (o, s) = occurrence(1);
        assert!(rec.try_record(o, s).is_err());
        // The unbounded path still queues (never drops, never waits).
        let (o, s) = occurrence(2);
        rec.record(&o, s);
        assert_eq!(task.rx.len(), CHANNEL_CAPACITY + 1);
    }

    #[tokio::test]
    async fn a_full_queue_stops_intake_and_lets_events_past_the_status_backlog() {
        let (_rec, mut task) = task();
        task.backlog.set(10);
        assert!(task.accepts() && !task.may_start(), "status writes first while there is room");
        for i in 0..MAX_QUEUED {
            let (o, s) = occurrence(i);
            task.observe(o, s);
        }
        assert_eq!(task.queue.len(), MAX_QUEUED);
        assert!(!task.accepts(), "intake stops at the bound");
        assert!(task.may_start(), "a full queue drains even while status writes are queued");
        task.backlog.set(0);
        assert!(task.may_start());
    }

    #[tokio::test]
    async fn a_queued_event_is_built_only_when_a_sender_takes_it() {
        let (_rec, mut task) = task();
        let (o, s) = occurrence(7);
        let before = Timestamp::now();
        task.observe(o.clone(), s.clone());
        let after = Timestamp::now();
        let job = task.queue.pop_front().expect("a request is queued");
        let Job::Create { involved, count, first, last, .. } = &job else { panic!("a create request: {job:?}") };
        let entry = task.agg.entries.values().next().expect("aggregator entry");
        assert!(Arc::ptr_eq(involved, &entry.involved), "the queued request shares the aggregator's object reference");
        assert_eq!((*count, first, last), (1, &entry.first_seen, &entry.first_seen));
        // Taken later: the Event still carries the occurrence's time.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let taken = Timestamp::now();
        let Request::Create(event) = task.request(&job) else { panic!("a create request") };
        let at = event.first_timestamp.as_ref().expect("firstTimestamp").0;
        assert!(before <= at && at <= after && at < taken, "occurrence time, not the time it was sent");
        assert_eq!(event.last_timestamp, event.first_timestamp);
        assert_eq!(event.count, Some(1));
        assert_eq!(event.involved_object, o);
        assert_eq!((event.reason.as_deref(), event.message.as_deref(), event.type_.as_deref()), (Some("IPAllocated"), Some("m"), Some("Normal")));
        assert_eq!(event.metadata.namespace.as_deref(), Some("ns"));
        assert!(event.metadata.name.as_deref().is_some_and(|n| n.starts_with("svc7.")), "{:?}", event.metadata.name);
        assert_eq!((event.reporting_component.as_deref(), event.reporting_instance.as_deref()), (Some("c"), Some("i")));
        // Two Events built in the same nanosecond still get distinct names.
        let Request::Create(again) = task.request(&job) else { panic!("a create request") };
        assert_ne!(again.metadata.name, event.metadata.name);
    }

    #[tokio::test]
    async fn an_expired_event_is_created_again_with_its_count() {
        let (_rec, mut task) = task();
        let (o, s) = occurrence(1);
        task.observe(o.clone(), s);
        let Some(Job::Create { key, involved, first, .. }) = task.queue.pop_front() else { panic!("a create request") };
        let last = Timestamp::now();
        let patch = Job::Patch { key: key.clone(), ns: "ns".into(), name: "svc1.1".into(), count: 5, first, last, involved };
        let gone = kube::Error::Api(kube::core::Status::failure("not found", "NotFound").with_code(404).boxed());
        task.finished(patch, Err(gone));
        let job = task.queue.pop_front().expect("created again");
        let Request::Create(event) = task.request(&job) else { panic!("a create request") };
        assert_eq!(event.count, Some(5));
        assert_eq!(event.first_timestamp, Some(Time(first)));
        assert_eq!(event.last_timestamp, Some(Time(last)));
        assert_eq!(event.involved_object, o);
        assert_eq!(task.agg.entries.get(&key).and_then(|e| e.object.clone()), None, "written again before it is patched");
    }

    #[test]
    fn the_table_is_bounded_and_forgets_the_oldest_first() {
        let mut a = Aggregator::default();
        let t0 = Instant::now();
        let w = Timestamp::now();
        let keys: Vec<EventKey> = (0..MAX_ENTRIES + 10).map(|i| key(&format!("u{i}"), "x")).collect();
        for (i, k) in keys.iter().enumerate() {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(a.decide(k, &r(), at, w), Decision::Create);
            assert!(a.entries.len() <= MAX_ENTRIES, "{} entries after {} events", a.entries.len(), i + 1);
            assert!(a.buckets.len() <= MAX_ENTRIES + 1, "{} buckets after {} events", a.buckets.len(), i + 1);
        }
        let now = t0 + Duration::from_millis(keys.len() as u64);
        let newest = keys.last().expect("keys");
        assert_eq!(a.decide(newest, &r(), now, w), Decision::Aggregate, "the newest is still aggregated");
        assert!(!a.entries.contains_key(&keys[0]), "the oldest was forgotten");
        assert_eq!(a.decide(&keys[0], &r(), now, w), Decision::Create, "a forgotten event starts a new Event");
    }

    #[test]
    fn repeats_after_the_window_create_a_new_event() {
        let mut a = Aggregator::default();
        let t0 = Instant::now();
        let w = Timestamp::now();
        let k = key("u1", "x");
        assert_eq!(a.decide(&k, &r(), t0, w), Decision::Create);
        assert_eq!(a.decide(&k, &r(), t0 + AGGREGATION_WINDOW + Duration::from_secs(1), w), Decision::Create);
        a.expire(t0 + AGGREGATION_WINDOW * 3);
        assert!(a.entries.is_empty());
    }
}
