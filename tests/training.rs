#![cfg(not(target_arch = "wasm32"))]
//! The training run (`faceverify::train::run`) natively on the CPU backend: the loss falls and
//! the model separates a small fixed set; checkpoint → bytes → reload → resume equals an
//! uninterrupted run, a checkpoint round-trips through the store's record too and is refused
//! on other pairs; cancellation stops between steps and its checkpoint resumes; early
//! stopping; single training steps on their own; and a fine-tune run on LFW identities reaches
//! 0.95 precision and recall.
//!
//! Loop mechanics use tiny networks so the file runs in seconds; the LFW test embeds about a
//! hundred photos once with the pretrained tower and trains only the head.

use std::path::PathBuf;

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use faceverify::model::face_resnet::{self, FaceResNet};
use faceverify::model::siamese::{Siamese, SiameseHead};
use faceverify::model::tower::{EmbeddingTower, ImageShape};
use faceverify::store::check_checkpoint_record;
use faceverify::train::impostors::{IMPOSTOR_MODEL_PATH, load_face, load_impostor_model};
use faceverify::train::metrics::{ConfusionCounts, area_under_curve, roc_curve};
use faceverify::train::pairs::{
    LabelledPair, PairLabel, PairSplit, SeededRng, TrainingConfig, make_pairs,
};
use faceverify::train::run::{
    FinalReport, FineTuneInputs, HeadModel, PairModel, RunControl, RunError, RunSettings,
    SiameseModel, SilentObserver, StopReason, Trainer, TrainingCheckpoint, TrainingEvent,
    TrainingObserver, classic_trainer, embed_faces, fine_tune_trainer, no_clock,
};
use faceverify::train::step::{
    EmbeddingPairBatch, PairBatch, adam_optimizer, evaluate_batch, targets_tensor, train_head_step,
    train_step,
};

#[path = "support/data.rs"]
mod data;
use data::{model_file, repo, shared_data, sorted_entries};
#[cfg(feature = "webgpu")]
#[path = "support/gpu.rs"]
mod gpu;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Every float parameter's values, in visiting order.
fn parameters<M: Module>(module: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0
                .push(param.val().into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut collect = Collect(Vec::new());
    module.visit(&mut collect);
    collect.0
}

/// Records events, keeps every checkpoint as bytes, and raises a cancel flag after a number
/// of steps when asked to.
#[derive(Default)]
struct Recorder {
    events: Vec<TrainingEvent>,
    checkpoints: Vec<Vec<u8>>,
    cancel_after_steps: Option<(usize, faceverify::train::run::CancelFlag)>,
    steps: usize,
    yields: usize,
}

impl TrainingObserver for Recorder {
    async fn yield_now(&mut self) {
        self.yields += 1;
    }

    fn on_event(&mut self, event: &TrainingEvent) {
        if matches!(event, TrainingEvent::Step(_)) {
            self.steps += 1;
            if let Some((after, flag)) = &self.cancel_after_steps
                && self.steps == *after
            {
                flag.cancel();
            }
        }
        self.events.push(event.clone());
    }

    async fn save_checkpoint(&mut self, checkpoint: &TrainingCheckpoint) -> Result<(), String> {
        self.checkpoints.push(checkpoint.to_bytes());
        Ok(())
    }
}

impl Recorder {
    /// A recorder that raises `control`'s cancel flag once `steps` steps have run.
    fn cancelling_after(steps: usize, control: &RunControl) -> Self {
        Recorder {
            cancel_after_steps: Some((steps, control.cancel.clone())),
            ..Recorder::default()
        }
    }

    /// The last checkpoint it kept, read back from its bytes.
    fn last_checkpoint(&self) -> TrainingCheckpoint {
        TrainingCheckpoint::from_bytes(self.checkpoints.last().unwrap()).unwrap()
    }
}

/// The test split's precision and recall both reach `at_least`.
fn assert_precision_and_recall(report: &FinalReport, at_least: f64) {
    let evaluation = &report.evaluation;
    assert!(
        evaluation.precision >= at_least && evaluation.recall >= at_least,
        "precision {}, recall {}: {:?}",
        evaluation.precision,
        evaluation.recall,
        evaluation.counts
    );
}

fn run<M: PairModel, O: TrainingObserver>(
    trainer: &mut Trainer<M>,
    control: &RunControl,
    observer: &mut O,
) -> StopReason {
    pollster::block_on(trainer.run(control, observer)).unwrap()
}

/// Runs `trainer` to its end, unobserved and without a clock.
fn run_silently<M: PairModel>(trainer: &mut Trainer<M>) -> StopReason {
    run(trainer, &RunControl::new(no_clock), &mut SilentObserver)
}

// ---------------------------------------------------------------------------------------------
// Synthetic data

/// Embeddings of "people": person 0 high in the even dimensions, others elsewhere, noisy.
fn embeddings(count: usize, person: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|_| {
            (0..16)
                .map(|d| {
                    let centre = if (d + person).is_multiple_of(3) {
                        0.9
                    } else {
                        0.1
                    };
                    centre + rng.uniform(-0.15, 0.15) as f32
                })
                .collect()
        })
        .collect()
}

fn head_inputs() -> FineTuneInputs {
    FineTuneInputs {
        anchors: embeddings(12, 0, 1),
        positives: embeddings(12, 0, 2),
        negatives: [embeddings(6, 1, 3), embeddings(6, 2, 4)].concat(),
        impostors: embeddings(6, 1, 5),
        start: None,
    }
}

/// Every embedding of `head_inputs()`, as the table a head model is built over.
fn head_table() -> Vec<Vec<f32>> {
    let inputs = head_inputs();
    [
        inputs.anchors,
        inputs.positives,
        inputs.negatives,
        inputs.impostors,
    ]
    .concat()
}

fn head_settings(epochs: usize) -> RunSettings {
    RunSettings {
        training: TrainingConfig {
            learning_rate: 0.05,
            batch_size: 4,
            epochs,
            seed: 17,
            ..TrainingConfig::default()
        },
        patience: None,
        ..RunSettings::default()
    }
}

/// A tiny tower with the Koch tower's structure: conv, ceil max-pool, dense + sigmoid.
#[derive(Module, Debug)]
struct TinyTower {
    conv: Conv2d,
    pool: MaxPool2d,
    dense: Linear,
}

const SIDE: usize = 8;
const TINY_SHAPE: ImageShape = ImageShape::new(3, SIDE, SIDE);

impl TinyTower {
    fn new(device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([3, 4], [3, 3]).init(device),
            pool: MaxPool2dConfig::new([2, 2]).with_ceil_mode(true).init(),
            dense: LinearConfig::new(4 * 3 * 3, 8).init(device),
        }
    }
}

impl EmbeddingTower for TinyTower {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv.forward(images)));
        sigmoid(self.dense.forward(x.flatten(1, 3)))
    }
    fn embedding_dim(&self) -> usize {
        8
    }
    fn input_size(&self) -> ImageShape {
        TINY_SHAPE
    }
}

/// Synthetic faces: person 0 bright on the left, 1 on the right, 2 at the top; own noise.
fn faces(count: usize, person: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = SeededRng::new(seed);
    (0..count)
        .map(|_| {
            (0..3 * SIDE * SIDE)
                .map(|i| {
                    let (row, column) = ((i % (SIDE * SIDE)) / SIDE, i % SIDE);
                    let lit = match person {
                        0 => column < SIDE / 2,
                        1 => column >= SIDE / 2,
                        _ => row < SIDE / 2,
                    };
                    (if lit { 0.8 } else { 0.2 }) + rng.uniform(-0.1, 0.1) as f32
                })
                .collect()
        })
        .collect()
}

fn classic_settings(epochs: usize) -> RunSettings {
    RunSettings {
        training: TrainingConfig {
            learning_rate: 1e-2,
            batch_size: 8,
            epochs,
            seed: 3,
            pairs_per_class: Some(24),
            ..TrainingConfig::default()
        },
        patience: None,
        ..RunSettings::default()
    }
}

/// A classic trainer over the synthetic faces on the CPU, starting from `network`'s weights.
fn classic(network: Siamese<TinyTower>, epochs: usize) -> Trainer<SiameseModel<TinyTower>> {
    classic_on(network, Device::flex().autodiff(), epochs)
}

/// A classic trainer over the synthetic faces on `device` (an autodiff device).
fn classic_on(
    network: Siamese<TinyTower>,
    device: Device,
    epochs: usize,
) -> Trainer<SiameseModel<TinyTower>> {
    let anchors = faces(10, 0, 1);
    let positives = faces(10, 0, 2);
    let negatives = [faces(5, 1, 3), faces(5, 2, 4)].concat();
    classic_trainer(
        network,
        device,
        TINY_SHAPE,
        [&anchors, &positives, &negatives],
        classic_settings(epochs),
    )
    .unwrap()
}

fn tiny_network() -> Siamese<TinyTower> {
    let device = Device::flex().autodiff();
    device.seed(5);
    Siamese::new(TinyTower::new(&device), &device)
}

// ---------------------------------------------------------------------------------------------
// Loop mechanics

#[test]
fn the_loss_falls_on_a_small_fixed_set_and_the_trained_model_separates_it() {
    let mut trainer = classic(tiny_network(), 40);
    let mut recorder = Recorder::default();
    let reason = run(&mut trainer, &RunControl::new(no_clock), &mut recorder);
    assert_eq!(reason, StopReason::Completed);

    let history = &trainer.position().history;
    assert_eq!(history.len(), 40);
    let (first, last) = (history[0].train_loss, history[39].train_loss);
    assert!(last < 0.5 * first, "train loss {first} → {last}");
    let report = pollster::block_on(trainer.final_report()).unwrap();
    assert_precision_and_recall(&report, 1.0);
    assert_eq!(report.evaluation.auc, 1.0);

    // One step event per batch, an epoch event and a checkpoint per epoch, and a yield after
    // every step and epoch.
    let steps_per_epoch = trainer.split().train.len().div_ceil(8);
    let count = |f: fn(&TrainingEvent) -> bool| recorder.events.iter().filter(|e| f(e)).count();
    assert_eq!(
        count(|e| matches!(e, TrainingEvent::Step(_))),
        40 * steps_per_epoch
    );
    assert_eq!(count(|e| matches!(e, TrainingEvent::Epoch(_))), 40);
    assert_eq!(recorder.checkpoints.len(), 40);
    assert_eq!(recorder.yields, 40 * steps_per_epoch + 40);
}

#[test]
fn fine_tune_head_learns_and_reports_a_calibrated_policy() {
    let mut trainer = fine_tune_trainer(&head_inputs(), head_settings(30)).unwrap();
    run_silently(&mut trainer);
    let report = pollster::block_on(trainer.final_report()).unwrap();
    assert_precision_and_recall(&report, 0.95);
    assert!(report.evaluation.auc > 0.99);
    let proposal = report.policy.expect("both classes are in the test split");
    assert!(proposal.detection.false_accept_rate <= 0.01 + 1e-12);
}

/// A fine-tune run over `head_inputs()` for `epochs`, finished without interruption.
fn uninterrupted_fine_tune(epochs: usize) -> Trainer<HeadModel> {
    let mut trainer = fine_tune_trainer(&head_inputs(), head_settings(epochs)).unwrap();
    run_silently(&mut trainer);
    trainer
}

/// Resumes `checkpoint` over `split` on a head model initialised from `seed`, and runs it to
/// its end.
fn resume_head(
    split: PairSplit<usize>,
    checkpoint: &TrainingCheckpoint,
    seed: u64,
) -> (Trainer<HeadModel>, StopReason) {
    let model = HeadModel::new(&head_table(), seed).unwrap();
    let mut resumed = Trainer::resume(model, split, checkpoint).unwrap();
    let reason = run_silently(&mut resumed);
    (resumed, reason)
}

/// The resumed fine-tune run ended where the uninterrupted one did: same weights, same history.
fn assert_same_head_run(resumed: &Trainer<HeadModel>, straight: &Trainer<HeadModel>) {
    assert_eq!(
        parameters(resumed.model().head()),
        parameters(straight.model().head()),
        "resumed weights differ from the uninterrupted run's"
    );
    assert_eq!(resumed.position().history, straight.position().history);
}

/// A fine-tune run over `head_inputs()` for `epochs`, cancelled after the first epoch and
/// `second_epoch_steps` steps of the second; what it recorded, and how many steps it ran.
fn cancelled_fine_tune(epochs: usize, second_epoch_steps: usize) -> (Recorder, usize) {
    let control = RunControl::new(no_clock);
    let mut trainer = fine_tune_trainer(&head_inputs(), head_settings(epochs)).unwrap();
    let steps_per_epoch = trainer.split().train.len().div_ceil(4);
    let stop_after = steps_per_epoch + second_epoch_steps;
    let mut recorder = Recorder::cancelling_after(stop_after, &control);
    assert_eq!(
        run(&mut trainer, &control, &mut recorder),
        StopReason::Cancelled
    );
    (recorder, stop_after)
}

#[test]
fn checkpoint_bytes_reload_and_resume_equal_an_uninterrupted_run() {
    // Fine-tune mode: 2 epochs straight vs 1 epoch → checkpoint → bytes → reload → 1 more.
    let straight = uninterrupted_fine_tune(2);

    // Stop at the first epoch boundary: the flag is raised in the first epoch's last step and
    // seen before the second epoch's first, so the epoch-end checkpoint and the cancellation's
    // are the same position.
    let (recorder, _) = cancelled_fine_tune(2, 0);
    let checkpoint = recorder.last_checkpoint();
    assert_eq!(
        (checkpoint.position.epoch, checkpoint.position.next_batch),
        (1, 0)
    );
    let fresh = fine_tune_trainer(&head_inputs(), head_settings(2)).unwrap();
    // Other initial weights than the first run's: the checkpoint's must win.
    let (resumed, reason) = resume_head(fresh.split().clone(), &checkpoint, 999);
    assert_eq!(reason, StopReason::Completed);
    assert_same_head_run(&resumed, &straight);
}

#[test]
fn checkpoints_round_trip_through_bytes_and_the_store() {
    let mut trainer = fine_tune_trainer(&head_inputs(), head_settings(1)).unwrap();
    run_silently(&mut trainer);
    let checkpoint = pollster::block_on(trainer.checkpoint()).unwrap();
    assert_eq!(
        TrainingCheckpoint::from_bytes(&checkpoint.to_bytes()).unwrap(),
        checkpoint
    );
    let stored = checkpoint.to_store_checkpoint("alice", "run-1", 5);
    check_checkpoint_record(&stored).unwrap();
    assert_eq!(
        TrainingCheckpoint::from_store_checkpoint(&stored).unwrap(),
        checkpoint
    );
}

#[test]
fn a_checkpoint_of_other_pairs_is_refused() {
    let trainer = fine_tune_trainer(&head_inputs(), head_settings(1)).unwrap();
    let checkpoint = pollster::block_on(trainer.checkpoint()).unwrap();
    let mut other = head_settings(1);
    other.training.seed += 1;
    let other_pairs = fine_tune_trainer(&head_inputs(), other).unwrap();
    let model = HeadModel::new(&head_table(), 1).unwrap();
    assert!(matches!(
        Trainer::resume(model, other_pairs.split().clone(), &checkpoint),
        Err(RunError::CheckpointMismatch(_))
    ));
}

#[test]
fn labels_reach_the_head_in_pair_order() {
    let model = HeadModel::new(&head_inputs().anchors, 1).unwrap();
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

#[test]
fn classic_resume_equals_an_uninterrupted_run() {
    let network = tiny_network();
    let mut straight = classic(network.clone(), 2);
    run_silently(&mut straight);

    let control = RunControl::new(no_clock);
    let mut first = classic(network.clone(), 2);
    let steps_per_epoch = first.split().train.len().div_ceil(8);
    let mut recorder = Recorder::cancelling_after(steps_per_epoch, &control);
    run(&mut first, &control, &mut recorder);
    let checkpoint = recorder.last_checkpoint();

    let other_start = {
        let device = Device::flex().autodiff();
        Siamese::new(TinyTower::new(&device), &device)
    };
    let mut resumed = Trainer::resume(
        classic(other_start, 2).into_model(),
        straight.split().clone(),
        &checkpoint,
    )
    .unwrap();
    run_silently(&mut resumed);
    assert_eq!(
        parameters(resumed.model().network()),
        parameters(straight.model().network())
    );
}

#[test]
fn cancellation_stops_between_steps_and_its_checkpoint_resumes_mid_epoch() {
    let straight = uninterrupted_fine_tune(3);

    let (recorder, stop_after) = cancelled_fine_tune(3, 2);
    // The flag was raised during step `stop_after`; no further step ran.
    assert_eq!(recorder.steps, stop_after);
    assert_eq!(
        recorder.events.last(),
        Some(&TrainingEvent::Stopped {
            reason: StopReason::Cancelled
        })
    );
    let checkpoint = recorder.last_checkpoint();
    assert_eq!(
        (checkpoint.position.epoch, checkpoint.position.next_batch),
        (1, 2)
    );

    let (resumed, _) = resume_head(straight.split().clone(), &checkpoint, 1);
    assert_same_head_run(&resumed, &straight);
}

#[test]
fn early_stopping_triggers_when_the_test_loss_stops_improving() {
    let mut settings = head_settings(50);
    // A learning rate too small to move the loss: no epoch improves on the first.
    settings.training.learning_rate = 1e-12;
    settings.patience = Some(2);
    let mut trainer = fine_tune_trainer(&head_inputs(), settings).unwrap();
    let mut recorder = Recorder::default();
    let reason = run(&mut trainer, &RunControl::new(no_clock), &mut recorder);
    assert_eq!(reason, StopReason::EarlyStopped { best_epoch: 0 });
    assert_eq!(trainer.position().history.len(), 3);
    assert_eq!(trainer.position().finished, Some(reason));
    // A finished run stays finished.
    assert_eq!(
        run(&mut trainer, &RunControl::new(no_clock), &mut recorder),
        reason
    );
}

#[test]
fn progress_reports_rate_and_eta_from_the_callers_clock() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static TICKS: AtomicU64 = AtomicU64::new(0);
    // Each reading advances 10 ms: a deterministic clock.
    fn ticking() -> f64 {
        TICKS.fetch_add(1, Ordering::SeqCst) as f64 * 10.0
    }
    let mut trainer = fine_tune_trainer(&head_inputs(), head_settings(2)).unwrap();
    let mut recorder = Recorder::default();
    run(&mut trainer, &RunControl::new(ticking), &mut recorder);
    let steps: Vec<_> = recorder
        .events
        .iter()
        .filter_map(|e| match e {
            TrainingEvent::Step(step) => Some(step.clone()),
            _ => None,
        })
        .collect();
    let last = steps.last().unwrap();
    assert_eq!(last.eta_seconds, Some(0.0));
    assert!(last.examples_per_second.unwrap() > 0.0);
    assert!(steps[0].eta_seconds.unwrap() > 0.0);
    assert!((0.0..=1.0).contains(&last.precision) && (0.0..=1.0).contains(&last.recall));
}

// ---------------------------------------------------------------------------------------------
// Single steps (`train::step`), without the run around them

/// Pairs of the synthetic faces (person 0's anchors and positives, persons 1 and 2 as
/// negatives), as flat images and the pairs' image indices and labels.
struct StepSet {
    images: Vec<Vec<f32>>,
    pairs: Vec<LabelledPair<usize>>,
}

impl StepSet {
    fn new() -> Self {
        let images = [
            faces(6, 0, 11),
            faces(6, 0, 12),
            faces(3, 1, 13),
            faces(3, 2, 14),
        ]
        .concat();
        let ids = |range: std::ops::Range<usize>| range.collect::<Vec<_>>();
        let pairs = make_pairs(&ids(0..6), &ids(6..12), &ids(12..18), Some(16), 5).unwrap();
        StepSet { images, pairs }
    }

    fn images(&self, side: fn(&LabelledPair<usize>) -> usize, device: &Device) -> Tensor<4> {
        let values: Vec<f32> = self
            .pairs
            .iter()
            .flat_map(|p| self.images[side(p)].clone())
            .collect();
        Tensor::from_data(
            TensorData::new(values, [self.pairs.len(), 3, SIDE, SIDE]),
            device,
        )
    }

    fn labels(&self) -> Vec<PairLabel> {
        self.pairs.iter().map(|p| p.label).collect()
    }

    fn batch(&self, device: &Device) -> PairBatch {
        let (first, second) = (
            self.images(|p| p.anchor, device),
            self.images(|p| p.other, device),
        );
        PairBatch::new(first, second, &self.labels(), device)
    }
}

#[test]
fn a_step_lowers_the_loss_and_the_trained_model_separates_the_set() {
    let device = Device::flex().autodiff();
    device.seed(21);
    let set = StepSet::new();
    let mut model = Siamese::new(TinyTower::new(&device), &device);
    let mut optimizer = adam_optimizer();
    let train = set.batch(&device);
    let mut losses = Vec::new();
    for _ in 0..60 {
        let (updated, outcome) =
            pollster::block_on(train_step(model, &mut optimizer, train.clone(), 1e-2));
        model = updated;
        let outcome = outcome.unwrap();
        assert_eq!(outcome.probabilities.len(), set.pairs.len());
        losses.push(outcome.loss);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(last < 0.5 * first, "loss {first} → {last}: {losses:?}");

    // Evaluated with the inference model on the plain device.
    let plain = Device::flex();
    let outcome = pollster::block_on(evaluate_batch(&model.valid(), set.batch(&plain))).unwrap();
    assert!(
        (outcome.loss - last).abs() < 0.2,
        "{} vs {last}",
        outcome.loss
    );
    let genuine: Vec<bool> = set.labels().iter().map(|l| l.is_same()).collect();
    let counts = ConfusionCounts::at_threshold(&outcome.probabilities, &genuine, 0.5).unwrap();
    assert_eq!(counts.accuracy(), 1.0, "{counts:?}");
    let roc = roc_curve(&outcome.probabilities, &genuine).unwrap();
    assert_eq!(area_under_curve(&roc), 1.0);
}

#[test]
fn a_head_step_on_cached_embeddings_learns_too() {
    let device = Device::flex().autodiff();
    device.seed(4);
    let set = StepSet::new();
    // A fixed (untrained) tower stands in for the frozen pretrained one.
    let plain = Device::flex();
    let tower = TinyTower::new(&plain);
    let embed = |side: fn(&LabelledPair<usize>) -> usize| {
        Tensor::<2>::from_data(tower.forward(set.images(side, &plain)).into_data(), &device)
    };
    let embedded = EmbeddingPairBatch {
        first: embed(|p| p.anchor),
        second: embed(|p| p.other),
        targets: targets_tensor(&set.labels(), &device),
    };
    let mut head = SiameseHead::new(8, &device);
    let mut optimizer = adam_optimizer();
    let mut losses = Vec::new();
    for _ in 0..40 {
        let (updated, outcome) = pollster::block_on(train_head_step(
            head,
            &mut optimizer,
            embedded.clone(),
            5e-2,
        ));
        head = updated;
        losses.push(outcome.unwrap().loss);
    }
    assert!(losses[39] < losses[0], "{losses:?}");
}

// ---------------------------------------------------------------------------------------------
// Fine-tune on LFW

/// `../shared/data/lfw`, with George_W_Bush and people G–L.
fn lfw() -> PathBuf {
    shared_data(&["lfw/George_W_Bush"]).join("lfw")
}

#[test]
fn fine_tune_on_lfw_reaches_095_precision_and_recall() {
    let lfw = lfw();
    let started = std::time::Instant::now();
    // The user: George_W_Bush (anchors and positives are different photos). Negatives: one
    // photo each of other people G–L, none of whom the impostor model (A–F) saw.
    let user = sorted_entries(&lfw.join("George_W_Bush"));
    let anchors = &user[..30];
    let positives = &user[30..60];
    let others: Vec<PathBuf> = sorted_entries(&lfw)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let first = name.chars().next().unwrap();
            ('G'..='L').contains(&first) && name != "George_W_Bush"
        })
        .collect();
    // Every 15th person: a spread over G–L, deterministic.
    let negatives: Vec<PathBuf> = others
        .iter()
        .step_by(15)
        .take(40)
        .map(|dir| sorted_entries(dir)[0].clone())
        .collect();
    assert_eq!(negatives.len(), 40);

    let device = Device::flex();
    let weights = model_file(face_resnet::WEIGHTS_PATH);
    let tower = FaceResNet::from_bytes(&weights, &device).unwrap();
    let embed = |paths: &[PathBuf]| {
        let faces: Vec<_> = paths.iter().map(|p| load_face(p).unwrap()).collect();
        pollster::block_on(embed_faces(&tower, &faces, 16, &device)).unwrap()
    };
    let impostor_model =
        load_impostor_model(&repo().join(IMPOSTOR_MODEL_PATH)).unwrap_or_else(|e| {
            panic!("{IMPOSTOR_MODEL_PATH} is missing or broken ({e}); see models/IMPOSTORS.md")
        });
    let inputs = FineTuneInputs {
        anchors: embed(anchors),
        positives: embed(positives),
        negatives: embed(&negatives),
        impostors: impostor_model.sample(40, 1),
        start: None,
    };
    let embedded = started.elapsed();

    let mut settings = RunSettings::fine_tune();
    settings.training.seed = 2024;
    // 30 anchors × 30 positives and 30 × 80 negatives allow many more pairs than the
    // tutorial's zip (30 per class); fresh combinations each cycle.
    settings.training.pairs_per_class = Some(200);
    let mut trainer = fine_tune_trainer(&inputs, settings).unwrap();
    let reason = run_silently(&mut trainer);
    let report = pollster::block_on(trainer.final_report()).unwrap();
    let trained = started.elapsed() - embedded;
    println!(
        "LFW fine-tune: {} train / {} test pairs, {:?} after {} epochs; test precision {:.3} \
         recall {:.3} AUC {:.4} EER {:.3}; embedding {:.1} s, training {:.1} s; policy {:?}",
        trainer.split().train.len(),
        trainer.split().test.len(),
        reason,
        report.history.len(),
        report.evaluation.precision,
        report.evaluation.recall,
        report.evaluation.auc,
        report.evaluation.eer.rate,
        embedded.as_secs_f64(),
        trained.as_secs_f64(),
        report.policy.map(|p| p.policy),
    );
    assert_precision_and_recall(&report, 0.95);
}

// ---------------------------------------------------------------------------------------------
// wgpu natively

/// Built with the default feature `webgpu`; `cargo xtask test` tests WebGPU in the browser.
#[cfg(feature = "webgpu")]
mod wgpu_native {
    use super::gpu::gpu;
    use super::*;

    /// On wgpu the checkpoint is built from async reads only (module record rebuilt on the CPU,
    /// optimiser moments prefetched), the optimiser state is reloaded on the CPU and moved to the
    /// GPU by the next step, and the resumed run lands on the uninterrupted run's weights.
    #[test]
    fn classic_checkpoint_on_wgpu_resumes_to_the_same_weights() {
        let Some(gpu) = gpu() else { return };
        let device = gpu.autodiff();
        let network = Siamese::new(TinyTower::new(&device), &device);
        let trainer = |network| classic_on(network, device.clone(), 2);
        let mut straight = trainer(network.clone());
        run_silently(&mut straight);

        let control = RunControl::new(no_clock);
        let mut first = trainer(network.clone());
        let steps_per_epoch = first.split().train.len().div_ceil(8);
        let mut recorder = Recorder::cancelling_after(steps_per_epoch, &control);
        run(&mut first, &control, &mut recorder);
        let checkpoint = recorder.last_checkpoint();
        let fresh = Siamese::new(TinyTower::new(&device), &device);
        let mut resumed = Trainer::resume(
            trainer(fresh).into_model(),
            straight.split().clone(),
            &checkpoint,
        )
        .unwrap();
        run_silently(&mut resumed);
        let (a, b) = (
            parameters(resumed.model().network()),
            parameters(straight.model().network()),
        );
        for (x, y) in a.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
        }
    }
}
