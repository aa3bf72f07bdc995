//! The trained model as a file: what the CLI writes and the page stores.

use super::run::{MODEL_TENSOR, RunError, blob, blob_spec};
use crate::store::validate::{ModelFile, TensorDType, TensorSpec};
use crate::verify::policy::VerificationPolicy;

/// Names of the parts a trained model file adds to the model record.
const POLICY_TENSOR: &str = "policy";
const SUMMARY_TENSOR: &str = "summary";

/// A trained model as the CLI writes it and the page stores it: the module record, the
/// calibrated policy and a JSON summary (mode, settings, metrics), in one model file.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedModel {
    /// [`FINE_TUNE_TOWER_KIND`](super::run::FINE_TUNE_TOWER_KIND) or
    /// [`CLASSIC_TOWER_KIND`](super::run::CLASSIC_TOWER_KIND).
    pub tower_kind: String,
    /// Burn's record of the head (fine-tune) or the whole network (classic).
    pub record: Vec<u8>,
    /// Detection and verification thresholds.
    pub policy: VerificationPolicy,
    /// Free-form JSON: mode, settings, metrics.
    pub summary: serde_json::Value,
}

impl TrainedModel {
    /// Encodes as a model file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let summary = serde_json::to_vec(&self.summary).expect("JSON values always serialise");
        let policy: Vec<u8> = [
            self.policy.detection.value(),
            self.policy.verification.value(),
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
        let specs = vec![
            blob_spec(MODEL_TENSOR, &self.record),
            TensorSpec {
                name: POLICY_TENSOR.into(),
                shape: vec![2],
                dtype: TensorDType::F32,
            },
            blob_spec(SUMMARY_TENSOR, &summary),
        ];
        let payload = [self.record.as_slice(), &policy, &summary].concat();
        ModelFile::new(self.tower_kind.clone(), specs, payload)
            .expect("parts always fit their declared sizes")
            .encode()
    }

    /// Decodes and checks a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RunError> {
        let file = ModelFile::decode(bytes)?;
        let policy = blob(&file, POLICY_TENSOR)?;
        let value =
            |i: usize| f32::from_le_bytes(policy[4 * i..4 * i + 4].try_into().expect("4 bytes"));
        let policy = VerificationPolicy::from_values(value(0), value(1))
            .map_err(|e| RunError::CheckpointMismatch(e.to_string()))?;
        Ok(Self {
            tower_kind: file.header.tower_kind.clone(),
            record: blob(&file, MODEL_TENSOR)?.to_vec(),
            policy,
            summary: serde_json::from_slice(blob(&file, SUMMARY_TENSOR)?)
                .map_err(|e| RunError::CheckpointMismatch(format!("unreadable summary: {e}")))?,
        })
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::train::run::FINE_TUNE_TOWER_KIND;

    #[test]
    fn trained_model_files_round_trip() {
        let model = TrainedModel {
            tower_kind: FINE_TUNE_TOWER_KIND.into(),
            record: vec![1, 2, 3],
            policy: VerificationPolicy::from_values(0.4, 0.6).unwrap(),
            summary: serde_json::json!({"mode": "fine_tune"}),
        };
        assert_eq!(TrainedModel::from_bytes(&model.to_bytes()).unwrap(), model);
    }
}
