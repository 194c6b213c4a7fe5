//! Replay tests: each tests/replay/NAME.in script (format in
//! src/session/text.rs) is run through the session state machine and its outputs must
//! equal tests/replay/NAME.out line for line. With FERROLB_UPDATE_REPLAY=1
//! the .out files are rewritten instead (review the diff before committing).

use std::path::{Path, PathBuf};

use ferrolb_bgp::session::text::{parse_script, replay};

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/replay")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "in"))
        .collect();
    v.sort();
    v
}

#[test]
fn replay_files_match() {
    let scripts = scripts();
    assert!(scripts.len() >= 5, "replay scripts missing: {scripts:?}");
    let update = std::env::var_os("FERROLB_UPDATE_REPLAY").is_some();
    let mut failures = Vec::new();
    for input in scripts {
        let text = std::fs::read_to_string(&input).expect("read .in");
        let events = parse_script(&text).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        let got = replay(events).join("\n") + "\n";
        let out = input.with_extension("out");
        if update {
            std::fs::write(&out, &got).expect("write .out");
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
    assert!(
        failures.is_empty(),
        "replay differences:\n{}",
        failures.join("\n")
    );
}
