//! Process set-up shared by the long-running commands (`controller`,
//! `webhook`, `speaker`): glibc's arenas and the async runtime.

use anyhow::Context as _;

/// glibc gives each thread that allocates its own arena, and each arena keeps
/// its own free pages. One arena: the speaker's RssAnon with 1,000 Services
/// went from 21.0 to 16.7 MiB (docs/benchmarks-speaker.md), the controller's
/// peak RSS with 5,000 Services is in docs/benchmarks-metallb.md. The
/// runtimes have at most two worker threads, so the one arena's lock is
/// rarely contended. Must run before any other thread exists.
/// `MALLOC_ARENA_MAX` in the environment, when set, is left to decide.
pub fn one_malloc_arena() {
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

/// The async runtime of a long-running command: `workers` worker threads
/// (not one per CPU of the node: a controller on a 64-core node would
/// otherwise run 64 workers, each with its own stack and, without
/// [`one_malloc_arena`], its own arena).
pub fn runtime(workers: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")
}
