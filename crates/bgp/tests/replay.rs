//! Replay tests: each tests/replay/NAME.in script (format in
//! src/session/text.rs) is run through the session state machine and its
//! outputs must equal tests/replay/NAME.out line for line
//! (`ferrolb_test_harness::golden`; FERROLB_UPDATE_REPLAY=1 rewrites them).

use std::path::Path;

use ferrolb_bgp::session::text::{parse_script, replay};

#[test]
fn replay_files_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay");
    ferrolb_test_harness::golden::check_dir(&dir, 5, |text| {
        let events = parse_script(text).map_err(|e| e.to_string())?;
        Ok(replay(events).join("\n") + "\n")
    });
}
