//! Replay tests of the session's pure step (src/session/step.rs): each
//! `tests/replay/NAME.in` script is run through a `Step` over a simulated
//! API server and watch cache, and the effects it returns must equal
//! `tests/replay/NAME.out` line for line. With `FERROLB_UPDATE_REPLAY=1`
//! the .out files are rewritten instead (read the diff before committing).
//! No API server, no client, no timers: the clock is the script's.
//!
//! Script lines are `@T VERB ARGS` (T in ms; a line starting with `#`, or
//! the rest of a line from ` # `, is a comment). The
//! lines of one time form one turn of the session (their inputs in order,
//! then the step acts once). Before the lines of time T are applied, the
//! step's timer fires (a turn without input, at the timer's own time) while
//! it is due by T; nothing fires after the last line. Objects are JSON on
//! one line.
//!
//! | verb | what happens |
//! |---|---|
//! | `start` | the session starts (input `Start`) |
//! | `service NS/NAME JSON` | a user creates or updates the Service (`spec`, `status`, `metadata` merged into it; a new Service defaults to an IPv4 LoadBalancer with a cluster IP); the watch delivers it |
//! | `edit NS/NAME JSON` | the same on the API server only: the watch has not delivered it yet |
//! | `echo NS/NAME` | the watch delivers the Service as the API server holds it (after a write or an `edit`) |
//! | `delete NS/NAME` | deleted, and the watch says so |
//! | `vanish NS/NAME` | deleted while the watch was down: the cache loses it, no notification |
//! | `relist` | the Service watch relisted |
//! | `pool NAME JSON` | an IPAddressPool created or updated with this `spec`; the watch delivers it |
//! | `pool-status NAME JSON` | someone else writes the pool's status on the API server only |
//! | `echo-pool NAME` | the watch delivers the pool as the API server holds it |
//! | `configstate` | `ConfigurationState/controller` exists in the cache |
//! | `written #N [auto\|error CODE\|notleader]` | the answer to Service write N: `auto` (default) is the API server's: 404 if the Service is gone, 409 if its uid or resourceVersion differs from the patch's, otherwise the patch is applied |
//! | `pool-written #N [auto\|error CODE\|notleader]` | the same for pool write N |
//! | `wait` | nothing but the clock (timers due by T fire) |
//!
//! Output lines: `write #N NS/NAME BODY`, `cancel NS/NAME`,
//! `pool-write #N NAME BODY`, `event KIND NS/NAME TYPE REASON: MESSAGE`,
//! `verdict ...`, `timer @T` / `timer none`, and `answer #N ...` for the
//! simulated server's answers (so the script's outcome can be read).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::v1beta1::IPAddressPool;
use ferrolb_controller::metrics::Metrics;
use ferrolb_controller::pool_status;
use ferrolb_controller::service_record::ServiceRecord;
use ferrolb_controller::service_status::{CONDITION_TYPE, POOL_ANNOTATION, WriteError};
use ferrolb_controller::session::step::{Clock, Effect, Input, MapWorld, Step};
use ferrolb_controller::watch::{Change, ServiceId};
use ferrolb_runtime::config_state::Verdict;
use ferrolb_runtime::events::EventType;
use ferrolb_runtime::leader::NotLeader;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Wall-clock time at T = 0: 2025-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_735_689_600_000;
const NAMESPACE: &str = "metallb-system";

struct Sim {
    base: Instant,
    step: Step,
    cache: MapWorld,
    /// What the API server holds.
    services: BTreeMap<ServiceId, Value>,
    pools: BTreeMap<String, Value>,
    /// The last resourceVersion handed out (one counter, as etcd's).
    rv: u64,
    created: u64,
    /// Writes handed out and not answered.
    service_writes: BTreeMap<u64, (ServiceId, Value)>,
    pool_writes: BTreeMap<u64, (String, Value)>,
    timer: Option<Instant>,
    out: String,
}

fn status_error(code: u16, message: &str) -> WriteError {
    WriteError::Api(kube::Error::Api(kube::core::Status::failure(message, "").with_code(code).boxed()))
}

fn parse_id(s: &str) -> Result<ServiceId, String> {
    s.split_once('/').map(|(ns, n)| (ns.into(), n.into())).ok_or_else(|| format!("{s:?} is not NS/NAME"))
}

fn parse_json(s: &str) -> Result<Value, String> {
    serde_json::from_str(if s.trim().is_empty() { "{}" } else { s }).map_err(|e| format!("bad JSON {s:?}: {e}"))
}

/// Merges `patch`'s keys into `target` (objects recursively; anything else replaces).
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

impl Sim {
    fn new() -> Self {
        Sim {
            base: Instant::now(),
            step: Step::new(None, Metrics::new()),
            cache: MapWorld::default(),
            services: BTreeMap::new(),
            pools: BTreeMap::new(),
            rv: 0,
            created: 0,
            service_writes: BTreeMap::new(),
            pool_writes: BTreeMap::new(),
            timer: None,
            out: String::new(),
        }
    }

    fn at(&self, t: u64) -> Instant {
        self.base + Duration::from_millis(t)
    }

    fn ms(&self, at: Instant) -> u128 {
        at.duration_since(self.base).as_millis()
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn turn(&mut self, t: u64, inputs: Vec<Input>) {
        let wall = Timestamp::from_millisecond(EPOCH_MS + t as i64).expect("time");
        let clock = Clock { now: self.at(t), wall };
        let effects = self.step.handle(clock, inputs, &self.cache);
        for effect in effects {
            self.record(t, effect);
        }
    }

    /// Fires the step's timer while it is due by `t`.
    fn run_timers(&mut self, t: u64) -> Result<(), String> {
        let mut fired = 0;
        while let Some(at) = self.timer.filter(|at| *at <= self.at(t)) {
            fired += 1;
            if fired > 1_000 {
                return Err(format!("the timer keeps firing at {} ms", self.ms(at)));
            }
            let when = u64::try_from(self.ms(at)).map_err(|e| e.to_string())?;
            self.turn(when, Vec::new());
        }
        Ok(())
    }

    fn record(&mut self, t: u64, effect: Effect) {
        let line = match effect {
            Effect::WriteService { id, write, body } => {
                let body: Value = serde_json::from_str(body.get()).expect("body is JSON");
                let line = format!("write #{write} {}/{} {body}", id.0, id.1);
                self.service_writes.insert(write, (id, body));
                line
            }
            Effect::CancelServiceWrite { id } => format!("cancel {}/{}", id.0, id.1),
            Effect::WritePool { name, write, patch } => {
                let body = pool_status::patch_body(&patch);
                let line = format!("pool-write #{write} {name} {body}");
                self.pool_writes.insert(write, (name, body));
                line
            }
            Effect::Event { object, spec } => {
                let type_ = match spec.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                };
                format!("event {} {} {type_} {}: {}", object.kind.as_deref().unwrap_or_default(), name_of(&object), spec.reason, spec.message)
            }
            Effect::Verdict(Verdict::Valid) => "verdict valid".to_string(),
            Effect::Verdict(Verdict::Invalid(m)) => format!("verdict invalid: {m}"),
            Effect::Timer(at) => {
                self.timer = at;
                match at {
                    Some(at) => format!("timer @{}", self.ms(at)),
                    None => "timer none".to_string(),
                }
            }
        };
        let _ = writeln!(self.out, "@{t} {line}");
    }

    fn note(&mut self, t: u64, line: &str) {
        let _ = writeln!(self.out, "@{t} {line}");
    }

    /// Puts the API server's version of `id` into the cache.
    fn echo(&mut self, id: &ServiceId) -> Result<Input, String> {
        match self.services.get(id) {
            Some(v) => {
                let svc: Service = serde_json::from_value(v.clone()).map_err(|e| format!("Service {v}: {e}"))?;
                self.cache.services.insert(id.clone(), Arc::new(ServiceRecord::from(svc)));
            }
            None => {
                self.cache.services.remove(id);
            }
        }
        Ok(Input::Change(Change::Service(id.clone())))
    }

    fn echo_pool(&mut self, name: &str) -> Result<Vec<Input>, String> {
        match self.pools.get(name) {
            Some(v) => {
                let pool: IPAddressPool = serde_json::from_value(v.clone()).map_err(|e| format!("pool {v}: {e}"))?;
                self.cache.pools.insert(name.to_string(), pool.into());
            }
            None => {
                self.cache.pools.remove(name);
            }
        }
        Ok(vec![Input::Change(Change::Pool(name.to_string())), Input::Change(Change::Config)])
    }

    /// A user's create or update of a Service on the API server.
    fn edit(&mut self, t: u64, id: &ServiceId, patch: &Value) {
        let rv = self.next_rv();
        let obj = match self.services.get_mut(id) {
            Some(obj) => {
                if patch.get("spec").is_some() {
                    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
                    obj["metadata"]["generation"] = json!(generation);
                }
                obj
            }
            None => {
                self.created += 1;
                let n = self.created;
                let ip = format!("10.96.{}.{}", n / 250, n % 250 + 1);
                let created = Timestamp::from_millisecond(EPOCH_MS + t as i64).expect("time");
                self.services.entry(id.clone()).or_insert(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": { "namespace": &*id.0, "name": &*id.1, "uid": format!("uid-{n}"), "generation": 1,
                                  "creationTimestamp": created.to_string() },
                    "spec": { "type": "LoadBalancer", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"],
                              "ipFamilyPolicy": "SingleStack", "ports": [{ "port": 80, "protocol": "TCP" }] },
                }))
            }
        };
        merge(obj, patch);
        obj["metadata"]["resourceVersion"] = json!(rv);
    }

    /// The simulated API server's answer to Service write `n`.
    fn answer_service(&mut self, t: u64, n: u64, how: &[&str]) -> Result<Input, String> {
        let (id, body) = self.service_writes.remove(&n).ok_or_else(|| format!("no Service write #{n} outstanding"))?;
        let result = match how {
            [] | ["auto"] => self.apply_service_patch(&id, &body),
            ["error", code] => Err(status_error(code.parse().map_err(|_| format!("bad code {code}"))?, "simulated failure")),
            ["notleader"] => Err(WriteError::NotLeader(NotLeader)),
            other => return Err(format!("unknown answer {other:?}")),
        };
        let text = match &result {
            Ok(svc) => format!("ok rv={}", svc.metadata.resource_version.as_deref().unwrap_or_default()),
            Err(e) => refusal(e),
        };
        self.note(t, &format!("answer #{n} {text}"));
        Ok(Input::ServiceWritten { id, write: n, result })
    }

    fn apply_service_patch(&mut self, id: &ServiceId, body: &Value) -> Result<Service, WriteError> {
        let rv = (self.rv + 1).to_string();
        let Some(obj) = self.services.get_mut(id) else {
            return Err(status_error(404, "services not found"));
        };
        let meta = &body["metadata"];
        if !meta["uid"].is_null() && meta["uid"] != obj["metadata"]["uid"] {
            return Err(status_error(409, "Precondition failed: UID in precondition differs"));
        }
        if !meta["resourceVersion"].is_null() && meta["resourceVersion"] != obj["metadata"]["resourceVersion"] {
            return Err(status_error(409, "the object has been modified"));
        }
        self.rv += 1;
        let pool = &meta["annotations"][POOL_ANNOTATION];
        if pool.is_null() {
            if let Some(a) = obj["metadata"]["annotations"].as_object_mut() {
                a.remove(POOL_ANNOTATION);
            }
        } else {
            obj["metadata"]["annotations"][POOL_ANNOTATION] = pool.clone();
        }
        obj["status"]["loadBalancer"]["ingress"] = body["status"]["loadBalancer"]["ingress"].clone();
        let mut conditions: Vec<Value> = obj["status"]["conditions"].as_array().cloned().unwrap_or_default();
        for c in body["status"]["conditions"].as_array().into_iter().flatten() {
            conditions.retain(|have| have["type"] != c["type"]);
            if c["$patch"] != "delete" {
                conditions.push(c.clone());
            }
        }
        obj["status"]["conditions"] = json!(conditions);
        obj["metadata"]["resourceVersion"] = json!(rv);
        Ok(serde_json::from_value(obj.clone()).expect("a Service"))
    }

    fn answer_pool(&mut self, t: u64, n: u64, how: &[&str]) -> Result<Input, String> {
        let (name, body) = self.pool_writes.remove(&n).ok_or_else(|| format!("no pool write #{n} outstanding"))?;
        let result = match how {
            [] | ["auto"] => match self.pools.get_mut(&name) {
                None => Err(status_error(404, "ipaddresspools not found")),
                Some(obj) if !body["metadata"]["resourceVersion"].is_null()
                    && body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] =>
                {
                    Err(status_error(409, "the object has been modified"))
                }
                Some(obj) => {
                    self.rv += 1;
                    obj["status"] = body["status"].clone();
                    obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
                    Ok(serde_json::from_value::<IPAddressPool>(obj.clone()).expect("a pool"))
                }
            },
            ["error", code] => Err(status_error(code.parse().map_err(|_| format!("bad code {code}"))?, "simulated failure")),
            ["notleader"] => Err(WriteError::NotLeader(NotLeader)),
            other => return Err(format!("unknown answer {other:?}")),
        };
        let text = match &result {
            Ok(p) => format!("ok rv={}", p.metadata.resource_version.as_deref().unwrap_or_default()),
            Err(e) => refusal(e),
        };
        self.note(t, &format!("answer #{n} {text}"));
        Ok(Input::PoolWritten { name, result })
    }

    /// The inputs of one script line (changing the simulated server and cache).
    fn line(&mut self, t: u64, verb: &str, rest: &str) -> Result<Vec<Input>, String> {
        let (arg, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let words: Vec<&str> = tail.split_whitespace().collect();
        let write_no = |s: &str| s.strip_prefix('#').and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| format!("{s:?} is not #N"));
        Ok(match verb {
            "start" => vec![Input::Start],
            "wait" => Vec::new(),
            "relist" => vec![Input::Change(Change::ServicesRelisted)],
            "service" => {
                let id = parse_id(arg)?;
                self.edit(t, &id, &parse_json(tail)?);
                vec![self.echo(&id)?]
            }
            "edit" => {
                self.edit(t, &parse_id(arg)?, &parse_json(tail)?);
                Vec::new()
            }
            "echo" => vec![self.echo(&parse_id(arg)?)?],
            "delete" | "vanish" => {
                let id = parse_id(arg)?;
                self.services.remove(&id).ok_or_else(|| format!("no Service {arg}"))?;
                let input = self.echo(&id)?;
                if verb == "delete" { vec![input] } else { Vec::new() }
            }
            "pool" => {
                let spec = parse_json(tail)?;
                let rv = self.next_rv();
                let obj = self.pools.entry(arg.to_string()).or_insert_with(|| {
                    json!({ "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                            "metadata": { "namespace": NAMESPACE, "name": arg, "uid": format!("pool-uid-{arg}") } })
                });
                obj["spec"] = spec;
                obj["metadata"]["resourceVersion"] = json!(rv);
                self.echo_pool(arg)?
            }
            "pool-status" => {
                let status = parse_json(tail)?;
                let rv = self.next_rv();
                let obj = self.pools.get_mut(arg).ok_or_else(|| format!("no pool {arg}"))?;
                obj["status"] = status;
                obj["metadata"]["resourceVersion"] = json!(rv);
                Vec::new()
            }
            "echo-pool" => self.echo_pool(arg)?,
            "configstate" => {
                self.cache.config_state = Some(ObjectReference {
                    api_version: Some("metallb.io/v1beta1".into()),
                    kind: Some("ConfigurationState".into()),
                    namespace: Some(NAMESPACE.into()),
                    name: Some("controller".into()),
                    ..Default::default()
                });
                vec![Input::Change(Change::ConfigState)]
            }
            "written" => vec![self.answer_service(t, write_no(arg)?, &words)?],
            "pool-written" => vec![self.answer_pool(t, write_no(arg)?, &words)?],
            other => return Err(format!("unknown verb {other:?}")),
        })
    }
}

/// A simulated refusal as `CODE message`.
fn refusal(e: &WriteError) -> String {
    match e {
        WriteError::Api(kube::Error::Api(s)) => format!("{} {}", s.code, s.message),
        other => other.to_string(),
    }
}

fn name_of(o: &ObjectReference) -> String {
    match &o.namespace {
        Some(ns) => format!("{ns}/{}", o.name.as_deref().unwrap_or_default()),
        None => o.name.clone().unwrap_or_default(),
    }
}

fn run(script: &str) -> Result<String, String> {
    let mut sim = Sim::new();
    match run_lines(&mut sim, script) {
        Ok(()) => Ok(sim.out),
        Err(e) => Err(format!("{e}\n--- effects up to there:\n{}", sim.out)),
    }
}

fn run_lines(sim: &mut Sim, script: &str) -> Result<(), String> {
    // (time, inputs) of the turn being gathered.
    let mut turn: Option<(u64, Vec<Input>)> = None;
    let mut last = 0;
    for (n, raw) in script.lines().enumerate() {
        let line = raw.split(" # ").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |e: String| format!("line {}: {e}", n + 1);
        let (time, rest) = line.split_once(' ').unwrap_or((line, ""));
        let t: u64 = time.strip_prefix('@').and_then(|t| t.parse().ok()).ok_or_else(|| err(format!("{time:?} is not @T")))?;
        if t < last {
            return Err(err("times must not decrease".into()));
        }
        last = t;
        let (verb, args) = rest.split_once(' ').unwrap_or((rest, ""));
        if let Some((at, inputs)) = turn.take_if(|(at, _)| *at != t) {
            sim.turn(at, inputs);
        }
        if turn.is_none() {
            // Timers due by now fire before this time's changes.
            sim.run_timers(t).map_err(err)?;
        }
        let inputs = sim.line(t, verb, args.trim()).map_err(err)?;
        turn.get_or_insert_with(|| (t, Vec::new())).1.extend(inputs);
    }
    if let Some((at, inputs)) = turn {
        sim.turn(at, inputs);
    }
    Ok(())
}

#[test]
fn replay_files_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    ferrolb_test_harness::golden::check_dir(&dir, 7, run);
}

/// The simulated server refuses what the real one refuses: a patch on a
/// changed version and a patch on a recreated object (tests/fencing.rs and
/// tests/api_semantics.rs check the real API server).
#[test]
fn the_simulated_server_checks_preconditions() {
    let out = run("@0 pool p {\"addresses\":[\"192.0.2.0/30\"]}\n@0 service ns/a {}\n@0 start\n@1 edit ns/a {\"metadata\":{\"labels\":{\"x\":\"y\"}}}\n@2 written #1\n")
        .expect("script");
    assert!(out.contains("answer #1 409 the object has been modified"), "{out}");
    assert!(out.contains(&format!("\"type\":\"{CONDITION_TYPE}\"")), "the write carries the condition: {out}");
}
