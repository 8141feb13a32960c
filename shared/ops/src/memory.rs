//! Keeping a process inside a worker's memory budget, and its large buffers
//! out of the page-fault path.

/// Arenas glibc's malloc may create (its default is eight per core).
const MALLOC_ARENAS: i32 = 2;
/// Allocations at least this large are mapped on their own; smaller ones
/// come from the arenas: packs at the default 16 MiB among them (a
/// repository may set packs of up to 256 MiB, which are mapped as before).
const MALLOC_MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of an arena is kept up to this much.
const MALLOC_TRIM_THRESHOLD: i32 = 64 << 20;

/// Tune glibc's malloc for Lifeboat's buffers. Call once, first thing in `main`.
///
/// - **Two arenas.** By default glibc gives each thread that allocates its
///   own arena, and an arena keeps the memory of the large buffers freed
///   into it. Lifeboat hands packs and chunks between many short-lived
///   blocking threads, so peak memory grew with the number of threads that
///   ever ran, not with the work in flight: on a 930 MB repository
///   `repo check --read-data` peaked at 172-175 MiB with the default and
///   109 MiB with two arenas, at the same speed (docs/benchmarks.md). The
///   Lambda functions run in 256 MiB.
/// - **Fixed mapping and trim thresholds.** By default a buffer above a
///   threshold that adapts upward to the largest freed mapping is mapped
///   on its own, and the threshold only admits buffers strictly smaller
///   than that one, so every pack read by `check` or written by a backup
///   (all about the same size) was a fresh mapping the kernel faulted in
///   4 KiB at a time, and arenas gave memory back the moment their top
///   was free. With fixed thresholds the same memory is filled again:
///   `check --read-data` of the benchmark repository took 44-46 thousand
///   page faults instead of 103-131 thousand and 6% less CPU, with peak
///   memory 127-138 MiB instead of 123 MiB (docs/benchmarks.md).
///
/// Does nothing on other C libraries (musl has no arenas).
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (param, value, name) in [
        (libc::M_ARENA_MAX, MALLOC_ARENAS, "arena limit"),
        (
            libc::M_MMAP_THRESHOLD,
            MALLOC_MMAP_THRESHOLD,
            "mmap threshold",
        ),
        (
            libc::M_TRIM_THRESHOLD,
            MALLOC_TRIM_THRESHOLD,
            "trim threshold",
        ),
    ] {
        #[allow(unsafe_code)]
        // SAFETY: mallopt only changes allocator tuning and is documented as
        // safe to call at any time; the settings apply to later allocations
        // and arenas.
        let accepted = unsafe { libc::mallopt(param, value) };
        if accepted != 1 {
            tracing::debug!("malloc did not accept the {name}");
        }
    }
}
