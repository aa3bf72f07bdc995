// Training: starting, cancelling and resuming a run, its progress and its report.

import { scheduleLiveCheck } from './camera.js';
import { drawRoc, drawTrainingChart } from './charts.js';
import { attemptsText, loadState } from './profile.js';
import { $, app } from './state.js';
import { announce, errorText, formatBytes, pct, setEnabled } from './ui.js';

export async function train(resume) {
  const epochs = Number($('train-epochs').value) || null;
  const batch = Number($('train-batch').value) || null;
  // A resumed run continues in the mode it was started in.
  if (resume && app.state?.checkpoint?.mode) $('train-mode').value = app.state.checkpoint.mode;
  const mode = $('train-mode').value;
  app.training = true;
  app.trainAbort = new AbortController();
  app.epochRows.length = 0;
  if (resume && app.state?.latest_run) app.epochRows.push(...app.state.latest_run.epochs);
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
      renderReport(report, outcome.counts, outcome.default_model, outcome.model?.metrics?.attempts);
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

export function onTrainingEvent(event) {
  const bar = $('train-progress');
  if (event.event === 'step') {
    const total = event.epochs * event.steps_per_epoch;
    bar.max = total;
    bar.value = event.epoch * event.steps_per_epoch + event.step;
    const rate = event.examples_per_second ? `, ${event.examples_per_second.toFixed(0)} pairs/s` : '';
    const eta = event.eta_seconds != null ? `, about ${Math.ceil(event.eta_seconds)} s left` : '';
    $('train-status').textContent = `Epoch ${event.epoch + 1} of ${event.epochs}, step ${event.step} of ${event.steps_per_epoch}: loss ${event.epoch_loss.toFixed(4)}, precision ${pct(event.precision)}, recall ${pct(event.recall)}${rate}${eta}.`;
  } else if (event.event === 'epoch') {
    app.epochRows.push(event);
    drawTrainingChart(app.epochRows);
  } else if (event.event === 'checkpoint') {
    $('train-progress').title = `Checkpoint saved (${formatBytes(event.bytes)})`;
  }
}



export function renderReport(report, counts, defaultModel = null, attempts = null) {
  const ev = report.evaluation;
  const rows = [
    ['Pairs from', `${counts.anchor} anchors, ${counts.positive} positives, ${counts.negative} negatives (with impostor samples)`],
    ['Test loss', report.test_loss.toFixed(4)],
    ['Precision', pct(ev.precision)],
    ['Recall', pct(ev.recall)],
    ['Accuracy', pct(ev.accuracy)],
    ['ROC AUC', ev.auc.toFixed(4)],
    ['Equal error rate', `${pct(ev.eer.rate)} at score ${ev.eer.threshold.toFixed(3)}`],
    [`FAR / FRR at ${ev.threshold.toFixed(2)}`, `${pct(ev.false_accept_rate)} / ${pct(ev.false_reject_rate)}`],
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
  $('suggested').textContent = attempts
    ? `Thresholds set on the sliders: detection ${attempts.policy.detection.toFixed(2)}, verification ${attempts.policy.verification.toFixed(2)}. ${attemptsText(attempts)}`
    : policy
    ? `Suggested thresholds (target FAR ${pct(policy.detection.target_false_accept_rate)}): detection ${policy.policy.detection.toFixed(2)} (FAR ${pct(policy.detection.false_accept_rate)}, FRR ${pct(policy.detection.false_reject_rate)}), verification ${policy.policy.verification.toFixed(2)} (FAR ${pct(policy.verification.false_accept_rate)}, FRR ${pct(policy.verification.false_reject_rate)}). They are now set on the sliders.`
    : `No calibration: ${report.calibration_problem || 'too little test data'}. The tutorial's 0.5 / 0.5 apply.`;
  drawRoc(ev.roc, policy ? policy.policy.detection : ev.threshold);
  $('train-report').hidden = false;
}
