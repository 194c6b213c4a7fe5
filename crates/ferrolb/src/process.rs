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

/// How often [`return_freed_memory`] looks, and by how much the free heap
/// must have grown since it last gave memory back before it does again.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_millis(200);
const TRIM_GROWTH: usize = 4 << 20;

/// glibc returns freed memory to the kernel only from the top of its heap;
/// what a burst frees in the middle (10,000 Services' list pages, then the
/// first pass over them) stays resident and sets the peak. A thread gives it
/// back when the free heap has grown by [`TRIM_GROWTH`]: `malloc_trim`
/// releases free pages anywhere in the heap. Trimmed pages stay free chunks
/// (the free total does not fall), so growth is counted from the last trim:
/// an idle process costs one `mallinfo2` per tick. The figures are in
/// docs/benchmarks-bgp.md (2026-12-05, "changes").
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new().name("malloc-trim".into()).stack_size(64 << 10).spawn(|| {
            let mut baseline = 0usize;
            loop {
                std::thread::sleep(TRIM_EVERY);
                // SAFETY: mallinfo2 and malloc_trim only read and adjust the
                // allocator's own state, under its lock.
                let free = unsafe { libc::mallinfo2() }.fordblks;
                if free > baseline.saturating_add(TRIM_GROWTH) {
                    // SAFETY: as above.
                    unsafe { libc::malloc_trim(0) };
                    baseline = free;
                } else {
                    // Memory reused since: later growth counts from here.
                    baseline = baseline.min(free);
                }
            }
        });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the thread that returns freed memory; continuing without it");
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
