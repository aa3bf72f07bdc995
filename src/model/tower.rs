//! The part of a siamese network that turns one face image into one embedding.
//!
//! The siamese head only needs embeddings, so it is written against this trait: the tutorial's
//! [`KochTower`](super::koch::KochTower) trained from scratch and a pretrained tower (fine-tune
//! mode) are interchangeable.

use burn::module::ModuleDisplay;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The shape of one image a tower accepts, in Burn's channels-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (3 for RGB).
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
}

impl ImageShape {
    /// An image shape from its channels, height and width.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// The same shape as a `[channels, height, width]` array.
    pub const fn as_array(self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }

    /// Number of values in one image of this shape.
    pub const fn num_elements(self) -> usize {
        self.channels * self.height * self.width
    }
}

/// A network that maps a batch of images to a batch of embedding vectors.
///
/// Implementations must be deterministic in inference mode: verification caches the embeddings
/// of the reference images and compares new probes against that cache. `#[derive(Module)]`
/// provides both supertraits (`ModuleDisplay` is what `Siamese<T>`'s derived `Module` needs).
pub trait EmbeddingTower: Module + ModuleDisplay {
    /// Embeds a batch of images.
    ///
    /// - `images`: `[batch, channels, height, width]`, matching [`input_size`](Self::input_size).
    /// - returns `[batch, embedding_dim]`.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;

    /// Length of one embedding vector.
    fn embedding_dim(&self) -> usize;

    /// The image shape the tower expects.
    fn input_size(&self) -> ImageShape;
}
