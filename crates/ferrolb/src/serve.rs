//! The long-running commands: `ferrolb controller` (allocation, plus the
//! admission webhook unless `--webhook-mode` says otherwise) and
//! `ferrolb webhook` (the webhook alone).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use ferrolb_controller::ControllerOptions;
use ferrolb_controller::options::ReadinessGate;
use ferrolb_webhook::{ServeOptions, TlsArgs, WebhookArgs};
use tokio_util::sync::CancellationToken;

/// MetalLB's `--webhook-mode` (controller.md §1 step 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebhookMode {
    Enabled,
    Disabled,
    Onlywebhook,
}

#[derive(Debug, Args)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub controller: ControllerOptions,
    /// enabled: allocate and serve the webhooks; disabled: allocate only;
    /// onlywebhook: serve the webhooks only.
    #[arg(long = "webhook-mode", value_enum, default_value = "enabled")]
    pub webhook_mode: WebhookMode,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub fn controller(args: ControllerArgs) -> ExitCode {
    exit_code(runtime().and_then(|rt| rt.block_on(run_controller(args))))
}

/// One malloc arena and two worker threads, for the controller and the
/// webhook alike (measured at 5,000 Services: docs/benchmarks-metallb.md,
/// "Controller memory"). Logging starts no thread; this is the first.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    crate::process::one_malloc_arena();
    crate::process::runtime(CONTROLLER_WORKERS)
}

/// Worker threads of the controller's runtime.
const CONTROLLER_WORKERS: usize = 2;

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_controller(mut args: ControllerArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_on_signal()?;
    let namespace = args.controller.resolved_namespace();
    let webhook = match args.webhook_mode {
        WebhookMode::Disabled => None,
        WebhookMode::Enabled | WebhookMode::Onlywebhook => {
            let config = ferrolb_runtime::client::load_config(args.controller.kubeconfig.as_deref())
                .await
                .context("loading the Kubernetes client configuration for the webhook")?;
            let client = ferrolb_runtime::client::build(config, ferrolb_api::labels::COMPONENT_CONTROLLER, |_, _| {}).context("building the webhook's Kubernetes client")?;
            let opts = webhook_options(args.webhook.clone(), args.tls.clone(), namespace)?;
            let token = shutdown.clone();
            // The controller's /readyz waits for the webhook: bound means a
            // certificate is served (upkeep renews it before it expires).
            let serving = Arc::new(AtomicBool::new(false));
            let flag = serving.clone();
            args.controller.readiness_gate = ReadinessGate::new(move || flag.load(Ordering::Relaxed));
            Some(tokio::spawn(async move {
                let server = ferrolb_webhook::WebhookServer::bind(opts, client).await?;
                serving.store(true, Ordering::Relaxed);
                let result = server.run(token.cancelled_owned()).await.map_err(ferrolb_webhook::ServeError::Io);
                serving.store(false, Ordering::Relaxed);
                result
            }))
        }
    };

    let allocation = if args.webhook_mode == WebhookMode::Onlywebhook {
        // The webhook needs the logging the controller would have set up.
        ferrolb_runtime::logging::init(&args.controller.log_level, args.controller.log_format)
            .context("setting up logging")?;
        // MetalLB creates the memberlist Secret in every webhook mode.
        memberlist_secret(&args.controller).await
    } else {
        let token = shutdown.clone();
        ferrolb_controller::run(args.controller, token.cancelled_owned())
            .await
            .context("controller")
    };
    // Whatever ended first, stop the rest.
    shutdown.cancel();
    if let Some(handle) = webhook {
        handle
            .await
            .context("webhook task")?
            .context("admission webhook")?;
    }
    allocation
}

/// The memberlist Secret when `--ml-secret-name` is set (the controller
/// proper does this in its own start-up).
async fn memberlist_secret(opts: &ControllerOptions) -> anyhow::Result<()> {
    let Some(name) = opts.ml_secret_name() else { return Ok(()) };
    let config = ferrolb_runtime::client::load_config(opts.kubeconfig.as_deref())
        .await
        .context("loading the Kubernetes client configuration")?;
    let client = ferrolb_runtime::client::build(config, ferrolb_api::labels::COMPONENT_CONTROLLER, |_, _| {}).context("building the Kubernetes client")?;
    let deployment = opts.deployment.as_deref().unwrap_or_default();
    ferrolb_controller::memberlist::ensure_secret(&client, &opts.resolved_namespace(), name, deployment).await?;
    Ok(())
}

/// `ferrolb webhook`: only the admission and conversion webhooks.
#[derive(Debug, Args)]
pub struct WebhookCmd {
    /// MetalLB namespace.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Kubeconfig file; default: in-cluster config, then $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
    #[arg(long = "log-format", value_enum, default_value = "json")]
    pub log_format: ferrolb_runtime::logging::LogFormat,
    #[command(flatten)]
    pub webhook: WebhookArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
}

pub fn webhook(cmd: WebhookCmd) -> ExitCode {
    exit_code(runtime().and_then(|rt| rt.block_on(run_webhook(cmd))))
}

async fn run_webhook(cmd: WebhookCmd) -> anyhow::Result<()> {
    ferrolb_runtime::logging::init(&cmd.log_level, cmd.log_format).context("setting up logging")?;
    let shutdown = shutdown_on_signal()?;
    let config = ferrolb_runtime::client::load_config(cmd.kubeconfig.as_deref())
        .await
        .context("loading the Kubernetes client configuration")?;
    let client = ferrolb_runtime::client::build(config, ferrolb_runtime::client::WEBHOOK_COMPONENT, |_, _| {}).context("building the Kubernetes client")?;
    let opts = webhook_options(cmd.webhook, cmd.tls, cmd.namespace)?;
    ferrolb_webhook::serve(opts, client, shutdown.cancelled_owned())
        .await
        .context("admission webhook")
}

fn webhook_options(args: WebhookArgs, tls: TlsArgs, namespace: String) -> anyhow::Result<ServeOptions> {
    let mode = crate::bgp_mode::from_env().map_err(anyhow::Error::msg)?;
    let mut opts = ServeOptions::new(namespace);
    opts.args = args;
    opts.tls = tls;
    opts.mode = mode;
    Ok(opts)
}

/// Cancelled on SIGTERM or SIGINT, so every task can finish its current write
/// and release the leader Lease.
pub(crate) fn shutdown_on_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let trigger = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
        trigger.cancel();
    });
    Ok(token)
}
