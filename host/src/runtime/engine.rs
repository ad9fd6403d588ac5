//! The one wasmtime `Engine` every component runs on, and its epoch clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// Limits and tuning of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Try the pooling allocator first (falls back to on-demand allocation
    /// where the address space is too small).
    pub pooling: bool,
    /// Component instances alive at once (the pool's size).
    pub max_instances: u32,
    /// Largest linear memory of one component instance, in bytes.
    pub memory_limit_bytes: usize,
    /// How often the epoch advances; the granularity of deadlines.
    pub epoch_tick: Duration,
    /// Keep pool slots' pages resident between instances (reset with
    /// PAGEMAP_SCAN where the kernel has it) instead of returning them to
    /// the kernel after every call.
    pub keep_resident: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pooling: true,
            max_instances: 256,
            memory_limit_bytes: 64 << 20,
            epoch_tick: Duration::from_millis(10),
            keep_resident: true,
        }
    }
}

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots, reused across instances.
    Pooling,
    /// `mmap` per instance.
    OnDemand,
}

/// The engine, the allocator it uses, and the thread that advances epochs.
pub struct RuntimeEngine {
    /// The engine.
    pub engine: Engine,
    /// The allocator in use.
    pub allocator: Allocator,
    ticker_stop: Arc<AtomicBool>,
}

impl RuntimeEngine {
    /// Builds the engine: pooling allocator when it can reserve its address
    /// space, on-demand otherwise; epoch interruption for deadlines.
    pub fn new(settings: &EngineSettings) -> wasmtime::Result<Self> {
        let (engine, allocator) = if settings.pooling {
            match Engine::new(&config(settings, true)) {
                Ok(engine) => (engine, Allocator::Pooling),
                Err(error) => {
                    tracing::warn!(%error, "pooling allocator unavailable; falling back to on-demand allocation");
                    (Engine::new(&config(settings, false))?, Allocator::OnDemand)
                }
            }
        } else {
            (Engine::new(&config(settings, false))?, Allocator::OnDemand)
        };
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let tick = settings.epoch_tick;
        let stop = ticker_stop.clone();
        let ticking = engine.weak();
        // A plain thread: epochs must advance even when the async runtime's
        // workers are all busy running guests.
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match ticking.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(wasmtime::Error::new)?;
        Ok(RuntimeEngine {
            engine,
            allocator,
            ticker_stop,
        })
    }
}

impl Drop for RuntimeEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn config(settings: &EngineSettings, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    config.max_wasm_stack(1 << 20);
    if pooling {
        let n = settings.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A Rust component is a handful of core instances (the program and
        // WASI adapter shims), each with at most one memory and table.
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .total_stacks(n)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_memory_size(settings.memory_limit_bytes);
        if settings.keep_resident {
            // Reuse slots without returning their pages to the kernel each
            // time; measured to matter (see docs/benchmarks.md). Keeping pages
            // resident is only cheap with PAGEMAP_SCAN (Linux 6.7+), which
            // resets just the pages a guest touched.
            // Our components' tables fit in one page (up to 512 funcrefs; the
            // largest has 414). Keeping exactly one page resident makes
            // wasmtime clear them with a memset rather than a PAGEMAP_SCAN
            // system call per table.
            pool.linear_memory_keep_resident(8 << 20)
                .table_keep_resident(4096)
                .pagemap_scan(Enabled::Auto);
        }
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}
