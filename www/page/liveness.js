// Verification with liveness: the prompt over the video, its countdown, what the mesh saw, and
// the verdict. The challenge itself runs in the worker (the library's verifyLive).

import { $, app } from './state.js';
import { announce, errorText } from './ui.js';

const PROMPTS = {
  blink: 'Blink',
  turn_left: 'Turn your head to your left, then back',
  turn_right: 'Turn your head to your right, then back',
  look_up: 'Look up, then back',
  open_mouth: 'Open your mouth, then close it',
};

const REASONS = {
  too_slow: (why) => `Not seen in time: ${(PROMPTS[why.action] ?? 'the action').toLowerCase()}.`,
  wrong_way: () => 'The head turned the other way.',
  face_left: () => 'The face left the picture.',
  second_face: () => 'A second face came into view.',
  face_jumped: () => 'The face jumped between two frames, as a swapped photo or a cut video does.',
};

/// A fixed challenge from the address (`?challenge=blink,turn_left`): for tests only.
function fixedActions() {
  const listed = new URLSearchParams(location.search).get('challenge');
  return listed ? listed.split(',').filter((a) => a in PROMPTS) : null;
}

function showPrompt(step) {
  const { action, step: n, of, remaining_ms: remaining } = step.status;
  const prompt = $('liveness-prompt');
  prompt.hidden = false;
  prompt.dataset.action = action;
  const text = `${n}/${of}: ${PROMPTS[action]} (${Math.ceil(remaining / 1000)} s)`;
  if (prompt.textContent.split(' (')[0] !== text.split(' (')[0]) announce(PROMPTS[action]);
  prompt.textContent = text;
  const face = step.face;
  $('liveness-face').textContent = face
    ? `Eyes ${((face.right_eye + face.left_eye) / 2).toFixed(2)} · mouth ${face.mouth.toFixed(2)} · yaw ${face.yaw.toFixed(0)}° · pitch ${face.pitch.toFixed(0)}°`
    : 'No face in view.';
}

/// Runs the challenge and shows the verdict.
export async function verifyLive() {
  const verdict = $('verdict');
  app.challenging = true;
  // The prompt is over the video: bring it into view (Verify sits further down the page).
  $('camera-panel').scrollIntoView({ block: 'start' });
  try {
    const outcome = await app.verifier.verifyLive(app.profile, $('camera'), {
      actions: fixedActions(),
      onPrompt: showPrompt,
    });
    if (outcome.outcome === 'not_live') {
      verdict.dataset.verdict = 'not-live';
      verdict.dataset.reason = outcome.why.reason;
      verdict.textContent = 'NOT LIVE';
      $('verdict-detail').textContent = REASONS[outcome.why.reason](outcome.why);
    } else {
      verdict.dataset.verdict = outcome.verified ? 'verified' : 'not-verified';
      verdict.dataset.reason = '';
      verdict.textContent = outcome.verified ? 'VERIFIED' : 'NOT VERIFIED';
      const matched = outcome.results.filter((r) => r.verified).length;
      $('verdict-detail').textContent = `Live: the challenge was answered. ${matched} of ${outcome.results.length} frames taken during it matched.`;
    }
    verdict.dataset.liveness = 'on';
    verdict.scrollIntoView({ block: 'center' });
    announce(verdict.textContent);
  } catch (error) {
    verdict.dataset.verdict = 'error';
    verdict.textContent = 'Could not verify.';
    $('verdict-detail').textContent = errorText(error);
  } finally {
    app.challenging = false;
    $('liveness-prompt').hidden = true;
    $('liveness-face').textContent = '';
  }
}
