//! The one error type of configuration building.

use std::fmt;

/// One reason a configuration is invalid, naming the object and the field.
///
/// `Display` renders `Kind/name: field: message` (or `Kind/name: message` when the
/// rule concerns the whole object), so the CLI can print one per line and users can
/// grep for the object. `message` keeps MetalLB's own wording (crds.md tables).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub kind: &'static str,
    pub name: String,
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(
        kind: &'static str,
        name: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            kind,
            name: name.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: ", self.kind, self.name)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Kind names used in errors; the same strings as the Kubernetes kinds.
pub mod kinds {
    pub const POOL: &str = "IPAddressPool";
    pub const L2_ADV: &str = "L2Advertisement";
    pub const BGP_ADV: &str = "BGPAdvertisement";
    pub const PEER: &str = "BGPPeer";
    pub const COMMUNITY: &str = "Community";
    pub const BFD: &str = "BFDProfile";
    pub const SECRET: &str = "Secret";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_field() {
        let e = ConfigError::new("IPAddressPool", "prod", "spec.addresses[2]", "invalid CIDR \"10.0.0.0/33\"");
        assert_eq!(
            e.to_string(),
            "IPAddressPool/prod: spec.addresses[2]: invalid CIDR \"10.0.0.0/33\""
        );
    }

    #[test]
    fn display_without_field() {
        let e = ConfigError::new("BFDProfile", "x", "", "bfd profiles section set");
        assert_eq!(e.to_string(), "BFDProfile/x: bfd profiles section set");
    }
}
