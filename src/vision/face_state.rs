//! What a face mesh says about the face in one frame: how open each eye and the mouth are, and
//! which way the head points. Pure geometry over MediaPipe's 468 landmarks (indices of its
//! canonical face topology), so it is tested natively on recorded meshes.

use serde::{Deserialize, Serialize};

use super::frame::Point;

/// One landmark: x, y in pixels; z depth on the same scale (smaller is nearer the camera).
pub type Landmark = [f32; 3];

/// The eye contour points of the eye-aspect ratio (Soukupová and Čech, 2016): the two corners,
/// then two points on the upper lid and the two below them on the lower lid.
struct EyePoints {
    corners: [usize; 2],
    upper: [usize; 2],
    lower: [usize; 2],
}

/// The person's right eye (on the left of an unmirrored image).
const RIGHT_EYE: EyePoints = EyePoints {
    corners: [33, 133],
    upper: [160, 158],
    lower: [144, 153],
};
/// The person's left eye.
const LEFT_EYE: EyePoints = EyePoints {
    corners: [362, 263],
    upper: [385, 387],
    lower: [380, 373],
};
/// Inner lips (upper, lower) and the mouth corners.
const LIPS_INNER: [usize; 2] = [13, 14];
const MOUTH_CORNERS: [usize; 2] = [61, 291];
/// Forehead top, chin, right and left face edge: the head's axes.
const FOREHEAD: usize = 10;
const CHIN: usize = 152;
const RIGHT_EDGE: usize = 234;
const LEFT_EDGE: usize = 454;
const NOSE_TIP: usize = 1;
/// Eye contours whose mean is an eye's centre (for the 5-point alignment).
const RIGHT_EYE_RING: [usize; 4] = [33, 133, 159, 145];
const LEFT_EYE_RING: [usize; 4] = [362, 263, 386, 374];

/// The face state of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceState {
    /// Eye-aspect ratio of the person's right eye: lid gap over eye width (open ≈ 0.25–0.35,
    /// closed ≈ 0.1).
    pub right_eye: f32,
    /// The same for the left eye.
    pub left_eye: f32,
    /// Inner-lip gap over mouth width (closed ≈ 0, wide open ≈ 0.5+).
    pub mouth: f32,
    /// Degrees; positive when the head turns to the image's right (the person's left).
    pub yaw: f32,
    /// Degrees; positive when the head tilts up.
    pub pitch: f32,
    /// Degrees; positive when the head leans clockwise in the image.
    pub roll: f32,
}

impl FaceState {
    /// The mean openness of both eyes.
    pub fn eyes(&self) -> f32 {
        (self.right_eye + self.left_eye) / 2.0
    }
}

fn distance(a: Landmark, b: Landmark) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

fn eye_aspect_ratio(mesh: &[Landmark], eye: &EyePoints) -> f32 {
    let width = distance(mesh[eye.corners[0]], mesh[eye.corners[1]]);
    let gaps: f32 = (0..2)
        .map(|k| distance(mesh[eye.upper[k]], mesh[eye.lower[k]]))
        .sum();
    if width <= f32::EPSILON {
        return 0.0;
    }
    gaps / (2.0 * width)
}

type Vector = [f64; 3];

fn sub(a: Landmark, b: Landmark) -> Vector {
    [
        f64::from(a[0] - b[0]),
        f64::from(a[1] - b[1]),
        f64::from(a[2] - b[2]),
    ]
}

fn cross(a: Vector, b: Vector) -> Vector {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn normalise(v: Vector) -> Vector {
    let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-12);
    [v[0] / n, v[1] / n, v[2] / n]
}

/// Yaw, pitch and roll in degrees from the head's axes: x from the right to the left face edge,
/// y from the forehead to the chin, z their cross product (into the image for a frontal face).
fn head_pose(mesh: &[Landmark]) -> (f32, f32, f32) {
    let y = normalise(sub(mesh[CHIN], mesh[FOREHEAD]));
    let x0 = normalise(sub(mesh[LEFT_EDGE], mesh[RIGHT_EDGE]));
    let z = normalise(cross(x0, y));
    let x = cross(y, z);
    // Columns x, y, z of the head's rotation in camera coordinates (x right, y down, z away).
    let yaw = (-z[0]).atan2(z[2]);
    let pitch = z[1].atan2((z[0] * z[0] + z[2] * z[2]).sqrt());
    let roll = x[1].atan2(x[0]);
    (
        yaw.to_degrees() as f32,
        pitch.to_degrees() as f32,
        roll.to_degrees() as f32,
    )
}

/// The state of the face whose 468 landmarks are `mesh`.
pub fn face_state(mesh: &[Landmark]) -> FaceState {
    assert!(
        mesh.len() >= 468,
        "a face mesh has 468 landmarks, got {}",
        mesh.len()
    );
    let (yaw, pitch, roll) = head_pose(mesh);
    let width = distance(mesh[MOUTH_CORNERS[0]], mesh[MOUTH_CORNERS[1]]);
    let gap = distance(mesh[LIPS_INNER[0]], mesh[LIPS_INNER[1]]);
    FaceState {
        right_eye: eye_aspect_ratio(mesh, &RIGHT_EYE),
        left_eye: eye_aspect_ratio(mesh, &LEFT_EYE),
        mouth: if width > f32::EPSILON {
            gap / width
        } else {
            0.0
        },
        yaw,
        pitch,
        roll,
    }
}

/// Inner-lip contour: its mean is the mouth centre.
const INNER_LIPS: [usize; 4] = [13, 14, 78, 308];

/// The points the face alignment maps onto its template (`vision::align::ALIGNMENT_KEYPOINTS`:
/// eye centres, right then left, nose tip, mouth centre), from the mesh instead of BlazeFace's
/// keypoints.
pub fn alignment_points(mesh: &[Landmark]) -> [Point; 4] {
    let [right_eye, left_eye, nose, _, _] = five_points(mesh);
    let n = INNER_LIPS.len() as f32;
    let mouth = Point::new(
        INNER_LIPS.iter().map(|&i| mesh[i][0]).sum::<f32>() / n,
        INNER_LIPS.iter().map(|&i| mesh[i][1]).sum::<f32>() / n,
    );
    [right_eye, left_eye, nose, mouth]
}

/// The five points of the 5-point alignment, from the mesh: eye centres (person's right, then
/// left), nose tip, mouth corners (right, then left).
pub fn five_points(mesh: &[Landmark]) -> [Point; 5] {
    let mean = |ring: &[usize]| {
        let n = ring.len() as f32;
        Point::new(
            ring.iter().map(|&i| mesh[i][0]).sum::<f32>() / n,
            ring.iter().map(|&i| mesh[i][1]).sum::<f32>() / n,
        )
    };
    let at = |i: usize| Point::new(mesh[i][0], mesh[i][1]);
    [
        mean(&RIGHT_EYE_RING),
        mean(&LEFT_EYE_RING),
        at(NOSE_TIP),
        at(MOUTH_CORNERS[0]),
        at(MOUTH_CORNERS[1]),
    ]
}
