//! The app's use cases over any [`Store`](crate::store::Store): check a camera frame, capture
//! or import photos, train a profile's model and verify a probe. One [`Session`] answers the
//! worker's requests with them, and the same code is tested natively on
//! [`MemoryStore`](crate::store::MemoryStore).
//!
//! Photos are kept twice: the photo as JPEG (what the person took, exported and re-analysable)
//! and the aligned 150×150 face crop (what every network reads). Classic mode resizes that crop
//! to the Koch tower's 100×100, so every mode works from the same stored crop.

mod adaptation;
mod calibration;
mod capture;
mod descriptors;
mod error;
mod expand;
mod identification;
mod liveness;
mod session;
mod state;
mod training;
mod verification;

pub use crate::vision::quality::{
    FrameCheck, FrameHint, MIN_BRIGHTNESS, MIN_FACE_FRACTION, MIN_SHARPNESS, frame_hints, sharpness,
};
pub use adaptation::*;
pub use calibration::*;
pub use capture::*;
pub use descriptors::*;
pub use error::AppError;
pub use expand::*;
pub use identification::*;
pub use liveness::*;
pub use session::{Host, MAX_PROFILE_NAME, Session};
pub use state::*;
pub use training::*;
pub use verification::*;

/// Impostor samples added to the negatives of a fine-tune run.
pub const IMPOSTOR_SAMPLES: usize = 300;
/// Most (anchor, other) pairs per class in fine-tune mode: cached embeddings make pairs cheap.
pub const FINE_TUNE_MAX_PAIRS: usize = 400;
/// At most this many references are compared with a probe (the tutorial used 50).
pub const MAX_REFERENCES: usize = 50;
/// JPEG quality of stored photos and crops.
pub(crate) const JPEG_QUALITY: u8 = 92;
