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
/// `kubectl` link is expected next to it. scripts/test.sh sets it to what
/// build.sh printed.
pub const BIN_ENV: &str = "FERROLB_KUBE_FIXTURE";

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
        .get_or_init(|| locate().map_err(error_chain))
        .clone()
        .map_err(Error::Build)
}

/// The error and its sources as one line, without repeating the Build prefix.
fn error_chain(e: Error) -> String {
    let mut text = match &e {
        Error::Build(message) => message.clone(),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
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

/// build.sh prints the binary's path as its last line; kubectl is the link
/// next to it.
fn parse_build_output(stdout: &str) -> Result<FixtureBinaries> {
    let path = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| Error::Build("build.sh printed no path".into()))?;
    let kube_fixture = PathBuf::from(path);
    if !kube_fixture.is_file() {
        return Err(Error::Build(format!(
            "build.sh named {} but there is no such file",
            kube_fixture.display()
        )));
    }
    Ok(FixtureBinaries {
        kubectl: kube_fixture.with_file_name("kubectl"),
        kube_fixture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_last_line_and_puts_kubectl_next_to_it() {
        let exe = std::env::current_exe().expect("test binary path");
        let bins = parse_build_output(&format!("\n{}\n\n", exe.display())).expect("valid");
        assert_eq!(bins.kube_fixture, exe);
        assert_eq!(bins.kubectl, exe.with_file_name("kubectl"));

        let err = parse_build_output("\n").unwrap_err();
        assert!(err.to_string().contains("printed no path"), "{err}");
        let err = parse_build_output("/nonexistent/kube-fixture\n").unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }
}
