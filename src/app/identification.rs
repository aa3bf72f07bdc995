//! "Who is this?": a probe against every person enrolled on the device (1:N). Each person
//! decides with their own model (a trained one, or the default model) under the tutorial's
//! rule; the answer is the person verified with the largest fraction of matching photos, or
//! nobody enrolled here.

use serde::{Deserialize, Serialize};

use crate::pipeline::FacePipeline;
use crate::store::Profile;
use crate::verify::policy::{VerificationPolicy, VerificationResult};
use crate::vision::frame::Frame;
use crate::vision::quality::FrameCheck;

use super::AppError;
use super::capture::examine_frame;
use super::verification::{Probe, Verifier};

/// One enrolled person's decision on the probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub profile: Profile,
    pub result: VerificationResult,
    /// The model that decided (`default` for the default model).
    pub model_id: String,
}

impl Candidate {
    fn best_score(&self) -> f32 {
        self.result.scores.iter().copied().fold(f32::MIN, f32::max)
    }
}

/// The answer to "who is this?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IdentifyOutcome {
    NoFace {
        check: FrameCheck,
    },
    /// `candidates` best first; `identified` is the first when that one is verified, and
    /// `None` means nobody enrolled here.
    Decision {
        check: FrameCheck,
        candidates: Vec<Candidate>,
        identified: Option<Profile>,
    },
}

/// Ranks candidates: verified ones first, then by the fraction of matching photos, then by
/// the best single score.
fn rank(candidates: &mut [Candidate]) {
    candidates.sort_by(|a, b| {
        (b.result.verified, b.result.fraction)
            .partial_cmp(&(a.result.verified, a.result.fraction))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.best_score().total_cmp(&a.best_score()))
    });
}

/// Identifies the face in `frame` among `people` (each with their loaded verifier); `saved`
/// are the saved thresholds a trained model decides with.
pub async fn identify_frame(
    pipeline: &FacePipeline,
    people: &[(Profile, &Verifier)],
    frame: &Frame,
    saved: VerificationPolicy,
) -> Result<IdentifyOutcome, AppError> {
    let (check, aligned) = examine_frame(pipeline, frame).await?;
    let Some(aligned) = aligned else {
        return Ok(IdentifyOutcome::NoFace { check });
    };
    let mut probe = Probe::new(&aligned);
    let mut candidates = Vec::with_capacity(people.len());
    for (profile, verifier) in people {
        let result = verifier
            .decide(pipeline, &mut probe, &verifier.policy(saved))
            .await?;
        candidates.push(Candidate {
            profile: profile.clone(),
            result,
            model_id: verifier.model_id.clone(),
        });
    }
    rank(&mut candidates);
    let identified = candidates
        .first()
        .filter(|c| c.result.verified)
        .map(|c| c.profile.clone());
    Ok(IdentifyOutcome::Decision {
        check,
        candidates,
        identified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(id: &str, verified: bool, fraction: f32, best: f32) -> Candidate {
        Candidate {
            profile: Profile {
                id: id.into(),
                name: id.into(),
            },
            result: VerificationResult {
                scores: vec![best, 0.0],
                detections: 0,
                reference_count: 2,
                fraction,
                verified,
                policy: VerificationPolicy::default(),
            },
            model_id: "default".into(),
        }
    }

    #[test]
    fn the_verified_person_with_most_matches_comes_first() {
        let mut candidates = vec![
            candidate("close-but-no", false, 0.5, 0.99),
            candidate("some", true, 0.6, 0.8),
            candidate("most", true, 0.9, 0.7),
            candidate("tie-lower-score", true, 0.9, 0.6),
        ];
        rank(&mut candidates);
        let order: Vec<&str> = candidates.iter().map(|c| c.profile.id.as_str()).collect();
        assert_eq!(order, ["most", "tie-lower-score", "some", "close-but-no"]);
    }
}
