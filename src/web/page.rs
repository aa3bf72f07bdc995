//! The page: camera, status lines and controls. It only draws and forwards requests; all model
//! work happens in the worker.

use std::rc::Rc;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    Document, HtmlElement, HtmlVideoElement, MediaStream, MediaStreamConstraints,
    MediaTrackConstraints, MessageEvent, Worker, WorkerOptions, WorkerType,
};

use crate::backend::{BackendKind, BackendPreference};
use crate::camera::CameraError;
use crate::protocol::{WorkerRequest, WorkerResponse};

/// The element that marks a page as the faceverify app (see `web::start`).
pub const APP_ROOT_ID: &str = "faceverify-app";

/// Steps of the training self-check the diagnostics button runs.
const CHECK_STEPS: usize = 8;

struct Page {
    document: Document,
    worker: Worker,
}

impl Page {
    fn element(&self, id: &str) -> HtmlElement {
        self.document
            .get_element_by_id(id)
            .and_then(|e| e.dyn_into::<HtmlElement>().ok())
            .unwrap_or_else(|| panic!("index.html lacks #{id}"))
    }

    fn show(&self, id: &str, text: &str) {
        let element = self.element(id);
        element.set_text_content(Some(text));
        element.set_hidden(text.is_empty());
    }

    fn send(&self, request: &WorkerRequest) {
        match super::to_js(request).and_then(|value| self.worker.post_message(&value)) {
            Ok(()) => {}
            Err(e) => self.show(
                "worker-status",
                &format!(
                    "Could not reach the app's worker: {}",
                    describe_js_error(&e)
                ),
            ),
        }
    }
}

/// Starts the app on a page that has `#faceverify-app`.
pub fn start() {
    if let Err(e) = try_start() {
        web_sys::console::error_2(&"faceverify: the page could not start".into(), &e);
    }
}

fn try_start() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let options = WorkerOptions::new();
    options.set_type(WorkerType::Module);
    let worker = Worker::new_with_options("./worker.js", &options)?;
    let page = Rc::new(Page { document, worker });

    let preference = backend_preference_from_url(&window);
    let handler_page = page.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        match serde_wasm_bindgen::from_value::<WorkerResponse>(event.data()) {
            Ok(response) => on_worker_response(&handler_page, response, preference),
            Err(e) => handler_page.show(
                "worker-status",
                &format!("Unexpected message from the worker: {e}"),
            ),
        }
    });
    page.worker
        .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();

    let error_page = page.clone();
    let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(
        move |event: web_sys::ErrorEvent| {
            error_page.show(
            "worker-status",
            &format!(
                "The app's worker stopped: {}. Reload the page; if it happens again, this browser may be too old.",
                event.message()
            ),
        );
        },
    );
    page.worker
        .set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();

    let check_page = page.clone();
    let on_check = Closure::<dyn FnMut()>::new(move || {
        check_page.show("check-result", "Running the training self-check…");
        check_page.send(&WorkerRequest::CheckTraining { steps: CHECK_STEPS });
    });
    page.element("check-training")
        .set_onclick(Some(on_check.as_ref().unchecked_ref()));
    on_check.forget();

    let photo_page = page.clone();
    let on_photo =
        Closure::<dyn FnMut()>::new(move || spawn_local(send_chosen_photo(photo_page.clone())));
    page.element("photo-input")
        .add_event_listener_with_callback("change", on_photo.as_ref().unchecked_ref())?;
    on_photo.forget();

    let retry_page = page.clone();
    let on_retry =
        Closure::<dyn FnMut()>::new(move || spawn_local(open_camera(retry_page.clone())));
    page.element("camera-retry")
        .set_onclick(Some(on_retry.as_ref().unchecked_ref()));
    on_retry.forget();

    spawn_local(open_camera(page));
    Ok(())
}

fn backend_preference_from_url(window: &web_sys::Window) -> BackendPreference {
    let search = window.location().search().unwrap_or_default();
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()
        .and_then(|params| params.get("backend"))
        .and_then(|value| value.parse().ok())
        .unwrap_or_default()
}

fn on_worker_response(page: &Page, response: WorkerResponse, preference: BackendPreference) {
    match response {
        WorkerResponse::Loaded => {
            page.show("worker-status", "");
            page.show("backend-status", "Choosing a backend: testing WebGPU…");
            page.send(&WorkerRequest::Init { preference });
        }
        WorkerResponse::Ready { backend } => {
            let status = page.element("backend-status");
            status
                .set_attribute("data-backend", backend.kind.label())
                .ok();
            page.show("backend-status", &backend.describe());
            let notice = if backend.kind == BackendKind::Cpu {
                match backend.reason {
                    crate::backend::BackendReason::NoAdapter { .. } => {
                        "WebGPU is missing in this browser: everything works, but training is slower."
                    }
                    _ => "",
                }
            } else {
                ""
            };
            page.show("webgpu-notice", notice);
            page.element("check-training")
                .remove_attribute("disabled")
                .ok();
            page.element("photo-input")
                .remove_attribute("disabled")
                .ok();
        }
        WorkerResponse::TrainingChecked { backend, check } => {
            let result = page.element("check-result");
            result
                .set_attribute("data-passed", &check.passed().to_string())
                .ok();
            result
                .set_attribute("data-backend", backend.kind.label())
                .ok();
            let verdict = if check.passed() { "passed" } else { "FAILED" };
            page.show(
                "check-result",
                &format!(
                    "Training self-check {verdict} on {}: loss {:.4} → {:.4} in {} Adam steps.",
                    backend.kind.label(),
                    check.first_loss,
                    check.last_loss,
                    check.steps
                ),
            );
        }
        WorkerResponse::ModelProgress {
            name,
            loaded,
            total,
        } => {
            let mb = |bytes: u64| bytes as f64 / 1e6;
            let text = if total > 0 && loaded >= total {
                String::new()
            } else if total > 0 {
                format!(
                    "Downloading the {name}: {:.1} of {:.1} MB…",
                    mb(loaded),
                    mb(total)
                )
            } else {
                format!("Downloading the {name}: {:.1} MB…", mb(loaded))
            };
            page.show("model-status", &text);
        }
        WorkerResponse::PhotoAnalysed { backend, analysis } => {
            let result = page.element("photo-result");
            result
                .set_attribute("data-faces", &analysis.faces_seen.to_string())
                .ok();
            let text = match (&analysis.face, analysis.faces_seen) {
                (None, _) => {
                    "No face found in this photo. Use a photo where the face is clearly visible."
                        .to_string()
                }
                (Some(face), 1) => format!(
                    "1 face found (detector score {:.2}); its descriptor was computed on {}.",
                    face.score,
                    backend.kind.label()
                ),
                (Some(face), n) => format!(
                    "{n} faces found; the largest (score {:.2}) was used, on {}.",
                    face.score,
                    backend.kind.label()
                ),
            };
            page.show("photo-result", &text);
        }
        WorkerResponse::Failed { request, message } => {
            let target = match request.as_str() {
                "CheckTraining" => "check-result",
                "AnalysePhoto" => "photo-result",
                _ => "worker-status",
            };
            page.show(target, &message);
        }
    }
}

/// Reads the file chosen in `#photo-input` and asks the worker to analyse it.
async fn send_chosen_photo(page: Rc<Page>) {
    let input: web_sys::HtmlInputElement = page.element("photo-input").unchecked_into();
    let Some(file) = input.files().and_then(|files| files.get(0)) else {
        return;
    };
    page.show("photo-result", "Looking for a face…");
    match JsFuture::from(file.array_buffer()).await {
        Ok(buffer) => page.send(&WorkerRequest::AnalysePhoto {
            bytes: js_sys::Uint8Array::new(&buffer).to_vec(),
            crop: Default::default(),
        }),
        Err(e) => page.show(
            "photo-result",
            &format!("The file could not be read: {}", describe_js_error(&e)),
        ),
    }
}

async fn open_camera(page: Rc<Page>) {
    page.element("camera-retry").set_hidden(true);
    // The status line is styled as an error only when it reports one.
    page.element("camera-status").set_class_name("");
    page.show("camera-status", "Asking for the camera…");
    let video: HtmlVideoElement = page.element("camera").unchecked_into();
    match start_stream(&video).await {
        Ok(()) => {
            page.show("camera-status", "");
            page.element("camera-panel")
                .set_attribute("data-camera", "live")
                .ok();
        }
        Err(error) => {
            page.element("camera-panel")
                .set_attribute("data-camera", "error")
                .ok();
            page.element("camera-status").set_class_name("error");
            page.show("camera-status", &error.to_string());
            page.element("camera-retry")
                .set_hidden(!error.retry_may_help());
        }
    }
}

async fn start_stream(video: &HtmlVideoElement) -> Result<(), CameraError> {
    let navigator = web_sys::window()
        .ok_or(CameraError::Unsupported)?
        .navigator();
    // `mediaDevices` is undefined on insecure origins; the binding would not notice.
    let has_media_devices = js_sys::Reflect::get(&navigator, &"mediaDevices".into())
        .map(|v| !v.is_undefined())
        .unwrap_or(false);
    if !has_media_devices {
        return Err(
            if web_sys::window().is_some_and(|w| !w.is_secure_context()) {
                CameraError::Insecure
            } else {
                CameraError::Unsupported
            },
        );
    }
    let devices = navigator
        .media_devices()
        .map_err(|_| CameraError::Unsupported)?;
    let track = MediaTrackConstraints::new();
    track.set_facing_mode_str("user");
    track.set_width_i32(640);
    track.set_height_i32(480);
    let constraints = MediaStreamConstraints::new();
    constraints.set_video_media_track_constraints(&track);
    constraints.set_audio_bool(false);
    let promise = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(camera_error)?;
    let stream: MediaStream = JsFuture::from(promise)
        .await
        .map_err(camera_error)?
        .unchecked_into();
    video.set_src_object(Some(&stream));
    if let Ok(playing) = video.play() {
        JsFuture::from(playing).await.map_err(camera_error)?;
    }
    Ok(())
}

fn camera_error(error: JsValue) -> CameraError {
    let field = |name: &str| {
        js_sys::Reflect::get(&error, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    CameraError::from_dom_exception(&field("name"), &field("message"))
}

fn describe_js_error(error: &JsValue) -> String {
    error
        .as_string()
        .or_else(|| {
            js_sys::Reflect::get(error, &"message".into())
                .ok()
                .and_then(|v| v.as_string())
        })
        .unwrap_or_else(|| format!("{error:?}"))
}
