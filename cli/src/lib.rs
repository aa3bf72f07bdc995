//! The commands behind the `faceverify` binary, as functions the tests call too.
//!
//! - [`train`]: `DIR/anchor`, `DIR/positive`, `DIR/negative` (the tutorial's layout) → a model
//!   file with the weights, a calibrated policy and the run's metrics.
//! - [`verify`]: a model file, a folder of reference photos and probes → the tutorial's
//!   decision per probe, with every score.
//! - [`impostors`]: the impostor model from an LFW folder.
//!
//! Faces are the centre crop of each photo (`train::impostors::centre_face_crop`) until the
//! detector is wired in: the photos are expected to be roughly centred faces, as LFW's and the
//! tutorial's webcam crops are.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use faceverify::backend::wgpu_device;
use faceverify::model::face_resnet::{EMBEDDING_DIM, FaceResNet, INPUT_SIZE, WEIGHTS_PATH};
use faceverify::model::koch::{KOCH_INPUT, KochTowerConfig};
use faceverify::model::siamese::{Siamese, SiameseHead};
use faceverify::train::impostors::{
    FitOptions, ImpostorError, ImpostorModel, ImpostorSelection, build_from_lfw, centre_face_crop,
    load_impostor_model,
};
use faceverify::train::pairs::SeededRng;
use faceverify::train::run::{
    CLASSIC_TOWER_KIND, FINE_TUNE_TOWER_KIND, FinalReport, FineTuneInputs, ImageTable, PairModel,
    RunControl, RunError, RunSettings, StopReason, TrainedModel, Trainer, TrainingCheckpoint,
    TrainingEvent, TrainingMode, TrainingObserver, classic_trainer, embed_faces, fine_tune_trainer,
    load_module_record,
};
use faceverify::verify::policy::{VerificationError, VerificationPolicy, VerificationResult};
use faceverify::vision::augment::PhotometricAugmentation;
use faceverify::vision::frame::Frame;
use thiserror::Error;

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
    /// Training failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The impostor model could not be built or read.
    #[error(transparent)]
    Impostors(#[from] ImpostorError),
    /// A probe could not be decided.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// The pretrained tower's weights are unusable.
    #[error("the pretrained tower: {0}")]
    Tower(String),
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

/// Where Burn runs the networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendChoice {
    /// Burn's `flex` CPU backend.
    Cpu,
    /// The wgpu device (`backend::wgpu_device`).
    Wgpu,
}

impl std::str::FromStr for BackendChoice {
    type Err = CliError;
    fn from_str(s: &str) -> Result<Self, CliError> {
        match s {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(CliError::Usage(format!(
                "unknown backend '{other}': use cpu or wgpu"
            ))),
        }
    }
}

impl BackendChoice {
    /// The device (the one natively initialised wgpu device for `Wgpu`).
    pub fn device(self) -> Result<Device, CliError> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Wgpu => pollster::block_on(wgpu_device()).map_err(CliError::Backend),
        }
    }
}

/// The buffer limits of the adapter wgpu picks (Burn's runtime requests the adapter's limits
/// in full), for the Koch memory check; `None` without an adapter.
pub fn wgpu_buffer_limits() -> Option<faceverify::model::koch::DeviceBufferLimits> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .ok()?;
    let limits = adapter.limits();
    Some(faceverify::model::koch::DeviceBufferLimits {
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
    })
}

/// Refuses the Koch network on a wgpu device whose buffers cannot hold it (wgpu would fail
/// validation and panic), with the memory check's reason.
fn koch_fits(backend: BackendChoice, images: usize) -> Result<(), CliError> {
    if backend != BackendChoice::Wgpu {
        return Ok(());
    }
    match wgpu_buffer_limits() {
        Some(limits) => faceverify::model::koch::check_koch_fits(&limits, images)
            .map(drop)
            .map_err(|e| {
                CliError::Usage(format!(
                    "this GPU cannot hold the classic (Koch) network: {e}; use --backend cpu"
                ))
            }),
        None => Ok(()),
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

/// The committed impostor model.
pub fn default_impostors_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(faceverify::train::impostors::IMPOSTOR_MODEL_PATH)
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

/// Reads a photo and crops its face to `size`×`size`.
pub fn load_face(path: &Path, size: u32) -> Result<Frame, CliError> {
    let image = image::open(path).map_err(|e| io(path, e))?;
    Ok(centre_face_crop(&Frame::from_image(&image), size))
}

fn load_faces(dir: &Path, size: u32) -> Result<Vec<Frame>, CliError> {
    list_images(dir)?
        .iter()
        .map(|path| load_face(path, size))
        .collect()
}

/// Most pairs per class fine-tune mode makes when `--pairs` is not given.
pub const FINE_TUNE_MAX_PAIRS: usize = 400;

/// Options of `faceverify train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Folder with `anchor/`, `positive/`, `negative/`.
    pub data: PathBuf,
    /// Fine-tune (default) or classic.
    pub mode: TrainingMode,
    /// Settings; `None` fields of the command line keep the mode's defaults.
    pub settings: RunSettings,
    /// Where the tower and (classic) the network run.
    pub backend: BackendChoice,
    /// Model file to write.
    pub out: PathBuf,
    /// Pretrained tower weights (fine-tune).
    pub weights: PathBuf,
    /// Impostor model (fine-tune); `None` trains on the folder's negatives only.
    pub impostors: Option<PathBuf>,
    /// Impostor samples added to the negatives (fine-tune).
    pub impostor_samples: usize,
    /// Photometric variants per anchor and positive photo (the tutorial: 9; 0 = none).
    pub augment: usize,
    /// Checkpoint file written every epoch; resumed from when it exists.
    pub checkpoint: Option<PathBuf>,
}

/// Prints progress and writes the checkpoint file.
struct ConsoleObserver {
    checkpoint: Option<PathBuf>,
    quiet: bool,
    error: Option<CliError>,
}

impl TrainingObserver for ConsoleObserver {
    fn on_event(&mut self, event: &TrainingEvent) {
        if self.quiet {
            return;
        }
        match event {
            TrainingEvent::Step(step) if step.step == step.steps_per_epoch => {
                println!(
                    "epoch {:>3}/{}  train loss {:.4}  precision {:.3}  recall {:.3}  {}  ETA {}",
                    step.epoch + 1,
                    step.epochs,
                    step.epoch_loss,
                    step.precision,
                    step.recall,
                    step.examples_per_second
                        .map_or("-".into(), |r| format!("{r:.0} pairs/s")),
                    step.eta_seconds.map_or("-".into(), |s| format!("{s:.0} s")),
                );
            }
            TrainingEvent::Epoch(stats) => println!(
                "           test loss {:.4}  precision {:.3}  recall {:.3}",
                stats.test_loss.unwrap_or(f64::NAN),
                stats.precision.unwrap_or(f64::NAN),
                stats.recall.unwrap_or(f64::NAN),
            ),
            TrainingEvent::Stopped {
                reason: StopReason::EarlyStopped { best_epoch },
            } => println!(
                "stopped early: the test loss has not improved since epoch {}",
                best_epoch + 1
            ),
            _ => {}
        }
    }

    async fn save_checkpoint(&mut self, checkpoint: &TrainingCheckpoint) -> Result<(), String> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        // Write beside, then rename: an interrupted write never replaces a good checkpoint.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, checkpoint.to_bytes())
            .and_then(|()| std::fs::rename(&partial, path))
            .map_err(|e| {
                let message = format!("{}: {e}", path.display());
                self.error = Some(io(path, e));
                message
            })
    }
}

/// What `train` produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The file written.
    pub model: TrainedModel,
    /// The run's final evaluation.
    pub report: FinalReport,
    /// Images per role, after augmentation.
    pub counts: [usize; 3],
    /// Seconds spent embedding (fine-tune) and training.
    pub seconds: (f64, f64),
}

fn augmented(frames: Vec<Frame>, variants: usize, seed: u64) -> Result<Vec<Frame>, CliError> {
    if variants == 0 {
        return Ok(frames);
    }
    let augmentation = PhotometricAugmentation {
        variants_per_image: variants,
        ..PhotometricAugmentation::default()
    };
    let mut rng = SeededRng::for_stream(seed, 0x4155_4720); // "AUG "
    let mut out = Vec::with_capacity(frames.len() * (variants + 1));
    for frame in frames {
        out.extend(
            augmentation
                .variants(&frame, &mut rng)
                .map_err(|e| CliError::Usage(e.to_string()))?,
        );
        out.push(frame);
    }
    Ok(out)
}

async fn run_to_end<M: PairModel>(
    trainer: &mut Trainer<M>,
    observer: &mut ConsoleObserver,
) -> Result<FinalReport, CliError> {
    let control = RunControl::new(clock_ms);
    let result = trainer.run(&control, observer).await;
    if let Some(error) = observer.error.take() {
        return Err(error);
    }
    result?;
    Ok(trainer.final_report().await?)
}

fn resume_or_new<M: PairModel>(
    fresh: Trainer<M>,
    checkpoint: Option<&Path>,
    rebuild: impl FnOnce() -> Result<M, CliError>,
) -> Result<Trainer<M>, CliError> {
    let Some(path) = checkpoint.filter(|p| p.is_file()) else {
        return Ok(fresh);
    };
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    let checkpoint = TrainingCheckpoint::from_bytes(&bytes)?;
    let split = fresh.split().clone();
    println!(
        "resuming from {} (epoch {}, batch {})",
        path.display(),
        checkpoint.position.epoch + 1,
        checkpoint.position.next_batch
    );
    Ok(Trainer::resume(rebuild()?, split, &checkpoint)?)
}

/// `faceverify train`.
pub fn train(options: &TrainOptions, quiet: bool) -> Result<TrainOutcome, CliError> {
    let size = match options.mode {
        TrainingMode::FineTune => INPUT_SIZE as u32,
        TrainingMode::Classic => KOCH_INPUT.width as u32,
    };
    let seed = options.settings.training.seed;
    let role = |name: &str| options.data.join(name);
    let anchors = augmented(load_faces(&role("anchor"), size)?, options.augment, seed)?;
    let positives = augmented(
        load_faces(&role("positive"), size)?,
        options.augment,
        seed ^ 1,
    )?;
    let negatives = load_faces(&role("negative"), size)?;
    let counts = [anchors.len(), positives.len(), negatives.len()];
    let device = options.backend.device()?;
    let mut observer = ConsoleObserver {
        checkpoint: options.checkpoint.clone(),
        quiet,
        error: None,
    };
    let settings = options.settings.clone();

    let (tower_kind, record, report, seconds, settings) = match options.mode {
        TrainingMode::FineTune => {
            let started = clock_ms();
            let tower = load_tower(&options.weights, &device)?;
            let embed =
                |faces: &[Frame]| pollster::block_on(embed_faces(&tower, faces, 16, &device));
            let mut inputs = FineTuneInputs {
                anchors: embed(&anchors)?,
                positives: embed(&positives)?,
                negatives: embed(&negatives)?,
                impostors: Vec::new(),
            };
            if let Some(path) = &options.impostors {
                inputs.impostors =
                    load_impostor_model(path)?.sample(options.impostor_samples, seed);
            }
            let embedded = (clock_ms() - started) / 1000.0;
            let started = clock_ms();
            let mut settings = settings.clone();
            // Pairs of cached embeddings cost next to nothing, so unless told otherwise use
            // many fresh (anchor, other) combinations rather than the tutorial's one zip.
            if settings.training.pairs_per_class.is_none() {
                settings.training.pairs_per_class =
                    Some((anchors.len() * positives.len()).clamp(1, FINE_TUNE_MAX_PAIRS));
            }
            let fresh = fine_tune_trainer(&inputs, settings.clone())?;
            let table: Vec<Vec<f32>> = [
                inputs.anchors.clone(),
                inputs.positives.clone(),
                inputs.negatives.clone(),
                inputs.impostors.clone(),
            ]
            .concat();
            let mut trainer = resume_or_new(fresh, options.checkpoint.as_deref(), || {
                Ok(faceverify::train::run::HeadModel::new(&table, seed)?)
            })?;
            let report = pollster::block_on(run_to_end(&mut trainer, &mut observer))?;
            let record = pollster::block_on(trainer.model().model_record())?;
            (
                FINE_TUNE_TOWER_KIND,
                record,
                report,
                (embedded, (clock_ms() - started) / 1000.0),
                settings,
            )
        }
        TrainingMode::Classic => {
            koch_fits(options.backend, 2 * settings.training.batch_size)?;
            let started = clock_ms();
            let autodiff = device.clone().autodiff();
            let table = |frames: &[Frame]| -> Result<Vec<Vec<f32>>, CliError> {
                Ok(ImageTable::from_frames(frames, KOCH_INPUT)?.images)
            };
            let (a, p, n) = (table(&anchors)?, table(&positives)?, table(&negatives)?);
            let build = || Siamese::new(KochTowerConfig::new().init(&autodiff), &autodiff);
            let fresh = classic_trainer(
                build(),
                autodiff.clone(),
                KOCH_INPUT,
                [&a, &p, &n],
                settings.clone(),
            )?;
            let images = [a, p, n].concat();
            let mut trainer = resume_or_new(fresh, options.checkpoint.as_deref(), || {
                Ok(faceverify::train::run::SiameseModel::new(
                    build(),
                    ImageTable {
                        shape: KOCH_INPUT,
                        images,
                    },
                    autodiff.clone(),
                    CLASSIC_TOWER_KIND,
                ))
            })?;
            let report = pollster::block_on(run_to_end(&mut trainer, &mut observer))?;
            let record = pollster::block_on(trainer.model().model_record())?;
            (
                CLASSIC_TOWER_KIND,
                record,
                report,
                (0.0, (clock_ms() - started) / 1000.0),
                settings,
            )
        }
    };

    let policy = report
        .policy
        .as_ref()
        .map_or_else(VerificationPolicy::default, |p| p.policy);
    let model = TrainedModel {
        tower_kind: tower_kind.into(),
        record,
        policy,
        summary: serde_json::json!({
            "mode": options.mode,
            "settings": settings,
            "images": {"anchor": counts[0], "positive": counts[1], "negative": counts[2]},
            "test": {
                "loss": report.test_loss,
                "precision": report.evaluation.precision,
                "recall": report.evaluation.recall,
                "auc": report.evaluation.auc,
                "eer": report.evaluation.eer.rate,
            },
            "calibration": report.policy,
            "history": report.history,
        }),
    };
    std::fs::write(&options.out, model.to_bytes()).map_err(|e| io(&options.out, e))?;
    Ok(TrainOutcome {
        model,
        report,
        counts,
        seconds,
    })
}

/// One probe's decision.
#[derive(Debug, Clone)]
pub struct ProbeDecision {
    /// The probe's file.
    pub image: PathBuf,
    /// The tutorial's result: every score, detections, N, fraction, verified.
    pub result: VerificationResult,
}

/// Options of `faceverify verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Model file from `train`.
    pub model: PathBuf,
    /// Folder of reference photos of the enrolled person.
    pub refs: PathBuf,
    /// Photos to decide on.
    pub images: Vec<PathBuf>,
    /// Thresholds overriding the model's calibrated ones.
    pub detection: Option<f32>,
    /// See `detection`.
    pub verification: Option<f32>,
    /// Pretrained tower weights (fine-tune models).
    pub weights: PathBuf,
    /// Where the networks run.
    pub backend: BackendChoice,
}

async fn read_scores(scores: Tensor<1>) -> Result<Vec<f32>, CliError> {
    Ok(faceverify::verify::policy::read_scores(scores).await?)
}

/// `faceverify verify`: each probe against every reference, the model's policy (or the given
/// thresholds) deciding. References are embedded once and compared in one batch per probe.
pub fn verify(options: &VerifyOptions) -> Result<Vec<ProbeDecision>, CliError> {
    let bytes = std::fs::read(&options.model).map_err(|e| io(&options.model, e))?;
    let model = TrainedModel::from_bytes(&bytes)?;
    let policy = VerificationPolicy::from_values(
        options.detection.unwrap_or(model.policy.detection.value()),
        options
            .verification
            .unwrap_or(model.policy.verification.value()),
    )
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let references = list_images(&options.refs)?;
    if references.is_empty() {
        return Err(VerificationError::NoReferences.into());
    }
    let device = options.backend.device()?;
    let mut decisions = Vec::new();
    match model.tower_kind.as_str() {
        FINE_TUNE_TOWER_KIND => {
            let tower = load_tower(&options.weights, &device)?;
            let head = load_module_record(SiameseHead::new(EMBEDDING_DIM, &device), &model.record)?;
            let embed = |paths: &[PathBuf]| -> Result<Tensor<2>, CliError> {
                let faces = paths
                    .iter()
                    .map(|p| load_face(p, INPUT_SIZE as u32))
                    .collect::<Result<Vec<_>, _>>()?;
                let rows = pollster::block_on(embed_faces(&tower, &faces, 16, &device))?;
                let count = rows.len();
                Ok(Tensor::from_data(
                    TensorData::new(rows.concat(), [count, EMBEDDING_DIM]),
                    &device,
                ))
            };
            let cached = embed(&references)?;
            for image in &options.images {
                let probe = embed(std::slice::from_ref(image))?;
                let scores = pollster::block_on(read_scores(
                    head.score_against_references(probe, cached.clone()),
                ))?;
                decisions.push(ProbeDecision {
                    image: image.clone(),
                    result: policy.decide(scores)?,
                });
            }
        }
        CLASSIC_TOWER_KIND => {
            koch_fits(options.backend, references.len())?;
            let network = load_module_record(
                Siamese::new(KochTowerConfig::new().init(&device), &device),
                &model.record,
            )?;
            let images = |paths: &[PathBuf]| -> Result<Tensor<4>, CliError> {
                let faces = paths
                    .iter()
                    .map(|p| load_face(p, KOCH_INPUT.width as u32))
                    .collect::<Result<Vec<_>, _>>()?;
                let table = ImageTable::from_frames(&faces, KOCH_INPUT)?;
                let [c, h, w] = KOCH_INPUT.as_array();
                Ok(Tensor::from_data(
                    TensorData::new(table.images.concat(), [faces.len(), c, h, w]),
                    &device,
                ))
            };
            let cached = network.embed(images(&references)?);
            for image in &options.images {
                let scores = pollster::block_on(read_scores(network.score_against_references(
                    images(std::slice::from_ref(image))?,
                    cached.clone(),
                )))?;
                decisions.push(ProbeDecision {
                    image: image.clone(),
                    result: policy.decide(scores)?,
                });
            }
        }
        other => {
            return Err(RunError::CheckpointMismatch(format!(
                "the model file holds a '{other}' network, which this build cannot verify with"
            ))
            .into());
        }
    }
    Ok(decisions)
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
    /// Pretrained tower weights.
    pub weights: PathBuf,
    /// Where the tower runs.
    pub backend: BackendChoice,
}

/// `faceverify impostors`.
pub fn impostors(options: &ImpostorOptions, quiet: bool) -> Result<ImpostorModel, CliError> {
    let device = options.backend.device()?;
    let tower = load_tower(&options.weights, &device)?;
    let model = build_from_lfw(
        &options.lfw,
        &ImpostorSelection::default(),
        options.fit,
        &tower,
        &device,
        |done, total| {
            if !quiet && (done % 100 == 0 || done == total) {
                println!("embedded {done}/{total} people");
            }
        },
    )?;
    std::fs::write(&options.out, model.to_json() + "\n").map_err(|e| io(&options.out, e))?;
    Ok(model)
}
