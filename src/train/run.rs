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
//! The modes' models, the optimiser, the records and the trained-model file live in private
//! sibling modules and are re-exported here, so `train::run` stays the one path to them.
//!
//! [`Transaction`]: burn::tensor::Transaction
//! [`SiameseHead`]: crate::model::siamese::SiameseHead
//! [`Siamese`]: crate::model::siamese::Siamese

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::metrics::{ConfusionCounts, EvaluationReport, MetricsError, evaluate};
use super::pairs::{
    ConfigError, LabelledPair, PairSplit, PairsError, TrainingConfig, batches_per_epoch,
    epoch_batches, prepare_pairs,
};
use super::step::{StepError, StepOutcome};
use crate::store::validate::{ModelFile, ModelFormatError, TensorDType, TensorSpec};
use crate::store::{Checkpoint, CheckpointMeta, EpochStats};
use crate::verify::calibration::{PolicyProposal, propose_policy};

pub use super::classic::{ImageTable, SiameseModel, classic_trainer};
pub use super::fine_tune::{
    FineTuneInputs, HeadModel, embed_faces, fine_tune_trainer, seeded_head,
};
pub use super::model_file::TrainedModel;
pub use super::optimiser::{CheckpointableAdam, CheckpointableAdamState, ModuleAndOptimiser};
pub use super::records::{load_module_record, module_record_bytes};
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
pub(super) const MODEL_TENSOR: &str = "model";
const OPTIMISER_TENSOR: &str = "optimiser";
const STATE_TENSOR: &str = "state";

/// A byte blob as a model-file tensor (`TensorDType::U8` exists for this).
pub(super) fn blob_spec(name: &str, bytes: &[u8]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        shape: vec![bytes.len() as u64],
        dtype: TensorDType::U8,
    }
}

pub(super) fn blob<'a>(file: &'a ModelFile, name: &str) -> Result<&'a [u8], RunError> {
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
        let trainer_state = CheckpointState {
            position: self.position.clone(),
            settings: self.settings.clone(),
        };
        Checkpoint {
            meta: CheckpointMeta {
                profile_id: profile_id.into(),
                run_id: run_id.into(),
                epoch: self.position.epoch as u32,
                position: self.position.next_batch as u64,
                created: created_ms,
                trainer_state: serde_json::to_value(trainer_state)
                    .expect("positions and settings always serialise"),
            },
            model_bytes: self.model_file_bytes(),
            optimiser_bytes: self.optimiser.clone(),
        }
    }

    /// Reads a checkpoint back from the store's record.
    pub fn from_store_checkpoint(checkpoint: &Checkpoint) -> Result<Self, RunError> {
        let file = ModelFile::decode(&checkpoint.model_bytes)?;
        let state: CheckpointState = serde_json::from_value(checkpoint.meta.trainer_state.clone())
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
    /// The module that training updates: a head or a whole network.
    type Module: Module + Clone;

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

    /// The module being trained and its optimiser.
    fn training(&self) -> &ModuleAndOptimiser<Self::Module>;

    /// The same, for restoring.
    fn training_mut(&mut self) -> &mut ModuleAndOptimiser<Self::Module>;

    /// The trained module's record, read asynchronously.
    async fn model_record(&self) -> Result<Vec<u8>, RunError> {
        self.training().module_record().await
    }

    /// The optimiser's record, read asynchronously.
    async fn optimiser_record(&self) -> Result<Vec<u8>, RunError> {
        self.training().optimiser_record().await
    }

    /// Replaces the weights and the optimiser state with recorded ones. A module record that
    /// does not fit leaves the weights as they were.
    fn restore(&mut self, model: &[u8], optimiser: &[u8]) -> Result<(), RunError> {
        self.training_mut().restore(model, optimiser)
    }
}

/// Concatenates the three roles into one table and makes the pairs over its indices.
pub(super) fn table_and_split<T: Clone>(
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
