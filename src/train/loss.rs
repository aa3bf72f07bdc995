//! Binary cross-entropy on probabilities, the tutorial's `tf.losses.BinaryCrossentropy()`.
//!
//! The siamese network ends in a sigmoid and the tutorial's loss takes its probabilities, so the
//! loss does too. Probabilities are clamped away from 0 and 1 first, as Keras does with its
//! epsilon: a saturated sigmoid would otherwise give `ln 0 = −∞` and a NaN gradient that
//! poisons every weight in one step.

use burn::prelude::*;

/// How close to 0 or 1 a probability may get inside the loss (Keras' `epsilon()`).
pub const PROBABILITY_EPSILON: f32 = 1e-7;

/// Mean binary cross-entropy `−[t·ln p + (1 − t)·ln(1 − p)]` over all elements.
///
/// - `probabilities`: the network's outputs in `[0, 1]`.
/// - `targets`: 1 for "same person", 0 for "different", same shape.
/// - returns a one-element tensor, differentiable with respect to `probabilities`.
pub fn binary_cross_entropy<const D: usize>(
    probabilities: Tensor<D>,
    targets: Tensor<D>,
) -> Tensor<1> {
    assert_eq!(
        probabilities.dims(),
        targets.dims(),
        "one target per probability"
    );
    let probabilities = probabilities.clamp(PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON);
    let complement = probabilities.clone().neg().add_scalar(1.0);
    let target_complement = targets.clone().neg().add_scalar(1.0);
    let log_likelihood = targets * probabilities.log() + target_complement * complement.log();
    log_likelihood.mean().neg()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss(probabilities: &[f32], targets: &[f32]) -> f32 {
        let device = Device::flex();
        let p = Tensor::<1>::from_floats(probabilities, &device);
        let t = Tensor::<1>::from_floats(targets, &device);
        binary_cross_entropy(p, t).into_scalar::<f32>()
    }

    #[test]
    fn matches_the_formula_on_hand_values() {
        // (−ln 0.8 − ln(1 − 0.3)) / 2 = (0.223144 + 0.356675) / 2.
        let expected = (-(0.8f32).ln() - (0.7f32).ln()) / 2.0;
        assert!((loss(&[0.8, 0.3], &[1.0, 0.0]) - expected).abs() < 1e-6);
        // A coin flip costs ln 2 whatever the label.
        assert!((loss(&[0.5, 0.5], &[1.0, 0.0]) - std::f32::consts::LN_2).abs() < 1e-6);
    }

    #[test]
    fn saturated_probabilities_stay_finite() {
        let wrong = loss(&[0.0, 1.0], &[1.0, 0.0]);
        assert!(wrong.is_finite());
        // About −ln(1e-7) ≈ 16.1 (1 − 1e-7 rounds to 1 − 1.19e-7 in f32): large, bounded.
        assert!((15.9..16.2).contains(&wrong), "{wrong}");
        assert!(loss(&[1.0, 0.0], &[1.0, 0.0]) < 1e-6);
    }

    #[test]
    fn the_gradient_pushes_probabilities_towards_their_targets() {
        let device = Device::flex().autodiff();
        let p = Tensor::<1>::from_floats([0.6, 0.4], &device).require_grad();
        let t = Tensor::<1>::from_floats([1.0, 0.0], &device);
        let grads = binary_cross_entropy(p.clone(), t).backward();
        let grad: Vec<f32> = p.grad(&grads).unwrap().into_data().try_into_vec().unwrap();
        // d/dp of −ln(p)/2 at 0.6 = −1/1.2; of −ln(1 − p)/2 at 0.4 = +1/1.2.
        assert!((grad[0] + 1.0 / 1.2).abs() < 1e-5, "{grad:?}");
        assert!((grad[1] - 1.0 / 1.2).abs() < 1e-5, "{grad:?}");
    }
}
