//! `announcedInterfacesToExclude` (speaker.md §3.4 step 1).

use std::path::{Path, PathBuf};

use regex::RegexSet;

/// Where MetalLB's speaker reads the list.
pub const EXCLUDE_FILE: &str = "/etc/metallb/excludel2.yaml";

/// The list MetalLB ships (config/native/exclude-l2-config.yaml).
pub const DEFAULT_EXCLUDE_PATTERNS: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo$",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^nodelocaldns.*",
    "^lxc.*",
];

#[derive(Debug, thiserror::Error)]
pub enum ExcludeError {
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}: invalid regular expression {pattern:?}: {source}")]
    Regex { path: PathBuf, pattern: String, source: regex::Error },
}

/// Interface-name patterns; a name matching any of them (unanchored, as Go's
/// `MatchString`) is ignored entirely.
#[derive(Debug, Clone)]
pub struct ExcludeList {
    patterns: Vec<String>,
    set: RegexSet,
}

#[derive(serde::Deserialize)]
struct File {
    #[serde(rename = "announcedInterfacesToExclude", default)]
    announced_interfaces_to_exclude: Vec<String>,
}

impl ExcludeList {
    /// Reads the file; a missing file excludes nothing, anything unreadable
    /// or invalid is an error naming the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ExcludeError> {
        let path = path.as_ref();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::none()),
            Err(source) => return Err(ExcludeError::Read { path: path.into(), source }),
        };
        let file: Option<File> = serde_saphyr::from_str(&text)
            .map_err(|e| ExcludeError::Yaml { path: path.into(), message: e.to_string() })?;
        let patterns = file.map(|f| f.announced_interfaces_to_exclude).unwrap_or_default();
        Self::new(patterns).map_err(|(pattern, source)| ExcludeError::Regex { path: path.into(), pattern, source })
    }

    /// The shipped default list.
    pub fn default_list() -> Self {
        let patterns = DEFAULT_EXCLUDE_PATTERNS.iter().map(|p| p.to_string()).collect();
        // The default patterns are constants checked by a unit test.
        Self::new(patterns).unwrap_or_else(|_| Self::none())
    }

    /// Excludes nothing.
    pub fn none() -> Self {
        Self { patterns: Vec::new(), set: RegexSet::empty() }
    }

    fn new(patterns: Vec<String>) -> Result<Self, (String, regex::Error)> {
        for p in &patterns {
            regex::Regex::new(p).map_err(|e| (p.clone(), e))?;
        }
        let set = RegexSet::new(&patterns).map_err(|e| (patterns.join("|"), e))?;
        Ok(Self { patterns, set })
    }

    pub fn excludes(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_compiles_and_matches_what_metallb_excludes() {
        let d = ExcludeList::default_list();
        assert_eq!(d.patterns().len(), DEFAULT_EXCLUDE_PATTERNS.len());
        for name in ["docker0", "cbr0", "veth1234", "lo", "cali12ab", "tunl0", "flannel.1", "kube-ipvs0", "cni0", "lxc42"] {
            assert!(d.excludes(name), "{name}");
        }
        for name in ["eth0", "ens3", "bond0", "lo0", "br-ext", "vlan10"] {
            assert!(!d.excludes(name), "{name}");
        }
    }

    #[test]
    fn missing_file_excludes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = ExcludeList::from_file(dir.path().join("absent.yaml")).expect("missing is fine");
        assert!(!l.excludes("docker0") && !l.excludes("lo"));
    }

    #[test]
    fn file_is_read_as_alternatives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("excludel2.yaml");
        std::fs::write(&path, "announcedInterfacesToExclude:\n  - ^eth1$\n  - bond\n").expect("write");
        let l = ExcludeList::from_file(&path).expect("valid");
        assert!(l.excludes("eth1") && l.excludes("mybond0"));
        assert!(!l.excludes("eth10") && !l.excludes("eth0"));
    }

    #[test]
    fn empty_file_and_missing_key_exclude_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (i, text) in ["", "other: 1\n", "announcedInterfacesToExclude: []\n"].iter().enumerate() {
            let path = dir.path().join(format!("f{i}.yaml"));
            std::fs::write(&path, text).expect("write");
            let l = ExcludeList::from_file(&path).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(!l.excludes("eth0"), "{text:?}");
        }
    }

    #[test]
    fn invalid_yaml_and_regex_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "announcedInterfacesToExclude: [unclosed\n").expect("write");
        let e = ExcludeList::from_file(&path).expect_err("invalid YAML");
        assert!(matches!(e, ExcludeError::Yaml { .. }), "{e:?}");
        assert!(e.to_string().contains("bad.yaml"), "{e}");

        std::fs::write(&path, "announcedInterfacesToExclude:\n  - ok\n  - '^(eth'\n").expect("write");
        let e = ExcludeList::from_file(&path).expect_err("invalid regex");
        assert!(matches!(&e, ExcludeError::Regex { pattern, .. } if pattern == "^(eth"), "{e:?}");
        assert!(e.to_string().contains("bad.yaml"), "{e}");
    }
}
