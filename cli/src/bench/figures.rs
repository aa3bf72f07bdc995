//! The summary of a figure's runs, the line it is printed as, and the arithmetic cost of each
//! benchmarked operation. Plain `std`, no Burn.
//!
//! A figure is printed as one line that `cargo xtask bench` parses:
//!
//! ```text
//! figure=<name> median=<v> min=<v> max=<v> runs=<n> unit=<ms|bytes>
//! ```
//!
//! and the FLOPs of a compute-bound figure as `flops=<name> value=<n>` (2 FLOPs per
//! multiply-accumulate of the convolutions and dense layers; biases, activations, pooling and
//! element-wise work are left out, so the counts are a floor on the arithmetic, not its total).

// Each driver uses part of this: the native one prints floors, the browser one FLOP counts.
#![allow(dead_code)]

/// Median, minimum and maximum of a figure's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
}

impl Summary {
    /// The summary of `samples` (at least one; the median of an even count is the mean of the
    /// two middle values).
    pub fn of(samples: &[f64]) -> Self {
        assert!(!samples.is_empty(), "a figure needs at least one run");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
        }
    }

    /// A figure measured once, or exactly (a size).
    pub fn single(value: f64) -> Self {
        Self::of(&[value])
    }
}

fn value(v: f64, unit: &str) -> String {
    if unit == "bytes" {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `figure=<name> median=<v> min=<v> max=<v> runs=<n> unit=<unit>`.
pub fn figure_line(name: &str, summary: &Summary, unit: &str) -> String {
    format!(
        "figure={name} median={} min={} max={} runs={} unit={unit}",
        value(summary.median, unit),
        value(summary.min, unit),
        value(summary.max, unit),
        summary.runs
    )
}

/// `flops=<name> value=<n>`: the arithmetic of one run of figure `name`.
pub fn flops_line(name: &str, flops: f64) -> String {
    format!("flops={name} value={flops:.0}")
}

/// `floor=<name> flops=<n> peak_gflops=<p> floor_ms=<t> of_median=<pct>%`: the time one run of
/// `name` would take at `peak_gflops`, and how much of the measured median that is.
pub fn floor_line(name: &str, flops: f64, peak_gflops: f64, median_ms: f64) -> String {
    let floor_ms = flops / (peak_gflops * 1e9) * 1e3;
    format!(
        "floor={name} flops={flops:.3e} peak_gflops={peak_gflops:.1} floor_ms={floor_ms:.3} \
         of_median={:.1}%",
        100.0 * floor_ms / median_ms
    )
}

/// The lines a driver prints for `record`: its `figure_line` and, for a compute-bound figure,
/// its `floor_line` at `peak_gflops` where the driver knows its machine's peak, else its
/// `flops_line`.
pub fn record_lines(record: &super::Record, peak_gflops: Option<f64>) -> Vec<String> {
    let mut lines = vec![figure_line(&record.name, &record.summary, record.unit)];
    if let Some(flops) = record.flops {
        lines.push(match peak_gflops {
            Some(peak) => floor_line(&record.name, flops, peak, record.summary.median),
            None => flops_line(&record.name, flops),
        });
    }
    lines
}

/// FLOPs of a dense 2-D convolution producing `out_h × out_w × c_out` from `c_in` channels
/// with a square `kernel`.
pub fn conv_flops(c_in: usize, c_out: usize, kernel: usize, out_h: usize, out_w: usize) -> f64 {
    2.0 * (c_out * out_h * out_w * c_in * kernel * kernel) as f64
}

/// FLOPs of a depthwise 3×3 convolution over `channels` at `side × side`.
fn depthwise_flops(channels: usize, side: usize) -> f64 {
    2.0 * (channels * side * side * 9) as f64
}

/// FLOPs of a dense layer `inputs → outputs`.
pub fn dense_flops(inputs: usize, outputs: usize) -> f64 {
    2.0 * (inputs * outputs) as f64
}

/// The Koch tower's forward pass over `images` 3×100×100 images (see `model::koch`):
/// 1.87 GFLOPs per image, two thirds of it in the second convolution.
pub fn koch_forward_flops(images: usize) -> f64 {
    let per_image = conv_flops(3, 64, 10, 91, 91)
        + conv_flops(64, 128, 7, 40, 40)
        + conv_flops(128, 128, 4, 17, 17)
        + conv_flops(128, 256, 4, 6, 6)
        + dense_flops(256 * 6 * 6, 4096);
    per_image * images as f64
}

/// One training step on `pairs` pairs: forward over both sides, and a backward pass that costs
/// about twice the forward (gradients of the inputs and of the weights). Adam's update
/// (~39 M parameters × a dozen operations) is memory-bound and not counted.
pub fn koch_train_step_flops(pairs: usize) -> f64 {
    3.0 * koch_forward_flops(2 * pairs)
}

/// Scoring one probe image against `references` cached 4,096-d embeddings: the probe's forward
/// pass, then |difference| × weight for each reference.
pub fn koch_verify_flops(references: usize) -> f64 {
    koch_forward_flops(1) + dense_flops(4096, references)
}

/// dlib's ResNet face descriptor on `images` 150×150 crops (see `model::face_resnet` for the
/// shapes: 150 → 72 → 35 → 17 → 8 → 3|4 → 1|2): 0.54 GFLOPs per face.
pub fn face_resnet_flops(images: usize) -> f64 {
    let residual =
        |channels: usize, side: usize| 2.0 * conv_flops(channels, channels, 3, side, side);
    let down = |c_in: usize, c_out: usize, side: usize| {
        conv_flops(c_in, c_out, 3, side, side) + conv_flops(c_out, c_out, 3, side, side)
    };
    let per_image = conv_flops(3, 32, 7, 72, 72)
        + 3.0 * residual(32, 35)
        + down(32, 64, 17)
        + 3.0 * residual(64, 17)
        + down(64, 128, 8)
        + 2.0 * residual(128, 8)
        + down(128, 256, 3)
        + 2.0 * residual(256, 4)
        + down(256, 256, 1)
        + dense_flops(256, 128);
    per_image * images as f64
}

/// BlazeFace (short range) on `images` 128×128 inputs (see `model::blazeface`).
pub fn blazeface_flops(images: usize) -> f64 {
    const CHANNELS: [usize; 17] = [
        24, 24, 28, 32, 36, 42, 48, 56, 64, 72, 80, 88, 96, 96, 96, 96, 96,
    ];
    let mut total = conv_flops(3, 24, 5, 64, 64);
    let mut side = 64;
    for k in 0..16 {
        if [2, 5, 11].contains(&k) {
            side /= 2;
        }
        let (c_in, c_out) = (CHANNELS[k], CHANNELS[k + 1]);
        total += depthwise_flops(c_in, side) + conv_flops(c_in, c_out, 1, side, side);
    }
    total += conv_flops(88, 2 + 32, 1, 16, 16) + conv_flops(96, 6 + 96, 1, 8, 8);
    total * images as f64
}

/// The face mesh network over `images` 192×192 crops (see `model::facemesh`): the stem, the
/// trunk's depthwise-separable blocks, and the landmark and face-flag heads on the 6×6 map.
pub fn facemesh_flops(images: usize) -> f64 {
    use faceverify::model::facemesh::{NUM_LANDMARKS, TRUNK};
    let block = |c_in: usize, c_out: usize, side: usize| {
        depthwise_flops(c_in, side) + conv_flops(c_in, c_out, 1, side, side)
    };
    let mut side = 96;
    let mut total = conv_flops(3, 16, 3, side, side);
    for &(c_in, c_out, stride) in &TRUNK {
        side /= stride;
        total += block(c_in, c_out, side);
    }
    // Each head: blocks from 6×6 down to 3×3, a 1×1 projection to 32, a 32-channel block,
    // and a 3×3 convolution over the 3×3 map to its outputs.
    let head = |blocks: usize, outputs: usize| {
        (0..blocks).map(|_| block(128, 128, 3)).sum::<f64>()
            + conv_flops(128, 32, 1, 3, 3)
            + block(32, 32, 3)
            + conv_flops(32, outputs, 3, 1, 1)
    };
    (total + head(3, NUM_LANDMARKS * 3) + head(1, 1)) * images as f64
}

/// The fine-tune head scoring one 128-d probe against `references` cached embeddings.
pub fn head_flops(references: usize) -> f64 {
    dense_flops(128, references)
}

/// Figure names, shared so the native and the browser lines match.
pub mod names {
    /// BlazeFace built from its file (what the first camera frame of a visit waits for).
    pub const LOAD_DETECTOR: &str = "load_detector";
    /// The face descriptor network built from its file.
    pub const LOAD_TOWER: &str = "load_face_resnet";
    pub const DETECT: &str = "detect_640x480";
    pub const ALIGN: &str = "align_150";
    pub const EMBED: &str = "embed_128d";
    /// The face mesh on one 192×192 crop: what the liveness check runs on every frame.
    pub const MESH: &str = "mesh_192";
    pub const FRAME_TO_DECISION: &str = "frame_to_decision_50refs";
    pub const KOCH_EMBED: &str = "koch_embed_1";
    pub const KOCH_VERIFY: &str = "koch_verify_50refs";
    pub const FINE_TUNE_READY: &str = "finetune_ready_30a_30p";
    pub const FINE_TUNE_EMBED: &str = "finetune_embed_60";
    pub const FINE_TUNE_TRAIN: &str = "finetune_train_calibrate";
    /// A verifier's 50 reference descriptors, read from the store.
    pub const DESCRIPTORS_STORED: &str = "reference_descriptors_50_stored";
    /// The same 50 computed from the stored crops (the baseline).
    pub const DESCRIPTORS_COMPUTED: &str = "reference_descriptors_50_computed";

    /// `koch_train_step_b<pairs>`.
    pub fn koch_train_step(pairs: usize) -> String {
        format!("koch_train_step_b{pairs}")
    }
}

/// Reference photos for the fine-tune figure: this many anchors and positives.
pub const FINE_TUNE_CAPTURES: usize = 30;
/// Cached references a probe is compared with.
pub const REFERENCES: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_middle_and_the_extremes() {
        let s = Summary::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.median, s.min, s.max, s.runs), (3.0, 1.0, 5.0, 3));
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(
            figure_line("native.cpu.x", &Summary::of(&[1.0, 2.0]), "ms"),
            "figure=native.cpu.x median=1.500 min=1.000 max=2.000 runs=2 unit=ms"
        );
        assert_eq!(
            figure_line("size.y", &Summary::single(1234.0), "bytes"),
            "figure=size.y median=1234 min=1234 max=1234 runs=1 unit=bytes"
        );
    }

    #[test]
    fn flop_counts_match_the_architectures() {
        // Koch: 933.6 M multiply-accumulates per image (per-layer products in model::koch).
        let koch_macs = 91 * 91 * 64 * 300
            + 40 * 40 * 128 * 3136
            + 17 * 17 * 128 * 2048
            + 6 * 6 * 256 * 2048
            + 9216 * 4096;
        assert_eq!(koch_forward_flops(1), 2.0 * koch_macs as f64);
        assert!((koch_forward_flops(1) / 1e9 - 1.867).abs() < 0.001);
        assert_eq!(
            koch_train_step_flops(16),
            3.0 * 32.0 * koch_forward_flops(1)
        );
        // dlib's ResNet is ~0.54 GFLOPs; BlazeFace ~0.06 GFLOPs.
        let resnet = face_resnet_flops(1) / 1e9;
        assert!((0.5..0.6).contains(&resnet), "{resnet}");
        let blaze = blazeface_flops(1) / 1e9;
        assert!((0.03..0.1).contains(&blaze), "{blaze}");
        // The face mesh: 67.7 MFLOPs in the stem and trunk (96×96 down to 6×6), 2.3 in the
        // two heads, the landmark head's 3×3 convolution to 1,404 outputs the largest part.
        assert_eq!(facemesh_flops(1), 69_958_080.0);
        assert_eq!(facemesh_flops(2), 2.0 * facemesh_flops(1));
    }

    #[test]
    fn a_record_prints_its_figure_then_its_floor_or_its_flops() {
        let record = |flops| super::super::Record {
            name: "x".into(),
            summary: Summary::single(40.0),
            unit: "ms",
            flops,
        };
        let figure = "figure=x median=40.000 min=40.000 max=40.000 runs=1 unit=ms";
        assert_eq!(record_lines(&record(None), Some(100.0)), [figure]);
        assert_eq!(record_lines(&record(None), None), [figure]);
        assert_eq!(
            record_lines(&record(Some(2e9)), Some(100.0)),
            [figure, &floor_line("x", 2e9, 100.0, 40.0)]
        );
        assert_eq!(
            record_lines(&record(Some(2e9)), None),
            [figure, "flops=x value=2000000000"]
        );
    }

    #[test]
    fn the_floor_is_flops_over_peak() {
        let line = floor_line("x", 2e9, 100.0, 40.0);
        assert_eq!(
            line,
            "floor=x flops=2.000e9 peak_gflops=100.0 floor_ms=20.000 of_median=50.0%"
        );
    }
}
