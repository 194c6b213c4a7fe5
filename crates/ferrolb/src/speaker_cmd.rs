//! `ferrolb speaker`: logging, the async runtime and signals around
//! `ferrolb_speaker::run`.

use std::process::ExitCode;

use anyhow::Context as _;
use ferrolb_runtime::logging::{self, LogFormat};
use ferrolb_speaker::SpeakerOptions;

pub fn speaker(opts: SpeakerOptions) -> ExitCode {
    let format = match opts.log_format.as_str() {
        "text" => LogFormat::Text,
        _ => LogFormat::Json,
    };
    if let Err(err) = logging::init(&opts.log_level, format) {
        // MetalLB's wording for a bad --log-level.
        eprintln!("failed to initialize logging: {err}");
        return ExitCode::FAILURE;
    }
    // Logging starts no thread; the runtime below does.
    crate::process::one_malloc_arena();
    crate::process::return_freed_memory();
    let result = crate::process::runtime(2).and_then(|rt| {
        rt.block_on(async {
            let shutdown = crate::serve::shutdown_on_signal()?;
            ferrolb_speaker::run(opts, shutdown).await.context("speaker")
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "speaker stopped");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
