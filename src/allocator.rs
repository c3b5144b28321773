//! The allocator the binaries install: mimalloc (`#[global_allocator]` in `main.rs`),
//! told to give memory back to the system soon after it is freed.
//!
//! Why: an import parses on a blocking-pool thread, and the records it built are freed
//! by another thread once the replace is done; the PDF report is then laid out. With
//! glibc's allocator the report could not reuse what the parser had freed: the 1M-row
//! SQLite import with its report peaked at 446 MB, and at 298 MB with
//! `MALLOC_ARENA_MAX=1`, so the per-thread arenas were the cause. mimalloc with its
//! default purge delay (one second in mimalloc v3) still held the freed pages while
//! the report was laid out: 295–334 MB (after a later parser change); purging within
//! 10 ms brought the same import to about 237 MB. Since transparent huge pages are off
//! (below), 100 ms keeps the peak almost as low and is faster (see `PURGE_DELAY_MS`).
//!
//! The process also turns transparent huge pages off for itself
//! ([`disable_transparent_huge_pages`]): an import's memory is built up and freed
//! within seconds, and faulting it in 2 MB at a time cost more than it saved.

/// mimalloc v3's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h),
/// which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back: 100 ms.
///
/// First measured with transparent huge pages on, on the 1M-row SQLite import with its
/// PDF: 0 ms gave 231–234 MB in 4.2–4.9 s, 10 ms 236–239 MB in 4.1–4.3 s (page
/// zeroing, 7% of the profile at 0 ms), v3's default of 1000 ms 295–334 MB; 10 ms was
/// chosen. With them off, on the 1M-row PostgreSQL `import-file`, each run after 6 s
/// idle (`BENCHMARKS.md`, Method), rotated, in three comparisons of 3–4 rounds: 100 ms
/// against 10 ms, median 4.08 against 4.33 s, 4.14 against 4.28 s, 4.30 against 4.46 s,
/// at 223–236 MB against 219–220 MB peak RSS; 1000 ms, 4.09 s at 267 MB. On SQLite,
/// 3.77 against 3.73 s (no gain), 225 against 213 MB. Memory given back is soon
/// faulted in again, which costs most on a VM whose host takes freed memory back.
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// Sets mimalloc's options and turns transparent huge pages off. Call it first thing
/// in `main`, before any thread starts.
pub fn tune() {
    // SAFETY: `mi_option_set` only stores an option value; it is not thread safe, so
    // it runs before the process starts any other thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    disable_transparent_huge_pages();
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`; the
/// system's setting is left alone). mimalloc's own switch for this (`allow_thp`) is
/// read when it starts, before `main`.
///
/// Measured on the 1M-row PostgreSQL `import-file` (`BENCHMARKS.md`), each run started
/// after the machine had been idle for 6 s, alternating, three rounds each: 4.49 s
/// (4.48–4.51) and 246 MB peak RSS with huge pages, 4.22 s (4.18–4.26) and 215 MB
/// without. With them, memory is faulted in (zeroed and, on a VM, backed by the host)
/// 2 MB at a time, much of it for a few live objects, and the kernel compacts memory to
/// find free 2 MB blocks. A failure only leaves huge pages on, so it is ignored.
pub fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this process's
    // (and its future children's) use of transparent huge pages.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

/// Whether transparent huge pages are off for this process.
pub fn transparent_huge_pages_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE takes plain integers and only reads the setting.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

/// The purge delay in force, in milliseconds.
pub fn purge_delay_ms() -> std::ffi::c_long {
    // SAFETY: reads an option value.
    unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_purge_delay_is_the_option_set() {
        // mimalloc v3's default is 1000 ms (options.c): reading it at our index shows
        // the index names the purge delay (the test binary's allocator is the system
        // one, but mimalloc is linked and its options are there all the same).
        assert_eq!(super::purge_delay_ms(), 1000);
        super::tune();
        assert_eq!(super::purge_delay_ms(), super::PURGE_DELAY_MS);
        assert!(super::transparent_huge_pages_disabled());
    }
}
