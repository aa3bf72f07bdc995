//! The worker: owns the Burn device and does all model work, one request at a time, so the
//! page's main thread only draws.

use futures::StreamExt;
use futures::channel::mpsc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::spawn_local;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::backend::{self, BackendPreference, SelectedBackend};
use crate::protocol::{WorkerRequest, WorkerResponse};
use crate::selfcheck;

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
    let mut backend: Option<SelectedBackend> = None;
    while let Some(data) = requests.next().await {
        let response = match serde_wasm_bindgen::from_value::<WorkerRequest>(data) {
            Ok(request) => handle(request, &mut backend).await,
            Err(e) => WorkerResponse::Failed {
                request: "unknown".into(),
                message: format!("The worker received a message it does not understand: {e}"),
            },
        };
        post(&scope, &response);
    }
}

async fn handle(request: WorkerRequest, backend: &mut Option<SelectedBackend>) -> WorkerResponse {
    match request {
        WorkerRequest::Init { preference } => {
            let selected = backend::select(preference).await;
            let report = selected.report.clone();
            *backend = Some(selected);
            WorkerResponse::Ready { backend: report }
        }
        WorkerRequest::CheckTraining { steps } => {
            if backend.is_none() {
                *backend = Some(backend::select(BackendPreference::Auto).await);
            }
            let selected = backend.as_ref().expect("backend chosen above");
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
    }
}
