//! Verification: a profile's model and its reference photos, loaded once, decide on a probe
//! with the tutorial's rule; and model files imported as a profile's model.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::face_resnet::EMBEDDING_DIM;
use crate::model::koch::{
    DeviceBufferLimits, KOCH_INPUT, KochTower, KochTowerConfig, check_koch_fits,
};
use crate::model::siamese::{Siamese, SiameseHead};
use crate::pipeline::FacePipeline;
use crate::store::validate;
use crate::store::{
    ImageId, ImageRole, Millis, ModelId, ModelMeta, ModelSummary, Store, StoredImage, StoredModel,
};
use crate::train::default_head::{DEFAULT_MODEL_ID, DefaultHead};
use crate::train::run::{
    CLASSIC_TOWER_KIND, FINE_TUNE_TOWER_KIND, ImageTable, TrainedModel, load_module_record,
};
use crate::verify::policy::{
    VerificationError, VerificationPolicy, VerificationResult, read_scores,
};
use crate::vision::frame::Frame;
use crate::vision::quality::FrameCheck;

use super::adaptation::Adaptation;
use super::capture::examine_frame;
use super::descriptors::image_descriptors;
use super::training::crops;
use super::{
    AppError, MAX_ADAPTIVE_REFERENCES, MAX_REFERENCES, ModelFileSummary, ModelMetrics, YieldFn,
};

/// The model a profile verifies with, loaded, with its references embedded once: its active
/// model, or, before it has one, the default model (so one photo is enough to verify).
pub struct Verifier {
    pub model_id: String,
    /// The thresholds the model's calibration proposed (the sliders mark them).
    pub calibrated: VerificationPolicy,
    network: VerifierNetwork,
    references: Tensor<2>,
    pub reference_ids: Vec<ImageId>,
    /// The first this many references are enrolled photos; the rest are adaptive.
    pub enrolled_references: usize,
}

enum VerifierNetwork {
    FineTune(SiameseHead),
    Classic(Box<Siamese<KochTower>>),
}

/// The photos a probe is compared with: the enrolled ones first (the profile's verification
/// photos, or, when it has none, its most recent anchors and positives: the tutorial copied
/// positives there by hand), then its adaptive photos, newest first.
pub async fn reference_images<S: Store>(
    store: &S,
    profile: &str,
) -> Result<Vec<StoredImage>, AppError> {
    let mut chosen = store
        .list_images(profile, Some(ImageRole::Verification))
        .await?;
    if chosen.is_empty() {
        chosen = store
            .list_images(profile, Some(ImageRole::Positive))
            .await?;
        chosen.extend(store.list_images(profile, Some(ImageRole::Anchor)).await?);
        chosen.sort_by_key(|i| std::cmp::Reverse(i.meta.created));
    }
    chosen.truncate(MAX_REFERENCES);
    if chosen.is_empty() {
        // Adaptive photos extend an enrolment; alone they are none.
        return Ok(chosen);
    }
    let mut adaptive = store
        .list_images(profile, Some(ImageRole::Adaptive))
        .await?;
    adaptive.sort_by_key(|i| std::cmp::Reverse(i.meta.created));
    adaptive.truncate(MAX_ADAPTIVE_REFERENCES);
    chosen.extend(adaptive);
    Ok(chosen)
}

impl Verifier {
    /// Loads `profile`'s active model (or the default model) and its references' embeddings
    /// on `device` (fine-tune mode reads the stored descriptors; the Koch tower is trained, so
    /// it embeds them).
    pub async fn load<S: Store>(
        store: &S,
        pipeline: &FacePipeline,
        profile: &str,
        device: &Device,
        device_limits: Option<&DeviceBufferLimits>,
        yield_now: YieldFn,
    ) -> Result<Self, AppError> {
        let references = reference_images(store, profile).await?;
        if references.is_empty() {
            return Err(VerificationError::NoReferences.into());
        }
        let Some(stored) = store.active_model(profile).await? else {
            return Self::with_default_model(store, pipeline, &references, device, yield_now).await;
        };
        let model = TrainedModel::from_bytes(&stored.bytes)
            .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
        let reference_ids = references.iter().map(|i| i.meta.id.clone()).collect();
        let (network, embeddings) = match model.tower_kind.as_str() {
            FINE_TUNE_TOWER_KIND => {
                let head =
                    load_module_record(SiameseHead::new(EMBEDDING_DIM, device), &model.record)
                        .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
                let rows = image_descriptors(store, pipeline, &references, yield_now).await?;
                let count = rows.len();
                let table = Tensor::from_data(
                    TensorData::new(rows.concat(), [count, EMBEDDING_DIM]),
                    device,
                );
                (VerifierNetwork::FineTune(head), table)
            }
            CLASSIC_TOWER_KIND => {
                koch_fits(device_limits, references.len())?;
                let network = load_module_record(
                    Siamese::new(KochTowerConfig::new().init(device), device),
                    &model.record,
                )
                .map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
                let images = koch_batch(&crops(&references, KOCH_INPUT.width as u32)?, device)?;
                let embeddings = network.embed(images);
                (VerifierNetwork::Classic(Box::new(network)), embeddings)
            }
            other => {
                return Err(AppError::IncompatibleModel(format!("a '{other}' network")));
            }
        };
        Ok(Self {
            model_id: stored.meta.id,
            calibrated: model.policy,
            network,
            references: embeddings,
            reference_ids,
            enrolled_references: enrolled_count(&references),
        })
    }

    /// The default model over `references`: what a profile without a trained model verifies
    /// with.
    async fn with_default_model<S: Store>(
        store: &S,
        pipeline: &FacePipeline,
        references: &[StoredImage],
        device: &Device,
        yield_now: YieldFn,
    ) -> Result<Self, AppError> {
        let default =
            DefaultHead::bundled().map_err(|e| AppError::IncompatibleModel(e.to_string()))?;
        let rows = image_descriptors(store, pipeline, references, yield_now).await?;
        let count = rows.len();
        Ok(Self {
            model_id: DEFAULT_MODEL_ID.into(),
            calibrated: default.policy,
            network: VerifierNetwork::FineTune(default.module(device)),
            references: Tensor::from_data(
                TensorData::new(rows.concat(), [count, EMBEDDING_DIM]),
                device,
            ),
            reference_ids: references.iter().map(|i| i.meta.id.clone()).collect(),
            enrolled_references: enrolled_count(references),
        })
    }

    /// Whether this is the default model rather than one trained for the profile.
    pub fn is_default(&self) -> bool {
        self.model_id == DEFAULT_MODEL_ID
    }

    /// The thresholds a decision uses: the saved ones (the page's sliders) for a trained model;
    /// the default model decides with its own calibration, since the saved thresholds were
    /// chosen for another model.
    pub fn policy(&self, saved: VerificationPolicy) -> VerificationPolicy {
        if self.is_default() {
            self.calibrated
        } else {
            saved
        }
    }

    /// N.
    pub fn reference_count(&self) -> usize {
        self.reference_ids.len()
    }

    /// Scores the probe against every reference and applies `policy`.
    pub async fn decide(
        &self,
        pipeline: &FacePipeline,
        probe: &mut Probe<'_>,
        policy: &VerificationPolicy,
    ) -> Result<VerificationResult, AppError> {
        let scores = match &self.network {
            VerifierNetwork::FineTune(head) => {
                let embedding = probe.descriptor(pipeline).await?.to_vec();
                let device = self.references.device();
                let probe =
                    Tensor::from_data(TensorData::new(embedding, [1, EMBEDDING_DIM]), &device);
                head.score_against_references(probe, self.references.clone())
            }
            VerifierNetwork::Classic(network) => {
                let small = image::imageops::resize(
                    &probe.aligned.to_image(),
                    KOCH_INPUT.width as u32,
                    KOCH_INPUT.height as u32,
                    image::imageops::FilterType::Triangle,
                );
                let frame = Frame::from_image(&image::DynamicImage::ImageRgb8(small));
                let probe = koch_batch(std::slice::from_ref(&frame), &self.references.device())?;
                network.score_against_references(probe, self.references.clone())
            }
        };
        Ok(policy.decide(read_scores(scores).await?)?)
    }
}

fn enrolled_count(references: &[StoredImage]) -> usize {
    references
        .iter()
        .filter(|i| i.meta.role != ImageRole::Adaptive)
        .count()
}

/// A probe face as verifiers take it: its aligned 150×150 crop, and the crop's descriptor,
/// computed once however many fine-tune or default models compare it.
pub struct Probe<'a> {
    aligned: &'a Frame,
    descriptor: Option<Vec<f32>>,
}

impl<'a> Probe<'a> {
    pub fn new(aligned: &'a Frame) -> Self {
        Self {
            aligned,
            descriptor: None,
        }
    }

    async fn descriptor(&mut self, pipeline: &FacePipeline) -> Result<&[f32], AppError> {
        let descriptor = match self.descriptor.take() {
            Some(descriptor) => descriptor,
            None => pipeline
                .embed_aligned(std::slice::from_ref(self.aligned))
                .await?
                .pop()
                .expect("one crop in, one embedding out"),
        };
        Ok(self.descriptor.insert(descriptor))
    }
}

/// Refuses, with the reason, a Koch network whose tensors exceed the device's buffer limits
/// (`None`: the CPU backend, which has none): WebGPU would fail validation or lose the device.
pub(super) fn koch_fits(
    limits: Option<&DeviceBufferLimits>,
    images: usize,
) -> Result<(), AppError> {
    match limits {
        Some(limits) => check_koch_fits(limits, images)
            .map(drop)
            .map_err(|e| AppError::DeviceTooSmall(e.to_string())),
        None => Ok(()),
    }
}

fn koch_batch(frames: &[Frame], device: &Device) -> Result<Tensor<4>, AppError> {
    let table = ImageTable::from_frames(frames, KOCH_INPUT)?;
    let [c, h, w] = KOCH_INPUT.as_array();
    Ok(Tensor::from_data(
        TensorData::new(table.images.concat(), [frames.len(), c, h, w]),
        device,
    ))
}

/// A verification attempt: no face is an answer, never a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum VerifyOutcome {
    NoFace {
        check: FrameCheck,
    },
    Decision {
        check: FrameCheck,
        result: VerificationResult,
        /// The thresholds the model's calibration proposed.
        calibrated: VerificationPolicy,
        model_id: String,
        /// Whether the face became an adaptive reference.
        #[serde(default)]
        adaptation: Adaptation,
    },
}

/// Verifies the person in `frame` with `verifier` under `policy`.
pub async fn verify_frame(
    pipeline: &FacePipeline,
    verifier: &Verifier,
    frame: &Frame,
    policy: &VerificationPolicy,
) -> Result<VerifyOutcome, AppError> {
    Ok(verify_keeping_face(pipeline, verifier, frame, policy)
        .await?
        .0)
}

/// [`verify_frame`], also handing back the face's aligned crop (what an adaptive reference
/// keeps).
pub async fn verify_keeping_face(
    pipeline: &FacePipeline,
    verifier: &Verifier,
    frame: &Frame,
    policy: &VerificationPolicy,
) -> Result<(VerifyOutcome, Option<Frame>), AppError> {
    let (check, aligned) = examine_frame(pipeline, frame).await?;
    let Some(aligned) = aligned else {
        return Ok((VerifyOutcome::NoFace { check }, None));
    };
    let result = verifier
        .decide(pipeline, &mut Probe::new(&aligned), policy)
        .await?;
    let outcome = VerifyOutcome::Decision {
        check,
        result,
        calibrated: verifier.calibrated,
        model_id: verifier.model_id.clone(),
        adaptation: Adaptation::Off,
    };
    Ok((outcome, Some(aligned)))
}

/// Stores a model file (the bytes of a profile's model, as `faceverify train --out` writes
/// them) as `profile`'s active model, with the settings and metrics it carries.
pub async fn import_model<S: Store>(
    store: &S,
    profile: &str,
    bytes: Vec<u8>,
    model_id: ModelId,
    now: Millis,
) -> Result<ModelSummary, AppError> {
    let model = TrainedModel::from_bytes(&bytes).map_err(|e| AppError::NotAModel(e.to_string()))?;
    let summary = ModelFileSummary::of(&model);
    // The thresholds in the file are the ones it verifies with.
    let metrics = ModelMetrics {
        policy: model.policy,
        ..summary.metrics.unwrap_or_default()
    }
    .to_value();
    let stored = StoredModel {
        meta: ModelMeta {
            id: model_id,
            profile_id: profile.into(),
            tower_kind: model.tower_kind,
            format_version: validate::MODEL_FILE_FORMAT_VERSION,
            created: now,
            training_settings: summary.settings,
            metrics,
        },
        bytes,
    };
    store.replace_active_model(&stored).await?;
    Ok(stored.summary())
}
