//! The process's allocators: mimalloc for small blocks and the C library's for large ones
//! ([`Split`]), their options, set once at start-up before any other thread exists, and the
//! memory the process gives back when the server goes idle (`prext_server::idle`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{c_int, c_long};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use mimalloc::MiMalloc;

/// Blocks of at least this many bytes come from the C library's allocator, the rest from
/// mimalloc. mimalloc places blocks of 10-84 KiB in 512 KiB pages and larger ones, up to
/// 512 KiB, in 4 MiB pages, and returns a page to the kernel only once all its blocks are
/// free, so a burst of 197 KB reports left pages resident that a few blocks still used.
/// glibc maps a block of [`MMAP_FROM`] or more on its own (unmapped when freed) and returns
/// the free pages between smaller ones on `malloc_trim` ([`release`]). From 64 KiB, no block
/// goes to mimalloc's 4 MiB pages. Measured in BENCHMARKS.md ("Idle memory after 197 KB
/// reports, session 7"): peak 50 → 41 MiB, and 39-42 → 32 MiB after 10 s idle even without
/// the idle release (32, 64 and 128 KiB measured alike there).
const LARGE_FROM: usize = 64 * 1024;

/// [`LARGE_FROM`], or what `PREXT_LARGE_ALLOC_FROM` sets at the start of `main` (0: every
/// block from mimalloc; at least 16 KiB). Changed only then, before any block that large
/// exists, so that a block is always freed by the allocator that gave it.
static LARGE: AtomicUsize = AtomicUsize::new(LARGE_FROM);

#[inline]
fn large(size: usize) -> bool {
    size >= LARGE.load(Ordering::Relaxed)
}

/// glibc's `M_MMAP_THRESHOLD`, fixed (glibc otherwise raises it to the largest block freed,
/// up to 32 MiB, and the 197 KB bodies would then stay in its heaps).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_FROM: c_int = 128 * 1024;

/// The process's allocator: mimalloc for small blocks (most of a request's: the JSON tree's
/// maps and strings, freed in bulk, often on another thread), the C library's for large ones.
pub(crate) struct Split;

// SAFETY: each call goes to the allocator that owns the block: the choice depends only on
// the block's size, which Rust passes unchanged to `dealloc` (and as the old size to
// `realloc`); a `realloc` across the threshold moves the block from one to the other.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Split {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) {
            System.alloc(layout)
        } else {
            MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout.size()) {
            System.dealloc(ptr, layout)
        } else {
            MiMalloc.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (large(layout.size()), large(new_size)) {
            (false, false) => MiMalloc.realloc(ptr, layout, new_size),
            (true, true) => System.realloc(ptr, layout, new_size),
            _ => {
                // SAFETY (of the layout): `realloc`'s contract gives a size that, rounded up
                // to the alignment, does not overflow `isize`.
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

/// `mi_option_purge_delay` of mimalloc v3's `mi_option_t` (include/mimalloc.h; the
/// version libmimalloc-sys builds unless its `v2` feature is on): default 1000 ms.
const PURGE_DELAY: c_int = 15;
/// `mi_option_page_full_retain` of the same enum: default 2 (empty pages kept per size
/// class and thread).
const PAGE_FULL_RETAIN: c_int = 36;

/// The options set, each with the variable that overrides it: (option, value, variable).
const SETTINGS: [(c_int, c_long, &str); 2] = [
    (PURGE_DELAY, 0, "MIMALLOC_PURGE_DELAY"),
    (PAGE_FULL_RETAIN, 0, "MIMALLOC_PAGE_FULL_RETAIN"),
];

extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
    fn mi_collect(force: bool);
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
}

/// Sets the allocators' options: runs first in `main`, before the runtime starts any thread
/// and before any block of [`LARGE_FROM`] bytes exists.
pub(crate) fn configure() {
    if let Some(from) = std::env::var("PREXT_LARGE_ALLOC_FROM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        // Never below 16 KiB: what the standard library allocated before `main` is smaller
        // and must still be freed by mimalloc.
        let from = if from == 0 {
            usize::MAX
        } else {
            from.max(16 * 1024)
        };
        LARGE.store(from, Ordering::Relaxed);
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        mmap_large_blocks();
    }
    purge_promptly();
}

/// glibc maps blocks of [`MMAP_FROM`] bytes and more on their own (glibc's own
/// `MALLOC_MMAP_THRESHOLD_` variable still wins).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mmap_large_blocks() {
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    /// glibc's `M_MMAP_THRESHOLD` (malloc.h).
    const M_MMAP_THRESHOLD: c_int = -3;
    // SAFETY: glibc's `mallopt` with one of its parameters and a valid value (at most
    // HEAP_MAX/2); like mimalloc's options, set before any other thread exists.
    unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_FROM) };
}

/// Returns freed memory to the kernel as soon as a page of the heap is empty: a purge
/// delay of 0 instead of 1000 ms, and no empty pages kept per thread. With the defaults
/// a page is only purged when the thread owning it allocates again, so the workers that
/// served a burst of 197 KB reports go idle holding 10-15 MB of empty pages
/// (BENCHMARKS.md, "Idle RSS"; the CPU cost measured there too). The
/// `MIMALLOC_PURGE_DELAY` and `MIMALLOC_PAGE_FULL_RETAIN` variables still win.
#[allow(unsafe_code)]
fn purge_promptly() {
    for (option, value, variable) in SETTINGS {
        if std::env::var_os(variable).is_some() {
            continue;
        }
        // SAFETY: `mi_option_set` is mimalloc's own C function (linked by
        // libmimalloc-sys, the global allocator's), taking an option index and a value:
        // the indexes are those of the mimalloc version built (the test below checks
        // their defaults there), and 0 is a valid value of both. Options are plain static
        // variables, not thread safe: this runs first in `main`, before the runtime
        // starts any thread.
        unsafe { mi_option_set(option, value) }
    }
}

/// Bumped by [`release`]: each runtime worker collects once when it next goes idle.
static ASKED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last [`ASKED`] this thread collected for.
    static COLLECTED: Cell<u64> = const { Cell::new(0) };
}

/// The server's idle hook (`prext_server::idle`): returns the free memory of the
/// allocator and of the C heap to the kernel. mimalloc frees a page once its blocks are
/// all free, but a block freed by another thread than the page's owner (a request body
/// decoded on one thread and dropped on another) is only counted when the owner next
/// allocates or collects, and the threads that served a burst go idle without doing
/// either: this thread collects now, each runtime worker when it next parks
/// ([`collect_if_asked`]). glibc's `malloc_trim` then gives back what SQLite (its page
/// caches, emptied by the store just before) freed in the C heap.
pub(crate) fn release() {
    ASKED.fetch_add(1, Ordering::Relaxed);
    collect();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    trim();
}

/// Run by each runtime worker as it parks: collects once per [`release`].
pub(crate) fn collect_if_asked() {
    let asked = ASKED.load(Ordering::Relaxed);
    if COLLECTED.get() != asked {
        COLLECTED.set(asked);
        collect();
    }
}

#[allow(unsafe_code)]
fn collect() {
    // SAFETY: `mi_collect` is mimalloc's own C function (the global allocator's), safe
    // to call from any thread at any time: it collects the calling thread's heap.
    unsafe { mi_collect(true) }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    extern "C" {
        fn malloc_trim(pad: usize) -> c_int;
    }
    // SAFETY: glibc's `malloc_trim` takes any size and locks its arenas itself; it only
    // returns free memory to the kernel.
    unsafe { malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks that grow and shrink across [`LARGE_FROM`] move between the two allocators
    /// with their contents.
    #[test]
    fn blocks_keep_their_bytes_across_the_threshold() {
        let mut v: Vec<u8> = Vec::with_capacity(16);
        for i in 0..3 * LARGE_FROM {
            v.push((i % 251) as u8);
        }
        assert!(v.capacity() >= LARGE_FROM);
        v.truncate(100);
        v.shrink_to_fit();
        assert!(v.capacity() < LARGE_FROM);
        assert!(v.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8));
        let zeroed = vec![0u64; LARGE_FROM];
        assert!(zeroed.iter().all(|&x| x == 0));
        let big: Vec<u8> = vec![7; 1 << 20];
        let moved = big.clone();
        drop(big);
        assert!(moved.iter().all(|&b| b == 7));
    }

    /// The hook and the per-worker collection run (and can run again).
    #[test]
    fn release_collects_on_this_thread_and_asks_the_others() {
        let before = ASKED.load(Ordering::Relaxed);
        release();
        assert_eq!(ASKED.load(Ordering::Relaxed), before + 1);
        collect_if_asked();
        assert_eq!(COLLECTED.get(), before + 1);
        let keep: Vec<u8> = vec![1; 1 << 20];
        release();
        assert_eq!(keep.iter().map(|&b| usize::from(b)).sum::<usize>(), 1 << 20);
    }

    /// The indexes name the options: their v3 defaults (mimalloc's src/options.c), 1000
    /// being that of no other option.
    #[test]
    #[allow(unsafe_code)]
    fn option_indexes_are_mimallocs() {
        for (option, default, variable) in [
            (PURGE_DELAY, 1000, "MIMALLOC_PURGE_DELAY"),
            (PAGE_FULL_RETAIN, 2, "MIMALLOC_PAGE_FULL_RETAIN"),
        ] {
            if std::env::var_os(variable).is_some() {
                continue;
            }
            // SAFETY: reads one option of the mimalloc linked in (see `purge_promptly`).
            assert_eq!(unsafe { mi_option_get(option) }, default, "{variable}");
        }
    }
}
