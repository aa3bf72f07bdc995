// Enrolment: captures, bursts, and photos or archives imported as negatives.

import { grabFrame } from './camera.js';
import { call } from './engine.js';
import { loadState, renderGalleries } from './profile.js';
import { $, ROLE_NAMES, app } from './state.js';
import { HINTS, announce, errorText, hintText, setEnabled } from './ui.js';
import { updateVerifyButtons } from './verification.js';

export function updateCaptureButtons() {
  const enabled = app.ready && app.cameraLive;
  setEnabled(['capture-anchor', 'capture-positive', 'capture-verification', 'capture-negative', 'burst-start'], enabled);
}

export async function capture(role) {
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

export async function burst() {
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



export async function importPhotos(fileList, role) {
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
