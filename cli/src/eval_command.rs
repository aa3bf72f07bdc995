//! `faceverify eval`: the LFW verification benchmark (`faceverify::eval`) from the command line:
//!
//! ```text
//! cargo run --release -p faceverify-cli -- eval --lfw ../shared/data/lfw \
//!     --pairs ../shared/data/lfw-pairs-dev.txt --crop detect|centre \
//!     [--fallback centre|lfw-framing] [--limit N] [--batch-size N] [--backend cpu|wgpu] \
//!     [--models DIR] [--json FILE]
//! ```
//!
//! A progress bar goes to stderr, the report to stdout.

use std::io::Write;
use std::path::PathBuf;

use faceverify::eval::{self, EvalModels, EvalOptions, EvalReport};
use faceverify::model::{blazeface, face_resnet::FaceResNet};
use faceverify::protocol::choice_from_str;
use faceverify::vision::align::CropMode;
use faceverify::vision::detect::FaceDetector;

use faceverify_cli::BackendChoice;

use crate::flags::{flag_values, number};

const USAGE: &str = "usage: faceverify eval --lfw DIR --pairs FILE [--crop detect|centre] \
[--fallback centre|lfw-framing] [--limit N] [--batch-size N] [--backend cpu|wgpu] \
[--models DIR] [--json FILE]";

struct Args {
    lfw: PathBuf,
    pairs: PathBuf,
    options: EvalOptions,
    backend: BackendChoice,
    models: PathBuf,
    json: Option<PathBuf>,
}

fn parse_args(raw: &[String]) -> Result<Args, String> {
    let mut lfw = None;
    let mut pairs = None;
    let mut options = EvalOptions::default();
    let mut backend = BackendChoice::default();
    let mut models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let mut json = None;
    for (flag, value) in flag_values(raw, USAGE)? {
        match flag {
            "--lfw" => lfw = Some(PathBuf::from(value)),
            "--pairs" => pairs = Some(PathBuf::from(value)),
            "--crop" => options.crop = choice_from_str("crop mode", value)?,
            "--fallback" => options.fallback = choice_from_str("fallback", value)?,
            "--limit" => options.limit = Some(number(flag, value)?),
            "--batch-size" => options.batch_size = number(flag, value)?,
            "--backend" => backend = choice_from_str("backend", value)?,
            "--models" => models = PathBuf::from(value),
            "--json" => json = Some(PathBuf::from(value)),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    Ok(Args {
        lfw: lfw.ok_or_else(|| format!("--lfw is required\n{USAGE}"))?,
        pairs: pairs.ok_or_else(|| format!("--pairs is required\n{USAGE}"))?,
        options,
        backend,
        models,
        json,
    })
}

/// `[#########-----------]  1234/4098  30.1%  12.3 faces/s  ETA 3m 52s`, redrawn in place.
struct ProgressBar {
    started: std::time::Instant,
    last_drawn: Option<std::time::Instant>,
}

impl ProgressBar {
    const WIDTH: usize = 30;

    fn draw(&mut self, done: usize, total: usize) {
        let now = std::time::Instant::now();
        // Redraw at most 5 times a second, but always the final state.
        if done < total
            && self
                .last_drawn
                .is_some_and(|t| now.duration_since(t).as_millis() < 200)
        {
            return;
        }
        self.last_drawn = Some(now);
        let fraction = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        let filled = (fraction * Self::WIDTH as f64).round() as usize;
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            done as f64 / elapsed
        } else {
            0.0
        };
        let eta = if rate > 0.0 {
            let s = ((total - done) as f64 / rate).round() as u64;
            format!("ETA {}m {:02}s", s / 60, s % 60)
        } else {
            "ETA --".to_string()
        };
        eprint!(
            "\r[{}{}] {done:>5}/{total}  {:5.1}%  {rate:6.1} faces/s  {eta}   ",
            "#".repeat(filled),
            "-".repeat(Self::WIDTH - filled),
            fraction * 100.0
        );
        if done >= total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn print_report(report: &EvalReport, backend_name: &str, wall_seconds: f64) {
    let cv = &report.cross_validation;
    let m = &report.metrics;
    let t = &report.times;
    let crop = match report.options.crop {
        CropMode::Detect => "detect",
        CropMode::Centre => "centre",
    };
    println!(
        "LFW pairs: {} ({} same, {} different), {} distinct images; crop {crop}; backend \
         {backend_name}; batch {}",
        report.pairs,
        report.same_person_pairs,
        report.pairs - report.same_person_pairs,
        report.images,
        report.options.batch_size
    );
    println!(
        "accuracy ({}-fold): {:.2}% ± {:.2}% (std over folds; standard error {:.2}%)",
        cv.folds.len(),
        cv.mean_accuracy * 100.0,
        cv.std_accuracy * 100.0,
        cv.standard_error * 100.0
    );
    let thresholds: Vec<String> = cv
        .folds
        .iter()
        .map(|f| format!("{:.3}", f.threshold))
        .collect();
    let accuracies: Vec<String> = cv
        .folds
        .iter()
        .map(|f| format!("{:.1}", f.test_accuracy * 100.0))
        .collect();
    println!("  fold thresholds: {}", thresholds.join(" "));
    println!("  fold accuracies: {}", accuracies.join(" "));
    println!(
        "accuracy at dlib's threshold {}: {:.2}%",
        eval::DLIB_THRESHOLD,
        m.accuracy_at_dlib_threshold * 100.0
    );
    println!("ROC AUC: {:.4}", m.auc);
    println!(
        "EER: {:.2}% at distance threshold {:.3}",
        m.eer * 100.0,
        m.eer_threshold
    );
    println!(
        "TAR at FAR = {:.0e}: {:.2}% at distance threshold {:.3} (FAR reached {:.2e})",
        m.target_far,
        m.tar * 100.0,
        m.tar_threshold,
        m.tar_far
    );
    println!(
        "mean distance: same person {:.3}, different people {:.3}",
        m.mean_same_distance, m.mean_different_distance
    );
    println!(
        "throughput: {:.1} faces/s ({} images in {:.1} s: decode {:.1} s, detect {:.1} s, \
         align {:.1} s, embed {:.1} s; wall clock with model loading {:.1} s)",
        report.faces_per_second,
        report.images,
        t.total,
        t.decode,
        t.detect,
        t.align,
        t.embed,
        wall_seconds
    );
    println!(
        "no face found ({:?} used instead): {} of {} images; several faces (largest used): {}",
        report.options.fallback, report.fallbacks, report.images, report.multiple_faces
    );
    if !report.fallback_images.is_empty() {
        let shown: Vec<String> = report
            .fallback_images
            .iter()
            .take(10)
            .map(|i| i.to_string())
            .collect();
        let more = report.fallback_images.len().saturating_sub(shown.len());
        let tail = if more > 0 {
            format!(" … and {more} more")
        } else {
            String::new()
        };
        println!("  {}{tail}", shown.join(", "));
    }
}

/// Runs `faceverify eval` with the arguments after `eval`.
pub fn run(raw: &[String]) -> Result<(), String> {
    let args = parse_args(raw)?;
    let wall = std::time::Instant::now();
    let device = args.backend.device().map_err(|e| e.to_string())?;
    let read = |name: &str| {
        let path = args.models.join(name);
        std::fs::read(&path).map_err(|e| {
            format!(
                "{}: {e} (run `cargo xtask models`, or pass --models)",
                path.display()
            )
        })
    };
    let blazeface_file = std::path::Path::new(blazeface::WEIGHTS_PATH)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("blazeface.f16.bin");
    let tower_file = std::path::Path::new(faceverify::model::face_resnet::WEIGHTS_PATH)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("face_resnet.q8.bin");
    let detector =
        FaceDetector::from_bytes(&read(blazeface_file)?, &device).map_err(|e| e.to_string())?;
    let tower = FaceResNet::from_bytes(&read(tower_file)?, &device).map_err(|e| e.to_string())?;
    let models = EvalModels {
        detector: &detector,
        tower: &tower,
        device: &device,
    };
    let mut bar = ProgressBar {
        started: std::time::Instant::now(),
        last_drawn: None,
    };
    let report = pollster::block_on(eval::evaluate_lfw(
        &args.lfw,
        &args.pairs,
        &models,
        &args.options,
        |done, total| bar.draw(done, total),
    ))
    .map_err(|e| e.to_string())?;
    print_report(&report, args.backend.name(), wall.elapsed().as_secs_f64());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(())
}
