//! The face mesh network (`faceverify::model::facemesh`) against the same TensorFlow.js graph
//! run by TensorFlow.js in node, on the CPU backend (flex).
//!
//! Inputs are made here from `../shared` (never copied into the repository): colour photos and
//! frames of the two real webcam clips, each face found by the app's detector and cropped by
//! `vision::mesh::MeshCrop::for_face`. The fixture stores the SHA-256 of every crop, so a
//! change in decoding, detection or resampling fails loudly instead of showing up as a parity
//! miss. Regenerate the fixture: see `xtask/reference/facemesh_reference.mjs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use burn::tensor::Device;
use faceverify::model::facemesh::{
    FaceMesh, INPUT_SIZE, NUM_LANDMARKS, WEIGHTS_PATH, input_from_rgb8,
};
use faceverify::train::pairs::SeededRng;
use faceverify::verify::liveness::{
    Action, BlinkDetector, Challenge, ChallengeStatus, MOUTH_CLOSED, MOUTH_OPEN, NotLive,
    Observation, ObservedFace,
};
use faceverify::vision::frame::Frame;
use faceverify::vision::mesh::{MeshCrop, MeshTracker};
use faceverify::vision::quality::largest_face;
use serde_json::Value;

#[path = "support/data.rs"]
mod data;
use data::{
    json, model_file, pipeline, sha256_hex, shared, sorted_entries, write_reference_inputs,
};

#[path = "support/clips.rs"]
mod clips;

const FIXTURE: &str = "tests/fixtures/facemesh_reference.json";
/// Largest allowed difference of a landmark coordinate, in pixels of the 192×192 crop.
const PARITY_PX: f32 = 1.0;
/// Largest allowed difference of the face-presence probability.
const PARITY_SCORE: f32 = 0.01;

const PHOTOS: &[&str] = &[
    "color/astronaut.png",
    "color/biden.jpg",
    "color/obama.jpg",
    "color/obama2.jpg",
    "color/two_people.jpg",
];
/// Frames of the real webcam clips: (clip, frame index).
const CLIP_FRAMES: &[(&str, usize)] = &[
    ("webcam-a-session1.mjpeg", 0),
    ("webcam-a-session1.mjpeg", 120),
    ("webcam-a-session1.mjpeg", 240),
    ("webcam-a-session1.mjpeg", 360),
    ("webcam-a-session2.mjpeg", 0),
    ("webcam-a-session2.mjpeg", 150),
];

/// Every input: its name and its 192×192 crop (RGB8).
fn inputs() -> Vec<(String, Frame)> {
    let pipeline = pipeline();
    let mut frames: Vec<(String, image::DynamicImage)> = PHOTOS
        .iter()
        .map(|p| {
            (
                p.to_string(),
                image::open(shared(p)).unwrap_or_else(|e| panic!("{p}: {e}")),
            )
        })
        .collect();
    for &(clip, index) in CLIP_FRAMES {
        let frame = clips::clip_frames(clip).swap_remove(index);
        frames.push((format!("camera/{clip}#{index}"), frame));
    }
    frames
        .into_iter()
        .map(|(name, image)| {
            let frame = Frame::from_image(&image);
            let faces = pollster::block_on(pipeline.detector().detect(&frame))
                .unwrap()
                .faces;
            let face = &faces[largest_face(&faces).unwrap_or_else(|| panic!("{name}: no face"))];
            (name, MeshCrop::for_face(&frame, face).crop)
        })
        .collect()
}

/// Writes the inputs for the reference script:
/// `FACEMESH_DUMP_DIR=/tmp/facemesh_inputs cargo test --test facemesh -- --ignored --exact dump_reference_inputs`.
#[test]
#[ignore = "writes the reference script's inputs"]
fn dump_reference_inputs() {
    let inputs = inputs();
    let mut bin = Vec::new();
    let described: Vec<Value> = inputs
        .iter()
        .map(|(name, crop)| {
            bin.extend_from_slice(crop.pixels());
            serde_json::json!({ "name": name, "sha256": sha256_hex(crop.pixels()) })
        })
        .collect();
    let description = serde_json::json!({ "size": INPUT_SIZE, "inputs": described });
    write_reference_inputs("FACEMESH_DUMP_DIR", &bin, &description);
}

#[test]
fn landmarks_match_tensorflow_js_within_a_pixel() {
    let fixture: Value = json(FIXTURE);
    let device = Device::flex();
    let weights = model_file(WEIGHTS_PATH);
    let mesh = FaceMesh::from_bytes(&weights, &device).unwrap();
    let inputs = inputs();
    let references = fixture["outputs"].as_array().unwrap();
    assert_eq!(references.len(), inputs.len());
    let mut worst = (0f32, String::new());
    for ((name, crop), reference) in inputs.iter().zip(references) {
        assert_eq!(reference["name"], name.as_str());
        assert_eq!(
            reference["sha256"],
            sha256_hex(crop.pixels()).as_str(),
            "{name}: the crop differs from the one the fixture was made from"
        );
        let out = pollster::block_on(mesh.run(input_from_rgb8(crop.pixels(), &device))).unwrap();
        let expected = mesh_values(reference);
        assert_eq!(expected.len(), NUM_LANDMARKS * 3);
        for (i, (a, b)) in out.landmarks.iter().zip(&expected).enumerate() {
            let diff = (a - b).abs();
            if diff > worst.0 {
                worst = (diff, format!("{name} landmark {} axis {}", i / 3, i % 3));
            }
        }
        let score = reference["face_score"].as_f64().unwrap() as f32;
        assert!(
            (out.face_scores[0] - score).abs() <= PARITY_SCORE,
            "{name}: face score {} vs {score}",
            out.face_scores[0]
        );
        assert!(score > 0.5, "{name}: the reference sees no face ({score})");
    }
    println!(
        "largest landmark difference: {:.4} px ({})",
        worst.0, worst.1
    );
    assert!(
        worst.0 <= PARITY_PX,
        "largest landmark difference {} px at {}",
        worst.0,
        worst.1
    );
}

// ---------------------------------------------------------------------------------------------
// Face state

/// The landmark coordinates of one output of the fixture, flat (x, y, z of each landmark).
fn mesh_values(output: &Value) -> Vec<f32> {
    output["mesh"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// The reference meshes of the fixture (crop pixels), by input name.
fn reference_meshes() -> Vec<(String, Vec<[f32; 3]>)> {
    let fixture: Value = json(FIXTURE);
    fixture["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let values = mesh_values(o);
            let mesh = values.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
            (o["name"].as_str().unwrap().to_string(), mesh)
        })
        .collect()
}

/// `mesh` turned by `yaw` about the vertical axis and then `pitch` about the horizontal one,
/// through its centroid.
fn rotated(mesh: &[[f32; 3]], yaw: f32, pitch: f32) -> Vec<[f32; 3]> {
    let n = mesh.len() as f32;
    let c: [f32; 3] = [0, 1, 2].map(|k| mesh.iter().map(|p| p[k]).sum::<f32>() / n);
    let (sy, cy) = yaw.to_radians().sin_cos();
    let (sp, cp) = pitch.to_radians().sin_cos();
    mesh.iter()
        .map(|p| {
            let (x, y, z) = (p[0] - c[0], p[1] - c[1], p[2] - c[2]);
            // Yaw: the face turns to the image's right, so its near side (small z) moves right.
            let (x, z) = (x * cy - z * sy, x * sy + z * cy);
            // Pitch: the head tilts up, so its near side moves up (smaller y).
            let (y, z) = (y * cp + z * sp, -y * sp + z * cp);
            [x + c[0], y + c[1], z + c[2]]
        })
        .collect()
}

#[test]
fn face_state_reads_eyes_mouth_and_pose_from_the_mesh() {
    use faceverify::vision::face_state::face_state;
    let meshes = reference_meshes();
    for (name, mesh) in &meshes {
        let state = face_state(mesh);
        println!(
            "{name}: eyes {:.3}/{:.3} mouth {:.3} yaw {:.1} pitch {:.1} roll {:.1}",
            state.right_eye, state.left_eye, state.mouth, state.yaw, state.pitch, state.roll
        );
        assert!(state.eyes() > 0.15, "{name}: eyes look closed: {state:?}");
        assert!(
            state.yaw.abs() < 25.0 && state.roll.abs() < 25.0,
            "{name}: {state:?}"
        );
    }
    let state = |name: &str| face_state(&meshes.iter().find(|(n, _)| n == name).unwrap().1);
    // He talks in frame 240 of the first session, mouth open; closed in frame 0.
    let talking = state("camera/webcam-a-session1.mjpeg#240");
    let quiet = state("camera/webcam-a-session1.mjpeg#0");
    assert!(
        talking.mouth > 2.0 * quiet.mouth + 0.1,
        "{talking:?} vs {quiet:?}"
    );

    // A known rotation of a real mesh is read back.
    let (_, frontal) = &meshes[5];
    let base = face_state(frontal);
    for (yaw, pitch) in [(20.0, 0.0), (-20.0, 0.0), (0.0, 15.0), (0.0, -15.0)] {
        let turned = face_state(&rotated(frontal, yaw, pitch));
        let (dy, dp) = (turned.yaw - base.yaw, turned.pitch - base.pitch);
        assert!((dy - yaw).abs() < 3.0, "yaw {yaw}: read {dy}");
        assert!((dp - pitch).abs() < 3.0, "pitch {pitch}: read {dp}");
    }
}

/// The tracked faces of every frame of a clip (frame time in ms at `fps`), as the challenge
/// sees them. Tracked once per clip and frame rate for the whole file: several tests read the
/// same webcam clips, and tracking is most of their time.
fn observations(clip: &str, fps: f64) -> Vec<Observation> {
    type Tracks = HashMap<(String, u64), Arc<OnceLock<Vec<Observation>>>>;
    static TRACKED: OnceLock<Mutex<Tracks>> = OnceLock::new();
    let slot = TRACKED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap()
        .entry((clip.to_owned(), fps.to_bits()))
        .or_default()
        .clone();
    // Outside the map's lock: a test that wants another clip does not wait for this one.
    slot.get_or_init(|| track(clip, fps)).clone()
}

fn track(clip: &str, fps: f64) -> Vec<Observation> {
    let pipeline = pipeline();
    let device = Device::flex();
    let weights = model_file(WEIGHTS_PATH);
    let mesh = FaceMesh::from_bytes(&weights, &device).unwrap();
    let mut tracker = MeshTracker::default();
    clips::clip_frames(clip)
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let frame = Frame::from_image(image);
            let tracked =
                pollster::block_on(tracker.track(pipeline.detector(), &mesh, &frame)).unwrap();
            let t_ms = (i as f64 * 1000.0 / fps).round() as u64;
            let face = tracked.as_ref().map(ObservedFace::from);
            Observation {
                t_ms,
                faces: usize::from(face.is_some()),
                face,
            }
        })
        .collect()
}

/// The blinks a [`BlinkDetector`] finds in a clip's observations (start times, s).
fn blinks(seen: &[Observation]) -> Vec<f64> {
    let mut detector = BlinkDetector::default();
    seen.iter()
        .filter_map(|o| detector.observe(o.t_ms, o.face?.state.eyes()))
        .map(|t| t as f64 / 1000.0)
        .collect()
}

/// Runs `challenge` from frame `start` on, the clip looping as the fake camera loops it, until
/// it is decided; returns the decision.
fn answer(mut challenge: Challenge, seen: &[Observation], start: usize) -> ChallengeStatus {
    let period = seen.last().unwrap().t_ms + (seen[1].t_ms - seen[0].t_ms);
    for k in 0.. {
        let o = &seen[(start + k) % seen.len()];
        let t_ms = o.t_ms + period * ((start + k) / seen.len()) as u64;
        let status = challenge.observe(&Observation { t_ms, ..*o });
        if !matches!(status, ChallengeStatus::Asking { .. }) {
            return status;
        }
    }
    unreachable!("a challenge is decided within its time limits")
}

/// Tracks the face through every frame of both real webcam clips (15 frames a second): the
/// track holds, and the blinks found in session 1 are the two seen there frame by frame
/// (3.9 s and 17.1 s), not the glance down at 2.3 s. Prints what it finds
/// (`cargo test --test facemesh -- --nocapture webcam`).
#[test]
fn tracking_the_webcam_clips_finds_their_blinks() {
    for clip in ["webcam-a-session1.mjpeg", "webcam-a-session2.mjpeg"] {
        let seen = observations(clip, 15.0);
        let lost = seen.iter().filter(|o| o.face.is_none()).count();
        let found = blinks(&seen);
        println!(
            "{clip}: {} frames tracked, {lost} without a face; blinks at {found:.2?} s",
            seen.len(),
        );
        assert_eq!(lost, 0, "{clip}");
        if clip.contains("session1") {
            assert_eq!(found.len(), 2, "{found:?}");
            assert!(
                (found[0] - 3.93).abs() < 0.2 && (found[1] - 17.07).abs() < 0.2,
                "{found:?}"
            );
        }
    }
}

/// The genuine man answers a blink challenge in session 1 (his first blink comes 1.9 s after
/// the prompt); a still photo of a face answers nothing: every photo clip fails every one of
/// 5 random challenges (a photo swap is a jump; a held photo never blinks nor turns). Prints
/// APCER (`cargo test --test facemesh -- --nocapture attack`).
#[test]
fn photos_fail_the_challenge_and_the_live_man_passes() {
    let genuine = observations("webcam-a-session1.mjpeg", 15.0);
    let start = genuine.iter().position(|o| o.t_ms >= 2_000).unwrap();
    assert_eq!(
        answer(Challenge::new(vec![Action::Blink]), &genuine, start),
        ChallengeStatus::Live
    );
    // Real footage never breaks the face's continuity: a blink challenge from every second of
    // both sessions is passed or times out, never fails as a jump or a lost face.
    for clip in ["webcam-a-session1.mjpeg", "webcam-a-session2.mjpeg"] {
        let seen = if clip.contains("session1") {
            genuine.clone()
        } else {
            observations(clip, 15.0)
        };
        for start in (0..seen.len() - 80).step_by(15) {
            let status = answer(
                Challenge::new(vec![Action::Blink]),
                &seen[..start + 80],
                start,
            );
            assert!(
                matches!(
                    status,
                    ChallengeStatus::Live
                        | ChallengeStatus::Failed {
                            why: NotLive::TooSlow { .. }
                        }
                ),
                "{clip} from {:.1} s: {status:?}",
                seen[start].t_ms as f64 / 1000.0
            );
        }
    }

    let mut rng = SeededRng::new(42);
    let mut random = move || rng.next_f64();
    let (mut tried, mut accepted) = (0, 0);
    for clip in [
        "person-a.mjpeg",
        "person-a-later.mjpeg",
        "person-b.mjpeg",
        "obama.mjpeg",
        "biden.mjpeg",
        "astronaut.mjpeg",
    ] {
        let seen = observations(clip, 10.0);
        let mut reasons = Vec::new();
        for attempt in 0..5 {
            let challenge = Challenge::random(&mut random);
            let start = (attempt * 7) % seen.len();
            let status = answer(challenge, &seen, start);
            tried += 1;
            accepted += usize::from(status == ChallengeStatus::Live);
            reasons.push(status);
        }
        println!("{clip}: {reasons:?}");
    }
    println!(
        "photo attacks accepted {accepted} of {tried} (APCER {:.1}%)",
        100.0 * accepted as f64 / tried as f64
    );
    assert_eq!(accepted, 0);
}

/// Which points align a face better for the descriptor network: BlazeFace's keypoints (what
/// the app uses) or the same points read from the face mesh, on the dev LFW pairs (LFW's
/// 10-fold accuracy, ROC AUC and TAR at FAR 1e-3 of the L2 distance between descriptors).
/// Minutes: `cargo test --test facemesh -- --ignored --nocapture alignment_from`.
#[test]
#[ignore = "minutes: run by hand for the figure"]
fn alignment_from_the_mesh_against_blazeface_keypoints() {
    use faceverify::eval::{
        PairsFile, assign_folds, distance_metrics, k_fold_accuracy, l2_distance,
    };
    use faceverify::vision::align::{FaceTemplate, SimilarityTransform, align_face, warp};
    use faceverify::vision::face_state::alignment_points;
    let pipeline = pipeline();
    let device = Device::flex();
    let weights = model_file(WEIGHTS_PATH);
    let mesh = FaceMesh::from_bytes(&weights, &device).unwrap();
    let template = FaceTemplate::dlib_150();
    let pairs = PairsFile::read(&shared("lfw-pairs-dev.txt")).unwrap();
    let mut embedded = std::collections::HashMap::new();
    for (i, image) in pairs.distinct_images().into_iter().enumerate() {
        let path = shared("lfw").join(image.relative_path());
        let frame = Frame::from_image(&image::open(&path).unwrap());
        let faces = pollster::block_on(pipeline.detector().detect(&frame))
            .unwrap()
            .faces;
        let Some(largest) = largest_face(&faces) else {
            continue;
        };
        let face = &faces[largest];
        let by_keypoints = align_face(&frame, face, &template).unwrap();
        let crop = MeshCrop::for_face(&frame, face);
        let raw =
            pollster::block_on(mesh.run(input_from_rgb8(crop.crop.pixels(), &device))).unwrap();
        let landmarks: Vec<[f32; 3]> = raw
            .landmarks
            .chunks_exact(3)
            .map(|p| {
                let at = crop.to_frame(faceverify::vision::frame::Point::new(p[0], p[1]));
                [at.x, at.y, p[2]]
            })
            .collect();
        let to_template =
            SimilarityTransform::estimate(&alignment_points(&landmarks), &template.points).unwrap();
        let by_mesh = warp(&frame, &to_template, template.size);
        let descriptors =
            pollster::block_on(pipeline.embed_aligned(&[by_keypoints, by_mesh])).unwrap();
        embedded.insert(image, descriptors);
        if (i + 1) % 500 == 0 {
            println!("{} photos", i + 1);
        }
    }
    let kept: Vec<_> = pairs
        .pairs
        .iter()
        .filter(|p| embedded.contains_key(&p.first) && embedded.contains_key(&p.second))
        .cloned()
        .collect();
    let same: Vec<bool> = kept.iter().map(|p| p.is_same_person()).collect();
    let folds = assign_folds(&kept, 10);
    for (which, label) in [(0, "BlazeFace keypoints"), (1, "face mesh points")] {
        let distances: Vec<f32> = kept
            .iter()
            .map(|p| l2_distance(&embedded[&p.first][which], &embedded[&p.second][which]))
            .collect();
        let accuracy = k_fold_accuracy(&distances, &same, &folds, 10).unwrap();
        let metrics = distance_metrics(&distances, &same, 1e-3).unwrap();
        println!(
            "{label}: {} pairs, accuracy {:.2}% ± {:.2}%, AUC {:.4}, EER {:.3}, TAR {:.3} at FAR 1e-3",
            kept.len(),
            100.0 * accuracy.mean_accuracy,
            100.0 * accuracy.standard_error,
            metrics.auc,
            metrics.eer,
            metrics.tar
        );
    }
}

/// When the mouth opens in a clip's observations (s): the mouth gap passes
/// [`MOUTH_OPEN`] after having been below [`MOUTH_CLOSED`].
fn mouth_openings(seen: &[Observation]) -> Vec<f64> {
    let mut closed = false;
    let mut openings = Vec::new();
    for o in seen {
        let Some(face) = o.face else { continue };
        if face.state.mouth < MOUTH_CLOSED {
            closed = true;
        } else if closed && face.state.mouth >= MOUTH_OPEN {
            openings.push(o.t_ms as f64 / 1000.0);
            closed = false;
        }
    }
    openings
}

/// Genuine attempts: the man of the real webcam clips asked for an action that he performs in
/// the clip (each blink, each opening of the mouth while he talks), with the prompt shown from
/// 0.5 to 4.5 s before he does it, every half second. The attempts that fail are the genuine
/// rejections; prints BPCER (`cargo test --test facemesh -- --nocapture genuine`). Measured:
/// 2 of 34 (5.9%): a blink prompted half a second before it, when the blink detector's open
/// level (the median of the frames seen since the prompt) already holds his eyes closing; and
/// an opening of the mouth that closes again just after the 5 s an action is given. The goal
/// is 10%.
#[test]
fn genuine_attempts_pass_the_actions_the_man_performs() {
    let (mut tried, mut rejected) = (0, Vec::new());
    for clip in ["webcam-a-session1.mjpeg", "webcam-a-session2.mjpeg"] {
        let seen = observations(clip, 15.0);
        let blinks = blinks(&seen).into_iter().map(|t| (Action::Blink, t));
        let mouths = mouth_openings(&seen)
            .into_iter()
            .map(|t| (Action::OpenMouth, t));
        for (action, at) in blinks.chain(mouths) {
            println!("{clip}: {action:?} at {at:.2} s");
            for half_seconds in 1..=9 {
                let prompt = at - f64::from(half_seconds) * 0.5;
                if prompt < 0.0 {
                    continue;
                }
                let start = seen
                    .iter()
                    .position(|o| o.t_ms as f64 >= prompt * 1000.0)
                    .expect("the prompt comes before the action");
                tried += 1;
                let status = answer(Challenge::new(vec![action]), &seen, start);
                if status != ChallengeStatus::Live {
                    rejected.push(format!(
                        "{clip} {action:?} prompted at {prompt:.1} s: {status:?}"
                    ));
                }
            }
        }
    }
    println!(
        "genuine attempts rejected {} of {tried} (BPCER {:.1}%): {rejected:?}",
        rejected.len(),
        100.0 * rejected.len() as f64 / tried as f64
    );
    assert!(tried >= 20, "{tried} genuine attempts");
    assert!(rejected.len() * 10 <= tried, "{rejected:?}");
}

/// A replay: the real webcam clips played as they are, against random challenges started at
/// every second of them. A recording passes only when the actions drawn happen to occur in it,
/// in order, in time; prints that rate (`cargo test --test facemesh -- --nocapture replay`).
#[test]
fn a_replayed_video_rarely_answers_a_random_challenge() {
    let mut rng = SeededRng::new(7);
    let mut random = move || rng.next_f64();
    let (mut tried, mut passed) = (0, Vec::new());
    for clip in ["webcam-a-session1.mjpeg", "webcam-a-session2.mjpeg"] {
        let seen = observations(clip, 15.0);
        for start in (0..seen.len()).step_by(15) {
            let challenge = Challenge::random(&mut random);
            let actions = challenge.actions().to_vec();
            tried += 1;
            if answer(challenge, &seen, start) == ChallengeStatus::Live {
                passed.push(format!(
                    "{clip} from {:.0} s: {actions:?}",
                    seen[start].t_ms as f64 / 1000.0
                ));
            }
        }
    }
    println!(
        "replayed webcam clips passed {} of {tried} random challenges: {passed:?}",
        passed.len()
    );
    assert!(passed.len() * 20 <= tried, "{} of {tried}", passed.len());
}

/// The eye openness (mean eye-aspect ratio) of still photos and of the real webcam man's
/// blinks: the first photo of every tenth LFW person (news photos, eyes mostly open), the
/// George_W_Bush photos the tests and clips use, and the frames of session 1 (the two blinks at
/// 3.9 s and 17.1 s), and the least open eyes among all LFW photos. It chose the capture's
/// eyes-closed threshold (`vision::quality::MIN_EYE_OPENNESS`): the blinks' lowest frames
/// (0.149, 0.164 at 15 frames a second) sit among the open-eyed photos' lowest percent (1%:
/// 0.148, 5%: 0.179), so only eyes shut (LFW's lowest, 0.022) are refused. Prints (`cargo test
/// --test facemesh -- --ignored --nocapture eye_openness`; minutes).
#[test]
#[ignore = "minutes: run by hand for the figure"]
fn eye_openness_of_photos_and_of_blinks() {
    use faceverify::vision::mesh::mesh_face;
    let pipeline = pipeline();
    let weights = model_file(WEIGHTS_PATH);
    let mesh = FaceMesh::from_bytes(&weights, &Device::flex()).unwrap();
    // The eye openness of the largest face in a photo, where the mesh finds one.
    let eyes_of = |path: &Path| {
        let frame = Frame::from_image(&image::open(path).unwrap());
        let faces = pollster::block_on(pipeline.detector().detect(&frame))
            .unwrap()
            .faces;
        let face = &faces[largest_face(&faces)?];
        let meshed = pollster::block_on(mesh_face(&mesh, &frame, face)).unwrap()?;
        Some(meshed.state.eyes())
    };
    let people = sorted_entries(&shared("lfw"));
    let mut photos = Vec::new();
    for person in people.iter().step_by(10) {
        photos.extend(eyes_of(&sorted_entries(person)[0]));
    }
    photos.sort_by(f32::total_cmp);
    let at = |q: f64| photos[((photos.len() - 1) as f64 * q).round() as usize];
    println!(
        "LFW: {} photos; eye openness min {:.3}, 1% {:.3}, 5% {:.3}, median {:.3}",
        photos.len(),
        photos[0],
        at(0.01),
        at(0.05),
        at(0.5)
    );
    // Every photo: the least open eyes in LFW (a news photo taken mid-blink is rare, but
    // among some 7,000 there are a few).
    let mut every: Vec<(f32, String)> = Vec::new();
    for person in &people {
        for file in std::fs::read_dir(person).unwrap().flatten() {
            if let Some(eyes) = eyes_of(&file.path()) {
                every.push((eyes, file.file_name().to_string_lossy().into_owned()));
            }
        }
    }
    every.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "LFW, all {} photos, the least open: {:.3?}",
        every.len(),
        &every[..15]
    );
    // The photos the tests and the camera clips enrol and verify with.
    let mut bush = Vec::new();
    for number in 1..=120 {
        let path = shared(&format!("lfw/George_W_Bush/George_W_Bush_{number:04}.jpg"));
        bush.extend(eyes_of(&path).map(|eyes| (number, eyes)));
    }
    bush.sort_by(|a, b| a.1.total_cmp(&b.1));
    println!(
        "George_W_Bush 1–120, the five least open: {:.3?}",
        &bush[..5]
    );
    let seen = observations("webcam-a-session1.mjpeg", 15.0);
    let eyes: Vec<(u64, f32)> = seen
        .iter()
        .filter_map(|o| Some((o.t_ms, o.face?.state.eyes())))
        .collect();
    for (from, to) in [(3_600, 4_400), (16_800, 17_600)] {
        let closed = eyes
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|&(_, e)| e)
            .fold(f32::MAX, f32::min);
        println!("session 1, {from}–{to} ms: eyes closest {closed:.3}");
    }
    let mut open: Vec<f32> = eyes.iter().map(|&(_, e)| e).collect();
    open.sort_by(f32::total_cmp);
    println!("session 1: median eye openness {:.3}", open[open.len() / 2]);
}

/// The detector finds exactly one face in every frame of both real webcam clips: what lets the
/// liveness check count faces on every frame without refusing the live man for a second face.
#[test]
fn the_detector_sees_one_face_in_every_webcam_frame() {
    let pipeline = pipeline();
    for clip in ["webcam-a-session1.mjpeg", "webcam-a-session2.mjpeg"] {
        let frames = clips::clip_frames(clip);
        let odd: Vec<(usize, usize)> = frames
            .iter()
            .enumerate()
            .map(|(i, image)| {
                let frame = Frame::from_image(image);
                let found = pollster::block_on(pipeline.detector().detect(&frame)).unwrap();
                (i, found.faces.len())
            })
            .filter(|&(_, count)| count != 1)
            .collect();
        assert!(
            odd.is_empty(),
            "{clip}: frames without exactly one face {odd:?}"
        );
    }
}
