//! Keeping a process inside a worker's memory budget.

/// Arenas glibc's malloc may create (its default is eight per core).
const MALLOC_ARENAS: i32 = 2;

/// Limit glibc's malloc to two arenas. Call once, first thing in `main`.
///
/// By default glibc gives each thread that allocates its own arena, and an
/// arena keeps the memory of the large buffers freed into it (after the first
/// multi-MiB pack buffer is freed, malloc serves such buffers from arenas
/// instead of mapping them). Lifeboat hands packs and chunks between many
/// short-lived blocking threads, so peak memory grew with the number of
/// threads that ever ran, not with the work in flight: on a 930 MB
/// repository `repo check --read-data` peaked at 172-175 MiB with the
/// default and 109 MiB with two arenas, at the same speed
/// (docs/benchmarks.md). The Lambda functions run in 256 MiB.
///
/// Does nothing on other C libraries (musl has no arenas).
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes allocator tuning and is documented as
        // safe to call at any time; M_ARENA_MAX takes effect for arenas
        // created later.
        let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) };
        if accepted != 1 {
            tracing::debug!("malloc did not accept an arena limit");
        }
    }
}
