//! Frames and faces: RGB frames, BlazeFace detection and its decoding, and the alignment that
//! turns a detected face into the tower's input.
pub mod align;
pub mod augment;
pub mod detect;
pub mod face_state;
pub mod frame;
pub mod mesh;
pub mod quality;
