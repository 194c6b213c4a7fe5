//! The speaker's metric families under MetalLB's names (observability.md
//! §2.2–2.3). The `metallb_k8s_client_*` families are the runtime's, shared
//! with the controller; the protocol crates register their own families.

use std::fmt::Write as _;
use std::net::IpAddr;

use ferrolb_allocator::ServiceKey;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use ferrolb_runtime::k8s_client_metrics::K8sClientMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
/// One per announced address: the Service's key and `protocol` and `node`
/// are shared, not copied into each of 10,000 label sets, and the address
/// is written out only when the metrics are read.
pub struct AnnouncedLabels {
    /// `namespace/name`.
    pub service: Shown<ServiceKey>,
    pub protocol: &'static str,
    pub node: std::sync::Arc<str>,
    pub ip: Shown<IpAddr>,
}

/// A label value kept as its value and written out (`Display`) only when
/// the metrics are read.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Shown<T>(pub T);

impl<T: std::fmt::Display> EncodeLabelValue for Shown<T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{}", self.0)
    }
}

/// MetalLB native's label of its BGP families: `<address>:<port>`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BgpPeerLabels {
    pub peer: String,
}

/// The BGP families of MetalLB's native speaker (observability.md §2.3).
#[derive(Clone, Default)]
pub struct BgpMetrics {
    pub session_up: Family<BgpPeerLabels, Gauge>,
    pub updates: Family<BgpPeerLabels, Counter>,
    pub announced_prefixes: Family<BgpPeerLabels, Gauge>,
    pub pending_prefixes: Family<BgpPeerLabels, Gauge>,
}

impl BgpMetrics {
    fn register(&self, metallb: &mut Registry) {
        let bgp = metallb.sub_registry_with_prefix("bgp");
        bgp.register("session_up", "BGP session state (1 is up, 0 is down)", self.session_up.clone());
        bgp.register("updates", "Number of BGP UPDATE messages sent", self.updates.clone());
        bgp.register("announced_prefixes_total", "Number of prefixes currently being advertised on the BGP session", self.announced_prefixes.clone());
        bgp.register("pending_prefixes_total", "Number of prefixes that should be advertised on the BGP session", self.pending_prefixes.clone());
    }

    /// Deletes a closed session's series, as MetalLB does.
    pub fn forget(&self, labels: &BgpPeerLabels) {
        self.session_up.remove(labels);
        self.updates.remove(labels);
        self.announced_prefixes.remove(labels);
        self.pending_prefixes.remove(labels);
    }
}

#[derive(Clone, Default)]
pub struct SpeakerMetrics {
    pub announced: Family<AnnouncedLabels, Gauge>,
    pub bgp: BgpMetrics,
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
        m.bgp.register(metallb);
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
                service: Shown(ServiceKey::new("default", "web")),
                protocol: "layer2",
                node: "n1".into(),
                ip: Shown("198.51.100.10".parse().unwrap()),
            })
            .set(1);
        m.k8s.updates.inc();
        let peer = BgpPeerLabels { peer: "203.0.113.1:179".into() };
        m.bgp.session_up.get_or_create(&peer).set(1);
        m.bgp.updates.get_or_create(&peer).inc_by(3);
        m.bgp.announced_prefixes.get_or_create(&peer).set(2);
        m.bgp.pending_prefixes.get_or_create(&peer).set(2);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains(
            "metallb_speaker_announced{service=\"default/web\",protocol=\"layer2\",node=\"n1\",ip=\"198.51.100.10\"} 1"
        ));
        assert!(text.contains("metallb_k8s_client_updates_total 1"));
        assert!(text.contains("metallb_k8s_client_config_stale_bool 0"));
        for line in [
            "metallb_bgp_session_up{peer=\"203.0.113.1:179\"} 1",
            "metallb_bgp_updates_total{peer=\"203.0.113.1:179\"} 3",
            "metallb_bgp_announced_prefixes_total{peer=\"203.0.113.1:179\"} 2",
            "metallb_bgp_pending_prefixes_total{peer=\"203.0.113.1:179\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
