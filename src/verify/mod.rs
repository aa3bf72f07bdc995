//! Verification: the tutorial's policy (detection and verification thresholds over N stored
//! references) and the calibration that proposes thresholds for a target false-accept rate.
pub mod attempts;
pub mod calibration;
pub mod liveness;
pub mod policy;
