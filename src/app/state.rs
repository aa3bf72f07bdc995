//! What the page shows of a profile: its photos, model, latest run, checkpoint and settings.

use serde::{Deserialize, Serialize};

use crate::store::{Millis, ModelSummary, Store, TrainingMode, TrainingRun};

use super::{AppError, ImageSummary};

/// The id of the profile made when none exists yet.
pub const DEFAULT_PROFILE_ID: &str = "default";

/// A checkpoint's position, without its (large) weights: "resume from epoch 3".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointSummary {
    pub run_id: String,
    pub mode: Option<TrainingMode>,
    pub epoch: u32,
    pub position: u64,
    pub created: Millis,
}

/// Everything the page draws for one profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    pub profiles: Vec<crate::store::Profile>,
    pub profile: crate::store::Profile,
    pub settings: crate::store::Settings,
    pub images: Vec<ImageSummary>,
    pub model: Option<ModelSummary>,
    /// The latest run with its per-epoch history, for the charts.
    pub latest_run: Option<TrainingRun>,
    pub checkpoint: Option<CheckpointSummary>,
    // No storage usage here: measuring it reads every stored payload (a third of a warm start's
    // profile read), so the page asks for it apart (`Store::usage`), after start-up.
}

/// Reads the state of `profile` (or of the first profile, creating one when there is none).
pub async fn profile_state<S: Store>(
    store: &S,
    profile: Option<&str>,
) -> Result<ProfileState, AppError> {
    let mut profiles = store.list_profiles().await?;
    if profiles.is_empty() {
        let first = crate::store::Profile {
            id: DEFAULT_PROFILE_ID.into(),
            name: "Me".into(),
        };
        store.put_profile(&first).await?;
        profiles.push(first);
    }
    let profile = profile
        .and_then(|id| profiles.iter().find(|p| p.id == id))
        .unwrap_or(&profiles[0])
        .clone();
    let images = store
        .list_images(&profile.id, None)
        .await?
        .iter()
        .map(ImageSummary::of)
        .collect();
    let model = match store.active_model_id(&profile.id).await? {
        Some(id) => store
            .list_models(&profile.id)
            .await?
            .into_iter()
            .find(|m| m.meta.id == id),
        None => None,
    };
    let runs = store.list_runs(&profile.id).await?;
    let latest_run = runs.into_iter().max_by_key(|r| r.started);
    let checkpoint = match store.latest_checkpoint(&profile.id).await? {
        Some(c) => {
            let mode = store.get_run(&c.meta.run_id).await?.map(|r| r.mode);
            Some(CheckpointSummary {
                run_id: c.meta.run_id,
                mode,
                epoch: c.meta.epoch,
                position: c.meta.position,
                created: c.meta.created,
            })
        }
        None => None,
    };
    Ok(ProfileState {
        profiles,
        profile,
        settings: store.settings().await?,
        images,
        model,
        latest_run,
        checkpoint,
    })
}
