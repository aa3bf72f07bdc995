//! A camera frame or photo as the face pipeline sees it: width, height and RGB8 pixels, plus the
//! 2-D point type the detector and the alignment share.
//!
//! Coordinates everywhere in `vision` are continuous pixel coordinates: pixel `(i, j)` (column
//! `i`, row `j`) covers `[i, i + 1) × [j, j + 1)`, so its centre is `(i + 0.5, j + 0.5)` and the
//! whole frame spans `[0, width] × [0, height]`. Resizing then maps coordinates by a plain scale,
//! with no half-pixel corrections to get wrong.

use image::DynamicImage;

/// Errors building a [`Frame`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {width}x{height} needs {expected} RGB bytes, got {found}")]
    WrongLength {
        width: u32,
        height: u32,
        expected: usize,
        found: usize,
    },
    #[error("frame of {width}x{height} is empty")]
    Empty { width: u32, height: u32 },
}

/// An RGB8 image: `pixels` is row-major, 3 bytes (R, G, B) per pixel, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    // The pixels would flood test output; their size says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.pixels.len())
            .finish()
    }
}

impl Frame {
    /// A frame from interleaved RGB8 pixels; checks the length.
    pub fn new(width: u32, height: u32, pixels: Vec<u8>) -> Result<Self, FrameError> {
        if width == 0 || height == 0 {
            return Err(FrameError::Empty { width, height });
        }
        let expected = width as usize * height as usize * 3;
        if pixels.len() != expected {
            return Err(FrameError::WrongLength {
                width,
                height,
                expected,
                found: pixels.len(),
            });
        }
        Ok(Self {
            width,
            height,
            pixels,
        })
    }

    /// A frame of one colour (e.g. the blank frame of a camera that sees nothing).
    pub fn uniform(width: u32, height: u32, rgb: [u8; 3]) -> Result<Self, FrameError> {
        let n = width as usize * height as usize;
        Self::new(width, height, rgb.repeat(n))
    }

    /// Converts any decoded image (grayscale becomes R = G = B; alpha is dropped).
    pub fn from_image(image: &DynamicImage) -> Self {
        let rgb = image.to_rgb8();
        let (width, height) = rgb.dimensions();
        Self {
            width,
            height,
            pixels: rgb.into_raw(),
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major RGB8 bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    pub fn into_pixels(self) -> Vec<u8> {
        self.pixels
    }

    /// The pixel at column `x`, row `y`. Panics outside the frame.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        assert!(
            x < self.width && y < self.height,
            "pixel ({x}, {y}) outside {}x{}",
            self.width,
            self.height
        );
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]]
    }

    /// The pixel at integer coordinates, or `None` outside the frame (callers treat the outside
    /// as black, like the borders of LFW's aligned photos and MediaPipe's letterbox).
    pub fn get(&self, x: i64, y: i64) -> Option<[u8; 3]> {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return None;
        }
        Some(self.pixel(x as u32, y as u32))
    }

    /// Back to the `image` crate (for saving or viewing).
    pub fn to_image(&self) -> image::RgbImage {
        image::RgbImage::from_raw(self.width, self.height, self.pixels.clone())
            .expect("a Frame's length always matches its size")
    }
}

impl From<&DynamicImage> for Frame {
    fn from(image: &DynamicImage) -> Self {
        Self::from_image(image)
    }
}

impl From<DynamicImage> for Frame {
    fn from(image: DynamicImage) -> Self {
        Self::from_image(&image)
    }
}

/// A point in continuous pixel coordinates (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

impl Point {
    pub const fn new(x: f32, y: f32) -> Self {
        Self { x, y }
    }

    pub fn distance(self, other: Point) -> f32 {
        ((self.x - other.x).powi(2) + (self.y - other.y).powi(2)).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_length() {
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
        assert_eq!(
            Frame::new(2, 2, vec![0; 11]),
            Err(FrameError::WrongLength {
                width: 2,
                height: 2,
                expected: 12,
                found: 11
            })
        );
        assert!(matches!(
            Frame::new(0, 2, vec![]),
            Err(FrameError::Empty { .. })
        ));
    }

    #[test]
    fn grayscale_images_become_rgb() {
        let gray =
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(2, 1, vec![10, 200]).unwrap());
        let frame = Frame::from(&gray);
        assert_eq!((frame.width(), frame.height()), (2, 1));
        assert_eq!(frame.pixel(0, 0), [10, 10, 10]);
        assert_eq!(frame.pixel(1, 0), [200, 200, 200]);
        assert_eq!(frame.get(2, 0), None);
        assert_eq!(frame.get(-1, 0), None);
    }
}
