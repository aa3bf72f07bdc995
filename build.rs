//! Link arguments of the browser's multithreaded build (feature `threads`, wasm atomics): its
//! memory must be shared between the Web Workers, so the module imports it (the JS glue
//! creates one shared `WebAssembly.Memory` for every thread) instead of defining its own, and
//! it exports the thread-local storage hooks that wasm-bindgen calls as each thread starts.
//! Nothing for any other build.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let threads = std::env::var_os("CARGO_FEATURE_THREADS").is_some();
    if !(wasm && threads) {
        return;
    }
    for arg in [
        "--shared-memory",
        "--import-memory",
        // wasm32's whole address space: training the Koch network needs more than 1 GiB.
        "--max-memory=4294967296",
        "--export=__wasm_init_tls",
        "--export=__tls_size",
        "--export=__tls_align",
        "--export=__tls_base",
    ] {
        println!("cargo:rustc-link-arg={arg}");
    }
}
