//! What can go wrong when the page asks for the camera, and what to tell the person.
//!
//! The browser reports `getUserMedia` failures as a `DOMException` name; this maps each name to
//! a typed error with an actionable message. It is platform-free so it is tested natively.

use serde::{Deserialize, Serialize};

/// Why the camera could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CameraError {
    #[error(
        "Camera access was denied. Allow the camera for this site (the camera icon in the address bar, \
         or the browser's site settings), then press Retry. You can still import photos meanwhile."
    )]
    Denied,
    #[error(
        "No camera was found. Connect a camera, then press Retry. You can still import photos."
    )]
    NotFound,
    #[error(
        "The camera is in use by another application or tab, or the system blocked it. \
         Close the other application, then press Retry."
    )]
    InUse,
    #[error(
        "The camera cannot deliver the requested picture size. Press Retry to try the default size."
    )]
    Unsatisfiable,
    #[error(
        "This page cannot use the camera: it must be opened over https or from localhost, \
         and camera access must not be disabled by a policy."
    )]
    Insecure,
    #[error(
        "This browser has no camera support (navigator.mediaDevices is missing). Use a current browser."
    )]
    Unsupported,
    #[error("The camera could not be started ({0}). Press Retry.")]
    Other(String),
}

impl CameraError {
    /// Maps a `DOMException.name` (and its message, for the unknown cases) from `getUserMedia`.
    pub fn from_dom_exception(name: &str, message: &str) -> Self {
        match name {
            "NotAllowedError" | "PermissionDeniedError" => Self::Denied,
            "NotFoundError" | "DevicesNotFoundError" => Self::NotFound,
            "NotReadableError" | "TrackStartError" | "AbortError" => Self::InUse,
            "OverconstrainedError" | "ConstraintNotSatisfiedError" => Self::Unsatisfiable,
            "SecurityError" => Self::Insecure,
            _ => Self::Other(if message.is_empty() {
                name.to_string()
            } else {
                format!("{name}: {message}")
            }),
        }
    }

    /// Whether pressing Retry can help without the person changing anything else first.
    pub fn retry_may_help(&self) -> bool {
        !matches!(self, Self::Insecure | Self::Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_names_map_to_actionable_errors() {
        assert_eq!(
            CameraError::from_dom_exception("NotAllowedError", "Permission denied"),
            CameraError::Denied
        );
        assert_eq!(
            CameraError::from_dom_exception("NotFoundError", ""),
            CameraError::NotFound
        );
        assert_eq!(
            CameraError::from_dom_exception("NotReadableError", "Could not start"),
            CameraError::InUse
        );
        assert_eq!(
            CameraError::from_dom_exception("OverconstrainedError", ""),
            CameraError::Unsatisfiable
        );
        assert_eq!(
            CameraError::from_dom_exception("SecurityError", ""),
            CameraError::Insecure
        );
        assert_eq!(
            CameraError::from_dom_exception("WeirdError", "boom"),
            CameraError::Other("WeirdError: boom".into())
        );
    }

    #[test]
    fn messages_tell_the_person_what_to_do() {
        assert!(CameraError::Denied.to_string().contains("Allow the camera"));
        assert!(
            CameraError::InUse
                .to_string()
                .contains("Close the other application")
        );
        assert!(CameraError::Denied.retry_may_help());
        assert!(!CameraError::Insecure.retry_may_help());
    }
}
