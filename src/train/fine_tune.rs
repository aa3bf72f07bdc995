//! Fine-tune mode: a [`SiameseHead`] trained on embeddings that the frozen pretrained tower
//! computed once.
//!
//! The head trains on the CPU backend whatever the tower ran on: it has 129 parameters, so a
//! WebGPU dispatch and read-back per step would cost far more than the arithmetic, and its
//! checkpoints then need no GPU read at all.

use burn::module::Param;
use burn::prelude::*;

use super::default_head::DefaultHead;
use super::loss::binary_cross_entropy;
use super::optimiser::ModuleAndOptimiser;
use super::pairs::{LabelledPair, SeededRng};
use super::run::{
    FINE_TUNE_TOWER_KIND, PairModel, RunError, RunSettings, Trainer, table_and_split,
};
use super::step::{EmbeddingPairBatch, StepOutcome, targets_tensor, train_head_step};
use crate::model::face_resnet::{EMBEDDING_DIM, FaceResNet, INPUT_SIZE, input_from_rgb8};
use crate::model::read_f32s;
use crate::model::siamese::SiameseHead;
use crate::vision::frame::Frame;

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
    training: ModuleAndOptimiser<SiameseHead>,
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
            training: ModuleAndOptimiser::new(seeded_head(dim, seed, &device)),
            device,
            table,
            count: embeddings.len(),
        })
    }

    /// Starts from `start`'s weights instead of a seeded initialisation: a head trained on
    /// thousands of pairs of many people knows which dimensions tell faces apart, which a
    /// handful of one person's photos cannot teach from scratch.
    pub fn starting_from(mut self, start: &DefaultHead) -> Self {
        self.training.replace_module(start.module(&self.device));
        self
    }

    /// The head being trained.
    pub fn head(&self) -> &SiameseHead {
        self.training.module()
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
    type Module = SiameseHead;

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
        self.training
            .step(async |head, optimizer| {
                train_head_step(head, optimizer, batch, learning_rate).await
            })
            .await
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

    fn training(&self) -> &ModuleAndOptimiser<SiameseHead> {
        &self.training
    }

    fn training_mut(&mut self) -> &mut ModuleAndOptimiser<SiameseHead> {
        &mut self.training
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

async fn read_floats(tensor: Tensor<1>) -> Result<Vec<f32>, RunError> {
    read_f32s(tensor).await.map_err(RunError::Readback)
}
