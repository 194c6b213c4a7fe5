//! The speaker's metric families under MetalLB's names (observability.md
//! §2.2–2.3). The `metallb_k8s_client_*` families are the runtime's, shared
//! with the controller; the protocol crates register their own families.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ferrolb_runtime::k8s_client_metrics::K8sClientMetrics;

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
    pub k8s: K8sClientMetrics,
}

impl SpeakerMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let m = SpeakerMetrics { k8s: K8sClientMetrics::register(registry), ..SpeakerMetrics::default() };
        let metallb = registry.sub_registry_with_prefix("metallb");
        metallb.register(
            "speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged.",
            m.announced.clone(),
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
        m.k8s.updates.inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "metallb_speaker_announced{service=\"default/web\",protocol=\"layer2\",node=\"n1\",ip=\"198.51.100.10\"} 1"
        ));
        assert!(text.contains("metallb_k8s_client_updates_total 1"));
        assert!(text.contains("metallb_k8s_client_config_stale_bool 0"));
    }
}
