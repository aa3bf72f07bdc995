//! Archives of photos opened for an import (zip, tar, tgz such as LFW's `lfw.tgz`): their
//! photos are sampled evenly, and a hostile archive (a zip bomb) is stopped.

use super::capture::{NamedFile, SkippedFile};

/// Limits for expanding archives of photos (a zip of LFW is 13,000 photos, 180 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandLimits {
    /// At most this many photos are taken from all archives together (evenly sampled).
    pub max_photos: usize,
    /// Stop reading an archive after this many uncompressed bytes (a zip bomb).
    pub max_uncompressed_bytes: u64,
}

impl Default for ExpandLimits {
    fn default() -> Self {
        Self {
            max_photos: 200,
            max_uncompressed_bytes: 1 << 30,
        }
    }
}

fn is_photo_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".jpg", ".jpeg", ".png"].iter().any(|e| lower.ends_with(e))
        && !lower.rsplit('/').next().unwrap_or("").starts_with('.')
}

/// Turns the chosen files into photo files: photos stay, zip / tar / tgz archives are opened
/// and their photos sampled evenly (LFW's `lfw.tgz` holds 13,233), anything else is skipped.
pub fn expand_files(
    files: Vec<NamedFile>,
    limits: &ExpandLimits,
) -> (Vec<NamedFile>, Vec<SkippedFile>, usize) {
    let mut photos = Vec::new();
    let mut from_archives: Vec<NamedFile> = Vec::new();
    let mut skipped = Vec::new();
    for file in files {
        let lower = file.name.to_ascii_lowercase();
        let archive = if lower.ends_with(".zip") {
            Some(read_zip(&file.bytes, limits))
        } else if lower.ends_with(".tgz") || lower.ends_with(".tar.gz") {
            Some(read_tar(
                flate2::read::GzDecoder::new(file.bytes.as_slice()),
                limits,
            ))
        } else if lower.ends_with(".tar") {
            Some(read_tar(file.bytes.as_slice(), limits))
        } else {
            None
        };
        match archive {
            Some(Ok(found)) => from_archives.extend(found),
            Some(Err(reason)) => skipped.push(SkippedFile {
                name: file.name,
                reason,
            }),
            None => photos.push(file),
        }
    }
    let found = from_archives.len();
    let room = limits.max_photos.saturating_sub(photos.len());
    if from_archives.len() > room {
        // Evenly spaced, so a sorted archive of many people gives many people.
        let step = from_archives.len() as f64 / room.max(1) as f64;
        from_archives = (0..room)
            .map(|i| from_archives[(i as f64 * step) as usize].clone())
            .collect();
    }
    photos.extend(from_archives);
    (photos, skipped, found)
}

fn read_tar<R: std::io::Read>(reader: R, limits: &ExpandLimits) -> Result<Vec<NamedFile>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let mut total = 0u64;
    let entries = archive
        .entries()
        .map_err(|e| format!("not a readable tar archive ({e})"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the archive is damaged ({e})"))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = entry.header().size().unwrap_or(0);
        if !entry.header().entry_type().is_file() || !is_photo_name(&name) {
            continue;
        }
        total += size;
        if total > limits.max_uncompressed_bytes {
            return Err(format!(
                "it unpacks to more than {} (a zip bomb?)",
                crate::store::format_bytes(limits.max_uncompressed_bytes)
            ));
        }
        let mut bytes = Vec::with_capacity(size.min(64 << 20) as usize);
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, 64 << 20), &mut bytes)
            .map_err(|e| format!("the archive is damaged ({e})"))?;
        out.push(NamedFile { name, bytes });
    }
    Ok(out)
}

fn read_zip(bytes: &[u8], limits: &ExpandLimits) -> Result<Vec<NamedFile>, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive ({e})"))?;
    let mut out = Vec::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| format!("the zip archive is damaged ({e})"))?;
        let name = entry.name().to_string();
        if !entry.is_file() || !is_photo_name(&name) {
            continue;
        }
        // The declared size may lie: count what is actually inflated, with a cap per entry.
        let cap = limits.max_uncompressed_bytes.saturating_sub(total) + 1;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, cap), &mut bytes)
            .map_err(|e| format!("the zip archive is damaged ({e})"))?;
        total += bytes.len() as u64;
        if total > limits.max_uncompressed_bytes {
            return Err(format!(
                "it unpacks to more than {} (a zip bomb?)",
                crate::store::format_bytes(limits.max_uncompressed_bytes)
            ));
        }
        out.push(NamedFile { name, bytes });
    }
    Ok(out)
}
