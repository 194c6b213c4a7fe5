//! `ferrolb validate`: `ok`, or one `Kind/name: message` line per error.

use std::process::ExitCode;

use crate::cli::InputArgs;

pub fn run(input: &InputArgs) -> ExitCode {
    let manifests = match super::load(input) {
        Ok(m) => m,
        Err(code) => return code,
    };
    match super::build(&manifests, input) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
