//! Any bytes through the manifest reader and, when readable, the builder in every mode.
#![no_main]

use ferrolb_config::assemble::{BgpMode, build_config, build_pool_config};
use ferrolb_config::manifest::{ReadOptions, read_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(m) = read_str("fuzz.yaml", text, &ReadOptions::default()) else { return };
    for mode in [BgpMode::Native, BgpMode::Frr, BgpMode::FrrK8s] {
        let _ = build_config(&m.config_input(mode, "metallb-system"));
    }
    let _ = build_pool_config(&m.pools, &m.communities, &m.namespaces);
});
