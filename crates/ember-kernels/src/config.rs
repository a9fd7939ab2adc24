//! Kernel configuration: which instruction set runs ([`Isa`], detected once per process) and how
//! many threads a kernel may use ([`Threads`]), bundled in [`KernelConfig`].
//!
//! Dispatch happens once: [`Isa::detect`] caches the CPU feature test in a `OnceLock`, and every
//! public kernel matches on the `Isa` stored in the config it is given. `target-cpu=native` is never
//! needed (nor used).

use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

/// The instruction set a kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// The portable scalar reference kernels (always compiled, always available).
    Scalar,
    /// x86-64 AVX2 + FMA (+ F16C) kernels (`arch/x86_64/`).
    Avx2,
    /// The same AVX2 kernels with the integer inner product done by `vpdpbusd` (AVX-512 VNNI on
    /// 256-bit registers): one instruction instead of `maddubs` + `madd` + `add`.
    Avx512Vnni,
}

impl Isa {
    /// The best instruction set this CPU supports, detected once and cached.
    pub fn detect() -> Isa {
        static DETECTED: OnceLock<Isa> = OnceLock::new();
        *DETECTED.get_or_init(|| {
            if Isa::Avx512Vnni.is_supported() {
                Isa::Avx512Vnni
            } else if Isa::Avx2.is_supported() {
                Isa::Avx2
            } else {
                Isa::Scalar
            }
        })
    }

    /// Whether this CPU can run kernels of this instruction set.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                    && std::arch::is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                Isa::Avx2.is_supported()
                    && std::arch::is_x86_feature_detected!("avx512vnni")
                    && std::arch::is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 | Isa::Avx512Vnni => false,
        }
    }
}

/// How many threads a kernel may use. Work is split over output tiles with rayon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Threads {
    /// Run on the calling thread only.
    Single,
    /// Use rayon's global pool (all cores unless the application configured it otherwise).
    #[default]
    All,
    /// Use a dedicated pool of exactly this many threads (pools are created once and cached).
    /// `Count(0)` and `Count(1)` run on the calling thread.
    Count(usize),
}

/// The configuration every public kernel takes: instruction set and thread count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelConfig {
    /// Instruction set; defaults to [`Isa::detect`].
    pub isa: Isa,
    /// Thread count; defaults to [`Threads::All`].
    pub threads: Threads,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            isa: Isa::detect(),
            threads: Threads::All,
        }
    }
}

impl KernelConfig {
    /// The detected instruction set with the given threads.
    pub fn with_threads(threads: Threads) -> Self {
        KernelConfig {
            isa: Isa::detect(),
            threads,
        }
    }

    /// The scalar reference kernels, single-threaded (what differential tests compare against).
    pub fn reference() -> Self {
        KernelConfig {
            isa: Isa::Scalar,
            threads: Threads::Single,
        }
    }

    /// A config for an explicit instruction set.
    ///
    /// # Panics
    /// If this CPU does not support `isa` — choosing an unsupported ISA would be undefined
    /// behaviour, so it is refused up front. Use [`Isa::is_supported`] to check first.
    pub fn with_isa(isa: Isa, threads: Threads) -> Self {
        assert!(
            isa.is_supported(),
            "instruction set {isa:?} is not supported by this CPU; use Isa::detect() or Isa::Scalar"
        );
        KernelConfig { isa, threads }
    }

    /// Whether more than one thread may be used.
    pub(crate) fn is_parallel(&self) -> bool {
        !matches!(self.threads, Threads::Single | Threads::Count(0) | Threads::Count(1))
    }

    /// Run `f` inside the configured pool (rayon's global pool for `All`), so parallel iterators in
    /// it use the configured threads. Only meaningful when [`Self::is_parallel`].
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self.threads {
            Threads::Count(n) if n > 1 => pool(n).install(f),
            _ => f(),
        }
    }

    /// Run `task(i)` for every `i in 0..n_tasks`, on the configured threads.
    pub(crate) fn for_each_task<F: Fn(usize) + Sync + Send>(&self, n_tasks: usize, task: F) {
        match self.threads {
            Threads::Single | Threads::Count(0) | Threads::Count(1) => {
                (0..n_tasks).for_each(task);
            }
            _ if n_tasks <= 1 => (0..n_tasks).for_each(task),
            Threads::All => (0..n_tasks).into_par_iter().for_each(task),
            Threads::Count(n) => pool(n).install(|| (0..n_tasks).into_par_iter().for_each(task)),
        }
    }
}

/// A cached rayon pool of exactly `n` threads.
fn pool(n: usize) -> Arc<rayon::ThreadPool> {
    type Pools = Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>>;
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    let mut pools = pools.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(k, _)| *k == n) {
        return Arc::clone(p);
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("ember-kernels-{i}"))
            .build()
            .expect("failed to build a rayon thread pool"),
    );
    pools.push((n, Arc::clone(&p)));
    p
}

/// A raw output pointer shared by tile tasks that write disjoint tiles of a row-major matrix.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr {
    pub ptr: *mut f32,
    /// Row stride (elements) of the output matrix.
    pub ld: usize,
}

// SAFETY: `OutPtr` is only handed to tile tasks that write pairwise-disjoint regions of one
// exclusively borrowed output slice that outlives every task (the kernels borrow it `&mut` for the
// whole call), so concurrent use from several threads never aliases a written element.
unsafe impl Send for OutPtr {}
// SAFETY: see the `Send` impl above; shared references only copy the pointer.
unsafe impl Sync for OutPtr {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_task_runs_once_for_every_thread_setting() {
        for threads in [Threads::Single, Threads::All, Threads::Count(1), Threads::Count(2)] {
            let cfg = KernelConfig {
                isa: Isa::Scalar,
                threads,
            };
            let hits: Vec<AtomicUsize> = (0..37).map(|_| AtomicUsize::new(0)).collect();
            cfg.for_each_task(hits.len(), |i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{threads:?}");
        }
    }

    #[test]
    fn detection_is_stable_and_supported() {
        assert_eq!(Isa::detect(), Isa::detect());
        assert!(Isa::detect().is_supported());
        assert!(Isa::Scalar.is_supported());
    }
}
