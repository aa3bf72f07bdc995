//! Training: labelled pairs, the loss, single optimiser steps and the metrics a run reports.
//! Everything here reads tensors asynchronously, so the same code runs in the browser worker.
pub mod default_head;
pub mod impostors;
pub mod loss;
pub mod metrics;
pub mod pairs;
pub mod run;
pub mod step;
