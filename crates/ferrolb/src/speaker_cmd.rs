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
    one_malloc_arena();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
        .and_then(|rt| {
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

/// glibc gives each thread that allocates its own arena, and each arena keeps
/// its own free pages: with 1,000 Services the speaker's RssAnon was 21.0 MiB
/// with the default and 16.7 MiB with one arena (docs/benchmarks-speaker.md).
/// The speaker runs two worker threads, so the one arena's lock is rarely
/// contended (the ARP figures in that document were measured with it). Must run before any other thread exists. `MALLOC_ARENA_MAX` in the
/// environment, when set, is left to decide.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no other thread
        // exists yet to race with it.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
        if ok != 1 {
            tracing::warn!("mallopt(M_ARENA_MAX, 1) refused; keeping glibc's default arenas");
        }
    }
}
