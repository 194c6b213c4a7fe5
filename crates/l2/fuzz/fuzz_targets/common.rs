//! Shared by both targets: an announcer that owns addresses, so fuzzed
//! frames reach the answering and conflict paths, not only the decoder.

use std::time::Duration;

use ferrolb_l2::announcer::text::parse_script;
use ferrolb_l2::announcer::{Announcer, Input, Output, Timing};
use ferrolb_l2::packet::Frame;

const SETUP: &str = "@0 interfaces
  2 eth0 02:00:00:00:00:11 up carrier broadcast ll=fe80::ff:fe00:11
@0 announce
  198.51.100.200 all
  2001:db8::200 all
";

/// Decodes `frame`, runs it through the announcer, and checks that every
/// frame the announcer sends back decodes.
pub fn exercise(frame: &[u8]) {
    let _ = Frame::decode(frame);
    let mut announcer = Announcer::new(Timing::default());
    for (at, input) in parse_script(SETUP).expect("fixed setup script") {
        announcer.handle(at, input);
    }
    let outs = announcer.handle(Duration::from_secs(6), Input::Frame { ifindex: 2, bytes: frame.to_vec() });
    for out in outs {
        if let Output::Send { frame, .. } = out {
            assert!(Frame::decode(&frame).is_ok(), "announcer sent an invalid frame");
        }
    }
}
