//! Face alignment: a least-squares similarity transform (rotation, uniform scale, translation)
//! from a detected face's keypoints to a canonical template, and bilinear resampling of the
//! frame into the tower's square input. The tutorial's fixed centre crop is kept as
//! [`CropMode::Centre`], for comparison and when no detector is wanted.
//!
//! The transform is the 2-D case of Umeyama's / Procrustes' solution: with the points centred
//! on their means, the best `dst ≈ s·R·src + t` has `s·cos θ = Σ(src·dst) / Σ|src|²` and
//! `s·sin θ = Σ(src × dst) / Σ|src|²` (dot and cross products of the centred points). It cannot
//! reflect, which is right for faces.
//!
//! Coordinates follow `crate::vision::frame` (continuous pixels, pixel centres at +0.5).

use crate::vision::detect::{Face, Keypoint};
use crate::vision::frame::{Frame, Point};

/// Side of the tutorial's fixed centre crop, in frame pixels.
pub const CENTRE_CROP_SIDE: f32 = 250.0;

/// The keypoints alignment uses, in template order: the eyes, the nose tip and the mouth (the
/// ear tragions are often hidden or badly placed when the head turns).
pub const ALIGNMENT_KEYPOINTS: [Keypoint; 4] = [
    Keypoint::RightEye,
    Keypoint::LeftEye,
    Keypoint::NoseTip,
    Keypoint::MouthCentre,
];

/// Errors while aligning.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AlignError {
    #[error("cannot fit a similarity transform: the {0} source points coincide")]
    Degenerate(usize),
    #[error("similarity transform needs matching point lists, got {src} and {dst} points")]
    PointCount { src: usize, dst: usize },
    #[error("crop mode Detect needs a detected face")]
    NoFace,
}

/// How the tower's input is cut out of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// Align the detected face's keypoints onto the template.
    #[default]
    Detect,
    /// The tutorial's crop: the 250-pixel square at the frame's centre, resized.
    #[serde(alias = "center")]
    Centre,
}

/// Where [`ALIGNMENT_KEYPOINTS`] land in a `size`×`size` output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceTemplate {
    pub size: u32,
    pub points: [Point; 4],
}

/// dlib's mean face (`get_face_chip_details`, landmarks 17–67 of the 68-point model, in [0, 1]):
/// the points the alignment keypoints correspond to. Eye centres: mean of landmarks 36–41 and
/// 42–47; nose tip: landmark 30; mouth centre: mean of the inner lip, landmarks 60–67.
const DLIB_MEAN_FACE: [(f64, f64); 4] = [
    (
        (0.121737 + 0.187122 + 0.265825 + 0.334606 + 0.260918 + 0.182743) / 6.0,
        (0.216423 + 0.178758 + 0.179852 + 0.231733 + 0.245099 + 0.244077) / 6.0,
    ),
    (
        (0.645647 + 0.714428 + 0.793132 + 0.858516 + 0.79751 + 0.719335) / 6.0,
        (0.231733 + 0.179852 + 0.178758 + 0.216423 + 0.244077 + 0.245099) / 6.0,
    ),
    (0.490127, 0.515625),
    (
        0.490127,
        (0.784792 + 0.778746 + 0.785343 + 0.778746 + 0.784792 + 0.824182 + 0.831803 + 0.824182)
            / 8.0,
    ),
];
/// dlib's face recognition example extracts chips with `get_face_chip_details(shape, 150, 0.25)`.
const DLIB_CHIP_PADDING: f64 = 0.25;

/// Mean positions of the alignment keypoints in the shared LFW copy (250×250, already roughly
/// aligned), as BlazeFace finds them: the framing the tutorial's 100×100 tower was trained on
/// (its centre crop is the whole LFW image). Measured by `tests/face_pipeline.rs`
/// (`lfw_template_matches_mean_lfw_keypoints`) over the `_0001` photo of the first 64 people
/// of the shared copy (all 64 found; default thresholds).
const LFW_MEAN_KEYPOINTS: [(f32, f32); 4] = [
    (102.60, 114.27),
    (148.17, 114.27),
    (126.95, 139.84),
    (126.04, 163.68),
];

impl FaceTemplate {
    /// The dlib / face-api tower's input: dlib's 150×150 face chip with padding 0.25.
    pub fn dlib_150() -> Self {
        Self::dlib(150)
    }

    /// dlib's chip layout at any size.
    pub fn dlib(size: u32) -> Self {
        let p = DLIB_CHIP_PADDING;
        let map = |(x, y): (f64, f64)| {
            let f = |v: f64| ((p + v) / (2.0 * p + 1.0) * f64::from(size)) as f32;
            Point::new(f(x), f(y))
        };
        Self {
            size,
            points: DLIB_MEAN_FACE.map(map),
        }
    }

    /// The tutorial's (Koch) tower: 100×100, framed like its training data (LFW's framing).
    pub fn koch_100() -> Self {
        Self::lfw(100)
    }

    /// LFW's framing (the whole 250×250 LFW image) at `size`×`size`.
    pub fn lfw(size: u32) -> Self {
        let s = size as f32 / CENTRE_CROP_SIDE;
        Self {
            size,
            points: LFW_MEAN_KEYPOINTS.map(|(x, y)| Point::new(x * s, y * s)),
        }
    }
}

/// `p ↦ [a −b; b a]·p + t`: rotation by `atan2(b, a)`, scale `√(a² + b²)`, translation `t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarityTransform {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl SimilarityTransform {
    pub const IDENTITY: Self = Self {
        a: 1.0,
        b: 0.0,
        tx: 0.0,
        ty: 0.0,
    };

    /// Rotation by `angle` radians (counter-clockwise in a y-up picture; clockwise on screen,
    /// where y points down), scale, then translation.
    pub fn from_parts(angle: f64, scale: f64, tx: f64, ty: f64) -> Self {
        Self {
            a: scale * angle.cos(),
            b: scale * angle.sin(),
            tx,
            ty,
        }
    }

    /// The least-squares similarity transform taking `src` onto `dst`.
    pub fn estimate(src: &[Point], dst: &[Point]) -> Result<Self, AlignError> {
        if src.len() != dst.len() || src.len() < 2 {
            return Err(AlignError::PointCount {
                src: src.len(),
                dst: dst.len(),
            });
        }
        let n = src.len() as f64;
        let mean = |pts: &[Point]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(x, y), p| {
                (x + f64::from(p.x), y + f64::from(p.y))
            });
            (sx / n, sy / n)
        };
        let (msx, msy) = mean(src);
        let (mdx, mdy) = mean(dst);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (f64::from(s.x) - msx, f64::from(s.y) - msy);
            let (dx, dy) = (f64::from(d.x) - mdx, f64::from(d.y) - mdy);
            dot += sx * dx + sy * dy;
            cross += sx * dy - sy * dx;
            norm += sx * sx + sy * sy;
        }
        if norm <= 1e-12 {
            return Err(AlignError::Degenerate(src.len()));
        }
        let (a, b) = (dot / norm, cross / norm);
        Ok(Self {
            a,
            b,
            tx: mdx - (a * msx - b * msy),
            ty: mdy - (b * msx + a * msy),
        })
    }

    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (f64::from(p.x), f64::from(p.y));
        Point::new(
            (self.a * x - self.b * y + self.tx) as f32,
            (self.b * x + self.a * y + self.ty) as f32,
        )
    }

    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// Rotation angle in radians.
    pub fn angle(&self) -> f64 {
        self.b.atan2(self.a)
    }

    /// The inverse map (a similarity transform with scale 1/s and angle −θ).
    pub fn inverse(&self) -> Self {
        let d = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / d, -self.b / d);
        Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        }
    }
}

/// The transform from frame coordinates to template coordinates for `face`.
pub fn face_to_template(
    face: &Face,
    template: &FaceTemplate,
) -> Result<SimilarityTransform, AlignError> {
    let src = ALIGNMENT_KEYPOINTS.map(|k| face.keypoint(k));
    SimilarityTransform::estimate(&src, &template.points)
}

/// The tutorial's centre crop as a transform: the 250-pixel square at the frame's centre onto
/// `size`×`size`.
pub fn centre_crop_transform(frame: &Frame, size: u32) -> SimilarityTransform {
    let s = f64::from(size) / f64::from(CENTRE_CROP_SIDE);
    let x0 = f64::from(frame.width()) / 2.0 - f64::from(CENTRE_CROP_SIDE) / 2.0;
    let y0 = f64::from(frame.height()) / 2.0 - f64::from(CENTRE_CROP_SIDE) / 2.0;
    SimilarityTransform {
        a: s,
        b: 0.0,
        tx: -x0 * s,
        ty: -y0 * s,
    }
}

/// Resample `frame` into a `size`×`size` RGB8 image: output pixel centre `q` takes the frame's
/// bilinear interpolation at `frame_to_output⁻¹(q)` (edge pixels extended up to the frame's
/// border), black outside the frame. When the output is
/// smaller than the frame region (scale below 1), each output pixel averages a k×k grid of such
/// samples (k = ⌈1/scale⌉) so that shrinking does not alias. Both steps reproduce a frame whose
/// values are an affine function of position exactly, which the tests rely on.
pub fn warp(frame: &Frame, frame_to_output: &SimilarityTransform, size: u32) -> Frame {
    let inv = frame_to_output.inverse();
    let k = (1.0 / frame_to_output.scale() - 1e-9).ceil().max(1.0) as usize;
    let (w, h) = (i64::from(frame.width()), i64::from(frame.height()));
    let pixels = frame.pixels();
    // Taps clamp to the edge: a sample inside the frame never mixes in black, so a frame's own
    // border pixels keep their values (only samples outside the frame are black, below).
    let tap = |x: i64, y: i64| -> [f64; 3] {
        let (x, y) = (x.clamp(0, w - 1), y.clamp(0, h - 1));
        let i = ((y * w + x) * 3) as usize;
        [
            f64::from(pixels[i]),
            f64::from(pixels[i + 1]),
            f64::from(pixels[i + 2]),
        ]
    };
    let n = size as usize;
    let mut out = Vec::with_capacity(n * n * 3);
    for row in 0..n {
        for col in 0..n {
            let mut acc = [0f64; 3];
            for sy in 0..k {
                for sx in 0..k {
                    let qx = col as f64 + (sx as f64 + 0.5) / k as f64;
                    let qy = row as f64 + (sy as f64 + 0.5) / k as f64;
                    let px = inv.a * qx - inv.b * qy + inv.tx;
                    let py = inv.b * qx + inv.a * qy + inv.ty;
                    if px < 0.0 || py < 0.0 || px >= w as f64 || py >= h as f64 {
                        continue; // outside the frame: black
                    }
                    // Index space: pixel centres at integers.
                    let (u, v) = (px - 0.5, py - 0.5);
                    let (x0, y0) = (u.floor(), v.floor());
                    let (fx, fy) = (u - x0, v - y0);
                    let (x0, y0) = (x0 as i64, y0 as i64);
                    let (p00, p10) = (tap(x0, y0), tap(x0 + 1, y0));
                    let (p01, p11) = (tap(x0, y0 + 1), tap(x0 + 1, y0 + 1));
                    for c in 0..3 {
                        acc[c] += (1.0 - fy) * ((1.0 - fx) * p00[c] + fx * p10[c])
                            + fy * ((1.0 - fx) * p01[c] + fx * p11[c]);
                    }
                }
            }
            let samples = (k * k) as f64;
            for v in acc {
                out.push((v / samples + 0.5).floor().clamp(0.0, 255.0) as u8);
            }
        }
    }
    Frame::new(size, size, out).expect("warp writes size*size*3 bytes")
}

/// The face aligned onto `template` (the tower's input image).
pub fn align_face(
    frame: &Frame,
    face: &Face,
    template: &FaceTemplate,
) -> Result<Frame, AlignError> {
    Ok(warp(
        frame,
        &face_to_template(face, template)?,
        template.size,
    ))
}

/// The tutorial's crop: the 250-pixel centre square resized to `size`×`size`.
pub fn centre_crop(frame: &Frame, size: u32) -> Frame {
    warp(frame, &centre_crop_transform(frame, size), size)
}

/// The tower's input by `mode`: `Detect` aligns `face` (an error without one; callers decide
/// what no face means), `Centre` ignores it.
pub fn crop(
    frame: &Frame,
    mode: CropMode,
    face: Option<&Face>,
    template: &FaceTemplate,
) -> Result<Frame, AlignError> {
    match mode {
        CropMode::Detect => align_face(frame, face.ok_or(AlignError::NoFace)?, template),
        CropMode::Centre => Ok(centre_crop(frame, template.size)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(p: Point, q: Point, tol: f32) -> bool {
        (p.x - q.x).abs() <= tol && (p.y - q.y).abs() <= tol
    }

    #[test]
    fn estimate_recovers_a_known_transform() {
        let t = SimilarityTransform::from_parts(0.3, 1.7, 12.0, -5.0);
        let src = [
            Point::new(10.0, 20.0),
            Point::new(50.0, 22.0),
            Point::new(30.0, 45.0),
            Point::new(31.0, 70.0),
        ];
        let dst = src.map(|p| t.apply(p));
        let e = SimilarityTransform::estimate(&src, &dst).unwrap();
        assert!(
            (e.a - t.a).abs() < 1e-5 && (e.b - t.b).abs() < 1e-5,
            "{e:?}"
        );
        assert!(
            (e.tx - t.tx).abs() < 1e-3 && (e.ty - t.ty).abs() < 1e-3,
            "{e:?}"
        );
        for p in src {
            assert!(close(e.inverse().apply(e.apply(p)), p, 1e-3));
        }
    }

    #[test]
    fn degenerate_points_are_an_error() {
        let p = [Point::new(1.0, 1.0); 4];
        assert_eq!(
            SimilarityTransform::estimate(&p, &p),
            Err(AlignError::Degenerate(4))
        );
        assert!(matches!(
            SimilarityTransform::estimate(&p[..2], &p),
            Err(AlignError::PointCount { .. })
        ));
    }

    #[test]
    fn templates_are_inside_their_output_and_upright() {
        for t in [FaceTemplate::dlib_150(), FaceTemplate::koch_100()] {
            let [re, le, nose, mouth] = t.points;
            let s = t.size as f32;
            assert!(
                t.points
                    .iter()
                    .all(|p| p.x > 0.0 && p.x < s && p.y > 0.0 && p.y < s)
            );
            assert!(re.x < le.x, "the right eye is on the image's left");
            assert!(re.y < nose.y && nose.y < mouth.y);
        }
        let d = FaceTemplate::dlib_150();
        assert!(close(d.points[0], Point::new(47.55, 46.60), 0.01), "{d:?}");
    }

    #[test]
    fn centre_crop_of_a_250_frame_is_a_plain_resize() {
        let frame = Frame::uniform(250, 250, [9, 99, 199]).unwrap();
        let out = centre_crop(&frame, 100);
        assert_eq!((out.width(), out.height()), (100, 100));
        assert!(out.pixels().chunks(3).all(|p| p == [9, 99, 199]));
    }
}
