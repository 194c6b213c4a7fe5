//! CRD-schema rules that typed deserialization cannot express (ranges, required names,
//! duration syntax). A violation is an input error, as `kubectl apply` would refuse
//! the object; MetalLB's own validation rules stay in the builder.

use crate::duration::{self, SECOND};
use ferrolb_api::v1beta1::{BFDProfile, BGPAdvertisement, L2Advertisement};
use ferrolb_api::{v1beta1, v1beta2};

/// `(field path, message)` of the first violation.
pub(crate) type Violation = (String, String);

fn range(field: String, value: i64, min: i64, max: i64) -> Result<(), Violation> {
    if value < min {
        let msg = format!("Invalid value: {value}: {field} in body should be greater than or equal to {min}");
        return Err((field, msg));
    }
    if value > max {
        let msg = format!("Invalid value: {value}: {field} in body should be less than or equal to {max}");
        return Err((field, msg));
    }
    Ok(())
}

fn optional_range(field: &str, value: Option<u32>, min: i64, max: i64) -> Result<(), Violation> {
    match value {
        Some(v) => range(field.to_string(), i64::from(v), min, max),
        None => Ok(()),
    }
}

/// `metav1.Duration` syntax.
fn duration_text(field: &str, value: Option<&str>) -> Result<Option<duration::Nanos>, Violation> {
    value
        .map(|v| duration::parse(v).map_err(|e| (field.to_string(), e)))
        .transpose()
}

pub(crate) fn l2_advertisement(a: &L2Advertisement) -> Result<(), Violation> {
    for (i, p) in a.spec.preferred_node_selectors.iter().enumerate() {
        range(format!("spec.preferredNodeSelectors[{i}].weight"), i64::from(p.weight), 1, 100)?;
    }
    Ok(())
}

pub(crate) fn bgp_advertisement(a: &BGPAdvertisement) -> Result<(), Violation> {
    range("spec.aggregationLength".into(), i64::from(a.spec.aggregation_length), 1, i64::from(i32::MAX))
}

pub(crate) fn bfd_profile(p: &BFDProfile) -> Result<(), Violation> {
    let s = &p.spec;
    optional_range("spec.receiveInterval", s.receive_interval, 10, 60000)?;
    optional_range("spec.transmitInterval", s.transmit_interval, 10, 60000)?;
    optional_range("spec.detectMultiplier", s.detect_multiplier, 2, 255)?;
    optional_range("spec.echoInterval", s.echo_interval, 10, 60000)?;
    optional_range("spec.minimumTtl", s.minimum_ttl, 1, 254)
}

pub(crate) fn bgp_peer_v1beta1(p: &v1beta1::BGPPeer) -> Result<(), Violation> {
    range("spec.peerPort".into(), i64::from(p.spec.peer_port), 0, 16384)?;
    duration_text("spec.holdTime", p.spec.hold_time.as_deref())?;
    duration_text("spec.keepaliveTime", p.spec.keepalive_time.as_deref())?;
    for (i, sel) in p.spec.node_selectors.iter().enumerate() {
        for (j, e) in sel.match_expressions.iter().enumerate() {
            if e.values.is_empty() {
                let field = format!("spec.nodeSelectors[{i}].matchExpressions[{j}].values");
                let msg = format!("Invalid value: 0: {field} in body should have at least 1 items");
                return Err((field, msg));
            }
        }
    }
    Ok(())
}

pub(crate) fn bgp_peer(p: &v1beta2::BGPPeer) -> Result<(), Violation> {
    let s = &p.spec;
    range("spec.peerPort".into(), i64::from(s.peer_port), 1, 16384)?;
    duration_text("spec.holdTime", s.hold_time.as_deref())?;
    duration_text("spec.keepaliveTime", s.keepalive_time.as_deref())?;
    if let Some(ct) = duration_text("spec.connectTime", s.connect_time.as_deref())? {
        let field = "spec.connectTime".to_string();
        if !(SECOND..=65535 * SECOND).contains(&ct) {
            return Err((field, "connect time should be between 1 seconds to 65535".into()));
        }
        if ct % SECOND != 0 {
            return Err((field, "connect time should contain a whole number of seconds".into()));
        }
    }
    Ok(())
}
