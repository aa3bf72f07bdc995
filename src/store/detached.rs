//! Records whose payloads are kept apart from their metadata: `DirStore`'s manifest refers to
//! files named by their SHA-256, an export archive to its tar entries. `P` is that reference.
//! One shape per record kind, so the manifest and the archive list the same fields in the same
//! order as the record types. IndexedDB keeps payloads inside its records, and the
//! `active_models` pointer as `ActiveModelEntry` too.

use serde::{Deserialize, Serialize};

use super::{
    Checkpoint, CheckpointMeta, ImageDescriptor, ImageMeta, ModelMeta, Record, StoredImage,
    StoredModel,
};

/// A photo's record with its photo and crop held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageEntry<P> {
    #[serde(flatten)]
    pub meta: ImageMeta,
    pub encoded: P,
    pub aligned_crop: Option<P>,
    /// Small (512 bytes) and derived: kept with the metadata rather than as a payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<ImageDescriptor>,
}

/// A model's record with its weights held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry<P> {
    #[serde(flatten)]
    pub meta: ModelMeta,
    pub bytes: P,
}

/// A checkpoint's record with its weights and optimiser state held as `P`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointEntry<P> {
    #[serde(flatten)]
    pub meta: CheckpointMeta,
    pub model: P,
    pub optimiser: P,
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
            meta: image.meta.clone(),
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
            meta: self.meta.clone(),
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
            meta: model.meta.clone(),
            bytes: put(&model.bytes)?,
        })
    }

    pub fn attach<E>(&self, get: impl FnOnce(&P) -> Result<Vec<u8>, E>) -> Result<StoredModel, E> {
        Ok(StoredModel {
            meta: self.meta.clone(),
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
            meta: checkpoint.meta.clone(),
            model: put(&checkpoint.model_bytes)?,
            optimiser: put(&checkpoint.optimiser_bytes)?,
        })
    }

    pub fn attach<E>(
        &self,
        mut get: impl FnMut(&P) -> Result<Vec<u8>, E>,
    ) -> Result<Checkpoint, E> {
        Ok(Checkpoint {
            meta: self.meta.clone(),
            model_bytes: get(&self.model)?,
            optimiser_bytes: get(&self.optimiser)?,
        })
    }
}
