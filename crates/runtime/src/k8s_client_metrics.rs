//! The `metallb_k8s_client_*` families (observability.md §2.2), shared by the
//! controller and the speaker: one definition, so names and help texts
//! cannot drift apart.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Reconciliations and the configuration's load state.
#[derive(Clone, Debug, Default)]
pub struct K8sClientMetrics {
    /// `metallb_k8s_client_updates_total`: reconciliations started.
    pub updates: Counter,
    /// `metallb_k8s_client_update_errors_total`: reconciliations that ended
    /// in an error (parse failures of the configuration excluded).
    pub update_errors: Counter,
    /// `metallb_k8s_client_config_loaded_bool`: 1 once a configuration was applied.
    pub config_loaded: Gauge,
    /// `metallb_k8s_client_config_stale_bool`: 1 while running on an older configuration.
    pub config_stale: Gauge,
}

impl K8sClientMetrics {
    /// Creates the families and registers them in `registry` (at its root:
    /// the names carry the `metallb_` prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let m = K8sClientMetrics::default();
        // prometheus-client appends `_total` to counter names when encoding.
        registry.register(
            "metallb_k8s_client_updates",
            "Number of k8s object updates that have been processed.",
            m.updates.clone(),
        );
        registry.register(
            "metallb_k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason.",
            m.update_errors.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
            m.config_loaded.clone(),
        );
        registry.register(
            "metallb_k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
            m.config_stale.clone(),
        );
        m
    }

    /// A configuration was applied: loaded, not stale.
    pub fn applied(&self) {
        self.config_loaded.set(1);
        self.config_stale.set(0);
    }

    /// The latest configuration could not be parsed or applied.
    pub fn stale(&self) {
        self.config_stale.set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_transitions() {
        let mut registry = Registry::default();
        let m = K8sClientMetrics::register(&mut registry);
        let text = |r: &Registry| crate::http_server::encode(r);
        let fresh = text(&registry);
        for line in [
            "metallb_k8s_client_updates_total 0",
            "metallb_k8s_client_update_errors_total 0",
            "metallb_k8s_client_config_loaded_bool 0",
            "metallb_k8s_client_config_stale_bool 0",
        ] {
            assert!(fresh.lines().any(|l| l == line), "missing {line:?} in\n{fresh}");
        }
        assert!(fresh.contains("# HELP metallb_k8s_client_config_stale_bool 1 if running on a stale configuration, because the latest config failed to load."));
        m.stale();
        m.updates.inc();
        let stale = text(&registry);
        assert!(stale.lines().any(|l| l == "metallb_k8s_client_config_stale_bool 1"));
        assert!(stale.lines().any(|l| l == "metallb_k8s_client_updates_total 1"));
        m.applied();
        m.stale();
        m.applied();
        let after = text(&registry);
        assert!(after.lines().any(|l| l == "metallb_k8s_client_config_stale_bool 0"));
        assert!(after.lines().any(|l| l == "metallb_k8s_client_config_loaded_bool 1"));
    }
}
