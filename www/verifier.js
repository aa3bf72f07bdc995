// faceverify's client: the library runs in a Web Worker (worker.js, which loads the wasm), and
// this class talks to it. Every request carries an id that its answer and its progress
// messages echo; a worker that fails to start or stops on an internal error rejects every
// request in flight with the reason. The app's page uses this class too.

/// Messages that report progress of the request in flight, never answer one.
const PROGRESS = new Set(['ModelProgress', 'ImportProgress', 'Training']);

/// A photo or camera picture as the worker takes it: an ImageBitmap it reads and closes.
/// `source`: ImageBitmap, ImageData, <video>, <img>, <canvas>, OffscreenCanvas or Blob.
export async function frameOf(source) {
  const bitmap = source instanceof ImageBitmap ? source : await createImageBitmap(source);
  return { width: bitmap.width, height: bitmap.height, bitmap };
}

export class FaceVerifier extends EventTarget {
  #worker;
  #pending = new Map();
  #lastId = 0;
  #failure = null;

  /// Starts the worker. `backend`: 'auto' (WebGPU when it passes a self-test, else the CPU),
  /// 'webgpu' or 'cpu'. `base`: where worker.js and the wasm are served from (by default beside
  /// this file); `models`: the folder of the model files (by default `models/` under `base`).
  /// Events: 'progress' (detail: the message) and 'failed' (detail: a sentence). `build` says
  /// which wasm build the worker runs ('single' or 'threads') once it has loaded.
  constructor({ backend = 'auto', base = new URL('./', import.meta.url), models = null } = {}) {
    super();
    this.backend = backend;
    this.loaded = new Promise((resolve, reject) => {
      const url = new URL(`worker.js?backend=${encodeURIComponent(backend)}`, base);
      if (models) url.searchParams.set('models', new URL(models, location.href).href);
      this.#worker = new Worker(url, { type: 'module' });
      this.#worker.onerror = (event) => {
        const message = `The worker failed: ${event.message || 'unknown error'}. Reload the page.`;
        this.#fail(message);
        reject(new Error(message));
      };
      this.#worker.onmessage = ({ data }) => {
        if (data.type === 'Loaded') resolve();
        else if (data.type === 'Build') this.build = data.build;
        else if (data.type === 'Failed' && data.request === 'load') reject(new Error(data.message));
        this.#receive(data);
      };
    });
    this.loaded.catch(() => {});
  }

  /// A verifier whose worker has loaded and chosen its backend: `{ backend, description }`
  /// is in `this.engine`.
  static async create(options = {}) {
    const verifier = new FaceVerifier(options);
    await verifier.loaded;
    verifier.engine = await verifier.request({ type: 'Init', preference: verifier.backend });
    return verifier;
  }

  /// Sends one request of the worker protocol (`src/protocol.rs`) and resolves with its answer.
  /// `transfer`: objects moved to the worker, such as a frame's bitmap.
  request(message, transfer = []) {
    if (this.#failure) return Promise.reject(new Error(this.#failure));
    this.#lastId += 1;
    const id = this.#lastId;
    const started = performance.now();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id }, transfer);
    }).finally(() => {
      // The first round trip of each request type, for devtools' Performance panel.
      const name = `faceverify:request:${message.type}`;
      if (!performance.getEntriesByName(name, 'measure').length) performance.measure(name, { start: started });
    });
  }

  #receive(data) {
    if (PROGRESS.has(data.type)) {
      this.dispatchEvent(new CustomEvent('progress', { detail: data }));
      return;
    }
    if (data.type === 'Panicked') return this.#fail(data.message);
    const waiting = this.#pending.get(data.id);
    if (!waiting) {
      if (data.type === 'Failed') this.dispatchEvent(new CustomEvent('failed', { detail: data.message }));
      return;
    }
    this.#pending.delete(data.id);
    if (data.type === 'Failed') waiting.reject(new Error(data.message));
    else waiting.resolve(data);
  }

  #fail(message, announce = true) {
    this.#failure = message;
    for (const waiting of this.#pending.values()) waiting.reject(new Error(message));
    this.#pending.clear();
    if (announce) this.dispatchEvent(new CustomEvent('failed', { detail: message }));
  }

  /// Stops the worker; requests in flight fail with `reason`.
  terminate(reason = 'The verifier was stopped.') {
    this.#worker.terminate();
    this.#fail(reason, false);
  }

  // People and their photos ---------------------------------------------------------------

  /// What is stored of `person` (or of the first person): `{ profiles, profile, images, model,
  /// settings, ... }`.
  async state(person = null) {
    return (await this.request({ type: 'LoadState', profile: person })).state;
  }

  async savePerson(id, name) {
    return (await this.request({ type: 'SaveProfile', profile: { id, name } })).state;
  }

  async deletePerson(id) {
    return (await this.request({ type: 'DeleteProfile', id })).state;
  }

  /// Stores the largest face of `source` as a photo of `person`. Faces that would make poor
  /// references are refused unless `checks` is false. Resolves with the capture's outcome:
  /// `{ outcome: 'stored', image, hints }`, `{ outcome: 'refused', hints }` or `{ outcome: 'no_face' }`.
  async enrol(person, source, { role = 'anchor', checks = true } = {}) {
    const frame = await frameOf(source);
    const quality = checks ? 'enforce' : 'store_anyway';
    const answer = await this.request({ type: 'Capture', profile: person, role, frame, quality }, [frame.bitmap]);
    return answer.outcome;
  }

  async deletePhoto(person, id) {
    return (await this.request({ type: 'DeletePhoto', profile: person, id })).state;
  }

  /// Forgets every photo of `person` learned while verifying (the adaptive references).
  async forgetLearned(person) {
    return (await this.request({ type: 'ForgetAdaptive', profile: person })).state;
  }

  /// Saves the settings (`state().settings` with changes): thresholds, backend, training mode,
  /// the false-accept rate per attempt training calibrates for, adaptive references.
  async saveSettings(settings, person = null) {
    return (await this.request({ type: 'SaveSettings', profile: person, settings })).state;
  }

  // Training and verification -------------------------------------------------------------

  /// Trains `person`'s model (`mode`: 'fine_tune' or 'classic'). `onProgress` receives each
  /// training event; aborting `signal` stops the run at the next step (the outcome says so).
  async train(person, { mode = 'fine_tune', epochs = null, batchSize = null, resume = false, seed = 42, signal, onProgress } = {}) {
    const listener = (event) => event.detail.type === 'Training' && onProgress?.(event.detail.event);
    const abort = () => this.#worker.postMessage({ type: 'CancelTraining' });
    this.addEventListener('progress', listener);
    signal?.addEventListener('abort', abort);
    try {
      const request = { profile: person, mode, epochs, batch_size: batchSize, seed, resume };
      return (await this.request({ type: 'Train', request })).outcome;
    } finally {
      this.removeEventListener('progress', listener);
      signal?.removeEventListener('abort', abort);
    }
  }

  /// Whether the face in `source` is `person`: `{ outcome: 'decision', result: { verified,
  /// fraction, detections, reference_count, scores, policy }, check, calibrated, model_id,
  /// adaptation }`, or `{ outcome: 'no_face', check }`. With adaptive references on, a clear
  /// match's face joins the references (`adaptation.kind === 'learned'`).
  async verify(person, source) {
    const frame = await frameOf(source);
    return (await this.request({ type: 'Verify', profile: person, frame }, [frame.bitmap])).outcome;
  }

  /// Verification with liveness: `person` in front of `source` (a playing <video>) is asked
  /// for 2-3 actions (blink, turn left or right, look up, open the mouth) and the identity is
  /// decided on the frames the challenge marked, so a photo or a replayed video cannot pass.
  /// `onPrompt` receives each step: `{ outcome: 'asking', status: { action, step, of,
  /// remaining_ms }, face }` (`face`: eye and mouth openness, yaw, pitch, roll, or null).
  /// Resolves with `{ outcome: 'live', verified, results, model_id }` or `{ outcome:
  /// 'not_live', why: { reason, action } }`; `actions` fixes the challenge (tests); aborting
  /// `signal` rejects with an AbortError.
  async verifyLive(person, source, { actions = null, onPrompt, signal } = {}) {
    let answer = (await this.request({ type: 'StartLiveness', profile: person, actions })).outcome;
    while (answer.outcome === 'asking') {
      onPrompt?.(answer);
      if (signal?.aborted) throw new DOMException('Verification cancelled', 'AbortError');
      const frame = await frameOf(source);
      const request = { type: 'LivenessFrame', frame, t_ms: Math.round(performance.now()) };
      answer = (await this.request(request, [frame.bitmap])).outcome;
    }
    return answer;
  }

  /// "Who is this?": the face in `source` against every person enrolled here.
  /// `{ outcome: 'decision', candidates: [{ profile, result, model_id }], identified }`, where
  /// `identified` is the best person whose photos verify (or null: nobody enrolled here), or
  /// `{ outcome: 'no_face', check }`.
  async identify(source) {
    const frame = await frameOf(source);
    return (await this.request({ type: 'Identify', frame }, [frame.bitmap])).outcome;
  }

  // Everything ------------------------------------------------------------------------------

  /// Every person, photo, model and setting as one archive (a Uint8Array, a .tar file).
  async exportData() {
    return (await this.request({ type: 'Export' })).bytes;
  }

  /// Imports an archive made by `exportData` (`mode`: 'merge' or 'replace'); checked whole
  /// before anything is written.
  async importData(bytes, mode = 'merge') {
    return this.request({ type: 'ImportArchive', bytes, mode }, [bytes.buffer]);
  }

  async deleteAll() {
    await this.request({ type: 'DeleteAll' });
  }
}
