//! The HTTP paths MetalLB registers its webhooks under (observability.md §6.2),
//! and the resources behind them.

use kube::api::ApiResource;

/// A metallb.io kind the webhook validates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    IPAddressPool,
    BGPPeer,
    BGPAdvertisement,
    L2Advertisement,
    Community,
    BFDProfile,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::IPAddressPool,
        Kind::BGPPeer,
        Kind::BGPAdvertisement,
        Kind::L2Advertisement,
        Kind::Community,
        Kind::BFDProfile,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "IPAddressPool",
            Kind::BGPPeer => "BGPPeer",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::Community => "Community",
            Kind::BFDProfile => "BFDProfile",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "ipaddresspools",
            Kind::BGPPeer => "bgppeers",
            Kind::BGPAdvertisement => "bgpadvertisements",
            Kind::L2Advertisement => "l2advertisements",
            Kind::Community => "communities",
            Kind::BFDProfile => "bfdprofiles",
        }
    }

    /// The version the webhook is registered for (BGPPeer: the storage version;
    /// v1beta1 peers reach it converted, matchPolicy Equivalent).
    pub fn version(self) -> &'static str {
        match self {
            Kind::BGPPeer => "v1beta2",
            _ => "v1beta1",
        }
    }

    /// `/validate-metallb-io-<version>-<kind lowercased>`, as controller-runtime names it.
    pub fn path(self) -> String {
        format!("/validate-metallb-io-{}-{}", self.version(), self.name().to_ascii_lowercase())
    }

    pub fn from_path(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == path)
    }

    pub fn api_resource(self) -> ApiResource {
        ApiResource {
            group: "metallb.io".into(),
            version: self.version().into(),
            api_version: format!("metallb.io/{}", self.version()),
            kind: self.name().into(),
            plural: self.plural().into(),
        }
    }
}

/// The BGPPeer conversion endpoint (crds.md §5.3).
pub const CONVERT_PATH: &str = "/convert";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_metallbs() {
        let paths: Vec<String> = Kind::ALL.iter().map(|k| k.path()).collect();
        assert_eq!(
            paths,
            [
                "/validate-metallb-io-v1beta1-ipaddresspool",
                "/validate-metallb-io-v1beta2-bgppeer",
                "/validate-metallb-io-v1beta1-bgpadvertisement",
                "/validate-metallb-io-v1beta1-l2advertisement",
                "/validate-metallb-io-v1beta1-community",
                "/validate-metallb-io-v1beta1-bfdprofile",
            ]
        );
        for k in Kind::ALL {
            assert_eq!(Kind::from_path(&k.path()), Some(k));
        }
        assert_eq!(Kind::from_path("/validate-metallb-io-v1beta1-bgppeer"), None);
    }
}
