//! The worker: owns the Burn device and does all model work, one request at a time, so the
//! page's main thread only draws.

use std::rc::Rc;

use super::executor::spawn_local;
use futures::channel::mpsc;
use futures::future::{LocalBoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use wasm_bindgen::prelude::*;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use wasm_bindgen_futures::JsFuture;

use super::idb_store::{self, IdbStore};
use crate::app::{self, AppError, NewPhoto, RunIds, Verifier};
use crate::backend::{self, BackendKind, BackendPreference, SelectedBackend};
use crate::model::koch::DeviceBufferLimits;
use crate::pipeline::FacePipeline;
use crate::protocol::{CameraFrame, MODEL_FILES, ModelFile, WorkerRequest, WorkerResponse};
use crate::selfcheck;
use crate::store::archive;
use crate::store::validate::ArchiveLimits;
use crate::store::{ImageSource, Store};
use crate::train::impostors::ImpostorModel;
use crate::train::run::{CancelFlag, RunControl};
use crate::verify::policy::VerificationPolicy;

/// The detector's and the tower's file bytes, downloaded once per worker.
type NetworkFiles = Result<Rc<(Vec<u8>, Vec<u8>)>, String>;

/// What the worker keeps between requests.
#[derive(Default)]
struct WorkerState {
    /// The network files' download, started when the worker starts so that it overlaps with
    /// reading the profile and choosing the backend (it was 100–250 ms of the first frame's
    /// wait); kept for rebuilding the pipeline on another device.
    network_files: Option<Shared<LocalBoxFuture<'static, NetworkFiles>>>,
    backend: Option<SelectedBackend>,
    /// Built on first use, on the chosen device; dropped when the device changes.
    pipeline: Option<FacePipeline>,
    impostors: Option<ImpostorModel>,
    /// Opened on first use; closed to delete everything.
    store: Option<IdbStore>,
    /// The loaded model and embedded references of one profile, valid while `generation` is.
    verifier: Option<(String, u64, Verifier)>,
    /// Bumped by every change to photos or models, so cached references are rebuilt.
    generation: u64,
    /// The saved thresholds, read once instead of on every verified frame.
    policy: Option<VerificationPolicy>,
}

impl WorkerState {
    async fn backend(&mut self) -> &SelectedBackend {
        if self.backend.is_none() {
            self.backend = Some(backend::select(BackendPreference::Auto).await);
        }
        self.backend.as_ref().expect("chosen above")
    }

    /// Starts downloading the network files, unless that is under way or done.
    fn prefetch_networks(&mut self, scope: &DedicatedWorkerGlobalScope) {
        if self.network_files.is_none() {
            let download = download_networks(scope.clone()).boxed_local().shared();
            // A shared future runs only while polled: this task drives it to the end.
            spawn_local(download.clone().map(drop));
            self.network_files = Some(download);
        }
    }

    async fn pipeline(&mut self, scope: &DedicatedWorkerGlobalScope) -> Result<(), String> {
        if self.pipeline.is_none() {
            let device = self.backend().await.device.clone();
            self.prefetch_networks(scope);
            let files = self.network_files.clone().expect("started above").await;
            let files = match files {
                Ok(files) => files,
                Err(message) => {
                    // The next request downloads again (the network may be back).
                    self.network_files = None;
                    return Err(message);
                }
            };
            let (detector, tower) = &*files;
            self.pipeline = Some(FacePipeline::from_bytes(detector, tower, &device).map_err(|e| {
                format!(
                    "The app's model files are damaged ({e}). Reload the page to download them again."
                )
            })?);
        }
        Ok(())
    }

    async fn store(&mut self) -> Result<&IdbStore, String> {
        if self.store.is_none() {
            self.store = Some(IdbStore::open_default().await.map_err(|e| e.to_string())?);
        }
        Ok(self.store.as_ref().expect("opened above"))
    }

    fn changed(&mut self) {
        self.generation += 1;
        self.policy = None;
        self.verifier = None;
    }
}

/// Entry point called by `worker.js` once the wasm is instantiated in the worker.
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() -> Result<(), JsValue> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    // Requests go through a queue so that a long one (training) never interleaves with the
    // next. Cancelling is the exception: it must reach a training that is running.
    let (sender, receiver) = mpsc::unbounded::<JsValue>();
    let cancel = CancelFlag::new();
    let cancel_from_page = cancel.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let kind = js_sys::Reflect::get(&data, &"type".into())
            .ok()
            .and_then(|t| t.as_string());
        if kind.as_deref() == Some("CancelTraining") {
            cancel_from_page.cancel();
        } else {
            let _ = sender.unbounded_send(data);
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    spawn_local(serve(scope.clone(), receiver, cancel));
    post(&scope, &WorkerResponse::Loaded);
    Ok(())
}

fn post(scope: &DedicatedWorkerGlobalScope, response: &WorkerResponse) {
    match response_to_js(response) {
        Ok(value) => {
            if let Err(e) = scope.post_message(&value) {
                web_sys::console::error_2(&"faceverify worker: postMessage failed".into(), &e);
            }
        }
        Err(e) => web_sys::console::error_2(&"faceverify worker: serialising failed".into(), &e),
    }
}

/// A response as the page receives it. serde-wasm-bindgen builds a message value by value, and
/// each value is a crossing of the JS boundary that measured about 0.4 ms in Chromium (1,000
/// `JsValue::from_f64` took 437 ms): a profile whose last run has 200 epochs took most of a
/// second to send. So responses go as one JSON text that the browser parses. Byte payloads must
/// arrive as `Uint8Array`s, which JSON cannot carry: responses with photos or archives take
/// serde-wasm-bindgen (one crossing per payload), and the profile state sets its crops apart.
fn response_to_js(response: &WorkerResponse) -> Result<JsValue, JsValue> {
    match response {
        WorkerResponse::State { state } => state_to_js(state),
        WorkerResponse::PhotoAnalysed { .. }
        | WorkerResponse::Captured { .. }
        | WorkerResponse::PhotosImported { .. }
        | WorkerResponse::Exported { .. } => super::to_js(response),
        _ => json_to_js(response),
    }
}

fn json_to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(value).map_err(|e| JsValue::from_str(&e.to_string()))?;
    js_sys::JSON::parse(&text)
}

/// The state through JSON with empty crops, then each crop set as a `Uint8Array`.
fn state_to_js(state: &app::ProfileState) -> Result<JsValue, JsValue> {
    let mut without_crops = state.clone();
    without_crops
        .images
        .iter_mut()
        .for_each(|image| image.crop = Vec::new());
    let value = json_to_js(&WorkerResponse::State {
        state: Box::new(without_crops),
    })?;
    let state_value = js_sys::Reflect::get(&value, &"state".into())?;
    let images: js_sys::Array = js_sys::Reflect::get(&state_value, &"images".into())?.dyn_into()?;
    for (image, summary) in images.iter().zip(&state.images) {
        let crop = js_sys::Uint8Array::from(summary.crop.as_slice());
        js_sys::Reflect::set(&image, &"crop".into(), &crop)?;
    }
    Ok(value)
}

async fn serve(
    scope: DedicatedWorkerGlobalScope,
    mut requests: mpsc::UnboundedReceiver<JsValue>,
    cancel: CancelFlag,
) {
    let mut state = WorkerState::default();
    state.prefetch_networks(&scope);
    while let Some(data) = requests.next().await {
        let response = match serde_wasm_bindgen::from_value::<WorkerRequest>(data) {
            Ok(request) => {
                let name = request_name(&request);
                match handle(&scope, request, &mut state, &cancel).await {
                    Ok(response) => response,
                    Err(message) => WorkerResponse::Failed {
                        request: name.into(),
                        message,
                    },
                }
            }
            Err(e) => WorkerResponse::Failed {
                request: "unknown".into(),
                message: format!("The worker received a message it does not understand: {e}"),
            },
        };
        post(&scope, &response);
    }
}

fn request_name(request: &WorkerRequest) -> &'static str {
    match request {
        WorkerRequest::Init { .. } => "Init",
        WorkerRequest::CheckTraining { .. } => "CheckTraining",
        WorkerRequest::AnalysePhoto { .. } => "AnalysePhoto",
        WorkerRequest::CheckFrame { .. } => "CheckFrame",
        WorkerRequest::LoadState { .. } => "LoadState",
        WorkerRequest::MeasureUsage => "MeasureUsage",
        WorkerRequest::SaveProfile { .. } => "SaveProfile",
        WorkerRequest::DeleteProfile { .. } => "DeleteProfile",
        WorkerRequest::Capture { .. } => "Capture",
        WorkerRequest::ImportPhotos { .. } => "ImportPhotos",
        WorkerRequest::DeletePhoto { .. } => "DeletePhoto",
        WorkerRequest::SetPhotoRole { .. } => "SetPhotoRole",
        WorkerRequest::Train { .. } => "Train",
        WorkerRequest::CancelTraining => "CancelTraining",
        WorkerRequest::Verify { .. } => "Verify",
        WorkerRequest::SaveSettings { .. } => "SaveSettings",
        WorkerRequest::Export => "Export",
        WorkerRequest::ImportArchive { .. } => "ImportArchive",
        WorkerRequest::DeleteAll => "DeleteAll",
    }
}

/// The WebGPU adapter's buffer limits when the worker runs on WebGPU (the CPU has none).
async fn device_limits(state: &mut WorkerState) -> Option<DeviceBufferLimits> {
    match state.backend().await.report.kind {
        BackendKind::Wgpu => super::webgpu_adapter_limits().await,
        BackendKind::Cpu => None,
    }
}

/// Milliseconds since the epoch (records' times) and for rates (the loop's clock).
fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A fresh record id: time plus randomness, unique across profiles and devices.
fn new_id(prefix: &str) -> String {
    let mut random = [0u8; 8];
    let _ = getrandom::fill(&mut random);
    format!(
        "{prefix}-{:x}-{}",
        now_ms() as u64,
        random
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// Lets the worker's event loop run (incoming messages are queued, a cancel is seen).
fn yield_to_event_loop() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &"setTimeout".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(f) => {
                let _ = f.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    Box::pin(async move {
        let _ = JsFuture::from(promise).await;
    })
}

fn frame_of(frame: &CameraFrame) -> Result<crate::vision::frame::Frame, String> {
    frame
        .to_frame()
        .map_err(|e| format!("The camera picture could not be read: {e}"))
}

fn app_message(error: AppError) -> String {
    let text = error.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!(
            "{}{}.",
            first.to_uppercase(),
            chars.as_str().trim_end_matches('.')
        ),
        None => "Something went wrong.".into(),
    }
}

async fn state_response(
    state: &mut WorkerState,
    profile: Option<&str>,
) -> Result<WorkerResponse, String> {
    let store = state.store().await?;
    let loaded = app::profile_state(store, profile)
        .await
        .map_err(app_message)?;
    Ok(WorkerResponse::State {
        state: Box::new(loaded),
    })
}

async fn handle(
    scope: &DedicatedWorkerGlobalScope,
    request: WorkerRequest,
    state: &mut WorkerState,
    cancel: &CancelFlag,
) -> Result<WorkerResponse, String> {
    Ok(match request {
        WorkerRequest::Init { preference } => {
            let selected = backend::select(preference).await;
            let report = selected.report.clone();
            state.backend = Some(selected);
            state.pipeline = None;
            state.verifier = None;
            WorkerResponse::Ready {
                description: report.describe(),
                backend: report,
            }
        }
        WorkerRequest::CheckTraining { steps } => {
            let selected = state.backend().await;
            let check = selfcheck::training_check(&selected.device, steps)
                .await
                .map_err(|e| {
                    format!(
                        "The training self-check failed on {}: {e}",
                        selected.report.kind.label()
                    )
                })?;
            WorkerResponse::TrainingChecked {
                backend: selected.report.clone(),
                check,
            }
        }
        WorkerRequest::AnalysePhoto { bytes, crop } => {
            let report = state.backend().await.report.clone();
            state.pipeline(scope).await?;
            let pipeline = state.pipeline.as_ref().expect("loaded above");
            let analysis = pipeline
                .analyse_encoded(&bytes, crop)
                .await
                .map_err(|e| format!("The photo could not be analysed: {e}"))?;
            WorkerResponse::PhotoAnalysed {
                backend: report,
                analysis,
            }
        }
        WorkerRequest::CheckFrame { frame } => {
            let frame = frame_of(&frame)?;
            state.pipeline(scope).await?;
            let pipeline = state.pipeline.as_ref().expect("loaded above");
            let check = app::check_frame(pipeline, &frame)
                .await
                .map_err(app_message)?;
            WorkerResponse::FrameChecked { check }
        }
        WorkerRequest::LoadState { profile } => state_response(state, profile.as_deref()).await?,
        WorkerRequest::MeasureUsage => WorkerResponse::Usage {
            usage: state
                .store()
                .await?
                .usage()
                .await
                .map_err(|e| e.to_string())?,
        },
        WorkerRequest::SaveProfile { profile } => {
            let name = profile.name.trim();
            if name.is_empty() || name.chars().count() > 60 {
                return Err("A profile needs a name of 1 to 60 characters.".into());
            }
            state
                .store()
                .await?
                .put_profile(&profile)
                .await
                .map_err(|e| e.to_string())?;
            state_response(state, Some(&profile.id)).await?
        }
        WorkerRequest::DeleteProfile { id } => {
            state
                .store()
                .await?
                .delete_profile(&id)
                .await
                .map_err(|e| e.to_string())?;
            state.changed();
            state_response(state, None).await?
        }
        WorkerRequest::Capture {
            profile,
            role,
            frame,
        } => {
            let frame = frame_of(&frame)?;
            state.pipeline(scope).await?;
            state.store().await?;
            let photo = NewPhoto {
                id: new_id("img"),
                profile,
                role,
                source: ImageSource::Camera,
                created: now_ms() as u64,
            };
            let (Some(store), Some(pipeline)) = (&state.store, &state.pipeline) else {
                unreachable!("opened above");
            };
            let outcome = app::capture(store, pipeline, &frame, photo)
                .await
                .map_err(app_message)?;
            state.changed();
            WorkerResponse::Captured { role, outcome }
        }
        WorkerRequest::ImportPhotos {
            profile,
            role,
            files,
        } => {
            state.pipeline(scope).await?;
            state.store().await?;
            let (Some(store), Some(pipeline)) = (&state.store, &state.pipeline) else {
                unreachable!("opened above");
            };
            let mut progress = |done: usize, total: usize| {
                post(scope, &WorkerResponse::ImportProgress { done, total })
            };
            let report = app::import_photos(
                store,
                pipeline,
                files,
                &profile,
                role,
                now_ms() as u64,
                &mut || new_id("img"),
                &mut progress,
                yield_to_event_loop,
            )
            .await
            .map_err(app_message)?;
            state.changed();
            WorkerResponse::PhotosImported { report }
        }
        WorkerRequest::DeletePhoto { profile, id } => {
            state
                .store()
                .await?
                .delete_image(&id)
                .await
                .map_err(|e| e.to_string())?;
            state.changed();
            state_response(state, Some(&profile)).await?
        }
        WorkerRequest::SetPhotoRole { profile, id, role } => {
            let store = state.store().await?;
            let mut image = store
                .get_image(&id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("That photo no longer exists.")?;
            image.role = role;
            store.put_image(&image).await.map_err(|e| e.to_string())?;
            state.changed();
            state_response(state, Some(&profile)).await?
        }
        WorkerRequest::Train { request } => {
            state.pipeline(scope).await?;
            state.store().await?;
            if state.impostors.is_none() {
                let bytes = download(scope, MODEL_FILES[2]).await?;
                let text = String::from_utf8(bytes).map_err(|e| e.to_string())?;
                state.impostors = Some(ImpostorModel::from_json(&text).map_err(|e| {
                    format!("The app's impostor model is damaged ({e}). Reload the page.")
                })?);
            }
            let device = state.backend().await.device.clone();
            let limits = device_limits(state).await;
            let (Some(store), Some(pipeline)) = (&state.store, &state.pipeline) else {
                unreachable!("opened above");
            };
            // A cancel sent while no run was active belongs to nothing.
            cancel.reset();
            let control = RunControl {
                clock: now_ms,
                cancel: cancel.clone(),
            };
            let ids = RunIds {
                run_id: new_id("run"),
                model_id: new_id("model"),
                now: now_ms() as u64,
            };
            let mut on_event = |event: &crate::train::run::TrainingEvent| {
                post(
                    scope,
                    &WorkerResponse::Training {
                        event: event.clone(),
                    },
                )
            };
            let outcome = app::train(
                store,
                pipeline,
                state.impostors.as_ref(),
                &device,
                limits.as_ref(),
                &request,
                ids,
                &control,
                &mut on_event,
                yield_to_event_loop,
            )
            .await;
            // The flag is shared with the page's handler: lower it for the next run.
            cancel.reset();
            let outcome = outcome.map_err(app_message)?;
            if let Some(model) = &outcome.model {
                // The calibrated thresholds become the sliders' values.
                if let Ok(policy) =
                    serde_json::from_value::<VerificationPolicy>(model.metrics["policy"].clone())
                {
                    let mut settings = store.settings().await.map_err(|e| e.to_string())?;
                    settings.detection_threshold = policy.detection.value();
                    settings.verification_threshold = policy.verification.value();
                    store
                        .put_settings(&settings)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            state.changed();
            WorkerResponse::Trained {
                outcome: Box::new(outcome),
            }
        }
        WorkerRequest::CancelTraining => {
            // Normally handled before queueing; reaching here means no run was active.
            return Err("No training is running.".into());
        }
        WorkerRequest::Verify { profile, frame } => {
            let frame = frame_of(&frame)?;
            state.pipeline(scope).await?;
            state.store().await?;
            let device = state.backend().await.device.clone();
            let generation = state.generation;
            if state.policy.is_none() {
                let settings = state
                    .store
                    .as_ref()
                    .expect("opened above")
                    .settings()
                    .await
                    .map_err(|e| e.to_string())?;
                state.policy = Some(
                    VerificationPolicy::from_values(
                        settings.detection_threshold,
                        settings.verification_threshold,
                    )
                    .map_err(|e| format!("The saved thresholds are invalid: {e}"))?,
                );
            }
            let policy = state.policy.expect("read above");
            let current =
                matches!(&state.verifier, Some((p, g, _)) if *p == profile && *g == generation);
            if !current {
                state.verifier = None;
                let limits = device_limits(state).await;
                let (Some(store), Some(pipeline)) = (&state.store, &state.pipeline) else {
                    unreachable!("opened above");
                };
                let verifier = Verifier::load(
                    store,
                    pipeline,
                    &profile,
                    &device,
                    limits.as_ref(),
                    yield_to_event_loop,
                )
                .await
                .map_err(app_message)?;
                state.verifier = Some((profile.clone(), generation, verifier));
            }
            let (Some(pipeline), Some((_, _, verifier))) = (&state.pipeline, &state.verifier)
            else {
                unreachable!("loaded above");
            };
            let outcome = app::verify_frame(pipeline, verifier, &frame, &policy)
                .await
                .map_err(app_message)?;
            WorkerResponse::Verified {
                outcome: Box::new(outcome),
            }
        }
        WorkerRequest::SaveSettings { profile, settings } => {
            let policy = VerificationPolicy::from_values(
                settings.detection_threshold,
                settings.verification_threshold,
            )
            .map_err(|e| format!("Thresholds must lie between 0 and 1: {e}"))?;
            state
                .store()
                .await?
                .put_settings(&settings)
                .await
                .map_err(|e| e.to_string())?;
            state.policy = Some(policy);
            state_response(state, profile.as_deref()).await?
        }
        WorkerRequest::Export => {
            let bytes = archive::export_archive(state.store().await?)
                .await
                .map_err(|e| e.to_string())?;
            WorkerResponse::Exported { bytes }
        }
        WorkerRequest::ImportArchive { bytes, mode } => {
            let report = archive::import_archive(
                state.store().await?,
                &bytes,
                mode,
                &ArchiveLimits::default(),
            )
            .await
            .map_err(|e| e.to_string())?;
            state.changed();
            WorkerResponse::ArchiveImported {
                images: report.counts.images,
                models: report.counts.models,
                profiles: report.counts.profiles,
            }
        }
        WorkerRequest::DeleteAll => {
            // The database cannot be deleted while this worker holds it open.
            if let Some(store) = state.store.take() {
                store.close();
            }
            state.changed();
            idb_store::delete_all_data()
                .await
                .map_err(|e| e.to_string())?;
            WorkerResponse::AllDeleted
        }
    })
}

/// Downloads the detector's and the tower's files, both at once.
async fn download_networks(scope: DedicatedWorkerGlobalScope) -> NetworkFiles {
    let [detector, tower, _] = MODEL_FILES;
    let (detector, tower) =
        futures::future::join(download(&scope, detector), download(&scope, tower)).await;
    Ok(Rc::new((detector?, tower?)))
}

/// Fetches a model file relative to the app's root, streaming it to report progress. The
/// browser's HTTP cache (and the service worker, when installed) makes later loads instant.
async fn download(scope: &DedicatedWorkerGlobalScope, file: ModelFile) -> Result<Vec<u8>, String> {
    use js_sys::{Reflect, Uint8Array};
    let unreachable = |detail: String| {
        format!(
            "The {} could not be downloaded ({detail}). Check the connection and reload; \
             after one complete load the app also works offline.",
            file.name
        )
    };
    let js_detail = |e: JsValue| e.as_string().unwrap_or_else(|| format!("{e:?}"));
    // worker.js lives at the app's root, so paths relative to it are relative to the root.
    let response: web_sys::Response = JsFuture::from(scope.fetch_with_str(file.path))
        .await
        .map_err(|e| unreachable(js_detail(e)))?
        .unchecked_into();
    if !response.ok() {
        return Err(unreachable(format!("HTTP {}", response.status())));
    }
    // `headers.get` by reflection: the web-sys `Headers` feature is not enabled.
    let total = Reflect::get(&response, &"headers".into())
        .ok()
        .and_then(|headers| {
            let get = Reflect::get(&headers, &"get".into()).ok()?;
            get.unchecked_into::<js_sys::Function>()
                .call1(&headers, &"content-length".into())
                .ok()
        })
        .and_then(|v| v.as_string())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let progress = |loaded: u64| {
        post(
            scope,
            &WorkerResponse::ModelProgress {
                name: file.name.into(),
                loaded,
                total,
            },
        )
    };
    progress(0);
    // Stream through `body.getReader()` (by reflection: the web-sys stream features are not
    // enabled, and enabling them rebuilds the whole wasm dependency tree).
    let body = Reflect::get(&response, &"body".into()).map_err(|e| unreachable(js_detail(e)))?;
    let reader = Reflect::get(&body, &"getReader".into())
        .and_then(|f| f.unchecked_into::<js_sys::Function>().call0(&body))
        .map_err(|e| unreachable(js_detail(e)))?;
    let read = Reflect::get(&reader, &"read".into())
        .map_err(|e| unreachable(js_detail(e)))?
        .unchecked_into::<js_sys::Function>();
    let mut bytes = Vec::with_capacity(total as usize);
    let mut last_report = 0u64;
    loop {
        let promise: js_sys::Promise = read
            .call0(&reader)
            .map_err(|e| unreachable(js_detail(e)))?
            .unchecked_into();
        let chunk = JsFuture::from(promise)
            .await
            .map_err(|e| unreachable(js_detail(e)))?;
        if Reflect::get(&chunk, &"done".into())
            .map(|d| d.is_truthy())
            .unwrap_or(true)
        {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(|e| unreachable(js_detail(e)))?
            .unchecked_into();
        bytes.extend_from_slice(&value.to_vec());
        // About every 256 KiB: enough for a smooth bar without flooding the page.
        if bytes.len() as u64 - last_report >= 256 * 1024 {
            last_report = bytes.len() as u64;
            progress(last_report);
        }
    }
    if total != 0 && bytes.len() as u64 != total {
        return Err(unreachable(format!("got {} of {total} bytes", bytes.len())));
    }
    progress(bytes.len() as u64);
    Ok(bytes)
}
