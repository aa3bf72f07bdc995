#![cfg(not(target_arch = "wasm32"))]
//! The app's session natively: every request the worker answers, sent to a `Session` on a
//! memory store with the real networks and LFW photos, as the page sends them.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use faceverify::app::{
    self, AppError, CaptureOutcome, FrameHint, Host, NamedFile, QualityGate, Session, TrainRequest,
    VerifyOutcome,
};
use faceverify::backend::{BackendKind, BackendPreference};
use faceverify::protocol::{CameraFrame, NetworkFile, WorkerRequest, WorkerResponse};
use faceverify::store::{
    ImageRole, ImportMode, MemoryStore, Profile, Settings, StoreError, TrainingMode,
};
use faceverify::train::run::CancelFlag;

#[path = "support/data.rs"]
mod data;
use data::{repo, shared};

fn lfw_path(person: &str, number: u32) -> PathBuf {
    shared("lfw")
        .join(person)
        .join(format!("{person}_{number:04}.jpg"))
}

fn lfw(person: &str, number: u32) -> PathBuf {
    let path = lfw_path(person, number);
    assert!(
        path.is_file(),
        "{} is missing: these tests need ../shared",
        path.display()
    );
    path
}

/// A camera frame as the page sends it: RGBA.
fn camera_frame(path: &Path) -> CameraFrame {
    rgba_frame(&image::open(path).unwrap())
}

fn rgba_frame(image: &image::DynamicImage) -> CameraFrame {
    let rgba = image.to_rgba8();
    CameraFrame {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    }
}

/// The platform of these tests: models from `models/`, a memory store, ids from a counter,
/// and every posted message kept.
#[derive(Default)]
struct TestHost {
    next_id: Cell<u64>,
    posted: RefCell<Vec<WorkerResponse>>,
    /// When set, downloading a model file fails with this.
    offline: RefCell<Option<String>>,
    stores_opened: Cell<u32>,
    deletions: Cell<u32>,
}

impl Host for TestHost {
    type Store = MemoryStore;

    fn new_id(&self, prefix: &str) -> String {
        self.next_id.set(self.next_id.get() + 1);
        format!("{prefix}-{}", self.next_id.get())
    }

    fn post(&self, message: &WorkerResponse) {
        self.posted.borrow_mut().push(message.clone());
    }

    async fn open_store(&self) -> Result<MemoryStore, StoreError> {
        self.stores_opened.set(self.stores_opened.get() + 1);
        Ok(MemoryStore::new())
    }

    async fn model_file(&self, file: NetworkFile) -> Result<Vec<u8>, String> {
        if let Some(detail) = self.offline.borrow().clone() {
            return Err(detail);
        }
        std::fs::read(repo().join(file.path)).map_err(|e| e.to_string())
    }

    async fn delete_all_data(&self, store: Option<MemoryStore>) -> Result<(), StoreError> {
        drop(store);
        self.deletions.set(self.deletions.get() + 1);
        Ok(())
    }

    fn random(&self) -> f64 {
        // Deterministic: a challenge the tests can predict.
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        (n % 10) as f64 / 10.0
    }
}

/// Whether the session posted a progress message that `which` accepts.
fn posted(session: &Session<TestHost>, which: impl Fn(&WorkerResponse) -> bool) -> bool {
    session.host().posted.borrow().iter().any(which)
}

fn new_session() -> Session<TestHost> {
    let mut session = Session::new(TestHost::default(), CancelFlag::new());
    let ready = send(
        &mut session,
        WorkerRequest::Init {
            preference: BackendPreference::Cpu,
        },
    );
    assert!(
        matches!(&ready, WorkerResponse::Ready { backend, .. } if backend.kind == BackendKind::Cpu),
        "{ready:?}"
    );
    // The page reads the state first, which creates the first profile.
    state(&mut session);
    session
}

fn send(session: &mut Session<TestHost>, request: WorkerRequest) -> WorkerResponse {
    pollster::block_on(session.answer(request))
}

fn refused(session: &mut Session<TestHost>, request: WorkerRequest) -> AppError {
    pollster::block_on(session.handle(request)).expect_err("the request should fail")
}

fn capture(session: &mut Session<TestHost>, path: &Path, role: ImageRole) -> CaptureOutcome {
    let request = WorkerRequest::Capture {
        profile: app::DEFAULT_PROFILE_ID.into(),
        role,
        frame: camera_frame(path),
        quality: QualityGate::Enforce,
    };
    match send(session, request) {
        WorkerResponse::Captured { outcome, .. } => outcome,
        other => panic!("{other:?}"),
    }
}

/// The hints of a capture, whether it was stored or refused.
fn capture_hints(outcome: &CaptureOutcome) -> &[FrameHint] {
    match outcome {
        CaptureOutcome::Stored { hints, .. } | CaptureOutcome::Refused { hints } => hints,
        CaptureOutcome::NoFace => panic!("no face"),
    }
}

/// A capture with the eyes shut is refused for it (the face mesh's eye openness): LFW's
/// least open eyes, a man shouting with his eyes squeezed shut, against George W. Bush's least
/// open ones among his 120 photos (0.110, still open) and a frontal photo.
#[test]
fn a_capture_with_the_eyes_shut_is_refused_for_it() {
    let mut session = new_session();
    let shut = capture(&mut session, &lfw("John_Hartson", 1), ImageRole::Anchor);
    assert!(
        matches!(&shut, CaptureOutcome::Refused { hints }
            if hints.iter().any(|h| matches!(h, FrameHint::EyesClosed { openness } if *openness < 0.05))),
        "{shut:?}"
    );
    for number in [56, 1] {
        let open = capture(
            &mut session,
            &lfw("George_W_Bush", number),
            ImageRole::Anchor,
        );
        assert!(
            !capture_hints(&open)
                .iter()
                .any(|h| matches!(h, FrameHint::EyesClosed { .. })),
            "George_W_Bush {number}: {open:?}"
        );
    }
}

/// Whether the face in `path` is verified, and the id of the model that decided.
fn decision(session: &mut Session<TestHost>, path: &Path) -> (bool, String) {
    let request = WorkerRequest::Verify {
        profile: app::DEFAULT_PROFILE_ID.into(),
        frame: camera_frame(path),
    };
    match send(session, request) {
        WorkerResponse::Verified { outcome } => match *outcome {
            VerifyOutcome::Decision {
                result, model_id, ..
            } => (result.verified, model_id),
            VerifyOutcome::NoFace { .. } => panic!("no face in {}", path.display()),
        },
        other => panic!("{other:?}"),
    }
}

fn verify(session: &mut Session<TestHost>, path: &Path) -> bool {
    decision(session, path).0
}

fn state(session: &mut Session<TestHost>) -> app::ProfileState {
    match send(session, WorkerRequest::LoadState { profile: None }) {
        WorkerResponse::State { state } => *state,
        other => panic!("{other:?}"),
    }
}

/// Enrols George W. Bush (5 anchors, 5 positives) and imports 5 other people as negatives.
fn enrol(session: &mut Session<TestHost>) {
    for i in 1..=5 {
        for (role, number) in [(ImageRole::Anchor, i), (ImageRole::Positive, i + 5)] {
            let outcome = capture(session, &lfw("George_W_Bush", number), role);
            assert!(
                matches!(outcome, CaptureOutcome::Stored { .. }),
                "{outcome:?}"
            );
        }
    }
    let others = [
        "Colin_Powell",
        "Gerhard_Schroeder",
        "Hugo_Chavez",
        "Donald_Rumsfeld",
        "Ariel_Sharon",
    ];
    let files = others
        .iter()
        .map(|person| NamedFile {
            name: format!("{person}.jpg"),
            bytes: std::fs::read(lfw(person, 1)).unwrap(),
        })
        .collect();
    let imported = send(
        session,
        WorkerRequest::ImportPhotos {
            profile: app::DEFAULT_PROFILE_ID.into(),
            role: ImageRole::Negative,
            files,
        },
    );
    let WorkerResponse::PhotosImported { report } = imported else {
        panic!("{imported:?}");
    };
    assert_eq!(report.added.len(), 5, "{report:?}");
    assert!(
        posted(session, |m| matches!(
            m,
            WorkerResponse::ImportProgress { done: 5, total: 5 }
        )),
        "the import reports its progress"
    );
}

fn train(session: &mut Session<TestHost>) -> WorkerResponse {
    send(
        session,
        WorkerRequest::Train {
            request: TrainRequest {
                profile: app::DEFAULT_PROFILE_ID.into(),
                mode: TrainingMode::FineTune,
                epochs: Some(20),
                batch_size: None,
                seed: 7,
                resume: false,
            },
        },
    )
}

#[test]
fn a_session_enrols_trains_verifies_exports_and_deletes_everything() {
    let mut session = new_session();
    let first = state(&mut session);
    assert_eq!(first.profile.id, app::DEFAULT_PROFILE_ID);
    assert!(first.images.is_empty());

    enrol(&mut session);
    let grey = image::RgbaImage::from_pixel(320, 240, image::Rgba([128, 128, 128, 255]));
    let no_face = WorkerRequest::Capture {
        profile: app::DEFAULT_PROFILE_ID.into(),
        role: ImageRole::Anchor,
        frame: CameraFrame {
            width: 320,
            height: 240,
            rgba: grey.into_raw(),
        },
        quality: QualityGate::Enforce,
    };
    assert!(matches!(
        send(&mut session, no_face),
        WorkerResponse::Captured {
            outcome: CaptureOutcome::NoFace,
            ..
        }
    ));
    assert_eq!(state(&mut session).images.len(), 15);

    // Before any training the default model decides.
    let (verified, model) = decision(&mut session, &lfw("George_W_Bush", 11));
    assert!(
        verified && model == "default",
        "Bush with the default model"
    );
    assert!(
        !decision(&mut session, &lfw("Colin_Powell", 2)).0,
        "Powell with the default model"
    );

    let trained = train(&mut session);
    let WorkerResponse::Trained { outcome } = &trained else {
        panic!("{trained:?}");
    };
    let model = outcome.model.as_ref().expect("a model was stored");
    // What training changed, on the run's own test pairs.
    let before = outcome
        .default_model
        .expect("fine-tune compares with the default model");
    assert!(
        before.pairs > 0 && (0.0..=1.0).contains(&before.false_reject_rate),
        "{before:?}"
    );
    assert!(
        posted(&session, |m| matches!(m, WorkerResponse::Training { .. })),
        "training reports its epochs"
    );
    // The calibrated thresholds became the saved ones.
    let calibrated = app::ModelMetrics::of(&model.meta.metrics).unwrap().policy;
    let settings = state(&mut session).settings;
    assert_eq!(settings.detection_threshold, calibrated.detection.value());
    assert_eq!(
        settings.verification_threshold,
        calibrated.verification.value()
    );

    assert!(
        verify(&mut session, &lfw("George_W_Bush", 11)),
        "Bush himself"
    );
    assert!(
        !verify(&mut session, &lfw("Colin_Powell", 2)),
        "Colin Powell"
    );

    let WorkerResponse::Exported { bytes } = send(&mut session, WorkerRequest::Export) else {
        panic!("no export");
    };
    model_file_verifies_in_another_session(&bytes);
    assert_eq!(
        send(&mut session, WorkerRequest::DeleteAll),
        WorkerResponse::AllDeleted
    );
    assert_eq!(session.host().deletions.get(), 1);
    assert!(state(&mut session).images.is_empty(), "everything is gone");
    assert_eq!(
        session.host().stores_opened.get(),
        2,
        "a new store after deleting"
    );

    let imported = send(
        &mut session,
        WorkerRequest::ImportArchive {
            bytes,
            mode: ImportMode::Replace,
        },
    );
    assert!(
        matches!(
            imported,
            WorkerResponse::ArchiveImported {
                images: 15,
                models: 1,
                ..
            }
        ),
        "{imported:?}"
    );
    // The restored model verifies again: the verifier was rebuilt from the imported data.
    assert!(
        verify(&mut session, &lfw("George_W_Bush", 11)),
        "after the import"
    );
}

/// The model file in an export, imported into a new session with other photos of the same
/// man, verifies him; a file that is no model is refused.
fn model_file_verifies_in_another_session(archive: &[u8]) {
    let contents = faceverify::store::archive::decode_archive(
        archive,
        &Default::default(),
        &Default::default(),
    )
    .unwrap();
    let model = contents
        .models
        .values()
        .next()
        .expect("the export holds the model");
    let mut other = new_session();
    for number in 12..=16 {
        let outcome = capture(
            &mut other,
            &lfw("George_W_Bush", number),
            ImageRole::Verification,
        );
        assert!(
            matches!(outcome, CaptureOutcome::Stored { .. }),
            "{outcome:?}"
        );
    }
    let imported = send(
        &mut other,
        WorkerRequest::ImportModel {
            profile: app::DEFAULT_PROFILE_ID.into(),
            bytes: model.bytes.clone(),
        },
    );
    let WorkerResponse::State { state } = &imported else {
        panic!("{imported:?}");
    };
    let active = state.model.as_ref().expect("the imported model is active");
    // The file carries the run's settings, figures and thresholds.
    assert_eq!(active.meta.training_settings, model.meta.training_settings);
    assert_eq!(active.meta.metrics, model.meta.metrics);
    assert!(
        verify(&mut other, &lfw("George_W_Bush", 11)),
        "with the imported model"
    );
    assert!(!verify(&mut other, &lfw("Colin_Powell", 2)), "another man");
    let garbage = refused(
        &mut other,
        WorkerRequest::ImportModel {
            profile: app::DEFAULT_PROFILE_ID.into(),
            bytes: b"not a model".to_vec(),
        },
    );
    assert!(
        garbage
            .user_message()
            .starts_with("This file is not a faceverify model"),
        "{garbage}"
    );
}

#[test]
fn photos_and_profiles_change_through_the_session() {
    let mut session = new_session();
    let outcome = capture(&mut session, &lfw("George_W_Bush", 1), ImageRole::Anchor);
    let CaptureOutcome::Stored { image, .. } = outcome else {
        panic!("{outcome:?}");
    };
    let moved = send(
        &mut session,
        WorkerRequest::SetPhotoRole {
            profile: app::DEFAULT_PROFILE_ID.into(),
            id: image.meta.id.clone(),
            role: ImageRole::Verification,
        },
    );
    let WorkerResponse::State { state } = moved else {
        panic!("{moved:?}");
    };
    assert_eq!(state.images[0].meta.role, ImageRole::Verification);
    let deleted = send(
        &mut session,
        WorkerRequest::DeletePhoto {
            profile: app::DEFAULT_PROFILE_ID.into(),
            id: image.meta.id.clone(),
        },
    );
    assert!(matches!(deleted, WorkerResponse::State { state } if state.images.is_empty()));
    let gone = refused(
        &mut session,
        WorkerRequest::SetPhotoRole {
            profile: app::DEFAULT_PROFILE_ID.into(),
            id: image.meta.id,
            role: ImageRole::Anchor,
        },
    );
    assert_eq!(gone.user_message(), "That photo no longer exists.");

    let unnamed = Profile {
        id: "p2".into(),
        name: "   ".into(),
    };
    let error = refused(
        &mut session,
        WorkerRequest::SaveProfile { profile: unnamed },
    );
    assert_eq!(
        error.user_message(),
        "A profile needs a name of 1 to 60 characters."
    );
    let named = Profile {
        id: "p2".into(),
        name: "Ana".into(),
    };
    let saved = send(&mut session, WorkerRequest::SaveProfile { profile: named });
    assert!(matches!(&saved, WorkerResponse::State { state } if state.profile.id == "p2"));
    let removed = send(
        &mut session,
        WorkerRequest::DeleteProfile { id: "p2".into() },
    );
    assert!(
        matches!(&removed, WorkerResponse::State { state } if state.profiles.iter().all(|p| p.id != "p2")),
        "{removed:?}"
    );
}

#[test]
fn bad_requests_fail_with_a_sentence_and_change_nothing() {
    let mut session = new_session();
    let settings = Settings {
        detection_threshold: 1.5,
        ..Settings::default()
    };
    let answer = send(
        &mut session,
        WorkerRequest::SaveSettings {
            profile: None,
            settings,
        },
    );
    let WorkerResponse::Failed { request, message } = answer else {
        panic!("{answer:?}");
    };
    assert_eq!(request, "SaveSettings");
    assert!(
        message.starts_with("Thresholds must lie between 0 and 1"),
        "{message}"
    );
    assert_eq!(state(&mut session).settings, Settings::default());

    let torn = WorkerRequest::CheckFrame {
        frame: CameraFrame {
            width: 10,
            height: 10,
            rgba: vec![0; 7],
        },
    };
    let error = refused(&mut session, torn);
    assert!(
        error
            .user_message()
            .starts_with("The camera picture could not be read")
    );
    let error = refused(&mut session, WorkerRequest::CancelTraining);
    assert_eq!(error.user_message(), "No training is running.");
    let archive = refused(
        &mut session,
        WorkerRequest::ImportArchive {
            bytes: b"not a tar".to_vec(),
            mode: ImportMode::Merge,
        },
    );
    assert!(
        archive.user_message().contains("Nothing was imported."),
        "{archive}"
    );
    let usage = send(&mut session, WorkerRequest::MeasureUsage);
    assert!(matches!(usage, WorkerResponse::Usage { .. }), "{usage:?}");
}

#[test]
fn a_failed_download_says_which_file_and_is_tried_again() {
    let mut session = new_session();
    *session.host().offline.borrow_mut() = Some("HTTP 503".into());
    let frame = camera_frame(&lfw("George_W_Bush", 1));
    let error = refused(
        &mut session,
        WorkerRequest::CheckFrame {
            frame: frame.clone(),
        },
    );
    let message = error.user_message();
    assert!(
        message.starts_with("The face detector could not be downloaded (HTTP 503)"),
        "{message}"
    );
    assert!(message.contains("works offline"), "{message}");
    *session.host().offline.borrow_mut() = None;
    let checked = send(&mut session, WorkerRequest::CheckFrame { frame });
    assert!(
        matches!(&checked, WorkerResponse::FrameChecked { check } if check.faces.len() == 1),
        "{checked:?}"
    );
}

#[test]
fn the_training_self_check_and_photo_analysis_run_on_the_chosen_device() {
    let mut session = new_session();
    let checked = send(&mut session, WorkerRequest::CheckTraining { steps: 3 });
    assert!(
        matches!(&checked, WorkerResponse::TrainingChecked { backend, .. } if backend.kind == BackendKind::Cpu),
        "{checked:?}"
    );
    let analysed = send(
        &mut session,
        WorkerRequest::AnalysePhoto {
            bytes: std::fs::read(lfw("George_W_Bush", 1)).unwrap(),
            crop: Default::default(),
        },
    );
    let WorkerResponse::PhotoAnalysed { analysis, .. } = analysed else {
        panic!("{analysed:?}");
    };
    assert_eq!(analysis.embedding.map(|e| e.len()), Some(128));
    let torn = refused(
        &mut session,
        WorkerRequest::AnalysePhoto {
            bytes: b"\xff\xd8\xff truncated".to_vec(),
            crop: Default::default(),
        },
    );
    assert!(
        torn.user_message()
            .starts_with("The photo could not be analysed"),
        "{torn}"
    );
}

// ---------------------------------------------------------------------------------------------
// Identification

/// LFW people (A–L) with at least `photos` photos, by name.
fn lfw_people_with(photos: usize) -> Vec<String> {
    let lfw = shared("lfw");
    let mut people: Vec<String> = std::fs::read_dir(&lfw)
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_dir(e.path()).map_or(0, |d| d.count()) >= photos)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    people.sort();
    people
}

fn identify(session: &mut Session<TestHost>, path: &Path) -> Option<String> {
    let request = WorkerRequest::Identify {
        frame: camera_frame(path),
    };
    match send(session, request) {
        WorkerResponse::Identified { outcome } => match *outcome {
            app::IdentifyOutcome::Decision { identified, .. } => identified.map(|p| p.id),
            app::IdentifyOutcome::NoFace { .. } => panic!("no face in {}", path.display()),
        },
        other => panic!("{other:?}"),
    }
}

/// Open-set identification on LFW with the default model: 12 people enrolled with 3 photos
/// each, probed with 3 other photos each, and 60 people who are not enrolled. Prints the
/// figures (`cargo test --test session -- --nocapture identification`).
#[test]
fn identification_names_enrolled_people_and_nobody_else() {
    let mut session = new_session();
    let candidates = lfw_people_with(6);
    let (enrolled, others) = candidates.split_at(12);
    for person in enrolled {
        let profile = Profile {
            id: person.clone(),
            name: person.replace('_', " "),
        };
        send(&mut session, WorkerRequest::SaveProfile { profile });
        let files = (1..=3)
            .map(|n| NamedFile {
                name: format!("{person}_{n}.jpg"),
                bytes: std::fs::read(lfw(person, n)).unwrap(),
            })
            .collect();
        let imported = send(
            &mut session,
            WorkerRequest::ImportPhotos {
                profile: person.clone(),
                role: ImageRole::Verification,
                files,
            },
        );
        assert!(
            matches!(&imported, WorkerResponse::PhotosImported { report } if report.added.len() == 3),
            "{imported:?}"
        );
    }
    let (mut correct, mut genuine) = (0, 0);
    for person in enrolled {
        for number in 4..=6 {
            genuine += 1;
            correct +=
                usize::from(identify(&mut session, &lfw(person, number)).as_ref() == Some(person));
        }
    }
    let strangers: Vec<&String> = others.iter().take(60).collect();
    let named = strangers
        .iter()
        .filter(|person| identify(&mut session, &lfw(person, 1)).is_some())
        .count();
    let correct_rate = correct as f64 / genuine as f64;
    let false_naming = named as f64 / strangers.len() as f64;
    println!(
        "identification (default model, 12 enrolled, 3 photos each): correct {correct}/{genuine} \
         = {correct_rate:.3}; unenrolled named {named}/{} = {false_naming:.3}",
        strangers.len()
    );
    assert!(
        correct_rate >= 0.75,
        "correct identification {correct_rate}"
    );
    assert!(
        false_naming <= 0.05,
        "unenrolled faces named {false_naming}"
    );
}

// ---------------------------------------------------------------------------------------------
// Thresholds per verification attempt

/// Whether the face in `path` is verified; `None` when the detector finds no face.
fn verified_if_face(session: &mut Session<TestHost>, path: &Path) -> Option<bool> {
    let request = WorkerRequest::Verify {
        profile: app::DEFAULT_PROFILE_ID.into(),
        frame: camera_frame(path),
    };
    match send(session, request) {
        WorkerResponse::Verified { outcome } => match *outcome {
            VerifyOutcome::Decision { result, .. } => Some(result.verified),
            VerifyOutcome::NoFace { .. } => None,
        },
        other => panic!("{other:?}"),
    }
}

/// Every `step`-th LFW person (A–L) but George W. Bush and the five imported as negatives.
fn other_lfw_people(step: usize) -> Vec<String> {
    let excluded = [
        "George_W_Bush",
        "Colin_Powell",
        "Gerhard_Schroeder",
        "Hugo_Chavez",
        "Donald_Rumsfeld",
        "Ariel_Sharon",
    ];
    lfw_people_with(1)
        .into_iter()
        .filter(|p| !excluded.contains(&p.as_str()))
        .step_by(step)
        .collect()
}

/// What the enrolled man's model does with other people's photos and his own later ones.
struct AttemptFigures {
    calibration: faceverify::verify::attempts::AttemptCalibration,
    strangers_tried: usize,
    strangers_accepted: Vec<String>,
    genuine_tried: usize,
    genuine_rejected: usize,
}

/// Enrols George W. Bush, trains, then verifies every photo of `strangers` (up to
/// `photos_each` per person) and his photos 11–60, none of which training saw.
fn attempt_figures(strangers: &[String], photos_each: usize) -> AttemptFigures {
    let mut session = new_session();
    enrol(&mut session);
    let WorkerResponse::Trained { outcome } = train(&mut session) else {
        panic!("training failed");
    };
    let model = outcome.model.expect("a model");
    let metrics = app::ModelMetrics::of(&model.meta.metrics).expect("figures");
    let calibration = metrics.attempts.expect("a calibration per attempt");
    assert_eq!(
        metrics.policy, calibration.policy,
        "the model verifies with it"
    );
    let saved = state(&mut session).settings;
    assert_eq!(
        saved.detection_threshold,
        calibration.policy.detection.value()
    );
    let (mut strangers_tried, mut strangers_accepted) = (0, Vec::new());
    for person in strangers {
        for number in 1..=photos_each as u32 {
            let path = lfw_path(person, number);
            if !path.is_file() {
                break;
            }
            match verified_if_face(&mut session, &path) {
                Some(true) => strangers_accepted.push(format!("{person} {number}")),
                Some(false) => {}
                None => continue,
            }
            strangers_tried += 1;
        }
    }
    let genuine: Vec<bool> = (11..=60)
        .filter_map(|n| verified_if_face(&mut session, &lfw("George_W_Bush", n)))
        .collect();
    let figures = AttemptFigures {
        calibration,
        strangers_tried,
        strangers_accepted,
        genuine_tried: genuine.len(),
        genuine_rejected: genuine.iter().filter(|v| !**v).count(),
    };
    let c = &figures.calibration;
    println!(
        "per attempt (target {:.0e}): policy {:.2}/{:.3}; synthetic impostors accepted {} of {} \
         (FAR below {:.1e} with 95% confidence); LFW strangers' photos accepted {} of {}; \
         held-out genuine photos rejected {} of {}",
        c.target_false_accept_rate,
        c.policy.detection.value(),
        c.policy.verification.value(),
        c.impostors_accepted,
        c.impostor_attempts,
        c.false_accept_upper_bound,
        figures.strangers_accepted.len(),
        figures.strangers_tried,
        figures.genuine_rejected,
        figures.genuine_tried,
    );
    figures
}

/// Training calibrates for the settings' FAR per attempt (1e-4) from tens of thousands of
/// impostor attempts, and the thresholds hold on real people the model never saw: one photo of
/// each of about 420 LFW people, none of them verified, while the enrolled man's later photos
/// still are. Prints the figures (`cargo test --test session -- --nocapture per_attempt`).
#[test]
fn thresholds_calibrated_per_attempt_hold_on_people_never_seen() {
    let figures = attempt_figures(&other_lfw_people(8), 1);
    let c = figures.calibration;
    assert_eq!(c.target_false_accept_rate, 1e-4);
    assert!(c.target_met, "{c:?}");
    assert!(c.impostor_attempts >= 50_000);
    assert!(c.false_accept_upper_bound <= 1e-4);
    assert!(figures.strangers_tried >= 400);
    assert!(
        figures.strangers_accepted.is_empty(),
        "strangers verified: {:?}",
        figures.strangers_accepted
    );
    assert!(
        figures.genuine_rejected * 10 <= figures.genuine_tried,
        "{} of {} genuine photos rejected",
        figures.genuine_rejected,
        figures.genuine_tried
    );
}

/// The same on every photo of every other LFW identity here (about 7,700 photos; minutes):
/// `cargo test --test session -- --ignored --nocapture every_other_identity`.
#[test]
#[ignore = "minutes: run by hand for the figure"]
fn every_other_identity_tries_the_per_attempt_thresholds() {
    let figures = attempt_figures(&other_lfw_people(1), usize::MAX);
    println!("accepted: {:?}", figures.strangers_accepted);
}

// ---------------------------------------------------------------------------------------------
// Adaptive references

#[path = "support/clips.rs"]
mod clips;

/// The frames of a camera clip as the page sends them.
fn clip_frames(name: &str) -> Vec<CameraFrame> {
    clips::clip_frames(name).iter().map(rgba_frame).collect()
}

/// Enrols the man of the webcam clips from three frames of his first session (0.9 s, 13.3 s
/// and 26.7 s), as verification photos.
fn enrol_from_webcam(session: &mut Session<TestHost>, first: &[CameraFrame]) {
    for frame in [&first[20], &first[200], &first[400]] {
        let request = WorkerRequest::Capture {
            profile: app::DEFAULT_PROFILE_ID.into(),
            role: ImageRole::Verification,
            frame: frame.clone(),
            quality: app::QualityGate::StoreAnyway,
        };
        send(session, request);
    }
}

/// Verifies `frame` and says what was decided and what became of the face.
fn verify_clip_frame(
    session: &mut Session<TestHost>,
    frame: &CameraFrame,
) -> Option<(
    faceverify::verify::policy::VerificationResult,
    app::Adaptation,
)> {
    let request = WorkerRequest::Verify {
        profile: app::DEFAULT_PROFILE_ID.into(),
        frame: frame.clone(),
    };
    match send(session, request) {
        WorkerResponse::Verified { outcome } => match *outcome {
            VerifyOutcome::Decision {
                result, adaptation, ..
            } => Some((result, adaptation)),
            VerifyOutcome::NoFace { .. } => None,
        },
        other => panic!("{other:?}"),
    }
}

fn set_adaptive(session: &mut Session<TestHost>, on: bool) {
    let settings = faceverify::store::Settings {
        adaptive_references: on,
        ..state(session).settings
    };
    send(
        session,
        WorkerRequest::SaveSettings {
            profile: None,
            settings,
        },
    );
}

/// Mean fraction of matching references, and frames verified, over `frames`.
fn match_fraction(session: &mut Session<TestHost>, frames: &[CameraFrame]) -> (f32, usize) {
    let results: Vec<_> = frames
        .iter()
        .filter_map(|f| verify_clip_frame(session, f))
        .map(|(result, _)| result)
        .collect();
    let mean = results.iter().map(|r| r.fraction).sum::<f32>() / results.len() as f32;
    (mean, results.iter().filter(|r| r.verified).count())
}

/// Enrolled on the first webcam session, the man is verified on the second with a higher
/// match fraction once clear matches of the second session joined the references; an
/// impostor's frames never join, and are still refused. Prints the figures
/// (`cargo test --test session -- --nocapture adaptive`).
#[test]
fn adaptive_references_follow_the_person_and_never_let_an_impostor_in() {
    let mut session = new_session();
    let first = clip_frames("webcam-a-session1.mjpeg");
    let second = clip_frames("webcam-a-session2.mjpeg");
    enrol_from_webcam(&mut session, &first);
    let (learning, probing) = second.split_at(second.len() / 2);
    let probes: Vec<CameraFrame> = probing.iter().step_by(4).cloned().collect();
    let (before, verified_before) = match_fraction(&mut session, &probes);

    set_adaptive(&mut session, true);
    let mut learned = 0;
    for frame in learning.iter().step_by(4) {
        if let Some((_, app::Adaptation::Learned { .. })) = verify_clip_frame(&mut session, frame) {
            learned += 1;
        }
    }
    let kept = state(&mut session)
        .images
        .iter()
        .filter(|i| i.meta.role == ImageRole::Adaptive)
        .count();
    let (after, verified_after) = match_fraction(&mut session, &probes);

    let impostor = clip_frames("person-b.mjpeg");
    let mut impostor_verified = 0;
    for frame in impostor.iter().step_by(5) {
        if let Some((result, adaptation)) = verify_clip_frame(&mut session, frame) {
            impostor_verified += usize::from(result.verified);
            assert!(
                !matches!(adaptation, app::Adaptation::Learned { .. }),
                "an impostor's frame became a reference"
            );
        }
    }
    println!(
        "adaptive references (default model, 3 photos of session 1; {} probes of session 2): \
         match fraction {before:.3} before, {after:.3} after {learned} clear matches were learned \
         ({kept} kept); verified {verified_before} before, {verified_after} after; impostor \
         frames verified {impostor_verified}",
        probes.len()
    );
    assert!(learned > 0, "no clear match was learned");
    assert!(kept <= app::MAX_ADAPTIVE_REFERENCES && kept > 0);
    assert!(after > before, "fraction {before} before, {after} after");
    assert!(verified_after >= verified_before);
    assert_eq!(impostor_verified, 0);

    // Forgetting removes every adaptive photo and nothing else.
    let photos = state(&mut session).images.len();
    let request = WorkerRequest::ForgetAdaptive {
        profile: app::DEFAULT_PROFILE_ID.into(),
    };
    let WorkerResponse::State { state } = send(&mut session, request) else {
        panic!("no state");
    };
    assert_eq!(state.images.len(), photos - kept);
    assert!(
        state
            .images
            .iter()
            .all(|i| i.meta.role != ImageRole::Adaptive)
    );
}

// ---------------------------------------------------------------------------------------------
// Verification with liveness

/// Feeds `frames` (taken `1000 / fps` ms apart, from `start` on) to the running liveness check
/// until it decides; returns the decision.
fn answer_liveness(
    session: &mut Session<TestHost>,
    frames: &[CameraFrame],
    fps: f64,
    start: usize,
) -> app::LivenessOutcome {
    for (i, frame) in frames.iter().enumerate().skip(start) {
        let request = WorkerRequest::LivenessFrame {
            frame: frame.clone(),
            t_ms: (i as f64 * 1000.0 / fps) as u64,
        };
        let WorkerResponse::Liveness { outcome } = send(session, request) else {
            panic!("no liveness answer");
        };
        if !matches!(*outcome, app::LivenessOutcome::Asking { .. }) {
            return *outcome;
        }
    }
    panic!("the clip ended before the check decided");
}

/// The man of the webcam clips, enrolled from three frames of session 1, answers a blink
/// challenge live and is verified on the frames the challenge marked; a slideshow of photos
/// fails the challenge with its reason before any identity is decided.
#[test]
fn verification_with_liveness_accepts_the_live_man_and_refuses_photos() {
    use faceverify::verify::liveness::{Action, NotLive};
    let mut session = new_session();
    let first = clip_frames("webcam-a-session1.mjpeg");
    enrol_from_webcam(&mut session, &first);
    let refused = refused(
        &mut session,
        WorkerRequest::LivenessFrame {
            frame: first[0].clone(),
            t_ms: 0,
        },
    );
    assert!(matches!(refused, AppError::NoLiveCheck), "{refused}");

    let start = |session: &mut Session<TestHost>, actions: Vec<Action>| {
        let request = WorkerRequest::StartLiveness {
            profile: app::DEFAULT_PROFILE_ID.into(),
            actions: Some(actions),
        };
        let WorkerResponse::Liveness { outcome } = send(session, request) else {
            panic!("not started");
        };
        assert!(matches!(*outcome, app::LivenessOutcome::Asking { .. }));
    };
    start(&mut session, vec![Action::Blink]);
    // From 2.0 s: he blinks at 3.9 s.
    let outcome = answer_liveness(&mut session, &first, 15.0, 30);
    let app::LivenessOutcome::Live {
        verified, results, ..
    } = outcome
    else {
        panic!("the live man was refused: {outcome:?}");
    };
    assert!(verified, "{results:?}");
    assert_eq!(results.len(), 2, "the first frame and the blink's");

    start(&mut session, vec![Action::Blink, Action::TurnLeft]);
    let photos = clip_frames("person-a.mjpeg");
    let outcome = answer_liveness(&mut session, &photos, 10.0, 0);
    assert!(
        matches!(
            outcome,
            app::LivenessOutcome::NotLive {
                why: NotLive::FaceJumped | NotLive::TooSlow { .. }
            }
        ),
        "{outcome:?}"
    );

    // A second face in view ends the check on the frame where it appears (the detector counts
    // faces on every frame).
    start(&mut session, vec![Action::Blink]);
    let two = camera_frame(&shared("color/two_people.jpg"));
    let frames = [first[30].clone(), first[31].clone(), two];
    let outcomes: Vec<app::LivenessOutcome> = frames
        .into_iter()
        .enumerate()
        .map(|(i, frame)| {
            let request = WorkerRequest::LivenessFrame {
                frame,
                t_ms: 2_000 + 67 * i as u64,
            };
            let WorkerResponse::Liveness { outcome } = send(&mut session, request) else {
                panic!("no liveness answer");
            };
            *outcome
        })
        .collect();
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                app::LivenessOutcome::Asking { .. },
                app::LivenessOutcome::Asking { .. },
                app::LivenessOutcome::NotLive {
                    why: NotLive::SecondFace
                }
            ]
        ),
        "{outcomes:?}"
    );
}
