//! Messages between the page (main thread) and the worker that owns the Burn device.
//!
//! Serde enums, carried by `postMessage` through serde-wasm-bindgen both ways (bytes as
//! `Uint8Array`s), the one codec at the JS boundary. A request may carry an `id`,
//! which its answer and its progress messages echo. Errors cross this boundary as user-facing
//! strings; inside the core they stay typed.

use std::fmt;

use serde::de::{self, DeserializeOwned, IntoDeserializer};
use serde::{Deserialize, Serialize};

use crate::app::{
    CaptureOutcome, FrameCheck, IdentifyOutcome, ImportReport, LivenessOutcome, NamedFile,
    ProfileState, QualityGate, TrainOutcome, TrainRequest, VerifyOutcome,
};
use crate::backend::{BackendPreference, BackendReport};
use crate::pipeline::FaceAnalysis;
use crate::selfcheck::TrainingCheck;
use crate::store::{ImageRole, ImportMode, Profile, Settings, StorageUsage};
use crate::train::run::TrainingEvent;
use crate::verify::liveness::Action;
use crate::vision::align::CropMode;
use crate::vision::frame::{Frame, FrameError};

/// The pretrained networks' weight files, served beside the app (`cargo xtask dist` copies `models/`).
pub const NETWORK_FILES: [NetworkFile; 4] = [
    NetworkFile {
        name: "face detector",
        path: "models/blazeface.f16.bin",
    },
    NetworkFile {
        name: "face descriptor network",
        path: "models/face_resnet.q8.bin",
    },
    NetworkFile {
        name: "impostor model",
        path: "models/impostors.json",
    },
    NetworkFile {
        name: "face mesh network",
        path: "models/facemesh.f16.bin",
    },
];

/// One weight file the worker downloads on first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkFile {
    /// What a person sees in the progress line.
    pub name: &'static str,
    /// Relative to the app's root.
    pub path: &'static str,
}

impl NetworkFile {
    /// The file's name inside the models folder.
    pub fn file_name(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }
}

/// A named choice (a backend, a crop mode, a training mode) from its name in any case: the
/// names and aliases its serde form accepts, so a command line, the page and a stored setting
/// all name it alike.
pub fn choice_from_str<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, String> {
    let name = text.to_ascii_lowercase();
    T::deserialize(name.as_str().into_deserializer())
        .map_err(|ChoiceError(hint)| format!("unknown {what} '{text}': {hint}"))
}

/// Why a name is not a choice: the names to use instead.
#[derive(Debug)]
struct ChoiceError(String);

impl de::Error for ChoiceError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        ChoiceError(message.to_string())
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        let hint = match expected {
            [.., last] if expected.len() > 1 => {
                let others = expected[..expected.len() - 1].join(", ");
                format!("use {others} or {last}")
            }
            _ => format!("use {}", expected.join(", ")),
        };
        ChoiceError(hint)
    }
}

impl fmt::Display for ChoiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChoiceError {}

/// From the page to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, strum_macros::IntoStaticStr)]
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
    /// The live view: faces and hints for one camera frame. Answered by `FrameChecked`.
    CheckFrame { frame: CameraFrame },
    /// Everything the page shows for a profile (`None`: the first). Answered by `State`.
    LoadState { profile: Option<String> },
    /// Creates or renames a profile. Answered by `State` for it.
    SaveProfile { profile: Profile },
    /// Deletes a profile and all its data. Answered by `State`.
    DeleteProfile { id: String },
    /// Stores the largest face of a camera frame as a photo. Answered by `Captured`.
    Capture {
        profile: String,
        role: ImageRole,
        frame: CameraFrame,
        /// Whether a face the frame checks find fault with is refused (the default).
        #[serde(default)]
        quality: QualityGate,
    },
    /// Stores a model file as the profile's active model, replacing its earlier ones. Answered
    /// by `State`.
    ImportModel {
        profile: String,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Imports photos, folders' photos or zip / tar / tgz archives of photos as one batch.
    /// Answered by `ImportProgress` messages, then `PhotosImported`.
    ImportPhotos {
        profile: String,
        role: ImageRole,
        files: Vec<NamedFile>,
    },
    /// Answered by `State`.
    DeletePhoto { profile: String, id: String },
    /// Deletes every adaptive reference of the profile ("forget what was learned"). Answered by
    /// `State`.
    ForgetAdaptive { profile: String },
    /// Moves a photo to another role (e.g. makes a positive one of the N verification photos).
    /// Answered by `State`.
    SetPhotoRole {
        profile: String,
        id: String,
        role: ImageRole,
    },
    /// Trains the profile's model. Answered by `Training` messages, then `Trained`.
    Train { request: TrainRequest },
    /// Stops a running training at the next step, keeping its checkpoint. Handled at once,
    /// even while a training request is being served.
    CancelTraining,
    /// Verifies the person in a camera frame against the profile's model. Answered by `Verified`.
    Verify { profile: String, frame: CameraFrame },
    /// Starts a verification with liveness for `profile`: a challenge of `actions` (none: 2-3
    /// drawn at random, the default; a fixed list is for tests). Answered by `Liveness` with the
    /// first prompt.
    StartLiveness {
        profile: String,
        #[serde(default)]
        actions: Option<Vec<Action>>,
    },
    /// One camera frame of the running liveness check, taken at `t_ms` (any steady clock).
    /// Answered by `Liveness`: the next prompt, or the decision.
    LivenessFrame { frame: CameraFrame, t_ms: u64 },
    /// "Who is this?": the face in a camera frame against every person enrolled here.
    /// Answered by `Identified`.
    Identify { frame: CameraFrame },
    /// Saves the settings (thresholds, backend, mode). Answered by `State`.
    SaveSettings {
        profile: Option<String>,
        settings: Settings,
    },
    /// Everything as one archive file. Answered by `Exported`.
    Export,
    /// Restores an archive made by `Export`. Answered by `ArchiveImported`.
    ImportArchive {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
        mode: ImportMode,
    },
    /// Deletes the database and the app's caches. Answered by `AllDeleted`.
    DeleteAll,
    /// Measures what is stored, by kind (it reads every payload, so `State` leaves it out).
    /// Answered by `Usage`.
    MeasureUsage,
}

impl WorkerRequest {
    /// The request's type, as `Failed.request` names it.
    pub fn name(&self) -> &'static str {
        self.into()
    }
}

/// A camera frame as the page reads it from a canvas: RGBA, row by row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraFrame {
    pub width: u32,
    pub height: u32,
    #[serde(with = "serde_bytes")]
    pub rgba: Vec<u8>,
}

impl CameraFrame {
    /// The RGB frame the core works on (alpha dropped).
    pub fn to_frame(&self) -> Result<Frame, FrameError> {
        let expected = self.width as usize * self.height as usize * 4;
        if self.rgba.len() != expected {
            return Err(FrameError::WrongLength {
                width: self.width,
                height: self.height,
                expected,
                found: self.rgba.len(),
            });
        }
        let rgb = self
            .rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        Frame::new(self.width, self.height, rgb)
    }
}

/// From the worker to the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorkerResponse {
    /// The worker's wasm is loaded and it accepts requests.
    Loaded,
    /// The device is chosen; `description` is one sentence for the person (which, and why).
    Ready {
        backend: BackendReport,
        description: String,
    },
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
    /// Result of `CheckFrame`.
    FrameChecked { check: FrameCheck },
    /// Result of `LoadState` and of the requests that change what the page shows.
    State { state: Box<ProfileState> },
    /// Result of `Capture`.
    Captured {
        role: ImageRole,
        outcome: CaptureOutcome,
    },
    /// Progress of `ImportPhotos`: photos analysed so far.
    ImportProgress { done: usize, total: usize },
    /// Result of `ImportPhotos`: everything in `report.added` was stored in one transaction.
    PhotosImported { report: ImportReport },
    /// Progress of `Train`.
    Training { event: TrainingEvent },
    /// Result of `Train` (also when cancelled: `outcome.stop` says so).
    Trained { outcome: Box<TrainOutcome> },
    /// Result of `Verify`.
    Verified { outcome: Box<VerifyOutcome> },
    /// Result of `Identify`.
    Identified { outcome: Box<IdentifyOutcome> },
    /// Result of `StartLiveness` and `LivenessFrame`.
    Liveness { outcome: Box<LivenessOutcome> },
    /// Result of `Export`: a tar archive.
    Exported {
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Result of `MeasureUsage`.
    Usage { usage: StorageUsage },
    /// Result of `ImportArchive`: what was written.
    ArchiveImported {
        images: u64,
        models: u64,
        profiles: u64,
    },
    /// Result of `DeleteAll`.
    AllDeleted,
    /// A request failed; `message` is for the person.
    Failed { request: String, message: String },
    /// The worker stopped on an internal error: every request in flight fails with `message`,
    /// and the page must be reloaded.
    Panicked { message: String },
}

impl WorkerResponse {
    /// The answer to a message that is not a request.
    pub fn not_understood(error: impl std::fmt::Display) -> Self {
        WorkerResponse::Failed {
            request: "unknown".into(),
            message: format!("The worker received a message it does not understand: {error}"),
        }
    }

    /// What fails every request in flight when the worker stopped on `error`.
    pub fn panicked(error: impl std::fmt::Display) -> Self {
        WorkerResponse::Panicked {
            message: format!(
                "The app's worker stopped on an internal error ({error}). Reload the page; your \
                 photos and models are kept."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendKind, BackendReason};

    #[test]
    fn a_choice_is_named_by_its_serde_name_or_alias_in_any_case() {
        use crate::eval::NoFaceFallback;
        let backend = |text| choice_from_str::<BackendPreference>("backend", text);
        for (text, preference) in [
            ("Auto", BackendPreference::Auto),
            ("webgpu", BackendPreference::Webgpu),
            ("GPU", BackendPreference::Webgpu),
            ("cpu", BackendPreference::Cpu),
            ("flex", BackendPreference::Cpu),
        ] {
            assert_eq!(backend(text), Ok(preference), "{text}");
        }
        let crop = |text| choice_from_str::<CropMode>("crop mode", text);
        assert_eq!(crop("detect"), Ok(CropMode::Detect));
        assert_eq!(crop("Center"), Ok(CropMode::Centre));
        let fallback = |text| choice_from_str::<NoFaceFallback>("fallback", text);
        assert_eq!(fallback("Centre"), Ok(NoFaceFallback::CentreCrop));
        assert_eq!(fallback("centre-crop"), Ok(NoFaceFallback::CentreCrop));
        assert_eq!(fallback("LFW"), Ok(NoFaceFallback::LfwFraming));
        for (refused, message) in [
            (
                backend("cuda").unwrap_err(),
                "unknown backend 'cuda': use auto, gpu, webgpu, wgpu, cpu or flex",
            ),
            (
                crop("face").unwrap_err(),
                "unknown crop mode 'face': use detect, center or centre",
            ),
            (
                fallback("none").unwrap_err(),
                "unknown fallback 'none': use center, centre, centre-crop, lfw or lfw-framing",
            ),
        ] {
            assert_eq!(refused, message);
        }
        let action: Result<Action, _> = choice_from_str("action", "");
        assert_eq!(
            action.unwrap_err(),
            "unknown action '': use blink, turn_left, turn_right, look_up or open_mouth"
        );
    }

    #[test]
    fn a_request_may_carry_the_id_its_answer_echoes() {
        for (json, request) in [
            (
                r#"{"type":"MeasureUsage","id":7}"#,
                WorkerRequest::MeasureUsage,
            ),
            (
                r#"{"type":"CheckTraining","steps":3,"id":8}"#,
                WorkerRequest::CheckTraining { steps: 3 },
            ),
        ] {
            let parsed: WorkerRequest = serde_json::from_str(json).unwrap();
            assert_eq!(parsed, request);
            assert_eq!(parsed.name(), json[9..].split('"').next().unwrap());
        }
    }

    #[test]
    fn a_capture_is_checked_unless_the_page_says_otherwise() {
        let json = r#"{"type":"Capture","profile":"p","role":"anchor","frame":{"width":0,"height":0,"rgba":[]}}"#;
        let parsed: WorkerRequest = serde_json::from_str(json).unwrap();
        assert!(
            matches!(
                parsed,
                WorkerRequest::Capture {
                    quality: QualityGate::Enforce,
                    ..
                }
            ),
            "{parsed:?}"
        );
    }

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
                threads: 2,
            },
            description: "CPU: no WebGPU".into(),
        };
        let json = serde_json::to_string(&response).unwrap();
        assert!(
            json.contains(r#""type":"Ready""#)
                && json.contains(r#""reason":"no_adapter""#)
                && json.contains(r#""threads":2"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<WorkerResponse>(&json).unwrap(),
            response
        );
    }

    #[test]
    fn a_camera_frame_drops_alpha_and_refuses_a_wrong_size() {
        let frame = CameraFrame {
            width: 2,
            height: 1,
            rgba: vec![1, 2, 3, 255, 4, 5, 6, 255],
        };
        assert_eq!(frame.to_frame().unwrap().pixels(), &[1, 2, 3, 4, 5, 6]);
        let short = CameraFrame {
            rgba: vec![1, 2, 3, 255],
            ..frame
        };
        assert!(short.to_frame().is_err());
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
