//! Golden-file replays: every `NAME.in` in a directory is run and its
//! output must equal `NAME.out` line for line. With `FERROLB_UPDATE_REPLAY`
//! set the `.out` files are rewritten instead (read the diff before
//! committing). Used by the replay tests of the controller, bgp, bfd and
//! the speaker's BGP decision; the l2 and membership crates still carry the
//! same loop of their own.

use std::path::{Path, PathBuf};

/// The `.in` files of `dir`, sorted.
pub fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "in"))
        .collect();
    v.sort();
    v
}

/// Runs `run` over every script of `dir` (at least `min` of them) and
/// panics with the first differing line of each script whose output is not
/// its `.out` file.
pub fn check_dir(dir: &Path, min: usize, run: impl Fn(&str) -> Result<String, String>) {
    let scripts = scripts(dir);
    assert!(scripts.len() >= min, "replay scripts missing in {}: {scripts:?}", dir.display());
    let update = std::env::var_os("FERROLB_UPDATE_REPLAY").is_some();
    let mut failures = Vec::new();
    for input in scripts {
        let text = std::fs::read_to_string(&input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let got = run(&text).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let out = input.with_extension("out");
        if update {
            std::fs::write(&out, &got).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
            continue;
        }
        let want = std::fs::read_to_string(&out).unwrap_or_default();
        if got != want {
            let first = got
                .lines()
                .zip(want.lines().chain(std::iter::repeat("<end of file>")))
                .enumerate()
                .find(|(_, (g, w))| g != w)
                .map(|(i, (g, w))| format!("line {}:\n  got:  {g}\n  want: {w}", i + 1))
                .unwrap_or_else(|| "expected file has more lines".into());
            failures.push(format!("{}: {first}", input.display()));
        }
    }
    assert!(failures.is_empty(), "replay differences:\n{}", failures.join("\n"));
}
