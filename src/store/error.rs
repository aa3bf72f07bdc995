//! Storage errors. Each Display text is written for the person using the app: what happened,
//! that nothing was half-written, and what to do next.

use thiserror::Error;

use super::validate::{ImageError, ModelFormatError};

/// Why a storage operation failed. Every failed operation leaves the stored data as it was.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StoreError {
    #[error(
        "There is no profile '{profile}'. Create the profile first, then add photos, models or \
         training runs to it."
    )]
    UnknownProfile { profile: String },

    #[error("The {kind} '{id}' is not stored (it may have been deleted). Reload to see what is.")]
    NotFound { kind: &'static str, id: String },

    #[error("Photo '{image_id}' was not saved: {reason}. Nothing else was changed.")]
    InvalidImage {
        image_id: String,
        reason: ImageError,
    },

    #[error("Model '{model_id}' was not saved: {reason}. The previous model is still in use.")]
    InvalidModel {
        model_id: String,
        reason: ModelFormatError,
    },

    #[error("The {kind} '{id}' was not saved: {reason}.")]
    InvalidRecord {
        kind: &'static str,
        id: String,
        reason: String,
    },

    #[error(
        "Model '{model_id}' is the active model of profile '{profile}', so it cannot be saved \
         for another profile. Nothing was changed."
    )]
    ActiveModelInUse { model_id: String, profile: String },

    #[error(
        "Not enough storage space: this needs {} but only {} is free. Nothing was saved. Free \
         space by deleting photos or profiles you no longer need (export your data first if you \
         want to keep a copy), then try again.",
        format_bytes(*needed),
        format_bytes(*available)
    )]
    QuotaExceeded { needed: u64, available: u64 },

    #[error(
        "Saving failed ({detail}). Nothing was changed: your previous data is intact. Try again; \
         if it keeps failing, export your data and reload the page."
    )]
    WriteFailed { detail: String },

    #[error("Reading stored data failed ({detail}). Reload the page and try again.")]
    ReadFailed { detail: String },

    #[error(
        "Stored data is damaged ({detail}). Export what you can, then use 'Delete all my data' \
         to start again."
    )]
    Corrupt { detail: String },

    #[error(
        "This data was saved by a newer version of faceverify (storage schema version {found}; \
         this version understands up to {supported}). Reload to get the newest version. \
         Nothing was changed."
    )]
    SchemaTooNew { found: u32, supported: u32 },

    #[error(
        "Upgrading stored data from schema version {from} to {to} failed ({detail}). Nothing \
         was changed; the data is still readable by the previous version."
    )]
    MigrationFailed { from: u32, to: u32, detail: String },

    #[error(
        "Browser storage is not available ({detail}). Private windows and some privacy settings \
         block it: open faceverify in a normal window, or allow site data for it."
    )]
    Unavailable { detail: String },
}

impl StoreError {
    /// The message to show the user (the Display text; a method so callers need not know).
    pub fn user_message(&self) -> String {
        self.to_string()
    }
}

/// "1.5 MB", for messages.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What a failed call into the platform's storage was doing, which decides the error a person
/// sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Opening (or upgrading) the storage: failures mean storage is unavailable.
    Open,
    Read,
    Write,
}

impl Access {
    pub fn error(self, detail: String) -> StoreError {
        match self {
            Access::Open => StoreError::Unavailable { detail },
            Access::Read => StoreError::ReadFailed { detail },
            Access::Write => StoreError::WriteFailed { detail },
        }
    }
}

/// `navigator.storage.estimate()`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageEstimate {
    /// Bytes this origin uses (all storage kinds, as the browser counts them).
    pub usage: u64,
    /// Bytes this origin may use.
    pub quota: u64,
}

impl StorageEstimate {
    pub fn available(&self) -> u64 {
        self.quota.saturating_sub(self.usage)
    }
}

/// A failure the platform's storage reported (in a browser a `DOMException`), reduced to what
/// decides the error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageFailure {
    /// The exception's name (`QuotaExceededError`, `VersionError`...), when there is one.
    pub name: Option<String>,
    pub message: String,
    /// Bytes the write asked for, where the platform says (the newer `QuotaExceededError`).
    pub requested: Option<u64>,
}

impl StorageFailure {
    pub fn named(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }

    pub fn is_quota(&self) -> bool {
        // Firefox used its own name before the standard one.
        self.named("QuotaExceededError") || self.named("NS_ERROR_DOM_QUOTA_REACHED")
    }

    pub fn detail(&self) -> String {
        match &self.name {
            Some(name) if !self.message.is_empty() => format!("{name}: {}", self.message),
            Some(name) => name.clone(),
            None => self.message.clone(),
        }
    }

    /// The store's error for this failure during `access`. A quota failure becomes
    /// `QuotaExceeded`: `needed` is what the failed transaction tried to store (the platform's
    /// own `requested` wins when it gives one) and `available` what the platform reported free,
    /// if anything (without it, nothing is known to be free). A missing object store or index
    /// (`NotFoundError`) is a damaged layout.
    pub fn to_store_error(
        &self,
        access: Access,
        needed: u64,
        available: Option<u64>,
    ) -> StoreError {
        if self.is_quota() {
            return StoreError::QuotaExceeded {
                needed: self.requested.unwrap_or(needed),
                available: available.unwrap_or(0),
            };
        }
        if self.named("NotFoundError") {
            let detail = format!(
                "the database lacks a part of its layout ({})",
                self.detail()
            );
            return StoreError::Corrupt { detail };
        }
        access.error(self.detail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_failures_become_the_error_of_their_access() {
        let quota = StorageFailure {
            name: Some("QuotaExceededError".into()),
            message: "full".into(),
            requested: None,
        };
        assert_eq!(
            quota.to_store_error(Access::Write, 3_000, Some(1_000)),
            StoreError::QuotaExceeded {
                needed: 3_000,
                available: 1_000
            }
        );
        let asked = StorageFailure {
            requested: Some(5_000),
            ..quota.clone()
        };
        assert_eq!(
            asked.to_store_error(Access::Write, 3_000, None),
            StoreError::QuotaExceeded {
                needed: 5_000,
                available: 0
            }
        );
        let other = StorageFailure {
            name: Some("UnknownError".into()),
            message: "disk".into(),
            requested: None,
        };
        assert_eq!(
            other.to_store_error(Access::Open, 0, None),
            StoreError::Unavailable {
                detail: "UnknownError: disk".into()
            }
        );
        assert!(matches!(
            other.to_store_error(Access::Read, 0, None),
            StoreError::ReadFailed { .. }
        ));
        // A missing object store or index: the layout is damaged, whatever the access.
        let missing = StorageFailure {
            name: Some("NotFoundError".into()),
            ..other
        };
        let err = missing.to_store_error(Access::Read, 0, None);
        assert!(
            matches!(&err, StoreError::Corrupt { detail } if detail.contains("disk")),
            "{err:?}"
        );
    }

    #[test]
    fn bytes_are_formatted_for_people() {
        assert_eq!(format_bytes(999), "999 bytes");
        assert_eq!(format_bytes(1_500_000), "1.5 MB");
        assert_eq!(format_bytes(2_000_000_000), "2.0 GB");
    }

    #[test]
    fn quota_message_says_what_to_delete() {
        let message = StoreError::QuotaExceeded {
            needed: 3_000_000,
            available: 1_000,
        }
        .user_message();
        assert!(message.contains("3.0 MB"), "{message}");
        assert!(message.contains("1.0 KB"), "{message}");
        assert!(message.contains("deleting photos or profiles"), "{message}");
        assert!(message.contains("Nothing was saved"), "{message}");
    }
}
