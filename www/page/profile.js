// What is stored: profiles, photos (the galleries), the model and the storage used.

import { drawTrainingChart } from './charts.js';
import { call } from './engine.js';
import { $, CHOSEN_ROLES, ROLES, ROLE_NAMES, app } from './state.js';
import { announce, errorText, formatBytes, pct, show } from './ui.js';
import { updateVerifyButtons } from './verification.js';

export async function loadState(profile) {
  const state = await app.verifier.state(profile ?? null);
  renderState(state);
}

export function renderState(state) {
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
  $('attempt-far').value = String(state.settings.attempt_false_accept_rate);
  $('adaptive-references').checked = state.settings.adaptive_references;
  $('liveness-required').checked = state.settings.liveness_required;
  renderGalleries(state.images);
  renderModel(state);
  measureUsage();
  updateVerifyButtons();
}

// Storage usage reads every stored payload, so it is asked for apart from the state: half a
// second after the backend is ready (the first camera frame goes first) and after each change.

export function measureUsage() {
  clearTimeout(app.usageTimer);
  app.usageTimer = setTimeout(async () => {
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

export function setSlider(which, value) {
  $(`${which}-threshold`).value = value;
  $(`${which}-value`).textContent = Number(value).toFixed(2);
}

export function renderGalleries(images) {
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
    summary.textContent = role === 'adaptive'
      ? `Learned while verifying (${ofRole.length} of at most 10)`
      : `${ROLE_NAMES[role]}s (${ofRole.length})`;
    details.append(summary);
    if (role === 'adaptive') details.append(forgetButton());
    const list = document.createElement('ul');
    list.className = 'gallery';
    // Negatives can be hundreds: show the newest 48.
    for (const [index, image] of ofRole.slice(-48).entries()) list.append(thumbnail(image, index + 1));
    details.append(list);
    galleries.append(details);
  }
}

export function thumbnail(image, number) {
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
  const choices = image.role === 'adaptive' ? ROLES : CHOSEN_ROLES;
  for (const r of choices) role.append(new Option(ROLE_NAMES[r], r, false, r === image.role));
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

function forgetButton() {
  const forget = document.createElement('button');
  forget.type = 'button';
  forget.id = 'forget-adaptive';
  forget.textContent = 'Forget what was learned';
  forget.onclick = () => mutate({ type: 'ForgetAdaptive', profile: app.profile }, 'Learned photos forgotten.');
  return forget;
}

export async function mutate(request, done) {
  try {
    const { state } = await call(request);
    renderState(state);
    announce(done);
  } catch (error) {
    show('worker-status', errorText(error));
  }
}

export function renderModel(state) {
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
      : checkpoint ? 'A training run was interrupted: resume it or start again.'
        : 'Not trained yet: until then the default model verifies, from the first photo on.';
  }
  const policy = model?.metrics?.policy;
  const marks = (which, value) => {
    const list = $(`${which}-marks`);
    list.replaceChildren();
    if (value != null) list.append(new Option('calibrated', value));
  };
  marks('detection', policy?.detection);
  marks('verification', policy?.verification);
  const attempts = model?.metrics?.attempts;
  $('calibrated').textContent = !policy ? 'Train a model to get calibrated thresholds.'
    : `Calibrated for this model: detection ${policy.detection.toFixed(2)}, verification ${policy.verification.toFixed(2)} (marked on the sliders).${attempts ? ` ${attemptsText(attempts)}` : ''}`;
}

/// What the thresholds chosen for a false-accept rate per attempt give, with the estimate's
/// confidence.
export function attemptsText(a) {
  const inN = (rate) => (rate > 0 ? `1 in ${Math.round(1 / rate).toLocaleString()}` : '0');
  const met = a.target_met ? 'meets' : 'does NOT meet';
  return `Chosen for at most ${inN(a.target_false_accept_rate)} false accepts per attempt: `
    + `${a.impostors_accepted} of ${a.impostor_attempts.toLocaleString()} impostor attempts accepted `
    + `(FAR below ${a.false_accept_upper_bound.toExponential(1)} with 95% confidence, which ${met} the target); `
    + `${a.genuine_rejected} of ${a.genuine_attempts} attempts with the enrolment photos refused `
    + `(FRR ${pct(a.false_reject_rate)}; later photos are refused more often).`;
}

export function renderUsage(usage) {
  const total = usage.images + usage.models + usage.checkpoints + usage.other;
  const line = `Stored here: ${formatBytes(total)} (photos ${formatBytes(usage.images)}, models ${formatBytes(usage.models)}, checkpoints ${formatBytes(usage.checkpoints)}).`;
  $('storage-usage').textContent = line;
  if (navigator.storage?.estimate) {
    navigator.storage.estimate().then(({ usage: used, quota }) => {
      $('storage-usage').textContent = `${line} The browser counts ${formatBytes(used)} used of ${formatBytes(quota)} allowed for this site.`;
    }).catch(() => {});
  }
}
