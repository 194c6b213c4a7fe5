//! kube-proxy in IPVS mode puts every Service address on `kube-ipvs0`; unless
//! strictARP is on (it sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2)
//! the kernel of every node then answers ARP for every such address, and the
//! elected speaker is no longer the only one answering.

use std::path::Path;

const IPVS_INTERFACE: &str = "kube-ipvs0";
const ARP_IGNORE: &str = "/proc/sys/net/ipv4/conf/all/arp_ignore";
const ARP_ANNOUNCE: &str = "/proc/sys/net/ipv4/conf/all/arp_announce";

/// The judgement, from the interface names and the two sysctls (None when
/// unreadable). Returns an explanation an operator can act on.
pub fn judge<'a>(
    mut interfaces: impl Iterator<Item = &'a str>,
    arp_ignore: Option<i64>,
    arp_announce: Option<i64>,
) -> Option<String> {
    if !interfaces.any(|n| n == IPVS_INTERFACE) {
        return None;
    }
    // strictARP sets 1; 2 and 8 are stricter and keep the kernel silent too.
    if matches!(arp_ignore, Some(1 | 2 | 8)) && arp_announce == Some(2) {
        return None;
    }
    let show = |v: Option<i64>| v.map_or_else(|| "unreadable".to_string(), |v| v.to_string());
    Some(format!(
        "kube-proxy runs in IPVS mode ({IPVS_INTERFACE} exists) without strictARP: \
         net.ipv4.conf.all.arp_ignore is {} (needs 1) and net.ipv4.conf.all.arp_announce is {} (needs 2), \
         so this node's kernel answers ARP for every Service address and layer 2 failover is unreliable; \
         set strictARP: true in the kube-proxy ConfigMap (mode ipvs) and restart kube-proxy",
        show(arp_ignore),
        show(arp_announce)
    ))
}

fn read_sysctl(path: &Path) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads /sys/class/net and the two sysctls of this process's network namespace.
pub fn strict_arp_problem() -> Option<String> {
    let names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    judge(
        names.iter().map(String::as_str),
        read_sysctl(Path::new(ARP_IGNORE)),
        read_sysctl(Path::new(ARP_ANNOUNCE)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ipvs_interface_no_problem() {
        assert_eq!(judge(["eth0", "lo"].into_iter(), Some(0), Some(0)), None);
    }

    #[test]
    fn ipvs_with_strict_arp_is_fine() {
        assert_eq!(judge(["eth0", "kube-ipvs0"].into_iter(), Some(1), Some(2)), None);
        assert_eq!(judge(["kube-ipvs0"].into_iter(), Some(2), Some(2)), None);
    }

    #[test]
    fn ipvs_without_strict_arp_is_explained() {
        for (ignore, announce) in [(Some(0), Some(0)), (Some(1), Some(0)), (Some(0), Some(2)), (Some(3), Some(2)), (None, Some(2))] {
            let text = judge(["kube-ipvs0"].into_iter(), ignore, announce).expect("problem");
            assert!(text.contains("strictARP: true"), "{text}");
            assert!(text.contains("arp_ignore is"), "{text}");
        }
        let text = judge(["kube-ipvs0"].into_iter(), Some(0), None).expect("problem");
        assert!(text.contains("arp_ignore is 0") && text.contains("arp_announce is unreadable"), "{text}");
    }

    #[test]
    fn only_the_exact_name_counts() {
        assert_eq!(judge(["kube-ipvs0x", "xkube-ipvs0"].into_iter(), Some(0), Some(0)), None);
    }
}
