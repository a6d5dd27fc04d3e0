//! Process-wide allocator tuning for tensor workloads.

/// Makes the C allocator keep freed memory for reuse instead of handing large blocks back to
/// the kernel (Linux with glibc; elsewhere this does nothing and returns `false`).
///
/// burn allocates and frees tensors of tens of megabytes at every layer. glibc serves each
/// block above 32 MB with a fresh `mmap` and unmaps it on free, so every layer of a
/// full-resolution pass faults in (and the kernel zeroes) its memory again: on the 2-core
/// machine of `docs/performance.md` the kernel time exceeded the arithmetic, and this call made
/// the small preset's 512×512 forward 2.2× faster at the same peak memory (with burn's
/// operations; the crate's CPU kernels allocate less, and gain 1.3× from it: the PromptIR
/// network at 256×256, 5.28 → 3.95 s). The cost: memory
/// freed after the peak stays with the process until it exits. Call it once, at the start of a
/// program that restores or trains; the examples and benchmarks do.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::ffi::c_int;
        // glibc's mallopt parameters (malloc.h)
        const M_TRIM_THRESHOLD: c_int = -1;
        const M_TOP_PAD: c_int = -2;
        const M_MMAP_MAX: c_int = -4;
        unsafe extern "C" {
            // Thread-safe and without memory-safety preconditions; returns 1 on success.
            safe fn mallopt(param: c_int, value: c_int) -> c_int;
        }
        // -1: never trim (mallopt(3)). `c_int::MAX` is only 2 GiB: a training step that frees
        // more than that at once (the small preset at batch 16 peaks at 4 GB) handed the top of
        // the heap back and faulted it in again at the next step.
        mallopt(M_MMAP_MAX, 0) == 1
            && mallopt(M_TRIM_THRESHOLD, -1) == 1
            && mallopt(M_TOP_PAD, 64 << 20) == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
