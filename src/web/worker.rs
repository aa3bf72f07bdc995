//! The worker: owns the Burn device and does all model work, one request at a time, so the
//! page's main thread only draws.

use futures::StreamExt;
use futures::channel::mpsc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use wasm_bindgen_futures::JsFuture;

use crate::backend::{self, BackendPreference, SelectedBackend};
use crate::pipeline::FacePipeline;
use crate::protocol::{MODEL_FILES, ModelFile, WorkerRequest, WorkerResponse};
use crate::selfcheck;

/// What the worker keeps between requests.
#[derive(Default)]
struct WorkerState {
    backend: Option<SelectedBackend>,
    /// Built on first use, on the chosen device; dropped when the device changes.
    pipeline: Option<FacePipeline>,
}

impl WorkerState {
    async fn backend(&mut self) -> &SelectedBackend {
        if self.backend.is_none() {
            self.backend = Some(backend::select(BackendPreference::Auto).await);
        }
        self.backend.as_ref().expect("chosen above")
    }
}

/// Entry point called by `worker.js` once the wasm is instantiated in the worker.
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main() -> Result<(), JsValue> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    // Requests go through a queue so that a long one (training) never interleaves with the next.
    let (sender, receiver) = mpsc::unbounded::<JsValue>();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let _ = sender.unbounded_send(event.data());
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    spawn_local(serve(scope.clone(), receiver));
    post(&scope, &WorkerResponse::Loaded);
    Ok(())
}

fn post(scope: &DedicatedWorkerGlobalScope, response: &WorkerResponse) {
    match super::to_js(response) {
        Ok(value) => {
            if let Err(e) = scope.post_message(&value) {
                web_sys::console::error_2(&"faceverify worker: postMessage failed".into(), &e);
            }
        }
        Err(e) => web_sys::console::error_2(&"faceverify worker: serialising failed".into(), &e),
    }
}

async fn serve(scope: DedicatedWorkerGlobalScope, mut requests: mpsc::UnboundedReceiver<JsValue>) {
    let mut state = WorkerState::default();
    while let Some(data) = requests.next().await {
        let response = match serde_wasm_bindgen::from_value::<WorkerRequest>(data) {
            Ok(request) => handle(&scope, request, &mut state).await,
            Err(e) => WorkerResponse::Failed {
                request: "unknown".into(),
                message: format!("The worker received a message it does not understand: {e}"),
            },
        };
        post(&scope, &response);
    }
}

async fn handle(
    scope: &DedicatedWorkerGlobalScope,
    request: WorkerRequest,
    state: &mut WorkerState,
) -> WorkerResponse {
    match request {
        WorkerRequest::Init { preference } => {
            let selected = backend::select(preference).await;
            let report = selected.report.clone();
            state.backend = Some(selected);
            state.pipeline = None;
            WorkerResponse::Ready { backend: report }
        }
        WorkerRequest::CheckTraining { steps } => {
            let selected = state.backend().await;
            match selfcheck::training_check(&selected.device, steps).await {
                Ok(check) => WorkerResponse::TrainingChecked {
                    backend: selected.report.clone(),
                    check,
                },
                Err(e) => WorkerResponse::Failed {
                    request: "CheckTraining".into(),
                    message: format!(
                        "The training self-check failed on {}: {e}",
                        selected.report.kind.label()
                    ),
                },
            }
        }
        WorkerRequest::AnalysePhoto { bytes, crop } => {
            let failed = |message: String| WorkerResponse::Failed {
                request: "AnalysePhoto".into(),
                message,
            };
            let report = state.backend().await.report.clone();
            if state.pipeline.is_none() {
                match load_pipeline(scope, &state.backend().await.device).await {
                    Ok(pipeline) => state.pipeline = Some(pipeline),
                    Err(message) => return failed(message),
                }
            }
            let pipeline = state.pipeline.as_ref().expect("loaded above");
            match pipeline.analyse_encoded(&bytes, crop).await {
                Ok(analysis) => WorkerResponse::PhotoAnalysed {
                    backend: report,
                    analysis,
                },
                Err(e) => failed(format!("The photo could not be analysed: {e}")),
            }
        }
    }
}

/// Downloads both networks (reporting progress) and builds the pipeline on `device`.
async fn load_pipeline(
    scope: &DedicatedWorkerGlobalScope,
    device: &burn::prelude::Device,
) -> Result<FacePipeline, String> {
    let [detector, tower] = MODEL_FILES;
    let detector_bytes = download(scope, detector).await?;
    let tower_bytes = download(scope, tower).await?;
    FacePipeline::from_bytes(&detector_bytes, &tower_bytes, device).map_err(|e| {
        format!("The app's model files are damaged ({e}). Reload the page to download them again.")
    })
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
