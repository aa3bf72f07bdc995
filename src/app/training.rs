//! Training a profile's model from its stored photos: fine-tune (the pretrained tower frozen,
//! the siamese head trained on cached descriptors) or classic (the Koch network from scratch),
//! resumable from the checkpoint the run stores as it goes.

use std::future::Future;
use std::pin::Pin;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::face_resnet::EMBEDDING_DIM;
use crate::model::koch::{DeviceBufferLimits, KOCH_INPUT, KochTowerConfig};
use crate::model::siamese::Siamese;
use crate::model::siamese::SiameseHead;
use crate::pipeline::FacePipeline;
use crate::store::validate::{self};
use crate::store::{
    ImageRole, Millis, ModelMeta, ModelSummary, ProfileId, RunStatus, Store, StoredImage,
    StoredModel, TrainingMode, TrainingRun,
};
use crate::train::default_head::{DefaultHead, EmbeddedPair, PairRates, rates_at, score_pairs};
use crate::train::impostors::ImpostorModel;
use crate::train::pairs::{LabelledPair, PairLabel};
use crate::train::run::{
    CLASSIC_TOWER_KIND, FINE_TUNE_TOWER_KIND, FinalReport, FineTuneInputs, HeadModel, ImageTable,
    PairModel, RunControl, RunError, RunSettings, SiameseModel, StopReason, TrainedModel, Trainer,
    TrainingCheckpoint, TrainingEvent, TrainingObserver, classic_trainer, fine_tune_trainer,
    load_module_record,
};
use crate::verify::attempts::{AttemptCalibration, LinearHead, impostor_attempts_for};
use crate::verify::calibration::PolicyProposal;
use crate::verify::policy::VerificationPolicy;
use crate::vision::frame::Frame;

use super::calibration::calibrate_profile;
use super::descriptors::image_descriptors;
use super::verification::koch_fits;
use super::{AppError, FINE_TUNE_MAX_PAIRS, IMPOSTOR_SAMPLES};

/// A future that lets the host's event loop run (the worker answers messages meanwhile).
pub type YieldFn = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// Natively there is no event loop to yield to.
pub fn no_yield() -> Pin<Box<dyn Future<Output = ()>>> {
    Box::pin(std::future::ready(()))
}

/// What the person asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub profile: ProfileId,
    pub mode: TrainingMode,
    /// `None`: the mode's default.
    pub epochs: Option<usize>,
    /// `None`: the tutorial's 16.
    pub batch_size: Option<usize>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Continue the profile's interrupted run when its checkpoint fits the data.
    #[serde(default)]
    pub resume: bool,
}

/// The seed of a run whose request names none.
pub const DEFAULT_SEED: u64 = 42;

fn default_seed() -> u64 {
    DEFAULT_SEED
}

/// Ids and times for the records a run writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunIds {
    pub run_id: String,
    pub model_id: String,
    pub now: Millis,
}

/// A model's figures on its run's test split, as stored with it (`StoredModel::metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestMetrics {
    pub loss: f64,
    pub precision: f64,
    pub recall: f64,
    pub accuracy: f64,
    pub auc: f64,
    /// Equal error rate.
    pub eer: f64,
}

/// What is stored with a model beside its weights: its test figures and its calibration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// `None` for a model file imported without them.
    #[serde(default)]
    pub test: Option<TestMetrics>,
    /// The thresholds it verifies with.
    pub policy: VerificationPolicy,
    #[serde(default)]
    pub calibration: Option<PolicyProposal>,
    #[serde(default)]
    pub calibration_problem: Option<String>,
    /// Thresholds for the settings' FAR per verification attempt (fine-tune mode), from
    /// thousands of impostor attempts against the references.
    #[serde(default)]
    pub attempts: Option<AttemptCalibration>,
    /// Why there is no per-attempt calibration.
    #[serde(default)]
    pub attempts_problem: Option<String>,
}

impl ModelMetrics {
    /// Reads the metrics stored with a model; `None` when they are not in this form.
    pub fn of(stored: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(stored.clone()).ok()
    }

    /// The form a store keeps (`StoredModel::metrics` is free-form JSON).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("numbers and strings always serialise")
    }
}

/// What a model file says about its run beside the weights and the policy
/// ([`TrainedModel::summary`]): read back when the file is imported.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelFileSummary {
    pub mode: TrainingMode,
    /// The run's settings, as its record keeps them.
    pub settings: serde_json::Value,
    /// Photos the run trained on, by role.
    pub images: PhotoCounts,
    pub metrics: Option<ModelMetrics>,
}

/// Photos by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PhotoCounts {
    pub anchor: usize,
    pub positive: usize,
    pub negative: usize,
}

impl ModelFileSummary {
    /// The summary of a model file; an unreadable one reads as empty (no settings, default
    /// metrics), as a file made elsewhere may carry none.
    pub fn of(file: &TrainedModel) -> Self {
        serde_json::from_value(file.summary.clone()).unwrap_or_default()
    }
}

/// The end of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The model saved and activated; `None` when the run was cancelled (its checkpoint waits).
    pub model: Option<ModelSummary>,
    pub stop: StopReason,
    pub report: Option<FinalReport>,
    /// Where a resumed run picked up.
    pub resumed_from: Option<ResumePoint>,
    /// Photos per role that went into the pairs (impostor samples counted as negatives).
    pub counts: PhotoCounts,
    /// The default model on the same test pairs at its own threshold (fine-tune mode): what
    /// training changed.
    pub default_model: Option<PairRates>,
}

/// Writes checkpoints and the run's history through the store, forwards events and yields.
struct StoreObserver<'a, S: Store> {
    store: &'a S,
    run: TrainingRun,
    now: Millis,
    on_event: &'a mut dyn FnMut(&TrainingEvent),
    yield_now: YieldFn,
}

impl<S: Store> TrainingObserver for StoreObserver<'_, S> {
    async fn yield_now(&mut self) {
        (self.yield_now)().await
    }

    fn on_event(&mut self, event: &TrainingEvent) {
        if let TrainingEvent::Epoch(stats) = event {
            self.run.epochs.retain(|e| e.epoch != stats.epoch);
            self.run.epochs.push(*stats);
        }
        (self.on_event)(event);
    }

    async fn save_checkpoint(&mut self, checkpoint: &TrainingCheckpoint) -> Result<(), String> {
        let record = checkpoint.to_store_checkpoint(&self.run.profile_id, &self.run.id, self.now);
        self.store
            .put_checkpoint(&record)
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .put_run(&self.run)
            .await
            .map_err(|e| e.to_string())
    }
}

pub(super) fn decode_crop(image: &StoredImage, size: u32) -> Result<Frame, AppError> {
    let bytes = image.aligned_crop.as_ref().ok_or_else(|| {
        AppError::Image(format!("photo {} has no aligned face crop", image.meta.id))
    })?;
    let decoded = image::load_from_memory(bytes)
        .map_err(|e| AppError::Image(format!("photo {}: {e}", image.meta.id)))?;
    let decoded = if decoded.width() != size || decoded.height() != size {
        decoded.resize_exact(size, size, image::imageops::FilterType::Triangle)
    } else {
        decoded
    };
    Ok(Frame::from_image(&decoded))
}

pub(super) fn crops(images: &[StoredImage], size: u32) -> Result<Vec<Frame>, AppError> {
    images.iter().map(|i| decode_crop(i, size)).collect()
}

/// The least a run needs, per role.
pub const MIN_ANCHORS: usize = 1;
pub const MIN_POSITIVES: usize = 1;
pub const MIN_CLASSIC_NEGATIVES: usize = 2;

fn settings_for(request: &TrainRequest) -> RunSettings {
    let mut settings = RunSettings::for_mode(request.mode);
    if let Some(epochs) = request.epochs {
        settings.training.epochs = epochs.max(1);
    }
    if let Some(batch) = request.batch_size {
        settings.training.batch_size = batch.max(1);
    }
    settings.training.seed = request.seed;
    if request.mode == TrainingMode::FineTune {
        // Its epochs take milliseconds: a checkpoint every epoch would cost more than training.
        settings.checkpoint_interval_ms = FINE_TUNE_CHECKPOINT_INTERVAL_MS;
    }
    settings
}

/// How often a fine-tune run writes its checkpoint (a reload loses at most this much work).
pub const FINE_TUNE_CHECKPOINT_INTERVAL_MS: f64 = 2000.0;

/// What a run works with: the store, the networks and the device.
pub struct TrainingParts<'a, S: Store> {
    pub store: &'a S,
    pub pipeline: &'a FacePipeline,
    /// Synthetic other people for fine-tune mode's negatives and its FAR calibration.
    pub impostors: Option<&'a ImpostorModel>,
    pub device: &'a Device,
    pub device_limits: Option<&'a DeviceBufferLimits>,
}

/// How a run reports and is steered: its record ids, the cancel flag, progress events and
/// the host's event loop.
pub struct RunHooks<'a> {
    pub ids: RunIds,
    pub control: &'a RunControl,
    pub on_event: &'a mut dyn FnMut(&TrainingEvent),
    pub yield_now: YieldFn,
}

/// A profile's photos by training role.
struct TrainingPhotos {
    anchors: Vec<StoredImage>,
    positives: Vec<StoredImage>,
    negatives: Vec<StoredImage>,
}

impl TrainingPhotos {
    async fn load<S: Store>(store: &S, profile: &str) -> Result<Self, AppError> {
        let photos = Self {
            anchors: store.list_images(profile, Some(ImageRole::Anchor)).await?,
            positives: store
                .list_images(profile, Some(ImageRole::Positive))
                .await?,
            negatives: store
                .list_images(profile, Some(ImageRole::Negative))
                .await?,
        };
        for (role, needed, found) in [
            ("anchor", MIN_ANCHORS, photos.anchors.len()),
            ("positive", MIN_POSITIVES, photos.positives.len()),
        ] {
            if found < needed {
                return Err(AppError::NotEnoughPhotos {
                    role,
                    needed,
                    found,
                });
            }
        }
        Ok(photos)
    }
}

/// The run a request starts or continues: its settings, and the interrupted run it resumes.
struct PlannedRun {
    settings: RunSettings,
    previous: Option<TrainingCheckpoint>,
    record: TrainingRun,
}

/// Resumes only the profile's own interrupted run, with the settings it was started with.
async fn plan_run<S: Store>(
    store: &S,
    request: &TrainRequest,
    ids: &RunIds,
) -> Result<PlannedRun, AppError> {
    let profile = request.profile.as_str();
    if request.resume
        && let Some(checkpoint) = store.latest_checkpoint(profile).await?
    {
        let run = store.get_run(&checkpoint.meta.run_id).await?;
        if let (Ok(saved), Some(run)) =
            (TrainingCheckpoint::from_store_checkpoint(&checkpoint), run)
            && run.mode == request.mode
        {
            return Ok(PlannedRun {
                settings: saved.settings.clone(),
                previous: Some(saved),
                record: TrainingRun {
                    status: RunStatus::Running,
                    ..run
                },
            });
        }
    }
    Ok(PlannedRun {
        settings: settings_for(request),
        previous: None,
        record: TrainingRun {
            id: ids.run_id.clone(),
            profile_id: profile.into(),
            mode: request.mode,
            started: ids.now,
            status: RunStatus::Running,
            settings: serde_json::Value::Null,
            epochs: Vec::new(),
        },
    })
}

/// What a finished or cancelled run of either mode hands back.
struct ModeOutcome {
    tower_kind: &'static str,
    counts: PhotoCounts,
    run: RunResult,
    default_model: Option<PairRates>,
    /// Fine-tune mode's descriptors of the imported negatives: real other people, added to
    /// the FAR calibration's impostor attempts.
    negatives: Vec<Vec<f32>>,
}

/// Trains `request.profile`'s model on its stored photos: fine-tune (the frozen pretrained tower
/// embeds every crop once, the head learns on the CPU backend) or classic (the whole Koch
/// network on `device`). Checkpoints and the run's history go to the store every epoch; the
/// finished model is calibrated, written, then activated. A cancelled run leaves its checkpoint
/// so `resume: true` continues it.
pub async fn train<S: Store>(
    parts: &TrainingParts<'_, S>,
    request: &TrainRequest,
    hooks: RunHooks<'_>,
) -> Result<TrainOutcome, AppError> {
    let photos = TrainingPhotos::load(parts.store, &request.profile).await?;
    let planned = plan_run(parts.store, request, &hooks.ids).await?;
    let ids = hooks.ids.clone();
    let mode_run = ModeRun {
        parts,
        photos: &photos,
        planned,
        hooks,
    };
    let trained = match request.mode {
        TrainingMode::FineTune => mode_run.fine_tune().await?,
        TrainingMode::Classic => mode_run.classic().await?,
    };
    let (stop, record, report, resumed_from, mut run) = trained.run;
    if stop == StopReason::Cancelled {
        run.status = RunStatus::Cancelled;
        parts.store.put_run(&run).await?;
        return Ok(TrainOutcome {
            model: None,
            stop,
            report: None,
            resumed_from,
            counts: trained.counts,
            default_model: None,
        });
    }
    let report = report.expect("a finished run has a report");
    let attempts = match trained.tower_kind {
        FINE_TUNE_TOWER_KIND => {
            let seed = run_seed(&run);
            let profile = &request.profile;
            Some(calibrate_fine_tune(parts, profile, &record, &trained.negatives, seed).await)
        }
        _ => None,
    };
    let stored = model_record(
        request,
        &ids,
        &run,
        (trained.tower_kind, trained.counts),
        record,
        &report,
        attempts,
    );
    run.status = RunStatus::Finished;
    run.epochs = report.history.clone();
    parts.store.finish_run(&stored, &run).await?;
    Ok(TrainOutcome {
        model: Some(stored.summary()),
        stop,
        report: Some(report),
        resumed_from,
        counts: trained.counts,
        default_model: trained.default_model,
    })
}

/// The seed the run used, for the calibration's impostor draw.
fn run_seed(run: &TrainingRun) -> u64 {
    run.settings["training"]["seed"].as_u64().unwrap_or(0)
}

/// The FAR-per-attempt calibration of a fine-tuned head, or why there is none (which must not
/// cost the trained model).
async fn calibrate_fine_tune<S: Store>(
    parts: &TrainingParts<'_, S>,
    profile: &str,
    record: &[u8],
    negatives: &[Vec<f32>],
    seed: u64,
) -> Result<AttemptCalibration, String> {
    let head = load_module_record(SiameseHead::new(EMBEDDING_DIM, parts.device), record)
        .map_err(|e| e.to_string())?;
    let (weights, bias) = DefaultHead::weights_of(&head)
        .await
        .map_err(|e| e.to_string())?;
    let settings = parts.store.settings().await.map_err(|e| e.to_string())?;
    let target = settings.attempt_false_accept_rate;
    let mut impostors = match parts.impostors {
        Some(model) => model.sample(impostor_attempts_for(target), seed ^ CALIBRATION_SEED),
        None => Vec::new(),
    };
    impostors.extend_from_slice(negatives);
    let head = LinearHead { weights, bias };
    calibrate_profile(
        parts.store,
        parts.pipeline,
        profile,
        &head,
        &impostors,
        target,
    )
    .await
    .map_err(|e| e.to_string())
}

/// Keeps the calibration's impostor draw apart from the training's.
const CALIBRATION_SEED: u64 = 0xfa5e_ca11;

/// The stored model: weights, the thresholds it verifies with, and its figures.
fn model_record(
    request: &TrainRequest,
    ids: &RunIds,
    run: &TrainingRun,
    (tower_kind, counts): (&str, PhotoCounts),
    record: Vec<u8>,
    report: &FinalReport,
    attempts: Option<Result<AttemptCalibration, String>>,
) -> StoredModel {
    let (attempts, attempts_problem) = match attempts {
        Some(Ok(calibration)) => (Some(calibration), None),
        Some(Err(problem)) => (None, Some(problem)),
        None => (None, None),
    };
    // Per attempt when there is such a calibration; else the test split's pair-level one.
    let policy = match (&attempts, &report.policy) {
        (Some(calibration), _) => calibration.policy,
        (None, Some(proposal)) => proposal.policy,
        (None, None) => VerificationPolicy::default(),
    };
    let metrics = ModelMetrics {
        test: Some(TestMetrics {
            loss: report.test_loss,
            precision: report.evaluation.precision,
            recall: report.evaluation.recall,
            accuracy: report.evaluation.accuracy,
            auc: report.evaluation.auc,
            eer: report.evaluation.eer.rate,
        }),
        policy,
        calibration: report.policy,
        calibration_problem: report.calibration_problem.clone(),
        attempts,
        attempts_problem,
    };
    let summary = ModelFileSummary {
        mode: request.mode,
        settings: run.settings.clone(),
        images: counts,
        metrics: Some(metrics.clone()),
    };
    let model = TrainedModel {
        tower_kind: tower_kind.into(),
        record,
        policy,
        summary: serde_json::to_value(summary).expect("numbers and strings always serialise"),
    };
    StoredModel {
        meta: ModelMeta {
            id: ids.model_id.clone(),
            profile_id: request.profile.clone(),
            tower_kind: tower_kind.into(),
            format_version: validate::MODEL_FILE_FORMAT_VERSION,
            created: ids.now,
            training_settings: run.settings.clone(),
            metrics: metrics.to_value(),
        },
        bytes: model.to_bytes(),
    }
}

/// What a run of either mode works with.
struct ModeRun<'a, 'p, 'h, S: Store> {
    parts: &'a TrainingParts<'p, S>,
    photos: &'a TrainingPhotos,
    planned: PlannedRun,
    hooks: RunHooks<'h>,
}

impl<S: Store> ModeRun<'_, '_, '_, S> {
    /// Fine-tune mode: the frozen tower's descriptors of every photo (read from the store when
    /// kept), negatives = imported faces + impostor samples, the head trained on the CPU
    /// backend.
    async fn fine_tune(self) -> Result<ModeOutcome, AppError> {
        let mut settings = self.planned.settings.clone();
        let embed = async |images: &[StoredImage]| {
            image_descriptors(
                self.parts.store,
                self.parts.pipeline,
                images,
                self.hooks.yield_now,
            )
            .await
        };
        let mut inputs = FineTuneInputs {
            anchors: embed(&self.photos.anchors).await?,
            positives: embed(&self.photos.positives).await?,
            negatives: embed(&self.photos.negatives).await?,
            impostors: Vec::new(),
            // The personal model refines the default one rather than starting from nothing.
            start: DefaultHead::bundled().ok(),
        };
        if let Some(model) = self.parts.impostors {
            inputs.impostors = model.sample(IMPOSTOR_SAMPLES, settings.training.seed);
        }
        if inputs.negatives.len() + inputs.impostors.len() == 0 {
            return Err(AppError::NotEnoughNegatives {
                needed: 1,
                found: 0,
            });
        }
        if self.planned.previous.is_none() && settings.training.pairs_per_class.is_none() {
            settings.training.pairs_per_class =
                Some((inputs.anchors.len() * inputs.positives.len()).clamp(1, FINE_TUNE_MAX_PAIRS));
        }
        let counts = PhotoCounts {
            anchor: inputs.anchors.len(),
            positive: inputs.positives.len(),
            negative: inputs.negatives.len() + inputs.impostors.len(),
        };
        let fresh = fine_tune_trainer(&inputs, settings.clone())?;
        let negatives = inputs.negatives.clone();
        let table = [
            inputs.anchors,
            inputs.positives,
            [inputs.negatives, inputs.impostors].concat(),
        ]
        .concat();
        let seed = settings.training.seed;
        let (trainer, resumed) = resume(fresh, self.planned.previous.as_ref(), || {
            HeadModel::new(&table, seed)
        })?;
        let test = trainer.split().test.clone();
        let device = self.parts.device;
        let run = self.run(trainer, resumed).await?;
        // A comparison for the page: a failure here must not cost the trained model.
        let default_model = default_model_rates(&table, &test, device).await.ok();
        Ok(ModeOutcome {
            tower_kind: FINE_TUNE_TOWER_KIND,
            counts,
            run,
            default_model,
            negatives,
        })
    }

    /// Classic mode: the whole Koch network on the device, from the crops resized to 100×100.
    async fn classic(self) -> Result<ModeOutcome, AppError> {
        let settings = self.planned.settings.clone();
        if self.photos.negatives.len() < MIN_CLASSIC_NEGATIVES {
            return Err(AppError::NotEnoughNegatives {
                needed: MIN_CLASSIC_NEGATIVES,
                found: self.photos.negatives.len(),
            });
        }
        // Both images of every pair go through the tower in one batch.
        koch_fits(self.parts.device_limits, 2 * settings.training.batch_size)?;
        let size = KOCH_INPUT.width as u32;
        let table = |images: &[StoredImage]| -> Result<Vec<Vec<f32>>, AppError> {
            Ok(ImageTable::from_frames(&crops(images, size)?, KOCH_INPUT)?.images)
        };
        let (a, p, n) = (
            table(&self.photos.anchors)?,
            table(&self.photos.positives)?,
            table(&self.photos.negatives)?,
        );
        let counts = PhotoCounts {
            anchor: a.len(),
            positive: p.len(),
            negative: n.len(),
        };
        let autodiff = self.parts.device.clone().autodiff();
        let build = || Siamese::new(KochTowerConfig::new().init(&autodiff), &autodiff);
        let fresh = classic_trainer(
            build(),
            autodiff.clone(),
            KOCH_INPUT,
            [&a, &p, &n],
            settings.clone(),
        )?;
        let images = [a, p, n].concat();
        let (trainer, resumed) = resume(fresh, self.planned.previous.as_ref(), || {
            Ok(SiameseModel::new(
                build(),
                ImageTable {
                    shape: KOCH_INPUT,
                    images,
                },
                autodiff.clone(),
                CLASSIC_TOWER_KIND,
            ))
        })?;
        let run = self.run(trainer, resumed).await?;
        Ok(ModeOutcome {
            tower_kind: CLASSIC_TOWER_KIND,
            counts,
            run,
            default_model: None,
            negatives: Vec::new(),
        })
    }

    /// Runs `trainer` (resumed at `resumed`), keeping the run's record and checkpoints in the
    /// store as it goes.
    async fn run<M: PairModel>(
        self,
        mut trainer: Trainer<M>,
        resumed: Option<ResumePoint>,
    ) -> Result<RunResult, AppError> {
        let store = self.parts.store;
        let mut run = self.planned.record;
        let RunHooks {
            ids,
            control,
            on_event,
            yield_now,
        } = self.hooks;
        if resumed.is_none() {
            run.id = ids.run_id.clone();
            run.epochs.clear();
        }
        run.settings = serde_json::to_value(trainer.settings()).expect("settings serialise");
        store.put_run(&run).await?;
        let mut observer = StoreObserver {
            store,
            run,
            now: ids.now,
            on_event,
            yield_now,
        };
        let stop = match trainer.run(control, &mut observer).await {
            Ok(stop) => stop,
            Err(error) => {
                let mut run = observer.run;
                run.status = RunStatus::Failed;
                // Best effort: the error that stopped the run matters more than this write.
                let _ = store.put_run(&run).await;
                return Err(error.into());
            }
        };
        let run = observer.run;
        if stop == StopReason::Cancelled {
            return Ok((stop, Vec::new(), None, resumed, run));
        }
        let report = trainer.final_report().await?;
        let record = trainer.model().model_record().await?;
        Ok((stop, record, Some(report), resumed, run))
    }
}

/// The default model's rates on `test` (pairs of rows of `table`), at its own threshold.
async fn default_model_rates(
    table: &[Vec<f32>],
    test: &[LabelledPair<usize>],
    device: &Device,
) -> Result<PairRates, AppError> {
    let default = DefaultHead::bundled().map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
    let pairs: Vec<EmbeddedPair> = test
        .iter()
        .map(|p| {
            let same = p.label == PairLabel::Same;
            (table[p.anchor].clone(), table[p.other].clone(), same)
        })
        .collect();
    let scores = score_pairs(&default.module(device), &pairs, device)
        .await
        .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
    let same: Vec<bool> = pairs.iter().map(|(_, _, same)| *same).collect();
    Ok(rates_at(&scores, &same, default.policy.detection.value()))
}

/// Where a resumed run picks up: (epoch, batch), 0-based.
pub type ResumePoint = (usize, usize);

type RunResult = (
    StopReason,
    Vec<u8>,
    Option<FinalReport>,
    Option<ResumePoint>,
    TrainingRun,
);

fn resume<M: PairModel>(
    fresh: Trainer<M>,
    checkpoint: Option<&TrainingCheckpoint>,
    rebuild: impl FnOnce() -> Result<M, RunError>,
) -> Result<(Trainer<M>, Option<ResumePoint>), AppError> {
    let Some(checkpoint) = checkpoint else {
        return Ok((fresh, None));
    };
    let split = fresh.split().clone();
    match Trainer::resume(rebuild()?, split, checkpoint) {
        Ok(trainer) => Ok((
            trainer,
            Some((checkpoint.position.epoch, checkpoint.position.next_batch)),
        )),
        // The photos changed since the checkpoint: its pairs no longer exist. Start afresh.
        Err(RunError::CheckpointMismatch(_)) => Ok((fresh, None)),
        Err(e) => Err(e.into()),
    }
}
