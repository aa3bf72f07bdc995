//! Messages between the page (main thread) and the worker that owns the Burn device.
//!
//! Serde enums, carried by `postMessage` through serde-wasm-bindgen. Errors cross this boundary
//! as user-facing strings; inside the core they stay typed.

use serde::{Deserialize, Serialize};

use crate::backend::{BackendPreference, BackendReport};
use crate::selfcheck::TrainingCheck;

/// From the page to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WorkerRequest {
    /// Choose the device (WebGPU after a self-test, or the CPU). Answered by `Ready`.
    Init { preference: BackendPreference },
    /// Run a few training steps on the chosen device. Answered by `TrainingChecked`.
    CheckTraining { steps: usize },
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
}
