//! The offline commands (`plan`, `validate`, `explain`): the controller's
//! validation and allocation run over manifest files, with no cluster.
//! Contract: shared/spec/cli-contract.md.

pub mod explain;
pub mod ignored;
pub mod plan;
pub mod report;
pub mod simulate;
pub mod validate;

use std::process::ExitCode;

use ferrolb_config::assemble::Config;
use ferrolb_config::manifest::{self, Manifests};
use ferrolb_config::ConfigError;

use crate::cli::InputArgs;

/// Exit codes fixed by the contract.
pub const EXIT_INVALID_CONFIG: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;

/// Reads every `-f` path; prints the reader's warnings on stderr. On an input
/// error prints it and returns the exit code to use.
pub fn load(input: &InputArgs) -> Result<Manifests, ExitCode> {
    let options = manifest::ReadOptions { namespace: input.namespace.clone(), ..Default::default() };
    match manifest::read_paths_with(&input.paths, &options) {
        Ok(manifests) => {
            for warning in &manifests.warnings {
                eprintln!("warning: {warning}");
            }
            Ok(manifests)
        }
        Err(err) => {
            // An error about one object starts with its `Kind/name: `, as a
            // configuration error does (cli-contract.md: every error line
            // names the object); one about a file or its text says `error: `.
            if err.object.is_some() {
                eprintln!("{err}");
            } else {
                eprintln!("error: {err}");
            }
            Err(ExitCode::from(EXIT_BAD_INPUT))
        }
    }
}

/// Builds and validates the whole configuration with the same checks as the
/// controller and the admission webhook. An unusable `METALLB_BGP_TYPE` is
/// reported like unreadable input: the checks to run are unknown.
pub fn build(manifests: &Manifests, input: &InputArgs) -> Result<Config, ExitCode> {
    let mode = crate::bgp_mode::from_env().map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(EXIT_BAD_INPUT)
    })?;
    ferrolb_config::assemble::build_config(&manifests.config_input(mode, &input.namespace))
        .map_err(|errors| report_config_errors(&errors))
}

/// Prints configuration errors one per line (`Kind/name: message`) and
/// returns the contract's exit code for an invalid configuration.
pub fn report_config_errors(errors: &[ConfigError]) -> ExitCode {
    for err in errors {
        eprintln!("{err}");
    }
    ExitCode::from(EXIT_INVALID_CONFIG)
}
