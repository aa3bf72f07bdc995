//! Burn records of modules, built from one async read of all their parameters: Burn 0.22's own
//! recording reads synchronously, which panics on WebGPU in a browser.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Transaction};

use super::run::RunError;

/// `tensor` flattened to one dimension, the layout that reads and host copies hold it in.
pub(super) fn flat<const D: usize>(tensor: &Tensor<D>) -> Tensor<1> {
    let count = tensor.dims().iter().product::<usize>();
    tensor.clone().reshape([count])
}

/// Collects every float parameter (as saved) flattened, with its id and shape.
#[derive(Default)]
struct ParameterGatherer {
    tensors: Vec<Tensor<1>>,
}

impl ModuleVisitor for ParameterGatherer {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.tensors.push(flat(&param.transform_for_save().val()));
    }
}

/// Replaces every float parameter, in visiting order, by its host copy on the CPU backend,
/// keeping its id (optimiser state is keyed by parameter id).
struct HostParameters {
    data: std::vec::IntoIter<TensorData>,
    device: Device,
    missing: bool,
}

impl ModuleMapper for HostParameters {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let shape: [usize; D] = param.lazy_shape().dims();
        let (id, value, _) = param.consume();
        match self.data.next() {
            Some(data) => Param::initialized(
                id,
                Tensor::<1>::from_data(data, &self.device).reshape(shape),
            ),
            None => {
                self.missing = true;
                Param::initialized(id, value)
            }
        }
    }
}

/// Burn's record of `module` (burnpack bytes), built from one async read of all its float
/// parameters: the module is rebuilt on the CPU backend from those values and recorded there,
/// so no synchronous read touches the GPU. The networks here hold only float parameters.
pub async fn module_record_bytes<M: Module + Clone>(module: &M) -> Result<Vec<u8>, RunError> {
    let mut gatherer = ParameterGatherer::default();
    module.visit(&mut gatherer);
    let mut transaction = Transaction::default();
    for tensor in gatherer.tensors {
        transaction = transaction.register(tensor);
    }
    let data = transaction
        .execute_async()
        .await
        .map_err(|e| RunError::Readback(e.to_string()))?;
    let mut mapper = HostParameters {
        data: data.into_iter(),
        device: Device::flex(),
        missing: false,
    };
    let host = module.clone().map(&mut mapper);
    if mapper.missing {
        return Err(RunError::Readback(
            "fewer parameters came back than were read".into(),
        ));
    }
    let bytes = host
        .into_record()
        .into_bytes()
        .map_err(|e| RunError::Record {
            what: "model",
            detail: e.to_string(),
        })?;
    Ok(bytes.to_vec())
}

/// Loads a record written by [`module_record_bytes`] into `module` (on any device).
pub fn load_module_record<M: Module>(module: M, bytes: &[u8]) -> Result<M, RunError> {
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| {
        RunError::Record {
            what: "model",
            detail: e.to_string(),
        }
    })?;
    module
        .try_load_record(record)
        .map_err(|e| RunError::Record {
            what: "model",
            detail: e.to_string(),
        })
}
