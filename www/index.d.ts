// Types of faceverify's library (`index.js`). Values are the serde shapes of src/protocol.rs
// and src/app; the fields used most are spelled out, the rest stay open.

export type Backend = 'auto' | 'webgpu' | 'cpu';
/** 'adaptive': learned while verifying (adaptive references), never chosen by hand. */
export type Role = 'anchor' | 'positive' | 'verification' | 'negative' | 'adaptive';
/** An image the verifier reads a face from. */
export type FaceSource = ImageBitmap | ImageData | HTMLVideoElement | HTMLImageElement
  | HTMLCanvasElement | OffscreenCanvas | Blob;

export interface FaceVerifierOptions {
  /** 'auto' (default): WebGPU when it passes a self-test, else the CPU. */
  backend?: Backend;
  /** Where worker.js and the wasm are served from; by default beside index.js. */
  base?: string | URL;
  /** The folder of the model files; by default models/ under `base`. */
  models?: string | URL;
}

export interface Engine {
  backend: { kind: 'Wgpu' | 'Cpu'; reason: string; threads: number };
  description: string;
}

export interface ImageSummary {
  id: string;
  profile_id: string;
  role: Role;
  source: 'camera' | 'import';
  created: number;
  width: number;
  height: number;
  /** The aligned face crop as JPEG. */
  crop: Uint8Array;
}

export interface ProfileState {
  profiles: { id: string; name: string }[];
  profile: { id: string; name: string };
  images: ImageSummary[];
  model: { id: string; tower_kind: string; created: number; metrics: unknown } | null;
  settings: Settings;
  [field: string]: unknown;
}

export interface Settings {
  detection_threshold: number;
  verification_threshold: number;
  backend: Backend;
  mode: string;
  /** The false-accept rate per verification attempt training calibrates for (1e-4). */
  attempt_false_accept_rate: number;
  /** Whether clear matches join the references (at most 10, oldest out first). */
  adaptive_references: boolean;
  /** Whether Verify asks for a liveness challenge first. */
  liveness_required: boolean;
}

export type Adaptation =
  | { kind: 'off' }
  | { kind: 'learned'; image: string }
  | { kind: 'skipped'; reason: 'not_verified' | 'frame_fault' | 'narrow_margin' };

export interface FrameHint { hint: 'no_face' | 'several_faces' | 'too_small' | 'too_dark' | 'too_blurred' | 'turned_away' | 'eyes_closed'; [detail: string]: unknown }

export type CaptureOutcome =
  | { outcome: 'stored'; image: ImageSummary; hints: FrameHint[] }
  | { outcome: 'refused'; hints: FrameHint[] }
  | { outcome: 'no_face' };

export interface VerificationResult {
  scores: number[];
  detections: number;
  reference_count: number;
  fraction: number;
  verified: boolean;
  policy: { detection: number; verification: number };
}

export type VerifyOutcome =
  | { outcome: 'decision'; result: VerificationResult; check: unknown; calibrated: unknown; model_id: string; adaptation: Adaptation }
  | { outcome: 'no_face'; check: unknown };

export type LivenessAction = 'blink' | 'turn_left' | 'turn_right' | 'look_up' | 'open_mouth';

export type LivenessOutcome =
  | { outcome: 'live'; verified: boolean; results: VerificationResult[]; model_id: string }
  | { outcome: 'not_live'; why: { reason: 'too_slow' | 'wrong_way' | 'face_left' | 'second_face' | 'face_jumped'; action?: LivenessAction } };

export type IdentifyOutcome =
  | {
    outcome: 'decision';
    candidates: { profile: { id: string; name: string }; result: VerificationResult; model_id: string }[];
    identified: { id: string; name: string } | null;
    check: unknown;
  }
  | { outcome: 'no_face'; check: unknown };

export interface TrainOptions {
  mode?: 'fine_tune' | 'classic';
  epochs?: number | null;
  batchSize?: number | null;
  resume?: boolean;
  seed?: number;
  /** Aborting stops the run at its next step; the outcome says it was cancelled. */
  signal?: AbortSignal;
  /** Each training event (steps and epochs with loss, precision, recall, ETA). */
  onProgress?: (event: { event: string; [field: string]: unknown }) => void;
}

/** Turns a source into the frame the worker takes (an ImageBitmap it reads and closes). */
export function frameOf(source: FaceSource): Promise<{ width: number; height: number; bitmap: ImageBitmap }>;

export class FaceVerifier extends EventTarget {
  constructor(options?: FaceVerifierOptions);
  /** A verifier whose worker has loaded and chosen its backend (`engine`). */
  static create(options?: FaceVerifierOptions): Promise<FaceVerifier>;
  readonly loaded: Promise<void>;
  /** The chosen backend, after `create`. */
  engine?: Engine;
  /** 'single' or 'threads': the wasm build the worker runs. */
  build?: 'single' | 'threads';
  /** One request of the worker protocol (src/protocol.rs), answered by its response. */
  request(message: { type: string; [field: string]: unknown }, transfer?: Transferable[]): Promise<any>;
  terminate(reason?: string): void;
  state(person?: string | null): Promise<ProfileState>;
  savePerson(id: string, name: string): Promise<ProfileState>;
  deletePerson(id: string): Promise<ProfileState>;
  enrol(person: string, source: FaceSource, options?: { role?: Role; checks?: boolean }): Promise<CaptureOutcome>;
  deletePhoto(person: string, id: string): Promise<ProfileState>;
  /** Forgets every photo of `person` learned while verifying. */
  forgetLearned(person: string): Promise<ProfileState>;
  saveSettings(settings: Settings, person?: string | null): Promise<ProfileState>;
  train(person: string, options?: TrainOptions): Promise<{ stop?: string; report?: unknown; model?: unknown; [field: string]: unknown }>;
  verify(person: string, source: FaceSource): Promise<VerifyOutcome>;
  /** Verification with liveness: a challenge of 2-3 actions, then the identity on its marked frames. */
  verifyLive(person: string, source: FaceSource, options?: {
    actions?: LivenessAction[] | null;
    onPrompt?: (step: { outcome: 'asking'; status: { action: LivenessAction; step: number; of: number; remaining_ms: number }; face: Record<string, number> | null }) => void;
    signal?: AbortSignal;
  }): Promise<LivenessOutcome>;
  /** "Who is this?" among every person enrolled here. */
  identify(source: FaceSource): Promise<IdentifyOutcome>;
  exportData(): Promise<Uint8Array>;
  importData(bytes: Uint8Array, mode?: 'merge' | 'replace'): Promise<{ images: number; models: number; profiles: number }>;
  deleteAll(): Promise<void>;
}

export default function init(options?: { module_or_path?: unknown }): Promise<unknown>;
export function version(): string;
export function selectBackend(preference: Backend): Promise<Engine['backend'] & { description: string }>;
