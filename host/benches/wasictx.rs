//! scratch
#![allow(missing_docs)]
use std::time::Instant;
fn main() {
    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        let pipe = wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(16 << 10);
        let ctx = wasmtime_wasi::WasiCtx::builder().stderr(pipe).build();
        std::hint::black_box(ctx);
    }
    println!("WasiCtx build: {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n {
        let ctx = wasmtime_wasi::WasiCtx::builder().build();
        std::hint::black_box(ctx);
    }
    println!(
        "WasiCtx build no pipe: {:.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let table = wasmtime::component::ResourceTable::new();
        std::hint::black_box(table);
    }
    println!("table: {:.2} µs", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
