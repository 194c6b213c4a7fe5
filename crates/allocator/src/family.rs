//! Address families and the IP-family rules of allocation.md §2.

use std::fmt;
use std::net::IpAddr;

use crate::gofmt::quoted_list;

/// The family of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    pub(crate) fn slot(self) -> usize {
        match self {
            Family::V4 => 0,
            Family::V6 => 1,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// The family of a Service or of a set of addresses; `Display` gives
/// MetalLB's spelling (`ipv4`, `ipv6`, `dual`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceFamily {
    V4,
    V6,
    Dual,
}

impl ServiceFamily {
    pub fn single(f: Family) -> ServiceFamily {
        match f {
            Family::V4 => ServiceFamily::V4,
            Family::V6 => ServiceFamily::V6,
        }
    }

    pub fn as_single(self) -> Option<Family> {
        match self {
            ServiceFamily::V4 => Some(Family::V4),
            ServiceFamily::V6 => Some(Family::V6),
            ServiceFamily::Dual => None,
        }
    }
}

impl fmt::Display for ServiceFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceFamily::V4 => "ipv4",
            ServiceFamily::V6 => "ipv6",
            ServiceFamily::Dual => "dual",
        })
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Policy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl Policy {
    /// Unset (and any value the API server would reject) is `SingleStack`,
    /// as upstream only ever compares against the two dual-stack values.
    pub fn parse(value: Option<&str>) -> Policy {
        match value {
            Some("PreferDualStack") => Policy::PreferDualStack,
            Some("RequireDualStack") => Policy::RequireDualStack,
            _ => Policy::SingleStack,
        }
    }
}

/// Go's `net.ParseIP` followed by its canonical form: IPv4-mapped IPv6
/// addresses are IPv4 for MetalLB, so they are for us too.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Text of an address as Go prints a parsed `net.IP` (`<nil>` for garbage).
pub fn go_ip_text(ip: Option<&IpAddr>) -> String {
    match ip {
        Some(ip) => crate::gofmt::ip_text(ip),
        None => "<nil>".to_string(),
    }
}

/// `ipfamily.ForAddresses` with its exact error texts.
pub fn family_for_addresses<S: AsRef<str>>(ips: &[S]) -> Result<ServiceFamily, String> {
    let texts = || quoted_list(ips.iter().map(|s| s.as_ref()));
    match ips {
        [one] => match parse_ip(one.as_ref()) {
            Some(ip) => Ok(ServiceFamily::single(Family::of(&ip))),
            None => Err(format!("IPFamilyForAddresses: Invalid address {}", texts())),
        },
        [a, b] => match (parse_ip(a.as_ref()), parse_ip(b.as_ref())) {
            (Some(a), Some(b)) if Family::of(&a) == Family::of(&b) => Err(format!(
                "IPFamilyForAddresses: same address family {}",
                texts()
            )),
            (Some(_), Some(_)) => Ok(ServiceFamily::Dual),
            _ => Err(format!("IPFamilyForAddresses: Invalid address {}", texts())),
        },
        _ => Err(format!(
            "IPFamilyForAddresses: invalid ips length {} {}",
            ips.len(),
            texts()
        )),
    }
}

/// Whether the current addresses must be dropped because their family does
/// not fit the Service any more (upstream `serviceFamilyChanged`).
pub fn family_changed(
    current: Option<ServiceFamily>,
    cluster: ServiceFamily,
    policy: Policy,
) -> bool {
    match current {
        None => true,
        Some(c) if c == cluster => false,
        Some(_) => !(cluster == ServiceFamily::Dual && policy == Policy::PreferDualStack),
    }
}

/// IPv4 addresses ending in `.0` or `.255` (upstream `ipConfusesBuggyFirmwares`).
pub fn is_buggy(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_errors_match_upstream() {
        assert_eq!(family_for_addresses(&["10.0.0.1"]), Ok(ServiceFamily::V4));
        assert_eq!(family_for_addresses(&["fc00::1"]), Ok(ServiceFamily::V6));
        assert_eq!(
            family_for_addresses(&["10.0.0.1", "fc00::1"]),
            Ok(ServiceFamily::Dual)
        );
        assert_eq!(
            family_for_addresses(&["10.0.0.1", "10.0.0.2"]),
            Err("IPFamilyForAddresses: same address family [\"10.0.0.1\" \"10.0.0.2\"]".into())
        );
        assert_eq!(
            family_for_addresses(&["a", "b", "c"]),
            Err("IPFamilyForAddresses: invalid ips length 3 [\"a\" \"b\" \"c\"]".into())
        );
        assert_eq!(
            family_for_addresses::<&str>(&[]),
            Err("IPFamilyForAddresses: invalid ips length 0 []".into())
        );
        assert_eq!(
            family_for_addresses(&["nope"]),
            Err("IPFamilyForAddresses: Invalid address [\"nope\"]".into())
        );
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        assert_eq!(parse_ip("::ffff:10.0.0.1"), parse_ip("10.0.0.1"));
        assert_eq!(
            family_for_addresses(&["::ffff:10.0.0.1"]),
            Ok(ServiceFamily::V4)
        );
    }

    #[test]
    fn family_change_rules() {
        use ServiceFamily::*;
        assert!(family_changed(None, V4, Policy::SingleStack));
        assert!(!family_changed(Some(V4), V4, Policy::SingleStack));
        assert!(family_changed(Some(V6), V4, Policy::SingleStack));
        assert!(!family_changed(Some(V6), Dual, Policy::PreferDualStack));
        assert!(family_changed(Some(V6), Dual, Policy::RequireDualStack));
        assert!(family_changed(Some(Dual), V4, Policy::PreferDualStack));
    }

    #[test]
    fn buggy_addresses() {
        assert!(is_buggy(&"10.0.0.0".parse().unwrap()));
        assert!(is_buggy(&"10.0.1.255".parse().unwrap()));
        assert!(!is_buggy(&"10.0.1.1".parse().unwrap()));
        assert!(!is_buggy(&"fc00::ff".parse().unwrap()));
    }
}
