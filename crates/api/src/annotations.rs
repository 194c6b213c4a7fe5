//! Service annotation keys MetalLB reads and writes (crds.md §11.1).
//!
//! For each key read there is a current `metallb.io/` form and a deprecated
//! `metallb.universe.tf/` form; the current key wins whenever it is present,
//! even with an empty value.

/// Pool (by name) a Service asks to be allocated from.
pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
/// Deprecated spelling of [`ADDRESS_POOL`].
pub const ADDRESS_POOL_DEPRECATED: &str = "metallb.universe.tf/address-pool";

/// Comma-separated list of one or two requested IPs.
pub const LOADBALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// Deprecated spelling of [`LOADBALANCER_IPS`].
pub const LOADBALANCER_IPS_DEPRECATED: &str = "metallb.universe.tf/loadBalancerIPs";

/// Sharing key: Services with equal non-empty keys may share an address.
pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// Deprecated spelling of [`ALLOW_SHARED_IP`].
pub const ALLOW_SHARED_IP_DEPRECATED: &str = "metallb.universe.tf/allow-shared-ip";

/// Written by the controller: the pool the Service's current IPs come from.
/// Its deprecated spelling is neither read nor written, so none is exported.
pub const IP_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

/// Prefix of every deprecated annotation key; a Service carrying one gets a
/// `deprecatedAnnotation` warning event.
pub const DEPRECATED_PREFIX: &str = "metallb.universe.tf";

/// The (current, deprecated) pairs of keys that are read, in the order of
/// crds.md §11.1.
pub const READ_KEYS: [(&str, &str); 3] = [
    (ADDRESS_POOL, ADDRESS_POOL_DEPRECATED),
    (LOADBALANCER_IPS, LOADBALANCER_IPS_DEPRECATED),
    (ALLOW_SHARED_IP, ALLOW_SHARED_IP_DEPRECATED),
];
