//! Prometheus metrics of the membership layer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::state::Stats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Default)]
pub struct Metrics {
    pub members: Gauge,
    probes: Counter,
    false_suspicions: Counter,
    declared_dead: Counter,
    refutations: Counter,
    syncs: Counter,
    pub datagrams_sent: Counter,
    pub datagrams_received: Counter,
    pub datagrams_rejected: Family<ReasonLabel, Counter>,
    last: Stats,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let counters: [(&str, &str, &Counter); 7] = [
            ("ferrolb_membership_probes", "Watched speakers probed after a silence", &m.probes),
            (
                "ferrolb_membership_false_suspicions",
                "Probes answered: the speaker was alive but its heartbeats did not arrive",
                &m.false_suspicions,
            ),
            ("ferrolb_membership_declared_dead", "Speakers this node found dead", &m.declared_dead),
            ("ferrolb_membership_refutations", "Times this speaker was held dead by a peer and refuted it", &m.refutations),
            ("ferrolb_membership_syncs", "Full view exchanges started or answered", &m.syncs),
            ("ferrolb_membership_datagrams_sent", "Datagrams sent", &m.datagrams_sent),
            ("ferrolb_membership_datagrams_received", "Datagrams accepted", &m.datagrams_received),
        ];
        for (name, help, counter) in counters {
            registry.register(name, help, counter.clone());
        }
        registry.register("ferrolb_membership_members", "Live speakers in this node's view, itself included", m.members.clone());
        registry.register(
            "ferrolb_membership_datagrams_rejected",
            "Datagrams refused, by reason (auth, replay, oversize, malformed, foreign)",
            m.datagrams_rejected.clone(),
        );
        m
    }

    /// Brings the counters up to the state machine's totals.
    pub fn observe(&mut self, s: Stats) {
        let l = self.last;
        self.probes.inc_by(s.probes - l.probes);
        self.false_suspicions.inc_by(s.false_suspicions - l.false_suspicions);
        self.declared_dead.inc_by(s.declared_dead - l.declared_dead);
        self.refutations.inc_by(s.refutations - l.refutations);
        self.syncs.inc_by(s.syncs - l.syncs);
        self.last = s;
    }
}
