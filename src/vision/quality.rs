//! Whether a camera frame makes a good reference photo: one face, facing the camera, large,
//! lit and sharp enough.
//! The hints are advice in the live view and refuse a capture unless the person insists.

use serde::{Deserialize, Serialize};

use crate::vision::detect::{Face, Keypoint};
use crate::vision::frame::Frame;

/// Advice for the person in front of the camera (the page words it). Every hint also refuses
/// a capture ([`QualityGate::Enforce`](crate::app::QualityGate::Enforce)) unless the person
/// insists. `EyesClosed` needs the face mesh, which the app runs on captures only.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "hint", rename_all = "snake_case")]
pub enum FrameHint {
    NoFace,
    SeveralFaces { count: usize },
    TooSmall { face_pixels: u32 },
    TooDark { brightness: u8 },
    TooBlurred { sharpness: f32 },
    TurnedAway { yaw_ratio: f32 },
    EyesClosed { openness: f32 },
}

/// Faces narrower than this fraction of the frame's shorter side are too small: the detector
/// sees the frame at 128×128, where it loses faces under a fifth of the frame (measured on a
/// 640×480 frame: found from 95 pixels up), so a face near that size is about to be lost.
pub const MIN_FACE_FRACTION: f32 = 0.25;
/// Mean brightness (0–255) of the face box below which a photo is too dark.
pub const MIN_BRIGHTNESS: u8 = 45;
/// Variance of the Laplacian of the aligned crop below which it is too blurred. LFW's photos,
/// upscaled from 250 pixels, measure above 40; a face moving during the exposure well below.
pub const MIN_SHARPNESS: f32 = 12.0;

/// Beyond this sideways offset of the nose tip from the midpoint of the eyes, as a fraction of
/// the distance between the eyes, the face is turned away (roughly 30–40° of yaw). Measured on
/// the first photo of every tenth LFW person here (342 news photos, mostly frontal): median
/// 0.10, 95th percentile 0.33, 99th 0.455, so it refuses about one in a hundred of them.
pub const MAX_YAW_RATIO: f32 = 0.45;

/// Below this eye openness (the face mesh's eyelid gap over eye width, both eyes' mean) the
/// eyes count as closed. Measured with the mesh on all 8,269 LFW photos here
/// (`cargo test --test facemesh -- --ignored --nocapture eye_openness`): the lowest is 0.022, a
/// man shouting with his eyes squeezed shut (John_Hartson_0001), then 0.066 and 0.089 (squints
/// while smiling and shouting), 1% 0.148, median 0.27. A person blinking in front of a webcam
/// at 15 frames a second passes 0.149 and 0.164 halfway through the blink, which is still a
/// usable photo; only eyes shut are refused.
pub const MIN_EYE_OPENNESS: f32 = 0.06;

/// The hint for eyes of `openness` (the face mesh's [`crate::vision::face_state::FaceState::eyes`]).
pub fn eyes_hint(openness: f32) -> Option<FrameHint> {
    (openness < MIN_EYE_OPENNESS).then_some(FrameHint::EyesClosed { openness })
}

/// How far the face is turned sideways: the nose tip's horizontal offset from the midpoint of
/// the eyes over the eyes' distance (0 facing the camera).
pub fn yaw_ratio(face: &Face) -> f32 {
    let (right, left) = (
        face.keypoint(Keypoint::RightEye),
        face.keypoint(Keypoint::LeftEye),
    );
    let nose = face.keypoint(Keypoint::NoseTip);
    let eyes = ((right.x - left.x).powi(2) + (right.y - left.y).powi(2)).sqrt();
    if eyes <= f32::EPSILON {
        return 0.0;
    }
    ((nose.x - (right.x + left.x) / 2.0) / eyes).abs()
}

/// What the live view draws: every face and the advice for this frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameCheck {
    pub width: u32,
    pub height: u32,
    /// Every face, highest score first.
    pub faces: Vec<Face>,
    /// Index into `faces` of the face the app would use (the largest).
    pub chosen: Option<usize>,
    pub hints: Vec<FrameHint>,
}

/// The hints for `frame` given its detections and, when there is a face, its aligned crop.
pub fn frame_hints(frame: &Frame, faces: &[Face], aligned: Option<&Frame>) -> Vec<FrameHint> {
    let Some(largest) = largest_face(faces).map(|i| &faces[i]) else {
        return vec![FrameHint::NoFace];
    };
    let mut hints = Vec::new();
    if faces.len() > 1 {
        hints.push(FrameHint::SeveralFaces { count: faces.len() });
    }
    let face_pixels = largest.bbox.width.max(0.0).round() as u32;
    if (face_pixels as f32) < MIN_FACE_FRACTION * frame.width().min(frame.height()) as f32 {
        hints.push(FrameHint::TooSmall { face_pixels });
    }
    let yaw_ratio = yaw_ratio(largest);
    if yaw_ratio > MAX_YAW_RATIO {
        hints.push(FrameHint::TurnedAway { yaw_ratio });
    }
    let brightness = mean_brightness(frame, largest);
    if brightness < MIN_BRIGHTNESS {
        hints.push(FrameHint::TooDark { brightness });
    }
    if let Some(crop) = aligned {
        let sharpness = sharpness(crop);
        if sharpness < MIN_SHARPNESS {
            hints.push(FrameHint::TooBlurred { sharpness });
        }
    }
    hints
}

/// The index of the largest face, the one the app uses.
pub fn largest_face(faces: &[Face]) -> Option<usize> {
    (0..faces.len()).max_by(|&a, &b| faces[a].bbox.area().total_cmp(&faces[b].bbox.area()))
}

fn luma([r, g, b]: [u8; 3]) -> f32 {
    0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
}

/// Mean luma inside the face box (clamped to the frame).
fn mean_brightness(frame: &Frame, face: &Face) -> u8 {
    let clamp = |v: f32, max: u32| (v.max(0.0) as u32).min(max);
    let (x0, x1) = (
        clamp(face.bbox.x_min, frame.width()),
        clamp(face.bbox.x_max(), frame.width()),
    );
    let (y0, y1) = (
        clamp(face.bbox.y_min, frame.height()),
        clamp(face.bbox.y_max(), frame.height()),
    );
    let (mut sum, mut count) = (0.0f64, 0u64);
    // Every other pixel: plenty for a mean, half the work per frame.
    for y in (y0..y1).step_by(2) {
        for x in (x0..x1).step_by(2) {
            sum += f64::from(luma(frame.pixel(x, y)));
            count += 1;
        }
    }
    if count == 0 {
        return 0;
    }
    (sum / count as f64).round().clamp(0.0, 255.0) as u8
}

/// Variance of the 4-neighbour Laplacian of the luma: low when there are no edges (blur).
pub fn sharpness(frame: &Frame) -> f32 {
    let (w, h) = (frame.width() as i64, frame.height() as i64);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let l = |x: i64, y: i64| luma(frame.pixel(x as u32, y as u32));
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let v =
                f64::from(l(x - 1, y) + l(x + 1, y) + l(x, y - 1) + l(x, y + 1) - 4.0 * l(x, y));
            sum += v;
            sum2 += v * v;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum2 / n - mean * mean) as f32
}
