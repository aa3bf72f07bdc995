//! The worker's message pump: requests from the page go to one [`Session`], one at a time, and
//! its answers go back with the request's `id`. What only the browser has (IndexedDB, the
//! model files, the clock, the event loop) is [`WebHost`].

use std::cell::RefCell;

use futures::StreamExt;
use futures::channel::mpsc;
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent, WorkerGlobalScope};

use super::executor::spawn_local;
use super::idb_store::{self, IdbStore};
use super::{js_get, js_message};
use crate::app::{Host, Session};
use crate::protocol::{NetworkFile, WorkerRequest, WorkerResponse};
use crate::store::StoreError;
use crate::train::run::CancelFlag;

#[wasm_bindgen]
extern "C" {
    /// What `worker.js` does for the worker, where JavaScript is the platform's own language.
    pub type Platform;

    /// A promise of the bytes of the model file `file` (a name in the models' folder): one
    /// download per file, with progress posted to the page.
    #[wasm_bindgen(method, js_name = fetchModel)]
    fn fetch_model(this: &Platform, file: &str, name: &str) -> Promise;

    /// Deletes the app's files in Cache Storage.
    #[wasm_bindgen(method, js_name = deleteCaches)]
    fn delete_caches(this: &Platform) -> Promise;
}

/// The browser's side of a [`Session`].
pub struct WebHost {
    scope: DedicatedWorkerGlobalScope,
    platform: Platform,
    /// The `id` of the request being answered, echoed by its progress messages.
    current_id: RefCell<JsValue>,
}

impl WebHost {
    fn download(&self, file: NetworkFile) -> JsFuture {
        JsFuture::from(self.platform.fetch_model(file.file_name(), file.name))
    }

    fn post_with_id(&self, message: &WorkerResponse, id: &JsValue) {
        let posted = super::to_js(message).and_then(|value| {
            if !id.is_undefined() {
                Reflect::set(&value, &"id".into(), id)?;
            }
            self.scope.post_message(&value)
        });
        if let Err(e) = posted {
            web_sys::console::error_2(&"faceverify worker: an answer was not posted".into(), &e);
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
        let random = (self.random() * (1u64 << 53) as f64) as u64;
        format!("{prefix}-{:x}-{random:014x}", Self::now_ms() as u64)
    }

    fn post(&self, message: &WorkerResponse) {
        self.post_with_id(message, &self.current_id.borrow());
    }

    async fn open_store(&self) -> Result<IdbStore, StoreError> {
        IdbStore::open(idb_store::DATABASE_NAME).await
    }

    fn prefetch(&self, file: NetworkFile) {
        let _started = self.download(file);
    }

    async fn model_file(&self, file: NetworkFile) -> Result<Vec<u8>, String> {
        let bytes = self.download(file).await.map_err(|e| js_message(&e))?;
        Ok(Uint8Array::new(&bytes).to_vec())
    }

    /// The cached files go first, so that a failure leaves the user's data (the database) as
    /// it was, and says so.
    async fn delete_all_data(&self, store: Option<IdbStore>) -> Result<(), StoreError> {
        // The database cannot be deleted while this worker holds it open.
        if let Some(store) = store {
            store.close();
        }
        let caches = JsFuture::from(self.platform.delete_caches()).await;
        caches.map_err(|e| StoreError::WriteFailed {
            detail: format!("deleting the app's cached files: {}", js_message(&e)),
        })?;
        idb_store::delete_database(idb_store::DATABASE_NAME).await
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

/// Entry point called by `worker.js` once the wasm is instantiated in the worker.
#[wasm_bindgen(js_name = workerMain)]
pub fn worker_main(platform: Platform) -> Result<(), JsValue> {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().dyn_into()?;
    // Requests go through a queue so that a long one (training) never interleaves with the
    // next. Cancelling is the exception: it must reach a training that is running.
    let (sender, receiver) = mpsc::unbounded::<JsValue>();
    let cancel = CancelFlag::new();
    let cancel_from_page = cancel.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let data = event.data();
        let kind = js_get(&data, "type").and_then(|t| t.as_string());
        if kind.as_deref() == Some("CancelTraining") {
            cancel_from_page.cancel();
        } else {
            let _ = sender.unbounded_send(data);
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let host = WebHost {
        scope,
        platform,
        current_id: RefCell::new(JsValue::UNDEFINED),
    };
    let session = Session::new(host, cancel);
    session.host().post(&WorkerResponse::Loaded);
    spawn_local(serve(session, receiver));
    Ok(())
}

/// Answers the queued requests, each with the `id` it came with.
async fn serve(mut session: Session<WebHost>, mut requests: mpsc::UnboundedReceiver<JsValue>) {
    while let Some(data) = requests.next().await {
        let id = js_get(&data, "id").unwrap_or(JsValue::UNDEFINED);
        *session.host().current_id.borrow_mut() = id.clone();
        let response = match serde_wasm_bindgen::from_value::<WorkerRequest>(data) {
            Ok(request) => session.answer(request).await,
            Err(e) => WorkerResponse::not_understood(e),
        };
        *session.host().current_id.borrow_mut() = JsValue::UNDEFINED;
        session.host().post_with_id(&response, &id);
    }
}

/// Lets the worker's event loop run (incoming messages are queued, a cancel is seen).
async fn yield_to_event_loop() {
    let scope: WorkerGlobalScope = js_sys::global().unchecked_into();
    let promise = Promise::new(&mut |resolve, _| {
        if scope.set_timeout_with_callback(&resolve).is_err() {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}
