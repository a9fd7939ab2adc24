//! The process's memory: its peak (reported by `compose` and `bench`) and handing freed heap
//! memory back to the system between the phases of a long run.

/// Peak resident set size of this process in MB (`VmHWM` in `/proc/self/status`; NaN elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Returns the heap memory freed so far to the operating system. glibc's allocator keeps freed
/// blocks for reuse, and once it has seen large blocks freed it serves blocks of up to 32 MB from
/// the heap too; after calibration (GPTQ's Hessians, layer activations) and after the composed
/// model is dropped, that retained memory would otherwise count in the peak of every later
/// phase. A no-op elsewhere than glibc.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: `malloc_trim` only returns free pages to the system; it has no preconditions.
        unsafe {
            malloc_trim(0);
        }
    }
}
