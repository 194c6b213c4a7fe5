//! Allocation errors with MetalLB's exact texts (allocation.md §12).

use std::fmt;
use std::net::IpAddr;

use crate::family::{ServiceFamily, go_ip_text};
use crate::gofmt::{quote, quoted_list};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// Automatic allocation found nothing in either phase.
    NoAvailableIps,
    UnknownPool(String),
    PoolExhausted(String),
    NoIpsForFamily {
        pool: String,
        family: ServiceFamily,
    },
    /// Addresses in no pool, in different pools, or `.0`/`.255` in an
    /// avoiding pool; `None` is Go's nil address (`"<nil>"`).
    NotAllowed(Vec<Option<IpAddr>>),
    NotCompatible(String),
    MoreThanTwo(Vec<IpAddr>),
    SameFamily(IpAddr, IpAddr),
    CantChangeSharingKey {
        service: String,
        others: Vec<String>,
    },
    PortInUse {
        port: String,
        ip: IpAddr,
    },
    FamilyMismatch(Vec<IpAddr>),
    RequestedPoolMismatch {
        ips: Vec<IpAddr>,
        pool: String,
    },
    /// Malformed `loadBalancerIPs` / `loadBalancerIP` (text already formatted).
    InvalidRequest(String),
    /// Cluster IPs whose family cannot be determined (text already formatted).
    InvalidClusterIps(String),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::NoAvailableIps => f.write_str("no available IPs"),
            AllocError::UnknownPool(p) => write!(f, "unknown pool {}", quote(p)),
            AllocError::PoolExhausted(p) => write!(f, "no available IPs in pool {p}"),
            AllocError::NoIpsForFamily { pool, family } => {
                write!(f, "no available IPs in pool {pool} for {family} IPFamily")
            }
            AllocError::NotAllowed(ips) => write!(
                f,
                "{} is not allowed in config",
                quoted_list(ips.iter().map(|ip| go_ip_text(ip.as_ref())))
            ),
            AllocError::NotCompatible(p) => write!(f, "pool {p} not compatible for ip assignment"),
            AllocError::MoreThanTwo(ips) => {
                write!(f, "more than two addresses {}", quoted_list(ips))
            }
            AllocError::SameFamily(a, b) => write!(
                f,
                "{} {} has the same family",
                quote(&a.to_string()),
                quote(&b.to_string())
            ),
            AllocError::CantChangeSharingKey { service, others } => write!(
                f,
                "can't change sharing key for {}, address also in use by {}",
                quote(service),
                others.join(",")
            ),
            AllocError::PortInUse { port, ip } => {
                write!(
                    f,
                    "port {port} is already in use on {}",
                    quote(&ip.to_string())
                )
            }
            AllocError::FamilyMismatch(ips) => write!(
                f,
                "requested loadBalancer IP(s) {} does not match the ipFamily of the service",
                quoted_list(ips)
            ),
            AllocError::RequestedPoolMismatch { ips, pool } => write!(
                f,
                "requested loadBalancer IP(s) {} is not compatible with requested address pool {pool}",
                quoted_list(ips)
            ),
            AllocError::InvalidRequest(text) | AllocError::InvalidClusterIps(text) => {
                f.write_str(text)
            }
        }
    }
}

impl std::error::Error for AllocError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn texts_are_verbatim() {
        let cases: Vec<(AllocError, &str)> = vec![
            (AllocError::NoAvailableIps, "no available IPs"),
            (AllocError::UnknownPool("x".into()), "unknown pool \"x\""),
            (
                AllocError::PoolExhausted("x".into()),
                "no available IPs in pool x",
            ),
            (
                AllocError::NoIpsForFamily {
                    pool: "x".into(),
                    family: ServiceFamily::Dual,
                },
                "no available IPs in pool x for dual IPFamily",
            ),
            (
                AllocError::NotAllowed(vec![Some(ip("10.0.0.1")), None]),
                "[\"10.0.0.1\" \"<nil>\"] is not allowed in config",
            ),
            (
                AllocError::NotCompatible("C".into()),
                "pool C not compatible for ip assignment",
            ),
            (
                AllocError::SameFamily(ip("10.0.0.1"), ip("10.0.0.2")),
                "\"10.0.0.1\" \"10.0.0.2\" has the same family",
            ),
            (
                AllocError::CantChangeSharingKey {
                    service: "ns/a".into(),
                    others: vec!["ns/b".into(), "ns/c".into()],
                },
                "can't change sharing key for \"ns/a\", address also in use by ns/b,ns/c",
            ),
            (
                AllocError::PortInUse {
                    port: "TCP/80".into(),
                    ip: ip("10.0.0.1"),
                },
                "port TCP/80 is already in use on \"10.0.0.1\"",
            ),
            (
                AllocError::FamilyMismatch(vec![ip("fc00::1")]),
                "requested loadBalancer IP(s) [\"fc00::1\"] does not match the ipFamily of the service",
            ),
            (
                AllocError::RequestedPoolMismatch {
                    ips: vec![ip("10.0.0.1")],
                    pool: "D".into(),
                },
                "requested loadBalancer IP(s) [\"10.0.0.1\"] is not compatible with requested address pool D",
            ),
        ];
        for (err, text) in cases {
            assert_eq!(err.to_string(), text);
        }
    }
}
