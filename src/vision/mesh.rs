//! The face mesh network's input: a square crop around a face, resampled to 192×192, and the
//! transform that maps the landmarks found in it back onto the frame; and a tracker that meshes
//! a face frame after frame.

use super::align::{SimilarityTransform, warp};
use super::detect::{DetectError, Face, FaceDetector};
use super::face_state::{FaceState, Landmark, face_state};
use super::frame::{Frame, Point};
use super::quality::largest_face;
use crate::model::facemesh::{FaceMesh, FaceMeshError, INPUT_SIZE, input_from_rgb8};

/// Side of the crop over the larger side of the detector's face box: MediaPipe's face
/// landmark graph widens the detection by 1.5 so the whole face, forehead and chin included,
/// is in view.
pub const MESH_CROP_SCALE: f64 = 1.5;

/// A crop for the mesh and where it came from.
#[derive(Debug, Clone)]
pub struct MeshCrop {
    /// 192×192 RGB.
    pub crop: Frame,
    /// Frame coordinates → crop coordinates.
    pub frame_to_crop: SimilarityTransform,
}

impl MeshCrop {
    /// The square of side `side` centred on `centre`, resampled to 192×192 (bilinear; outside
    /// the frame is black).
    pub fn around(frame: &Frame, centre: Point, side: f64) -> Self {
        let scale = INPUT_SIZE as f64 / side.max(1.0);
        let half = side / 2.0;
        let frame_to_crop = SimilarityTransform {
            a: scale,
            b: 0.0,
            tx: -(f64::from(centre.x) - half) * scale,
            ty: -(f64::from(centre.y) - half) * scale,
        };
        Self {
            crop: warp(frame, &frame_to_crop, INPUT_SIZE as u32),
            frame_to_crop,
        }
    }

    /// The crop around a detected face: its box's centre, [`MESH_CROP_SCALE`] × its larger side.
    pub fn for_face(frame: &Frame, face: &Face) -> Self {
        let b = &face.bbox;
        let centre = Point::new(b.x_min + b.width / 2.0, b.y_min + b.height / 2.0);
        let side = MESH_CROP_SCALE * f64::from(b.width.max(b.height));
        Self::around(frame, centre, side)
    }

    /// A point of the crop (e.g. a landmark) in frame coordinates.
    pub fn to_frame(&self, p: Point) -> Point {
        self.frame_to_crop.inverse().apply(p)
    }
}

// ---------------------------------------------------------------------------------------------
// Tracking: each frame's mesh gives the next frame's crop

/// A face found and meshed in one frame.
#[derive(Debug, Clone)]
pub struct TrackedFace {
    /// 468 landmarks in frame pixels (z on the same scale).
    pub landmarks: Vec<Landmark>,
    /// The mesh network's probability that its crop showed a face.
    pub face_score: f32,
    /// Whether the detector had to find the face again (first frame, or the track was lost).
    pub detected: bool,
    pub state: FaceState,
}

/// Below this face score the mesh lost the face: the next frame is detected afresh.
pub const MIN_MESH_SCORE: f32 = 0.5;

/// Follows one face across frames: the detector finds it once, then the square around each
/// frame's landmarks (widened by [`MESH_CROP_SCALE`]) is the next frame's crop, as MediaPipe's
/// face mesh graph does.
#[derive(Debug, Default)]
pub struct MeshTracker {
    previous: Option<(Point, f64)>,
}

impl MeshTracker {
    /// Forgets the face: the next frame is detected afresh.
    pub fn reset(&mut self) {
        self.previous = None;
    }

    /// The face in `frame`, or `None` when there is none.
    pub async fn track(
        &mut self,
        detector: &FaceDetector,
        mesh: &FaceMesh,
        frame: &Frame,
    ) -> Result<Option<TrackedFace>, MeshError> {
        if let Some((centre, side)) = self.previous {
            let crop = MeshCrop::around(frame, centre, side);
            if let Some(face) = self.mesh_crop(mesh, &crop, false).await? {
                return Ok(Some(face));
            }
        }
        let faces = detector.detect(frame).await?.faces;
        let Some(largest) = largest_face(&faces) else {
            self.previous = None;
            return Ok(None);
        };
        let crop = MeshCrop::for_face(frame, &faces[largest]);
        self.mesh_crop(mesh, &crop, true).await
    }

    async fn mesh_crop(
        &mut self,
        mesh: &FaceMesh,
        crop: &MeshCrop,
        detected: bool,
    ) -> Result<Option<TrackedFace>, MeshError> {
        let device = mesh.stem.weight.device();
        let raw = mesh
            .run(input_from_rgb8(crop.crop.pixels(), &device))
            .await?;
        let face_score = raw.face_scores[0];
        if face_score < MIN_MESH_SCORE {
            self.previous = None;
            return Ok(None);
        }
        let depth_scale = 1.0 / crop.frame_to_crop.scale() as f32;
        let landmarks: Vec<Landmark> = raw
            .landmarks
            .chunks_exact(3)
            .map(|p| {
                let at = crop.to_frame(Point::new(p[0], p[1]));
                [at.x, at.y, p[2] * depth_scale]
            })
            .collect();
        self.previous = Some(square_around(&landmarks));
        Ok(Some(TrackedFace {
            state: face_state(&landmarks),
            landmarks,
            face_score,
            detected,
        }))
    }
}

/// The mesh of a face the detector found in one frame (no tracking), or `None` when the mesh
/// sees no face in its crop.
pub async fn mesh_face(
    mesh: &FaceMesh,
    frame: &Frame,
    face: &Face,
) -> Result<Option<TrackedFace>, MeshError> {
    let crop = MeshCrop::for_face(frame, face);
    MeshTracker::default().mesh_crop(mesh, &crop, true).await
}

/// The box around `landmarks`: its centre, width and height.
pub fn landmark_box(landmarks: &[Landmark]) -> (Point, f32, f32) {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in landmarks {
        (x0, y0) = (x0.min(p[0]), y0.min(p[1]));
        (x1, y1) = (x1.max(p[0]), y1.max(p[1]));
    }
    (
        Point::new((x0 + x1) / 2.0, (y0 + y1) / 2.0),
        x1 - x0,
        y1 - y0,
    )
}

/// The next crop from this frame's landmarks: their box's centre and [`MESH_CROP_SCALE`] × its
/// larger side.
fn square_around(landmarks: &[Landmark]) -> (Point, f64) {
    let (centre, width, height) = landmark_box(landmarks);
    (centre, MESH_CROP_SCALE * f64::from(width.max(height)))
}

/// Why a frame could not be meshed.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Mesh(#[from] FaceMeshError),
}
