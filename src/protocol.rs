//! Messages between the page (main thread) and the worker that owns the Burn device.
//!
//! Serde enums, carried by `postMessage` through serde-wasm-bindgen. Errors cross this boundary
//! as user-facing strings; inside the core they stay typed.

use serde::{Deserialize, Serialize};

use crate::backend::{BackendPreference, BackendReport};
use crate::pipeline::FaceAnalysis;
use crate::selfcheck::TrainingCheck;
use crate::vision::align::CropMode;

/// The pretrained networks' weight files, served beside the app (Trunk copies `models/`).
pub const MODEL_FILES: [ModelFile; 2] = [
    ModelFile {
        name: "face detector",
        path: "models/blazeface.f16.bin",
    },
    ModelFile {
        name: "face descriptor network",
        path: "models/face_resnet.q8.bin",
    },
];

/// One weight file the worker downloads on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelFile {
    /// What a person sees in the progress line.
    pub name: &'static str,
    /// Relative to the app's root.
    pub path: &'static str,
}

/// From the page to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorkerRequest {
    /// Choose the device (WebGPU after a self-test, or the CPU). Answered by `Ready`.
    Init { preference: BackendPreference },
    /// Run a few training steps on the chosen device. Answered by `TrainingChecked`.
    CheckTraining { steps: usize },
    /// Detect, align and embed the largest face of an encoded photo (JPEG/PNG). Loads the
    /// networks on first use (answered by `ModelProgress` messages, then `PhotoAnalysed`).
    AnalysePhoto {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        #[serde(default)]
        crop: CropMode,
    },
}

/// From the worker to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorkerResponse {
    /// The worker's wasm is loaded and it accepts requests.
    Loaded,
    /// The device is chosen.
    Ready { backend: BackendReport },
    /// Result of `CheckTraining`.
    TrainingChecked {
        backend: BackendReport,
        check: TrainingCheck,
    },
    /// Download progress of a model file (`total` is 0 when the server did not say).
    ModelProgress {
        name: String,
        loaded: u64,
        total: u64,
    },
    /// Result of `AnalysePhoto`: no face is a result (`analysis.embedding` is `None`), not an error.
    PhotoAnalysed {
        backend: BackendReport,
        analysis: FaceAnalysis,
    },
    /// A request failed; `message` is for the person.
    Failed { request: String, message: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendKind, BackendReason};

    #[test]
    fn messages_round_trip_through_json_with_readable_tags() {
        let request = WorkerRequest::Init {
            preference: BackendPreference::Webgpu,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"type":"Init","preference":"webgpu"}"#);
        assert_eq!(
            serde_json::from_str::<WorkerRequest>(&json).unwrap(),
            request
        );

        let response = WorkerResponse::Ready {
            backend: BackendReport {
                kind: BackendKind::Cpu,
                reason: BackendReason::NoAdapter {
                    detail: "no adapter".into(),
                },
            },
        };
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            json.contains(r#""type":"Ready""#) && json.contains(r#""reason":"no_adapter""#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<WorkerResponse>(&json).unwrap(),
            response
        );
    }

    #[test]
    fn a_photo_request_defaults_to_the_detector_crop() {
        let request: WorkerRequest =
            serde_json::from_str(r#"{"type":"AnalysePhoto","bytes":[255,216]}"#).unwrap();
        assert_eq!(
            request,
            WorkerRequest::AnalysePhoto {
                bytes: vec![255, 216],
                crop: CropMode::Detect
            }
        );
    }
}
