//! Command-line arguments. The offline commands follow
//! `shared/spec/cli-contract.md` to the letter: outside scripts depend on it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about = "MetalLB-compatible load balancer for bare-metal Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Allocate addresses offline over manifest files, as a freshly started controller would.
    Plan(PlanArgs),
    /// Build and validate the configuration in manifest files.
    Validate(InputArgs),
    /// Explain, pool by pool, how one service is (or is not) given an address.
    Explain(ExplainArgs),
    /// Print the CustomResourceDefinitions (metallb.io).
    Crds,
    /// Run the controller: assigns addresses to LoadBalancer Services (and serves the admission webhooks).
    Controller(Box<crate::serve::ControllerArgs>),
    /// Run the speaker: announces the assigned addresses from this node (layer 2).
    Speaker(Box<ferrolb_speaker::SpeakerOptions>),
    /// Serve only the admission and conversion webhooks.
    Webhook(Box<crate::serve::WebhookCmd>),
}

/// Where the manifests come from and how to read them (shared by the offline commands).
#[derive(Debug, Args)]
pub struct InputArgs {
    /// A manifest file or a directory (read recursively); repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub paths: Vec<PathBuf>,
    /// The namespace MetalLB's own resources live in; others are ignored.
    #[arg(long, env = "METALLB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Handle only services with this spec.loadBalancerClass (default: only services without one).
    #[arg(long = "lb-class")]
    pub lb_class: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The service to explain, as NAMESPACE/NAME.
    pub service: String,
}
