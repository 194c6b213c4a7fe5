//! `ferrolb explain NAMESPACE/NAME`: runs the plan and reports, for one
//! Service, every pool in the order the allocator considered them at the
//! moment its outcome was decided, eligible or not and why, then the outcome.

use std::fmt::Write as _;
use std::process::ExitCode;

use ferrolb_allocator::{Allocator, Convergence, Explanation, ServiceView, explain_with};

use super::EXIT_BAD_INPUT;
use super::ignored;
use super::plan::{converge_options, make_plan, views};
use super::report::Status;
use super::simulate::Observer;
use crate::cli::ExplainArgs;

pub fn run(args: &ExplainArgs) -> ExitCode {
    let Some((namespace, name)) = args.service.split_once('/') else {
        eprintln!("error: service {:?} must be given as NAMESPACE/NAME", args.service);
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let manifests = match super::load(&args.input) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let Some(input) = views(&manifests).into_iter().find(|v| v.namespace == namespace && v.name == name) else {
        eprintln!("error: service {namespace}/{name} is not in the input");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let config = match super::build(&manifests, &args.input) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut watcher = Watcher {
        namespace,
        name,
        options: converge_options(&args.input),
        candidate: None,
        decided: None,
    };
    let plan = make_plan(&manifests, config, &args.input, &mut watcher);
    let Some(explanation) = watcher.decided else {
        eprintln!("error: service {namespace}/{name} was not processed");
        return ExitCode::from(EXIT_BAD_INPUT);
    };
    let status = plan
        .services
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)
        .map(|s| s.status);
    print!("{}", render(&explanation, status, &input, args.input.lb_class.as_deref()));
    ExitCode::SUCCESS
}

struct Watcher<'a> {
    namespace: &'a str,
    name: &'a str,
    options: ferrolb_allocator::ConvergeOptions,
    candidate: Option<Explanation>,
    decided: Option<Explanation>,
}

impl Watcher<'_> {
    fn is_target(&self, view: &ServiceView) -> bool {
        view.namespace == self.namespace && view.name == self.name
    }
}

impl Observer for Watcher<'_> {
    fn before(&mut self, allocator: &Allocator, view: &ServiceView) {
        if self.is_target(view) {
            self.candidate = Some(explain_with(allocator, view, &self.options));
        }
    }

    fn after(&mut self, view: &ServiceView, _: &Convergence, decisive: bool) {
        if self.is_target(view) && decisive {
            self.decided = self.candidate.take();
        }
    }
}

/// `input`: the Service as read, for the reason of an ignored one.
fn render(e: &Explanation, status: Option<Status>, input: &ServiceView, lb_class: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Service {}/{}", e.service.namespace, e.service.name);
    if let Some(why) = &e.outcome.ignored {
        let _ = writeln!(out, "Outcome: ignored: {}", ignored::reason(why, input, lb_class));
        return out;
    }
    let _ = writeln!(out, "Request: {}", describe_path(&e.path));
    if e.pools.is_empty() {
        let _ = writeln!(out, "Pools: none considered");
    } else {
        let _ = writeln!(out, "Pools, in the order the allocator considers them:");
        let width = e.pools.iter().map(|p| p.pool.len()).max().unwrap_or(0);
        for (i, verdict) in e.pools.iter().enumerate() {
            let eligibility = if verdict.eligible { "eligible" } else { "not eligible" };
            let _ = writeln!(
                out,
                "  {:>2}. {:<width$}  {eligibility}: {}",
                i + 1,
                verdict.pool,
                verdict.reason,
            );
        }
    }
    let ips = e.outcome.ingress.join(", ");
    match (status, &e.outcome.failure) {
        (Some(Status::Assigned), _) | (None, None) if !ips.is_empty() => {
            let pool = e.outcome.pool.as_deref().unwrap_or("?");
            let _ = writeln!(out, "Outcome: assigned {ips} from pool \"{pool}\"");
        }
        (_, Some(failure)) => {
            let _ = writeln!(out, "Outcome: pending: {}", failure.message);
        }
        _ => {
            let _ = writeln!(out, "Outcome: pending: no addresses were assigned");
        }
    }
    for event in &e.outcome.events {
        let _ = writeln!(out, "Event: {:?} {}: {}", event.type_, event.reason, event.message);
    }
    out
}

fn describe_path(path: &ferrolb_allocator::AllocationPath) -> String {
    use ferrolb_allocator::AllocationPath as P;
    match path {
        P::Unmanaged => "not handled (load-balancer class)".into(),
        P::NotLoaded => "no pool configuration loaded".into(),
        P::NotLoadBalancer => "not of type LoadBalancer".into(),
        P::NotAttempted => "no allocation attempted".into(),
        P::Kept => "keeps its current addresses".into(),
        P::RequestedIps(ips) => {
            let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
            format!("the addresses {}", list.join(", "))
        }
        P::RequestedPool(pool) => format!("an address from pool \"{pool}\""),
        P::Automatic => "automatic allocation".into(),
    }
}
