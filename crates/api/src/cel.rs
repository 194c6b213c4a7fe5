//! The `x-kubernetes-validations` (CEL) rules of the generated CRDs, as
//! constants so the schema attributes, the tests and docs/crd-validation.md
//! all refer to one text.
//!
//! Every rule here rejects only objects that MetalLB itself would report as an
//! invalid configuration (or that MetalLB's own schema rejects), so no manifest
//! MetalLB accepts as valid is refused. Rules look at scalars and list sizes
//! only: their cost is constant, far below the API server's CEL budget, even
//! on lists without `maxItems`.

/// A CEL rule and the message the API server returns when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CelRule {
    pub rule: &'static str,
    pub message: &'static str,
}

/// IPAddressPool `spec.addresses`: the check MetalLB performs when building
/// its configuration (crds.md §2.4 P2), with MetalLB's message.
pub const POOL_ADDRESSES_NOT_EMPTY: CelRule = CelRule {
    rule: "size(self) > 0",
    message: "pool has no prefixes defined",
};

/// BGPAdvertisement `spec`: MetalLB's schema rule (crds.md §4).
pub const BGPADV_SERVICE_SELECTORS_AGGREGATION: CelRule = CelRule {
    rule: "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || \
           ((!has(self.aggregationLength) || self.aggregationLength == 32) && \
           (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))",
    message: "serviceSelectors and aggregationLength are mutually exclusive, can only be used \
              together with default aggregationLength (32) and aggregationLengthV6 (128)",
};

/// BGPPeer (both versions) `spec`: crds.md §5.4 R1.
pub const PEER_MY_ASN_SET: CelRule = CelRule {
    rule: "self.myASN != 0",
    message: "missing local ASN",
};

/// BGPPeer v1beta2 `spec`: crds.md §5.4 R2. Go treats `peerASN: 0` as unset.
pub const PEER_ASN_OR_DYNAMIC_ASN: CelRule = CelRule {
    rule: "(has(self.peerASN) && self.peerASN != 0) || has(self.dynamicASN)",
    message: "missing peer ASN and dynamicASN",
};

/// BGPPeer v1beta2 `spec`: crds.md §5.4 R3.
pub const PEER_NOT_BOTH_ASN_AND_DYNAMIC_ASN: CelRule = CelRule {
    rule: "!(has(self.peerASN) && self.peerASN != 0 && has(self.dynamicASN))",
    message: "both peer ASN and dynamicASN specified",
};

/// BGPPeer v1beta2 `spec`: crds.md §5.4 R6. Go treats `""` as unset.
pub const PEER_ADDRESS_OR_INTERFACE: CelRule = CelRule {
    rule: "(has(self.peerAddress) && size(self.peerAddress) != 0) || \
           (has(self.interface) && size(self.interface) != 0)",
    message: "peer has no Address or Interface specified",
};

/// BGPPeer v1beta2 `spec`: crds.md §5.4 R7.
pub const PEER_NOT_BOTH_ADDRESS_AND_INTERFACE: CelRule = CelRule {
    rule: "!(has(self.peerAddress) && size(self.peerAddress) != 0 && \
           has(self.interface) && size(self.interface) != 0)",
    message: "peer has both Address and Interface specified",
};

/// BGPPeer (both versions) `spec`: crds.md §5.4 R5.
pub const PEER_NO_MULTIHOP_FOR_IBGP: CelRule = CelRule {
    rule: "!has(self.ebgpMultiHop) || !self.ebgpMultiHop || !has(self.peerASN) || \
           self.peerASN != self.myASN",
    message: "invalid ebgp-multihop parameter set for an ibgp peer",
};

/// BGPPeer v1beta2 `spec.connectTime`: MetalLB's schema rule.
pub const CONNECT_TIME_RANGE: CelRule = CelRule {
    rule: "duration(self).getSeconds() >= 1 && duration(self).getSeconds() <= 65535",
    message: "connect time should be between 1 seconds to 65535",
};

/// BGPPeer v1beta2 `spec.connectTime`: MetalLB's schema rule.
pub const CONNECT_TIME_WHOLE_SECONDS: CelRule = CelRule {
    rule: "duration(self).getMilliseconds() % 1000 == 0",
    message: "connect time should contain a whole number of seconds",
};

/// BGPPeer v1beta2 `spec.enableGracefulRestart`: MetalLB's transition rule.
/// Like every transition rule it only runs when the field is present in both
/// the old and the new object.
pub const GRACEFUL_RESTART_IMMUTABLE: CelRule = CelRule {
    rule: "self == oldSelf",
    message: "EnableGracefulRestart cannot be changed after creation",
};

/// ServiceL2Status / ServiceBGPStatus `status.node`, `status.serviceName`,
/// `status.serviceNamespace`: MetalLB's transition rule.
pub const STATUS_FIELD_IMMUTABLE: CelRule = CelRule {
    rule: "self == oldSelf",
    message: "Value is immutable",
};
