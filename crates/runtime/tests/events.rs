//! The Event recorder on the real API server: the component is the
//! caller's, repeats aggregate into one Event's count, and nothing is sent
//! while the caller reports a status backlog.

use std::time::Duration;

use ferrolb_runtime::events::{self, Backlog, EventCounters, EventSpec, EventType, RecorderConfig};
use ferrolb_test_harness::{create_namespace, shared, unique_name, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use kube::Resource;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_is_a_parameter_and_repeats_aggregate() {
    let fixture = shared().await.expect("fixture");
    let client = fixture.client().unwrap();
    let ns = unique_name("events");
    create_namespace(&client, &ns).await.unwrap();
    let cm = ConfigMap { metadata: ObjectMeta { name: Some("subject".into()), ..Default::default() }, ..Default::default() };
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns).create(&PostParams::default(), &cm).await.unwrap();
    let reference = cm.object_ref(&());

    let counters = EventCounters::default();
    let backlog = Backlog::default();
    let cfg = RecorderConfig {
        component: "metallb-speaker".into(),
        instance: "node-1".into(),
        flush_interval: Duration::from_millis(500),
    };
    let (recorder, task) = events::recorder(client.clone(), cfg, counters.clone(), backlog.clone());
    let stop = CancellationToken::new();
    let running = tokio::spawn(task.run(stop.clone()));
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let spec = EventSpec { type_: EventType::Warning, reason: "Conflict".into(), message: "another MAC answers".into() };

    backlog.set(1);
    recorder.record(&reference, spec.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(events.list(&ListParams::default()).await.unwrap().items.is_empty(), "held back while status writes are queued");
    backlog.set(0);

    let first = wait_for("the Event", Duration::from_secs(20), || async {
        events.list(&ListParams::default()).await.ok()?.items.into_iter().next()
    })
    .await
    .unwrap();
    assert_eq!(first.source.as_ref().and_then(|s| s.component.as_deref()), Some("metallb-speaker"));
    assert_eq!(first.reporting_component.as_deref(), Some("metallb-speaker"));
    assert_eq!(first.reporting_instance.as_deref(), Some("node-1"));
    assert_eq!(first.type_.as_deref(), Some("Warning"));
    assert_eq!(first.involved_object.uid, cm.metadata.uid);

    recorder.record(&reference, spec.clone());
    recorder.record(&reference, spec);
    let counted = wait_for("the count to reach 3", Duration::from_secs(20), || async {
        let items = events.list(&ListParams::default()).await.ok()?.items;
        (items.len() == 1 && items[0].count == Some(3)).then_some(())
    })
    .await;
    assert!(counted.is_ok(), "{:?}", events.list(&ListParams::default()).await.unwrap().items);
    assert_eq!((counters.emitted.get(), counters.aggregated.get()), (1, 2));

    stop.cancel();
    running.await.unwrap();
}
