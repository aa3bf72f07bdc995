// Charts on canvases: the live training chart and the ROC curve.

import { $ } from './state.js';
import { pct } from './ui.js';

export function chartFrame(canvas) {
  const g = canvas.getContext('2d');
  const dark = matchMedia('(prefers-color-scheme: dark)').matches;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.strokeStyle = dark ? '#5f6368' : '#dadce0';
  g.fillStyle = dark ? '#e8eaed' : '#202124';
  g.font = '12px system-ui, sans-serif';
  return g;
}

export function drawTrainingChart(rows) {
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

export function drawRoc(roc, threshold) {
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
