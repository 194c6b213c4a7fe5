//! The layer 2 election order (speaker.md §3.2 step 7): preference score
//! descending, then SHA-256 of `<node>#<first ip>` ascending. Reproduced
//! exactly so that a mixed cluster during migration elects like MetalLB.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// SHA-256 of `<node>#<ip>`, the tie-breaker; `ip` is formatted canonically
/// (dotted quad, RFC 5952 compressed lower-case IPv6: what `IpAddr`'s
/// `Display` produces).
pub fn election_hash(node: &str, ip: &IpAddr) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(ip.to_string().as_bytes());
    hasher.finalize().into()
}

/// One candidate in the election.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ranked<'a> {
    pub node: &'a str,
    pub score: i64,
}

/// The winner among `candidates` for a Service whose first address is
/// `first_ip`. The current owner keeps the Service when it is among the
/// best-scored candidates; otherwise the hash order decides.
pub(super) fn winner<'a>(candidates: &[Ranked<'a>], first_ip: &IpAddr, sticky: Option<&str>) -> Option<&'a str> {
    let best = candidates.iter().map(|c| c.score).max()?;
    let top = candidates.iter().filter(|c| c.score == best);
    if let Some(owner) = sticky
        && let Some(kept) = top.clone().find(|c| c.node == owner)
    {
        return Some(kept.node);
    }
    top.map(|c| (election_hash(c.node, first_ip), c.node))
        .min()
        .map(|(_, node)| node)
}
