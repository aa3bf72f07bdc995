//! Training: labelled pairs, the loss, single optimiser steps and the metrics a run reports.
//! Everything here reads tensors asynchronously, so the same code runs in the browser worker.
mod classic;
pub mod default_head;
mod fine_tune;
pub mod impostors;
pub mod loss;
pub mod metrics;
mod model_file;
mod optimiser;
pub mod pairs;
mod records;
pub mod run;
pub mod step;
