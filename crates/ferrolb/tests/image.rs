//! The container image built by scripts/image.sh (docs/image.md): unpacked
//! from its OCI layout with umoci, its entrypoint runs as the image's user in
//! a root that holds nothing but the image's files, and answers `--version`
//! and `controller --help`. The binary in it carries no debug info; the
//! debug file beside the layout does.
//!
//! The image is not rebuilt here: the test uses the one scripts/image.sh left
//! in `<target>/image` (scripts/test.sh runs it first) and runs the script
//! only when there is none, since that is a release build.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<target>/image`, where scripts/image.sh writes: the test binary lives in
/// `<target>/<profile>/deps/`.
fn image_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROLB_IMAGE_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("<target>/<profile>/deps/<exe>").join("image")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// image.env as key -> value.
fn facts(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let env = dir.join("image.env");
    if !env.exists() {
        eprintln!("no image in {}: running scripts/image.sh (a release build)", dir.display());
        run(Command::new(repo().join("scripts/image.sh")).env("FERROLB_IMAGE_DIR", dir));
    }
    let text = std::fs::read_to_string(&env).expect("image.env");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sections(elf: &Path) -> String {
    String::from_utf8(run(Command::new("readelf").arg("-S").arg("-W").arg(elf)).stdout).expect("UTF-8")
}

/// Runs `args` (the image's entrypoint first) with `rootfs` as `/`, in a new
/// mount namespace, as `uid:gid`, with an empty environment.
fn in_image(rootfs: &Path, uid: u64, gid: u64, args: &[&str]) -> Output {
    let mut cmd = Command::new("unshare");
    cmd.env_clear()
        .arg("--mount")
        .arg(format!("--root={}", rootfs.display()))
        .arg("--wd=/")
        .arg(format!("--setuid={uid}"))
        .arg(format!("--setgid={gid}"))
        .args(args);
    run(&mut cmd)
}

#[test]
fn image_entrypoint_runs_in_an_empty_root() {
    let dir = image_dir();
    let facts = facts(&dir);
    let layout = PathBuf::from(&facts["layout"]);
    let tag = &facts["tag"];
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "the image is tagged with the binary's version");

    let scratch = tempfile::tempdir().expect("temp dir");
    let bundle = scratch.path().join("bundle");
    let mut unpack = Command::new("umoci");
    unpack.arg("unpack");
    // umoci needs --rootless to unpack as an ordinary user (/proc/self is
    // owned by the effective uid).
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0) != 0 {
        unpack.arg("--rootless");
    }
    run(unpack.arg("--image").arg(format!("{}:{tag}", layout.display())).arg(&bundle));

    // The runtime config umoci derives from the image config.
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).expect("config.json")).expect("JSON");
    let process = &config["process"];
    let args: Vec<&str> = process["args"].as_array().expect("args").iter().filter_map(Value::as_str).collect();
    assert_eq!(args, ["/ferrolb", "--help"], "entrypoint + cmd");
    let (uid, gid) = (process["user"]["uid"].as_u64().unwrap(), process["user"]["gid"].as_u64().unwrap());
    assert_eq!((uid, gid), (65534, 65534), "the image runs as nobody unless the pod says otherwise");

    // Nothing but the binary: no /lib, no loader, no shell.
    let rootfs = bundle.join("rootfs");
    let entries: Vec<String> = std::fs::read_dir(&rootfs)
        .expect("rootfs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["ferrolb"], "the image holds only the binary");

    let version = in_image(&rootfs, uid, gid, &[args[0], "--version"]);
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), format!("ferrolb {tag}"));
    let help = in_image(&rootfs, uid, gid, &[args[0], "controller", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Usage: ferrolb controller"), "{help}");
    assert!(help.contains("--webhook-mode"), "{help}");

    // Stripped in the image, debug info beside the layout.
    let shipped = sections(&rootfs.join("ferrolb"));
    assert!(!shipped.contains(".debug_info") && !shipped.contains(".symtab"), "{shipped}");
    assert!(shipped.contains(".gnu_debuglink"), "{shipped}");
    let debug = sections(&dir.join("ferrolb.debug"));
    assert!(debug.contains(".debug_info") && debug.contains(".symtab"), "{debug}");
}
