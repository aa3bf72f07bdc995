//! The commands behind the `faceverify` binary, as functions the tests call too.
//!
//! - [`train`]: `DIR/anchor`, `DIR/positive`, `DIR/negative` (the tutorial's layout) → a model
//!   file with the weights, a calibrated policy and the run's metrics.
//! - [`verify`]: a model file, a folder of reference photos and probes → the tutorial's
//!   decision per probe, with every score.
//! - [`impostors`]: the impostor model from an LFW folder.
//!
//! `train` and `verify` are the page's use cases: a [`Session`](faceverify::app::Session) on an
//! on-disk store answers the worker's requests (`session`), so photos are detected and aligned
//! and models trained exactly as in the browser.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use faceverify::backend::wgpu_device;
use faceverify::model::face_resnet::{FaceResNet, WEIGHTS_PATH};
use faceverify::pipeline::FacePipeline;
use faceverify::train::impostors::{
    FitOptions, ImpostorError, ImpostorModel, ImpostorSelection, build_from_lfw,
};
use serde::Deserialize;
use thiserror::Error;

pub mod session;
pub use session::{ProbeDecision, TrainOptions, Trained, VerifyOptions, identify, train, verify};

/// Why a command failed. [`CliError::exit_code`] maps it to the process status.
#[derive(Debug, Error)]
pub enum CliError {
    /// The command line is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// A file or folder could not be read or written.
    #[error("{path}: {detail}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The requested backend is not available.
    #[error("the wgpu backend is unavailable: {0}")]
    Backend(String),
    /// The impostor model could not be built or read.
    #[error(transparent)]
    Impostors(#[from] ImpostorError),
    /// The pretrained tower's weights are unusable.
    #[error("the pretrained tower: {0}")]
    Tower(String),
    /// A use case failed: the sentence the page would show.
    #[error("{0}")]
    Session(String),
}

impl CliError {
    /// 2 for usage errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

fn io(path: &Path, detail: impl ToString) -> CliError {
    CliError::Io {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Where Burn runs the networks (`--backend`, read by `protocol::choice_from_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// Burn's `flex` CPU backend.
    #[default]
    #[serde(alias = "flex")]
    Cpu,
    /// The wgpu device (`backend::wgpu_device`).
    #[serde(alias = "gpu")]
    Wgpu,
}

impl BackendChoice {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        }
    }

    /// The device (the one natively initialised wgpu device for `Wgpu`).
    pub fn device(self) -> Result<Device, CliError> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Wgpu => pollster::block_on(wgpu_device()).map_err(CliError::Backend),
        }
    }
}

/// Milliseconds since the first call: the run loop's clock.
pub fn clock_ms() -> f64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

/// The committed pretrained weights (`models/face_resnet.q8.bin` beside the root package).
pub fn default_weights_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(WEIGHTS_PATH)
}

/// Loads the pretrained tower onto `device`.
pub fn load_tower(weights: &Path, device: &Device) -> Result<FaceResNet, CliError> {
    let bytes = std::fs::read(weights).map_err(|e| io(weights, e))?;
    FaceResNet::from_bytes(&bytes, device).map_err(|e| CliError::Tower(e.to_string()))
}

/// The photos of a folder (JPEG and PNG), sorted by name.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut images: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    images.sort();
    Ok(images)
}

/// Options of `faceverify impostors`.
#[derive(Debug, Clone)]
pub struct ImpostorOptions {
    /// The LFW folder.
    pub lfw: PathBuf,
    /// JSON file to write.
    pub out: PathBuf,
    /// Clustering.
    pub fit: FitOptions,
    /// Pretrained tower weights; the detector's are read from the same folder.
    pub weights: PathBuf,
    /// Where the tower runs.
    pub backend: BackendChoice,
}

/// `faceverify impostors`.
pub fn impostors(options: &ImpostorOptions, quiet: bool) -> Result<ImpostorModel, CliError> {
    let device = options.backend.device()?;
    let detector = options.weights.with_file_name(
        Path::new(faceverify::model::blazeface::WEIGHTS_PATH)
            .file_name()
            .expect("a file name"),
    );
    let read = |path: &Path| std::fs::read(path).map_err(|e| io(path, e));
    let pipeline = FacePipeline::from_bytes(&read(&detector)?, &read(&options.weights)?, &device)
        .map_err(|e| CliError::Tower(e.to_string()))?;
    let model = build_from_lfw(
        &options.lfw,
        &ImpostorSelection::default(),
        options.fit,
        &pipeline,
        |done, total| {
            if !quiet && (done % 100 == 0 || done == total) {
                println!("embedded {done}/{total} people");
            }
        },
    )?;
    std::fs::write(&options.out, model.to_json() + "\n").map_err(|e| io(&options.out, e))?;
    Ok(model)
}
