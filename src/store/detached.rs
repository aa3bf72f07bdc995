//! Records whose payloads are kept apart from their metadata: `DirStore`'s manifest refers to
//! files named by their SHA-256, an export archive to its tar entries. `P` is that reference.
//! One shape per record kind, so the manifest and the archive list the same fields in the same
//! order as the record types. IndexedDB keeps payloads inside its records, and the
//! `active_models` pointer as `ActiveModelEntry` too.

use serde::{Deserialize, Serialize};

use super::{
    Checkpoint, ImageDescriptor, ImageRole, ImageSource, Millis, Record, StoredImage, StoredModel,
};

/// A photo's record with its photo and crop held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry<P> {
    pub id: String,
    pub profile_id: String,
    pub role: ImageRole,
    pub source: ImageSource,
    pub created: Millis,
    pub width: u32,
    pub height: u32,
    pub encoded: P,
    pub aligned_crop: Option<P>,
    /// Small (512 bytes) and derived: kept with the metadata rather than as a payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<ImageDescriptor>,
}

/// A model's record with its weights held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry<P> {
    pub id: String,
    pub profile_id: String,
    pub tower_kind: String,
    pub format_version: u32,
    pub created: Millis,
    pub training_settings: serde_json::Value,
    pub metrics: serde_json::Value,
    pub bytes: P,
}

/// A checkpoint's record with its weights and optimiser state held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointEntry<P> {
    pub profile_id: String,
    pub run_id: String,
    pub epoch: u32,
    pub position: u64,
    pub created: Millis,
    pub model: P,
    pub optimiser: P,
    pub trainer_state: serde_json::Value,
}

/// The `active_models` pointer: which model a profile verifies with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveModelEntry {
    pub profile_id: String,
    pub model_id: String,
}

impl Record {
    pub fn from_pointer(pointer: ActiveModelEntry) -> Record {
        Record::ActiveModel {
            profile_id: pointer.profile_id,
            model_id: pointer.model_id,
        }
    }
}

impl<P> ImageEntry<P> {
    /// The entry of `image`, each payload stored by `put`.
    pub fn detach<'a, E>(
        image: &'a StoredImage,
        mut put: impl FnMut(&'a [u8]) -> Result<P, E>,
    ) -> Result<Self, E> {
        Ok(ImageEntry {
            id: image.id.clone(),
            profile_id: image.profile_id.clone(),
            role: image.role,
            source: image.source,
            created: image.created,
            width: image.width,
            height: image.height,
            encoded: put(&image.encoded)?,
            aligned_crop: image.aligned_crop.as_deref().map(&mut put).transpose()?,
            descriptor: image.descriptor.clone(),
        })
    }

    /// The photo again, each payload read back by `get`.
    pub fn attach<E>(
        &self,
        mut get: impl FnMut(&P) -> Result<Vec<u8>, E>,
    ) -> Result<StoredImage, E> {
        Ok(StoredImage {
            id: self.id.clone(),
            profile_id: self.profile_id.clone(),
            role: self.role,
            source: self.source,
            created: self.created,
            width: self.width,
            height: self.height,
            encoded: get(&self.encoded)?,
            aligned_crop: self.aligned_crop.as_ref().map(&mut get).transpose()?,
            descriptor: self.descriptor.clone(),
        })
    }
}

impl<P> ModelEntry<P> {
    pub fn detach<'a, E>(
        model: &'a StoredModel,
        put: impl FnOnce(&'a [u8]) -> Result<P, E>,
    ) -> Result<Self, E> {
        Ok(ModelEntry {
            id: model.id.clone(),
            profile_id: model.profile_id.clone(),
            tower_kind: model.tower_kind.clone(),
            format_version: model.format_version,
            created: model.created,
            training_settings: model.training_settings.clone(),
            metrics: model.metrics.clone(),
            bytes: put(&model.bytes)?,
        })
    }

    pub fn attach<E>(&self, get: impl FnOnce(&P) -> Result<Vec<u8>, E>) -> Result<StoredModel, E> {
        Ok(StoredModel {
            id: self.id.clone(),
            profile_id: self.profile_id.clone(),
            tower_kind: self.tower_kind.clone(),
            format_version: self.format_version,
            created: self.created,
            training_settings: self.training_settings.clone(),
            metrics: self.metrics.clone(),
            bytes: get(&self.bytes)?,
        })
    }
}

impl<P> CheckpointEntry<P> {
    pub fn detach<'a, E>(
        checkpoint: &'a Checkpoint,
        mut put: impl FnMut(&'a [u8]) -> Result<P, E>,
    ) -> Result<Self, E> {
        Ok(CheckpointEntry {
            profile_id: checkpoint.profile_id.clone(),
            run_id: checkpoint.run_id.clone(),
            epoch: checkpoint.epoch,
            position: checkpoint.position,
            created: checkpoint.created,
            model: put(&checkpoint.model_bytes)?,
            optimiser: put(&checkpoint.optimiser_bytes)?,
            trainer_state: checkpoint.trainer_state.clone(),
        })
    }

    pub fn attach<E>(
        &self,
        mut get: impl FnMut(&P) -> Result<Vec<u8>, E>,
    ) -> Result<Checkpoint, E> {
        Ok(Checkpoint {
            profile_id: self.profile_id.clone(),
            run_id: self.run_id.clone(),
            epoch: self.epoch,
            position: self.position,
            created: self.created,
            model_bytes: get(&self.model)?,
            optimiser_bytes: get(&self.optimiser)?,
            trainer_state: self.trainer_state.clone(),
        })
    }
}
