//! What a component needs from a runtime besides the WIT contract: memory
//! allocation and a way to report a panic.
//!
//! Components are built for `wasm32-unknown-unknown` (see
//! docs/writing-components.md): Rust's standard library then imports no WASI
//! at all, so a component is one core module with only the host's own
//! imports, which makes every fresh instance cheaper to create and to drop.
//! Two things std gets from WASI on `wasm32-wasip2` are supplied here instead:
//!
//! - **Allocation**: dlmalloc, which hands out the free part of the initial
//!   linear memory before it grows the memory. std's own allocator for this
//!   target grows the memory on the first allocation, and a grown memory costs
//!   the host two `mprotect` calls (with a TLB flush on every core) per call.
//! - **Panics**: without stderr the default hook's message would be lost; the
//!   hook installed by [`enter`] writes it to the host's log at error level,
//!   and the host shows the last such line with the trap in the resource's
//!   status.
//!
//! Both also work on `wasm32-wasip2`, where the allocator stays wasi-libc's.

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Prepares the runtime at the start of every exported call: installs the
/// panic hook once per instance (an instance serves one call, so in practice
/// once per call). Called by [`crate::export_reconciler!`].
#[doc(hidden)]
pub fn enter() {
    #[cfg(target_arch = "wasm32")]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static INSTALLED: AtomicBool = AtomicBool::new(false);
        if !INSTALLED.swap(true, Ordering::Relaxed) {
            std::panic::set_hook(Box::new(|info| crate::log::error(&info.to_string())));
        }
    }
}
