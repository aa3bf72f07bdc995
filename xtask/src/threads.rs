//! The browser's multithreaded build: the same library compiled with wasm atomics and shared
//! memory, so that Burn's CPU backend (flex, gemm) runs on a rayon pool of Web Workers
//! (wasm-bindgen-rayon). Rust's standard library for wasm is built without threads, so this
//! build needs a pinned nightly with `rust-src` (`-Z build-std`); everything else stays on the
//! stable toolchain. It has no WebGPU: wgpu's browser objects cannot be shared between threads.
//!
//! `cargo xtask dist` writes it into `threads/` beside the single-thread build, and the worker
//! loads it only where the page is cross-origin isolated (`www/worker.js`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Result, WASM_TARGET, output, root, run, target_dir};

/// The nightly that builds it. Dated, so that a new machine builds the same thing; rustup
/// fetches it (with `rust-src` and the wasm target) during `cargo xtask setup`.
pub const NIGHTLY: &str = "nightly-2026-05-20";

/// Atomics and bulk memory make the memory shareable; SIMD as in the single-thread build
/// (`.cargo/config.toml`, which RUSTFLAGS replaces). The shared-memory link arguments come
/// from the library's build script, so that they reach only what is linked.
const RUSTFLAGS: &str = "-C target-feature=+atomics,+bulk-memory,+mutable-globals,+simd128";

/// What selects the threaded build in any cargo command (`build`, `test`): std rebuilt with
/// atomics, and the library's `threads` feature instead of its default `webgpu`.
pub const BUILD_FLAGS: [&str; 9] = [
    "--release",
    "--target",
    WASM_TARGET,
    "-Z",
    "build-std=panic_abort,std",
    "--no-default-features",
    "--features",
    "threads",
    "--locked",
];

/// The pinned nightly's cargo running `subcommand` on the threaded build, in its own folder.
pub fn cargo(subcommand: &str) -> Command {
    let mut cargo = Command::new("rustup");
    cargo
        .args(["run", NIGHTLY, "cargo", subcommand])
        .args(BUILD_FLAGS)
        .current_dir(root())
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", build_dir())
        // Set by the stable cargo that runs the xtask; the nightly's own must be used.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    cargo
}

/// Its own target folder: other flags and another compiler, so nothing is shared with the
/// stable wasm build, and neither evicts the other's cache.
fn build_dir() -> PathBuf {
    target_dir().join("threads")
}

/// Whether the pinned nightly with `rust-src` and the wasm target is installed.
fn toolchain_present() -> bool {
    let Some(sysroot) = output("rustup", &["run", NIGHTLY, "rustc", "--print", "sysroot"]) else {
        return false;
    };
    let lib = Path::new(&sysroot).join("lib/rustlib");
    lib.join("src/rust/library/std").is_dir() && lib.join(WASM_TARGET).is_dir()
}

/// Installs the pinned nightly (minimal profile: compiler, std, cargo) with what it needs.
pub fn setup() -> Result {
    if toolchain_present() {
        println!("xtask: setup: rust {NIGHTLY} with rust-src: present");
        return Ok(());
    }
    run(Command::new("rustup").args([
        "toolchain",
        "install",
        NIGHTLY,
        "--profile",
        "minimal",
        "--component",
        "rust-src",
        "--target",
        WASM_TARGET,
    ]))
}

/// Builds the multithreaded module and its ES-module glue into `out`.
pub fn build(out: &Path) -> Result {
    run(cargo("build").arg("--lib"))?;
    let wasm = build_dir()
        .join(WASM_TARGET)
        .join("release")
        .join("faceverify.wasm");
    crate::dist::wasm_bindgen_web(&wasm, out)
}

/// `cargo xtask threaded-wasm OUT_DIR`.
pub fn run_command(args: &[String]) -> Result {
    let out = match args {
        [dir] => PathBuf::from(dir),
        _ => return Err("usage: cargo xtask threaded-wasm OUT_DIR".into()),
    };
    setup()?;
    build(&out)?;
    println!("xtask: threaded-wasm: wrote {}", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threaded_build_rebuilds_std_with_atomics_and_leaves_webgpu_out() {
        let args = BUILD_FLAGS;
        assert!(args.contains(&"build-std=panic_abort,std"));
        assert!(args.contains(&"--no-default-features"));
        let features = args[args.iter().position(|a| *a == "--features").unwrap() + 1];
        assert_eq!(features, "threads");
        for flag in ["+atomics", "+bulk-memory", "+simd128"] {
            assert!(RUSTFLAGS.contains(flag), "{flag}");
        }
    }

    #[test]
    fn the_nightly_is_a_dated_one() {
        let date = NIGHTLY.strip_prefix("nightly-").unwrap();
        assert_eq!(date.len(), "2026-05-20".len());
        assert!(date.split('-').all(|part| part.parse::<u32>().is_ok()));
    }
}
