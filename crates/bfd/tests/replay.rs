//! Replay tests: each tests/replay/NAME.in script (format in
//! src/session/replay.rs) runs through the state machine on a simulated
//! clock and its trace must equal tests/replay/NAME.out line for line. With
//! FERROLB_UPDATE_REPLAY=1 the .out files are rewritten instead (review the
//! diff before committing).

use std::path::Path;

use ferrolb_bfd::session::replay::run_script;
use ferrolb_test_harness::golden;

#[test]
fn replay_files_match() {
    golden::check_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay"), 10, run_script);
}
