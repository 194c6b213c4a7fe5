use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Paths of the built fixture: the control plane and a kubectl of the same
/// Kubernetes release (a link to the same multi-call binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureBinaries {
    pub kube_fixture: PathBuf,
    pub kubectl: PathBuf,
}

/// Overrides the build: points at an already built kube-fixture binary; a
/// `kubectl` link is expected next to it.
pub const BIN_ENV: &str = "FERROLB_KUBE_FIXTURE_BIN";

fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kube-fixture/build.sh")
}

/// Builds (or finds in the cache) the fixture binaries, once per process.
///
/// A cold build takes many minutes; its progress goes to stderr, which
/// `cargo test` shows with `--nocapture`. CI should run
/// `tests/kube-fixture/build.sh` before the tests so none of them pays for it.
pub fn fixture_binaries() -> Result<FixtureBinaries> {
    // The error is stored as text because Error is not Clone, and a build that
    // failed once fails the same way for every later test in this process.
    static BINARIES: OnceLock<std::result::Result<FixtureBinaries, String>> = OnceLock::new();
    BINARIES
        .get_or_init(|| locate().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Build)
}

fn locate() -> Result<FixtureBinaries> {
    if let Some(bin) = std::env::var_os(BIN_ENV) {
        let kube_fixture = PathBuf::from(bin);
        if !kube_fixture.is_file() {
            return Err(Error::Build(format!(
                "{BIN_ENV}={} is not a file",
                kube_fixture.display()
            )));
        }
        let kubectl = kube_fixture.with_file_name("kubectl");
        return Ok(FixtureBinaries {
            kube_fixture,
            kubectl,
        });
    }
    let script = build_script();
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(crate::error::io(format!("running {}", script.display())))?;
    if !output.status.success() {
        return Err(Error::Build(format!(
            "{} exited with {}",
            script.display(),
            output.status
        )));
    }
    parse_build_output(&String::from_utf8_lossy(&output.stdout))
}

/// build.sh prints `kube-fixture=<path>` and `kubectl=<path>` on stdout.
fn parse_build_output(stdout: &str) -> Result<FixtureBinaries> {
    let field = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|p| PathBuf::from(p.trim()))
            .ok_or_else(|| Error::Build(format!("build.sh printed no {key}= line: {stdout:?}")))
    };
    let bins = FixtureBinaries {
        kube_fixture: field("kube-fixture")?,
        kubectl: field("kubectl")?,
    };
    if !bins.kube_fixture.is_file() {
        return Err(Error::Build(format!(
            "build.sh named {} but there is no such file",
            bins.kube_fixture.display()
        )));
    }
    Ok(bins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_paths_and_rejects_missing_lines() {
        let dir = std::env::temp_dir();
        let exe = std::env::current_exe().expect("test binary path");
        let out = format!(
            "kube-fixture={}\nkubectl={}/kubectl\n",
            exe.display(),
            dir.display()
        );
        let bins = parse_build_output(&out).expect("valid output");
        assert_eq!(bins.kube_fixture, exe);
        assert_eq!(bins.kubectl, dir.join("kubectl"));

        let err = parse_build_output("kube-fixture=/x\n").unwrap_err();
        assert!(err.to_string().contains("no kubectl= line"), "{err}");
        let err = parse_build_output("kube-fixture=/nonexistent/kf\nkubectl=/k\n").unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }
}
