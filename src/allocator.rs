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
//! 10 ms brought the same import to about 237 MB (see `PURGE_DELAY_MS`).

/// mimalloc v3's `mi_option_purge_delay`: its place in `mi_option_e` (mimalloc.h),
/// which `libmimalloc-sys` does not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back: 10 ms (mimalloc v2's
/// default). Measured on the 1M-row SQLite import with its PDF: 0 ms gave 231–234 MB
/// in 4.2–4.9 s, 10 ms 236–239 MB in 4.1–4.3 s (page zeroing, 7% of the profile at
/// 0 ms), v3's default of 1000 ms 295–334 MB.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Sets mimalloc's options. Call it first thing in `main`, before any thread starts.
pub fn tune() {
    // SAFETY: `mi_option_set` only stores an option value; it is not thread safe, so
    // it runs before the process starts any other thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
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
    }
}
