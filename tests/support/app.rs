//! The app's page driven like a person does: open it, capture bursts, train, verify. Shared by
//! the end-to-end flows (`tests/e2e_app.rs`) and the load figures of `cargo xtask bench`
//! (`tests/bench_load.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{ChromeDriver, Session, StaticServer, dist_dir, shared_dir};

pub const STARTUP: Duration = Duration::from_secs(180);
pub const TRAINING: Duration = Duration::from_secs(900);

pub fn browser_args(clip: &str, webgpu: bool) -> Vec<String> {
    let clip = shared_dir().join("camera").join(clip);
    assert!(clip.is_file(), "missing camera clip {}", clip.display());
    let mut args = vec![
        "--use-fake-ui-for-media-stream".into(),
        "--use-fake-device-for-media-stream".into(),
        format!("--use-file-for-fake-video-capture={}", clip.display()),
    ];
    if webgpu {
        args.push("--enable-unsafe-webgpu".into());
    }
    args
}

pub fn temp_profile(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "faceverify-e2e-{name}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The built app served on this machine, a ChromeDriver, and a browser profile that outlives
/// each browser (a restart finds the stored photos and model again).
pub struct ServedApp {
    pub server: StaticServer,
    /// The page, with its query (e.g. `?backend=cpu`).
    pub url: String,
    pub driver: ChromeDriver,
    pub profile: PathBuf,
}

impl ServedApp {
    /// Serves the built app as a host should; `page` is the path and query to open, `profile`
    /// names the fresh browser profile.
    pub fn start(page: &str, profile: &str) -> Self {
        Self::start_on(StaticServer::start(dist_dir()), page, profile)
    }

    pub fn start_on(server: StaticServer, page: &str, profile: &str) -> Self {
        let url = server.url(page);
        ServedApp {
            server,
            url,
            driver: ChromeDriver::start(),
            profile: temp_profile(profile),
        }
    }

    /// A browser on the profile, its fake camera playing `clip`, with the app open and ready on
    /// WebGPU or the CPU backend.
    pub fn open(&self, clip: &str, webgpu: bool) -> Session {
        let session = self
            .driver
            .session_with_profile(&browser_args(clip, webgpu), &self.profile);
        open_app(&session, &self.url, if webgpu { "WebGPU" } else { "CPU" });
        session
    }

    /// `open`, then "Require liveness" turned off: identity only (see `identity_only`).
    pub fn open_identity_only(&self, clip: &str, webgpu: bool) -> Session {
        let session = self.open(clip, webgpu);
        identity_only(&session);
        session
    }
}

/// Turns "Require liveness" off (identity only, as the tutorial verified): the fake cameras'
/// slideshows of photos are not live, and these tests verify identities on them.
pub fn identity_only(session: &Session) {
    session.wait_for(
        "document.getElementById('counts').textContent !== ''",
        "the stored state",
        STARTUP,
    );
    if session.eval("return document.getElementById('liveness-required').checked;") == true {
        session.click("liveness-required");
    }
    // Settings are written after a short pause; the next verdict must not race it.
    std::thread::sleep(std::time::Duration::from_millis(600));
}

/// Opens the app and waits until the worker is ready and the camera is live.
pub fn open_app(session: &Session, url: &str, backend: &str) {
    session.goto(url);
    let chosen = session.wait_for(
        "document.getElementById('backend-status').dataset.backend",
        "the worker to choose its backend",
        STARTUP,
    );
    assert_eq!(chosen, backend, "{}", session.text("backend-status"));
    session.wait_for(
        "document.getElementById('camera-panel').dataset.camera === 'live'",
        "the camera to go live",
        STARTUP,
    );
}

/// The page's count of `role` photos, as a JavaScript expression.
fn count_expression(role: &str) -> String {
    format!("Number(document.getElementById('counts').dataset.{role})")
}

pub fn count(session: &Session, role: &str) -> u64 {
    session
        .eval(&format!("return {};", count_expression(role)))
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the page's count of `role` photos meets `condition`, a JavaScript comparison
/// such as `>= 6` (`what`, in a timeout).
pub fn until_count(session: &Session, role: &str, condition: &str, what: &str) {
    session.wait_for(
        &format!("{} {condition}", count_expression(role)),
        what,
        STARTUP,
    );
}

/// A burst of `photos` captures over `seconds` seconds as `role`, through the page's controls.
pub fn burst(session: &Session, role: &str, photos: u32, seconds: u32) -> u64 {
    let before = count(session, role);
    session.eval(&format!(
        "document.getElementById('burst-count').value = {photos};
         document.getElementById('burst-seconds').value = {seconds};
         document.getElementById('burst-role').value = '{role}';"
    ));
    press(session, "burst-start", "the burst button");
    session.wait_for(
        "document.getElementById('burst-stop').hidden === false",
        "the burst to start",
        STARTUP,
    );
    session.wait_for(
        "document.getElementById('burst-stop').hidden",
        "the burst to finish",
        STARTUP,
    );
    count(session, role) - before
}

pub fn train(session: &Session, mode: &str, epochs: Option<u32>) -> String {
    let epochs = epochs.map_or("''".to_string(), |e| e.to_string());
    session.eval(&format!(
        "const mode = document.getElementById('train-mode');
         mode.value = '{mode}'; mode.dispatchEvent(new Event('change'));
         document.getElementById('train-epochs').value = {epochs};"
    ));
    press(session, "train-start", "the train button");
    until_trained(session, "training")
}

/// Waits until the button `id` (`what`, in a timeout) is enabled, then clicks it.
pub fn press(session: &Session, id: &str, what: &str) {
    session.wait_for(
        &format!("!document.getElementById('{id}').disabled"),
        what,
        STARTUP,
    );
    session.click(id);
}

/// Waits until the training run just asked for (`run`, in a timeout: "training", "the resumed
/// run") starts and finishes; returns the training status it ends with.
pub fn until_trained(session: &Session, run: &str) -> String {
    session.wait_for(
        "document.getElementById('train-cancel').disabled === false",
        &format!("{run} to start"),
        STARTUP,
    );
    session.wait_for(
        "document.getElementById('train-cancel').disabled",
        &format!("{run} to finish"),
        TRAINING,
    );
    session.text("train-status")
}

/// Marks the verdict pending, presses `button` (`what`, in a timeout) and waits for the next
/// verdict (`answer`, in a timeout): its `data-verdict`.
fn verdict_after(session: &Session, button: &str, what: &str, answer: &str) -> Value {
    session.eval("document.getElementById('verdict').dataset.verdict = 'pending';");
    press(session, button, what);
    session.wait_for(
        "(v => v !== 'pending' && v)(document.getElementById('verdict').dataset.verdict)",
        answer,
        STARTUP,
    )
}

/// Clicks Verify and returns the verdict (`verified`, `not-verified`, `no-face`, `error`).
pub fn verify(session: &Session) -> (String, String) {
    let verdict = verdict_after(session, "verify-once", "the verify button", "a verdict");
    (
        verdict.as_str().unwrap().to_string(),
        format!(
            "{} {}",
            session.text("verdict"),
            session.text("verdict-detail")
        ),
    )
}

/// The gallery's thumbnails as `(shown, broken)`: a thumbnail whose bytes do not decode shows
/// its alt text instead of the face.
pub fn thumbnails(session: &Session) -> (u64, u64) {
    let counts = session.eval_async(
        "const images = [...document.querySelectorAll('.gallery img')];
         await Promise.all(images.map((img) => img.decode().catch(() => {})));
         return [images.length, images.filter((img) => img.naturalWidth === 0).length];",
    );
    (counts[0].as_u64().unwrap(), counts[1].as_u64().unwrap())
}

/// Clicks "Export all data…" and returns the archive the page offers for download.
pub fn export_archive(session: &Session) -> Vec<u8> {
    let base64 = session.eval_async(
        "const offered = [];
         const create = URL.createObjectURL;
         URL.createObjectURL = (blob) => { offered.push(blob); return create.call(URL, blob); };
         document.getElementById('export').click();
         const started = Date.now();
         let archive;
         while (!(archive = offered.find((b) => b.type === 'application/x-tar'))) {
           if (Date.now() - started > 60000) throw new Error(document.getElementById('data-status').textContent);
           await new Promise((resolve) => setTimeout(resolve, 100));
         }
         URL.createObjectURL = create;
         const reader = new FileReader();
         await new Promise((resolve) => { reader.onload = resolve; reader.readAsDataURL(archive); });
         return reader.result.slice(reader.result.indexOf(',') + 1);",
    );
    let Some(text) = base64.as_str() else {
        panic!("no archive was offered: {base64}");
    };
    super::base64_decode::decode(text).expect("the archive arrives as base64")
}

/// Clicks "Who is this?" and returns the answer (`identified`, `nobody`, `no-face`, `error`)
/// and the name identified, if any.
pub fn identify(session: &Session) -> (String, String) {
    let answer = verdict_after(session, "identify-once", "the identify button", "an answer");
    let name = session.eval("return document.getElementById('verdict').dataset.identified || '';");
    (
        answer.as_str().unwrap_or_default().to_string(),
        name.as_str().unwrap_or_default().to_string(),
    )
}
