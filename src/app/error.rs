//! Why a use case or a request failed: one error for the app, worded for the person at the
//! boundary by [`AppError::user_message`].

use thiserror::Error;

use crate::pipeline::PipelineError;
use crate::store::StoreError;
use crate::store::archive::ArchiveError;
use crate::train::run::RunError;
use crate::verify::calibration::CalibrationError;
use crate::verify::policy::{ThresholdError, VerificationError};
use crate::vision::frame::FrameError;
use crate::vision::mesh::MeshError;

use super::MAX_PROFILE_NAME;

/// Why a use case or a request failed. [`AppError::user_message`] is what the page shows.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Training(#[from] RunError),
    #[error(transparent)]
    Verification(#[from] VerificationError),
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("the thresholds could not be calibrated: {0}")]
    Calibration(#[from] CalibrationError),
    #[error("{0}")]
    Image(String),
    #[error("training needs at least {needed} {role} photos of this profile, and it has {found}")]
    NotEnoughPhotos {
        role: &'static str,
        needed: usize,
        found: usize,
    },
    #[error(
        "classic mode trains on other people's faces too: import or capture at least {needed} negatives (it has {found})"
    )]
    NotEnoughNegatives { needed: usize, found: usize },
    #[error(
        "this GPU cannot hold the classic (Koch) network: {0}. Choose the CPU engine in the settings, or fine-tune mode"
    )]
    DeviceTooSmall(String),
    #[error("the stored model was made by a different version of the app ({0}); train again")]
    IncompatibleModel(String),
    #[error("this file is not a faceverify model ({0})")]
    NotAModel(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(
        "the {file} could not be downloaded ({detail}). Check the connection and reload; after \
         one complete load the app also works offline"
    )]
    Download { file: &'static str, detail: String },
    #[error("the app's model files are damaged ({0}). Reload the page to download them again")]
    DamagedNetworks(PipelineError),
    #[error("the app's impostor model is damaged ({0}). Reload the page")]
    DamagedImpostors(String),
    #[error("the camera picture could not be read: {0}")]
    Camera(#[from] FrameError),
    #[error("the photo could not be analysed: {0}")]
    Analysis(PipelineError),
    #[error("the training self-check failed on {backend}: {detail}")]
    SelfCheck {
        backend: &'static str,
        detail: String,
    },
    #[error("a profile needs a name of 1 to {MAX_PROFILE_NAME} characters")]
    ProfileName,
    #[error("that photo no longer exists")]
    PhotoGone,
    #[error("no training is running")]
    NoTraining,
    #[error("thresholds must lie between 0 and 1: {0}")]
    Thresholds(ThresholdError),
    #[error("the saved thresholds are invalid: {0}")]
    SavedThresholds(ThresholdError),
    #[error("the face mesh network's file is damaged ({0}). Reload the page to download it again")]
    DamagedMesh(String),
    #[error("no liveness check is running: start verifying again")]
    NoLiveCheck,
}

impl AppError {
    /// The error as a sentence for the person using the app: capitalised, one final stop.
    pub fn user_message(&self) -> String {
        let text = self.to_string();
        let mut chars = text.chars();
        match chars.next() {
            Some(first) => format!(
                "{}{}.",
                first.to_uppercase(),
                chars.as_str().trim_end().trim_end_matches('.')
            ),
            None => "Something went wrong.".into(),
        }
    }
}
