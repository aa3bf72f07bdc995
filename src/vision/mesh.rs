//! The face mesh network's input: a square crop around a face, resampled to 192×192, and the
//! transform that maps the landmarks found in it back onto the frame.

use super::align::{SimilarityTransform, warp};
use super::detect::Face;
use super::frame::{Frame, Point};
use crate::model::facemesh::INPUT_SIZE;

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
