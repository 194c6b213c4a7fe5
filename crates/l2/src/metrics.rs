//! The responder's metric families (observability.md §2.3 plus ferrolb's).

use std::net::IpAddr;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IpLabels {
    pub ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: String,
}

/// A counter exposed under its plain name. MetalLB's Go speaker serves
/// `metallb_layer2_requests_received` etc. without the `_total` suffix that
/// prometheus-client gives every OpenMetrics counter; dashboards and alerts
/// query those names, so the samples keep them (typed `unknown`, which
/// OpenMetrics allows without a suffix; `rate()` works the same).
#[derive(Clone, Debug, Default)]
pub(crate) struct PlainCounter(Counter);

impl PlainCounter {
    pub fn inc_by(&self, n: u64) {
        self.0.inc_by(n);
    }
}

impl TypedMetric for PlainCounter {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for PlainCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Unknown
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Metrics {
    pub requests_received: Family<IpLabels, PlainCounter>,
    pub responses_sent: Family<IpLabels, PlainCounter>,
    pub gratuitous_sent: Family<IpLabels, PlainCounter>,
    pub conflicts: Family<IpLabels, Counter>,
    pub frames_dropped: Family<ReasonLabels, Counter>,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "metallb_layer2_requests_received",
            "Number of layer2 requests received for owned IPs",
            m.requests_received.clone(),
        );
        registry.register(
            "metallb_layer2_responses_sent",
            "Number of layer2 responses sent for owned IPs",
            m.responses_sent.clone(),
        );
        registry.register(
            "metallb_layer2_gratuitous_sent",
            "Number of gratuitous layer2 packets sent for owned IPs",
            m.gratuitous_sent.clone(),
        );
        registry.register(
            "ferrolb_layer2_conflicts",
            "Times another MAC was seen answering or announcing an address this node announces",
            m.conflicts.clone(),
        );
        registry.register(
            "ferrolb_layer2_frames_dropped",
            "Received frames dropped before answering: invalid (by decode error), queue_full or socket_buffer_full under a flood",
            m.frames_dropped.clone(),
        );
        m
    }

    pub fn ip(ip: &IpAddr) -> IpLabels {
        IpLabels { ip: ip.to_string() }
    }

    /// speaker.md §3.7: the series of a withdrawn address are deleted.
    pub fn forget(&self, ip: &IpAddr) {
        let l = Self::ip(ip);
        self.requests_received.remove(&l);
        self.responses_sent.remove(&l);
        self.gratuitous_sent.remove(&l);
        self.conflicts.remove(&l);
    }

    pub fn dropped(&self, reason: &str, n: u64) {
        self.frames_dropped.get_or_create(&ReasonLabels { reason: reason.to_string() }).inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_metallbs_and_series_are_deleted_on_forget() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let ip: IpAddr = "198.51.100.200".parse().expect("ip");
        m.requests_received.get_or_create(&Metrics::ip(&ip)).inc_by(3);
        m.conflicts.get_or_create(&Metrics::ip(&ip)).inc();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("metallb_layer2_requests_received{ip=\"198.51.100.200\"} 3\n"), "{text}");
        assert!(text.contains("ferrolb_layer2_conflicts_total{ip=\"198.51.100.200\"} 1\n"), "{text}");
        m.forget(&ip);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(!text.contains("198.51.100.200"), "{text}");
    }
}
