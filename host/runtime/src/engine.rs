//! The process-wide wasmtime [`Engine`]: pooling allocator (with an on-demand fallback) and
//! the epoch ticker that drives deadlines and cancellation.

use std::time::Duration;

use jobhost_config::Config;
use wasmtime::{
    Config as WasmConfig, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig,
};

/// Bytes of each pooled linear memory kept mapped between instances.
const KEEP_RESIDENT: usize = 2 * 1024 * 1024;

/// Each instance slot's share of the pool's memories (a component may use more, up to
/// `runtime.max_memories_per_component`, taking from others' shares).
pub(crate) const MEMORIES_PER_SLOT: u32 = 2;
/// Each instance slot's share of the pool's tables.
pub(crate) const TABLES_PER_SLOT: u32 = 8;
/// Each instance slot's share of the pool's core instances.
pub(crate) const CORE_INSTANCES_PER_SLOT: u32 = 16;

/// Which instance allocator the engine ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocator {
    /// Pre-reserved slots: instantiation is a few microseconds.
    Pooling,
    /// mmap per instance: slower, but needs no up-front reservation.
    OnDemand,
}

/// Builds the engine; falls back to on-demand allocation (with a warning) when the pool's
/// address-space reservation fails, e.g. under a tight `ulimit -v`.
pub fn build(config: &Config) -> wasmtime::Result<(Engine, Allocator)> {
    if config.runtime.pooling {
        match Engine::new(&engine_config(config, Allocator::Pooling)) {
            Ok(engine) => return Ok((engine, Allocator::Pooling)),
            Err(e) => tracing::warn!(
                "pooling allocator unavailable ({e:#}); using on-demand allocation, \
                 instantiation will be slower"
            ),
        }
    }
    Ok((
        Engine::new(&engine_config(config, Allocator::OnDemand))?,
        Allocator::OnDemand,
    ))
}

fn engine_config(config: &Config, allocator: Allocator) -> WasmConfig {
    let mut wasm = WasmConfig::new();
    wasm.epoch_interruption(true);
    wasm.wasm_component_model(true);
    if allocator == Allocator::Pooling {
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool(config)));
    }
    wasm
}

fn pool(config: &Config) -> PoolingAllocationConfig {
    // Job runs and `validate` calls have slots of their own; the pool serves both, and the
    // instances kept between attempts of plugins that reuse them (at most one slot's share
    // per run slot, see `warm`), which hold no slot while they wait.
    let kept = if config.keeps_instances() {
        config.runtime.max_instances
    } else {
        0
    };
    let instances = config
        .runtime
        .max_instances
        .saturating_add(config.runtime.validate_slots)
        .saturating_add(kept);
    // A Rust component is a handful of core instances (the program plus shims) with one
    // memory and a few tables; Python and JavaScript runtimes (componentize-py, -js) tens of
    // core instances and tables. One component may use up to its per-component maxima;
    // the totals leave every slot room for a Rust-sized one and the big ones their share.
    let r = &config.runtime;
    let per = |n: u32, floor: u32| instances.saturating_mul(n.min(floor)).max(n);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_core_instances(per(
            r.max_core_instances_per_component,
            CORE_INSTANCES_PER_SLOT,
        ))
        .total_memories(per(r.max_memories_per_component, MEMORIES_PER_SLOT))
        .total_tables(per(r.max_tables_per_component, TABLES_PER_SLOT))
        .total_stacks(instances)
        .max_memories_per_component(r.max_memories_per_component)
        .max_tables_per_component(r.max_tables_per_component)
        .max_core_instances_per_component(r.max_core_instances_per_component)
        .max_memory_size(usize::try_from(config.max_memory_bytes()).unwrap_or(usize::MAX))
        .max_unused_warm_slots(instances)
        // Reuse a slot's pages instead of unmapping them: with PAGEMAP_SCAN (Linux 6.7+)
        // only the pages a job dirtied are reset, so the next instance takes no page
        // faults. 2 MiB covers a Rust plugin's 1 MiB shadow stack, data and early heap.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 * 1024);
    pool
}

/// Starts the thread that advances the engine's epoch every `tick`; it ends with the engine.
pub fn start_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("jobhost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .expect("spawning the epoch ticker thread");
}
