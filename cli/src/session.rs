//! `faceverify train` and `faceverify verify`: the page's use cases from the command line. A
//! [`Session`] over an on-disk store answers the same requests the browser's worker answers,
//! so photos are detected and aligned, and models trained and calibrated, exactly as in the
//! page.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use faceverify::app::{
    self, AppError, Host, IdentifyOutcome, ImportReport, NamedFile, Session, TrainOutcome,
    TrainRequest, VerifyOutcome,
};
use faceverify::backend::{BackendKind, BackendPreference};
use faceverify::protocol::{CameraFrame, NetworkFile, WorkerRequest, WorkerResponse};
use faceverify::store::{DirStore, ImageRole, Settings, Store, StoreError};
use faceverify::train::run::{CancelFlag, StopReason, TrainingEvent};
use faceverify::verify::policy::VerificationResult;

use crate::{BackendChoice, CliError, io, list_images};

/// The profile the command line works on.
pub const CLI_PROFILE: &str = app::DEFAULT_PROFILE_ID;

/// The command line's side of a [`Session`]: a folder as the store, the committed model files,
/// progress on the standard output.
pub struct CliHost {
    store: PathBuf,
    models: PathBuf,
    quiet: bool,
    next_id: Cell<u64>,
}

impl Host for CliHost {
    type Store = DirStore;

    fn new_id(&self, prefix: &str) -> String {
        self.next_id.set(self.next_id.get() + 1);
        format!(
            "{prefix}-{:x}-{}-{}",
            Self::now_ms() as u64,
            std::process::id(),
            self.next_id.get()
        )
    }

    fn post(&self, message: &WorkerResponse) {
        if !self.quiet {
            print_progress(message);
        }
    }

    async fn open_store(&self) -> Result<DirStore, StoreError> {
        DirStore::open(&self.store)
    }

    async fn model_file(&self, file: NetworkFile) -> Result<Vec<u8>, String> {
        let path = self.models.join(file.file_name());
        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
    }

    async fn delete_all_data(&self, store: Option<DirStore>) -> Result<(), StoreError> {
        drop(store);
        match std::fs::remove_dir_all(&self.store) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::WriteFailed {
                detail: format!("{}: {e}", self.store.display()),
            }),
            _ => Ok(()),
        }
    }

    fn random(&self) -> f64 {
        use std::hash::{BuildHasher, Hasher};
        // Seeded by the operating system for each map: unpredictable enough for a challenge.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.next_id.get());
        (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn print_progress(message: &WorkerResponse) {
    match message {
        WorkerResponse::ImportProgress { done, total } if done == total => {
            println!("analysed {total} photos");
        }
        WorkerResponse::Training {
            event: TrainingEvent::Epoch(stats),
        } => println!(
            "epoch {:>3}  test loss {:.4}  precision {:.3}  recall {:.3}",
            stats.epoch + 1,
            stats.test_loss.unwrap_or(f64::NAN),
            stats.precision.unwrap_or(f64::NAN),
            stats.recall.unwrap_or(f64::NAN),
        ),
        WorkerResponse::Training {
            event:
                TrainingEvent::Stopped {
                    reason: StopReason::EarlyStopped { best_epoch },
                },
        } => println!(
            "stopped early: the test loss has not improved since epoch {}",
            best_epoch + 1
        ),
        _ => {}
    }
}

/// Where a session keeps its data: a folder the person names (kept), or a fresh one that is
/// removed when the command ends.
pub enum StoreDir {
    Kept(PathBuf),
    Temporary(PathBuf),
}

impl StoreDir {
    pub fn new(kept: Option<PathBuf>) -> Self {
        kept.map_or_else(
            || {
                let name = format!(
                    "faceverify-cli-{}-{}",
                    std::process::id(),
                    CliHost::now_ms()
                );
                StoreDir::Temporary(std::env::temp_dir().join(name))
            },
            StoreDir::Kept,
        )
    }

    fn path(&self) -> &Path {
        match self {
            StoreDir::Kept(path) | StoreDir::Temporary(path) => path,
        }
    }
}

impl Drop for StoreDir {
    fn drop(&mut self) {
        if let StoreDir::Temporary(path) = self {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// A session on `store`, its backend chosen.
pub fn open(
    store: &StoreDir,
    backend: BackendChoice,
    quiet: bool,
) -> Result<Session<CliHost>, CliError> {
    let host = CliHost {
        store: store.path().to_path_buf(),
        models: crate::default_weights_path()
            .parent()
            .expect("the weights lie in models/")
            .to_path_buf(),
        quiet,
        next_id: Cell::new(0),
    };
    let mut session = Session::new(host, CancelFlag::new());
    let preference = match backend {
        BackendChoice::Cpu => BackendPreference::Cpu,
        BackendChoice::Wgpu => BackendPreference::Webgpu,
    };
    let ready = ask(&mut session, WorkerRequest::Init { preference })?;
    // Asked for the GPU, the command line fails rather than quietly running on the CPU.
    if let WorkerResponse::Ready {
        backend: report,
        description,
    } = &ready
        && backend == BackendChoice::Wgpu
        && report.kind != BackendKind::Wgpu
    {
        return Err(CliError::Backend(description.clone()));
    }
    // As the page's first read does, this creates the profile the command line works on.
    ask(&mut session, WorkerRequest::LoadState { profile: None })?;
    Ok(session)
}

/// The session's answer to `request`, or its failure as a [`CliError`].
pub fn ask(
    session: &mut Session<CliHost>,
    request: WorkerRequest,
) -> Result<WorkerResponse, CliError> {
    pollster::block_on(session.handle(request)).map_err(CliError::from)
}

impl From<AppError> for CliError {
    fn from(error: AppError) -> Self {
        CliError::Session(error.user_message())
    }
}

/// Imports the photos of `dir` as `role` photos of the command line's profile (detected and
/// aligned as in the page).
pub fn import_folder(
    session: &mut Session<CliHost>,
    dir: &Path,
    role: ImageRole,
) -> Result<ImportReport, CliError> {
    import_folder_as(session, dir, CLI_PROFILE, role)
}

/// Imports the photos of `dir` as `role` photos of `profile`.
pub fn import_folder_as(
    session: &mut Session<CliHost>,
    dir: &Path,
    profile: &str,
    role: ImageRole,
) -> Result<ImportReport, CliError> {
    let files = list_images(dir)?
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
            Ok(NamedFile {
                name: path.display().to_string(),
                bytes,
            })
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    let request = WorkerRequest::ImportPhotos {
        profile: profile.into(),
        role,
        files,
    };
    match ask(session, request)? {
        WorkerResponse::PhotosImported { report } => Ok(report),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(response: &WorkerResponse) -> CliError {
    CliError::Session(format!("unexpected answer {response:?}"))
}

/// Options of `faceverify train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Folder with `anchor/`, `positive/`, `negative/`.
    pub data: PathBuf,
    /// The run, as the page asks for it (for the profile [`CLI_PROFILE`]).
    pub request: TrainRequest,
    pub backend: BackendChoice,
    /// The model file to write.
    pub out: PathBuf,
    /// A folder to keep the photos, runs and models in.
    pub store: Option<PathBuf>,
    /// The false-accept rate per verification attempt to calibrate for (`None`: the saved
    /// setting, 1e-4 by default).
    pub target_far: Option<f64>,
}

/// What `train` did: the photos imported per role, and the run.
pub struct Trained {
    pub imported: Vec<(ImageRole, ImportReport)>,
    pub outcome: TrainOutcome,
}

/// `faceverify train`: imports the folder's photos, trains as the page does, writes the model.
pub fn train(options: &TrainOptions, quiet: bool) -> Result<Trained, CliError> {
    let store = StoreDir::new(options.store.clone());
    let mut session = open(&store, options.backend, quiet)?;
    let mut imported = Vec::new();
    for role in [ImageRole::Anchor, ImageRole::Positive, ImageRole::Negative] {
        let dir = options.data.join(role_folder(role));
        if dir.is_dir() {
            imported.push((role, import_folder(&mut session, &dir, role)?));
        }
    }
    if let Some(target) = options.target_far {
        change_settings(&mut session, |s| s.attempt_false_accept_rate = target)?;
    }
    let request = options.request.clone();
    let outcome = match ask(&mut session, WorkerRequest::Train { request })? {
        WorkerResponse::Trained { outcome } => *outcome,
        other => return Err(unexpected(&other)),
    };
    let model = pollster::block_on(async {
        let store = session.store().await?;
        Ok::<_, AppError>(store.active_model(CLI_PROFILE).await?)
    })?
    .ok_or_else(|| CliError::Session("the run stored no model".into()))?;
    std::fs::write(&options.out, &model.bytes).map_err(|e| io(&options.out, e))?;
    Ok(Trained { imported, outcome })
}

/// The tutorial's folder name of a role.
pub fn role_folder(role: ImageRole) -> &'static str {
    match role {
        ImageRole::Anchor => "anchor",
        ImageRole::Positive => "positive",
        ImageRole::Negative => "negative",
        ImageRole::Verification => "verification",
        ImageRole::Adaptive => "adaptive",
    }
}

/// Options of `faceverify verify`.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// A model file from `train` (else the kept store's model).
    pub model: Option<PathBuf>,
    /// Reference photos of the enrolled person (else the kept store's photos).
    pub refs: Option<PathBuf>,
    pub store: Option<PathBuf>,
    /// Photos to decide on.
    pub images: Vec<PathBuf>,
    /// Thresholds overriding the model's calibrated ones.
    pub detection: Option<f32>,
    pub verification: Option<f32>,
    pub backend: BackendChoice,
    /// Switches adaptive references on or off in the store (`None`: as saved).
    pub adapt: Option<bool>,
}

/// One probe's answer: the tutorial's decision, or no face.
pub struct ProbeDecision {
    pub image: PathBuf,
    pub result: Option<VerificationResult>,
    /// Whether the face became an adaptive reference.
    pub learned: bool,
}

/// `faceverify verify`: each probe through the page's verification.
pub fn verify(options: &VerifyOptions) -> Result<Vec<ProbeDecision>, CliError> {
    let store = StoreDir::new(options.store.clone());
    let mut session = open(&store, options.backend, true)?;
    if let Some(refs) = &options.refs {
        import_folder(&mut session, refs, ImageRole::Verification)?;
    }
    if let Some(model) = &options.model {
        let bytes = std::fs::read(model).map_err(|e| io(model, e))?;
        let profile = CLI_PROFILE.into();
        ask(&mut session, WorkerRequest::ImportModel { profile, bytes })?;
    }
    if options.detection.is_some() || options.verification.is_some() || options.adapt.is_some() {
        change_settings(&mut session, |settings| {
            if let Some(adapt) = options.adapt {
                settings.adaptive_references = adapt;
            }
            if let Some(detection) = options.detection {
                settings.detection_threshold = detection;
            }
            if let Some(verification) = options.verification {
                settings.verification_threshold = verification;
            }
        })?;
    }
    options
        .images
        .iter()
        .map(|image| {
            let request = WorkerRequest::Verify {
                profile: CLI_PROFILE.into(),
                frame: camera_frame(image)?,
            };
            let (result, learned) = match ask(&mut session, request)? {
                WorkerResponse::Verified { outcome } => match *outcome {
                    VerifyOutcome::Decision {
                        result, adaptation, ..
                    } => (
                        Some(result),
                        matches!(adaptation, app::Adaptation::Learned { .. }),
                    ),
                    VerifyOutcome::NoFace { .. } => (None, false),
                },
                other => return Err(unexpected(&other)),
            };
            Ok(ProbeDecision {
                image: image.clone(),
                result,
                learned,
            })
        })
        .collect()
}

/// Saves the settings after `change`.
fn change_settings(
    session: &mut Session<CliHost>,
    change: impl FnOnce(&mut Settings),
) -> Result<(), CliError> {
    let WorkerResponse::State { state } = ask(session, WorkerRequest::LoadState { profile: None })?
    else {
        return Err(CliError::Session("no state".into()));
    };
    let mut settings = state.settings;
    change(&mut settings);
    ask(
        session,
        WorkerRequest::SaveSettings {
            profile: None,
            settings,
        },
    )?;
    Ok(())
}

/// A photo as the page's camera would send it: RGBA.
pub fn camera_frame(path: &Path) -> Result<CameraFrame, CliError> {
    let rgba = image::open(path).map_err(|e| io(path, e))?.to_rgba8();
    Ok(CameraFrame {
        width: rgba.width(),
        height: rgba.height(),
        rgba: rgba.into_raw(),
    })
}

/// `faceverify identify`: who each image shows among the people of `people` (`people/<name>/`
/// holds photos of one person; their folder name is their id).
pub fn identify(
    people: &Path,
    images: &[PathBuf],
    backend: BackendChoice,
) -> Result<Vec<(PathBuf, IdentifyOutcome)>, CliError> {
    let store = StoreDir::new(None);
    let mut session = open(&store, backend, true)?;
    let mut folders: Vec<PathBuf> = std::fs::read_dir(people)
        .map_err(|e| io(people, e))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(CliError::Usage(format!(
            "{} holds no folders of people (<name>/*.jpg)",
            people.display()
        )));
    }
    for folder in &folders {
        let name = folder
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let profile = faceverify::store::Profile {
            id: name.clone(),
            name,
        };
        ask(
            &mut session,
            WorkerRequest::SaveProfile {
                profile: profile.clone(),
            },
        )?;
        import_folder_as(&mut session, folder, &profile.id, ImageRole::Verification)?;
    }
    images
        .iter()
        .map(|image| {
            let request = WorkerRequest::Identify {
                frame: camera_frame(image)?,
            };
            match ask(&mut session, request)? {
                WorkerResponse::Identified { outcome } => Ok((image.clone(), *outcome)),
                other => Err(unexpected(&other)),
            }
        })
        .collect()
}
