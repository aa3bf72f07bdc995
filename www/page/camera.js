// The camera and the live view: the face boxes and hints of the current frame.

import { frameOf } from '../verifier.js';
import { call, mark } from './engine.js';
import { updateCaptureButtons } from './enrol.js';
import { $, LIVE_INTERVAL_MS, app } from './state.js';
import { errorText, hintText, show } from './ui.js';
import { updateVerifyButtons } from './verification.js';

export const CAMERA_ERRORS = {
  NotAllowedError: 'Camera access was denied. Allow the camera for this site (the camera icon in the address bar, or the browser\'s site settings), then press Retry. You can still import photos meanwhile.',
  NotFoundError: 'No camera was found. Connect a camera, then press Retry. You can still import photos.',
  NotReadableError: 'The camera is in use by another application or tab, or the system blocked it. Close the other application, then press Retry.',
  OverconstrainedError: 'The camera cannot deliver the requested picture size. Press Retry to try the default size.',
  SecurityError: 'This page cannot use the camera: it must be opened over https or from localhost, and camera access must not be disabled by a policy.',
};

export async function openCamera() {
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
export async function grabFrame() {
  const video = $('camera');
  if (!app.cameraLive || video.readyState < 2 || !video.videoWidth) return null;
  return frameOf(video);
}


export function scheduleLiveCheck(delay = LIVE_INTERVAL_MS) {
  clearTimeout(app.liveTimer);
  app.liveTimer = setTimeout(liveCheck, delay);
}

export async function liveCheck() {
  // Training and continuous verification keep the worker busy; the verdicts draw boxes then.
  if (!app.ready || app.liveBusy || app.training || app.continuous || app.challenging || document.hidden) {
    if (app.ready) scheduleLiveCheck(500);
    return;
  }
  app.liveBusy = true;
  const frame = await grabFrame().catch(() => null);
  if (!frame) { app.liveBusy = false; scheduleLiveCheck(300); return; }
  try {
    const { check } = await call({ type: 'CheckFrame', frame }, [frame.bitmap]);
    // The first answered frame means the backend, the camera and both networks are up.
    mark('ready');
    drawCheck(check);
  } catch (error) {
    $('frame-hint').textContent = errorText(error);
  } finally {
    app.liveBusy = false;
    scheduleLiveCheck();
  }
}

export function drawCheck(check) {
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
