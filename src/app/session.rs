//! One session of the app: what a worker keeps between requests (the device, the face pipeline,
//! the open store, the impostor model, a profile's loaded verifier, the saved thresholds) and
//! the answer to each [`WorkerRequest`]. The platform supplies only what it alone has, through
//! [`Host`]; the browser's worker is a message pump around [`Session::answer`], and every
//! request is tested natively against a memory store.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use burn::prelude::Device;

use crate::backend::{self, BackendKind, BackendPreference, SelectedBackend};
use crate::model::koch::DeviceBufferLimits;
use crate::pipeline::FacePipeline;
use crate::protocol::{CameraFrame, NETWORK_FILES, NetworkFile, WorkerRequest, WorkerResponse};
use crate::selfcheck;
use crate::store::archive;
use crate::store::validate::ArchiveLimits;
use crate::store::{
    ImageRole, ImageSource, ImportMode, ModelSummary, Profile, ProfileId, Settings, Store,
    StoreError,
};
use crate::train::impostors::ImpostorModel;
use crate::train::run::{CancelFlag, RunControl, TrainingEvent};
use crate::verify::policy::{VerificationError, VerificationPolicy};
use crate::vision::align::CropMode;

use crate::model::facemesh::FaceMesh;
use crate::verify::liveness::{Action, Challenge};

use super::{
    Adaptation, AppError, LiveCheck, LivenessOutcome, ModelMetrics, NamedFile, NewPhoto,
    QualityGate, RunHooks, RunIds, TrainRequest, TrainingParts, Verifier, VerifyOutcome, YieldFn,
    capture, check_frame, clear_match, forget_adaptive, identify_frame, import_model,
    import_photos, keep_adaptive, profile_state, train, verify_keeping_face,
};

/// The longest profile name, in characters.
pub const MAX_PROFILE_NAME: usize = 60;

/// What only the platform has: its clock, ids, event loop, message channel, storage and
/// files. The browser's worker implements it on IndexedDB and `fetch`; tests on a memory store.
#[allow(async_fn_in_trait)]
pub trait Host {
    type Store: Store;

    /// Milliseconds since the epoch: records' times, and the training loop's clock. Natively
    /// the system's clock; wasm has none, so the browser's host reads its own.
    #[cfg(not(target_arch = "wasm32"))]
    fn now_ms() -> f64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
    #[cfg(target_arch = "wasm32")]
    fn now_ms() -> f64;
    /// Lets the platform's event loop run (queued messages, a cancel) during long work.
    /// Natively there is no event loop to yield to.
    fn yield_now() -> Pin<Box<dyn Future<Output = ()>>> {
        super::no_yield()
    }
    /// A fresh record id beginning with `prefix`, unique across profiles and devices.
    fn new_id(&self, prefix: &str) -> String;
    /// Sends a message that is not the answer to a request (progress) to the page.
    fn post(&self, message: &WorkerResponse);
    /// Opens the app's storage.
    async fn open_store(&self) -> Result<Self::Store, StoreError>;
    /// The bytes of a pretrained network's file; on failure, what went wrong.
    async fn model_file(&self, file: NetworkFile) -> Result<Vec<u8>, String>;
    /// Starts fetching a network's file ahead of `model_file`, where fetching takes time.
    fn prefetch(&self, _file: NetworkFile) {}
    /// Deletes everything the app keeps on this device; `store`, when open, is handed over
    /// to be closed first.
    async fn delete_all_data(&self, store: Option<Self::Store>) -> Result<(), StoreError>;
    /// A number in 0..1 nobody can predict (the liveness challenge's actions).
    fn random(&self) -> f64;
}

/// What a worker keeps between requests, and the answer to each.
pub struct Session<H: Host> {
    host: H,
    /// Shared with whoever receives the page's messages: a cancel must reach a running
    /// training while the session is busy with it.
    cancel: CancelFlag,
    parts: Parts<H::Store>,
    /// Each profile's verifier, loaded on first use; all are dropped when photos or models
    /// change.
    verifiers: BTreeMap<ProfileId, Verifier>,
    /// The saved settings, read once instead of on every verified frame.
    settings: Option<Settings>,
    /// The verification with liveness in progress.
    live_check: Option<LiveCheck>,
}

/// What a session loads on first use.
struct Parts<S> {
    backend: Option<SelectedBackend>,
    /// Built on the chosen device; dropped when the device changes.
    pipeline: Option<FacePipeline>,
    impostors: Option<ImpostorModel>,
    /// The face mesh, on the pipeline's device; loaded by the first liveness check.
    mesh: Option<FaceMesh>,
    store: Option<S>,
}

/// The loaded parts a use case works with, borrowed together.
struct Ready<'a, H: Host> {
    host: &'a H,
    device: &'a Device,
    store: &'a H::Store,
    pipeline: &'a FacePipeline,
    impostors: Option<&'a ImpostorModel>,
    mesh: Option<&'a FaceMesh>,
}

/// The backend in `slot`, chosen automatically the first time (the page's `Init` chooses by
/// the person's preference before anything else runs).
async fn chosen(slot: &mut Option<SelectedBackend>) -> &mut SelectedBackend {
    let selected = match slot.take() {
        Some(selected) => selected,
        None => backend::select(BackendPreference::Auto).await,
    };
    slot.insert(selected)
}

/// What loading a profile without photos to compare with means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unenrolled {
    /// It is left out (identification among everyone).
    Skip,
    /// It is an error that says what to do (verifying that profile).
    Refuse,
}

/// `slot`'s value, made by `make` the first time.
async fn filled<T, E>(
    slot: &mut Option<T>,
    make: impl Future<Output = Result<T, E>>,
) -> Result<&mut T, E> {
    let value = match slot.take() {
        Some(value) => value,
        None => make.await?,
    };
    Ok(slot.insert(value))
}

async fn model_file<H: Host>(host: &H, file: NetworkFile) -> Result<Vec<u8>, AppError> {
    host.model_file(file)
        .await
        .map_err(|detail| AppError::Download {
            file: file.name,
            detail,
        })
}

/// The face pipeline on `device`, from the detector's and the tower's files.
async fn load_pipeline<H: Host>(host: &H, device: &Device) -> Result<FacePipeline, AppError> {
    let [detector, tower, ..] = NETWORK_FILES;
    let detector = model_file(host, detector).await?;
    let tower = model_file(host, tower).await?;
    FacePipeline::from_bytes(&detector, &tower, device).map_err(AppError::DamagedNetworks)
}

async fn load_mesh<H: Host>(host: &H, device: &Device) -> Result<FaceMesh, AppError> {
    let bytes = model_file(host, NETWORK_FILES[3]).await?;
    FaceMesh::from_bytes(&bytes, device).map_err(|e| AppError::DamagedMesh(e.to_string()))
}

async fn load_impostors<H: Host>(host: &H) -> Result<ImpostorModel, AppError> {
    let bytes = model_file(host, NETWORK_FILES[2]).await?;
    let text = String::from_utf8(bytes).map_err(|e| AppError::DamagedImpostors(e.to_string()))?;
    ImpostorModel::from_json(&text).map_err(|e| AppError::DamagedImpostors(e.to_string()))
}

/// The thresholds a new model's calibration proposed become the saved ones (the sliders'
/// values).
async fn adopt_calibrated_thresholds(
    store: &impl Store,
    model: &ModelSummary,
) -> Result<(), StoreError> {
    let Some(ModelMetrics { policy, .. }) = ModelMetrics::of(&model.meta.metrics) else {
        return Ok(());
    };
    let mut settings = store.settings().await?;
    settings.detection_threshold = policy.detection.value();
    settings.verification_threshold = policy.verification.value();
    store.put_settings(&settings).await
}

impl<S: Store> Parts<S> {
    async fn backend(&mut self) -> &SelectedBackend {
        chosen(&mut self.backend).await
    }

    async fn store<H: Host<Store = S>>(&mut self, host: &H) -> Result<&S, AppError> {
        Ok(filled(&mut self.store, host.open_store()).await?)
    }

    /// The device, the face pipeline on it, and the store.
    async fn ready<'a, H: Host<Store = S>>(
        &'a mut self,
        host: &'a H,
    ) -> Result<Ready<'a, H>, AppError> {
        let device = &chosen(&mut self.backend).await.device;
        let pipeline = filled(&mut self.pipeline, load_pipeline(host, device)).await?;
        let store = filled(&mut self.store, host.open_store()).await?;
        Ok(Ready {
            host,
            device,
            store,
            pipeline,
            impostors: self.impostors.as_ref(),
            mesh: self.mesh.as_ref(),
        })
    }
}

impl<H: Host> Session<H> {
    pub fn new(host: H, cancel: CancelFlag) -> Self {
        // The detector and the descriptor network come first: they download while the
        // profile is read and the backend chosen.
        let [detector, tower, ..] = NETWORK_FILES;
        host.prefetch(detector);
        host.prefetch(tower);
        Self {
            host,
            cancel,
            parts: Parts {
                backend: None,
                pipeline: None,
                impostors: None,
                mesh: None,
                store: None,
            },
            verifiers: BTreeMap::new(),
            settings: None,
            live_check: None,
        }
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    /// The answer to `request`: its response, or `Failed` with a sentence for the person.
    pub async fn answer(&mut self, request: WorkerRequest) -> WorkerResponse {
        let name = request.name();
        self.handle(request)
            .await
            .unwrap_or_else(|error| WorkerResponse::Failed {
                request: name.into(),
                message: error.user_message(),
            })
    }

    /// The response to `request`, or why it failed.
    pub async fn handle(&mut self, request: WorkerRequest) -> Result<WorkerResponse, AppError> {
        match request {
            WorkerRequest::Init { preference } => Ok(self.init(preference).await),
            WorkerRequest::CheckTraining { steps } => self.check_training(steps).await,
            WorkerRequest::AnalysePhoto { bytes, crop } => self.analyse_photo(&bytes, crop).await,
            WorkerRequest::CheckFrame { frame } => {
                let frame = frame.to_frame()?;
                let check =
                    check_frame(self.parts.ready(&self.host).await?.pipeline, &frame).await?;
                Ok(WorkerResponse::FrameChecked { check })
            }
            WorkerRequest::LoadState { profile } => self.state(profile.as_deref()).await,
            WorkerRequest::MeasureUsage => Ok(WorkerResponse::Usage {
                usage: self.store().await?.usage().await?,
            }),
            WorkerRequest::SaveProfile { profile } => self.save_profile(profile).await,
            WorkerRequest::DeleteProfile { id } => {
                self.store().await?.delete_profile(&id).await?;
                self.changed();
                self.state(None).await
            }
            WorkerRequest::Capture {
                profile,
                role,
                frame,
                quality,
            } => self.capture(profile, role, &frame, quality).await,
            WorkerRequest::ImportPhotos {
                profile,
                role,
                files,
            } => self.import_photos(&profile, role, files).await,
            WorkerRequest::ImportModel { profile, bytes } => {
                let id = self.host.new_id("model");
                let now = H::now_ms() as u64;
                let store = self.store().await?;
                let model = import_model(store, &profile, bytes, id, now).await?;
                adopt_calibrated_thresholds(store, &model).await?;
                self.changed();
                self.state(Some(&profile)).await
            }
            WorkerRequest::ForgetAdaptive { profile } => {
                forget_adaptive(self.store().await?, &profile).await?;
                self.changed();
                self.state(Some(&profile)).await
            }
            WorkerRequest::DeletePhoto { profile, id } => {
                self.store().await?.delete_image(&id).await?;
                self.changed();
                self.state(Some(&profile)).await
            }
            WorkerRequest::SetPhotoRole { profile, id, role } => {
                self.set_photo_role(&profile, &id, role).await
            }
            WorkerRequest::Train { request } => self.train(&request).await,
            // The page's messages are read apart so that a cancel reaches a running training;
            // one that arrives as a request found none.
            WorkerRequest::CancelTraining => Err(AppError::NoTraining),
            WorkerRequest::Verify { profile, frame } => self.verify(profile, &frame).await,
            WorkerRequest::Identify { frame } => self.identify(&frame).await,
            WorkerRequest::StartLiveness { profile, actions } => {
                self.start_liveness(profile, actions).await
            }
            WorkerRequest::LivenessFrame { frame, t_ms } => self.liveness_frame(&frame, t_ms).await,
            WorkerRequest::SaveSettings { profile, settings } => {
                self.save_settings(profile.as_deref(), &settings).await
            }
            WorkerRequest::Export => Ok(WorkerResponse::Exported {
                bytes: archive::export_archive(self.store().await?).await?,
            }),
            WorkerRequest::ImportArchive { bytes, mode } => self.import_archive(&bytes, mode).await,
            WorkerRequest::DeleteAll => {
                let store = self.parts.store.take();
                self.changed();
                self.host.delete_all_data(store).await?;
                Ok(WorkerResponse::AllDeleted)
            }
        }
    }

    // Loaded on first use -----------------------------------------------------------------

    /// The session's store, opened on first use (native callers read it directly).
    pub async fn store(&mut self) -> Result<&H::Store, AppError> {
        self.parts.store(&self.host).await
    }

    async fn backend(&mut self) -> &SelectedBackend {
        self.parts.backend().await
    }

    /// The GPU's buffer limits while the session computes on one.
    async fn device_limits(&mut self) -> Option<DeviceBufferLimits> {
        match self.backend().await.report.kind {
            BackendKind::Wgpu => crate::backend::wgpu_buffer_limits().await,
            BackendKind::Cpu => None,
        }
    }

    /// The saved settings.
    async fn settings(&mut self) -> Result<Settings, AppError> {
        if let Some(settings) = self.settings {
            return Ok(settings);
        }
        let settings = self.store().await?.settings().await?;
        self.settings = Some(settings);
        Ok(settings)
    }

    /// The saved thresholds.
    async fn policy(&mut self) -> Result<VerificationPolicy, AppError> {
        let settings = self.settings().await?;
        VerificationPolicy::from_values(
            settings.detection_threshold,
            settings.verification_threshold,
        )
        .map_err(AppError::SavedThresholds)
    }

    /// Photos or models changed: what was derived from them is rebuilt on next use.
    fn changed(&mut self) {
        self.settings = None;
        self.verifiers.clear();
    }

    // Requests ----------------------------------------------------------------------------

    async fn init(&mut self, preference: BackendPreference) -> WorkerResponse {
        let selected = backend::select(preference).await;
        let report = selected.report.clone();
        self.parts.backend = Some(selected);
        self.parts.pipeline = None;
        self.verifiers.clear();
        WorkerResponse::Ready {
            description: report.describe(),
            backend: report,
        }
    }

    async fn check_training(&mut self, steps: usize) -> Result<WorkerResponse, AppError> {
        let selected = self.backend().await;
        let check = selfcheck::training_check(&selected.device, steps)
            .await
            .map_err(|e| AppError::SelfCheck {
                backend: selected.report.kind.label(),
                detail: e.to_string(),
            })?;
        Ok(WorkerResponse::TrainingChecked {
            backend: selected.report.clone(),
            check,
        })
    }

    async fn analyse_photo(
        &mut self,
        bytes: &[u8],
        crop: CropMode,
    ) -> Result<WorkerResponse, AppError> {
        let backend = self.backend().await.report.clone();
        let analysis = self
            .parts
            .ready(&self.host)
            .await?
            .pipeline
            .analyse_encoded(bytes, crop)
            .await
            .map_err(AppError::Analysis)?;
        Ok(WorkerResponse::PhotoAnalysed { backend, analysis })
    }

    /// What the page shows of `profile` (or of the first profile).
    async fn state(&mut self, profile: Option<&str>) -> Result<WorkerResponse, AppError> {
        let state = profile_state(self.store().await?, profile).await?;
        Ok(WorkerResponse::State {
            state: Box::new(state),
        })
    }

    async fn save_profile(&mut self, profile: Profile) -> Result<WorkerResponse, AppError> {
        let length = profile.name.trim().chars().count();
        if length == 0 || length > MAX_PROFILE_NAME {
            return Err(AppError::ProfileName);
        }
        self.store().await?.put_profile(&profile).await?;
        self.state(Some(&profile.id)).await
    }

    async fn capture(
        &mut self,
        profile: ProfileId,
        role: ImageRole,
        frame: &CameraFrame,
        quality: QualityGate,
    ) -> Result<WorkerResponse, AppError> {
        let frame = frame.to_frame()?;
        let photo = NewPhoto {
            id: self.host.new_id("img"),
            profile,
            role,
            source: ImageSource::Camera,
            created: H::now_ms() as u64,
        };
        self.load_mesh_for_advice().await;
        let ready = self.parts.ready(&self.host).await?;
        let outcome = capture(
            ready.store,
            ready.pipeline,
            ready.mesh,
            &frame,
            photo,
            quality,
        )
        .await?;
        self.changed();
        Ok(WorkerResponse::Captured { role, outcome })
    }

    async fn import_photos(
        &mut self,
        profile: &str,
        role: ImageRole,
        files: Vec<NamedFile>,
    ) -> Result<WorkerResponse, AppError> {
        let Ready {
            host,
            store,
            pipeline,
            ..
        } = self.parts.ready(&self.host).await?;
        let mut progress =
            |done: usize, total: usize| host.post(&WorkerResponse::ImportProgress { done, total });
        let report = import_photos(
            store,
            pipeline,
            files,
            profile,
            role,
            H::now_ms() as u64,
            &mut || host.new_id("img"),
            &mut progress,
            H::yield_now as YieldFn,
        )
        .await?;
        self.changed();
        Ok(WorkerResponse::PhotosImported { report })
    }

    async fn set_photo_role(
        &mut self,
        profile: &str,
        id: &str,
        role: ImageRole,
    ) -> Result<WorkerResponse, AppError> {
        let store = self.store().await?;
        let mut image = store.get_image(id).await?.ok_or(AppError::PhotoGone)?;
        image.meta.role = role;
        store.put_image(&image).await?;
        self.changed();
        self.state(Some(profile)).await
    }

    async fn train(&mut self, request: &TrainRequest) -> Result<WorkerResponse, AppError> {
        let limits = self.device_limits().await;
        filled(&mut self.parts.impostors, load_impostors(&self.host)).await?;
        // A cancel sent while no run was active belongs to nothing.
        self.cancel.reset();
        let control = RunControl {
            clock: H::now_ms,
            cancel: self.cancel.clone(),
        };
        let ready = self.parts.ready(&self.host).await?;
        let ids = RunIds {
            run_id: ready.host.new_id("run"),
            model_id: ready.host.new_id("model"),
            now: H::now_ms() as u64,
        };
        let mut on_event = |event: &TrainingEvent| {
            ready.host.post(&WorkerResponse::Training {
                event: event.clone(),
            })
        };
        let parts = TrainingParts {
            store: ready.store,
            pipeline: ready.pipeline,
            impostors: ready.impostors,
            device: ready.device,
            device_limits: limits.as_ref(),
        };
        let hooks = RunHooks {
            ids,
            control: &control,
            on_event: &mut on_event,
            yield_now: H::yield_now,
        };
        let outcome = train(&parts, request, hooks).await;
        // The flag is shared with the page's handler: lower it for the next run.
        control.cancel.reset();
        let outcome = outcome?;
        if let Some(model) = &outcome.model {
            adopt_calibrated_thresholds(ready.store, model).await?;
        }
        self.changed();
        Ok(WorkerResponse::Trained {
            outcome: Box::new(outcome),
        })
    }

    async fn verify(
        &mut self,
        profile: ProfileId,
        frame: &CameraFrame,
    ) -> Result<WorkerResponse, AppError> {
        let frame = frame.to_frame()?;
        let settings = self.settings().await?;
        let policy = self.policy().await?;
        self.load_verifiers(std::slice::from_ref(&profile), Unenrolled::Refuse)
            .await?;
        let verifier = &self.verifiers[&profile];
        let ready = self.parts.ready(&self.host).await?;
        let (mut outcome, aligned) =
            verify_keeping_face(ready.pipeline, verifier, &frame, &verifier.policy(policy)).await?;
        if let (
            VerifyOutcome::Decision {
                check,
                result,
                adaptation,
                ..
            },
            Some(aligned),
        ) = (&mut outcome, aligned)
            && settings.adaptive_references
        {
            *adaptation = match clear_match(result, check, verifier.enrolled_references) {
                Err(reason) => Adaptation::Skipped { reason },
                Ok(()) => {
                    let id = ready.host.new_id("photo");
                    let now = H::now_ms() as u64;
                    let kept = keep_adaptive(ready.store, &profile, &frame, &aligned, id, now);
                    let image = kept.await?;
                    // The next frame is compared with the new reference too.
                    self.verifiers.remove(&profile);
                    Adaptation::Learned { image }
                }
            };
        }
        Ok(WorkerResponse::Verified {
            outcome: Box::new(outcome),
        })
    }

    /// Loads the face mesh for a capture's eye check. That check is advice, so a capture goes on
    /// without it when the mesh cannot be loaded (a liveness check reports why).
    async fn load_mesh_for_advice(&mut self) {
        let device = chosen(&mut self.parts.backend).await.device.clone();
        if self.parts.mesh.is_none() {
            self.parts.mesh = load_mesh(&self.host, &device).await.ok();
        }
    }

    /// Starts a verification with liveness: the profile's verifier and the face mesh are
    /// loaded now, so the frames that follow only compute.
    async fn start_liveness(
        &mut self,
        profile: ProfileId,
        actions: Option<Vec<Action>>,
    ) -> Result<WorkerResponse, AppError> {
        self.load_verifiers(std::slice::from_ref(&profile), Unenrolled::Refuse)
            .await?;
        let device = chosen(&mut self.parts.backend).await.device.clone();
        filled(&mut self.parts.mesh, load_mesh(&self.host, &device)).await?;
        let challenge = match actions {
            Some(actions) if !actions.is_empty() => Challenge::new(actions),
            _ => Challenge::random(|| self.host.random()),
        };
        let check = self.live_check.insert(LiveCheck::new(profile, challenge));
        Ok(WorkerResponse::Liveness {
            outcome: Box::new(check.first_prompt()),
        })
    }

    /// One frame of the running liveness check; the check ends with its decision.
    async fn liveness_frame(
        &mut self,
        frame: &CameraFrame,
        t_ms: u64,
    ) -> Result<WorkerResponse, AppError> {
        let frame = frame.to_frame()?;
        let policy = self.policy().await?;
        let mut check = self.live_check.take().ok_or(AppError::NoLiveCheck)?;
        // Photos may have changed since the check started: the verifier is loaded again.
        let profile = check.profile.clone();
        self.load_verifiers(std::slice::from_ref(&profile), Unenrolled::Refuse)
            .await?;
        let verifier = &self.verifiers[&profile];
        let ready = self.parts.ready(&self.host).await?;
        let mesh = ready.mesh.ok_or(AppError::NoLiveCheck)?;
        let outcome = check
            .frame(
                ready.pipeline,
                mesh,
                verifier,
                &verifier.policy(policy),
                &frame,
                t_ms,
            )
            .await?;
        if matches!(outcome, LivenessOutcome::Asking { .. }) {
            self.live_check = Some(check);
        }
        Ok(WorkerResponse::Liveness {
            outcome: Box::new(outcome),
        })
    }

    /// "Who is this?": the frame against every profile that has photos to compare with.
    async fn identify(&mut self, frame: &CameraFrame) -> Result<WorkerResponse, AppError> {
        let frame = frame.to_frame()?;
        let policy = self.policy().await?;
        let profiles = self.store().await?.list_profiles().await?;
        let ids: Vec<ProfileId> = profiles.iter().map(|p| p.id.clone()).collect();
        // Loaded verifiers are kept, so a frame reads no photos; a profile without photos to
        // compare with is not enrolled and has none.
        self.load_verifiers(&ids, Unenrolled::Skip).await?;
        let people: Vec<(Profile, &Verifier)> = profiles
            .into_iter()
            .filter_map(|p| {
                let verifier = self.verifiers.get(&p.id)?;
                Some((p, verifier))
            })
            .collect();
        let pipeline = self.parts.ready(&self.host).await?.pipeline;
        let outcome = identify_frame(pipeline, &people, &frame, policy).await?;
        Ok(WorkerResponse::Identified {
            outcome: Box::new(outcome),
        })
    }

    /// Loads the verifiers of `profiles` that are not loaded yet.
    async fn load_verifiers(
        &mut self,
        profiles: &[ProfileId],
        unenrolled: Unenrolled,
    ) -> Result<(), AppError> {
        let missing: Vec<&ProfileId> = profiles
            .iter()
            .filter(|p| !self.verifiers.contains_key(*p))
            .collect();
        if missing.is_empty() {
            // Every verification comes here: asking the GPU for its limits is for loading.
            return Ok(());
        }
        let limits = self.device_limits().await;
        let ready = self.parts.ready(&self.host).await?;
        for profile in missing {
            let loaded = Verifier::load(
                ready.store,
                ready.pipeline,
                profile,
                ready.device,
                limits.as_ref(),
                H::yield_now,
            )
            .await;
            match loaded {
                Ok(verifier) => {
                    self.verifiers.insert(profile.clone(), verifier);
                }
                Err(AppError::Verification(VerificationError::NoReferences))
                    if unenrolled == Unenrolled::Skip => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    async fn save_settings(
        &mut self,
        profile: Option<&str>,
        settings: &Settings,
    ) -> Result<WorkerResponse, AppError> {
        // Refused before anything is written: the thresholds must make a policy.
        VerificationPolicy::from_values(
            settings.detection_threshold,
            settings.verification_threshold,
        )
        .map_err(AppError::Thresholds)?;
        self.store().await?.put_settings(settings).await?;
        self.settings = Some(*settings);
        self.state(profile).await
    }

    async fn import_archive(
        &mut self,
        bytes: &[u8],
        mode: ImportMode,
    ) -> Result<WorkerResponse, AppError> {
        let store = self.store().await?;
        let report = archive::import_archive(store, bytes, mode, &ArchiveLimits::default()).await?;
        self.changed();
        Ok(WorkerResponse::ArchiveImported {
            images: report.counts.images,
            models: report.counts.models,
            profiles: report.counts.profiles,
        })
    }
}
