//! The state of one `Store`: one call of one component for one resource.
//!
//! A fresh store per call keeps resources from leaking between calls and lets
//! each call carry its own capabilities, memory cap and time budget.

use std::time::{Duration, Instant};

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::imports::CallContext;

/// Bytes of a guest's stderr kept for the log (panic messages land there).
const STDERR_CAPTURE: usize = 16 << 10;

/// Characters of the guest's last error-level log line kept for a trap's
/// message.
const LAST_ERROR_CAPTURE: usize = 1024;

/// Everything a store holds.
pub struct StoreState {
    /// Built on the guest's first WASI call: most reconciles make none, and
    /// building it (random seeds, clocks, stdio) was a tenth of the host's
    /// cost per call.
    wasi: Option<(WasiCtx, MemoryOutputPipe)>,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) budget: Budget,
    pub(crate) call: CallContext,
    /// The last line the guest logged at error level: the SDK's panic hook
    /// logs a panic's message there just before the trap.
    last_error: Option<String>,
}

impl StoreState {
    /// A store for one call: no environment, no files, no network; stderr
    /// captured for the log.
    pub fn new(call: CallContext, memory_limit: usize, budget: Budget) -> Self {
        StoreState {
            wasi: None,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: memory_limit,
                exceeded: false,
            },
            budget,
            call,
            last_error: None,
        }
    }

    /// What the guest wrote to stderr, lossily decoded.
    pub fn stderr(&self) -> String {
        match &self.wasi {
            Some((_, stderr)) => String::from_utf8_lossy(&stderr.contents()).trim().to_owned(),
            None => String::new(),
        }
    }

    /// The last line the guest logged at error level, if any (the SDK's
    /// panic hook logs a panic's message there).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Keeps `message` as the guest's last error-level line, capped so that a
    /// guest cannot make the host hold much.
    pub(crate) fn remember_error(&mut self, mut message: String) {
        if let Some((end, _)) = message.char_indices().nth(LAST_ERROR_CAPTURE) {
            message.truncate(end);
        }
        self.last_error = Some(message);
    }

    /// Charges the time since `started` to the host, not to the guest's
    /// budget: a slow Keycloak must not count against the component.
    pub(crate) fn charge_host_time(&mut self, started: Instant) {
        self.budget.host_time += started.elapsed();
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (ctx, _) = self.wasi.get_or_insert_with(|| {
            let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
            (WasiCtx::builder().stderr(stderr.clone()).build(), stderr)
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// A memory cap that remembers it refused a growth, so that the trap which
/// usually follows can be reported as running out of memory.
pub struct MemoryCap {
    limit: usize,
    pub(crate) exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Time limits of one call. Guest time excludes the time spent in host
/// imports (a slow Keycloak must not count against the component); wall
/// time bounds the whole call.
#[derive(Debug, Clone)]
pub struct Budget {
    pub(crate) started: Instant,
    pub(crate) host_time: Duration,
    pub(crate) guest_limit: Duration,
    pub(crate) wall_limit: Duration,
    pub(crate) timed_out: bool,
}

impl Budget {
    /// A budget starting now.
    pub fn new(guest_limit: Duration, wall_limit: Duration) -> Self {
        Budget {
            started: Instant::now(),
            host_time: Duration::ZERO,
            guest_limit,
            wall_limit,
            timed_out: false,
        }
    }

    /// Whether the call ran out of time; marks it so when it did.
    pub(crate) fn check(&mut self) -> bool {
        let wall = self.started.elapsed();
        let guest = wall.saturating_sub(self.host_time);
        if guest > self.guest_limit || wall > self.wall_limit {
            self.timed_out = true;
        }
        self.timed_out
    }
}
