// Export, import and deletion of everything stored.

import { loadState } from './profile.js';
import { $, app } from './state.js';
import { announce, errorText, formatBytes } from './ui.js';

export async function exportData() {
  $('data-status').textContent = 'Preparing the export…';
  try {
    const bytes = await app.verifier.exportData();
    const url = URL.createObjectURL(new Blob([bytes], { type: 'application/x-tar' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = `faceverify-${new Date().toISOString().slice(0, 10)}.tar`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    $('data-status').textContent = `Exported ${formatBytes(bytes.byteLength)}.`;
  } catch (error) {
    $('data-status').textContent = `Export failed: ${errorText(error)}`;
  }
}

export async function importArchive(file) {
  if (!file) return;
  const mode = document.querySelector('input[name="import-mode"]:checked').value;
  if (mode === 'replace' && !confirm('Replace everything stored here with this export?')) return;
  $('data-status').textContent = 'Checking the archive…';
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const result = await app.verifier.importData(bytes, mode);
    $('data-status').textContent = `Imported ${result.profiles} people, ${result.images} photos and ${result.models} models (${mode}).`;
    await loadState(app.profile);
  } catch (error) {
    $('data-status').textContent = `Nothing was imported: ${errorText(error)}`;
  }
}

export async function deleteAll() {
  if (!confirm('Delete every photo, model and setting stored by faceverify in this browser? This cannot be undone.')) return;
  $('data-status').textContent = 'Deleting…';
  try {
    await app.verifier.deleteAll();
    localStorage.removeItem('faceverify.profile');
    $('data-status').textContent = 'All your data was deleted.';
    announce('All data deleted');
    await loadState(null);
  } catch (error) {
    $('data-status').textContent = `Deleting failed: ${errorText(error)}`;
  }
}
