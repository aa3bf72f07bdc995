//! faceverify: one-shot face verification that trains and runs entirely in the browser.
//!
//! The crate is a pure core that is tested natively (`model`, `vision`, `train`, `verify`,
//! `store`, `backend`, `protocol`, and `app`, the use cases that compose them) and one thin browser layer (`web`, wasm only) that owns the
//! camera, IndexedDB, the worker's message loop and the wasm-bindgen exports.

pub mod app;
pub mod backend;
pub mod eval;
pub mod model;
pub mod pipeline;
pub mod protocol;
pub mod selfcheck;
pub mod store;
pub mod train;
pub mod verify;
pub mod vision;

#[cfg(target_arch = "wasm32")]
pub mod web;

/// `initThreadPool(n)` for the page's multithreaded build: starts the Web Workers that rayon
/// (and so Burn's CPU backend) computes on. The worker awaits it before it answers anything.
#[cfg(all(target_arch = "wasm32", feature = "threads"))]
pub use wasm_bindgen_rayon::init_thread_pool;
