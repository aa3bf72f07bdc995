#![cfg(not(target_arch = "wasm32"))]
//! The app's use cases (`faceverify::app`) natively, on a `MemoryStore` and the CPU backend:
//! the same code the browser worker runs. Photos come from `../shared/data` (never copied into
//! the repository); tests that need them panic with a clear message when it is missing.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use faceverify::app::{
    self, CaptureOutcome, ExpandLimits, FrameHint, NamedFile, NewPhoto, QualityGate, RunIds,
    TrainRequest, Verifier, VerifyOutcome,
};
use faceverify::model::face_resnet;
use faceverify::model::koch::DeviceBufferLimits;
use faceverify::pipeline::FacePipeline;
use faceverify::store::{
    FaultInjector, ImageDescriptor, ImageRole, ImageSource, MemoryStore, RunStatus, Store,
    StoredImage, TrainingMode,
};
use faceverify::train::impostors::ImpostorModel;
use faceverify::train::run::{RunControl, StopReason, TrainingEvent, no_clock};
use faceverify::verify::policy::VerificationPolicy;
use faceverify::vision::align::CropMode;
use faceverify::vision::frame::Frame;

#[path = "support/data.rs"]
mod data;
use data::{model_file, pipeline, repo, shared, sorted_entries};

fn impostors() -> ImpostorModel {
    ImpostorModel::from_json(
        &std::fs::read_to_string(repo().join("models/impostors.json")).unwrap(),
    )
    .unwrap()
}

fn lfw(person: &str, number: u32) -> PathBuf {
    shared(&format!("lfw/{person}/{person}_{number:04}.jpg"))
}

fn frame(path: &Path) -> Frame {
    Frame::from_image(&image::open(path).unwrap())
}

fn photo(id: &str, role: ImageRole) -> NewPhoto {
    NewPhoto {
        id: id.into(),
        profile: "me".into(),
        role,
        source: ImageSource::Camera,
        created: 1,
    }
}

fn block<F: std::future::Future>(future: F) -> F::Output {
    pollster::block_on(future)
}

fn with_profile() -> MemoryStore {
    let store = MemoryStore::new();
    block(store.put_profile(&faceverify::store::Profile {
        id: "me".into(),
        name: "Me".into(),
    }))
    .unwrap();
    store
}

/// Captures 5 anchors and 5 positives of George W. Bush and 5 negatives of other people.
fn enrol(store: &MemoryStore, pipeline: &FacePipeline) {
    let others = [
        ("Colin_Powell", 1),
        ("Gerhard_Schroeder", 1),
        ("Hugo_Chavez", 1),
        ("Donald_Rumsfeld", 1),
        ("Ariel_Sharon", 1),
    ];
    for i in 1..=5 {
        for (role, number) in [(ImageRole::Anchor, i), (ImageRole::Positive, i + 5)] {
            let outcome = block(app::capture(
                store,
                pipeline,
                None,
                &frame(&lfw("George_W_Bush", number)),
                photo(&format!("{role:?}-{i}"), role),
                QualityGate::Enforce,
            ))
            .unwrap();
            assert!(
                matches!(outcome, CaptureOutcome::Stored { .. }),
                "{outcome:?}"
            );
        }
    }
    for (i, (person, number)) in others.iter().enumerate() {
        block(app::capture(
            store,
            pipeline,
            None,
            &frame(&lfw(person, *number)),
            photo(&format!("neg-{i}"), ImageRole::Negative),
            QualityGate::Enforce,
        ))
        .unwrap();
    }
}

/// A store with the profile "me" enrolled by `enrol`, and the pipeline that captured it.
fn enrolled() -> (MemoryStore, FacePipeline) {
    let store = with_profile();
    let pipeline = pipeline();
    enrol(&store, &pipeline);
    (store, pipeline)
}

fn request(resume: bool) -> TrainRequest {
    TrainRequest {
        profile: "me".into(),
        mode: TrainingMode::FineTune,
        epochs: Some(20),
        batch_size: None,
        seed: 7,
        resume,
    }
}

fn ids(n: u32) -> RunIds {
    RunIds {
        run_id: format!("run-{n}"),
        model_id: format!("model-{n}"),
        now: 1000 + u64::from(n),
    }
}

/// A training run on the CPU backend; tests change what they need before `start`.
struct Training<'a> {
    store: &'a MemoryStore,
    pipeline: &'a FacePipeline,
    impostors: Option<ImpostorModel>,
    device_limits: Option<DeviceBufferLimits>,
    control: RunControl,
}

impl<'a> Training<'a> {
    /// With the bundled impostor model, no device limits, and a control nobody cancels.
    fn new(store: &'a MemoryStore, pipeline: &'a FacePipeline) -> Self {
        Training {
            store,
            pipeline,
            impostors: Some(impostors()),
            device_limits: None,
            control: RunControl::new(no_clock),
        }
    }

    fn start(
        &self,
        request: &TrainRequest,
        ids: RunIds,
        on_event: &mut dyn FnMut(&TrainingEvent),
    ) -> Result<app::TrainOutcome, app::AppError> {
        let device = Device::flex();
        let parts = app::TrainingParts {
            store: self.store,
            pipeline: self.pipeline,
            impostors: self.impostors.as_ref(),
            device: &device,
            device_limits: self.device_limits.as_ref(),
        };
        let hooks = app::RunHooks {
            ids,
            control: &self.control,
            on_event,
            yield_now: app::no_yield,
        };
        block(app::train(&parts, request, hooks))
    }
}

/// Trains `request` on the CPU backend with the bundled impostor model, ignoring the events.
fn train_quietly(
    store: &MemoryStore,
    pipeline: &FacePipeline,
    request: &TrainRequest,
    ids: RunIds,
) -> app::TrainOutcome {
    Training::new(store, pipeline)
        .start(request, ids, &mut |_| {})
        .unwrap()
}

/// The verifier of "me" on the CPU backend.
fn load_verifier(store: &MemoryStore, pipeline: &FacePipeline) -> Verifier {
    block(Verifier::load(
        store,
        pipeline,
        "me",
        &Device::flex(),
        None,
        app::no_yield,
    ))
    .unwrap()
}

/// Whether `verifier` takes the face in the photo at `path` for its person under the default
/// policy; `None` when the photo shows no face.
fn decide(pipeline: &FacePipeline, verifier: &Verifier, path: &Path) -> Option<bool> {
    let policy = VerificationPolicy::default();
    match block(app::verify_frame(pipeline, verifier, &frame(path), &policy)).unwrap() {
        VerifyOutcome::Decision { result, .. } => Some(result.verified),
        VerifyOutcome::NoFace { .. } => None,
    }
}

#[test]
fn capture_train_and_verify_on_a_memory_store() {
    let (store, pipeline) = enrolled();
    let stored = block(store.list_images("me", None)).unwrap();
    assert!(stored.len() >= 12, "{} photos stored", stored.len());
    assert!(stored.iter().all(|i| i.aligned_crop.is_some()));

    let mut events = Vec::new();
    let outcome = Training::new(&store, &pipeline)
        .start(&request(false), ids(1), &mut |e| events.push(e.clone()))
        .unwrap();
    assert_ne!(outcome.stop, StopReason::Cancelled);
    let report = outcome.report.as_ref().unwrap();
    assert!(report.evaluation.auc > 0.9, "AUC {}", report.evaluation.auc);
    // Every event the page receives is JSON (serde-wasm-bindgen's rules are JSON's).
    for event in &events {
        serde_json::to_string(event).unwrap_or_else(|e| panic!("{event:?}: {e}"));
    }
    assert!(events.iter().any(|e| matches!(e, TrainingEvent::Epoch(_))));

    // Saved, activated, the run closed with its history, the checkpoint gone.
    let model = outcome.model.unwrap();
    assert_eq!(
        block(store.active_model_id("me")).unwrap(),
        Some(model.meta.id)
    );
    let run = block(store.get_run("run-1")).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Finished);
    assert_eq!(run.epochs.len(), report.history.len());
    assert!(block(store.latest_checkpoint("me")).unwrap().is_none());

    let verifier = load_verifier(&store, &pipeline);
    assert_eq!(
        verifier.reference_count(),
        10,
        "anchors + positives stand in for verification photos"
    );
    let verified = |path: &Path| decide(&pipeline, &verifier, path);
    for number in [101, 102, 103] {
        let bush = lfw("George_W_Bush", number);
        assert_eq!(verified(&bush), Some(true), "Bush {number}");
    }
    for number in [2, 3, 4] {
        let powell = lfw("Colin_Powell", number);
        assert_eq!(verified(&powell), Some(false), "Powell {number}");
    }
    let grey = Frame::uniform(640, 480, [128, 128, 128]).unwrap();
    let policy = VerificationPolicy::default();
    assert!(matches!(
        block(app::verify_frame(&pipeline, &verifier, &grey, &policy)).unwrap(),
        VerifyOutcome::NoFace { .. }
    ));

    // The page's state shows it all.
    let state = block(app::profile_state(&store, Some("me"))).unwrap();
    assert_eq!(state.images.len(), stored.len());
    assert!(state.model.is_some() && state.checkpoint.is_none());
    serde_json::to_string(&state).unwrap();
}

/// The descriptor of one LFW photo's face.
fn descriptor_of(pipeline: &FacePipeline, path: &Path) -> Vec<f32> {
    block(pipeline.analyse(&frame(path), CropMode::Detect))
        .unwrap()
        .embedding
        .unwrap()
}

/// `images` with `descriptor` in place of their stored one.
fn with_descriptor(
    images: &[StoredImage],
    descriptor: Option<ImageDescriptor>,
) -> Vec<StoredImage> {
    images
        .iter()
        .map(|i| StoredImage {
            descriptor: descriptor.clone(),
            ..i.clone()
        })
        .collect()
}

/// `images`' descriptors as the app gets them: read where stored, computed (and stored) where not.
fn descriptors(
    store: &MemoryStore,
    pipeline: &FacePipeline,
    images: &[StoredImage],
) -> Vec<Vec<f32>> {
    block(app::image_descriptors(
        store,
        pipeline,
        images,
        app::no_yield,
    ))
    .unwrap()
}

#[test]
fn descriptors_are_computed_once_stored_with_their_photos_and_renewed_for_another_network() {
    let (store, pipeline) = enrolled();
    let images = block(store.list_images("me", None)).unwrap();
    assert!(images.iter().all(|i| i.descriptor.is_none()));

    // Computed from the stored crops, and stored with the photos, bit for bit.
    let rows = descriptors(&store, &pipeline, &images);
    let crops: Vec<Frame> = images
        .iter()
        .map(|i| {
            Frame::from_image(&image::load_from_memory(i.aligned_crop.as_ref().unwrap()).unwrap())
        })
        .collect();
    assert_eq!(rows, block(pipeline.embed_aligned(&crops)).unwrap());
    let stored = block(store.list_images("me", None)).unwrap();
    // Named by the SHA-256 of the network's file, which the pipeline hashes on first use.
    let tower_file = model_file(face_resnet::WEIGHTS_PATH);
    assert_eq!(
        pipeline.tower_sha256(),
        faceverify::store::sha256_hex(&tower_file)
    );
    for (image, row) in stored.iter().zip(&rows) {
        let descriptor = image.descriptor.as_ref().expect("stored");
        assert_eq!(descriptor.tower_sha256, pipeline.tower_sha256());
        assert_eq!(
            descriptor.values_for(pipeline.tower_sha256(), 128).as_ref(),
            Some(row)
        );
    }

    // Stored numbers are read, not recomputed: replaced ones come back as they are.
    let planted = vec![0.25f32; 128];
    let planted_descriptor = ImageDescriptor::new(pipeline.tower_sha256(), &planted);
    let replaced = with_descriptor(&stored, Some(planted_descriptor));
    block(store.put_images(&replaced)).unwrap();
    let read = descriptors(&store, &pipeline, &replaced);
    assert!(read.iter().all(|row| *row == planted));

    // Made by another network (or malformed): computed again and stored again.
    let other_network = with_descriptor(
        &stored,
        Some(ImageDescriptor::new("another-network", &planted)),
    );
    block(store.put_images(&other_network)).unwrap();
    let renewed = descriptors(&store, &pipeline, &other_network);
    assert_eq!(renewed, rows);
    let again = block(store.list_images("me", None)).unwrap();
    assert!(
        again
            .iter()
            .all(|i| i.descriptor.as_ref().unwrap().tower_sha256 == pipeline.tower_sha256())
    );

    // A photo deleted while its descriptor was computed stays deleted.
    let stale = with_descriptor(&again, None);
    assert!(block(store.delete_image(&stale[0].meta.id)).unwrap());
    descriptors(&store, &pipeline, &stale);
    assert!(block(store.get_image(&stale[0].meta.id)).unwrap().is_none());
    assert_eq!(
        block(store.list_images("me", None)).unwrap().len(),
        stale.len() - 1
    );
}

#[test]
fn a_verifier_reads_its_references_stored_descriptors() {
    let (store, pipeline) = enrolled();
    train_quietly(&store, &pipeline, &request(false), ids(1));
    let load = || load_verifier(&store, &pipeline);
    let verified = |verifier: &Verifier, path: &Path| {
        decide(&pipeline, verifier, path).unwrap_or_else(|| panic!("no face in {}", path.display()))
    };
    let verifier = load();
    assert!(verified(&verifier, &lfw("George_W_Bush", 101)));
    let references = block(app::reference_images(&store, "me")).unwrap();
    assert!(
        references.iter().all(|i| i.descriptor.is_some()),
        "stored by training"
    );

    // Plant Colin Powell's descriptor on every reference: a verifier that reads the stored
    // numbers (and does not embed the crops again) now takes Powell for the enrolled person.
    let powell = descriptor_of(&pipeline, &lfw("Colin_Powell", 2));
    let planted = with_descriptor(
        &references,
        Some(ImageDescriptor::new(pipeline.tower_sha256(), &powell)),
    );
    block(store.put_images(&planted)).unwrap();
    let verifier = load();
    assert!(verified(&verifier, &lfw("Colin_Powell", 3)));
    assert!(!verified(&verifier, &lfw("George_W_Bush", 101)));
}

#[test]
fn a_cancelled_run_keeps_its_checkpoint_and_resumes_from_it() {
    let (store, pipeline) = enrolled();
    let run = Training::new(&store, &pipeline);
    let cancel = run.control.cancel.clone();
    let mut steps = 0;
    let outcome = run
        .start(&request(false), ids(1), &mut |e| {
            if matches!(e, TrainingEvent::Step(_)) {
                steps += 1;
                if steps == 25 {
                    cancel.cancel();
                }
            }
        })
        .unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    assert!(outcome.model.is_none());
    assert!(block(store.active_model_id("me")).unwrap().is_none());
    let checkpoint = block(store.latest_checkpoint("me"))
        .unwrap()
        .expect("a checkpoint");
    assert_eq!(checkpoint.meta.run_id, "run-1");
    assert_eq!(
        block(store.get_run("run-1")).unwrap().unwrap().status,
        RunStatus::Cancelled
    );
    let state = block(app::profile_state(&store, Some("me"))).unwrap();
    assert_eq!(state.checkpoint.unwrap().mode, Some(TrainingMode::FineTune));

    let resumed = train_quietly(&store, &pipeline, &request(true), ids(2));
    let (epoch, batch) = resumed.resumed_from.expect("resumed");
    assert_eq!(
        (epoch as u32, batch as u64),
        (checkpoint.meta.epoch, checkpoint.meta.position)
    );
    assert!(resumed.model.is_some());
    // The resumed run continues the same run record.
    assert_eq!(
        block(store.get_run("run-1")).unwrap().unwrap().status,
        RunStatus::Finished
    );
}

#[test]
fn training_refuses_with_too_few_photos() {
    let store = with_profile();
    let pipeline = pipeline();
    let error = Training {
        impostors: None,
        ..Training::new(&store, &pipeline)
    }
    .start(&request(false), ids(1), &mut |_| {})
    .unwrap_err();
    assert!(error.to_string().contains("anchor"), "{error}");
}

#[test]
fn a_frame_without_a_face_stores_nothing() {
    let store = with_profile();
    let grey = Frame::uniform(640, 480, [128, 128, 128]).unwrap();
    let outcome = block(app::capture(
        &store,
        &pipeline(),
        None,
        &grey,
        photo("x", ImageRole::Anchor),
        QualityGate::StoreAnyway,
    ))
    .unwrap();
    assert_eq!(outcome, CaptureOutcome::NoFace);
    assert!(block(store.list_images("me", None)).unwrap().is_empty());
}

/// A portrait with every channel divided by `divisor`.
fn dimmed(portrait: &image::DynamicImage, divisor: u8) -> Frame {
    let mut dim = portrait.to_rgb8();
    for p in dim.pixels_mut() {
        p.0 = p.0.map(|v| v / divisor);
    }
    Frame::from_image(&image::DynamicImage::ImageRgb8(dim))
}

#[test]
fn a_poor_capture_is_refused_with_its_reasons_unless_the_person_insists() {
    let (store, pipeline) = (with_profile(), pipeline());
    let portrait = image::open(shared("color/obama.jpg")).unwrap();
    let dark = dimmed(&portrait, 5);
    let capture = |id: &str, frame: &Frame, gate: QualityGate| {
        block(app::capture(
            &store,
            &pipeline,
            None,
            frame,
            photo(id, ImageRole::Anchor),
            gate,
        ))
        .unwrap()
    };

    let refused = capture("dark", &dark, QualityGate::Enforce);
    let CaptureOutcome::Refused { hints } = &refused else {
        panic!("a dark face was not refused: {refused:?}");
    };
    assert!(
        hints.iter().any(|h| matches!(h, FrameHint::TooDark { .. })),
        "{hints:?}"
    );
    assert!(block(store.list_images("me", None)).unwrap().is_empty());

    let good = capture("good", &Frame::from_image(&portrait), QualityGate::Enforce);
    assert!(
        matches!(&good, CaptureOutcome::Stored { hints, .. } if hints.is_empty()),
        "{good:?}"
    );
    let insisted = capture("insisted", &dark, QualityGate::StoreAnyway);
    assert!(
        matches!(&insisted, CaptureOutcome::Stored { hints, .. } if !hints.is_empty()),
        "the hints still come back as advice: {insisted:?}"
    );
    let stored = block(store.list_images("me", None)).unwrap();
    let mut ids: Vec<_> = stored.iter().map(|image| image.meta.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["good", "insisted"]);
}

#[test]
fn live_hints_say_what_is_wrong_with_a_frame() {
    let pipeline = pipeline();
    let check = |frame: &Frame| block(app::check_frame(&pipeline, frame)).unwrap().hints;
    let portrait = image::open(shared("color/obama.jpg")).unwrap();
    let good = check(&Frame::from_image(&portrait));
    assert!(good.is_empty(), "{good:?}");

    let grey = Frame::uniform(640, 480, [128, 128, 128]).unwrap();
    assert_eq!(check(&grey), vec![FrameHint::NoFace]);

    let hints = check(&dimmed(&portrait, 5));
    assert!(
        hints.iter().any(|h| matches!(h, FrameHint::TooDark { .. })),
        "{hints:?}"
    );

    let blurred = Frame::from_image(&portrait.blur(6.0));
    let hints = check(&blurred);
    assert!(
        hints
            .iter()
            .any(|h| matches!(h, FrameHint::TooBlurred { .. })),
        "{hints:?}"
    );

    // The portrait shrunk into a corner of a camera frame.
    let small = portrait.resize(400, 400, image::imageops::FilterType::Triangle);
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([200, 200, 200]));
    image::imageops::overlay(&mut canvas, &small.to_rgb8(), 20, 20);
    let hints = check(&Frame::from_image(&image::DynamicImage::ImageRgb8(canvas)));
    assert!(
        hints
            .iter()
            .any(|h| matches!(h, FrameHint::TooSmall { .. })),
        "{hints:?}"
    );

    let two = check(&frame(&shared("color/two_people.jpg")));
    assert!(
        two.contains(&FrameHint::SeveralFaces { count: 2 }),
        "{two:?}"
    );
}

#[test]
fn lfw_photos_are_sharp_enough() {
    // The blur threshold must not refuse the (upscaled, soft) photos the fake cameras show.
    let pipeline = pipeline();
    for (person, number) in [
        ("George_W_Bush", 1),
        ("George_W_Bush", 101),
        ("Colin_Powell", 1),
    ] {
        let check = block(app::check_frame(&pipeline, &frame(&lfw(person, number)))).unwrap();
        assert!(
            !check
                .hints
                .iter()
                .any(|h| matches!(h, FrameHint::TooBlurred { .. })),
            "{person} {number}: {:?}",
            check.hints
        );
    }
}

fn named(name: &str, bytes: Vec<u8>) -> NamedFile {
    NamedFile {
        name: name.into(),
        bytes,
    }
}

/// Imports `files` as negatives of "me", naming the photos with `next_id`.
fn import_negatives(
    store: &MemoryStore,
    pipeline: &FacePipeline,
    files: Vec<NamedFile>,
    next_id: &mut dyn FnMut() -> String,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<app::ImportReport, app::AppError> {
    block(app::import_photos(
        store,
        pipeline,
        files,
        "me",
        ImageRole::Negative,
        5,
        next_id,
        progress,
        app::no_yield,
    ))
}

#[test]
fn an_import_skips_what_is_not_a_face_photo_and_stores_the_rest_at_once() {
    let store = with_profile();
    let pipeline = pipeline();
    let good = std::fs::read(lfw("Jacques_Chirac", 1)).unwrap();
    let truncated = good[..good.len() / 2].to_vec();
    let mut grey = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(64, 64, image::Rgb([128; 3])))
        .write_to(
            &mut std::io::Cursor::new(&mut grey),
            image::ImageFormat::Png,
        )
        .unwrap();
    let files = vec![
        named("blair.jpg", good.clone()),
        named("notes.txt", b"not a photo".to_vec()),
        named("cut.jpg", truncated),
        named("grey.png", grey),
    ];
    let mut n = 0;
    let mut next_id = || {
        n += 1;
        format!("imp-{n}")
    };
    let mut progress = Vec::new();
    let report = import_negatives(
        &store,
        &pipeline,
        files,
        &mut next_id,
        &mut |done, total| progress.push((done, total)),
    )
    .unwrap();
    assert_eq!(report.added.len(), 1);
    let reasons: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|(n, r)| *n == "grey.png" && r.contains("no face")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(n, r)| *n == "cut.jpg" && r.contains("truncated")),
        "{reasons:?}"
    );
    assert_eq!(progress.last(), Some(&(4, 4)));
    assert_eq!(
        block(store.list_images("me", Some(ImageRole::Negative)))
            .unwrap()
            .len(),
        1
    );

    // A failure while writing the batch leaves nothing behind.
    let faults = FaultInjector::new();
    let failing = with_profile().with_faults(faults.clone());
    faults.fail_write(2);
    let files = vec![
        named("a.jpg", good.clone()),
        named("b.jpg", std::fs::read(lfw("Colin_Powell", 1)).unwrap()),
    ];
    let result = import_negatives(&failing, &pipeline, files, &mut next_id, &mut |_, _| {});
    assert!(result.is_err());
    assert!(block(failing.list_images("me", None)).unwrap().is_empty());
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *bytes).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        writer
            .start_file(*name, zip::write::FileOptions::default())
            .unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[test]
fn archives_are_opened_sampled_and_bombs_refused() {
    let photo = b"\xFF\xD8\xFF fake jpeg bytes \xFF\xD9".to_vec();
    let many: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| {
            (
                format!("lfw/Person_{i:02}/Person_{i:02}_0001.jpg"),
                photo.clone(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = many
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let mut with_junk = refs.clone();
    with_junk.push(("lfw/README.txt", b"text"));
    let files = vec![
        named("lfw.tgz", gzip(&tar_of(&with_junk))),
        named("more.zip", zip_of(&refs[..5])),
        named("single.jpg", photo.clone()),
    ];
    let limits = ExpandLimits {
        max_photos: 11,
        ..ExpandLimits::default()
    };
    let (photos, skipped, found) = app::expand_files(files, &limits);
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(
        found, 35,
        "30 in the tgz + 5 in the zip, the text file ignored"
    );
    assert_eq!(photos.len(), 11, "sampled down to the limit");
    assert_eq!(photos.iter().filter(|p| p.name == "single.jpg").count(), 1);
    // Evenly spread: the sample covers the first and last people of the archive.
    assert!(photos.iter().any(|p| p.name.contains("Person_00")));
    assert!(photos.iter().any(|p| p.name.contains("Person_2")));

    // A small zip that inflates past the limit.
    let zeros = vec![0u8; 4 << 20];
    let bomb = zip_of(&[("a.jpg", &zeros), ("b.jpg", &zeros)]);
    assert!(bomb.len() < 100_000);
    let tight = ExpandLimits {
        max_photos: 10,
        max_uncompressed_bytes: 6 << 20,
    };
    let (photos, skipped, _) = app::expand_files(vec![named("bomb.zip", bomb)], &tight);
    assert!(photos.is_empty());
    assert!(skipped[0].reason.contains("zip bomb"), "{skipped:?}");
    let (_, skipped, _) =
        app::expand_files(vec![named("broken.zip", b"PK nonsense".to_vec())], &tight);
    assert!(skipped[0].reason.contains("zip"), "{skipped:?}");
}

#[test]
fn classic_mode_refuses_a_gpu_that_cannot_hold_the_koch_network() {
    let (store, pipeline) = enrolled();
    let classic = TrainRequest {
        mode: TrainingMode::Classic,
        ..request(false)
    };
    let error = Training {
        impostors: None,
        device_limits: Some(DeviceBufferLimits::WEBGPU_DEFAULTS),
        ..Training::new(&store, &pipeline)
    }
    .start(&classic, ids(1), &mut |_| {})
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("cannot hold the classic") && error.contains("maxStorageBufferBindingSize"),
        "{error}"
    );
    assert!(
        block(store.list_runs("me")).unwrap().is_empty(),
        "nothing started"
    );
}

/// A face turned sideways is named as such, while the news photos of LFW (mostly facing the
/// camera) rarely are: the first photo of every tenth person, as `MAX_YAW_RATIO` was measured.
#[test]
fn turned_away_faces_are_told_apart_from_frontal_ones() {
    use faceverify::vision::detect::{Face, Keypoint, NUM_KEYPOINTS};
    use faceverify::vision::frame::Point;
    use faceverify::vision::quality::{MAX_YAW_RATIO, yaw_ratio};
    let detected = block(app::check_frame(
        &pipeline(),
        &frame(&lfw("George_W_Bush", 1)),
    ))
    .unwrap();
    let frontal = detected.faces[detected.chosen.unwrap()];
    assert!(yaw_ratio(&frontal) < MAX_YAW_RATIO);
    // The same face with the nose tip moved sideways by half the eyes' distance.
    let mut keypoints: [Point; NUM_KEYPOINTS] = frontal.keypoints;
    let (right, left) = (
        frontal.keypoint(Keypoint::RightEye),
        frontal.keypoint(Keypoint::LeftEye),
    );
    keypoints[Keypoint::NoseTip as usize].x =
        (right.x + left.x) / 2.0 + 0.5 * (left.x - right.x).abs();
    let turned = Face {
        keypoints,
        ..frontal
    };
    assert!(yaw_ratio(&turned) > MAX_YAW_RATIO);

    let pipeline = pipeline();
    let (mut faces, mut turned_away) = (0, 0);
    for person in sorted_entries(&shared("lfw")).iter().step_by(10) {
        let photos = sorted_entries(person);
        let check = block(app::check_frame(&pipeline, &frame(&photos[0]))).unwrap();
        if check.chosen.is_some() {
            faces += 1;
            turned_away += usize::from(
                check
                    .hints
                    .iter()
                    .any(|h| matches!(h, FrameHint::TurnedAway { .. })),
            );
        }
    }
    assert!(faces > 300, "{faces} faces");
    assert!(
        turned_away * 50 <= faces,
        "{turned_away} of {faces} LFW photos turned away"
    );
}
