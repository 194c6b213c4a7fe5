//! Replay tests: each tests/replay/NAME.in script (format in
//! src/announcer/text.rs) is run through the announcer and its outputs must
//! equal tests/replay/NAME.out line for line. With FERROLB_UPDATE_REPLAY=1
//! the .out files are rewritten instead (review the diff before committing).

use std::path::Path;

use ferrolb_l2::announcer::text::{parse_script, replay};
use ferrolb_l2::announcer::{Announcer, Timing};

#[test]
fn replay_files_match() {
    ferrolb_test_harness::golden::check_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/replay"), 5, |text| {
        let events = parse_script(text).map_err(|e| e.to_string())?;
        Ok(replay(&mut Announcer::new(Timing::default()), events).join("\n") + "\n")
    });
}
