//! `ferrolb plan`: the allocation a freshly started controller would make.

use std::collections::HashMap;
use std::net::IpAddr;
use std::process::ExitCode;

use ferrolb_allocator::{Allocator, ConvergeOptions, ServiceKey, ServiceView};
use ferrolb_config::assemble::Config;
use ferrolb_config::manifest::Manifests;

use super::ignored;
use super::report::{self, Plan, PoolPlan, ServicePlan, Status};
use super::simulate::{self, Observer, Outcome};
use crate::cli::{InputArgs, PlanArgs};

pub fn run(args: &PlanArgs) -> ExitCode {
    let manifests = match super::load(&args.input) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let config = match super::build(&manifests, &args.input) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let plan = make_plan(&manifests, config, &args.input, &mut ());
    match report::render(&plan, args.output) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

pub fn converge_options(input: &InputArgs) -> ConvergeOptions {
    ConvergeOptions { lb_class: input.lb_class.clone() }
}

/// Views of every Service in the input, through the same mapping the live
/// controller uses. A manifest without a namespace means `default`, as
/// `kubectl apply` reads it.
pub fn views(manifests: &Manifests) -> Vec<ServiceView> {
    manifests
        .services
        .iter()
        .map(|svc| {
            let mut view = ferrolb_config::view::service_view(svc);
            if view.namespace.is_empty() {
                view.namespace = "default".to_string();
            }
            view
        })
        .collect()
}

pub fn make_plan(manifests: &Manifests, config: Config, input: &InputArgs, observer: &mut dyn Observer) -> Plan {
    let views = views(manifests);
    // The Services as read: passes rewrite the status of those they clear.
    let read: HashMap<ServiceKey, ServiceView> = views.iter().map(|v| (v.key(), v.clone())).collect();
    let (allocator, outcomes) = simulate::run(config.pools, views, &converge_options(input), observer);
    let mut services: Vec<ServicePlan> = outcomes
        .iter()
        .map(|o| service_plan(o, read.get(&o.view.key()).unwrap_or(&o.view), input.lb_class.as_deref()))
        .collect();
    services.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Plan { services, pools: pool_plans(&allocator) }
}

fn service_plan(outcome: &Outcome, input: &ServiceView, lb_class: Option<&str>) -> ServicePlan {
    let c = &outcome.convergence;
    if let Some(why) = &c.ignored {
        // Not ferrolb's Service, so not ferrolb's addresses: none are listed.
        return ServicePlan {
            namespace: outcome.view.namespace.clone(),
            name: outcome.view.name.clone(),
            status: Status::Ignored,
            ips: Vec::new(),
            pool: None,
            reason: Some(ignored::reason(why, input, lb_class)),
        };
    }
    let mut ips: Vec<IpAddr> = c.ips();
    // The contract lists IPv4 before IPv6 whatever the status order is.
    ips.sort_by_key(|ip| ip.is_ipv6());
    let ips: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let (status, reason) = if !ips.is_empty() {
        // A Service that keeps its addresses despite a problem with its
        // request (a malformed annotation on an allocated Service) is still
        // served: assigned. The problem shows in its events.
        (Status::Assigned, None)
    } else {
        let reason = c
            .failure
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_else(|| "no addresses were assigned".to_string());
        (Status::Pending, Some(reason))
    };
    ServicePlan {
        namespace: outcome.view.namespace.clone(),
        name: outcome.view.name.clone(),
        status,
        pool: if ips.is_empty() { None } else { c.pool.clone() },
        ips,
        reason,
    }
}

fn pool_plans(allocator: &Allocator) -> Vec<PoolPlan> {
    let mut pools: Vec<PoolPlan> = allocator
        .pool_defs()
        .filter_map(|def| {
            let counters = allocator.pool_counters(&def.name)?;
            Some(PoolPlan {
                name: def.name.clone(),
                assigned_ipv4: counters.assigned_v4,
                available_ipv4: counters.available_v4,
                assigned_ipv6: counters.assigned_v6,
                available_ipv6: counters.available_v6,
            })
        })
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    pools
}
