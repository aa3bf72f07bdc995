//! The benchmark suite behind `cargo xtask bench`, written once and driven twice: natively by
//! `faceverify bench` (`cli/src/bench_command.rs`, pollster, `std::time`) and in the browser by
//! `tests/bench_browser.rs` (wasm-bindgen-test in a worker, `performance.now()`), which includes
//! this folder with `#[path]`. Everything here is async and reads tensors back asynchronously,
//! as WebGPU in a browser requires; every timed run ends with its results read back, so GPU
//! work is inside the time.
//!
//! The figures (see `docs/BENCH.md`):
//! - the face pipeline: BlazeFace on a 640×480 frame, alignment, one 128-d descriptor, and a
//!   whole frame → decision against 50 cached reference embeddings (fine-tune mode's head);
//! - the Koch tower: one embedding, a 50-reference verification (one probe embedded, scored
//!   against 50 cached embeddings in one batch), one training step with Adam;
//! - fine-tune time-to-ready: 30 anchor and 30 positive photos through the pipeline, impostor
//!   samples from the bundled model, a fine-tune run to its end and the calibration.

pub mod figures;

use burn::prelude::*;
use faceverify::app::{self, NewPhoto};
use faceverify::model::face_resnet::{EMBEDDING_DIM, FaceResNet};
use faceverify::model::facemesh::{FaceMesh, input_from_rgb8};
use faceverify::model::koch::{KOCH_EMBEDDING_DIM, KochTowerConfig, pattern_images};
use faceverify::model::read_f32s;
use faceverify::model::siamese::Siamese;
use faceverify::pipeline::FacePipeline;
use faceverify::store::{ImageRole, ImageSource, MemoryStore, Profile, Store, StoredImage};
use faceverify::train::impostors::ImpostorModel;
use faceverify::train::pairs::{PairLabel, SeededRng};
use faceverify::train::run::{
    FineTuneInputs, RunControl, RunSettings, SilentObserver, fine_tune_trainer, seeded_head,
};
use faceverify::train::step::{PairBatch, adam_optimizer, train_step};
use faceverify::verify::policy::{ReferenceEmbeddings, VerificationPolicy, verify_probe};
use faceverify::vision::align::{CropMode, FaceTemplate, align_face};
use faceverify::vision::detect::{Face, FaceDetector};
use faceverify::vision::frame::Frame;
use faceverify::vision::mesh::MeshCrop;

use self::figures::{FINE_TUNE_CAPTURES, REFERENCES, Summary, names};

/// Impostor samples added to the negatives, as `faceverify train` does by default.
pub const IMPOSTOR_SAMPLES: usize = 200;
/// Most pairs per class in fine-tune mode (`faceverify_cli::FINE_TUNE_MAX_PAIRS`).
pub const FINE_TUNE_MAX_PAIRS: usize = 400;

/// One measured figure, for the driver to print.
#[derive(Debug, Clone)]
pub struct Record {
    /// Full name, e.g. `native.cpu.detect_640x480`.
    pub name: String,
    pub summary: Summary,
    /// `ms` for times.
    pub unit: &'static str,
    /// The arithmetic of one run, for compute-bound figures.
    pub flops: Option<f64>,
}

/// The inputs: weights and photos, read by the driver (files natively, fetch in the browser).
pub struct Data {
    /// `models/blazeface.f16.bin`.
    pub detector_weights: Vec<u8>,
    /// `models/face_resnet.q8.bin`.
    pub tower_weights: Vec<u8>,
    /// `models/impostors.json`.
    pub impostors_json: String,
    /// `models/facemesh.f16.bin`.
    pub mesh_weights: Vec<u8>,
    /// A colour photo of one face, as a 640×480 camera frame; `None` skips the figures that
    /// need it (the driver says why).
    pub frame: Option<Frame>,
    /// `2 × FINE_TUNE_CAPTURES` photos of one person (anchors, then positives); empty skips
    /// the fine-tune figure.
    pub captures: Vec<Frame>,
}

/// How many runs, and which figures.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Unmeasured runs before the measured ones (kernel compilation, allocation).
    pub warmup: usize,
    /// Measured runs of the quick figures.
    pub runs: usize,
    /// Warm-up and measured runs of the Koch training step.
    pub koch_step_warmup: usize,
    pub koch_step_runs: usize,
    /// Warm-up and measured runs of fine-tune time-to-ready (60 photos through the pipeline
    /// and a whole fine-tune run each).
    pub ready_warmup: usize,
    pub ready_runs: usize,
    /// Pairs of the Koch training step (16, the tutorial's batch).
    pub koch_pairs: usize,
    /// `Some(reason)`: skip the Koch figures (the device cannot hold the network).
    pub koch_skip: Option<String>,
    /// Also time the alignment (CPU work: once per platform is enough).
    pub align: bool,
    /// Only figures whose name contains this.
    pub only: Option<String>,
}

/// Where the suite reports: measured figures and one-line notes (skips and their reasons).
pub trait Sink {
    fn figure(&mut self, record: Record);
    fn note(&mut self, line: &str);
}

fn err<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// `warmup` unmeasured then `runs` measured executions of `body` (an expression that may
/// `.await` and `?`), in milliseconds of `clock`.
macro_rules! measure {
    ($clock:expr, $warmup:expr, $runs:expr, $body:expr) => {{
        let mut samples = Vec::new();
        for i in 0..($warmup + $runs) {
            let started = $clock();
            $body;
            let elapsed = $clock() - started;
            if i >= $warmup {
                samples.push(elapsed);
            }
        }
        Summary::of(&samples)
    }};
}

/// A photo as a 640×480 camera frame: scaled to fit, centred on grey (a webcam's framing of a
/// person, without cropping the face away).
pub fn camera_frame(photo: &[u8]) -> Result<Frame, String> {
    let image = image::load_from_memory(photo).map_err(|e| format!("decoding the photo: {e}"))?;
    let fitted = image.resize(640, 480, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([128, 128, 128]));
    let (x, y) = (
        (640 - fitted.width()) as i64 / 2,
        (480 - fitted.height()) as i64 / 2,
    );
    image::imageops::overlay(&mut canvas, &fitted.to_rgb8(), x, y);
    Ok(Frame::from_image(&image::DynamicImage::ImageRgb8(canvas)))
}

/// Decodes an encoded photo (JPEG, PNG) as it is.
pub fn decode(photo: &[u8]) -> Result<Frame, String> {
    let image = image::load_from_memory(photo).map_err(|e| format!("decoding a photo: {e}"))?;
    Ok(Frame::from_image(&image))
}

fn wanted(plan: &Plan, name: &str) -> bool {
    plan.only.as_deref().is_none_or(|only| name.contains(only))
}

async fn read(tensor: Tensor<1>) -> Result<Vec<f32>, String> {
    read_f32s(tensor)
        .await
        .map_err(|e| format!("reading back: {e}"))
}

/// A 100×100 crop as the Koch tower's input `[1, 3, 100, 100]` in 0..1.
fn koch_input(crop: &Frame, device: &Device) -> Tensor<4> {
    let plane = 100 * 100;
    let mut values = vec![0f32; 3 * plane];
    for (i, pixel) in crop.pixels().chunks_exact(3).enumerate() {
        for c in 0..3 {
            values[c * plane + i] = f32::from(pixel[c]) / 255.0;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 3, 100, 100]), device)
}

/// Runs every figure on `device`, naming them `<prefix>.<figure>`; `clock` reads milliseconds.
pub async fn run(
    prefix: &str,
    device: &Device,
    data: &Data,
    plan: &Plan,
    clock: fn() -> f64,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let name = |figure: &str| format!("{prefix}.{figure}");
    let report = |sink: &mut dyn Sink, figure: &str, summary: Summary, flops: Option<f64>| {
        sink.figure(Record {
            name: name(figure),
            summary,
            unit: "ms",
            flops,
        })
    };
    let (warmup, runs) = (plan.warmup, plan.runs);
    // One timed figure, when the plan wants it: the untimed `$setup`, then `$body` measured
    // over the quick runs (or the given warm-up and runs), reported with its arithmetic.
    macro_rules! figure {
        ($figure:expr, $flops:expr, $body:expr) => {
            figure!($figure, $flops, (warmup, runs), {}, $body)
        };
        (
            $figure:expr, $flops:expr, ($warmup:expr, $runs:expr), { $($setup:stmt;)* }, $body:expr
        ) => {
            if wanted(plan, $figure) {
                $($setup)*
                let summary = measure!(clock, $warmup, $runs, $body);
                report(sink, $figure, summary, $flops);
            }
        };
    }

    // ---- The networks built from their files: what a start-up pays once, after the download.
    let load_detector = || {
        FaceDetector::from_bytes(&data.detector_weights, device).map_err(err("loading BlazeFace"))
    };
    let load_tower =
        || FaceResNet::from_bytes(&data.tower_weights, device).map_err(err("loading the ResNet"));
    figure!(names::LOAD_DETECTOR, None, load_detector()?);
    figure!(names::LOAD_TOWER, None, load_tower()?);
    let detector = load_detector()?;
    let pipeline = FacePipeline::from_bytes(&data.detector_weights, &data.tower_weights, device)
        .map_err(err("loading the face pipeline"))?;
    let impostors =
        ImpostorModel::from_json(&data.impostors_json).map_err(err("the impostor model"))?;
    let template = FaceTemplate::dlib_150();
    let policy = VerificationPolicy::default();

    // ---- The face pipeline on a camera frame.
    let mut koch_probe = None;
    match &data.frame {
        None => sink.note(&format!(
            "{prefix}: skipped {}, {}, {}, {}: no photo (../shared/data/color is missing)",
            names::DETECT,
            names::ALIGN,
            names::EMBED,
            names::FRAME_TO_DECISION
        )),
        Some(frame) => {
            let face = detector
                .detect_largest(frame)
                .await
                .map_err(err("detecting"))?
                .face
                .ok_or("the benchmark photo shows no face the detector finds")?;
            figure!(names::DETECT, Some(figures::blazeface_flops(1)), {
                detector.detect(frame).await.map_err(err("detecting"))?
            });
            let crop = align_face(frame, &face, &template).map_err(err("aligning"))?;
            if plan.align {
                figure!(names::ALIGN, None, {
                    align_face(frame, &face, &template).map_err(err("aligning"))?
                });
            }
            figure!(names::EMBED, Some(figures::face_resnet_flops(1)), {
                pipeline
                    .embed_aligned(std::slice::from_ref(&crop))
                    .await
                    .map_err(err("embedding"))?
            });
            if wanted(plan, names::MESH) {
                mesh_figure(frame, &face, device, data, plan, clock, sink, &name).await?;
            }
            // Fine-tune mode's verification: the tower on the device, the 129-parameter head
            // and the 50 cached references on the CPU (where the head trains).
            figure!(
                names::FRAME_TO_DECISION,
                Some(
                    figures::blazeface_flops(1)
                        + figures::face_resnet_flops(1)
                        + figures::head_flops(REFERENCES),
                ),
                (warmup, runs),
                {
                    let cpu = Device::flex();
                    let head = seeded_head(EMBEDDING_DIM, 7, &cpu);
                    let references = impostors.sample(REFERENCES, 11);
                    let references = Tensor::<2>::from_data(
                        TensorData::new(references.concat(), [REFERENCES, EMBEDDING_DIM]),
                        &cpu,
                    );
                },
                {
                    let analysis = pipeline
                        .analyse(frame, CropMode::Detect)
                        .await
                        .map_err(err("analysing the frame"))?;
                    let embedding = analysis.embedding.ok_or("no face in the frame")?;
                    let probe = Tensor::<2>::from_data(
                        TensorData::new(embedding, [1, EMBEDDING_DIM]),
                        &cpu,
                    );
                    let scores =
                        read(head.score_against_references(probe, references.clone())).await?;
                    policy.decide(scores).map_err(err("deciding"))?
                }
            );
            koch_probe =
                Some(align_face(frame, &face, &FaceTemplate::koch_100()).map_err(err("aligning"))?);
        }
    }

    // ---- The Koch tower.
    let koch_step = names::koch_train_step(plan.koch_pairs);
    let koch_figures = [names::KOCH_EMBED, names::KOCH_VERIFY, koch_step.as_str()];
    if let Some(reason) = &plan.koch_skip {
        sink.note(&format!(
            "{prefix}: skipped {}: {reason}",
            koch_figures.join(", ")
        ));
    } else if koch_figures.iter().any(|f| wanted(plan, f)) {
        let model = Siamese::new(KochTowerConfig::new().init(device), device);
        let probe = match &koch_probe {
            Some(crop) => koch_input(crop, device),
            None => pattern_images(1, 0.5, device),
        };
        figure!(names::KOCH_EMBED, Some(figures::koch_forward_flops(1)), {
            read(model.embed(probe.clone()).reshape([KOCH_EMBEDDING_DIM])).await?
        });
        // Cached reference embeddings: sigmoid outputs in (0, 1); their values do not change
        // the cost.
        figure!(
            names::KOCH_VERIFY,
            Some(figures::koch_verify_flops(REFERENCES)),
            (warmup, runs),
            {
                let mut rng = SeededRng::new(5);
                let cached: Vec<f32> = (0..REFERENCES * KOCH_EMBEDDING_DIM)
                    .map(|_| rng.uniform(0.0, 1.0) as f32)
                    .collect();
                let references = ReferenceEmbeddings::new(Tensor::from_data(
                    TensorData::new(cached, [REFERENCES, KOCH_EMBEDDING_DIM]),
                    device,
                ))
                .map_err(err("references"))?;
            },
            {
                verify_probe(&model, probe.clone(), &references, &policy)
                    .await
                    .map_err(err("verifying"))?
            }
        );
        drop(model);
        figure!(
            &koch_step,
            Some(figures::koch_train_step_flops(pairs)),
            (plan.koch_step_warmup, plan.koch_step_runs),
            {
                let autodiff = device.clone().autodiff();
                let mut model = Some(Siamese::new(
                    KochTowerConfig::new().init(&autodiff),
                    &autodiff,
                ));
                let mut optimizer = adam_optimizer();
                let pairs = plan.koch_pairs;
                let labels = PairLabel::alternating(pairs);
                let first = pattern_images(pairs, 0.0, &autodiff);
                let second = pattern_images(pairs, 1.3, &autodiff);
            },
            {
                let batch = PairBatch::new(first.clone(), second.clone(), &labels, &autodiff);
                let current = model.take().expect("the model is back after each step");
                let (updated, outcome) = train_step(current, &mut optimizer, batch, 1e-4).await;
                model = Some(updated);
                let outcome = outcome.map_err(err("the training step"))?;
                if !outcome.loss.is_finite() {
                    return Err(format!("the Koch training loss is {}", outcome.loss));
                }
            }
        );
    }

    // ---- Fine-tune time-to-ready.
    let ready_figures = [
        names::FINE_TUNE_READY,
        names::FINE_TUNE_EMBED,
        names::FINE_TUNE_TRAIN,
    ];
    if data.captures.len() < 2 * FINE_TUNE_CAPTURES {
        sink.note(&format!(
            "{prefix}: skipped {}: needs {} photos of one person (../shared/data/lfw is missing)",
            names::FINE_TUNE_READY,
            2 * FINE_TUNE_CAPTURES
        ));
    } else if ready_figures.iter().any(|f| wanted(plan, f)) {
        let mut embed_ms = Vec::new();
        let mut train_ms = Vec::new();
        let mut total_ms = Vec::new();
        for i in 0..plan.ready_warmup + plan.ready_runs {
            let started = clock();
            let mut embeddings = Vec::with_capacity(data.captures.len());
            for photo in &data.captures {
                // As the page will: detect and align each capture; the centre crop when the
                // detector finds no face.
                let mut analysis = pipeline
                    .analyse(photo, CropMode::Detect)
                    .await
                    .map_err(err("analysing a capture"))?;
                if analysis.embedding.is_none() {
                    analysis = pipeline
                        .analyse(photo, CropMode::Centre)
                        .await
                        .map_err(err("analysing a capture"))?;
                }
                embeddings.push(analysis.embedding.ok_or("a capture gave no embedding")?);
            }
            let embedded = clock();
            let positives = embeddings.split_off(FINE_TUNE_CAPTURES);
            let inputs = FineTuneInputs {
                anchors: embeddings,
                positives,
                negatives: Vec::new(),
                impostors: impostors.sample(IMPOSTOR_SAMPLES, 42),
                start: None,
            };
            let mut settings = RunSettings::fine_tune();
            settings.training.pairs_per_class =
                Some((FINE_TUNE_CAPTURES * FINE_TUNE_CAPTURES).clamp(1, FINE_TUNE_MAX_PAIRS));
            let mut trainer =
                fine_tune_trainer(&inputs, settings).map_err(err("starting fine-tune"))?;
            trainer
                .run(&RunControl::new(clock), &mut SilentObserver)
                .await
                .map_err(err("fine-tuning"))?;
            let report = trainer.final_report().await.map_err(err("calibrating"))?;
            if !report.test_loss.is_finite() {
                return Err(format!("the fine-tune test loss is {}", report.test_loss));
            }
            let done = clock();
            if i >= plan.ready_warmup {
                embed_ms.push(embedded - started);
                train_ms.push(done - embedded);
                total_ms.push(done - started);
            }
        }
        let photos = 2 * FINE_TUNE_CAPTURES;
        let embed_flops = figures::blazeface_flops(photos) + figures::face_resnet_flops(photos);
        report(
            sink,
            names::FINE_TUNE_READY,
            Summary::of(&total_ms),
            Some(embed_flops),
        );
        report(
            sink,
            names::FINE_TUNE_EMBED,
            Summary::of(&embed_ms),
            Some(embed_flops),
        );
        report(sink, names::FINE_TUNE_TRAIN, Summary::of(&train_ms), None);
    }
    reference_descriptor_figures(prefix, &pipeline, data, plan, clock, sink).await
}

/// What loading a verifier costs for its references: `REFERENCES` descriptors read from the
/// store, and, as the baseline in the same run, computed from the stored crops (what every
/// first verification after a load did before descriptors were stored with their photos).
/// The face mesh on the face's crop, and whether it keeps up with the liveness check's camera
/// rate (15 frames a second: a blink of 80 ms spans at least one frame).
#[allow(clippy::too_many_arguments)]
async fn mesh_figure(
    frame: &Frame,
    face: &Face,
    device: &Device,
    data: &Data,
    plan: &Plan,
    clock: fn() -> f64,
    sink: &mut dyn Sink,
    name: &dyn Fn(&str) -> String,
) -> Result<(), String> {
    const LIVENESS_FPS: f64 = 15.0;
    let mesh = FaceMesh::from_bytes(&data.mesh_weights, device).map_err(err("loading the mesh"))?;
    let crop = MeshCrop::for_face(frame, face);
    let input = input_from_rgb8(crop.crop.pixels(), device);
    let summary = measure!(clock, plan.warmup, plan.runs, {
        mesh.run(input.clone())
            .await
            .map_err(err("running the mesh"))?
    });
    let fps = 1000.0 / summary.median;
    sink.note(&format!(
        "{}: {fps:.0} frames a second, {} the liveness check's {LIVENESS_FPS:.0}",
        name(names::MESH),
        if fps >= LIVENESS_FPS {
            "at least"
        } else {
            "BELOW"
        }
    ));
    sink.figure(Record {
        name: name(names::MESH),
        summary,
        unit: "ms",
        flops: Some(figures::facemesh_flops(1)),
    });
    Ok(())
}

async fn reference_descriptor_figures(
    prefix: &str,
    pipeline: &FacePipeline,
    data: &Data,
    plan: &Plan,
    clock: fn() -> f64,
    sink: &mut dyn Sink,
) -> Result<(), String> {
    let figures = [names::DESCRIPTORS_STORED, names::DESCRIPTORS_COMPUTED];
    if !figures.iter().any(|f| wanted(plan, f)) {
        return Ok(());
    }
    let store = MemoryStore::new();
    let references = stored_references(&store, pipeline, &data.captures).await?;
    if references.len() < REFERENCES {
        sink.note(&format!(
            "{prefix}: skipped {}: needs {REFERENCES} photos with a face (../shared/data/lfw is              missing?)",
            figures.join(", ")
        ));
        return Ok(());
    }
    let bare: Vec<StoredImage> = references
        .iter()
        .map(|i| StoredImage {
            descriptor: None,
            ..i.clone()
        })
        .collect();
    let descriptors = async |images: &[StoredImage]| {
        app::image_descriptors(&store, pipeline, images, app::no_yield)
            .await
            .map_err(err("reference descriptors"))
    };
    let (warmup, runs) = (plan.ready_warmup, plan.ready_runs);
    let computed = measure!(clock, warmup, runs, { descriptors(&bare).await? });
    let mut stored = store
        .list_images(BENCH_PROFILE, None)
        .await
        .map_err(err("the store"))?;
    stored.truncate(REFERENCES);
    if stored.iter().any(|i| i.descriptor.is_none()) {
        return Err("computed descriptors were not stored".into());
    }
    let read = measure!(clock, plan.warmup, plan.runs, {
        descriptors(&stored).await?
    });
    for (figure, summary, flops) in [
        (
            names::DESCRIPTORS_COMPUTED,
            computed,
            Some(figures::face_resnet_flops(REFERENCES)),
        ),
        (names::DESCRIPTORS_STORED, read, None),
    ] {
        sink.figure(Record {
            name: format!("{prefix}.{figure}"),
            summary,
            unit: "ms",
            flops,
        });
    }
    Ok(())
}

const BENCH_PROFILE: &str = "bench";

/// The first `REFERENCES` captures that show a face, stored as verification photos the way
/// the app stores them (photo and aligned crop, no descriptor yet).
async fn stored_references(
    store: &MemoryStore,
    pipeline: &FacePipeline,
    captures: &[Frame],
) -> Result<Vec<StoredImage>, String> {
    let profile = Profile {
        id: BENCH_PROFILE.into(),
        name: "Bench".into(),
    };
    store
        .put_profile(&profile)
        .await
        .map_err(err("the store"))?;
    for (i, photo) in captures.iter().enumerate() {
        let new = NewPhoto {
            id: format!("reference-{i:02}"),
            profile: BENCH_PROFILE.into(),
            role: ImageRole::Verification,
            source: ImageSource::Import,
            created: i as u64,
        };
        // The benchmark's references are fixed photos: stored whatever the frame checks say.
        app::capture(
            store,
            pipeline,
            None,
            photo,
            new,
            app::QualityGate::StoreAnyway,
        )
        .await
        .map_err(err("storing a reference"))?;
    }
    let mut stored = store
        .list_images(BENCH_PROFILE, None)
        .await
        .map_err(err("the store"))?;
    stored.truncate(REFERENCES);
    Ok(stored)
}
