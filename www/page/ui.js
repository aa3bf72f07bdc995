// Small helpers for text on the page: status lines, announcements for screen readers, numbers,
// and the sentences for the live view's hints.

import { $ } from './state.js';

export function show(id, text) {
  const element = $(id);
  element.textContent = text;
  element.hidden = !text;
}

export function announce(text) {
  // Re-set so that the same sentence twice is announced twice.
  const region = $('announcer');
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 20);
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(1)} ${units[unit]}`;
}

export function pct(value) {
  return value == null || Number.isNaN(value) ? '–' : `${(100 * value).toFixed(1)}%`;
}

export function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}

export function setEnabled(ids, enabled) {
  for (const id of ids) $(id).disabled = !enabled;
}

export const HINTS = {
  no_face: () => 'No face found: look at the camera.',
  several_faces: (h) => `${h.count} faces in view: only the largest is used. Be alone in the picture.`,
  too_small: () => 'Face too small: come closer to the camera.',
  too_dark: () => 'Too dark: turn towards a light.',
  too_blurred: () => 'Too blurred: hold still.',
  turned_away: () => 'Face turned away: look straight at the camera.',
  eyes_closed: () => 'Eyes closed: keep your eyes open for the photo.',
};

export function hintText(hints) {
  if (!hints.length) return 'Face found: ready to capture.';
  return hints.map((h) => (HINTS[h.hint] ? HINTS[h.hint](h) : h.hint)).join(' ');
}
