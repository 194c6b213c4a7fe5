//! Service status writes with bounded concurrency, at most one in flight per
//! Service (so two writes for one Service can never overtake each other).

use std::collections::{HashMap, HashSet, VecDeque};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::Client;
use serde_json::value::RawValue;
use tokio::task::JoinSet;

use crate::service_status;
use crate::watch::ServiceId;

pub struct WriteJob {
    pub id: ServiceId,
    /// The PATCH body, already serialised: a burst queues thousands of writes
    /// while only `limit` are in flight, and compact JSON text is about a
    /// tenth of the memory of a `serde_json::Value` tree.
    pub body: Box<RawValue>,
}

pub struct Writer {
    client: Client,
    limit: usize,
    queue: VecDeque<WriteJob>,
    busy: HashSet<ServiceId>,
    tasks: JoinSet<Result<Service, kube::Error>>,
    task_ids: HashMap<tokio::task::Id, ServiceId>,
}

impl Writer {
    pub fn new(client: Client, limit: usize) -> Self {
        Writer { client, limit: limit.max(1), queue: VecDeque::new(), busy: HashSet::new(), tasks: JoinSet::new(), task_ids: HashMap::new() }
    }

    /// Whether a write for `id` is queued or in flight.
    pub fn busy(&self, id: &ServiceId) -> bool {
        self.busy.contains(id)
    }

    /// The caller checks [`Writer::busy`] first; a second job for a busy
    /// Service would race the first.
    pub fn submit(&mut self, job: WriteJob) {
        debug_assert!(!self.busy.contains(&job.id));
        self.busy.insert(job.id.clone());
        self.queue.push_back(job);
    }

    pub fn start(&mut self) {
        while self.tasks.len() < self.limit {
            let Some(job) = self.queue.pop_front() else { return };
            let api: Api<Service> = Api::namespaced(self.client.clone(), &job.id.0);
            let name = job.id.1.clone();
            let handle = self
                .tasks
                .spawn(async move { service_status::write(&api, &name, &job.body).await });
            self.task_ids.insert(handle.id(), job.id);
        }
    }

    /// Writes queued or in flight.
    pub fn backlog(&self) -> usize {
        self.busy.len()
    }

    pub fn has_tasks(&self) -> bool {
        !self.tasks.is_empty()
    }

    pub async fn join_next(&mut self) -> Option<(ServiceId, Result<Service, kube::Error>)> {
        loop {
            let (task, outcome) = match self.tasks.join_next_with_id().await? {
                Ok((task, r)) => (task, Some(r)),
                Err(e) => {
                    tracing::error!(error = %e, "service write task failed");
                    (e.id(), None)
                }
            };
            let Some(id) = self.task_ids.remove(&task) else { continue };
            self.busy.remove(&id);
            if let Some(r) = outcome {
                return Some((id, r));
            }
        }
    }
}
