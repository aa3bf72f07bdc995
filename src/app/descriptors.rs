//! Stored face descriptors: a photo's descriptor never changes while the tower does not, so
//! it is kept with the photo (named by the tower's SHA-256) and read instead of computed.

use crate::model::face_resnet::{EMBEDDING_DIM, INPUT_SIZE};
use crate::pipeline::FacePipeline;
use crate::store::{ImageDescriptor, Store, StoredImage};

use super::training::decode_crop;
use super::{AppError, YieldFn};

/// Crops embedded per batch when descriptors are computed (the event loop runs in between).
const DESCRIPTOR_BATCH: usize = 8;

/// The descriptors of `images`' aligned crops, in order. The descriptor network is fixed, so a
/// photo's descriptor never changes: the stored ones that this network made are read, the
/// others computed and stored with their photos, so the next verifier or fine-tune run reads
/// numbers instead of running the network.
pub async fn image_descriptors<S: Store>(
    store: &S,
    pipeline: &FacePipeline,
    images: &[StoredImage],
    yield_now: YieldFn,
) -> Result<Vec<Vec<f32>>, AppError> {
    let tower = pipeline.tower_sha256();
    let mut rows: Vec<Option<Vec<f32>>> = images
        .iter()
        .map(|i| i.descriptor.as_ref()?.values_for(tower, EMBEDDING_DIM))
        .collect();
    let missing: Vec<usize> = (0..images.len()).filter(|&i| rows[i].is_none()).collect();
    let mut computed = Vec::with_capacity(missing.len());
    for batch in missing.chunks(DESCRIPTOR_BATCH) {
        let frames = batch
            .iter()
            .map(|&i| decode_crop(&images[i], INPUT_SIZE as u32))
            .collect::<Result<Vec<_>, _>>()?;
        for (&i, values) in batch.iter().zip(pipeline.embed_aligned(&frames).await?) {
            computed.push((i, ImageDescriptor::new(tower, &values)));
            rows[i] = Some(values);
        }
        yield_now().await;
    }
    store_descriptors(store, images, computed).await;
    Ok(rows
        .into_iter()
        .map(|row| row.expect("every missing descriptor was computed"))
        .collect())
}

/// Writes computed descriptors onto their photos, re-read first so that a photo deleted,
/// moved or re-cropped meanwhile (another tab) is neither brought back nor overwritten. Only a
/// cache: when it cannot be written (a full quota), the next load computes them again.
async fn store_descriptors<S: Store>(
    store: &S,
    images: &[StoredImage],
    computed: Vec<(usize, ImageDescriptor)>,
) {
    let mut updated = Vec::with_capacity(computed.len());
    for (i, descriptor) in computed {
        if let Ok(Some(current)) = store.get_image(&images[i].meta.id).await
            && current.aligned_crop == images[i].aligned_crop
        {
            updated.push(StoredImage {
                descriptor: Some(descriptor),
                ..current
            });
        }
    }
    if !updated.is_empty() {
        let _ = store.put_images(&updated).await;
    }
}
