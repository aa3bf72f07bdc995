// The page's one mutable object (`app`) and its constants. Every module reads and changes
// the page's state through `app`; nothing else is kept at module level.

export const $ = (id) => document.getElementById(id);
export const ROLES = ['anchor', 'positive', 'verification', 'negative', 'adaptive'];
export const ROLE_NAMES = {
  anchor: 'anchor', positive: 'positive', verification: 'verification photo', negative: 'negative',
  adaptive: 'learned photo',
};
/// Roles a person can give a photo (learned photos come only from verification).
export const CHOSEN_ROLES = ROLES.filter((r) => r !== 'adaptive');

export const KIND_LABELS = { Wgpu: 'WebGPU', Cpu: 'CPU' };
/// How often the live view asks for faces, at most (ms).
export const LIVE_INTERVAL_MS = 150;
/// Pause between continuous verifications (ms).
export const CONTINUOUS_INTERVAL_MS = 300;

export const app = {
  verifier: null, // the library's client of the worker
  trainAbort: null, // aborts the running training
  ready: false,
  state: null, // ProfileState from the worker
  profile: localStorage.getItem('faceverify.profile'),
  build: null, // 'threads' or 'single': which wasm build the worker runs (builds.js)
  preference: null, // the backend preference the worker was started for
  training: false,
  challenging: false, // a liveness challenge is running (the live view waits)
  burst: null,
  continuous: false,
  cameraLive: false,
  thumbnails: [],
  lastCheck: null,
  downloads: {}, // model downloads in progress, by file, for one progress bar
  usageTimer: null, // the pending storage measurement
  liveTimer: null, // the next live check
  liveBusy: false, // a live check is in flight
  epochRows: [], // the running run's per-epoch rows, for the live chart
  saveTimer: null, // the pending settings write
  saveNow: null, // writes the pending settings at once
};
