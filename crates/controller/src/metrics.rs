//! Prometheus metrics with MetalLB's names (observability.md §2.1, §2.2) plus
//! a few ferrolb-only series prefixed `ferrolb_controller_`.
//!
//! Each controller instance owns its registry, so several controllers in one
//! process (tests) do not share counters.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ferrolb_runtime::k8s_client_metrics::K8sClientMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub method: String,
    pub resource: String,
}

/// Per-pool address figures (allocation.md §9), as the allocator reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolGauges {
    pub total_v4: i64,
    pub total_v6: i64,
    pub in_use_v4: i64,
    pub in_use_v6: i64,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    addresses_total: Family<PoolLabel, Gauge>,
    ipv4_addresses_total: Family<PoolLabel, Gauge>,
    ipv6_addresses_total: Family<PoolLabel, Gauge>,
    addresses_in_use_total: Family<PoolLabel, Gauge>,
    ipv4_addresses_in_use_total: Family<PoolLabel, Gauge>,
    ipv6_addresses_in_use_total: Family<PoolLabel, Gauge>,
    /// The `metallb_k8s_client_*` families, shared with the speaker.
    pub k8s: K8sClientMetrics,
    pub api_requests: Family<RequestLabel, Counter>,
    pub is_leader: Gauge,
    pub events_emitted: Counter,
    pub events_aggregated: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            addresses_total: Family::default(),
            ipv4_addresses_total: Family::default(),
            ipv6_addresses_total: Family::default(),
            addresses_in_use_total: Family::default(),
            ipv4_addresses_in_use_total: Family::default(),
            ipv6_addresses_in_use_total: Family::default(),
            k8s: K8sClientMetrics::default(),
            api_requests: Family::default(),
            is_leader: Gauge::default(),
            events_emitted: Counter::default(),
            events_aggregated: Counter::default(),
        };
        let gauges = [
            ("metallb_allocator_addresses_total", "Number of usable IP addresses, per pool", &m.addresses_total),
            ("metallb_allocator_ipv4_addresses_total", "Number of usable IPv4 addresses, per pool", &m.ipv4_addresses_total),
            ("metallb_allocator_ipv6_addresses_total", "Number of usable IPv6 addresses, per pool", &m.ipv6_addresses_total),
            ("metallb_allocator_addresses_in_use_total", "Number of IP addresses in use, per pool", &m.addresses_in_use_total),
            ("metallb_allocator_ipv4_addresses_in_use_total", "Number of IPv4 addresses in use, per pool", &m.ipv4_addresses_in_use_total),
            ("metallb_allocator_ipv6_addresses_in_use_total", "Number of IPv6 addresses in use, per pool", &m.ipv6_addresses_in_use_total),
        ];
        for (name, help, family) in gauges {
            registry.register(name, help, family.clone());
        }
        let k8s = K8sClientMetrics::register(&mut registry);
        registry.register(
            "ferrolb_controller_api_requests",
            "Requests sent to the Kubernetes API server, by HTTP method and resource.",
            m.api_requests.clone(),
        );
        registry.register(
            "ferrolb_controller_leader_bool",
            "1 while this instance holds the leader Lease (or runs without leader election).",
            m.is_leader.clone(),
        );
        registry.register(
            "ferrolb_controller_events_emitted",
            "Kubernetes Event objects created.",
            m.events_emitted.clone(),
        );
        registry.register(
            "ferrolb_controller_events_aggregated",
            "Repeated identical events folded into the count of an existing Event.",
            m.events_aggregated.clone(),
        );
        Metrics { registry: Arc::new(registry), k8s, ..m }
    }

    /// Sets the allocator gauges of one pool.
    pub fn set_pool(&self, pool: &str, g: PoolGauges) {
        let l = PoolLabel { pool: pool.to_string() };
        self.addresses_total
            .get_or_create(&l)
            .set(g.total_v4.saturating_add(g.total_v6));
        self.ipv4_addresses_total.get_or_create(&l).set(g.total_v4);
        self.ipv6_addresses_total.get_or_create(&l).set(g.total_v6);
        self.addresses_in_use_total
            .get_or_create(&l)
            .set(g.in_use_v4.saturating_add(g.in_use_v6));
        self.ipv4_addresses_in_use_total.get_or_create(&l).set(g.in_use_v4);
        self.ipv6_addresses_in_use_total.get_or_create(&l).set(g.in_use_v6);
    }

    /// Deletes the series of a pool that left the configuration.
    pub fn remove_pool(&self, pool: &str) {
        let l = PoolLabel { pool: pool.to_string() };
        for f in [
            &self.addresses_total,
            &self.ipv4_addresses_total,
            &self.ipv6_addresses_total,
            &self.addresses_in_use_total,
            &self.ipv4_addresses_in_use_total,
            &self.ipv6_addresses_in_use_total,
        ] {
            f.remove(&l);
        }
    }

    pub fn count_request(&self, method: &str, resource: &str) {
        self.api_requests
            .get_or_create(&RequestLabel {
                method: method.to_string(),
                resource: resource.to_string(),
            })
            .inc();
    }

    /// Total requests for a resource (all methods), e.g. `services/status`.
    pub fn requests_for(&self, method: Option<&str>, resource: &str) -> u64 {
        let mut total = 0;
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "WATCH", "LIST"] {
            if method.is_some_and(|want| want != m) {
                continue;
            }
            let l = RequestLabel { method: m.to_string(), resource: resource.to_string() };
            if let Some(c) = self.api_requests.get(&l) {
                total += c.get();
            }
        }
        total
    }

    /// OpenMetrics text of every registered family.
    pub fn encode(&self) -> String {
        ferrolb_runtime::http_server::encode(&self.registry)
    }

    /// The registry, for the `/metrics` endpoint.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The counters the event recorder increments.
    pub fn event_counters(&self) -> ferrolb_runtime::events::EventCounters {
        ferrolb_runtime::events::EventCounters {
            emitted: self.events_emitted.clone(),
            aggregated: self.events_aggregated.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_metallb() {
        let m = Metrics::new();
        m.set_pool("a", PoolGauges { total_v4: 4, total_v6: 0, in_use_v4: 1, in_use_v6: 0 });
        m.k8s.updates.inc();
        m.k8s.applied();
        let text = m.encode();
        for line in [
            "metallb_allocator_addresses_total{pool=\"a\"} 4",
            "metallb_allocator_ipv4_addresses_in_use_total{pool=\"a\"} 1",
            "metallb_allocator_ipv6_addresses_total{pool=\"a\"} 0",
            "metallb_k8s_client_updates_total 1",
            "metallb_k8s_client_update_errors_total 0",
            "metallb_k8s_client_config_loaded_bool 1",
            "metallb_k8s_client_config_stale_bool 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        m.remove_pool("a");
        assert!(!m.encode().contains("pool=\"a\""));
    }

    #[test]
    fn big_ipv6_pools_saturate() {
        let m = Metrics::new();
        m.set_pool("v6", PoolGauges { total_v4: 1, total_v6: i64::MAX, in_use_v4: 0, in_use_v6: 0 });
        assert!(m.encode().contains("metallb_allocator_addresses_total{pool=\"v6\"} 9223372036854775807"));
    }
}
