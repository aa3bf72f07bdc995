// The page: camera, drawing and controls. It never runs a network: every model, photo and
// database operation goes to the worker through the library's client (`FaceVerifier`,
// verifier.js), as it would for any other app. Messages are the serde enums of `src/protocol.rs`.

const $ = (id) => document.getElementById(id);
const ROLES = ['anchor', 'positive', 'verification', 'negative'];
const ROLE_NAMES = { anchor: 'anchor', positive: 'positive', verification: 'verification photo', negative: 'negative' };
import { chooseBuild } from './builds.js';
import { FaceVerifier, frameOf } from './verifier.js';

const KIND_LABELS = { Wgpu: 'WebGPU', Cpu: 'CPU' };
/// How often the live view asks for faces, at most (ms).
const LIVE_INTERVAL_MS = 150;
/// Pause between continuous verifications (ms).
const CONTINUOUS_INTERVAL_MS = 300;

const app = {
  verifier: null, // the library's client of the worker
  trainAbort: null, // aborts the running training
  ready: false,
  state: null, // ProfileState from the worker
  profile: localStorage.getItem('faceverify.profile'),
  build: null, // 'threads' or 'single': which wasm build the worker runs (builds.js)
  preference: null, // the backend preference the worker was started for
  training: false,
  burst: null,
  continuous: false,
  cameraLive: false,
  thumbnails: [],
  lastCheck: null,
};

// ---------------------------------------------------------------------------------------------
// The worker, through the library's client

function call(request, transfer = []) {
  return app.verifier.request(request, transfer);
}

/// The backend preference at start-up: the URL's, else the one saved last time (mirrored from
/// the settings, which live in the worker's database), else automatic.
function startupPreference() {
  const fromUrl = new URLSearchParams(location.search).get('backend');
  if (['auto', 'webgpu', 'cpu'].includes(fromUrl)) return fromUrl;
  return localStorage.getItem('faceverify.backend') || 'auto';
}

function startWorker(preference) {
  app.preference = preference;
  const verifier = new FaceVerifier({ backend: preference });
  app.verifier = verifier;
  verifier.addEventListener('progress', ({ detail }) => onProgress(detail));
  verifier.addEventListener('failed', ({ detail }) => show('worker-status', detail));
  verifier.loaded.then(() => {
    app.build = verifier.build;
    mark('worker-loaded');
    return onLoaded();
  }, () => {});
}

// User Timing marks of the start-up (devtools' Performance panel shows them, and `cargo xtask
// bench` reads them): each is set once per page load, measured from navigation start.
function mark(name) {
  const full = `faceverify:${name}`;
  if (!performance.getEntriesByName(full, 'mark').length) performance.mark(full);
}

const downloads = {};

function onProgress(data) {
  if (data.type === 'ModelProgress') {
    // The worker downloads the networks at the same time: one bar for all of them.
    downloads[data.name] = data;
    const files = Object.values(downloads);
    const loaded = files.reduce((sum, f) => sum + f.loaded, 0);
    const total = files.every((f) => f.total > 0) ? files.reduce((sum, f) => sum + f.total, 0) : 0;
    const done = files.every((f) => f.total > 0 && f.loaded >= f.total);
    const names = files.filter((f) => !(f.total > 0 && f.loaded >= f.total)).map((f) => f.name).join(' and ');
    const mb = (b) => (b / 1e6).toFixed(1);
    show('model-status', done ? '' : total > 0
      ? `Downloading the ${names}: ${mb(loaded)} of ${mb(total)} MB…`
      : `Downloading the ${names}: ${mb(loaded)} MB…`);
    const bar = $('model-progress');
    bar.hidden = done;
    bar.max = total || 1;
    bar.value = total ? loaded : 0;
  } else if (data.type === 'ImportProgress') {
    const bar = $('import-progress');
    bar.hidden = false;
    bar.max = data.total || 1;
    bar.value = data.done;
    $('import-status').textContent = `Analysing photo ${data.done} of ${data.total}…`;
  } else if (data.type === 'Training') {
    onTrainingEvent(data.event);
  }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function show(id, text) {
  const element = $(id);
  element.textContent = text;
  element.hidden = !text;
}

function announce(text) {
  // Re-set so that the same sentence twice is announced twice.
  const region = $('announcer');
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 20);
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function pct(value) {
  return value == null || Number.isNaN(value) ? '–' : `${(100 * value).toFixed(1)}%`;
}

function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}

function setEnabled(ids, enabled) {
  for (const id of ids) $(id).disabled = !enabled;
}

const HINTS = {
  no_face: () => 'No face found: look at the camera.',
  several_faces: (h) => `${h.count} faces in view: only the largest is used. Be alone in the picture.`,
  too_small: () => 'Face too small: come closer to the camera.',
  too_dark: () => 'Too dark: turn towards a light.',
  too_blurred: () => 'Too blurred: hold still.',
};

function hintText(hints) {
  if (!hints.length) return 'Face found: ready to capture.';
  return hints.map((h) => (HINTS[h.hint] ? HINTS[h.hint](h) : h.hint)).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Start-up

async function onLoaded() {
  show('worker-status', '');
  try {
    await loadState(app.profile);
  } catch (error) {
    show('worker-status', `Your saved data could not be opened: ${errorText(error)}`);
  }
  const fromUrl = new URLSearchParams(location.search).get('backend');
  const preference = ['auto', 'webgpu', 'cpu'].includes(fromUrl) ? fromUrl : (app.state?.settings.backend || 'auto');
  await useBackend(preference);
}

/// Chooses the backend, first restarting the worker when the preference needs the other build
/// (never for the preference the worker was started with, whichever build that gave).
async function useBackend(preference) {
  localStorage.setItem('faceverify.backend', preference);
  if (preference === app.preference || await chooseBuild(preference) === app.build) {
    return initBackend(preference);
  }
  await flushSettings();
  app.ready = false;
  app.verifier.terminate('The worker restarted.');
  startWorker(preference);
}

async function initBackend(preference) {
  show('backend-status', 'Choosing a backend: testing WebGPU…');
  app.ready = false;
  try {
    const { backend, description } = await call({ type: 'Init', preference });
    mark('backend-ready');
    const status = $('backend-status');
    status.dataset.backend = KIND_LABELS[backend.kind];
    status.dataset.threads = String(backend.threads);
    status.textContent = description;
    show('webgpu-notice', backend.kind === 'Cpu' && backend.reason === 'no_adapter'
      ? 'WebGPU is missing in this browser: everything works, but training is slower.' : '');
    app.ready = true;
    setEnabled(['check-training', 'photo-input', 'negative-files', 'negative-folder', 'import-archive',
      'export', 'delete-all', 'train-start', 'profile-select', 'profile-new', 'profile-rename', 'profile-delete'], true);
    updateCaptureButtons();
    updateVerifyButtons();
    scheduleLiveCheck(0);
  } catch (error) {
    show('worker-status', errorText(error));
  }
}

// ---------------------------------------------------------------------------------------------
// State: profiles, photos, model, settings

async function loadState(profile) {
  const state = await app.verifier.state(profile ?? null);
  renderState(state);
}

function renderState(state) {
  app.state = state;
  app.profile = state.profile.id;
  localStorage.setItem('faceverify.profile', app.profile);
  localStorage.setItem('faceverify.backend', state.settings.backend);
  const select = $('profile-select');
  select.replaceChildren(...state.profiles.map((p) => new Option(p.name, p.id, false, p.id === app.profile)));
  $('backend-select').value = state.settings.backend;
  $('train-mode').value = state.settings.mode;
  setSlider('detection', state.settings.detection_threshold);
  setSlider('verification', state.settings.verification_threshold);
  renderGalleries(state.images);
  renderModel(state);
  measureUsage();
  updateVerifyButtons();
}

// Storage usage reads every stored payload, so it is asked for apart from the state: half a
// second after the backend is ready (the first camera frame goes first) and after each change.
let usageTimer = null;

function measureUsage() {
  clearTimeout(usageTimer);
  usageTimer = setTimeout(async () => {
    if (!app.ready) {
      measureUsage();
      return;
    }
    try {
      const { usage } = await call({ type: 'MeasureUsage' });
      renderUsage(usage);
    } catch (error) {
      $('storage-usage').textContent = `Storage use could not be measured: ${errorText(error)}`;
    }
  }, 500);
}

function setSlider(which, value) {
  $(`${which}-threshold`).value = value;
  $(`${which}-value`).textContent = Number(value).toFixed(2);
}

function renderGalleries(images) {
  for (const url of app.thumbnails) URL.revokeObjectURL(url);
  app.thumbnails = [];
  const counts = Object.fromEntries(ROLES.map((r) => [r, 0]));
  for (const image of images) counts[image.role] += 1;
  const countsLine = $('counts');
  for (const role of ROLES) countsLine.dataset[role] = counts[role];
  countsLine.textContent = `${counts.anchor} anchors, ${counts.positive} positives, ${counts.verification} verification photos, ${counts.negative} negatives.`;
  const sources = images.filter((i) => i.role === 'negative');
  const fromCamera = sources.filter((i) => i.source === 'camera').length;
  $('negative-sources').textContent = `${sources.length} negatives stored: ${sources.length - fromCamera} imported, ${fromCamera} from the camera.`;

  const galleries = $('galleries');
  galleries.replaceChildren();
  for (const role of ROLES) {
    const ofRole = images.filter((i) => i.role === role);
    if (!ofRole.length) continue;
    const details = document.createElement('details');
    details.open = role !== 'negative';
    const summary = document.createElement('summary');
    summary.textContent = `${ROLE_NAMES[role]}s (${ofRole.length})`;
    details.append(summary);
    const list = document.createElement('ul');
    list.className = 'gallery';
    // Negatives can be hundreds: show the newest 48.
    for (const [index, image] of ofRole.slice(-48).entries()) list.append(thumbnail(image, index + 1));
    details.append(list);
    galleries.append(details);
  }
}

function thumbnail(image, number) {
  const item = document.createElement('li');
  const img = document.createElement('img');
  const url = URL.createObjectURL(new Blob([image.crop], { type: 'image/jpeg' }));
  app.thumbnails.push(url);
  img.src = url;
  img.width = 75;
  img.height = 75;
  img.alt = `${ROLE_NAMES[image.role]} ${number}, ${new Date(image.created).toLocaleString()}`;
  const role = document.createElement('select');
  role.setAttribute('aria-label', `Use of ${ROLE_NAMES[image.role]} ${number}`);
  for (const r of ROLES) role.append(new Option(ROLE_NAMES[r], r, false, r === image.role));
  role.onchange = () => mutate({ type: 'SetPhotoRole', profile: app.profile, id: image.id, role: role.value },
    `Moved to ${ROLE_NAMES[role.value]}s.`);
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Delete';
  remove.setAttribute('aria-label', `Delete ${ROLE_NAMES[image.role]} ${number}`);
  remove.onclick = () => mutate({ type: 'DeletePhoto', profile: app.profile, id: image.id }, 'Photo deleted.');
  item.append(img, role, remove);
  return item;
}

async function mutate(request, done) {
  try {
    const { state } = await call(request);
    renderState(state);
    announce(done);
  } catch (error) {
    show('worker-status', errorText(error));
  }
}

function renderModel(state) {
  const model = state.model;
  const checkpoint = state.checkpoint;
  const resume = $('train-resume');
  resume.hidden = !checkpoint || app.training;
  if (checkpoint) {
    resume.textContent = `Resume (epoch ${checkpoint.epoch + 1}, batch ${checkpoint.position + 1})`;
  }
  const run = state.latest_run;
  drawTrainingChart(run ? run.epochs : []);
  if (!app.training) {
    $('train-status').textContent = model
      ? `Trained ${new Date(model.created).toLocaleString()} (${model.tower_kind}). Test precision ${pct(model.metrics?.test?.precision)}, recall ${pct(model.metrics?.test?.recall)}.`
      : checkpoint ? 'A training run was interrupted: resume it or start again.' : 'Not trained yet.';
  }
  const policy = model?.metrics?.policy;
  const marks = (which, value) => {
    const list = $(`${which}-marks`);
    list.replaceChildren();
    if (value != null) list.append(new Option('calibrated', value));
  };
  marks('detection', policy?.detection);
  marks('verification', policy?.verification);
  $('calibrated').textContent = policy
    ? `Calibrated for this model: detection ${policy.detection.toFixed(2)}, verification ${policy.verification.toFixed(2)} (marked on the sliders).`
    : 'Train a model to get calibrated thresholds.';
}

function renderUsage(usage) {
  const total = usage.images + usage.models + usage.checkpoints + usage.other;
  const line = `Stored here: ${formatBytes(total)} (photos ${formatBytes(usage.images)}, models ${formatBytes(usage.models)}, checkpoints ${formatBytes(usage.checkpoints)}).`;
  $('storage-usage').textContent = line;
  if (navigator.storage?.estimate) {
    navigator.storage.estimate().then(({ usage: used, quota }) => {
      $('storage-usage').textContent = `${line} The browser counts ${formatBytes(used)} used of ${formatBytes(quota)} allowed for this site.`;
    }).catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Camera and live view

const CAMERA_ERRORS = {
  NotAllowedError: 'Camera access was denied. Allow the camera for this site (the camera icon in the address bar, or the browser\'s site settings), then press Retry. You can still import photos meanwhile.',
  NotFoundError: 'No camera was found. Connect a camera, then press Retry. You can still import photos.',
  NotReadableError: 'The camera is in use by another application or tab, or the system blocked it. Close the other application, then press Retry.',
  OverconstrainedError: 'The camera cannot deliver the requested picture size. Press Retry to try the default size.',
  SecurityError: 'This page cannot use the camera: it must be opened over https or from localhost, and camera access must not be disabled by a policy.',
};

async function openCamera() {
  const panel = $('camera-panel');
  const status = $('camera-status');
  $('camera-retry').hidden = true;
  status.className = '';
  show('camera-status', 'Asking for the camera…');
  if (!navigator.mediaDevices?.getUserMedia) {
    panel.dataset.camera = 'error';
    status.className = 'error';
    show('camera-status', window.isSecureContext ? 'This browser has no camera support. Use a current browser.' : CAMERA_ERRORS.SecurityError);
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { facingMode: 'user', width: 640, height: 480 }, audio: false,
    });
    const video = $('camera');
    video.srcObject = stream;
    await video.play();
    show('camera-status', '');
    panel.dataset.camera = 'live';
    mark('camera-live');
    app.cameraLive = true;
    updateCaptureButtons();
    updateVerifyButtons();
    scheduleLiveCheck(0);
  } catch (error) {
    panel.dataset.camera = 'error';
    status.className = 'error';
    const name = error?.name || '';
    show('camera-status', CAMERA_ERRORS[name] || `The camera could not be started (${name}: ${error?.message}). Press Retry.`);
    $('camera-retry').hidden = name === 'SecurityError';
  }
}

/// The current camera picture as an ImageBitmap (transferred to the worker, which reads its
/// pixels: the main thread never copies a frame), or null when there is none yet.
async function grabFrame() {
  const video = $('camera');
  if (!app.cameraLive || video.readyState < 2 || !video.videoWidth) return null;
  return frameOf(video);
}

let liveTimer = null;
let liveBusy = false;

function scheduleLiveCheck(delay = LIVE_INTERVAL_MS) {
  clearTimeout(liveTimer);
  liveTimer = setTimeout(liveCheck, delay);
}

async function liveCheck() {
  // Training and continuous verification keep the worker busy; the verdicts draw boxes then.
  if (!app.ready || liveBusy || app.training || app.continuous || document.hidden) {
    if (app.ready) scheduleLiveCheck(500);
    return;
  }
  liveBusy = true;
  const frame = await grabFrame().catch(() => null);
  if (!frame) { liveBusy = false; scheduleLiveCheck(300); return; }
  try {
    const { check } = await call({ type: 'CheckFrame', frame }, [frame.bitmap]);
    // The first answered frame means the backend, the camera and both networks are up.
    mark('ready');
    drawCheck(check);
  } catch (error) {
    $('frame-hint').textContent = errorText(error);
  } finally {
    liveBusy = false;
    scheduleLiveCheck();
  }
}

function drawCheck(check) {
  app.lastCheck = check;
  const hint = $('frame-hint');
  const text = hintText(check.hints);
  if (hint.textContent !== text) hint.textContent = text;
  hint.dataset.hint = check.hints.length ? check.hints[0].hint : 'ok';
  hint.dataset.faces = check.faces.length;
  const video = $('camera');
  const canvas = $('overlay');
  const rect = video.getBoundingClientRect();
  const [w, h] = [Math.round(rect.width), Math.round(rect.height)];
  // Resizing a canvas reallocates it: only when the layout changed.
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const g = canvas.getContext('2d');
  g.clearRect(0, 0, canvas.width, canvas.height);
  // object-fit: contain
  const scale = Math.min(canvas.width / check.width, canvas.height / check.height);
  const dx = (canvas.width - check.width * scale) / 2;
  const dy = (canvas.height - check.height * scale) / 2;
  check.faces.forEach((face, i) => {
    const chosen = i === check.chosen;
    g.strokeStyle = chosen ? (check.hints.length ? '#f9ab00' : '#34a853') : '#9aa0a6';
    g.lineWidth = chosen ? 3 : 1.5;
    const b = face.bbox;
    g.strokeRect(dx + b.x_min * scale, dy + b.y_min * scale, b.width * scale, b.height * scale);
    g.fillStyle = g.strokeStyle;
    for (const p of face.keypoints) g.fillRect(dx + p.x * scale - 2, dy + p.y * scale - 2, 4, 4);
  });
}

// ---------------------------------------------------------------------------------------------
// Enrol

function updateCaptureButtons() {
  const enabled = app.ready && app.cameraLive;
  setEnabled(['capture-anchor', 'capture-positive', 'capture-verification', 'capture-negative', 'burst-start'], enabled);
}

async function capture(role) {
  const frame = await grabFrame().catch(() => null);
  if (!frame) { $('capture-status').textContent = 'The camera is not ready.'; return false; }
  try {
    const outcome = await app.verifier.enrol(app.profile, frame.bitmap, { role, checks: !$('capture-anyway').checked });
    if (outcome.outcome === 'no_face') {
      $('capture-status').textContent = `No face found: nothing stored. ${HINTS.no_face()}`;
      return false;
    }
    if (outcome.outcome === 'refused') {
      $('capture-status').textContent = `Not stored, it would make a poor reference photo. ${hintText(outcome.hints)}`;
      return false;
    }
    app.state.images.push(outcome.image);
    renderGalleries(app.state.images);
    const count = app.state.images.filter((i) => i.role === role).length;
    const advice = outcome.hints.length ? ` ${hintText(outcome.hints)}` : '';
    $('capture-status').textContent = `Stored ${ROLE_NAMES[role]} ${count}.${advice}`;
    announce(`${ROLE_NAMES[role]} ${count} stored`);
    updateVerifyButtons();
    return true;
  } catch (error) {
    $('capture-status').textContent = errorText(error);
    return false;
  }
}

async function burst() {
  const count = Math.max(1, Math.min(100, Number($('burst-count').value) || 30));
  const seconds = Math.max(1, Math.min(120, Number($('burst-seconds').value) || 10));
  const role = $('burst-role').value;
  const token = {};
  app.burst = token;
  $('burst-start').hidden = true;
  $('burst-stop').hidden = false;
  const countdown = $('countdown');
  countdown.hidden = false;
  for (let n = 3; n > 0 && app.burst === token; n -= 1) {
    countdown.textContent = n;
    announce(`Burst starts in ${n}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  countdown.hidden = true;
  let stored = 0;
  const started = performance.now();
  for (let i = 0; i < count && app.burst === token; i += 1) {
    const due = started + (i * seconds * 1000) / count;
    await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
    if (app.burst !== token) break;
    if (await capture(role)) stored += 1;
    $('capture-status').textContent = `Burst: ${stored} of ${count} stored (${i + 1} taken).`;
  }
  app.burst = null;
  $('burst-start').hidden = false;
  $('burst-stop').hidden = true;
  announce(`Burst finished: ${stored} photos stored`);
}

// ---------------------------------------------------------------------------------------------
// Negatives and imports

async function importPhotos(fileList, role) {
  const files = [...fileList];
  if (!files.length) return;
  const bar = $('import-progress');
  bar.hidden = false;
  bar.value = 0;
  $('import-status').textContent = `Reading ${files.length} file(s)…`;
  try {
    const named = await Promise.all(files.map(async (file) => ({
      name: file.webkitRelativePath || file.name,
      bytes: new Uint8Array(await file.arrayBuffer()),
    })));
    const { report } = await call({ type: 'ImportPhotos', profile: app.profile, role, files: named },
      named.map((f) => f.bytes.buffer));
    const skipped = report.skipped.length
      ? ` Skipped ${report.skipped.length}: ${report.skipped.slice(0, 5).map((s) => `${s.name} (${s.reason})`).join('; ')}${report.skipped.length > 5 ? '…' : ''}.`
      : '';
    const sampled = report.found_in_archives ? ` The archives held ${report.found_in_archives} photos; a sample was taken.` : '';
    $('import-status').textContent = `Added ${report.added.length} ${ROLE_NAMES[role]}s.${sampled}${skipped}`;
    announce(`${report.added.length} photos imported`);
    await loadState(app.profile);
  } catch (error) {
    $('import-status').textContent = `Nothing was imported: ${errorText(error)}`;
  } finally {
    bar.hidden = true;
  }
}

// ---------------------------------------------------------------------------------------------
// Training

/// The running run's per-epoch rows, for the live chart.
const epochRows = [];

async function train(resume) {
  const epochs = Number($('train-epochs').value) || null;
  const batch = Number($('train-batch').value) || null;
  // A resumed run continues in the mode it was started in.
  if (resume && app.state?.checkpoint?.mode) $('train-mode').value = app.state.checkpoint.mode;
  const mode = $('train-mode').value;
  app.training = true;
  app.trainAbort = new AbortController();
  epochRows.length = 0;
  if (resume && app.state?.latest_run) epochRows.push(...app.state.latest_run.epochs);
  setEnabled(['train-start', 'train-resume'], false);
  $('train-cancel').disabled = false;
  $('train-resume').hidden = true;
  $('train-report').hidden = true;
  $('train-progress').title = '';
  $('train-status').textContent = mode === 'fine_tune'
    ? 'Computing face descriptors of the stored photos…' : 'Preparing the classic network…';
  try {
    const outcome = await app.verifier.train(app.profile, {
      mode, epochs, batchSize: batch, resume, signal: app.trainAbort.signal,
    });
    if (outcome.stop === 'cancelled') {
      $('train-status').textContent = 'Training cancelled. Its last checkpoint is kept: press Resume to continue.';
      announce('Training cancelled');
    } else {
      const report = outcome.report;
      const resumed = outcome.resumed_from ? ` Resumed from epoch ${outcome.resumed_from[0] + 1}.` : '';
      $('train-status').textContent = `Done: ${report.history.length} epochs${report.stop?.early_stopped ? ' (stopped early: the test loss stopped improving)' : ''}. Ready to verify.${resumed}`;
      $('train-progress').value = $('train-progress').max;
      renderReport(report, outcome.counts, outcome.default_model);
      announce(`Training finished. Test precision ${pct(report.evaluation.precision)}, recall ${pct(report.evaluation.recall)}.`);
    }
  } catch (error) {
    $('train-status').textContent = `Training failed: ${errorText(error)}`;
  } finally {
    app.training = false;
    const outcomeText = $('train-status').textContent;
    await loadState(app.profile).catch(() => {});
    // The stored model's summary must not replace the outcome the person has just been shown.
    $('train-status').textContent = outcomeText;
    $('train-cancel').disabled = true;
    $('train-start').disabled = !app.ready;
    scheduleLiveCheck(0);
  }
}

function onTrainingEvent(event) {
  const bar = $('train-progress');
  if (event.event === 'step') {
    const total = event.epochs * event.steps_per_epoch;
    bar.max = total;
    bar.value = event.epoch * event.steps_per_epoch + event.step;
    const rate = event.examples_per_second ? `, ${event.examples_per_second.toFixed(0)} pairs/s` : '';
    const eta = event.eta_seconds != null ? `, about ${Math.ceil(event.eta_seconds)} s left` : '';
    $('train-status').textContent = `Epoch ${event.epoch + 1} of ${event.epochs}, step ${event.step} of ${event.steps_per_epoch}: loss ${event.epoch_loss.toFixed(4)}, precision ${pct(event.precision)}, recall ${pct(event.recall)}${rate}${eta}.`;
  } else if (event.event === 'epoch') {
    epochRows.push(event);
    drawTrainingChart(epochRows);
  } else if (event.event === 'checkpoint') {
    $('train-progress').title = `Checkpoint saved (${formatBytes(event.bytes)})`;
  }
}

function chartFrame(canvas) {
  const g = canvas.getContext('2d');
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.strokeStyle = dark ? '#5f6368' : '#dadce0';
  g.fillStyle = dark ? '#e8eaed' : '#202124';
  g.font = '12px system-ui, sans-serif';
  return g;
}

function drawTrainingChart(rows) {
  const canvas = $('train-chart');
  const g = chartFrame(canvas);
  const pad = 30;
  const w = canvas.width - 2 * pad;
  const h = canvas.height - 2 * pad;
  g.strokeRect(pad, pad, w, h);
  if (!rows.length) { g.fillText('No training yet.', pad + 8, pad + 18); return; }
  const maxLoss = Math.max(0.01, ...rows.map((r) => Math.max(r.train_loss, r.test_loss ?? 0)));
  const x = (i) => pad + (rows.length === 1 ? w / 2 : (i * w) / (rows.length - 1));
  const series = [
    ['#d93025', (r) => (r.test_loss ?? r.train_loss) / maxLoss],
    ['#1a73e8', (r) => r.precision],
    ['#188038', (r) => r.recall],
  ];
  for (const [colour, value] of series) {
    g.strokeStyle = colour;
    g.lineWidth = 2;
    g.beginPath();
    rows.forEach((r, i) => {
      const v = value(r);
      if (v == null) return;
      const y = pad + h - v * h;
      if (i === 0) g.moveTo(x(i), y); else g.lineTo(x(i), y);
      g.fillStyle = colour;
      g.fillRect(x(i) - 2, y - 2, 4, 4);
    });
    g.stroke();
  }
  g.fillStyle = g.strokeStyle = '#5f6368';
  g.fillText(`epoch 1…${rows.length}; loss scaled to ${maxLoss.toFixed(3)}`, pad, canvas.height - 8);
  canvas.setAttribute('aria-label', `Per epoch: ${rows.map((r) => `epoch ${r.epoch + 1} loss ${(r.test_loss ?? r.train_loss).toFixed(3)} precision ${pct(r.precision)} recall ${pct(r.recall)}`).join('; ')}`);
}

function renderReport(report, counts, defaultModel = null) {
  const ev = report.evaluation;
  const rows = [
    ['Pairs from', `${counts[0]} anchors, ${counts[1]} positives, ${counts[2]} negatives (with impostor samples)`],
    ['Test loss', report.test_loss.toFixed(4)],
    ['Precision', pct(ev.precision)],
    ['Recall', pct(ev.recall)],
    ['Accuracy', pct(ev.accuracy)],
    ['ROC AUC', ev.auc.toFixed(4)],
    ['Equal error rate', `${pct(ev.eer.rate)} at score ${ev.eer.threshold.toFixed(3)}`],
    [`FAR / FRR at ${ev.threshold}`, `${pct(ev.false_accept_rate)} / ${pct(ev.false_reject_rate)}`],
  ];
  // What training changed: the default model on the same test pairs, at its own threshold.
  if (defaultModel) {
    rows.push(['Default model on these pairs (FAR / FRR)',
      `${pct(defaultModel.false_accept_rate)} / ${pct(defaultModel.false_reject_rate)} at ${defaultModel.threshold.toFixed(2)}`]);
    if (report.policy) {
      const d = report.policy.detection;
      rows.push(['This model on them (FAR / FRR)',
        `${pct(d.false_accept_rate)} / ${pct(d.false_reject_rate)} at ${report.policy.policy.detection.toFixed(2)}`]);
    }
  }
  $('metrics-table').replaceChildren(...rows.map(([k, v]) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = k;
    const td = document.createElement('td');
    td.textContent = v;
    tr.append(th, td);
    return tr;
  }));
  const policy = report.policy;
  $('suggested').textContent = policy
    ? `Suggested thresholds (target FAR ${pct(policy.detection.target_false_accept_rate)}): detection ${policy.policy.detection.toFixed(2)} (FAR ${pct(policy.detection.false_accept_rate)}, FRR ${pct(policy.detection.false_reject_rate)}), verification ${policy.policy.verification.toFixed(2)} (FAR ${pct(policy.verification.false_accept_rate)}, FRR ${pct(policy.verification.false_reject_rate)}). They are now set on the sliders.`
    : `No calibration: ${report.calibration_problem || 'too little test data'}. The tutorial's 0.5 / 0.5 apply.`;
  drawRoc(ev.roc, policy ? policy.policy.detection : ev.threshold);
  $('train-report').hidden = false;
}

function drawRoc(roc, threshold) {
  const canvas = $('roc-chart');
  const g = chartFrame(canvas);
  const pad = 30;
  const s = canvas.width - 2 * pad;
  g.strokeRect(pad, pad, s, s);
  g.setLineDash([4, 4]);
  g.beginPath(); g.moveTo(pad, pad + s); g.lineTo(pad + s, pad); g.stroke();
  g.setLineDash([]);
  g.strokeStyle = '#1a73e8';
  g.lineWidth = 2;
  g.beginPath();
  roc.forEach((p, i) => {
    const x = pad + p.false_accept_rate * s;
    const y = pad + s - p.true_accept_rate * s;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  // The operating point: the first ROC point at or above the threshold.
  const point = roc.filter((p) => p.threshold >= threshold).at(-1) || roc[0];
  if (point) {
    g.fillStyle = '#d93025';
    g.beginPath();
    g.arc(pad + point.false_accept_rate * s, pad + s - point.true_accept_rate * s, 5, 0, 2 * Math.PI);
    g.fill();
  }
  g.fillStyle = '#5f6368';
  g.fillText('FAR →', pad + s - 40, pad + s + 18);
  g.fillText('TAR ↑', 2, pad - 10);
}

// ---------------------------------------------------------------------------------------------
// Verification

function updateVerifyButtons() {
  // One photo of the person is enough: without a model of their own the default model decides.
  const enabled = app.ready && app.cameraLive && Boolean(app.state?.images.some((i) => i.role !== 'negative'));
  setEnabled(['verify-once', 'verify-continuous', 'identify-once'], enabled);
  if (!enabled && app.continuous) { app.continuous = false; $('verify-continuous').checked = false; }
}

async function verifyOnce() {
  const frame = await grabFrame().catch(() => null);
  if (!frame) return;
  const verdict = $('verdict');
  const started = performance.now();
  try {
    const outcome = await app.verifier.verify(app.profile, frame.bitmap);
    if (!performance.getEntriesByName('faceverify:first-verification', 'measure').length) {
      performance.measure('faceverify:first-verification', { start: started });
    }
    drawCheck(outcome.check);
    if (outcome.outcome === 'no_face') {
      verdict.dataset.verdict = 'no-face';
      verdict.textContent = 'No face: nothing to verify.';
      $('verdict-detail').textContent = hintText(outcome.check.hints);
      return;
    }
    const r = outcome.result;
    const best = Math.max(...r.scores);
    verdict.dataset.verdict = r.verified ? 'verified' : 'not-verified';
    verdict.dataset.fraction = r.fraction;
    verdict.textContent = r.verified ? 'VERIFIED' : 'NOT VERIFIED';
    const model = outcome.model_id === 'default'
      ? ' Decided by the default model, with its own thresholds: train for a personal one.' : '';
    verdict.dataset.model = outcome.model_id;
    $('verdict-detail').textContent = `${r.detections} of ${r.reference_count} verification photos matched (${pct(r.fraction)}; needs more than ${pct(r.policy.verification)}). Detection threshold ${r.policy.detection.toFixed(2)}, best score ${best.toFixed(3)}.${model}`;
  } catch (error) {
    verdict.dataset.verdict = 'error';
    verdict.textContent = 'Could not verify.';
    $('verdict-detail').textContent = errorText(error);
  }
}

/// "Who is this?": the face against every person enrolled on this device.
async function identifyOnce() {
  const frame = await grabFrame().catch(() => null);
  if (!frame) return;
  const verdict = $('verdict');
  try {
    const outcome = await app.verifier.identify(frame.bitmap);
    drawCheck(outcome.check);
    if (outcome.outcome === 'no_face') {
      verdict.dataset.verdict = 'no-face';
      verdict.textContent = 'No face: nobody to identify.';
      $('verdict-detail').textContent = hintText(outcome.check.hints);
      return;
    }
    const [best] = outcome.candidates;
    const matched = (c) => `${c.result.detections} of ${c.result.reference_count} photos matched`;
    verdict.dataset.verdict = outcome.identified ? 'identified' : 'nobody';
    verdict.dataset.identified = outcome.identified?.name ?? '';
    verdict.textContent = outcome.identified ? `This is ${outcome.identified.name}.` : 'Nobody enrolled here.';
    $('verdict-detail').textContent = best
      ? `${outcome.identified ? '' : `Closest: ${best.profile.name}, `}${matched(best)} (of ${outcome.candidates.length} people enrolled).`
      : 'Nobody has photos to compare with yet.';
    announce(verdict.textContent);
  } catch (error) {
    verdict.dataset.verdict = 'error';
    verdict.textContent = 'Could not identify.';
    $('verdict-detail').textContent = errorText(error);
  }
}

async function continuousLoop() {
  while (app.continuous) {
    if (!app.training && !document.hidden) await verifyOnce();
    await new Promise((r) => setTimeout(r, CONTINUOUS_INTERVAL_MS));
  }
  scheduleLiveCheck(0);
}

let saveTimer = null;
let saveNow = null;

/// Writes pending settings at once instead of after the typing pause.
async function flushSettings() {
  clearTimeout(saveTimer);
  if (saveNow) await saveNow();
}

function saveSettings() {
  if (!app.state) return;
  const settings = {
    ...app.state.settings,
    detection_threshold: Number($('detection-threshold').value),
    verification_threshold: Number($('verification-threshold').value),
    backend: $('backend-select').value,
    mode: $('train-mode').value,
  };
  app.state.settings = settings;
  clearTimeout(saveTimer);
  saveNow = async () => {
    saveNow = null;
    try {
      const { state } = await call({ type: 'SaveSettings', profile: app.profile, settings });
      app.state.settings = state.settings;
    } catch (error) {
      show('worker-status', errorText(error));
    }
  };
  saveTimer = setTimeout(saveNow, 250);
}

// ---------------------------------------------------------------------------------------------
// Data: export, import, delete

async function exportData() {
  $('data-status').textContent = 'Preparing the export…';
  try {
    const bytes = await app.verifier.exportData();
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/x-tar' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `faceverify-${new Date().toISOString().slice(0, 10)}.tar`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('data-status').textContent = `Exported ${formatBytes(bytes.byteLength)}.`;
  } catch (error) {
    $('data-status').textContent = `Export failed: ${errorText(error)}`;
  }
}

async function importArchive(file) {
  if (!file) return;
  const mode = document.querySelector('input[name="import-mode"]:checked').value;
  if (mode === 'replace' && !confirm('Replace everything stored here with this export?')) return;
  $('data-status').textContent = 'Checking the archive…';
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const result = await app.verifier.importData(bytes, mode);
    $('data-status').textContent = `Imported ${result.profiles} people, ${result.images} photos and ${result.models} models (${mode}).`;
    await loadState(app.profile);
  } catch (error) {
    $('data-status').textContent = `Nothing was imported: ${errorText(error)}`;
  }
}

async function deleteAll() {
  if (!confirm('Delete every photo, model and setting stored by faceverify in this browser? This cannot be undone.')) return;
  $('data-status').textContent = 'Deleting…';
  try {
    await app.verifier.deleteAll();
    localStorage.removeItem('faceverify.profile');
    $('data-status').textContent = 'All your data was deleted.';
    announce('All data deleted');
    await loadState(null);
  } catch (error) {
    $('data-status').textContent = `Deleting failed: ${errorText(error)}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('camera-retry').onclick = openCamera;
  for (const id of ['capture-anchor', 'capture-positive', 'capture-verification', 'capture-negative']) {
    $(id).onclick = () => capture($(id).dataset.role);
  }
  $('burst-start').onclick = burst;
  $('burst-stop').onclick = () => { app.burst = null; };
  $('negative-files').onchange = (e) => { importPhotos(e.target.files, 'negative'); e.target.value = ''; };
  $('negative-folder').onchange = (e) => { importPhotos(e.target.files, 'negative'); e.target.value = ''; };
  $('train-start').onclick = () => train(false);
  $('train-resume').onclick = () => train(true);
  $('train-cancel').onclick = () => {
    app.trainAbort?.abort();
    $('train-status').textContent = 'Cancelling at the next step…';
  };
  $('verify-once').onclick = verifyOnce;
  $('identify-once').onclick = identifyOnce;
  $('verify-continuous').onchange = (e) => {
    app.continuous = e.target.checked;
    if (app.continuous) continuousLoop();
  };
  for (const which of ['detection', 'verification']) {
    $(`${which}-threshold`).oninput = (e) => {
      $(`${which}-value`).textContent = Number(e.target.value).toFixed(2);
      saveSettings();
    };
  }
  $('train-mode').onchange = saveSettings;
  $('backend-select').onchange = async () => {
    saveSettings();
    await useBackend($('backend-select').value);
  };
  $('persist').onclick = async () => {
    if (!navigator.storage?.persist) { $('data-status').textContent = 'This browser cannot keep data persistently.'; return; }
    const granted = await navigator.storage.persist();
    $('data-status').textContent = granted
      ? 'The browser will keep your data even when the disk fills up.'
      : 'The browser declined; your data stays, but it may be evicted if the disk fills up. Export it to be safe.';
  };
  $('export').onclick = exportData;
  $('import-archive').onchange = (e) => { importArchive(e.target.files[0]); e.target.value = ''; };
  $('delete-all').onclick = deleteAll;
  $('profile-select').onchange = (e) => loadState(e.target.value).catch((error) => show('worker-status', errorText(error)));
  $('profile-new').onclick = () => {
    const name = prompt('Name of the new person');
    if (name) mutate({ type: 'SaveProfile', profile: { id: `p-${Date.now().toString(36)}`, name } }, `${name} added.`);
  };
  $('profile-rename').onclick = () => {
    const name = prompt('New name', app.state?.profile.name || '');
    if (name) mutate({ type: 'SaveProfile', profile: { id: app.profile, name } }, 'Renamed.');
  };
  $('profile-delete').onclick = () => {
    if (confirm(`Delete ${app.state?.profile.name} with all their photos and models?`)) {
      mutate({ type: 'DeleteProfile', id: app.profile }, 'Person deleted.');
    }
  };
  $('check-training').onclick = async () => {
    show('check-result', 'Running the training self-check…');
    try {
      const { backend, check } = await call({ type: 'CheckTraining', steps: 8 });
      const passed = check.last_loss < check.first_loss && Number.isFinite(check.last_loss);
      const result = $('check-result');
      result.dataset.passed = String(passed);
      result.dataset.backend = KIND_LABELS[backend.kind];
      show('check-result', `Training self-check ${passed ? 'passed' : 'FAILED'} on ${KIND_LABELS[backend.kind]}: loss ${check.first_loss.toFixed(4)} → ${check.last_loss.toFixed(4)} in ${check.steps} Adam steps.`);
    } catch (error) {
      show('check-result', errorText(error));
    }
  };
  $('photo-input').onchange = async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    show('photo-result', 'Looking for a face…');
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const { backend, analysis } = await call({ type: 'AnalysePhoto', bytes }, [bytes.buffer]);
      const result = $('photo-result');
      result.dataset.faces = analysis.faces_seen;
      const on = KIND_LABELS[backend.kind];
      show('photo-result', !analysis.face
        ? 'No face found in this photo. Use a photo where the face is clearly visible.'
        : analysis.faces_seen === 1
          ? `1 face found (detector score ${analysis.face.score.toFixed(2)}); its descriptor was computed on ${on}.`
          : `${analysis.faces_seen} faces found; the largest (score ${analysis.face.score.toFixed(2)}) was used, on ${on}.`);
    } catch (error) {
      show('photo-result', `The photo could not be analysed: ${errorText(error)}`);
    }
  };
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target.closest && target.closest('input, select, textarea, button')) return;
    const action = { a: () => capture('anchor'), p: () => capture('positive'), v: verifyOnce, i: identifyOnce }[event.key];
    if (action && app.ready && app.cameraLive) { event.preventDefault(); action(); }
  });
}

function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register('./sw.js').catch((error) => {
    console.warn('faceverify: offline use is unavailable:', error);
  });
}

wire();
startWorker(startupPreference());
openCamera();
registerServiceWorker();
