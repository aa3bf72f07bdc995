//! The worker's message pump: requests from the page go to one [`Session`], one at a time, and
//! its answers go back with the request's `id`. What only the browser has (IndexedDB, `fetch`,
//! the clock, the event loop, WebGPU's limits) is [`WebHost`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use futures::channel::mpsc;
use futures::future::{LocalBoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::executor::spawn_local;
use super::idb_store::{self, IdbStore};
use crate::app::{Host, Session};
use crate::model::koch::DeviceBufferLimits;
use crate::protocol::{NETWORK_FILES, NetworkFile, WorkerRequest, WorkerResponse};
use crate::store::StoreError;
use crate::train::run::CancelFlag;

/// A model file's download, shared by whoever waits for it.
type Download = Shared<LocalBoxFuture<'static, Result<Rc<Vec<u8>>, String>>>;

/// The browser's side of a [`Session`].
pub struct WebHost {
    scope: DedicatedWorkerGlobalScope,
    /// Where the model files are fetched from (a folder's URL, ending in `/`).
    models: String,
    /// The `id` of the request being answered, echoed by its progress messages.
    current_id: RefCell<JsValue>,
    /// Downloads of the model files, started when the worker starts so that they overlap with
    /// reading the profile and choosing the backend.
    downloads: RefCell<HashMap<&'static str, Download>>,
}

impl WebHost {
    fn new(scope: DedicatedWorkerGlobalScope, models: String) -> Self {
        let host = Self {
            scope,
            models,
            current_id: RefCell::new(JsValue::UNDEFINED),
            downloads: RefCell::new(HashMap::new()),
        };
        let [detector, tower, ..] = NETWORK_FILES;
        for file in [detector, tower] {
            // Started here; a spawned task drives it, and the session awaits it when needed.
            let _started = host.download(file);
        }
        host
    }

    /// The download of `file`, started unless under way or done.
    fn download(&self, file: NetworkFile) -> Download {
        self.downloads
            .borrow_mut()
            .entry(file.path)
            .or_insert_with(|| {
                let url = format!("{}{}", self.models, file.file_name());
                let download = download(self.scope.clone(), file, url)
                    .map(|bytes| bytes.map(Rc::new))
                    .boxed_local()
                    .shared();
                // A shared future runs only while polled: this task drives it to the end.
                spawn_local(download.clone().map(drop));
                download
            })
            .clone()
    }

    fn post_with_id(&self, message: &WorkerResponse, id: &JsValue) {
        match super::to_js(message) {
            Ok(value) => {
                if !id.is_undefined() {
                    let _ = Reflect::set(&value, &"id".into(), id);
                }
                if let Err(e) = self.scope.post_message(&value) {
                    web_sys::console::error_2(&"faceverify worker: posting failed".into(), &e);
                }
            }
            Err(e) => {
                web_sys::console::error_2(&"faceverify worker: serialising failed".into(), &e)
            }
        }
    }
}

impl Host for WebHost {
    type Store = IdbStore;

    fn now_ms() -> f64 {
        js_sys::Date::now()
    }

    fn yield_now() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
        Box::pin(yield_to_event_loop())
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut random = [0u8; 8];
        let _ = getrandom::fill(&mut random);
        let random: String = random.iter().map(|b| format!("{b:02x}")).collect();
        format!("{prefix}-{:x}-{random}", Self::now_ms() as u64)
    }

    fn post(&self, message: &WorkerResponse) {
        self.post_with_id(message, &self.current_id.borrow());
    }

    async fn open_store(&self) -> Result<IdbStore, StoreError> {
        IdbStore::open_default().await
    }

    async fn model_file(&self, file: NetworkFile) -> Result<Vec<u8>, String> {
        let result = self.download(file).await;
        if result.is_err() {
            // The next request downloads again (the network may be back).
            self.downloads.borrow_mut().remove(file.path);
        }
        result.map(|bytes| bytes.to_vec())
    }

    async fn gpu_limits(&self) -> Option<DeviceBufferLimits> {
        super::webgpu_adapter_limits().await
    }

    async fn delete_all_data(&self, store: Option<IdbStore>) -> Result<(), StoreError> {
        // The database cannot be deleted while this worker holds it open.
        if let Some(store) = store {
            store.close();
        }
        idb_store::delete_all_data().await
    }

    fn random(&self) -> f64 {
        // The browser's cryptographic source: the challenge must not be predictable.
        let mut bytes = [0u8; 8];
        match getrandom::fill(&mut bytes) {
            Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => js_sys::Math::random(),
        }
    }
}

/// Entry point called by `worker.js` once the wasm is instantiated in the worker. `models`: the
/// URL of the folder the model files are fetched from (by default `models/` beside worker.js).
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main(models: Option<String>) -> Result<(), JsValue> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    // Requests go through a queue so that a long one (training) never interleaves with the
    // next. Cancelling is the exception: it must reach a training that is running.
    let (sender, receiver) = mpsc::unbounded::<JsValue>();
    let cancel = CancelFlag::new();
    let cancel_from_page = cancel.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let kind = Reflect::get(&data, &"type".into())
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
    let mut models = models.unwrap_or_else(|| "models/".into());
    if !models.ends_with('/') {
        models.push('/');
    }
    let session = Session::new(WebHost::new(scope, models), cancel);
    session.host().post(&WorkerResponse::Loaded);
    spawn_local(serve(session, receiver));
    Ok(())
}

/// Answers the queued requests, each with the `id` it came with.
async fn serve(mut session: Session<WebHost>, mut requests: mpsc::UnboundedReceiver<JsValue>) {
    while let Some(data) = requests.next().await {
        let id = Reflect::get(&data, &"id".into()).unwrap_or(JsValue::UNDEFINED);
        *session.host().current_id.borrow_mut() = id.clone();
        let response = match serde_wasm_bindgen::from_value::<WorkerRequest>(data) {
            Ok(request) => session.answer(request).await,
            Err(e) => WorkerResponse::Failed {
                request: "unknown".into(),
                message: format!("The worker received a message it does not understand: {e}"),
            },
        };
        *session.host().current_id.borrow_mut() = JsValue::UNDEFINED;
        session.host().post_with_id(&response, &id);
    }
}

/// Lets the worker's event loop run (incoming messages are queued, a cancel is seen).
async fn yield_to_event_loop() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let set_timeout = Reflect::get(&js_sys::global(), &"setTimeout".into())
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
    let _ = JsFuture::from(promise).await;
}

/// Fetches a model file from `url` (relative ones resolve against worker.js), streaming it to
/// report progress. The browser's HTTP cache (and the service worker, when installed) makes
/// later loads instant. On failure, what went wrong (the session says which file and what to
/// do).
async fn download(
    scope: DedicatedWorkerGlobalScope,
    file: NetworkFile,
    url: String,
) -> Result<Vec<u8>, String> {
    let detail = |e: JsValue| e.as_string().unwrap_or_else(|| format!("{e:?}"));
    let response: web_sys::Response = JsFuture::from(scope.fetch_with_str(&url))
        .await
        .map_err(detail)?
        .unchecked_into();
    if !response.ok() {
        return Err(format!("HTTP {}", response.status()));
    }
    let total = content_length(&response);
    let progress = |loaded: u64| {
        let message = WorkerResponse::ModelProgress {
            name: file.name.into(),
            loaded,
            total,
        };
        if let Ok(value) = super::to_js(&message) {
            let _ = scope.post_message(&value);
        }
    };
    progress(0);
    // Stream through `body.getReader()` (by reflection: the web-sys stream features are not
    // enabled, and enabling them rebuilds the whole wasm dependency tree).
    let body = Reflect::get(&response, &"body".into()).map_err(detail)?;
    let reader = Reflect::get(&body, &"getReader".into())
        .and_then(|f| f.unchecked_into::<js_sys::Function>().call0(&body))
        .map_err(detail)?;
    let read = Reflect::get(&reader, &"read".into())
        .map_err(detail)?
        .unchecked_into::<js_sys::Function>();
    let mut bytes = Vec::with_capacity(total as usize);
    let mut last_report = 0u64;
    loop {
        let promise: js_sys::Promise = read.call0(&reader).map_err(detail)?.unchecked_into();
        let chunk = JsFuture::from(promise).await.map_err(detail)?;
        if Reflect::get(&chunk, &"done".into()).map_or(true, |d| d.is_truthy()) {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(detail)?
            .unchecked_into();
        bytes.extend_from_slice(&value.to_vec());
        // About every 256 KiB: enough for a smooth bar without flooding the page.
        if bytes.len() as u64 - last_report >= 256 * 1024 {
            last_report = bytes.len() as u64;
            progress(last_report);
        }
    }
    if total != 0 && bytes.len() as u64 != total {
        return Err(format!("got {} of {total} bytes", bytes.len()));
    }
    progress(bytes.len() as u64);
    Ok(bytes)
}

/// The response's `Content-Length`, or 0 when it has none (by reflection: the web-sys
/// `Headers` feature is not enabled).
fn content_length(response: &web_sys::Response) -> u64 {
    Reflect::get(response, &"headers".into())
        .ok()
        .and_then(|headers| {
            let get = Reflect::get(&headers, &"get".into()).ok()?;
            get.unchecked_into::<js_sys::Function>()
                .call1(&headers, &"content-length".into())
                .ok()
        })
        .and_then(|v| v.as_string())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}
