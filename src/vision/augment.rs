//! Data augmentation: more training images from few captures, reproducible from a seed.
//!
//! Two sets, both on RGB8 [`Frame`]s and both drawing every random choice from
//! [`SeededRng`] (so the same seed gives the same images on every platform, and a resumed
//! training run sees the same data as an uninterrupted one):
//!
//! - [`PhotometricAugmentation`]: the tutorial's `data_aug` — brightness ±0.02, contrast
//!   0.6–1, a horizontal flip half of the time, a JPEG re-encode at quality 90–100 and
//!   saturation 0.9–1, in that order, 9 variants per photo. Values follow TensorFlow's
//!   `tf.image.stateless_random_*` on images scaled to 0..1 (brightness adds `δ·255` here).
//! - [`AffineAugmentation`]: Koch et al.'s distortions (Siamese Neural Networks for One-shot
//!   Image Recognition, §4.2) — rotation ±10°, shear ±0.3, scale 0.8–1.2 per axis and
//!   translation ±2 px, each component included with probability ½ as in the paper, about the
//!   image centre, bilinear, black where the source falls outside the image (like the borders
//!   of LFW's aligned photos).

use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::frame::{Frame, FrameError};
use crate::train::pairs::SeededRng;

/// Why a variant could not be made.
#[derive(Debug, Error)]
pub enum AugmentError {
    /// Encoding or decoding the JPEG round trip failed (the `image` crate's error).
    #[error("re-encoding the image as JPEG failed: {0}")]
    Jpeg(#[from] image::ImageError),
    /// The decoded JPEG did not have the frame's size (cannot happen with a sane codec).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A range in the settings is empty or reversed.
    #[error("augmentation setting {name}: range {low}..={high} is invalid")]
    Range {
        /// The setting.
        name: &'static str,
        /// Its lower bound.
        low: f64,
        /// Its upper bound.
        high: f64,
    },
}

/// The tutorial's photometric augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhotometricAugmentation {
    /// Largest brightness change, as a fraction of full scale (tutorial: 0.02).
    pub max_brightness_delta: f64,
    /// Contrast factor range (tutorial: 0.6–1).
    pub contrast: (f64, f64),
    /// Probability of a horizontal flip (tutorial: ½).
    pub flip_probability: f64,
    /// JPEG quality range, inclusive (tutorial: 90–100).
    pub jpeg_quality: (u8, u8),
    /// Saturation factor range (tutorial: 0.9–1).
    pub saturation: (f64, f64),
    /// Variants per photo (tutorial: 9).
    pub variants_per_image: usize,
}

impl Default for PhotometricAugmentation {
    fn default() -> Self {
        Self {
            max_brightness_delta: 0.02,
            contrast: (0.6, 1.0),
            flip_probability: 0.5,
            jpeg_quality: (90, 100),
            saturation: (0.9, 1.0),
            variants_per_image: 9,
        }
    }
}

/// The random choices of one photometric variant (kept so tests and logs can say what was done).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhotometricDraw {
    /// Added to every channel, in 0..255 units.
    pub brightness_delta: f64,
    /// Contrast factor around each channel's mean.
    pub contrast: f64,
    /// Mirrored left–right.
    pub flipped: bool,
    /// JPEG quality of the re-encode.
    pub jpeg_quality: u8,
    /// Saturation factor around each pixel's grey value.
    pub saturation: f64,
}

fn check_range(name: &'static str, (low, high): (f64, f64)) -> Result<(), AugmentError> {
    if low.is_finite() && high.is_finite() && low <= high {
        Ok(())
    } else {
        Err(AugmentError::Range { name, low, high })
    }
}

impl PhotometricAugmentation {
    /// Checks every range.
    pub fn validate(&self) -> Result<(), AugmentError> {
        check_range(
            "max_brightness_delta",
            (0.0, self.max_brightness_delta.abs()),
        )?;
        check_range("contrast", self.contrast)?;
        check_range("flip_probability", (0.0, self.flip_probability))?;
        check_range(
            "jpeg_quality",
            (
                f64::from(self.jpeg_quality.0.max(1)),
                f64::from(self.jpeg_quality.1.min(100)),
            ),
        )?;
        check_range("saturation", self.saturation)
    }

    /// Draws the random choices of one variant.
    pub fn draw(&self, rng: &mut SeededRng) -> PhotometricDraw {
        let (q_low, q_high) = (self.jpeg_quality.0.max(1), self.jpeg_quality.1.min(100));
        PhotometricDraw {
            brightness_delta: rng.uniform(-self.max_brightness_delta, self.max_brightness_delta)
                * 255.0,
            contrast: rng.uniform(self.contrast.0, self.contrast.1),
            flipped: rng.next_f64() < self.flip_probability,
            jpeg_quality: q_low + rng.below(usize::from(q_high - q_low) + 1) as u8,
            saturation: rng.uniform(self.saturation.0, self.saturation.1),
        }
    }

    /// One variant of `frame` with the given choices, in the tutorial's order.
    pub fn apply(&self, frame: &Frame, draw: &PhotometricDraw) -> Result<Frame, AugmentError> {
        let (width, height) = (frame.width(), frame.height());
        let mut values: Vec<f64> = frame.pixels().iter().map(|&v| f64::from(v)).collect();
        // Brightness: TensorFlow adds the delta without clipping; the JPEG step below clips.
        for v in &mut values {
            *v += draw.brightness_delta;
        }
        // Contrast: each channel's mean over the image stays, deviations scale
        // (tf.image.adjust_contrast).
        let pixels = values.len() / 3;
        for channel in 0..3 {
            let mean = values.iter().skip(channel).step_by(3).sum::<f64>() / pixels as f64;
            for v in values.iter_mut().skip(channel).step_by(3) {
                *v = (*v - mean) * draw.contrast + mean;
            }
        }
        let mut bytes: Vec<u8> = values
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect();
        if draw.flipped {
            let row = width as usize * 3;
            for line in bytes.chunks_exact_mut(row) {
                let (mut left, mut right) = (0, width as usize - 1);
                while left < right {
                    for c in 0..3 {
                        line.swap(left * 3 + c, right * 3 + c);
                    }
                    left += 1;
                    right -= 1;
                }
            }
        }
        let bytes = jpeg_round_trip(&bytes, width, height, draw.jpeg_quality)?;
        Ok(Frame::new(
            width,
            height,
            adjust_saturation(bytes, draw.saturation),
        )?)
    }

    /// `variants_per_image` variants of `frame`, drawn from `rng`.
    pub fn variants(&self, frame: &Frame, rng: &mut SeededRng) -> Result<Vec<Frame>, AugmentError> {
        self.validate()?;
        (0..self.variants_per_image)
            .map(|_| {
                let draw = self.draw(rng);
                self.apply(frame, &draw)
            })
            .collect()
    }
}

/// Encodes RGB8 as JPEG at `quality` and decodes it again: the compression artefacts a photo
/// from another camera or an upload would have.
fn jpeg_round_trip(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, AugmentError> {
    let mut encoded = Vec::new();
    JpegEncoder::new_with_quality(&mut encoded, quality).write_image(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    let decoded = image::load_from_memory_with_format(&encoded, image::ImageFormat::Jpeg)?;
    Ok(decoded.to_rgb8().into_raw())
}

/// Scales each pixel's colourfulness by `factor` around its grey value (Rec. 601 luma).
///
/// TensorFlow scales the S of HSV; mixing with grey is the same idea without the round trip
/// through HSV, and is exact for grey images (LFW), which it leaves unchanged.
fn adjust_saturation(mut rgb: Vec<u8>, factor: f64) -> Vec<u8> {
    for pixel in rgb.chunks_exact_mut(3) {
        let grey =
            0.299 * f64::from(pixel[0]) + 0.587 * f64::from(pixel[1]) + 0.114 * f64::from(pixel[2]);
        for value in pixel.iter_mut() {
            let adjusted = grey + (f64::from(*value) - grey) * factor;
            *value = adjusted.round().clamp(0.0, 255.0) as u8;
        }
    }
    rgb
}

/// Koch et al.'s affine distortions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AffineAugmentation {
    /// Largest rotation in degrees (Koch: 10).
    pub max_rotation_degrees: f64,
    /// Largest shear (Koch: 0.3).
    pub max_shear: f64,
    /// Scale range per axis (Koch: 0.8–1.2).
    pub scale: (f64, f64),
    /// Largest translation in pixels (Koch: 2).
    pub max_translation: f64,
    /// Probability that each component is applied (Koch: ½).
    pub component_probability: f64,
}

impl Default for AffineAugmentation {
    fn default() -> Self {
        Self {
            max_rotation_degrees: 10.0,
            max_shear: 0.3,
            scale: (0.8, 1.2),
            max_translation: 2.0,
            component_probability: 0.5,
        }
    }
}

/// The random choices of one affine variant; components left out are the identity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AffineDraw {
    /// Rotation in radians.
    pub rotation: f64,
    /// Horizontal and vertical shear.
    pub shear: (f64, f64),
    /// Horizontal and vertical scale.
    pub scale: (f64, f64),
    /// Translation in pixels.
    pub translation: (f64, f64),
}

impl AffineDraw {
    /// No change.
    pub const IDENTITY: Self = Self {
        rotation: 0.0,
        shear: (0.0, 0.0),
        scale: (1.0, 1.0),
        translation: (0.0, 0.0),
    };

    /// The 2×2 linear part `R · Sh · Sc` (scale, then shear, then rotate), row-major.
    pub fn matrix(&self) -> [[f64; 2]; 2] {
        let (sin, cos) = self.rotation.sin_cos();
        let rotation = [[cos, -sin], [sin, cos]];
        let shear = [[1.0, self.shear.0], [self.shear.1, 1.0]];
        let scale = [[self.scale.0, 0.0], [0.0, self.scale.1]];
        multiply(multiply(rotation, shear), scale)
    }
}

fn multiply(a: [[f64; 2]; 2], b: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    [
        [
            a[0][0] * b[0][0] + a[0][1] * b[1][0],
            a[0][0] * b[0][1] + a[0][1] * b[1][1],
        ],
        [
            a[1][0] * b[0][0] + a[1][1] * b[1][0],
            a[1][0] * b[0][1] + a[1][1] * b[1][1],
        ],
    ]
}

impl AffineAugmentation {
    /// Draws one variant's choices; each component is kept with `component_probability`.
    pub fn draw(&self, rng: &mut SeededRng) -> AffineDraw {
        let mut draw = AffineDraw::IDENTITY;
        let p = self.component_probability;
        // Every draw consumes the same numbers whether or not a component is kept, so changing
        // one probability does not reshuffle the others.
        let (keep_rotation, rotation) = (
            rng.next_f64() < p,
            rng.uniform(-self.max_rotation_degrees, self.max_rotation_degrees),
        );
        let (keep_shear, shear) = (
            rng.next_f64() < p,
            (
                rng.uniform(-self.max_shear, self.max_shear),
                rng.uniform(-self.max_shear, self.max_shear),
            ),
        );
        let (keep_scale, scale) = (
            rng.next_f64() < p,
            (
                rng.uniform(self.scale.0, self.scale.1),
                rng.uniform(self.scale.0, self.scale.1),
            ),
        );
        let (keep_translation, translation) = (
            rng.next_f64() < p,
            (
                rng.uniform(-self.max_translation, self.max_translation),
                rng.uniform(-self.max_translation, self.max_translation),
            ),
        );
        if keep_rotation {
            draw.rotation = rotation.to_radians();
        }
        if keep_shear {
            draw.shear = shear;
        }
        if keep_scale {
            draw.scale = scale;
        }
        if keep_translation {
            draw.translation = translation;
        }
        draw
    }

    /// `frame` distorted by `draw` about its centre, same size.
    pub fn apply(&self, frame: &Frame, draw: &AffineDraw) -> Frame {
        warp_affine(frame, draw)
    }

    /// `count` variants of `frame`.
    pub fn variants(&self, frame: &Frame, count: usize, rng: &mut SeededRng) -> Vec<Frame> {
        (0..count)
            .map(|_| {
                let draw = self.draw(rng);
                self.apply(frame, &draw)
            })
            .collect()
    }
}

/// Output pixel centre `q` samples the source at `A⁻¹ (q − c − t) + c` (c: image centre),
/// bilinearly between pixel centres; samples outside the image are black.
fn warp_affine(frame: &Frame, draw: &AffineDraw) -> Frame {
    let [[a, b], [c, d]] = draw.matrix();
    let determinant = a * d - b * c;
    // Scales ≥ 0.8 and shears ≤ 0.3 keep the determinant far from 0; guard anyway.
    let inverse = if determinant.abs() < 1e-9 {
        [[1.0, 0.0], [0.0, 1.0]]
    } else {
        [
            [d / determinant, -b / determinant],
            [-c / determinant, a / determinant],
        ]
    };
    let (width, height) = (frame.width() as usize, frame.height() as usize);
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let source = frame.pixels();
    let mut out = vec![0u8; source.len()];
    for row in 0..height {
        for column in 0..width {
            let qx = column as f64 + 0.5 - cx - draw.translation.0;
            let qy = row as f64 + 0.5 - cy - draw.translation.1;
            let px = inverse[0][0] * qx + inverse[0][1] * qy + cx;
            let py = inverse[1][0] * qx + inverse[1][1] * qy + cy;
            if px < 0.0 || py < 0.0 || px >= width as f64 || py >= height as f64 {
                continue;
            }
            // Index space: pixel centres at integers; taps clamp to the edge inside the image.
            let (u, v) = (px - 0.5, py - 0.5);
            let (x0, y0) = (u.floor(), v.floor());
            let (fx, fy) = (u - x0, v - y0);
            let clamp_x = |x: f64| (x.max(0.0) as usize).min(width - 1);
            let clamp_y = |y: f64| (y.max(0.0) as usize).min(height - 1);
            let (xa, xb) = (clamp_x(x0), clamp_x(x0 + 1.0));
            let (ya, yb) = (clamp_y(y0), clamp_y(y0 + 1.0));
            let tap = |x: usize, y: usize, channel: usize| {
                f64::from(source[(y * width + x) * 3 + channel])
            };
            for channel in 0..3 {
                let value = (1.0 - fy)
                    * ((1.0 - fx) * tap(xa, ya, channel) + fx * tap(xb, ya, channel))
                    + fy * ((1.0 - fx) * tap(xa, yb, channel) + fx * tap(xb, yb, channel));
                out[(row * width + column) * 3 + channel] = value.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Frame::new(frame.width(), frame.height(), out).expect("the warp keeps the frame's size")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A colourful frame with structure: a gradient left to right, another top to bottom.
    fn gradient(width: u32, height: u32) -> Frame {
        let mut pixels = Vec::new();
        for y in 0..height {
            for x in 0..width {
                pixels.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 128u8]);
            }
        }
        Frame::new(width, height, pixels).unwrap()
    }

    /// `count` draws in a row from one generator seeded with `seed`.
    fn draws<D>(seed: u64, count: usize, mut draw: impl FnMut(&mut SeededRng) -> D) -> Vec<D> {
        let mut rng = SeededRng::new(seed);
        (0..count).map(|_| draw(&mut rng)).collect()
    }

    fn mean_abs_diff(a: &Frame, b: &Frame) -> f64 {
        a.pixels()
            .iter()
            .zip(b.pixels())
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
            .sum::<f64>()
            / a.pixels().len() as f64
    }

    #[test]
    fn draws_stay_in_the_tutorials_ranges_and_repeat_for_a_seed() {
        let augmentation = PhotometricAugmentation::default();
        let draws = draws(3, 500, |rng| augmentation.draw(rng));
        for draw in &draws {
            assert!(draw.brightness_delta.abs() <= 0.02 * 255.0);
            assert!((0.6..=1.0).contains(&draw.contrast));
            assert!((90..=100).contains(&draw.jpeg_quality));
            assert!((0.9..=1.0).contains(&draw.saturation));
        }
        let flips = draws.iter().filter(|draw| draw.flipped).count();
        assert!((200..300).contains(&flips), "{flips} flips of 500");
        let first = augmentation.draw(&mut SeededRng::new(8));
        assert_eq!(first, augmentation.draw(&mut SeededRng::new(8)));
    }

    #[test]
    fn nine_variants_per_photo_each_close_to_the_original_and_reproducible() {
        let frame = gradient(40, 30);
        let augmentation = PhotometricAugmentation::default();
        let variants = augmentation
            .variants(&frame, &mut SeededRng::new(1))
            .unwrap();
        assert_eq!(variants.len(), 9);
        for variant in &variants {
            assert_eq!((variant.width(), variant.height()), (40, 30));
        }
        let again = augmentation
            .variants(&frame, &mut SeededRng::new(1))
            .unwrap();
        assert_eq!(variants, again);
        assert_ne!(variants[0], variants[1]);
    }

    /// The choices that change nothing but for the re-encode at the best JPEG quality.
    const IDENTITY_CHOICES: PhotometricDraw = PhotometricDraw {
        brightness_delta: 0.0,
        contrast: 1.0,
        flipped: false,
        jpeg_quality: 100,
        saturation: 1.0,
    };

    #[test]
    fn identity_choices_change_the_photo_only_by_jpeg_rounding() {
        let frame = gradient(32, 32);
        let out = PhotometricAugmentation::default()
            .apply(&frame, &IDENTITY_CHOICES)
            .unwrap();
        assert!(mean_abs_diff(&frame, &out) < 2.0);
    }

    #[test]
    fn flip_mirrors_and_contrast_keeps_the_mean() {
        let frame = gradient(32, 32);
        let mut draw = PhotometricDraw {
            flipped: true,
            ..IDENTITY_CHOICES
        };
        let augmentation = PhotometricAugmentation::default();
        let flipped = augmentation.apply(&frame, &draw).unwrap();
        // The red gradient now falls from left to right.
        assert!(flipped.pixel(0, 10)[0] > flipped.pixel(31, 10)[0] + 200);
        draw.flipped = false;
        draw.contrast = 0.6;
        let low = augmentation.apply(&frame, &draw).unwrap();
        let mean = |f: &Frame| f.pixels().iter().map(|&v| f64::from(v)).sum::<f64>();
        assert!((mean(&low) - mean(&frame)).abs() / (32.0 * 32.0 * 3.0) < 2.0);
        let spread = |f: &Frame| f.pixel(31, 0)[0] as i32 - f.pixel(0, 0)[0] as i32;
        assert!((spread(&low) as f64 - 0.6 * spread(&frame) as f64).abs() < 6.0);
    }

    #[test]
    fn saturation_leaves_grey_alone_and_pulls_colour_towards_grey() {
        let grey = adjust_saturation(vec![90, 90, 90, 200, 200, 200], 0.5);
        assert_eq!(grey, vec![90, 90, 90, 200, 200, 200]);
        let colour = adjust_saturation(vec![255, 0, 0], 0.0);
        assert!(colour.iter().all(|&v| v == colour[0]));
    }

    #[test]
    fn affine_draws_stay_in_kochs_ranges() {
        let augmentation = AffineAugmentation::default();
        let draws = draws(5, 400, |rng| augmentation.draw(rng));
        for draw in &draws {
            assert!(draw.rotation.abs() <= 10f64.to_radians() + 1e-12);
            assert!(draw.shear.0.abs() <= 0.3 && draw.shear.1.abs() <= 0.3);
            for s in [draw.scale.0, draw.scale.1] {
                assert!((0.8..=1.2).contains(&s));
            }
            assert!(draw.translation.0.abs() <= 2.0 && draw.translation.1.abs() <= 2.0);
        }
        let kept_rotations = draws.iter().filter(|draw| draw.rotation != 0.0).count();
        assert!((150..250).contains(&kept_rotations), "{kept_rotations}");
    }

    #[test]
    fn identity_warp_is_exact_and_a_translation_moves_pixels() {
        let frame = gradient(20, 20);
        let augmentation = AffineAugmentation::default();
        assert_eq!(augmentation.apply(&frame, &AffineDraw::IDENTITY), frame);
        let shifted = augmentation.apply(
            &frame,
            &AffineDraw {
                translation: (2.0, 0.0),
                ..AffineDraw::IDENTITY
            },
        );
        assert_eq!(shifted.pixel(7, 5), frame.pixel(5, 5));
        assert_eq!(shifted.pixel(0, 5), [0, 0, 0], "uncovered pixels are black");
        let variants = augmentation.variants(&frame, 4, &mut SeededRng::new(2));
        assert_eq!(variants.len(), 4);
        assert_eq!(
            variants,
            augmentation.variants(&frame, 4, &mut SeededRng::new(2))
        );
    }

    #[test]
    fn rotation_by_a_small_angle_keeps_the_centre() {
        let frame = gradient(41, 41);
        let rotated = AffineAugmentation::default().apply(
            &frame,
            &AffineDraw {
                rotation: 10f64.to_radians(),
                ..AffineDraw::IDENTITY
            },
        );
        let centre = frame.pixel(20, 20);
        let after = rotated.pixel(20, 20);
        for c in 0..3 {
            assert!((i32::from(centre[c]) - i32::from(after[c])).abs() <= 1);
        }
        assert!(mean_abs_diff(&frame, &rotated) > 1.0);
    }
}
