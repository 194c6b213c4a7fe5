//! MetalLB's BFD metric families (observability.md §2.3, labels `peer` and
//! `vrf`), computed from the live sessions at each scrape, so a removed
//! session's series disappear with it. Counters are served under their
//! plain names, typed `unknown`: FRR mode's names carry no `_total`, which
//! prometheus-client adds to every counter. Not served:
//! `metallb_bfd_zebra_notifications` (FRR's zebra has no counterpart here).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;

use crate::instance::{Bfd, Counters};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    peer: String,
    vrf: String,
}

#[derive(Debug)]
pub(crate) struct Collector {
    pub bfd: Bfd,
}

type Read = fn(&Counters) -> &AtomicU64;

const COUNTERS: [(&str, &str, Read); 6] = [
    ("metallb_bfd_control_packet_input", "Number of received BFD control packets", |c| &c.control_in),
    ("metallb_bfd_control_packet_output", "Number of sent BFD control packets", |c| &c.control_out),
    ("metallb_bfd_echo_packet_input", "Number of received BFD echo packets", |c| &c.echo_in),
    ("metallb_bfd_echo_packet_output", "Number of sent BFD echo packets", |c| &c.echo_out),
    ("metallb_bfd_session_up_events", "Number of BFD session up events", |c| &c.up_events),
    ("metallb_bfd_session_down_events", "Number of BFD session down events", |c| &c.down_events),
];

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sessions = self.bfd.snapshot();
        let labels: Vec<Labels> =
            sessions.iter().map(|(k, vrf, _, _)| Labels { peer: k.peer.to_string(), vrf: vrf.clone() }).collect();
        {
            let mut m = encoder.encode_descriptor(
                "metallb_bfd_session_up",
                "BFD session state (1 is up, 0 is down)",
                None,
                MetricType::Gauge,
            )?;
            for ((_, _, up, _), l) in sessions.iter().zip(&labels) {
                m.encode_family(l)?.encode_gauge(&i64::from(*up))?;
            }
        }
        for (name, help, read) in COUNTERS {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Unknown)?;
            for ((_, _, _, c), l) in sessions.iter().zip(&labels) {
                let v = i64::try_from(read(c).load(Ordering::Relaxed)).unwrap_or(i64::MAX);
                m.encode_family(l)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }
}
