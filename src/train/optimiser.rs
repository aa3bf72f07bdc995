//! Adam whose state can be checkpointed without synchronous reads, and the module it trains.

use std::sync::{Arc, Mutex, Weak};

use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, ModuleOptimizer, Optimizer, RecordState,
    StateSink, StateSource,
};
use burn::prelude::*;
use burn::tensor::{Bytes, Transaction};

use super::records::{flat, load_module_record, module_record_bytes};
use super::run::RunError;
use super::step::{ADAM_EPSILON, StepError, StepOutcome};

/// Host copies of one parameter's Adam moments, flattened.
#[derive(Debug, Clone)]
struct HostMoments {
    moment_1: TensorData,
    moment_2: TensorData,
    max_moment_2: Option<TensorData>,
}

/// Device handles of one parameter's moments (flattened views) until they are read, then the
/// host copies.
#[derive(Debug, Default)]
struct MomentSlot {
    device: Option<(Tensor<1>, Tensor<1>, Option<Tensor<1>>)>,
    host: Option<HostMoments>,
}

type SharedSlot = Arc<Mutex<MomentSlot>>;

fn lock(slot: &SharedSlot) -> std::sync::MutexGuard<'_, MomentSlot> {
    // A panic while holding the lock leaves plain data behind; it is still consistent.
    slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One parameter's Adam state plus the slot its moments are read through.
#[derive(Clone)]
pub struct CheckpointableAdamState<const D: usize> {
    inner: AdamState<D>,
    slot: SharedSlot,
}

/// Leaf names of [`CheckpointableAdamState`] in an optimiser record.
const TIME_LEAF: &str = "time";
const MOMENT_1_LEAF: &str = "moment_1";
const MOMENT_2_LEAF: &str = "moment_2";
const MAX_MOMENT_2_LEAF: &str = "max_moment_2";

impl<const D: usize> RecordState for CheckpointableAdamState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        let momentum = &self.inner.momentum;
        let shape = momentum.moment_1.dims().to_vec();
        out.push_tensor(
            prefix,
            TIME_LEAF,
            TensorData::new(vec![momentum.time as i64], [1]),
        );
        let slot = lock(&self.slot);
        // With a host copy (from `CheckpointableAdam::prefetch`) nothing is read from the
        // device here; without one this is a synchronous read, fine on the CPU backend.
        let host = slot.host.clone().unwrap_or_else(|| HostMoments {
            moment_1: flat(&momentum.moment_1).into_data(),
            moment_2: flat(&momentum.moment_2).into_data(),
            max_moment_2: momentum.max_moment_2.as_ref().map(|m| flat(m).into_data()),
        });
        let reshape = |data: TensorData| {
            let (bytes, _, dtype) = data.into_parts();
            TensorData::from_bytes(bytes, shape.clone(), dtype)
        };
        out.push_tensor(prefix, MOMENT_1_LEAF, reshape(host.moment_1));
        out.push_tensor(prefix, MOMENT_2_LEAF, reshape(host.moment_2));
        if let Some(max) = host.max_moment_2 {
            out.push_tensor(prefix, MAX_MOMENT_2_LEAF, reshape(max));
        }
    }

    /// Rebuilds the state on the CPU backend, whatever device the optimiser loads onto: Burn
    /// would use `Device::default()`, which is the wgpu device and would initialise it behind
    /// `backend::wgpu_device()`'s back. The first step moves the state to the parameter's
    /// device.
    fn state_unflatten(prefix: &str, src: &mut StateSource, _device: &Device) -> Option<Self> {
        let cpu = Device::flex();
        let time = src
            .take_tensor(prefix, TIME_LEAF)?
            .try_into_vec::<i64>()
            .ok()?
            .first()
            .copied()?;
        let moment_1 = src.take_tensor(prefix, MOMENT_1_LEAF)?;
        let moment_2 = src.take_tensor(prefix, MOMENT_2_LEAF)?;
        let max_moment_2 = src.take_tensor(prefix, MAX_MOMENT_2_LEAF);
        if moment_1.shape().num_dims() != D || moment_2.shape().num_dims() != D {
            return None;
        }
        let host = HostMoments {
            moment_1: moment_1.clone(),
            moment_2: moment_2.clone(),
            max_moment_2: max_moment_2.clone(),
        };
        let mut momentum = AdaptiveMomentumState::new(
            usize::try_from(time).ok()?,
            Tensor::from_data(moment_1, &cpu),
            Tensor::from_data(moment_2, &cpu),
        );
        momentum.max_moment_2 = max_moment_2.map(|m| Tensor::from_data(m, &cpu));
        Some(Self {
            inner: AdamState::new(momentum),
            slot: Arc::new(Mutex::new(MomentSlot {
                device: None,
                host: Some(host),
            })),
        })
    }
}

/// Burn's Adam, with state that can be read asynchronously for a checkpoint.
///
/// Burn 0.22 serialises optimiser state with synchronous reads, which panic on WebGPU in a
/// browser. This wrapper keeps a handle on every live state's moments so
/// [`prefetch`](Self::prefetch) can read them all in one async transaction just before
/// `ModuleOptimizer::into_bytes`, which then serialises those host copies. The arithmetic is
/// Burn's own [`Adam`].
#[derive(Clone)]
pub struct CheckpointableAdam {
    adam: Adam,
    live: Arc<Mutex<Vec<Weak<Mutex<MomentSlot>>>>>,
}

impl CheckpointableAdam {
    /// The tutorial's Adam (see [`super::step::adam_optimizer`]).
    pub fn new() -> Self {
        Self {
            adam: AdamConfig::new().with_epsilon(ADAM_EPSILON).build(),
            live: Arc::default(),
        }
    }

    /// A `ModuleOptimizer` over this Adam; keep `self` to call [`prefetch`](Self::prefetch).
    pub fn module_optimizer(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(self.clone())
    }

    /// Reads every live state's moments back asynchronously and keeps host copies for the
    /// next serialisation.
    pub async fn prefetch(&self) -> Result<(), RunError> {
        let slots: Vec<SharedSlot> = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut transaction = Transaction::default();
        let mut pending = Vec::new();
        for slot in &slots {
            let guard = lock(slot);
            if guard.host.is_some() {
                continue;
            }
            if let Some((moment_1, moment_2, max_moment_2)) = &guard.device {
                transaction = transaction.register(moment_1.clone());
                transaction = transaction.register(moment_2.clone());
                if let Some(max) = max_moment_2 {
                    transaction = transaction.register(max.clone());
                }
                pending.push((slot.clone(), max_moment_2.is_some()));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut data = transaction
            .execute_async()
            .await
            .map_err(|e| RunError::Readback(e.to_string()))?
            .into_iter();
        for (slot, has_max) in pending {
            let mut next = || {
                data.next()
                    .ok_or_else(|| RunError::Readback("too few tensors came back".into()))
            };
            let host = HostMoments {
                moment_1: next()?,
                moment_2: next()?,
                max_moment_2: if has_max { Some(next()?) } else { None },
            };
            lock(&slot).host = Some(host);
        }
        Ok(())
    }
}

impl Default for CheckpointableAdam {
    fn default() -> Self {
        Self::new()
    }
}

impl Optimizer for CheckpointableAdam {
    type State<const D: usize> = CheckpointableAdamState<D>;

    fn step<const D: usize>(
        &self,
        learning_rate: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Drop the slot's handles first so Adam's update can reuse the moments' buffers.
        let inner = state.map(|state| {
            lock(&state.slot).device = None;
            state.inner
        });
        let (tensor, inner) = self.adam.step(learning_rate, tensor, grad, inner);
        let state = inner.map(|inner| {
            let momentum = &inner.momentum;
            let slot = Arc::new(Mutex::new(MomentSlot {
                device: Some((
                    flat(&momentum.moment_1),
                    flat(&momentum.moment_2),
                    momentum.max_moment_2.as_ref().map(flat),
                )),
                host: None,
            }));
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.retain(|weak| weak.strong_count() > 0);
            live.push(Arc::downgrade(&slot));
            CheckpointableAdamState { inner, slot }
        });
        (tensor, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        CheckpointableAdamState {
            inner: <Adam as Optimizer>::to_device(state.inner, device),
            slot: state.slot,
        }
    }
}

/// An optimiser and the handle that makes its state readable asynchronously.
#[derive(Clone)]
struct AsyncOptimizer {
    optimizer: ModuleOptimizer,
    adam: CheckpointableAdam,
}

impl AsyncOptimizer {
    fn new() -> Self {
        let adam = CheckpointableAdam::new();
        Self {
            optimizer: adam.module_optimizer(),
            adam,
        }
    }

    async fn record(&self) -> Result<Vec<u8>, RunError> {
        self.adam.prefetch().await?;
        let bytes = self.optimizer.into_bytes().map_err(|e| RunError::Record {
            what: "optimiser",
            detail: e.to_string(),
        })?;
        Ok(bytes.to_vec())
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), RunError> {
        let fresh = Self::new();
        let optimizer = fresh
            .optimizer
            .from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| RunError::Record {
                what: "optimiser",
                detail: e.to_string(),
            })?;
        *self = Self {
            optimizer,
            adam: fresh.adam,
        };
        Ok(())
    }
}

/// The module a [`PairModel`](super::run::PairModel) trains and its optimiser: what a
/// checkpoint records of it.
pub struct ModuleAndOptimiser<M> {
    /// Absent only while a step owns it.
    module: Option<M>,
    optimizer: AsyncOptimizer,
}

impl<M: Module + Clone> ModuleAndOptimiser<M> {
    /// `module` with a fresh optimiser.
    pub(super) fn new(module: M) -> Self {
        Self {
            module: Some(module),
            optimizer: AsyncOptimizer::new(),
        }
    }

    /// The module being trained.
    pub fn module(&self) -> &M {
        self.module
            .as_ref()
            .expect("the module is only absent during a step")
    }

    /// Trains on with `module` in place of the current one; the optimiser state stays.
    pub(super) fn replace_module(&mut self, module: M) {
        self.module = Some(module);
    }

    /// Runs one optimisation `step`, which takes the module and hands back the updated one.
    pub(super) async fn step(
        &mut self,
        step: impl AsyncFnOnce(M, &mut ModuleOptimizer) -> (M, Result<StepOutcome, StepError>),
    ) -> Result<StepOutcome, RunError> {
        let module = self
            .module
            .take()
            .expect("the module is only absent during a step");
        let (module, outcome) = step(module, &mut self.optimizer.optimizer).await;
        self.module = Some(module);
        Ok(outcome?)
    }

    /// The module's record, read asynchronously.
    pub(super) async fn module_record(&self) -> Result<Vec<u8>, RunError> {
        module_record_bytes(self.module()).await
    }

    /// The optimiser's record, read asynchronously.
    pub(super) async fn optimiser_record(&self) -> Result<Vec<u8>, RunError> {
        self.optimizer.record().await
    }

    /// Replaces the weights and the optimiser state with recorded ones.
    pub(super) fn restore(&mut self, module: &[u8], optimiser: &[u8]) -> Result<(), RunError> {
        // Loaded into a copy, so a record that does not fit leaves the module as it was.
        self.module = Some(load_module_record(self.module().clone(), module)?);
        self.optimizer.restore(optimiser)
    }
}
