// The worker, through the library's client (`FaceVerifier`): starting it with the chosen build,
// its progress messages, and choosing the backend.

import { chooseBuild } from '../builds.js';
import { FaceVerifier } from '../verifier.js';
import { scheduleLiveCheck } from './camera.js';
import { updateCaptureButtons } from './enrol.js';
import { loadState } from './profile.js';
import { $, KIND_LABELS, app } from './state.js';
import { onTrainingEvent } from './training.js';
import { errorText, setEnabled, show } from './ui.js';
import { flushSettings, updateVerifyButtons } from './verification.js';

export function call(request, transfer = []) {
  return app.verifier.request(request, transfer);
}

/// The backend preference at start-up: the URL's, else the one saved last time (mirrored from
/// the settings, which live in the worker's database), else automatic.
export function startupPreference() {
  const fromUrl = new URLSearchParams(location.search).get('backend');
  if (['auto', 'webgpu', 'cpu'].includes(fromUrl)) return fromUrl;
  return localStorage.getItem('faceverify.backend') || 'auto';
}

export function startWorker(preference) {
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
export function mark(name) {
  const full = `faceverify:${name}`;
  if (!performance.getEntriesByName(full, 'mark').length) performance.mark(full);
}

export function onProgress(data) {
  if (data.type === 'ModelProgress') {
    // The worker downloads the networks at the same time: one bar for all of them.
    app.downloads[data.name] = data;
    const files = Object.values(app.downloads);
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

export async function onLoaded() {
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
export async function useBackend(preference) {
  localStorage.setItem('faceverify.backend', preference);
  if (preference === app.preference || await chooseBuild(preference) === app.build) {
    return initBackend(preference);
  }
  await flushSettings();
  app.ready = false;
  app.verifier.terminate('The worker restarted.');
  startWorker(preference);
}

export async function initBackend(preference) {
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
