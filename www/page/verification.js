// Verification and "Who is this?", continuous mode, and the threshold sliders' settings.

import { drawCheck, grabFrame, scheduleLiveCheck } from './camera.js';
import { verifyLive } from './liveness.js';
import { loadState } from './profile.js';
import { $, CONTINUOUS_INTERVAL_MS, app } from './state.js';
import { announce, errorText, hintText, pct, setEnabled, show } from './ui.js';

export function updateVerifyButtons() {
  // One photo of the person is enough: without a model of their own the default model decides.
  const enabled = app.ready && app.cameraLive && Boolean(app.state?.images.some((i) => i.role !== 'negative'));
  setEnabled(['verify-once', 'verify-continuous', 'identify-once'], enabled);
  if (!enabled && app.continuous) { app.continuous = false; $('verify-continuous').checked = false; }
}

/// Shows a verdict that is no decision (`no-face`, `error`): its kind, headline and detail.
function showUndecided(kind, text, detail) {
  const verdict = $('verdict');
  verdict.dataset.verdict = kind;
  verdict.textContent = text;
  $('verdict-detail').textContent = detail;
}

export async function verifyOnce() {
  if ($('liveness-required').checked) return verifyLive();
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
      showUndecided('no-face', 'No face: nothing to verify.', hintText(outcome.check.hints));
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
    const adaptation = outcome.adaptation?.kind ?? 'off';
    const learned = adaptation === 'learned' ? ' This face was learned as a new reference.' : '';
    verdict.dataset.adaptation = adaptation;
    $('verdict-detail').textContent = `${r.detections} of ${r.reference_count} reference photos matched (${pct(r.fraction)}; needs more than ${pct(r.policy.verification)}). Detection threshold ${r.policy.detection.toFixed(2)}, best score ${best.toFixed(3)}.${model}${learned}`;
    if (adaptation === 'learned') await loadState(app.profile);
  } catch (error) {
    showUndecided('error', 'Could not verify.', errorText(error));
  }
}

/// "Who is this?": the face against every person enrolled on this device.
export async function identifyOnce() {
  const frame = await grabFrame().catch(() => null);
  if (!frame) return;
  const verdict = $('verdict');
  try {
    const outcome = await app.verifier.identify(frame.bitmap);
    drawCheck(outcome.check);
    if (outcome.outcome === 'no_face') {
      showUndecided('no-face', 'No face: nobody to identify.', hintText(outcome.check.hints));
      return;
    }
    const [best] = outcome.candidates;
    const matched = (c) => `${c.result.detections} of ${c.result.reference_count} photos matched`;
    verdict.dataset.verdict = outcome.identified ? 'identified' : 'nobody';
    verdict.dataset.identified = outcome.identified?.name ?? '';
    verdict.textContent = outcome.identified ? `This is ${outcome.identified.name}.` : 'Nobody enrolled here.';
    $('verdict-detail').textContent = best
      ? `${outcome.identified ? '' : `Closest: ${best.profile.name}, `}${matched(best)} (${outcome.candidates.length === 1 ? 'the one person' : `${outcome.candidates.length} people`} enrolled here).`
      : 'Nobody has photos to compare with yet.';
    announce(verdict.textContent);
  } catch (error) {
    showUndecided('error', 'Could not identify.', errorText(error));
  }
}

export async function continuousLoop() {
  while (app.continuous) {
    if (!app.training && !document.hidden) await verifyOnce();
    await new Promise((r) => setTimeout(r, CONTINUOUS_INTERVAL_MS));
  }
  scheduleLiveCheck(0);
}

/// Writes pending settings at once instead of after the typing pause.
export async function flushSettings() {
  clearTimeout(app.saveTimer);
  if (app.saveNow) await app.saveNow();
}

export function saveSettings() {
  if (!app.state) return;
  const settings = {
    ...app.state.settings,
    detection_threshold: Number($('detection-threshold').value),
    verification_threshold: Number($('verification-threshold').value),
    attempt_false_accept_rate: Number($('attempt-far').value),
    adaptive_references: $('adaptive-references').checked,
    liveness_required: $('liveness-required').checked,
    backend: $('backend-select').value,
    mode: $('train-mode').value,
  };
  app.state.settings = settings;
  clearTimeout(app.saveTimer);
  app.saveNow = async () => {
    app.saveNow = null;
    try {
      const state = await app.verifier.saveSettings(settings, app.profile);
      app.state.settings = state.settings;
    } catch (error) {
      show('worker-status', errorText(error));
    }
  };
  app.saveTimer = setTimeout(app.saveNow, 250);
}
