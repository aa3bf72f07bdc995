//! The siamese network: one tower applied to both images (shared weights), the element-wise L1
//! distance of the two embeddings, and a single sigmoid unit that reads "same person" off it.
//!
//! The head is its own module, [`SiameseHead`], so fine-tune mode can train it alone on
//! embeddings computed once by a frozen tower, and verification can score one probe against
//! many cached reference embeddings in a single batched operation.

use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use super::tower::EmbeddingTower;

/// Dense(dim → 1) + sigmoid over `|e1 − e2|`: the tutorial's `L1Dist` layer and classifier.
#[derive(Module, Debug)]
pub struct SiameseHead {
    /// One weight per embedding dimension and a bias.
    pub classifier: Linear,
}

impl SiameseHead {
    /// A head for embeddings of length `embedding_dim`, initialised like Keras' `Dense`
    /// (Glorot-uniform weights, zero bias) as in the tutorial.
    pub fn new(embedding_dim: usize, device: &Device) -> Self {
        let mut classifier = LinearConfig::new(embedding_dim, 1)
            .with_initializer(Initializer::XavierUniform { gain: 1.0 })
            .init(device);
        classifier.bias = Some(burn::module::Param::from_tensor(Tensor::zeros([1], device)));
        Self { classifier }
    }

    /// Length of the embeddings the head accepts.
    pub fn embedding_dim(&self) -> usize {
        self.classifier.weight.dims()[0]
    }

    /// Probability that each pair of embeddings shows the same person.
    ///
    /// - `first`, `second`: `[B, D]`.
    /// - returns `[B]`.
    pub fn forward(&self, first: Tensor<2>, second: Tensor<2>) -> Tensor<1> {
        let distance = (first - second).abs();
        sigmoid(self.classifier.forward(distance)).squeeze_dim(1)
    }

    /// Scores one probe embedding against `N` reference embeddings at once.
    ///
    /// - `probe`: `[1, D]` (or `[D]` unsqueezed by the caller).
    /// - `references`: `[N, D]`, computed once and cached.
    /// - returns `[N]`: the probability for each reference.
    pub fn score_against_references(&self, probe: Tensor<2>, references: Tensor<2>) -> Tensor<1> {
        let [reference_count, dim] = references.dims();
        assert_eq!(
            probe.dims(),
            [1, dim],
            "the probe must be one embedding of the references' length"
        );
        self.forward(probe.expand([reference_count, dim]), references)
    }
}

/// A siamese network over any [`EmbeddingTower`].
#[derive(Module, Debug)]
pub struct Siamese<T: EmbeddingTower> {
    /// The embedding network, applied to both images with the same weights.
    pub tower: T,
    /// Distance layer and classifier.
    pub head: SiameseHead,
}

impl<T: EmbeddingTower> Siamese<T> {
    /// Puts a head on `tower`.
    pub fn new(tower: T, device: &Device) -> Self {
        let head = SiameseHead::new(tower.embedding_dim(), device);
        Self { tower, head }
    }

    /// Embeds a batch of images with the shared tower: `[B, C, H, W]` → `[B, D]`.
    pub fn embed(&self, images: Tensor<4>) -> Tensor<2> {
        self.tower.forward(images)
    }

    /// Probability that each pair of images shows the same person.
    ///
    /// - `first`, `second`: `[B, C, H, W]`.
    /// - returns `[B]`.
    ///
    /// The two sides go through the tower separately rather than concatenated: the tower's
    /// largest activation then stays at `B` images, which matters on WebGPU's buffer limits.
    pub fn forward(&self, first: Tensor<4>, second: Tensor<4>) -> Tensor<1> {
        let first = self.embed(first);
        let second = self.embed(second);
        self.head.forward(first, second)
    }

    /// Scores one probe image against `N` cached reference embeddings: the probe is embedded
    /// once and compared with every reference in one batched operation (the tutorial re-ran
    /// the whole network for each of its 50 pairs).
    ///
    /// - `probe`: `[1, C, H, W]`.
    /// - `references`: `[N, D]`, from [`embed`](Self::embed).
    /// - returns `[N]`.
    pub fn score_against_references(&self, probe: Tensor<4>, references: Tensor<2>) -> Tensor<1> {
        let probe = self.embed(probe);
        self.head.score_against_references(probe, references)
    }
}

/// A cheap siamese network for the tests of the modules that use one.
#[cfg(test)]
pub(crate) mod test_tower {
    use super::*;
    use crate::model::tower::ImageShape;
    use burn::nn::conv::{Conv2d, Conv2dConfig};
    use burn::tensor::Distribution;

    /// One 3×3 convolution and a linear projection to 5 dimensions, on 1×6×6 images.
    #[derive(Module, Debug)]
    pub struct PoolTower {
        conv: Conv2d,
        projection: Linear,
    }

    impl PoolTower {
        pub fn new(device: &Device) -> Self {
            Self {
                conv: Conv2dConfig::new([1, 2], [3, 3]).init(device),
                projection: LinearConfig::new(2 * 4 * 4, 5).init(device),
            }
        }
    }

    impl EmbeddingTower for PoolTower {
        fn forward(&self, images: Tensor<4>) -> Tensor<2> {
            self.projection
                .forward(self.conv.forward(images).flatten(1, 3))
        }
        fn embedding_dim(&self) -> usize {
            5
        }
        fn input_size(&self) -> ImageShape {
            ImageShape::new(1, 6, 6)
        }
    }

    /// A network of [`PoolTower`]s on the CPU, its weights drawn from `seed`.
    pub fn seeded_pool_siamese(seed: u64) -> (Siamese<PoolTower>, Device) {
        let device = Device::flex();
        device.seed(seed);
        (Siamese::new(PoolTower::new(&device), &device), device)
    }

    /// `count` random images of [`PoolTower`]'s input size.
    pub fn random_images(count: usize, device: &Device) -> Tensor<4> {
        Tensor::<4>::random([count, 1, 6, 6], Distribution::Default, device)
    }
}

#[cfg(test)]
mod tests {
    use super::test_tower::*;
    use super::*;
    use crate::model::koch::KochTowerConfig;

    #[test]
    fn koch_siamese_adds_one_weight_per_embedding_dimension_and_a_bias() {
        let device = Device::flex();
        let model = Siamese::new(KochTowerConfig::new().init(&device), &device);
        assert_eq!(model.num_params(), 38_964_545);
        assert_eq!(model.head.num_params(), 4_097);
        assert_eq!(model.head.embedding_dim(), 4096);
    }

    #[test]
    fn identical_images_give_the_same_score_in_both_orders_and_shapes_are_per_pair() {
        let (model, device) = seeded_pool_siamese(3);
        let first = random_images(4, &device);
        let second = random_images(4, &device);
        let forward = model.forward(first.clone(), second.clone());
        let backward = model.forward(second, first);
        assert_eq!(forward.dims(), [4]);
        let asymmetry: f32 = (forward - backward).abs().max().into_scalar::<f32>();
        assert!(
            asymmetry < 1e-6,
            "L1 distance is symmetric, got {asymmetry}"
        );
    }

    #[test]
    fn batched_reference_scores_equal_pairwise_scores() {
        let (model, device) = seeded_pool_siamese(5);
        let probe = random_images(1, &device);
        let references = random_images(7, &device);

        let cached = model.embed(references.clone());
        let batched = model.score_against_references(probe.clone(), cached);
        assert_eq!(batched.dims(), [7]);

        let pairwise = model.forward(probe.expand([7, 1, 6, 6]), references);
        let difference: f32 = (batched - pairwise).abs().max().into_scalar::<f32>();
        assert!(difference < 1e-6, "difference {difference}");
    }
}
