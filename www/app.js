// The page: camera, drawing and controls, in native ES modules by concern (`page/`). It never
// runs a network: every model, photo and database operation goes to the worker through the
// library's client (`FaceVerifier`, verifier.js), as it would for any other app. Messages are
// the serde enums of `src/protocol.rs`. This module wires the controls and starts the worker.

import { openCamera } from './page/camera.js';
import { deleteAll, exportData, importArchive } from './page/data.js';
import { call, startWorker, startupPreference, useBackend } from './page/engine.js';
import { burst, capture, importPhotos } from './page/enrol.js';
import { loadState, mutate } from './page/profile.js';
import { $, KIND_LABELS, app } from './page/state.js';
import { train } from './page/training.js';
import { errorText, show } from './page/ui.js';
import { continuousLoop, identifyOnce, saveSettings, verifyOnce } from './page/verification.js';

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
  $('attempt-far').onchange = saveSettings;
  $('adaptive-references').onchange = saveSettings;
  $('liveness-required').onchange = saveSettings;
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
