//! Replay tests: each tests/replay/NAME.in script (format in
//! src/session/replay.rs) runs through the state machine on a simulated
//! clock and its trace must equal tests/replay/NAME.out line for line. With
//! FERROLB_UPDATE_REPLAY=1 the .out files are rewritten instead (review the
//! diff before committing).

use std::path::Path;

use ferrolb_bfd::session::replay::run_script;

#[test]
fn replay_files_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    let mut inputs: Vec<_> = std::fs::read_dir(&dir).expect("tests/replay").filter_map(|e| e.ok()).map(|e| e.path()).collect();
    inputs.retain(|p| p.extension().is_some_and(|x| x == "in"));
    inputs.sort();
    assert!(inputs.len() >= 6, "replay scripts missing: {inputs:?}");
    let update = std::env::var_os("FERROLB_UPDATE_REPLAY").is_some();
    let mut failures = Vec::new();
    for input in inputs {
        let script = std::fs::read_to_string(&input).expect("read .in");
        let got = run_script(&script).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let out = input.with_extension("out");
        if update {
            std::fs::write(&out, &got).expect("write .out");
        } else if std::fs::read_to_string(&out).ok().as_deref() != Some(got.as_str()) {
            failures.push(format!("{}: differs from {} (got below)\n{got}", input.display(), out.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
