//! Face detection: letterbox a frame into BlazeFace's 128×128 input, run the network
//! ([`crate::model::blazeface`]), decode its 896 anchors into boxes and 6 keypoints, and merge
//! overlapping candidates with weighted non-maximum suppression, as MediaPipe's
//! `face_detection_short_range` graph does:
//! - anchors: `SsdAnchorsCalculator` with 4 layers, strides 8, 16, 16, 16, anchor offset 0.5,
//!   aspect ratio 1 plus one interpolated scale (2 anchors per layer and cell), fixed anchor size
//!   (width = height = 1); layers with equal strides share one feature map, giving 16×16×2 +
//!   8×8×6 = 896 anchors;
//! - decoding: `TensorsToDetectionsCalculator` with x/y/w/h scale 128, box as (centre x, centre
//!   y, width, height), 6 keypoints, score = sigmoid(clip(logit, ±100)); minimum score 0.75
//!   (MediaPipe: 0.5; see [`DEFAULT_MIN_SCORE`]);
//! - suppression: `NonMaxSuppressionCalculator`, weighted, IoU above 0.3 merges.
//!
//! Every face found is reported; no face is `Detections { faces: vec![] }`, not an error.
//! Coordinates follow `crate::vision::frame` (continuous pixels, y down).

use burn::tensor::Device;

use crate::model::blazeface::{
    BlazeFace, BlazeFaceError, INPUT_SIZE, NUM_ANCHORS, NUM_COORDS, input_from_rgb8,
};
use crate::vision::frame::{Frame, Point};

/// Minimum face score. MediaPipe's graph uses 0.5; 0.75 is the default of TensorFlow.js'
/// `@tensorflow-models/blazeface` and of the Unity package the weights come from, and on the
/// shared photos it is what separates faces (0.76 and up, LFW 0.80 and up) from the one false
/// detection at 0.5 (0.71, the seal behind the podium in `obama1.jpg`).
pub const DEFAULT_MIN_SCORE: f32 = 0.75;
/// MediaPipe's `min_suppression_threshold`: candidates overlapping more than this (IoU) merge.
pub const DEFAULT_IOU_THRESHOLD: f32 = 0.3;
/// Logits are clipped to ±this before the sigmoid (MediaPipe's `score_clipping_thresh`).
pub const SCORE_CLIP: f32 = 100.0;
/// Keypoints per face.
pub const NUM_KEYPOINTS: usize = 6;

/// Errors while detecting faces (finding none is not one of them).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Model(#[from] BlazeFaceError),
    #[error("detector output has {found} values, expected {expected}")]
    OutputSize { expected: usize, found: usize },
}

/// The 6 keypoints, in BlazeFace's output order. "Right" and "left" are the person's own: in an
/// unmirrored photo of someone facing the camera the right eye is on the image's left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keypoint {
    RightEye = 0,
    LeftEye = 1,
    NoseTip = 2,
    MouthCentre = 3,
    RightEarTragion = 4,
    LeftEarTragion = 5,
}

/// An anchor centre in normalised input coordinates ([0, 1]); fixed size 1×1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Anchor {
    pub x_centre: f32,
    pub y_centre: f32,
}

/// The options of MediaPipe's `SsdAnchorsCalculator` that the fixed-size anchors depend on.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorOptions {
    pub input_size: usize,
    pub strides: Vec<usize>,
    /// Anchors per layer and cell: one per aspect ratio, plus one interpolated scale.
    pub anchors_per_layer: usize,
    pub anchor_offset: f32,
}

impl AnchorOptions {
    /// `face_detection_short_range.pbtxt`: 4 layers, strides 8, 16, 16, 16, aspect ratio 1.0,
    /// `interpolated_scale_aspect_ratio` 1.0 (so 2 anchors per layer), offset 0.5.
    pub fn short_range() -> Self {
        Self {
            input_size: INPUT_SIZE,
            strides: vec![8, 16, 16, 16],
            anchors_per_layer: 2,
            anchor_offset: 0.5,
        }
    }
}

/// Anchor centres in MediaPipe's order: per group of consecutive layers with the same stride,
/// rows, then columns, then the anchors of all layers of the group.
pub fn ssd_anchors(options: &AnchorOptions) -> Vec<Anchor> {
    let mut anchors = Vec::new();
    let mut layer = 0;
    while layer < options.strides.len() {
        let stride = options.strides[layer];
        let mut last = layer;
        while last < options.strides.len() && options.strides[last] == stride {
            last += 1;
        }
        let per_cell = (last - layer) * options.anchors_per_layer;
        let cells = options.input_size.div_ceil(stride);
        for y in 0..cells {
            for x in 0..cells {
                let anchor = Anchor {
                    x_centre: (x as f32 + options.anchor_offset) / cells as f32,
                    y_centre: (y as f32 + options.anchor_offset) / cells as f32,
                };
                anchors.extend(std::iter::repeat_n(anchor, per_cell));
            }
        }
        layer = last;
    }
    anchors
}

/// An axis-aligned box in pixel coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct BoundingBox {
    pub x_min: f32,
    pub y_min: f32,
    pub width: f32,
    pub height: f32,
}

impl BoundingBox {
    pub fn x_max(&self) -> f32 {
        self.x_min + self.width
    }

    pub fn y_max(&self) -> f32 {
        self.y_min + self.height
    }

    pub fn centre(&self) -> Point {
        Point::new(
            self.x_min + self.width / 2.0,
            self.y_min + self.height / 2.0,
        )
    }

    pub fn area(&self) -> f32 {
        self.width.max(0.0) * self.height.max(0.0)
    }

    /// Intersection over union (0 when either box is empty).
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let w = (self.x_max().min(other.x_max()) - self.x_min.max(other.x_min)).max(0.0);
        let h = (self.y_max().min(other.y_max()) - self.y_min.max(other.y_min)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 { inter / union } else { 0.0 }
    }
}

/// One detected face.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Face {
    /// Probability that this is a face, 0..1.
    pub score: f32,
    pub bbox: BoundingBox,
    /// Indexed by [`Keypoint`].
    pub keypoints: [Point; NUM_KEYPOINTS],
}

impl Face {
    pub fn keypoint(&self, which: Keypoint) -> Point {
        self.keypoints[which as usize]
    }

    /// The same face with every coordinate mapped by `f` (the box through its two corners, which
    /// is exact for the scale-and-shift maps used here).
    pub fn map(&self, f: impl Fn(Point) -> Point) -> Face {
        let a = f(Point::new(self.bbox.x_min, self.bbox.y_min));
        let b = f(Point::new(self.bbox.x_max(), self.bbox.y_max()));
        Face {
            score: self.score,
            bbox: BoundingBox {
                x_min: a.x,
                y_min: a.y,
                width: b.x - a.x,
                height: b.y - a.y,
            },
            keypoints: self.keypoints.map(f),
        }
    }
}

/// Every face found in one frame, highest score first. Empty when there is none.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Detections {
    pub faces: Vec<Face>,
}

impl Detections {
    pub fn is_empty(&self) -> bool {
        self.faces.is_empty()
    }

    pub fn len(&self) -> usize {
        self.faces.len()
    }

    /// The face with the largest box (the person nearest the camera), if any.
    pub fn largest(&self) -> Option<&Face> {
        self.faces
            .iter()
            .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    }

    /// What the pipeline works on: the largest face, and how many faces there were.
    pub fn pick_largest(&self) -> LargestFace {
        LargestFace {
            face: self.largest().copied(),
            faces_seen: self.faces.len(),
        }
    }
}

/// The pipeline's choice: the largest face (`None` when there was no face) and how many faces
/// the detector saw, so that the caller can say "2 faces in view" instead of silently picking.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LargestFace {
    pub face: Option<Face>,
    pub faces_seen: usize,
}

/// How a frame maps onto the square network input: the frame's square region of side `side`
/// whose top-left corner is `origin` (outside the frame where the frame is not square; that part
/// is black) is scaled onto `[0, 128]²`. This is MediaPipe's `keep_aspect_ratio` letterbox with
/// zero borders, and its inverse (`DetectionLetterboxRemovalCalculator`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    pub origin: Point,
    pub side: f32,
}

impl Letterbox {
    /// The centred square that holds the whole frame.
    pub fn for_frame(width: u32, height: u32) -> Self {
        let side = width.max(height) as f32;
        Self {
            origin: Point::new((width as f32 - side) / 2.0, (height as f32 - side) / 2.0),
            side,
        }
    }

    /// Frame pixels per input pixel.
    pub fn scale(&self) -> f32 {
        self.side / INPUT_SIZE as f32
    }

    /// Input (128×128) coordinates → frame coordinates.
    pub fn to_frame(&self, p: Point) -> Point {
        let s = self.scale();
        Point::new(self.origin.x + p.x * s, self.origin.y + p.y * s)
    }

    /// Frame coordinates → input (128×128) coordinates.
    pub fn to_input(&self, p: Point) -> Point {
        let s = self.scale();
        Point::new((p.x - self.origin.x) / s, (p.y - self.origin.y) / s)
    }

    /// The 128×128 RGB8 network input: each input pixel is the exact area average of the frame
    /// region it covers (black outside the frame), computed in f64 and rounded half up. Area
    /// averaging rather than point sampling because frames are usually much larger than 128.
    pub fn resample(&self, frame: &Frame) -> Vec<u8> {
        let n = INPUT_SIZE;
        let s = f64::from(self.side) / n as f64;
        // Per axis: for each input index, the (frame index, weight) pairs of its interval,
        // weights as fractions of the interval; indices outside the frame are dropped (black).
        let weights = |origin: f32, limit: u32| -> Vec<Vec<(u32, f64)>> {
            (0..n)
                .map(|o| {
                    let a = f64::from(origin) + o as f64 * s;
                    let b = a + s;
                    let mut w = Vec::new();
                    let mut k = a.floor() as i64;
                    while (k as f64) < b {
                        let overlap = (b.min(k as f64 + 1.0) - a.max(k as f64)).max(0.0);
                        if overlap > 0.0 && k >= 0 && k < i64::from(limit) {
                            w.push((k as u32, overlap / s));
                        }
                        k += 1;
                    }
                    w
                })
                .collect()
        };
        let wx = weights(self.origin.x, frame.width());
        let wy = weights(self.origin.y, frame.height());
        let (width, pixels) = (frame.width() as usize, frame.pixels());
        let mut out = Vec::with_capacity(n * n * 3);
        for row in &wy {
            for col in &wx {
                let mut acc = [0f64; 3];
                for &(y, fy) in row {
                    let line = y as usize * width;
                    for &(x, fx) in col {
                        let i = (line + x as usize) * 3;
                        let w = fy * fx;
                        acc[0] += w * f64::from(pixels[i]);
                        acc[1] += w * f64::from(pixels[i + 1]);
                        acc[2] += w * f64::from(pixels[i + 2]);
                    }
                }
                for v in acc {
                    out.push((v + 0.5).floor().clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }
}

/// The letterboxed 128×128 RGB8 input of `frame` and the mapping back to the frame.
pub fn letterbox(frame: &Frame) -> (Vec<u8>, Letterbox) {
    let lb = Letterbox::for_frame(frame.width(), frame.height());
    (lb.resample(frame), lb)
}

/// sigmoid(clip(logit, ±[`SCORE_CLIP`])).
pub fn score_from_logit(logit: f32) -> f32 {
    let x = logit.clamp(-SCORE_CLIP, SCORE_CLIP);
    1.0 / (1.0 + (-x).exp())
}

/// Candidates of one image, in input pixels (128×128), before suppression: every anchor whose
/// score reaches `min_score`. `scores`: 896 logits; `boxes`: 896 × 16 regression values.
pub fn decode(scores: &[f32], boxes: &[f32], anchors: &[Anchor], min_score: f32) -> Vec<Face> {
    let size = INPUT_SIZE as f32;
    let mut faces = Vec::new();
    for (i, anchor) in anchors.iter().enumerate() {
        let score = score_from_logit(scores[i]);
        if score < min_score {
            continue;
        }
        let r = &boxes[i * NUM_COORDS..(i + 1) * NUM_COORDS];
        // MediaPipe: centre = raw / scale * anchor_size + anchor_centre, in normalised units
        // (scale 128, anchor size 1); here times 128 to get input pixels.
        let (cx, cy) = (
            (r[0] / size + anchor.x_centre) * size,
            (r[1] / size + anchor.y_centre) * size,
        );
        let (w, h) = (r[2], r[3]);
        let mut keypoints = [Point::default(); NUM_KEYPOINTS];
        for (k, p) in keypoints.iter_mut().enumerate() {
            *p = Point::new(
                (r[4 + 2 * k] / size + anchor.x_centre) * size,
                (r[5 + 2 * k] / size + anchor.y_centre) * size,
            );
        }
        faces.push(Face {
            score,
            bbox: BoundingBox {
                x_min: cx - w / 2.0,
                y_min: cy - h / 2.0,
                width: w,
                height: h,
            },
            keypoints,
        });
    }
    faces
}

/// MediaPipe's weighted non-maximum suppression: take the best remaining candidate, merge it
/// with every remaining candidate whose IoU with it exceeds `iou_threshold` (itself included),
/// weighting box corners and keypoints by score; the merged face keeps the best score.
pub fn weighted_nms(mut candidates: Vec<Face>, iou_threshold: f32) -> Vec<Face> {
    // Stable sort: equal scores keep anchor order, which the reference script reproduces.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut faces = Vec::new();
    while let Some(best) = candidates.first().copied() {
        let (merged, rest): (Vec<Face>, Vec<Face>) = candidates
            .into_iter()
            .partition(|c| c.bbox.iou(&best.bbox) > iou_threshold);
        let total: f32 = merged.iter().map(|c| c.score).sum();
        let mut corners = [0f32; 4];
        let mut keypoints = [Point::default(); NUM_KEYPOINTS];
        for c in &merged {
            let w = c.score;
            corners[0] += c.bbox.x_min * w;
            corners[1] += c.bbox.y_min * w;
            corners[2] += c.bbox.x_max() * w;
            corners[3] += c.bbox.y_max() * w;
            for (acc, p) in keypoints.iter_mut().zip(&c.keypoints) {
                acc.x += p.x * w;
                acc.y += p.y * w;
            }
        }
        let face = if merged.is_empty() || total <= 0.0 {
            // Only when the best box is empty (IoU 0 with itself): keep it as it is.
            best
        } else {
            let [x0, y0, x1, y1] = corners.map(|v| v / total);
            Face {
                score: best.score,
                bbox: BoundingBox {
                    x_min: x0,
                    y_min: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                },
                keypoints: keypoints.map(|p| Point::new(p.x / total, p.y / total)),
            }
        };
        faces.push(face);
        candidates = if merged.is_empty() {
            rest.into_iter().skip(1).collect()
        } else {
            rest
        };
    }
    faces
}

/// Thresholds of the detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorOptions {
    pub min_score: f32,
    pub iou_threshold: f32,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        Self {
            min_score: DEFAULT_MIN_SCORE,
            iou_threshold: DEFAULT_IOU_THRESHOLD,
        }
    }
}

/// Decode one image's raw outputs into faces in input (128×128) pixels.
pub fn faces_in_input(
    scores: &[f32],
    boxes: &[f32],
    anchors: &[Anchor],
    options: &DetectorOptions,
) -> Vec<Face> {
    weighted_nms(
        decode(scores, boxes, anchors, options.min_score),
        options.iou_threshold,
    )
}

/// BlazeFace with its anchors and thresholds, on one device.
#[derive(Debug)]
pub struct FaceDetector {
    model: BlazeFace,
    anchors: Vec<Anchor>,
    pub options: DetectorOptions,
    device: Device,
}

impl FaceDetector {
    pub fn new(model: BlazeFace, device: &Device) -> Self {
        Self {
            model,
            anchors: ssd_anchors(&AnchorOptions::short_range()),
            options: DetectorOptions::default(),
            device: device.clone(),
        }
    }

    /// From the bytes of `models/blazeface.f16.bin`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self, DetectError> {
        Ok(Self::new(BlazeFace::from_bytes(bytes, device)?, device))
    }

    pub fn with_options(mut self, options: DetectorOptions) -> Self {
        self.options = options;
        self
    }

    pub fn model(&self) -> &BlazeFace {
        &self.model
    }

    pub fn anchors(&self) -> &[Anchor] {
        &self.anchors
    }

    /// Every face in `frame`, in frame coordinates, highest score first.
    pub async fn detect(&self, frame: &Frame) -> Result<Detections, DetectError> {
        let mut all = self.detect_batch(std::slice::from_ref(frame)).await?;
        Ok(all.pop().unwrap_or_default())
    }

    /// The largest face in `frame` and how many faces it holds.
    pub async fn detect_largest(&self, frame: &Frame) -> Result<LargestFace, DetectError> {
        Ok(self.detect(frame).await?.pick_largest())
    }

    /// [`FaceDetector::detect`] for several frames in one forward pass.
    pub async fn detect_batch(&self, frames: &[Frame]) -> Result<Vec<Detections>, DetectError> {
        if frames.is_empty() {
            return Ok(Vec::new());
        }
        let mut pixels = Vec::with_capacity(frames.len() * INPUT_SIZE * INPUT_SIZE * 3);
        let mut boxes = Vec::with_capacity(frames.len());
        for frame in frames {
            let (input, lb) = letterbox(frame);
            pixels.extend_from_slice(&input);
            boxes.push(lb);
        }
        let raw = self
            .model
            .run(input_from_rgb8(&pixels, &self.device))
            .await?;
        let expected = frames.len() * NUM_ANCHORS;
        if raw.scores.len() != expected || raw.boxes.len() != expected * NUM_COORDS {
            return Err(DetectError::OutputSize {
                expected: expected * (1 + NUM_COORDS),
                found: raw.scores.len() + raw.boxes.len(),
            });
        }
        Ok(boxes
            .iter()
            .enumerate()
            .map(|(i, lb)| {
                let scores = &raw.scores[i * NUM_ANCHORS..(i + 1) * NUM_ANCHORS];
                let regs =
                    &raw.boxes[i * NUM_ANCHORS * NUM_COORDS..(i + 1) * NUM_ANCHORS * NUM_COORDS];
                Detections {
                    faces: faces_in_input(scores, regs, &self.anchors, &self.options)
                        .iter()
                        .map(|f| f.map(|p| lb.to_frame(p)))
                        .collect(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(score: f32, x: f32, y: f32, side: f32) -> Face {
        Face {
            score,
            bbox: BoundingBox {
                x_min: x,
                y_min: y,
                width: side,
                height: side,
            },
            keypoints: [Point::new(x + side / 2.0, y + side / 2.0); NUM_KEYPOINTS],
        }
    }

    #[test]
    fn short_range_has_896_anchors_in_mediapipe_order() {
        let anchors = ssd_anchors(&AnchorOptions::short_range());
        assert_eq!(anchors.len(), NUM_ANCHORS);
        // A 16×16 map with 2 anchors per cell, then an 8×8 map with 6; cells row-major.
        for (first, side, per_cell) in [(0, 16, 2), (512, 8, 6)] {
            let cell =
                |row: usize, column: usize| anchors[first + (row * side + column) * per_cell];
            let centre = |i: usize| (i as f32 + 0.5) / side as f32;
            let top_left = Anchor {
                x_centre: centre(0),
                y_centre: centre(0),
            };
            assert_eq!(cell(0, 0), top_left);
            assert_eq!(anchors[first + per_cell - 1], top_left);
            assert_eq!(cell(0, 1).x_centre, centre(1));
            assert_eq!(cell(1, 0).y_centre, centre(1));
        }
        assert_eq!(anchors[NUM_ANCHORS - 1].x_centre, 7.5 / 8.0);
    }

    #[test]
    fn scores_are_clipped_sigmoids() {
        assert_eq!(score_from_logit(0.0), 0.5);
        assert_eq!(score_from_logit(1e9), score_from_logit(SCORE_CLIP));
        assert!(score_from_logit(-1e9) >= 0.0);
    }

    #[test]
    fn decode_places_boxes_relative_to_anchors() {
        let anchors = [Anchor {
            x_centre: 0.25,
            y_centre: 0.5,
        }];
        let mut regs = [0f32; NUM_COORDS];
        regs[..4].copy_from_slice(&[2.0, -4.0, 20.0, 30.0]);
        regs[4] = 1.0;
        regs[15] = -1.0;
        let faces = decode(&[3.0], &regs, &anchors, 0.5);
        assert_eq!(faces.len(), 1);
        let f = faces[0];
        assert_eq!(f.bbox.centre(), Point::new(34.0, 60.0));
        assert_eq!((f.bbox.width, f.bbox.height), (20.0, 30.0));
        assert_eq!(f.keypoints[0], Point::new(33.0, 64.0));
        assert_eq!(f.keypoints[5], Point::new(32.0, 63.0));
        assert!(decode(&[-3.0], &regs, &anchors, 0.5).is_empty());
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let faces = weighted_nms(
            vec![
                face(0.6, 10.0, 10.0, 20.0),
                face(0.9, 12.0, 10.0, 20.0),
                face(0.8, 80.0, 80.0, 30.0),
            ],
            0.3,
        );
        assert_eq!(faces.len(), 2);
        assert_eq!(faces[0].score, 0.9);
        let x = (0.9 * 12.0 + 0.6 * 10.0) / 1.5;
        assert!((faces[0].bbox.x_min - x).abs() < 1e-5);
        assert!((faces[0].bbox.width - 20.0).abs() < 1e-5);
        assert_eq!(faces[1], face(0.8, 80.0, 80.0, 30.0));
        assert!(weighted_nms(vec![], 0.3).is_empty());
    }

    #[test]
    fn letterbox_round_trips_and_pads_black() {
        let frame = Frame::uniform(200, 100, [200, 100, 50]).unwrap();
        let (input, lb) = letterbox(&frame);
        assert_eq!(input.len(), INPUT_SIZE * INPUT_SIZE * 3);
        assert_eq!(lb.origin, Point::new(0.0, -50.0));
        let p = Point::new(37.5, 81.25);
        let q = lb.to_input(lb.to_frame(p));
        assert!((p.x - q.x).abs() < 1e-4 && (p.y - q.y).abs() < 1e-4);
        // Rows 0..32 cover y in [-50, 0): black; the middle is the frame's colour.
        assert_eq!(&input[..3], &[0, 0, 0]);
        let mid = (64 * INPUT_SIZE + 64) * 3;
        assert_eq!(&input[mid..mid + 3], &[200, 100, 50]);
        assert_eq!(lb.to_frame(Point::new(64.0, 64.0)), Point::new(100.0, 50.0));
    }

    #[test]
    fn largest_face_and_count() {
        let d = Detections {
            faces: vec![face(0.9, 0.0, 0.0, 10.0), face(0.7, 50.0, 50.0, 40.0)],
        };
        let pick = d.pick_largest();
        assert_eq!(pick.faces_seen, 2);
        assert_eq!(pick.face.unwrap().score, 0.7);
        let none = Detections::default().pick_largest();
        assert_eq!((none.face, none.faces_seen), (None, 0));
    }
}
