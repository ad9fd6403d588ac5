//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what the program frees in per-thread arenas and
//! returns it to the kernel only from the top of each heap. An operator that
//! served a thousand resources, then saw them deleted, has freed their
//! informer entries, reconcile buffers and component answers, yet its
//! resident size stays at the peak: the pages sit free in the arenas, in the
//! middle of heaps. `malloc_trim` hands those pages back (with
//! `MADV_DONTNEED`); doing it on a timer costs a walk of the free lists,
//! microseconds when little is free. Other allocators (musl's, the Rust
//! ones) return memory on their own, so this is glibc-only.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How often freed memory is handed back.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(15);

/// Hands freed memory back every [`TRIM_INTERVAL`] until `shutdown`.
pub async fn trim_periodically(shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(TRIM_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                trim();
            }
        }
    }
}

/// Returns the free pages of every arena to the kernel; true when some were.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim() -> bool {
    // SAFETY: malloc_trim only walks the allocator's own free lists, under
    // the allocator's locks; it has no preconditions on the caller.
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

/// Nothing to do where the allocator returns memory by itself.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_memory_can_be_handed_back() {
        // Many mid-sized blocks, freed but for the last: the freed ones are
        // below the heap's top, where only a trim returns them.
        let mut blocks: Vec<Vec<u8>> = (0..2048).map(|i| vec![i as u8; 16 * 1024]).collect();
        let last = blocks.pop();
        drop(blocks);
        let released = trim();
        drop(last);
        assert_eq!(released, cfg!(all(target_os = "linux", target_env = "gnu")));
    }
}
