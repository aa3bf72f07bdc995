//! The training run: an async, resumable loop that the browser worker and the native CLI both
//! drive, in either training mode.
//!
//! - **No synchronous reads.** Every value comes back through the async step functions of
//!   [`super::step`] or an async [`Transaction`]; checkpoints are built from async reads too
//!   ([`module_record_bytes`], [`CheckpointableAdam::prefetch`]), because a synchronous read
//!   panics on WebGPU in a browser and leaves its device broken.
//! - **Cooperative.** Between steps the loop awaits [`TrainingObserver::yield_now`] (the worker
//!   yields to its event loop there, so messages such as "cancel" are handled; natively it is a
//!   no-op), checks a shared [`CancelFlag`], and reports [`TrainingEvent`]s. Time comes from a
//!   caller-supplied clock (`fn() -> f64`, milliseconds): `std::time` does not exist on wasm.
//! - **Resumable.** All randomness is a function of the seed (pairs, split, batch order per
//!   epoch, initial head weights), so a [`TrainingCheckpoint`] — model record, optimiser record
//!   and [`TrainingPosition`] — taken after any step resumes to the very weights an uninterrupted
//!   run reaches. One is written at the end of every epoch and when a run is cancelled.
//! - **Two modes** ([`TrainingMode`], the store's setting): *fine-tune* trains only a
//!   [`SiameseHead`] on embeddings the frozen pretrained tower computed once ([`HeadModel`]);
//!   *classic* trains a whole [`Siamese`] network from scratch ([`SiameseModel`]).
//! - **Early stopping** when the test loss has not improved for `patience` epochs, per-epoch
//!   precision and recall on the test split, and a [`FinalReport`] with ROC, AUC, EER and a
//!   calibrated [`VerificationPolicy`](crate::verify::policy::VerificationPolicy).
//!
//! The fine-tune head trains on the CPU backend whatever the tower ran on: it has 129
//! parameters, so a WebGPU dispatch and read-back per step would cost far more than the
//! arithmetic, and its checkpoints then need no GPU read at all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, ModuleOptimizer, Optimizer, RecordState,
    StateSink, StateSource,
};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Transaction};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::default_head::DefaultHead;
use super::loss::binary_cross_entropy;
use super::metrics::{ConfusionCounts, EvaluationReport, MetricsError, evaluate};
use super::pairs::{
    ConfigError, LabelledPair, PairSplit, PairsError, SeededRng, TrainingConfig, batches_per_epoch,
    epoch_batches, prepare_pairs,
};
use super::step::{
    ADAM_EPSILON, EmbeddingPairBatch, PairBatch, StepError, StepOutcome, evaluate_batch,
    targets_tensor, train_head_step, train_step,
};
use crate::model::face_resnet::{EMBEDDING_DIM, FaceResNet, INPUT_SIZE, input_from_rgb8};
use crate::model::read_f32s;
use crate::model::siamese::{Siamese, SiameseHead};
use crate::model::tower::{EmbeddingTower, ImageShape};
use crate::store::validate::{ModelFile, ModelFormatError, TensorDType, TensorSpec};
use crate::store::{Checkpoint, EpochStats};
use crate::verify::calibration::{PolicyProposal, propose_policy};
use crate::vision::frame::Frame;

pub use crate::store::TrainingMode;

/// Tower kind of a fine-tuned model: a head over the pretrained 128-d face descriptor.
pub const FINE_TUNE_TOWER_KIND: &str = "siamese-head/face-resnet-128";
/// Tower kind of a classic model: the whole tutorial network.
pub const CLASSIC_TOWER_KIND: &str = "siamese/koch";

/// Why a run could not start, go on or finish.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RunError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Pairs could not be made (an empty image set).
    #[error(transparent)]
    Pairs(#[from] PairsError),
    /// A step's results could not be read back.
    #[error(transparent)]
    Step(#[from] StepError),
    /// Reading tensors back from the device failed.
    #[error("reading back from the device failed: {0}")]
    Readback(String),
    /// A model or optimiser record could not be written or read.
    #[error("the {what} record is unusable: {detail}")]
    Record {
        /// "model" or "optimiser".
        what: &'static str,
        /// Burn's message.
        detail: String,
    },
    /// A checkpoint or model file is damaged or of another kind.
    #[error(transparent)]
    ModelFile(#[from] ModelFormatError),
    /// A checkpoint or model file is well-formed but does not fit this run.
    #[error("the checkpoint does not fit this run: {0}")]
    CheckpointMismatch(String),
    /// The observer could not store a checkpoint.
    #[error("saving the checkpoint failed: {0}")]
    SaveCheckpoint(String),
    /// Metrics could not be computed (NaN scores: the model diverged).
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The data handed to a model is inconsistent.
    #[error("invalid training data: {0}")]
    Data(String),
}

/// Everything a run needs besides its data. Serialisable: the page sends it, checkpoints keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// Learning rate, batch size, epochs, seed, split (the tutorial's defaults).
    pub training: TrainingConfig,
    /// Stop after this many epochs without a better test loss; `None` never stops early.
    pub patience: Option<usize>,
    /// A test loss counts as better when it is lower than the best by more than this.
    pub min_improvement: f64,
    /// Score above which a pair counts as "same" for precision and recall (tutorial: 0.5).
    pub decision_threshold: f32,
    /// FAR the calibration aims for.
    pub target_false_accept_rate: f64,
    /// At most this many reference images (anchors) in the calibration's probe-level scores.
    pub calibration_references: usize,
    /// At most this many genuine and this many impostor probes in the calibration.
    pub calibration_probes: usize,
    /// Checkpoints at the end of an epoch are skipped until this many milliseconds (of the
    /// run's clock) have passed since the last one; the last epoch's, and a cancelled run's,
    /// are always written. 0 = every epoch. Fine-tune epochs take milliseconds, while a
    /// checkpoint in IndexedDB costs two transactions.
    pub checkpoint_interval_ms: f64,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            training: TrainingConfig::default(),
            patience: Some(5),
            min_improvement: 1e-4,
            decision_threshold: 0.5,
            target_false_accept_rate: 0.01,
            calibration_references: 20,
            calibration_probes: 50,
            checkpoint_interval_ms: 0.0,
        }
    }
}

impl RunSettings {
    /// Settings suited to fine-tune mode: the head is a logistic regression on 128 distances,
    /// far from the tutorial's 39-million-parameter network, so it learns with a larger step
    /// in fewer epochs.
    pub fn fine_tune() -> Self {
        Self {
            training: TrainingConfig {
                learning_rate: 0.05,
                epochs: 60,
                ..TrainingConfig::default()
            },
            patience: Some(8),
            ..Self::default()
        }
    }

    /// The defaults of `mode`: [`RunSettings::fine_tune`] or the tutorial's.
    pub fn for_mode(mode: TrainingMode) -> Self {
        match mode {
            TrainingMode::FineTune => Self::fine_tune(),
            TrainingMode::Classic => Self::default(),
        }
    }
}

/// Asks a running loop to stop at the next step boundary. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// A flag that is not raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag: the loop checkpoints and returns [`StopReason::Cancelled`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Lowers the flag again, for the next run (clones see it lowered too).
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether the flag is raised.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The caller's clock and cancel flag.
#[derive(Debug, Clone)]
pub struct RunControl {
    /// Milliseconds from any fixed origin (`performance.now()` in the worker).
    pub clock: fn() -> f64,
    /// Checked between steps.
    pub cancel: CancelFlag,
}

impl RunControl {
    /// A control with `clock` and a fresh flag.
    pub fn new(clock: fn() -> f64) -> Self {
        Self {
            clock,
            cancel: CancelFlag::new(),
        }
    }
}

/// A clock that always reads 0: rates and ETAs come out as unknown. For tests and callers
/// that do not care.
pub fn no_clock() -> f64 {
    0.0
}

/// Progress after one training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    /// 0-based epoch.
    pub epoch: usize,
    /// Epochs the run may take.
    pub epochs: usize,
    /// Steps done in this epoch (1-based after the first).
    pub step: usize,
    /// Steps in one epoch.
    pub steps_per_epoch: usize,
    /// This batch's loss.
    pub loss: f32,
    /// Mean loss over the epoch so far.
    pub epoch_loss: f64,
    /// Precision over the epoch's training batches so far (before each update).
    pub precision: f64,
    /// Recall over the epoch's training batches so far.
    pub recall: f64,
    /// Training pairs per second since the run (or resume) started; `None` until measurable.
    pub examples_per_second: Option<f64>,
    /// Seconds until the last epoch ends at the current pace (early stopping may end sooner).
    pub eta_seconds: Option<f64>,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every epoch ran.
    Completed,
    /// The test loss stopped improving.
    EarlyStopped {
        /// 0-based epoch with the best test loss.
        best_epoch: usize,
    },
    /// The cancel flag was raised; a checkpoint at the exact position was saved.
    Cancelled,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainingEvent {
    /// After each training step.
    Step(StepProgress),
    /// After each epoch's test evaluation.
    Epoch(EpochStats),
    /// A checkpoint was handed to the observer.
    Checkpoint {
        /// Epoch of the next step.
        epoch: usize,
        /// Batch of the next step within that epoch.
        next_batch: usize,
        /// Size of model and optimiser records.
        bytes: usize,
    },
    /// The run stopped.
    Stopped { reason: StopReason },
}

/// What the caller plugs into the loop: yielding, progress and checkpoint storage.
#[allow(async_fn_in_trait)]
pub trait TrainingObserver {
    /// Awaited between steps: the browser worker yields to its event loop here.
    async fn yield_now(&mut self) {}

    /// Every [`TrainingEvent`], in order.
    fn on_event(&mut self, _event: &TrainingEvent) {}

    /// Stores a checkpoint (e.g. `Store::put_checkpoint` through
    /// [`TrainingCheckpoint::to_store_checkpoint`]). An error stops the run.
    async fn save_checkpoint(&mut self, _checkpoint: &TrainingCheckpoint) -> Result<(), String> {
        Ok(())
    }
}

/// An observer that does nothing: natively there is no event loop to yield to.
#[derive(Debug, Clone, Copy, Default)]
pub struct SilentObserver;

impl TrainingObserver for SilentObserver {}

/// Where a run is: everything besides the weights that resuming needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingPosition {
    /// Epoch of the next step (0-based); equals the epoch count when the run is over.
    pub epoch: usize,
    /// Batch of the next step within `epoch`.
    pub next_batch: usize,
    /// The seed every random choice came from.
    pub seed: u64,
    /// Fingerprint of the train/test pairs, so a checkpoint is not resumed on other data.
    /// A hex string in JSON: a 64-bit hash does not fit a JavaScript number (IndexedDB).
    #[serde(with = "hex_u64")]
    pub split_fingerprint: u64,
    /// One row per finished epoch.
    pub history: Vec<EpochStats>,
    /// Loss summed over the current epoch's finished steps (weighted by batch size).
    pub epoch_loss_sum: f64,
    /// Pairs trained in the current epoch so far.
    pub epoch_examples: usize,
    /// Training-batch outcomes of the current epoch so far.
    pub epoch_counts: ConfusionCounts,
    /// Lowest test loss so far and its epoch.
    pub best_test_loss: Option<(f64, usize)>,
    /// Epochs since the best test loss.
    pub epochs_without_improvement: usize,
    /// Set once the run has stopped for good (completed or stopped early).
    pub finished: Option<StopReason>,
}

/// A `u64` as a hex string, for values that use all 64 bits.
mod hex_u64 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{value:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

impl TrainingPosition {
    fn start(seed: u64, split_fingerprint: u64) -> Self {
        Self {
            epoch: 0,
            next_batch: 0,
            seed,
            split_fingerprint,
            history: Vec::new(),
            epoch_loss_sum: 0.0,
            epoch_examples: 0,
            epoch_counts: ConfusionCounts::default(),
            best_test_loss: None,
            epochs_without_improvement: 0,
            finished: None,
        }
    }
}

/// A model record, an optimiser record and the position: what a run resumes from.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCheckpoint {
    /// Which network the records belong to.
    pub tower_kind: String,
    /// Burn's record of the trained module (burnpack bytes).
    pub model: Vec<u8>,
    /// Burn's record of the optimiser state (burnpack bytes).
    pub optimiser: Vec<u8>,
    /// Where the run is.
    pub position: TrainingPosition,
    /// The run's settings.
    pub settings: RunSettings,
}

/// JSON kept beside the records in store checkpoints and checkpoint files.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    position: TrainingPosition,
    settings: RunSettings,
}

/// Names of the tensors in a checkpoint or model file.
const MODEL_TENSOR: &str = "model";
const OPTIMISER_TENSOR: &str = "optimiser";
const STATE_TENSOR: &str = "state";
const POLICY_TENSOR: &str = "policy";
const SUMMARY_TENSOR: &str = "summary";

/// A byte blob as a model-file tensor (`TensorDType::U8` exists for this).
fn blob_spec(name: &str, bytes: &[u8]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        shape: vec![bytes.len() as u64],
        dtype: TensorDType::U8,
    }
}

fn blob<'a>(file: &'a ModelFile, name: &str) -> Result<&'a [u8], RunError> {
    file.tensor_bytes(name)
        .ok_or_else(|| RunError::CheckpointMismatch(format!("the file has no '{name}' part")))
}

impl TrainingCheckpoint {
    /// The model record alone as a model file (what the store's `Checkpoint::model_bytes`
    /// holds: a file the store can check without knowing Burn).
    pub fn model_file_bytes(&self) -> Vec<u8> {
        ModelFile::new(
            self.tower_kind.clone(),
            vec![blob_spec(MODEL_TENSOR, &self.model)],
            self.model.clone(),
        )
        .expect("a single blob always fits its declared size")
        .encode()
    }

    /// Everything in one self-describing byte string (a model file with the model record,
    /// the optimiser record and the position as JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let state = serde_json::to_vec(&CheckpointState {
            position: self.position.clone(),
            settings: self.settings.clone(),
        })
        .expect("positions and settings always serialise");
        let specs = vec![
            blob_spec(MODEL_TENSOR, &self.model),
            blob_spec(OPTIMISER_TENSOR, &self.optimiser),
            blob_spec(STATE_TENSOR, &state),
        ];
        let payload = [self.model.as_slice(), &self.optimiser, &state].concat();
        ModelFile::new(self.tower_kind.clone(), specs, payload)
            .expect("blobs always fit their declared sizes")
            .encode()
    }

    /// Reads [`to_bytes`](Self::to_bytes)' output back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RunError> {
        let file = ModelFile::decode(bytes)?;
        let state: CheckpointState = serde_json::from_slice(blob(&file, STATE_TENSOR)?)
            .map_err(|e| RunError::CheckpointMismatch(format!("unreadable position: {e}")))?;
        Ok(Self {
            tower_kind: file.header.tower_kind.clone(),
            model: blob(&file, MODEL_TENSOR)?.to_vec(),
            optimiser: blob(&file, OPTIMISER_TENSOR)?.to_vec(),
            position: state.position,
            settings: state.settings,
        })
    }

    /// The store's record of this checkpoint, for `Store::put_checkpoint`.
    pub fn to_store_checkpoint(
        &self,
        profile_id: &str,
        run_id: &str,
        created_ms: u64,
    ) -> Checkpoint {
        Checkpoint {
            profile_id: profile_id.into(),
            run_id: run_id.into(),
            epoch: self.position.epoch as u32,
            position: self.position.next_batch as u64,
            created: created_ms,
            model_bytes: self.model_file_bytes(),
            optimiser_bytes: self.optimiser.clone(),
            trainer_state: serde_json::to_value(CheckpointState {
                position: self.position.clone(),
                settings: self.settings.clone(),
            })
            .expect("positions and settings always serialise"),
        }
    }

    /// Reads a checkpoint back from the store's record.
    pub fn from_store_checkpoint(checkpoint: &Checkpoint) -> Result<Self, RunError> {
        let file = ModelFile::decode(&checkpoint.model_bytes)?;
        let state: CheckpointState = serde_json::from_value(checkpoint.trainer_state.clone())
            .map_err(|e| RunError::CheckpointMismatch(format!("unreadable position: {e}")))?;
        Ok(Self {
            tower_kind: file.header.tower_kind.clone(),
            model: blob(&file, MODEL_TENSOR)?.to_vec(),
            optimiser: checkpoint.optimiser_bytes.clone(),
            position: state.position,
            settings: state.settings,
        })
    }
}

/// A network the loop can train on pairs of indices into its own table of inputs.
#[allow(async_fn_in_trait)]
pub trait PairModel {
    /// Which network this is (checkpoints and model files carry it).
    fn tower_kind(&self) -> &str;

    /// Number of inputs (images or embeddings) the pairs may index.
    fn input_count(&self) -> usize;

    /// One optimisation step on `pairs`.
    async fn train_batch(
        &mut self,
        pairs: &[LabelledPair<usize>],
        learning_rate: f64,
    ) -> Result<StepOutcome, RunError>;

    /// Loss and probabilities on `pairs` without training.
    async fn evaluate_batch(&self, pairs: &[LabelledPair<usize>]) -> Result<StepOutcome, RunError>;

    /// The trained module's record, read asynchronously.
    async fn model_record(&self) -> Result<Vec<u8>, RunError>;

    /// The optimiser's record, read asynchronously.
    async fn optimiser_record(&self) -> Result<Vec<u8>, RunError>;

    /// Replaces the weights and the optimiser state with recorded ones.
    fn restore(&mut self, model: &[u8], optimiser: &[u8]) -> Result<(), RunError>;
}

/// Results of evaluating a split.
struct SplitEvaluation {
    loss: f64,
    scores: Vec<f32>,
    genuine: Vec<bool>,
}

/// The final evaluation of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalReport {
    /// Why the run stopped.
    pub stop: Option<StopReason>,
    /// Test-split loss of the final weights.
    pub test_loss: f64,
    /// Precision, recall, ROC, AUC, EER on the test split at the decision threshold.
    pub evaluation: EvaluationReport,
    /// Thresholds for the target FAR, when the test data allows a calibration.
    pub policy: Option<PolicyProposal>,
    /// Why there is no `policy`.
    pub calibration_problem: Option<String>,
    /// One row per epoch.
    pub history: Vec<EpochStats>,
}

/// The training loop over a [`PairModel`]. See the module documentation.
pub struct Trainer<M: PairModel> {
    model: M,
    split: PairSplit<usize>,
    settings: RunSettings,
    position: TrainingPosition,
}

/// FNV-1a over the pairs: a cheap identity for "the same train/test pairs".
fn split_fingerprint(split: &PairSplit<usize>) -> u64 {
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    let mut mix = |value: u64| {
        for byte in value.to_le_bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
        }
    };
    for (part, pairs) in [(1u64, &split.train), (2, &split.test)] {
        mix(part);
        for pair in pairs {
            mix(pair.anchor as u64);
            mix(pair.other as u64);
            mix(u64::from(pair.label.is_same()));
        }
    }
    hash
}

impl<M: PairModel> Trainer<M> {
    /// A fresh run of `model` on `split` (indices into the model's inputs).
    pub fn new(model: M, split: PairSplit<usize>, settings: RunSettings) -> Result<Self, RunError> {
        settings.training.validate()?;
        if split.train.is_empty() || split.test.is_empty() {
            return Err(RunError::Data(format!(
                "{} training and {} test pairs: both splits need pairs (add images)",
                split.train.len(),
                split.test.len()
            )));
        }
        let inputs = model.input_count();
        if let Some(pair) = split
            .train
            .iter()
            .chain(&split.test)
            .find(|p| p.anchor >= inputs || p.other >= inputs)
        {
            return Err(RunError::Data(format!(
                "a pair refers to input {} but the model has {inputs}",
                pair.anchor.max(pair.other)
            )));
        }
        let position = TrainingPosition::start(settings.training.seed, split_fingerprint(&split));
        Ok(Self {
            model,
            split,
            settings,
            position,
        })
    }

    /// Resumes from `checkpoint` with the same data (the pairs are checked against it).
    pub fn resume(
        mut model: M,
        split: PairSplit<usize>,
        checkpoint: &TrainingCheckpoint,
    ) -> Result<Self, RunError> {
        if checkpoint.tower_kind != model.tower_kind() {
            return Err(RunError::CheckpointMismatch(format!(
                "it holds a '{}' network, this run trains '{}'",
                checkpoint.tower_kind,
                model.tower_kind()
            )));
        }
        if split_fingerprint(&split) != checkpoint.position.split_fingerprint {
            return Err(RunError::CheckpointMismatch(
                "it was taken on other training pairs (different images or seed)".into(),
            ));
        }
        model.restore(&checkpoint.model, &checkpoint.optimiser)?;
        let mut trainer = Self::new(model, split, checkpoint.settings.clone())?;
        trainer.position = checkpoint.position.clone();
        Ok(trainer)
    }

    /// Where the run is.
    pub fn position(&self) -> &TrainingPosition {
        &self.position
    }

    /// The run's settings.
    pub fn settings(&self) -> &RunSettings {
        &self.settings
    }

    /// The pairs.
    pub fn split(&self) -> &PairSplit<usize> {
        &self.split
    }

    /// The model being trained.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The trained model.
    pub fn into_model(self) -> M {
        self.model
    }

    /// A checkpoint at the current position, built from async reads.
    pub async fn checkpoint(&self) -> Result<TrainingCheckpoint, RunError> {
        Ok(TrainingCheckpoint {
            tower_kind: self.model.tower_kind().to_owned(),
            model: self.model.model_record().await?,
            optimiser: self.model.optimiser_record().await?,
            position: self.position.clone(),
            settings: self.settings.clone(),
        })
    }

    async fn save_checkpoint<O: TrainingObserver>(&self, observer: &mut O) -> Result<(), RunError> {
        let checkpoint = self.checkpoint().await?;
        observer
            .save_checkpoint(&checkpoint)
            .await
            .map_err(RunError::SaveCheckpoint)?;
        observer.on_event(&TrainingEvent::Checkpoint {
            epoch: checkpoint.position.epoch,
            next_batch: checkpoint.position.next_batch,
            bytes: checkpoint.model.len() + checkpoint.optimiser.len(),
        });
        Ok(())
    }

    /// Trains until the last epoch, early stopping or cancellation, whichever comes first.
    /// Calling it again after a cancellation goes on from where it stopped.
    pub async fn run<O: TrainingObserver>(
        &mut self,
        control: &RunControl,
        observer: &mut O,
    ) -> Result<StopReason, RunError> {
        if let Some(reason) = self.position.finished {
            return Ok(reason);
        }
        let config = self.settings.training.clone();
        let steps_per_epoch = batches_per_epoch(self.split.train.len(), config.batch_size);
        let started_ms = (control.clock)();
        let mut last_checkpoint_ms: Option<f64> = None;
        let mut steps_this_session = 0usize;
        let mut examples_this_session = 0usize;

        while self.position.epoch < config.epochs {
            let epoch = self.position.epoch;
            let batches = epoch_batches(
                self.split.train.len(),
                config.batch_size,
                config.seed,
                epoch,
            );
            while self.position.next_batch < batches.len() {
                if control.cancel.is_cancelled() {
                    self.save_checkpoint(observer).await?;
                    observer.on_event(&TrainingEvent::Stopped {
                        reason: StopReason::Cancelled,
                    });
                    return Ok(StopReason::Cancelled);
                }
                let pairs: Vec<LabelledPair<usize>> = batches[self.position.next_batch]
                    .iter()
                    .map(|&i| self.split.train[i].clone())
                    .collect();
                let outcome = self.model.train_batch(&pairs, config.learning_rate).await?;
                let genuine: Vec<bool> = pairs.iter().map(|p| p.label.is_same()).collect();
                let counts = ConfusionCounts::at_threshold(
                    &outcome.probabilities,
                    &genuine,
                    self.settings.decision_threshold,
                )?;
                let position = &mut self.position;
                position.next_batch += 1;
                position.epoch_loss_sum += f64::from(outcome.loss) * pairs.len() as f64;
                position.epoch_examples += pairs.len();
                position.epoch_counts.add(counts);
                steps_this_session += 1;
                examples_this_session += pairs.len();

                let elapsed_s = ((control.clock)() - started_ms) / 1000.0;
                let remaining_steps =
                    (config.epochs - epoch) * steps_per_epoch - position.next_batch;
                let measurable = elapsed_s > 0.0;
                observer.on_event(&TrainingEvent::Step(StepProgress {
                    epoch,
                    epochs: config.epochs,
                    step: position.next_batch,
                    steps_per_epoch,
                    loss: outcome.loss,
                    epoch_loss: position.epoch_loss_sum / position.epoch_examples as f64,
                    precision: position.epoch_counts.precision(),
                    recall: position.epoch_counts.recall(),
                    examples_per_second: measurable
                        .then(|| examples_this_session as f64 / elapsed_s),
                    eta_seconds: measurable
                        .then(|| elapsed_s / steps_this_session as f64 * remaining_steps as f64),
                }));
                observer.yield_now().await;
            }

            let stats = self.end_epoch(epoch, config.epochs).await?;
            observer.on_event(&TrainingEvent::Epoch(stats));
            let now = (control.clock)();
            let due = last_checkpoint_ms
                .is_none_or(|last| now - last >= self.settings.checkpoint_interval_ms);
            if due || self.position.finished.is_some() {
                self.save_checkpoint(observer).await?;
                last_checkpoint_ms = Some(now);
            }
            observer.yield_now().await;
            if let Some(reason) = self.position.finished {
                observer.on_event(&TrainingEvent::Stopped { reason });
                return Ok(reason);
            }
        }
        let reason = StopReason::Completed;
        self.position.finished = Some(reason);
        observer.on_event(&TrainingEvent::Stopped { reason });
        Ok(reason)
    }

    /// Closes `epoch`: its test-split figures, the best test loss and the patience, the next
    /// epoch's position, and whether the run is finished.
    async fn end_epoch(&mut self, epoch: usize, epochs: usize) -> Result<EpochStats, RunError> {
        let test = self.evaluate_split(&self.split.test).await?;
        let counts = ConfusionCounts::at_threshold(
            &test.scores,
            &test.genuine,
            self.settings.decision_threshold,
        )?;
        let stats = EpochStats {
            epoch: epoch as u32,
            train_loss: self.position.epoch_loss_sum / self.position.epoch_examples.max(1) as f64,
            test_loss: Some(test.loss),
            precision: Some(counts.precision()),
            recall: Some(counts.recall()),
        };
        let position = &mut self.position;
        position.history.push(stats);
        match position.best_test_loss {
            Some((best, _)) if test.loss >= best - self.settings.min_improvement => {
                position.epochs_without_improvement += 1;
            }
            _ => {
                position.best_test_loss = Some((test.loss, epoch));
                position.epochs_without_improvement = 0;
            }
        }
        position.epoch += 1;
        position.next_batch = 0;
        position.epoch_loss_sum = 0.0;
        position.epoch_examples = 0;
        position.epoch_counts = ConfusionCounts::default();
        let patience_spent = self
            .settings
            .patience
            .is_some_and(|patience| position.epochs_without_improvement >= patience);
        if patience_spent {
            let best_epoch = position.best_test_loss.map_or(epoch, |(_, e)| e);
            position.finished = Some(StopReason::EarlyStopped { best_epoch });
        } else if position.epoch == epochs {
            position.finished = Some(StopReason::Completed);
        }
        Ok(stats)
    }

    async fn evaluate_split(
        &self,
        pairs: &[LabelledPair<usize>],
    ) -> Result<SplitEvaluation, RunError> {
        let mut loss_sum = 0.0;
        let mut scores = Vec::with_capacity(pairs.len());
        for chunk in pairs.chunks(self.settings.training.batch_size.max(1)) {
            let outcome = self.model.evaluate_batch(chunk).await?;
            loss_sum += f64::from(outcome.loss) * chunk.len() as f64;
            scores.extend(outcome.probabilities);
        }
        Ok(SplitEvaluation {
            loss: loss_sum / pairs.len().max(1) as f64,
            scores,
            genuine: pairs.iter().map(|p| p.label.is_same()).collect(),
        })
    }

    /// Scores each probe against each reference (one row of scores per probe).
    async fn probe_scores(
        &self,
        probes: &[usize],
        references: &[usize],
    ) -> Result<Vec<Vec<f32>>, RunError> {
        let pairs: Vec<LabelledPair<usize>> = probes
            .iter()
            .flat_map(|&probe| {
                references.iter().map(move |&reference| LabelledPair {
                    anchor: reference,
                    other: probe,
                    label: super::pairs::PairLabel::Different,
                })
            })
            .collect();
        let scores = self.evaluate_split(&pairs).await?.scores;
        Ok(scores
            .chunks(references.len().max(1))
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Evaluates the final weights on the test split and calibrates the policy.
    ///
    /// The calibration's probe-level scores compare the test split's positives (genuine
    /// probes) and negatives (impostor probes) with up to `calibration_references` distinct
    /// anchors, standing in for the verification images a user will capture.
    pub async fn final_report(&self) -> Result<FinalReport, RunError> {
        let test = self.evaluate_split(&self.split.test).await?;
        let evaluation = evaluate(
            &test.scores,
            &test.genuine,
            self.settings.decision_threshold,
        )?;
        let distinct = |pick: &dyn Fn(&LabelledPair<usize>) -> Option<usize>, limit: usize| {
            let mut seen = Vec::new();
            for pair in self.split.train.iter().chain(&self.split.test) {
                if let Some(id) = pick(pair)
                    && !seen.contains(&id)
                    && seen.len() < limit
                {
                    seen.push(id);
                }
            }
            seen
        };
        let references = distinct(&|p| Some(p.anchor), self.settings.calibration_references);
        let test_only = |same: bool| {
            let mut seen = Vec::new();
            for pair in &self.split.test {
                if pair.label.is_same() == same
                    && !seen.contains(&pair.other)
                    && seen.len() < self.settings.calibration_probes
                {
                    seen.push(pair.other);
                }
            }
            seen
        };
        let genuine_probes = self.probe_scores(&test_only(true), &references).await?;
        let impostor_probes = self.probe_scores(&test_only(false), &references).await?;
        let (policy, calibration_problem) = match propose_policy(
            &test.scores,
            &test.genuine,
            &genuine_probes,
            &impostor_probes,
            self.settings.target_false_accept_rate,
        ) {
            Ok(proposal) => (Some(proposal), None),
            // Too few test samples of a class, or NaN scores: report why instead of failing
            // the whole run.
            Err(problem) => (None, Some(problem.to_string())),
        };
        Ok(FinalReport {
            stop: self.position.finished,
            test_loss: test.loss,
            evaluation,
            policy,
            calibration_problem,
            history: self.position.history.clone(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Optimiser state that can be checkpointed without synchronous reads

/// Host copies of one parameter's Adam moments, flattened.
#[derive(Debug, Clone)]
struct HostMoments {
    moment_1: TensorData,
    moment_2: TensorData,
    max_moment_2: Option<TensorData>,
}

/// Device handles of one parameter's moments (flattened views) until they are read, then the
/// host copies.
#[derive(Debug, Default)]
struct MomentSlot {
    device: Option<(Tensor<1>, Tensor<1>, Option<Tensor<1>>)>,
    host: Option<HostMoments>,
}

type SharedSlot = Arc<Mutex<MomentSlot>>;

fn lock(slot: &SharedSlot) -> std::sync::MutexGuard<'_, MomentSlot> {
    // A panic while holding the lock leaves plain data behind; it is still consistent.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn flat<const D: usize>(tensor: &Tensor<D>) -> Tensor<1> {
    let count = tensor.dims().iter().product::<usize>();
    tensor.clone().reshape([count])
}

/// One parameter's Adam state plus the slot its moments are read through.
#[derive(Clone)]
pub struct CheckpointableAdamState<const D: usize> {
    inner: AdamState<D>,
    slot: SharedSlot,
}

/// Leaf names of [`CheckpointableAdamState`] in an optimiser record.
const TIME_LEAF: &str = "time";
const MOMENT_1_LEAF: &str = "moment_1";
const MOMENT_2_LEAF: &str = "moment_2";
const MAX_MOMENT_2_LEAF: &str = "max_moment_2";

impl<const D: usize> RecordState for CheckpointableAdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        let momentum = &self.inner.momentum;
        let shape = momentum.moment_1.dims().to_vec();
        out.push_tensor(
            prefix,
            TIME_LEAF,
            TensorData::new(vec![momentum.time as i64], [1]),
        );
        let slot = lock(&self.slot);
        // With a host copy (from `CheckpointableAdam::prefetch`) nothing is read from the
        // device here; without one this is a synchronous read, fine on the CPU backend.
        let host = slot.host.clone().unwrap_or_else(|| HostMoments {
            moment_1: flat(&momentum.moment_1).into_data(),
            moment_2: flat(&momentum.moment_2).into_data(),
            max_moment_2: momentum.max_moment_2.as_ref().map(|m| flat(m).into_data()),
        });
        let reshape = |data: TensorData| {
            let (bytes, _, dtype) = data.into_parts();
            TensorData::from_bytes(bytes, shape.clone(), dtype)
        };
        out.push_tensor(prefix, MOMENT_1_LEAF, reshape(host.moment_1));
        out.push_tensor(prefix, MOMENT_2_LEAF, reshape(host.moment_2));
        if let Some(max) = host.max_moment_2 {
            out.push_tensor(prefix, MAX_MOMENT_2_LEAF, reshape(max));
        }
    }

    /// Rebuilds the state on the CPU backend, whatever device the optimiser loads onto: Burn
    /// would use `Device::default()`, which is the wgpu device and would initialise it behind
    /// `backend::wgpu_device()`'s back. The first step moves the state to the parameter's
    /// device.
    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        let cpu = Device::flex();
        let time = src
            .take_tensor(prefix, TIME_LEAF)?
            .try_into_vec::<i64>()
            .ok()?
            .first()
            .copied()?;
        let moment_1 = src.take_tensor(prefix, MOMENT_1_LEAF)?;
        let moment_2 = src.take_tensor(prefix, MOMENT_2_LEAF)?;
        let max_moment_2 = src.take_tensor(prefix, MAX_MOMENT_2_LEAF);
        if moment_1.shape().num_dims() != D || moment_2.shape().num_dims() != D {
            return None;
        }
        let host = HostMoments {
            moment_1: moment_1.clone(),
            moment_2: moment_2.clone(),
            max_moment_2: max_moment_2.clone(),
        };
        let mut momentum = AdaptiveMomentumState::new(
            usize::try_from(time).ok()?,
            Tensor::from_data(moment_1, &cpu),
            Tensor::from_data(moment_2, &cpu),
        );
        momentum.max_moment_2 = max_moment_2.map(|m| Tensor::from_data(m, &cpu));
        Some(Self {
            inner: AdamState::new(momentum),
            slot: Arc::new(Mutex::new(MomentSlot {
                device: None,
                host: Some(host),
            })),
        })
    }
}

/// Burn's Adam, with state that can be read asynchronously for a checkpoint.
///
/// Burn 0.22 serialises optimiser state with synchronous reads, which panic on WebGPU in a
/// browser. This wrapper keeps a handle on every live state's moments so
/// [`prefetch`](Self::prefetch) can read them all in one async transaction just before
/// `ModuleOptimizer::into_bytes`, which then serialises those host copies. The arithmetic is
/// Burn's own [`Adam`].
#[derive(Clone)]
pub struct CheckpointableAdam {
    adam: Adam,
    live: Arc<Mutex<Vec<Weak<Mutex<MomentSlot>>>>>,
}

impl CheckpointableAdam {
    /// The tutorial's Adam (see [`super::step::adam_optimizer`]).
    pub fn new() -> Self {
        Self {
            adam: AdamConfig::new().with_epsilon(ADAM_EPSILON).build(),
            live: Arc::default(),
        }
    }

    /// A `ModuleOptimizer` over this Adam; keep `self` to call [`prefetch`](Self::prefetch).
    pub fn module_optimizer(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.clone())
    }

    /// Reads every live state's moments back asynchronously and keeps host copies for the
    /// next serialisation.
    pub async fn prefetch(&self) -> Result<(), RunError> {
        let slots: Vec<SharedSlot> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut transaction = Transaction::default();
        let mut pending = Vec::new();
        for slot in &slots {
            let guard = lock(slot);
            if guard.host.is_some() {
                continue;
            }
            if let Some((moment_1, moment_2, max_moment_2)) = &guard.device {
                transaction = transaction.register(moment_1.clone());
                transaction = transaction.register(moment_2.clone());
                if let Some(max) = max_moment_2 {
                    transaction = transaction.register(max.clone());
                }
                pending.push((slot.clone(), max_moment_2.is_some()));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut data = transaction
            .execute_async()
            .await
            .map_err(|e| RunError::Readback(e.to_string()))?
            .into_iter();
        for (slot, has_max) in pending {
            let mut next = || {
                data.next()
                    .ok_or_else(|| RunError::Readback("too few tensors came back".into()))
            };
            let host = HostMoments {
                moment_1: next()?,
                moment_2: next()?,
                max_moment_2: if has_max { Some(next()?) } else { None },
            };
            lock(&slot).host = Some(host);
        }
        Ok(())
    }
}

impl Default for CheckpointableAdam {
    fn default() -> Self {
        Self::new()
    }
}

impl Optimizer for CheckpointableAdam {
    type State<const D: usize> = CheckpointableAdamState<D>;

    fn step<const D: usize>(
        &self,
        learning_rate: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Drop the slot's handles first so Adam's update can reuse the moments' buffers.
        let inner = state.map(|state| {
            lock(&state.slot).device = None;
            state.inner
        });
        let (tensor, inner) = self.adam.step(learning_rate, tensor, grad, inner);
        let state = inner.map(|inner| {
            let momentum = &inner.momentum;
            let slot = Arc::new(Mutex::new(MomentSlot {
                device: Some((
                    flat(&momentum.moment_1),
                    flat(&momentum.moment_2),
                    momentum.max_moment_2.as_ref().map(flat),
                )),
                host: None,
            }));
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|weak| weak.strong_count() > 0);
            live.push(Arc::downgrade(&slot));
            CheckpointableAdamState { inner, slot }
        });
        (tensor, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        CheckpointableAdamState {
            inner: <Adam as Optimizer>::to_device(state.inner, device),
            slot: state.slot,
        }
    }
}

/// An optimiser and the handle that makes its state readable asynchronously.
#[derive(Clone)]
struct AsyncOptimizer {
    optimizer: ModuleOptimizer,
    adam: CheckpointableAdam,
}

impl AsyncOptimizer {
    fn new() -> Self {
        let adam = CheckpointableAdam::new();
        Self {
            optimizer: adam.module_optimizer(),
            adam,
        }
    }

    async fn record(&self) -> Result<Vec<u8>, RunError> {
        self.adam.prefetch().await?;
        let bytes = self.optimizer.into_bytes().map_err(|e| RunError::Record {
            what: "optimiser",
            detail: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RunError> {
        let fresh = Self::new();
        let optimizer = fresh
            .optimizer
            .from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| RunError::Record {
                what: "optimiser",
                detail: e.to_string(),
            })?;
        *self = Self {
            optimizer,
            adam: fresh.adam,
        };
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Module records from async reads

/// Collects every float parameter (as saved) flattened, with its id and shape.
#[derive(Default)]
struct ParameterGatherer {
    tensors: Vec<Tensor<1>>,
}

impl ModuleVisitor for ParameterGatherer {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tensors.push(flat(&param.transform_for_save().val()));
    }
}

/// Replaces every float parameter, in visiting order, by its host copy on the CPU backend,
/// keeping its id (optimiser state is keyed by parameter id).
struct HostParameters {
    data: std::vec::IntoIter<TensorData>,
    device: Device,
    missing: bool,
}

impl ModuleMapper for HostParameters {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape: [usize; D] = param.lazy_shape().dims();
        let (id, value, _) = param.consume();
        match self.data.next() {
            Some(data) => Param::initialized(
                id,
                Tensor::<1>::from_data(data, &self.device).reshape(shape),
            ),
            None => {
                self.missing = true;
                Param::initialized(id, value)
            }
        }
    }
}

/// Burn's record of `module` (burnpack bytes), built from one async read of all its float
/// parameters: the module is rebuilt on the CPU backend from those values and recorded there,
/// so no synchronous read touches the GPU. The networks here hold only float parameters.
pub async fn module_record_bytes<M: Module + Clone>(module: &M) -> Result<Vec<u8>, RunError> {
    let mut gatherer = ParameterGatherer::default();
    module.visit(&mut gatherer);
    let mut transaction = Transaction::default();
    for tensor in gatherer.tensors {
        transaction = transaction.register(tensor);
    }
    let data = transaction
        .execute_async()
        .await
        .map_err(|e| RunError::Readback(e.to_string()))?;
    let mut mapper = HostParameters {
        data: data.into_iter(),
        device: Device::flex(),
        missing: false,
    };
    let host = module.clone().map(&mut mapper);
    if mapper.missing {
        return Err(RunError::Readback(
            "fewer parameters came back than were read".into(),
        ));
    }
    let bytes = host
        .into_record()
        .into_bytes()
        .map_err(|e| RunError::Record {
            what: "model",
            detail: e.to_string(),
        })?;
    Ok(bytes.to_vec())
}

/// Loads a record written by [`module_record_bytes`] into `module` (on any device).
pub fn load_module_record<M: Module>(module: M, bytes: &[u8]) -> Result<M, RunError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| {
        RunError::Record {
            what: "model",
            detail: e.to_string(),
        }
    })?;
    module
        .try_load_record(record)
        .map_err(|e| RunError::Record {
            what: "model",
            detail: e.to_string(),
        })
}

async fn read_floats(tensor: Tensor<1>) -> Result<Vec<f32>, RunError> {
    read_f32s(tensor).await.map_err(RunError::Readback)
}

// ---------------------------------------------------------------------------------------------
// Fine-tune mode: the head on cached embeddings

/// A head initialised like Keras' `Dense` (Glorot-uniform weights, zero bias), with the
/// weights drawn from `seed` rather than the device's generator, so that two runs with one
/// seed start identically even when tests share the CPU backend's global generator.
pub fn seeded_head(embedding_dim: usize, seed: u64, device: &Device) -> SiameseHead {
    let mut head = SiameseHead::new(embedding_dim, device);
    let limit = (6.0 / (embedding_dim as f64 + 1.0)).sqrt();
    let mut rng = SeededRng::for_stream(seed, 0x4845_4144); // "HEAD"
    let weights: Vec<f32> = (0..embedding_dim)
        .map(|_| rng.uniform(-limit, limit) as f32)
        .collect();
    head.classifier.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weights, [embedding_dim, 1]),
        device,
    ));
    head
}

/// Fine-tune mode's model: a [`SiameseHead`] trained on a table of embeddings that the frozen
/// tower computed once. Runs on the CPU backend (see the module documentation).
pub struct HeadModel {
    device: Device,
    table: Tensor<2>,
    count: usize,
    head: Option<SiameseHead>,
    optimizer: AsyncOptimizer,
}

impl HeadModel {
    /// A head over `embeddings` (all of one length), initialised from `seed`.
    pub fn new(embeddings: &[Vec<f32>], seed: u64) -> Result<Self, RunError> {
        let dim = embeddings.first().map_or(0, Vec::len);
        if dim == 0 {
            return Err(RunError::Data("no embeddings".into()));
        }
        if let Some(bad) = embeddings.iter().find(|e| e.len() != dim) {
            return Err(RunError::Data(format!(
                "embeddings of lengths {dim} and {} are mixed",
                bad.len()
            )));
        }
        if embeddings.iter().flatten().any(|v| !v.is_finite()) {
            return Err(RunError::Data("an embedding is not finite".into()));
        }
        let device = Device::flex().autodiff();
        let values: Vec<f32> = embeddings.iter().flatten().copied().collect();
        let table = Tensor::from_data(TensorData::new(values, [embeddings.len(), dim]), &device);
        Ok(Self {
            head: Some(seeded_head(dim, seed, &device)),
            device,
            table,
            count: embeddings.len(),
            optimizer: AsyncOptimizer::new(),
        })
    }

    /// Starts from `start`'s weights instead of a seeded initialisation: a head trained on
    /// thousands of pairs of many people knows which dimensions tell faces apart, which a
    /// handful of one person's photos cannot teach from scratch.
    pub fn starting_from(mut self, start: &DefaultHead) -> Self {
        self.head = Some(start.module(&self.device));
        self
    }

    /// The head being trained.
    pub fn head(&self) -> &SiameseHead {
        self.head
            .as_ref()
            .expect("the head is only absent during a step")
    }

    /// The trained head for inference (plain CPU device, no autodiff).
    pub fn inference_head(&self) -> SiameseHead {
        self.head().valid()
    }

    fn sides(&self, pairs: &[LabelledPair<usize>]) -> (Tensor<2>, Tensor<2>) {
        let indices = |pick: fn(&LabelledPair<usize>) -> usize| {
            let ids: Vec<i64> = pairs.iter().map(|p| pick(p) as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [pairs.len()]), &self.device)
        };
        (
            self.table.clone().select(0, indices(|p| p.anchor)),
            self.table.clone().select(0, indices(|p| p.other)),
        )
    }
}

impl PairModel for HeadModel {
    fn tower_kind(&self) -> &str {
        FINE_TUNE_TOWER_KIND
    }

    fn input_count(&self) -> usize {
        self.count
    }

    async fn train_batch(
        &mut self,
        pairs: &[LabelledPair<usize>],
        learning_rate: f64,
    ) -> Result<StepOutcome, RunError> {
        let (first, second) = self.sides(pairs);
        let labels: Vec<_> = pairs.iter().map(|p| p.label).collect();
        let batch = EmbeddingPairBatch {
            first,
            second,
            targets: targets_tensor(&labels, &self.device),
        };
        let head = self
            .head
            .take()
            .expect("the head is only absent during a step");
        let (head, outcome) =
            train_head_step(head, &mut self.optimizer.optimizer, batch, learning_rate).await;
        self.head = Some(head);
        Ok(outcome?)
    }

    async fn evaluate_batch(&self, pairs: &[LabelledPair<usize>]) -> Result<StepOutcome, RunError> {
        let head = self.head().valid();
        let (first, second) = self.sides(pairs);
        let labels: Vec<_> = pairs.iter().map(|p| p.label).collect();
        let plain = self.device.clone().without_autodiff();
        let probabilities = head.forward(first.inner(), second.inner());
        let loss = binary_cross_entropy(probabilities.clone(), targets_tensor(&labels, &plain));
        let mut outcome = read_floats(Tensor::cat(vec![loss, probabilities], 0)).await?;
        let loss = outcome.remove(0);
        Ok(StepOutcome {
            loss,
            probabilities: outcome,
        })
    }

    async fn model_record(&self) -> Result<Vec<u8>, RunError> {
        module_record_bytes(self.head()).await
    }

    async fn optimiser_record(&self) -> Result<Vec<u8>, RunError> {
        self.optimizer.record().await
    }

    fn restore(&mut self, model: &[u8], optimiser: &[u8]) -> Result<(), RunError> {
        // Loaded into a copy, so a record that does not fit leaves the head as it was.
        self.head = Some(load_module_record(self.head().clone(), model)?);
        self.optimizer.restore(optimiser)
    }
}

/// Embeddings of the three roles plus impostor samples, for [`fine_tune_trainer`].
#[derive(Debug, Clone, Default)]
pub struct FineTuneInputs {
    /// The user's anchor captures, embedded.
    pub anchors: Vec<Vec<f32>>,
    /// The user's positive captures, embedded.
    pub positives: Vec<Vec<f32>>,
    /// Other people's faces the user imported, embedded.
    pub negatives: Vec<Vec<f32>>,
    /// Samples of the impostor model (`train::impostors`), used as further negatives.
    pub impostors: Vec<Vec<f32>>,
    /// The head to start from (the default model); `None` starts from a seeded one.
    pub start: Option<DefaultHead>,
}

/// A fine-tune run: pairs from the embeddings (negatives = imported faces + impostor samples),
/// a seeded head, on the CPU backend.
pub fn fine_tune_trainer(
    inputs: &FineTuneInputs,
    settings: RunSettings,
) -> Result<Trainer<HeadModel>, RunError> {
    let (table, split) = table_and_split(
        [
            &inputs.anchors,
            &inputs.positives,
            &[inputs.negatives.clone(), inputs.impostors.clone()].concat(),
        ],
        &settings.training,
    )?;
    let mut model = HeadModel::new(&table, settings.training.seed)?;
    if let Some(start) = &inputs.start {
        model = model.starting_from(start);
    }
    Trainer::new(model, split, settings)
}

/// Concatenates the three roles into one table and makes the pairs over its indices.
fn table_and_split<T: Clone>(
    [anchors, positives, negatives]: [&[T]; 3],
    config: &TrainingConfig,
) -> Result<(Vec<T>, PairSplit<usize>), RunError> {
    let anchor_ids: Vec<usize> = (0..anchors.len()).collect();
    let positive_ids: Vec<usize> = (anchors.len()..anchors.len() + positives.len()).collect();
    let start = anchors.len() + positives.len();
    let negative_ids: Vec<usize> = (start..start + negatives.len()).collect();
    let split = prepare_pairs(&anchor_ids, &positive_ids, &negative_ids, config)?;
    let table = [anchors, positives, negatives].concat();
    Ok((table, split))
}

/// Embeds 150×150 face crops with the frozen pretrained tower on `device`, `batch` at a time,
/// with async reads. The fine-tune table is built from these once.
pub async fn embed_faces(
    tower: &FaceResNet,
    faces: &[Frame],
    batch: usize,
    device: &Device,
) -> Result<Vec<Vec<f32>>, RunError> {
    let mut embeddings = Vec::with_capacity(faces.len());
    for chunk in faces.chunks(batch.max(1)) {
        let mut pixels = Vec::with_capacity(chunk.len() * INPUT_SIZE * INPUT_SIZE * 3);
        for face in chunk {
            if (face.width() as usize, face.height() as usize) != (INPUT_SIZE, INPUT_SIZE) {
                return Err(RunError::Data(format!(
                    "the tower takes {INPUT_SIZE}x{INPUT_SIZE} faces, got {}x{}",
                    face.width(),
                    face.height()
                )));
            }
            pixels.extend_from_slice(face.pixels());
        }
        let out = tower
            .embed(input_from_rgb8(&pixels, device))
            .await
            .map_err(|e| RunError::Readback(e.to_string()))?;
        embeddings.extend(out.iter().map(|e| e.to_vec()));
    }
    debug_assert!(embeddings.iter().all(|e| e.len() == EMBEDDING_DIM));
    Ok(embeddings)
}

// ---------------------------------------------------------------------------------------------
// Classic mode: the whole siamese network

/// Images as the tower takes them: channels-first values, one flat vector per image.
#[derive(Debug, Clone)]
pub struct ImageTable {
    /// Shape of every image.
    pub shape: ImageShape,
    /// One `shape.num_elements()` vector per image.
    pub images: Vec<Vec<f32>>,
}

impl ImageTable {
    /// Channels-first values in 0..1 from RGB8 frames of the tower's size (the tutorial
    /// divides by 255).
    pub fn from_frames(frames: &[Frame], shape: ImageShape) -> Result<Self, RunError> {
        let images = frames
            .iter()
            .map(|frame| {
                if (frame.width() as usize, frame.height() as usize) != (shape.width, shape.height)
                    || shape.channels != 3
                {
                    return Err(RunError::Data(format!(
                        "a {}x{} image does not fit the tower's {shape:?}",
                        frame.width(),
                        frame.height()
                    )));
                }
                let plane = shape.width * shape.height;
                let mut values = vec![0f32; 3 * plane];
                for (i, pixel) in frame.pixels().chunks_exact(3).enumerate() {
                    for c in 0..3 {
                        values[c * plane + i] = f32::from(pixel[c]) / 255.0;
                    }
                }
                Ok(values)
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { shape, images })
    }

    fn batch(&self, ids: impl Iterator<Item = usize>, device: &Device) -> Tensor<4> {
        let mut values = Vec::new();
        let mut count = 0;
        for id in ids {
            values.extend_from_slice(&self.images[id]);
            count += 1;
        }
        let [c, h, w] = self.shape.as_array();
        Tensor::from_data(TensorData::new(values, [count, c, h, w]), device)
    }
}

/// Classic mode's model: a whole [`Siamese`] network on any device (an autodiff one).
pub struct SiameseModel<T: EmbeddingTower> {
    device: Device,
    table: ImageTable,
    model: Option<Siamese<T>>,
    optimizer: AsyncOptimizer,
    kind: String,
}

impl<T: EmbeddingTower> SiameseModel<T> {
    /// Trains `model` (already on `device`, an autodiff device) on `table`'s images.
    pub fn new(model: Siamese<T>, table: ImageTable, device: Device, kind: &str) -> Self {
        Self {
            device,
            table,
            model: Some(model),
            optimizer: AsyncOptimizer::new(),
            kind: kind.to_owned(),
        }
    }

    /// The network being trained.
    pub fn network(&self) -> &Siamese<T> {
        self.model
            .as_ref()
            .expect("the model is only absent during a step")
    }

    fn batch(&self, pairs: &[LabelledPair<usize>], device: &Device) -> PairBatch {
        let labels: Vec<_> = pairs.iter().map(|p| p.label).collect();
        PairBatch::new(
            self.table.batch(pairs.iter().map(|p| p.anchor), device),
            self.table.batch(pairs.iter().map(|p| p.other), device),
            &labels,
            device,
        )
    }
}

impl<T: EmbeddingTower> PairModel for SiameseModel<T> {
    fn tower_kind(&self) -> &str {
        &self.kind
    }

    fn input_count(&self) -> usize {
        self.table.images.len()
    }

    async fn train_batch(
        &mut self,
        pairs: &[LabelledPair<usize>],
        learning_rate: f64,
    ) -> Result<StepOutcome, RunError> {
        let batch = self.batch(pairs, &self.device);
        let model = self
            .model
            .take()
            .expect("the model is only absent during a step");
        let (model, outcome) =
            train_step(model, &mut self.optimizer.optimizer, batch, learning_rate).await;
        self.model = Some(model);
        Ok(outcome?)
    }

    async fn evaluate_batch(&self, pairs: &[LabelledPair<usize>]) -> Result<StepOutcome, RunError> {
        let plain = self.device.clone().without_autodiff();
        let inference = self.network().valid();
        Ok(evaluate_batch(&inference, self.batch(pairs, &plain)).await?)
    }

    async fn model_record(&self) -> Result<Vec<u8>, RunError> {
        module_record_bytes(self.network()).await
    }

    async fn optimiser_record(&self) -> Result<Vec<u8>, RunError> {
        self.optimizer.record().await
    }

    fn restore(&mut self, model: &[u8], optimiser: &[u8]) -> Result<(), RunError> {
        // Loaded into a copy, so a record that does not fit leaves the network as it was.
        self.model = Some(load_module_record(self.network().clone(), model)?);
        self.optimizer.restore(optimiser)
    }
}

/// A classic run: pairs over `anchors`, `positives` and `negatives` (images of `shape`), the
/// network `model` on the autodiff `device`.
pub fn classic_trainer<T: EmbeddingTower>(
    model: Siamese<T>,
    device: Device,
    shape: ImageShape,
    [anchors, positives, negatives]: [&[Vec<f32>]; 3],
    settings: RunSettings,
) -> Result<Trainer<SiameseModel<T>>, RunError> {
    let (images, split) = table_and_split([anchors, positives, negatives], &settings.training)?;
    if let Some(bad) = images.iter().find(|i| i.len() != shape.num_elements()) {
        return Err(RunError::Data(format!(
            "an image has {} values, the tower takes {shape:?}",
            bad.len()
        )));
    }
    let table = ImageTable { shape, images };
    Trainer::new(
        SiameseModel::new(model, table, device, CLASSIC_TOWER_KIND),
        split,
        settings,
    )
}

// ---------------------------------------------------------------------------------------------
// The trained model as a file

/// A trained model as the CLI writes it and the page stores it: the module record, the
/// calibrated policy and a JSON summary (mode, settings, metrics), in one model file.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// [`FINE_TUNE_TOWER_KIND`] or [`CLASSIC_TOWER_KIND`].
    pub tower_kind: String,
    /// Burn's record of the head (fine-tune) or the whole network (classic).
    pub record: Vec<u8>,
    /// Detection and verification thresholds.
    pub policy: crate::verify::policy::VerificationPolicy,
    /// Free-form JSON: mode, settings, metrics.
    pub summary: serde_json::Value,
}

impl TrainedModel {
    /// Encodes as a model file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let summary = serde_json::to_vec(&self.summary).expect("JSON values always serialise");
        let policy: Vec<u8> = [
            self.policy.detection.value(),
            self.policy.verification.value(),
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
        let specs = vec![
            blob_spec(MODEL_TENSOR, &self.record),
            TensorSpec {
                name: POLICY_TENSOR.into(),
                shape: vec![2],
                dtype: TensorDType::F32,
            },
            blob_spec(SUMMARY_TENSOR, &summary),
        ];
        let payload = [self.record.as_slice(), &policy, &summary].concat();
        ModelFile::new(self.tower_kind.clone(), specs, payload)
            .expect("parts always fit their declared sizes")
            .encode()
    }

    /// Decodes and checks a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RunError> {
        let file = ModelFile::decode(bytes)?;
        let policy = blob(&file, POLICY_TENSOR)?;
        let value =
            |i: usize| f32::from_le_bytes(policy[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let policy = crate::verify::policy::VerificationPolicy::from_values(value(0), value(1))
            .map_err(|e| RunError::CheckpointMismatch(e.to_string()))?;
        Ok(Self {
            tower_kind: file.header.tower_kind.clone(),
            record: blob(&file, MODEL_TENSOR)?.to_vec(),
            policy,
            summary: serde_json::from_slice(blob(&file, SUMMARY_TENSOR)?)
                .map_err(|e| RunError::CheckpointMismatch(format!("unreadable summary: {e}")))?,
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::train::pairs::PairLabel;

    /// Embeddings of two well-separated "people" plus noise.
    fn embeddings(count: usize, person: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SeededRng::new(seed);
        (0..count)
            .map(|_| {
                (0..8)
                    .map(|d| {
                        let centre = if (d + person) % 2 == 0 { 0.8 } else { 0.1 };
                        centre + rng.uniform(-0.05, 0.05) as f32
                    })
                    .collect()
            })
            .collect()
    }

    fn inputs() -> FineTuneInputs {
        FineTuneInputs {
            anchors: embeddings(10, 0, 1),
            positives: embeddings(10, 0, 2),
            negatives: embeddings(10, 1, 3),
            impostors: Vec::new(),
            start: None,
        }
    }

    fn settings(epochs: usize) -> RunSettings {
        RunSettings {
            training: TrainingConfig {
                learning_rate: 0.05,
                batch_size: 4,
                epochs,
                seed: 9,
                ..TrainingConfig::default()
            },
            patience: None,
            ..RunSettings::default()
        }
    }

    #[test]
    fn checkpoint_bytes_round_trip_and_fit_the_store() {
        let mut trainer = fine_tune_trainer(&inputs(), settings(1)).unwrap();
        let control = RunControl::new(no_clock);
        pollster::block_on(trainer.run(&control, &mut SilentObserver)).unwrap();
        let checkpoint = pollster::block_on(trainer.checkpoint()).unwrap();
        assert_eq!(
            TrainingCheckpoint::from_bytes(&checkpoint.to_bytes()).unwrap(),
            checkpoint
        );
        let stored = checkpoint.to_store_checkpoint("alice", "run-1", 5);
        crate::store::check_checkpoint_record(&stored).unwrap();
        assert_eq!(
            TrainingCheckpoint::from_store_checkpoint(&stored).unwrap(),
            checkpoint
        );
    }

    #[test]
    fn a_checkpoint_of_other_pairs_is_refused() {
        let trainer = fine_tune_trainer(&inputs(), settings(1)).unwrap();
        let checkpoint = pollster::block_on(trainer.checkpoint()).unwrap();
        let mut other = settings(1);
        other.training.seed = 10;
        let (table, split) = table_and_split(
            [&inputs().anchors, &inputs().positives, &inputs().negatives],
            &other.training,
        )
        .unwrap();
        let model = HeadModel::new(&table, 10).unwrap();
        assert!(matches!(
            Trainer::resume(model, split, &checkpoint),
            Err(RunError::CheckpointMismatch(_))
        ));
    }

    #[test]
    fn trained_model_files_round_trip() {
        let model = TrainedModel {
            tower_kind: FINE_TUNE_TOWER_KIND.into(),
            record: vec![1, 2, 3],
            policy: crate::verify::policy::VerificationPolicy::from_values(0.4, 0.6).unwrap(),
            summary: serde_json::json!({"mode": "fine_tune"}),
        };
        assert_eq!(TrainedModel::from_bytes(&model.to_bytes()).unwrap(), model);
    }

    #[test]
    fn labels_reach_the_head_in_pair_order() {
        let model = HeadModel::new(&inputs().anchors, 1).unwrap();
        let pairs = vec![
            LabelledPair {
                anchor: 0,
                other: 1,
                label: PairLabel::Same,
            },
            LabelledPair {
                anchor: 2,
                other: 2,
                label: PairLabel::Different,
            },
        ];
        let outcome = pollster::block_on(model.evaluate_batch(&pairs)).unwrap();
        assert_eq!(outcome.probabilities.len(), 2);
        assert!(outcome.loss.is_finite());
    }
}
