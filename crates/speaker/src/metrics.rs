//! The speaker's metric families under MetalLB's names (observability.md
//! §2.2–2.3). The protocol crates register their own families.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnouncedLabels {
    pub service: String,
    pub protocol: String,
    pub node: String,
    pub ip: String,
}

#[derive(Clone, Default)]
pub struct SpeakerMetrics {
    pub announced: Family<AnnouncedLabels, Gauge>,
    pub updates: Counter,
    pub update_errors: Counter,
    pub config_loaded: Gauge,
    pub config_stale: Gauge,
}

impl SpeakerMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = SpeakerMetrics::default();
        let metallb = registry.sub_registry_with_prefix("metallb");
        metallb.register(
            "speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.",
            m.announced.clone(),
        );
        // prometheus-client appends `_total` to counters itself.
        metallb.register("k8s_client_updates", "Number of k8s object updates that have been processed.", m.updates.clone());
        metallb.register(
            "k8s_client_update_errors",
            "Number of k8s object updates that failed for some reason.",
            m.update_errors.clone(),
        );
        metallb.register(
            "k8s_client_config_loaded_bool",
            "1 if the MetalLB configuration was successfully loaded at least once.",
            m.config_loaded.clone(),
        );
        metallb.register(
            "k8s_client_config_stale_bool",
            "1 if running on a stale configuration, because the latest config failed to load.",
            m.config_stale.clone(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_metallbs() {
        let mut registry = Registry::default();
        let m = SpeakerMetrics::register(&mut registry);
        m.announced
            .get_or_create(&AnnouncedLabels {
                service: "default/web".into(),
                protocol: "layer2".into(),
                node: "n1".into(),
                ip: "198.51.100.10".into(),
            })
            .set(1);
        m.updates.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "metallb_speaker_announced{service=\"default/web\",protocol=\"layer2\",node=\"n1\",ip=\"198.51.100.10\"} 1"
        ));
        assert!(text.contains("metallb_k8s_client_updates_total 1"));
        assert!(text.contains("metallb_k8s_client_config_stale_bool 0"));
    }
}
