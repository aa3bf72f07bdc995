//! `cargo xtask bench --peers`: two of our browser figures timed with face-api, a widely used
//! JavaScript face-recognition library, on the tfjs **wasm** backend in headless Chromium (the
//! browser-CPU yardstick for our wasm CPU backend), and the ratios ours / theirs.
//!
//! The npm packages are pinned exactly in `xtask/peers/package.json` and `package-lock.json`
//! and installed with `npm ci` into `<target>/peers/`, beside copies of the page and its
//! driver (`run.mjs`). The browser is Debian's Chromium, driven through playwright-core, which
//! downloads none. The face-api weights are the package's own `model/` folder; nothing else is
//! fetched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::median;
use crate::{Result, root, target_dir};

/// The compared figures: ours are `browser.cpu.<name>`, the peer's `peer.faceapi.<name>`.
const COMPARED: [&str; 2] = ["embed_128d", "frame_to_decision_50refs"];
/// Our two browser CPU builds and the prefix of their ratio lines: the single-thread build
/// gives `ratio.<name>`, the multithreaded one `ratio.threads.<name>`.
const OUR_BUILDS: [(&str, &str); 2] = [
    ("browser.cpu", "ratio"),
    ("browser.cpu_threads", "ratio.threads"),
];
const CHROMIUM: &str = "/usr/bin/chromium";
/// Warm-up and measured runs of each peer figure: both take well under a second.
const WARMUP: usize = 1;
const RUNS: usize = 5;
/// The page's own limit (model loading and both figures), in seconds.
const PAGE_TIMEOUT_S: u32 = 300;
/// What `xtask/peers/` holds, copied beside `node_modules` (ES modules resolve packages from
/// the folder a module lives in).
const FILES: [&str; 7] = [
    "package.json",
    "package-lock.json",
    "server.mjs",
    "run.mjs",
    "page.mjs",
    "summary.mjs",
    "index.html",
];

fn source_dir() -> PathBuf {
    root().join("xtask").join("peers")
}

fn build_dir() -> PathBuf {
    target_dir().join("peers")
}

/// The dependencies `package.json` pins, as (name, version).
fn pins(package_json: &str) -> Result<Vec<(String, String)>> {
    let manifest: serde_json::Value =
        serde_json::from_str(package_json).map_err(|e| format!("peers package.json: {e}"))?;
    let dependencies = manifest["dependencies"]
        .as_object()
        .ok_or("peers package.json has no dependencies")?;
    dependencies
        .iter()
        .map(|(name, version)| match version.as_str() {
            Some(v) => Ok((name.clone(), v.to_string())),
            None => Err(format!("peers package.json: {name} has no version string")),
        })
        .collect()
}

/// The version of `name` installed under `dir/node_modules`.
fn installed_version(dir: &Path, name: &str) -> Option<String> {
    let manifest = dir.join("node_modules").join(name).join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value["version"].as_str().map(str::to_string)
}

/// Whether `dir` holds a finished `npm ci` of exactly `lock` (npm writes
/// `node_modules/.package-lock.json` last) with every pinned package at its version.
fn installed(dir: &Path, lock: &str, pins: &[(String, String)]) -> bool {
    std::fs::read_to_string(dir.join("package-lock.json")).is_ok_and(|l| l == lock)
        && dir
            .join("node_modules")
            .join(".package-lock.json")
            .is_file()
        && pins
            .iter()
            .all(|(name, version)| installed_version(dir, name).as_deref() == Some(version))
}

/// Copies the page and its driver into the build folder and installs the pinned packages
/// there unless they already are.
fn install(dir: &Path) -> Result {
    let source = source_dir();
    let read =
        |name: &str| std::fs::read_to_string(source.join(name)).map_err(|e| format!("{name}: {e}"));
    let (manifest, lock) = (read("package.json")?, read("package-lock.json")?);
    let pins = pins(&manifest)?;
    let present = installed(dir, &lock, &pins);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in FILES {
        std::fs::copy(source.join(name), dir.join(name))
            .map_err(|e| format!("copying {name} to {}: {e}", dir.display()))?;
    }
    let listed: Vec<String> = pins.iter().map(|(n, v)| format!("{n}@{v}")).collect();
    if present {
        println!("xtask: peers: {}: present", listed.join(", "));
        return Ok(());
    }
    println!("xtask: peers: installing {} with npm", listed.join(", "));
    // No install scripts: none of these packages needs one, and none may fetch a browser.
    crate::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(dir),
    )
}

/// Installs what is missing, then times the peer figures; returns the printed lines.
pub fn run() -> Result<Vec<String>> {
    let photo = root().join("../shared/data/color/obama.jpg");
    if !photo.is_file() {
        let note = format!(
            "bench: peers: no {}: the peer figures are skipped",
            photo.display()
        );
        println!("{note}");
        return Ok(vec![note]);
    }
    let photo = std::fs::canonicalize(&photo).unwrap_or(photo);
    let dir = build_dir();
    install(&dir)?;
    let mut command = Command::new("node");
    command
        .arg("run.mjs")
        .arg("--photo")
        .arg(&photo)
        .args(["--warmup", &WARMUP.to_string(), "--runs", &RUNS.to_string()])
        .args(["--chromium", CHROMIUM])
        .args(["--timeout-s", &PAGE_TIMEOUT_S.to_string()])
        .current_dir(&dir);
    crate::bench::run_streaming(&mut command)
}

/// The `ratio.<name>=<ours / peer>` line of one compared figure, or the note saying which
/// figure this run lacks.
fn ratio(
    figures: &[String],
    (build, ratio): (&str, &str),
    name: &str,
) -> std::result::Result<String, String> {
    let ours = median(figures, &format!("{build}.{name}")).ok_or_else(|| {
        format!("bench: peers: {ratio}.{name} skipped: no {build}.{name} in this run")
    })?;
    let peer = median(figures, &format!("peer.faceapi.{name}")).ok_or_else(|| {
        format!("bench: peers: {ratio}.{name} skipped: no peer.faceapi.{name} in this run")
    })?;
    Ok(format!(
        "{ratio}.{name}={:.3} ours_ms={ours:.3} peer_ms={peer:.3}",
        ours / peer
    ))
}

/// The ratio lines (ours / peer: above 1 means ours is slower) and the notes for the compared
/// figures this run lacks.
pub fn ratios(figures: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut lines, mut notes) = (Vec::new(), Vec::new());
    for build in OUR_BUILDS {
        for name in COMPARED {
            match ratio(figures, build, name) {
                Ok(line) => lines.push(line),
                Err(note) => notes.push(note),
            }
        }
    }
    (lines, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(name: &str, median: &str) -> String {
        format!("figure={name} median={median} min=1.000 max=900.000 runs=5 unit=ms")
    }

    #[test]
    fn ratios_divide_our_median_by_the_peer_median() {
        let figures = vec![
            figure("browser.cpu.embed_128d", "45.900"),
            figure("browser.cpu.embed_128d_extra", "1.000"),
            figure("peer.faceapi.embed_128d", "30.600"),
            figure("browser.cpu.frame_to_decision_50refs", "120.000"),
            figure("peer.faceapi.frame_to_decision_50refs", "240.000"),
            figure("browser.cpu_threads.embed_128d", "15.300"),
            figure("browser.cpu_threads.frame_to_decision_50refs", "60.000"),
        ];
        let (lines, notes) = ratios(&figures);
        assert_eq!(
            lines,
            [
                "ratio.embed_128d=1.500 ours_ms=45.900 peer_ms=30.600",
                "ratio.frame_to_decision_50refs=0.500 ours_ms=120.000 peer_ms=240.000",
                "ratio.threads.embed_128d=0.500 ours_ms=15.300 peer_ms=30.600",
                "ratio.threads.frame_to_decision_50refs=0.250 ours_ms=60.000 peer_ms=240.000"
            ]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn a_missing_figure_gives_a_note_instead_of_a_ratio() {
        let figures = vec![
            figure("peer.faceapi.embed_128d", "30.000"),
            figure("browser.cpu.frame_to_decision_50refs", "120.000"),
        ];
        let (lines, notes) = ratios(&figures);
        assert!(lines.is_empty());
        assert_eq!(
            notes[..3],
            [
                "bench: peers: ratio.embed_128d skipped: no browser.cpu.embed_128d in this run",
                "bench: peers: ratio.frame_to_decision_50refs skipped: \
                 no peer.faceapi.frame_to_decision_50refs in this run",
                "bench: peers: ratio.threads.embed_128d skipped: \
                 no browser.cpu_threads.embed_128d in this run",
            ]
        );
    }

    #[test]
    fn medians_are_read_from_figure_lines_only() {
        let figures = vec![
            "floor=peer.faceapi.embed_128d flops=1 median=9".to_string(),
            figure("peer.faceapi.embed_128d", "58.690"),
        ];
        assert_eq!(median(&figures, "peer.faceapi.embed_128d"), Some(58.69));
        assert_eq!(median(&figures, "peer.faceapi"), None);
    }

    #[test]
    fn the_packages_are_pinned_exactly() {
        let manifest = std::fs::read_to_string(source_dir().join("package.json")).unwrap();
        let pins = pins(&manifest).unwrap();
        let version = |name: &str| {
            pins.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(version("@vladmandic/face-api"), Some("1.7.15"));
        assert_eq!(version("@tensorflow/tfjs-backend-wasm"), Some("4.22.0"));
        // Exact versions only: no ranges, tags or URLs.
        for (name, version) in &pins {
            assert!(
                version.split('.').count() == 3
                    && version.split('.').all(|p| p.parse::<u32>().is_ok()),
                "{name} is pinned to {version}, not an exact version"
            );
        }
        // The lock file was made from this package.json.
        let lock = std::fs::read_to_string(source_dir().join("package-lock.json")).unwrap();
        let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
        for (name, version) in &pins {
            assert_eq!(
                lock["packages"][""]["dependencies"][name].as_str(),
                Some(version.as_str()),
                "{name} in package-lock.json"
            );
            assert_eq!(
                lock["packages"][format!("node_modules/{name}")]["version"].as_str(),
                Some(version.as_str()),
                "{name} locked"
            );
        }
    }

    #[test]
    fn every_file_of_the_peer_folder_is_copied() {
        let mut present: Vec<String> = std::fs::read_dir(source_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        present.sort();
        let mut copied = FILES.map(String::from).to_vec();
        copied.sort();
        assert_eq!(present, copied);
    }
}
