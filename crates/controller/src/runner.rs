//! Process wiring: client, endpoints, caches, leader election and the
//! session that runs while this replica leads.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use ferrolb_runtime::http_server::{self, Endpoints, Health};
use ferrolb_runtime::leader::{Fence, LeaderConfig, LeaderElector};
use ferrolb_runtime::{client, logging};

use crate::error::ControllerError;
use crate::memberlist;
use crate::metrics::Metrics;
use crate::options::{ControllerOptions, ReadinessGate};
use crate::session::{self, Progress, SessionContext};
use crate::watch::{self, ChangeRouter};

/// How long shutdown waits for the Lease to be released.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// A started controller: its addresses and metrics, and the future that
/// runs it until shutdown.
pub struct Controller {
    pub metrics: Metrics,
    pub metrics_addr: Option<SocketAddr>,
    pub health_addr: Option<SocketAddr>,
    run: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Controller {
    /// Runs until the shutdown future given to [`start`] completes.
    pub async fn wait(self) {
        self.run.await
    }
}

/// Runs the controller until `shutdown` completes (SIGTERM in the binary).
/// Only start-up problems are errors; API errors are retried for ever.
pub async fn run(
    opts: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    opts.validate()?;
    logging::init(&opts.log_level, opts.log_format)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "MetalLB controller starting (ferrolb {})",
        env!("CARGO_PKG_VERSION")
    );
    start(opts, shutdown).await?.wait().await;
    Ok(())
}

/// Binds the endpoints, builds the client and returns the running
/// controller without installing a log subscriber (tests, embedding).
pub async fn start(
    opts: ControllerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Controller, ControllerError> {
    opts.validate()?;
    logging::parse_level(&opts.log_level)?;
    let metrics = Metrics::new();
    let namespace = opts.resolved_namespace();
    let config = client::load_config(opts.kubeconfig.as_deref()).await?;
    let counted = metrics.clone();
    let client = client::build(config, ferrolb_api::labels::COMPONENT_CONTROLLER, move |method, resource| counted.count_request(method, resource))?;
    if let Some(name) = opts.ml_secret_name() {
        let deployment = opts.deployment.as_deref().unwrap_or_default();
        memberlist::ensure_secret(&client, &namespace, name, deployment).await?;
    }

    let mut tasks = JoinSet::new();
    let mut metrics_addr = None;
    if opts.port != 0 {
        let addr = SocketAddr::new(opts.bind_address, opts.port);
        let (bound, serve) = http_server::bind("metrics", addr, Endpoints::registry(metrics.registry())).await?;
        tasks.spawn(serve);
        metrics_addr = Some(bound);
    }
    let router = ChangeRouter::default();
    let caches = watch::start(&client, &namespace, &router, &mut tasks);
    let progress = Progress::default();
    let (synced_tx, synced) = tokio_watch::channel(false);
    let waited = caches.clone();
    tasks.spawn(async move {
        waited.ready().await;
        tracing::info!("caches synced");
        synced_tx.send_replace(true);
        // Receivers read a closed channel's last value; keep it open anyway
        // so a session can tell "not synced yet" from "shutting down".
        std::future::pending::<()>().await;
    });
    let mut health_addr = None;
    if opts.health_probe_port != 0 {
        let addr = SocketAddr::new(opts.bind_address, opts.health_probe_port);
        let health = health(synced.clone(), &progress, opts.readiness_gate.clone(), opts.healthz_stall_timeout);
        let (bound, serve) = http_server::bind("health", addr, Endpoints::Health(health)).await?;
        tasks.spawn(serve);
        health_addr = Some(bound);
    }
    let identity = opts.identity();
    // The elector is built first so the session's writes carry its fence.
    let elector = opts.leader_elect.then(|| {
        let cfg = LeaderConfig { identity: identity.clone(), ..opts.leader_config() };
        let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        LeaderElector::new(leases, cfg)
    });
    let fence = elector.as_ref().map_or_else(Fence::always, LeaderElector::fence);
    let ctx = SessionContext {
        client: client.clone(),
        namespace: namespace.clone(),
        lb_class: opts.lb_class().map(str::to_string),
        pod_name: opts.pod_name.clone(),
        instance: identity.clone(),
        write_concurrency: opts.write_concurrency,
        event_interval: opts.event_aggregation_interval,
        caches,
        router,
        metrics: metrics.clone(),
        progress,
        fence,
        synced,
    };

    let cancel = CancellationToken::new();
    let (lead_tx, lead_rx) = tokio_watch::channel(!opts.leader_elect);
    // Without election nobody changes leadership, but the sender must live
    // as long as the controller: a closed channel reads as "stop".
    let mut keep_leading = None;
    let elector = match elector {
        None => {
            keep_leading = Some(lead_tx);
            None
        }
        Some(elector) => {
            // In a JoinSet so that dropping the controller (a crash in tests)
            // stops renewing, as the death of the process would.
            let mut set = JoinSet::new();
            set.spawn(elector.run(lead_tx, cancel.child_token()));
            Some(set)
        }
    };
    tracing::info!(%namespace, %identity, leader_elect = opts.leader_elect, ?metrics_addr, ?health_addr, "controller started");

    let m = metrics.clone();
    let run = async move {
        lead_loop(ctx, lead_rx, &m, shutdown).await;
        drop(keep_leading);
        cancel.cancel();
        if let Some(mut e) = elector
            && tokio::time::timeout(RELEASE_TIMEOUT, e.join_next()).await.is_err()
        {
            tracing::warn!("leader election did not stop in time");
        }
        // Dropping the tasks stops reflectors and HTTP endpoints.
        drop(tasks);
        tracing::info!("controller stopped");
    };
    Ok(Controller { metrics, metrics_addr, health_addr, run: Box::pin(run) })
}

/// `/readyz`: every cache has completed its first list, and the readiness
/// gate (a webhook in the same process) is open. `/healthz`: the reconcile
/// loop is not stalled with work pending (see [`Progress`]).
fn health(
    synced: tokio_watch::Receiver<bool>,
    progress: &Progress,
    gate: ReadinessGate,
    stall_timeout: Duration,
) -> Health {
    let progress = progress.clone();
    Health::new()
        .readiness(move || *synced.borrow() && gate.open())
        .liveness(move || {
            let stalled = progress.stalled(stall_timeout);
            if stalled {
                tracing::warn!(
                    pending = progress.pending(), ?stall_timeout,
                    "reconcile loop made no progress with Service writes pending; /healthz fails"
                );
            }
            !stalled
        })
}

/// Runs a session for every leadership term until shutdown.
async fn lead_loop(
    ctx: SessionContext,
    mut leading: tokio_watch::Receiver<bool>,
    metrics: &Metrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            r = leading.wait_for(|l| *l) => if r.is_err() { return },
        }
        metrics.is_leader.set(1);
        let stop = CancellationToken::new();
        let term = session::run(ctx.clone(), stop.clone());
        // Whichever comes first ends the term; dropping `term` aborts its writes.
        tokio::select! {
            _ = &mut shutdown => {
                metrics.is_leader.set(0);
                return;
            }
            r = leading.wait_for(|l| !*l) => {
                tracing::warn!("leadership lost, stopped writing");
                if r.is_err() {
                    metrics.is_leader.set(0);
                    return;
                }
            }
            _ = term => tracing::warn!("controller session ended unexpectedly, restarting it"),
        }
        // The term's writes were dropped with it: nothing is pending here
        // any more (the session is usually dropped, never reaching its end).
        ctx.progress.set_pending(0);
        metrics.is_leader.set(0);
    }
}
