//! Classic mode: a whole [`Siamese`] network trained on images, as in the tutorial.

use burn::prelude::*;

use super::optimiser::ModuleAndOptimiser;
use super::pairs::LabelledPair;
use super::run::{CLASSIC_TOWER_KIND, PairModel, RunError, RunSettings, Trainer, table_and_split};
use super::step::{PairBatch, StepOutcome, evaluate_batch, train_step};
use crate::model::siamese::Siamese;
use crate::model::tower::{EmbeddingTower, ImageShape};
use crate::vision::frame::Frame;

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
    training: ModuleAndOptimiser<Siamese<T>>,
    kind: String,
}

impl<T: EmbeddingTower> SiameseModel<T> {
    /// Trains `model` (already on `device`, an autodiff device) on `table`'s images.
    pub fn new(model: Siamese<T>, table: ImageTable, device: Device, kind: &str) -> Self {
        Self {
            device,
            table,
            training: ModuleAndOptimiser::new(model),
            kind: kind.to_owned(),
        }
    }

    /// The network being trained.
    pub fn network(&self) -> &Siamese<T> {
        self.training.module()
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
    type Module = Siamese<T>;

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
        self.training
            .step(async |model, optimizer| train_step(model, optimizer, batch, learning_rate).await)
            .await
    }

    async fn evaluate_batch(&self, pairs: &[LabelledPair<usize>]) -> Result<StepOutcome, RunError> {
        let plain = self.device.clone().without_autodiff();
        let inference = self.network().valid();
        Ok(evaluate_batch(&inference, self.batch(pairs, &plain)).await?)
    }

    fn training(&self) -> &ModuleAndOptimiser<Siamese<T>> {
        &self.training
    }

    fn training_mut(&mut self) -> &mut ModuleAndOptimiser<Siamese<T>> {
        &mut self.training
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
