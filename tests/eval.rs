//! The LFW benchmark (`faceverify::eval`): parsing LFW's pairs format (good and malformed
//! files), the 10-fold accuracy arithmetic on synthetic distances, and a small real run over
//! the first pairs of `../shared/data/lfw-pairs-dev.txt` on the CPU backend.
//!
//! The real run needs `../shared/data` (never copied into the repository) and panics with a
//! clear message when it is missing.

use burn::tensor::Device;
use faceverify::eval::{
    EvalError, EvalModels, EvalOptions, LfwDirectory, LfwImage, LfwPair, PairsFile, PairsFileError,
    PairsLayout, assign_folds, best_threshold, distance_metrics, evaluate_lfw, k_fold_accuracy,
};
use faceverify::model::blazeface;
use faceverify::model::face_resnet::{self, FaceResNet};
use faceverify::vision::align::CropMode;
use faceverify::vision::detect::FaceDetector;

#[path = "support/data.rs"]
mod data;
use data::{model_file, repo, shared, shared_data};

fn pair(a: &str, i: u32, b: &str, j: u32) -> LfwPair {
    LfwPair {
        first: LfwImage::new(a, i),
        second: LfwImage::new(b, j),
    }
}

// ---------------------------------------------------------------------------------------------
// Pairs files

const GOOD: &str = "2 same-then-different
Aaron_Peirsol 1 2
Abdullah_Gul\t6\t13

Abbas_Kiarostami 1 Bridget_Fonda 3
Abdullah 1 Ernie_Eves 2
";

#[test]
fn parses_a_same_then_different_file() {
    let file = PairsFile::parse(GOOD).expect("parses");
    assert_eq!(file.layout, PairsLayout::SameThenDifferent { per_class: 2 });
    assert_eq!(
        file.pairs,
        vec![
            pair("Aaron_Peirsol", 1, "Aaron_Peirsol", 2),
            pair("Abdullah_Gul", 6, "Abdullah_Gul", 13),
            pair("Abbas_Kiarostami", 1, "Bridget_Fonda", 3),
            pair("Abdullah", 1, "Ernie_Eves", 2),
        ]
    );
    assert_eq!(file.same_person_pairs(), 2);
    assert_eq!(
        file.pairs[1].second.relative_path(),
        "Abdullah_Gul/Abdullah_Gul_0013.jpg"
    );
    assert_eq!(
        LfwImage::new("X", 123).to_string(),
        "X/X_0123.jpg",
        "4-digit zero padding"
    );
    // Each image once, in order of first appearance.
    assert_eq!(file.distinct_images().len(), 8);
}

#[test]
fn parses_lfw_pairs_txt_sets_layout() {
    // LFW's pairs.txt: `<sets> <n>`, then per set n same pairs and n different pairs.
    let text = "2 1\nA 1 2\nB 1 C 1\nD 1 3\nE 2 F 4\n";
    let file = PairsFile::parse(text).expect("parses");
    assert_eq!(
        file.layout,
        PairsLayout::Sets {
            sets: 2,
            per_class: 1
        }
    );
    assert_eq!(file.pairs.len(), 4);
    // Folds by class rank are exactly the sets.
    assert_eq!(assign_folds(&file.pairs, 2), vec![0, 0, 1, 1]);
}

#[test]
fn the_dev_file_parses_and_its_folds_are_balanced() {
    let path = shared("lfw-pairs-dev.txt");
    let file = PairsFile::read(&path).expect("the dev pairs file parses");
    assert_eq!(
        file.layout,
        PairsLayout::SameThenDifferent { per_class: 1500 }
    );
    assert_eq!(file.pairs.len(), 3000);
    let folds = assign_folds(&file.pairs, 10);
    for fold in 0..10 {
        let same = (0..3000)
            .filter(|&i| folds[i] == fold && file.pairs[i].is_same_person())
            .count();
        let different = (0..3000)
            .filter(|&i| folds[i] == fold && !file.pairs[i].is_same_person())
            .count();
        assert_eq!((same, different), (150, 150), "fold {fold}");
    }
    // Every image exists under the given layout.
    LfwDirectory::new(shared("lfw"))
        .check_images(&file.distinct_images())
        .expect("every image of the dev pairs exists");
}

#[test]
fn malformed_files_are_typed_errors() {
    assert_eq!(PairsFile::parse(""), Err(PairsFileError::Empty));
    assert_eq!(PairsFile::parse("\n  \n"), Err(PairsFileError::Empty));
    assert!(matches!(
        PairsFile::parse("lots of pairs\nA 1 2\n"),
        Err(PairsFileError::BadHeader { .. })
    ));
    assert!(matches!(
        PairsFile::parse("0 same-then-different\n"),
        Err(PairsFileError::BadHeader { .. })
    ));
    // A bad line, and the line number it is reported at.
    for (bad, at) in [
        // Wrong number of fields.
        ("A 1\nB 1 C 2", 2),
        ("A 1 2 3 4\nB 1 C 2", 2),
        // Not a number, zero (LFW counts from 1), negative.
        ("A x 2\nB 1 C 2", 2),
        ("A 0 2\nB 1 C 2", 2),
        ("A 1 -2\nB 1 C 2", 2),
        // A different-person line naming one person twice; a name that would leave the folder.
        ("A 1 2\nB 1 B 2", 3),
        (".. 1 2\nB 1 C 2", 2),
    ] {
        let text = format!("1 same-then-different\n{bad}\n");
        assert!(
            matches!(
                PairsFile::parse(&text),
                Err(PairsFileError::BadLine { line, .. }) if line == at
            ),
            "{bad:?}"
        );
    }
    // A different-person pair where the header promises a same-person one.
    assert_eq!(
        PairsFile::parse("1 same-then-different\nB 1 C 2\nA 1 2\n"),
        Err(PairsFileError::OutOfOrder {
            line: 2,
            text: "B 1 C 2".into(),
            expected: "same-person",
            found: "different-person",
        })
    );
    // Too few and too many pairs.
    assert_eq!(
        PairsFile::parse("2 same-then-different\nA 1 2\nD 1 3\nB 1 C 2\n"),
        Err(PairsFileError::WrongCount {
            expected: 4,
            found: 3
        })
    );
    assert_eq!(
        PairsFile::parse("1 same-then-different\nA 1 2\nB 1 C 2\nD 1 E 1\n"),
        Err(PairsFileError::WrongCount {
            expected: 2,
            found: 3
        })
    );
    // Errors say where.
    let message = PairsFile::parse("1 same-then-different\nA 1\nB 1 C 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("line 2") && message.contains("'A 1'"),
        "{message}"
    );
}

#[test]
fn missing_images_are_reported_before_any_work() {
    let dir = LfwDirectory::new(repo().join("no-such-lfw-folder"));
    let images = [LfwImage::new("Nobody", 1), LfwImage::new("Nobody", 2)];
    match dir.check_images(&images) {
        Err(EvalError::MissingImages { count, first }) => {
            assert_eq!(count, 2);
            assert!(first.ends_with("Nobody_0001.jpg"), "{first}");
        }
        other => panic!("expected MissingImages, got {other:?}"),
    }
    assert!(matches!(dir.load(&images[0]), Err(EvalError::Io { .. })));
}

#[test]
fn balanced_subset_takes_the_first_of_each_class() {
    let file = PairsFile::parse(GOOD).unwrap();
    let subset = file.balanced_subset(2);
    assert_eq!(
        subset,
        vec![
            pair("Aaron_Peirsol", 1, "Aaron_Peirsol", 2),
            pair("Abbas_Kiarostami", 1, "Bridget_Fonda", 3),
        ]
    );
    assert_eq!(file.balanced_subset(3).len(), 3);
    assert_eq!(file.balanced_subset(100), file.pairs);
}

// ---------------------------------------------------------------------------------------------
// 10-fold arithmetic

#[test]
fn best_threshold_separates_perfectly_separable_distances() {
    let distances = [0.2, 0.3, 0.5, 0.7, 0.9];
    let same = [true, true, true, false, false];
    let (threshold, accuracy) = best_threshold(&distances, &same);
    assert_eq!(accuracy, 1.0);
    assert!(
        (threshold - 0.6).abs() < 1e-6,
        "midpoint of 0.5 and 0.7: {threshold}"
    );
    // All same: accept everything, threshold above the largest distance.
    let (t, a) = best_threshold(&[0.1, 0.2], &[true, true]);
    assert_eq!(a, 1.0);
    assert!(t > 0.2);
    // All different: accept nothing, threshold below the smallest.
    let (t, a) = best_threshold(&[0.1, 0.2], &[false, false]);
    assert_eq!(a, 1.0);
    assert!(t < 0.1);
}

#[test]
fn best_threshold_handles_overlap_and_ties() {
    // Sorted: 0.1 S, 0.2 S, 0.4 D, 0.4 S, 0.6 D, 0.8 D. Below 0.3: 5 of 6 right (0.4 S missed);
    // above 0.4 (0.5): 5 of 6 (0.4 D accepted). The strictest best wins: 0.3.
    let distances = [0.4, 0.1, 0.8, 0.2, 0.4, 0.6];
    let same = [true, true, false, true, false, false];
    let (threshold, accuracy) = best_threshold(&distances, &same);
    assert!((accuracy - 5.0 / 6.0).abs() < 1e-12);
    assert!((threshold - 0.3).abs() < 1e-6, "{threshold}");
}

#[test]
fn ten_fold_accuracy_on_synthetic_distances() {
    // 10 folds of 4 pairs (2 same, 2 different). Same-person distances 0.3, different 0.9,
    // except fold 3, whose two same-person pairs sit at 1.0 (misclassified by any threshold
    // learnt elsewhere, which lies between 0.3 and 0.9).
    let mut distances = Vec::new();
    let mut same = Vec::new();
    let mut folds = Vec::new();
    for fold in 0..10 {
        let genuine = if fold == 3 { 1.0 } else { 0.3 };
        distances.extend([genuine, genuine, 0.9, 0.9]);
        same.extend([true, true, false, false]);
        folds.extend([fold; 4]);
    }
    let cv = k_fold_accuracy(&distances, &same, &folds, 10).expect("runs");
    assert_eq!(cv.folds.len(), 10);
    for (k, fold) in cv.folds.iter().enumerate() {
        assert_eq!(fold.pairs, 4);
        // The training folds always hold 2 pairs at 1.0 that no threshold gets right together
        // with the rest (except in fold 3, where they are the test fold).
        let expected_train = if k == 3 { 1.0 } else { 34.0 / 36.0 };
        assert!(
            (fold.train_accuracy - expected_train).abs() < 1e-12,
            "fold {k}: {fold:?}"
        );
        assert!(
            fold.threshold > 0.3 && fold.threshold < 0.9,
            "fold {k}: {fold:?}"
        );
        let expected_test = if k == 3 { 0.5 } else { 1.0 };
        assert_eq!(fold.test_accuracy, expected_test, "fold {k}");
    }
    // Mean (9 × 1 + 0.5) / 10; sample std of nine 1s and one 0.5.
    assert!((cv.mean_accuracy - 0.95).abs() < 1e-12);
    let std = ((9.0 * 0.05f64.powi(2) + 0.45f64.powi(2)) / 9.0).sqrt();
    assert!((cv.std_accuracy - std).abs() < 1e-12, "{cv:?}");
    assert!((cv.standard_error - std / 10f64.sqrt()).abs() < 1e-12);
}

#[test]
fn the_test_fold_never_chooses_its_own_threshold() {
    // Fold 0's pairs alone would be separated by a threshold near 2, the other folds' by one
    // near 0.5; fold 0 must be tested at the latter and score 50%.
    let distances = [1.5, 2.5, 0.3, 0.7, 0.3, 0.7];
    let same = [true, false, true, false, true, false];
    let folds = [0, 0, 1, 1, 2, 2];
    let cv = k_fold_accuracy(&distances, &same, &folds, 3).unwrap();
    assert!((cv.folds[0].threshold - 0.5).abs() < 1e-6, "{cv:?}");
    assert_eq!(cv.folds[0].test_accuracy, 0.5);
}

#[test]
fn k_fold_rejects_bad_inputs() {
    assert!(matches!(
        k_fold_accuracy(&[0.1], &[true, false], &[0], 10),
        Err(EvalError::LengthMismatch { .. })
    ));
    assert!(matches!(
        k_fold_accuracy(&[], &[], &[], 10),
        Err(EvalError::NoPairs)
    ));
    assert!(matches!(
        k_fold_accuracy(&[0.1, 0.9], &[true, false], &[0, 0], 2),
        Err(EvalError::EmptyFold { fold: 1 })
    ));
    assert!(matches!(
        k_fold_accuracy(&[0.1, 0.9], &[true, false], &[0, 2], 2),
        Err(EvalError::FoldOutOfRange {
            pair: 1,
            fold: 2,
            folds: 2
        })
    ));
}

#[test]
fn distance_metrics_negate_thresholds_back_into_distances() {
    // Same 0.2, 0.4, 0.7; different 0.5, 0.8, 0.9.
    let distances = [0.2, 0.4, 0.7, 0.5, 0.8, 0.9];
    let same = [true, true, true, false, false, false];
    let m = distance_metrics(&distances, &same, 0.0).unwrap();
    // Ordered pairs same < different: 0.2 and 0.4 beat all 3, 0.7 beats 2: 8 of 9.
    assert!((m.auc - 8.0 / 9.0).abs() < 1e-12);
    // With FAR 0 allowed, accept below 0.5: TAR 2/3. The threshold is a distance: "same person
    // when distance < threshold" must reproduce that.
    assert!((m.tar - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(m.tar_far, 0.0);
    let accepted_same = [0.2f32, 0.4, 0.7]
        .iter()
        .filter(|&&d| d < m.tar_threshold)
        .count();
    let accepted_different = [0.5f32, 0.8, 0.9]
        .iter()
        .filter(|&&d| d < m.tar_threshold)
        .count();
    assert_eq!((accepted_same, accepted_different), (2, 0), "{m:?}");
    // At dlib's 0.6: 0.2, 0.4 and 0.5 accepted; 0.7 S rejected and 0.5 D accepted: 4 of 6.
    assert!((m.accuracy_at_dlib_threshold - 4.0 / 6.0).abs() < 1e-12);
    assert!((m.eer - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
    assert!((m.mean_same_distance - 1.3 / 3.0).abs() < 1e-6);
    assert!((m.mean_different_distance - 2.2 / 3.0).abs() < 1e-6);
}

// ---------------------------------------------------------------------------------------------
// A small real run

#[test]
fn first_twenty_same_and_twenty_different_dev_pairs() {
    let shared = shared_data(&["lfw", "lfw-pairs-dev.txt"]);
    let device = Device::flex();
    let detector = FaceDetector::from_bytes(&model_file(blazeface::WEIGHTS_PATH), &device)
        .expect("detector weights load");
    let tower = FaceResNet::from_bytes(&model_file(face_resnet::WEIGHTS_PATH), &device)
        .expect("tower weights load");
    let models = EvalModels {
        detector: &detector,
        tower: &tower,
        device: &device,
    };
    let options = EvalOptions {
        crop: CropMode::Detect,
        batch_size: 16,
        limit: Some(40),
        ..EvalOptions::default()
    };
    let mut calls = Vec::new();
    let report = pollster::block_on(evaluate_lfw(
        &shared.join("lfw"),
        &shared.join("lfw-pairs-dev.txt"),
        &models,
        &options,
        |done, total| calls.push((done, total)),
    ))
    .expect("the evaluation runs");

    assert_eq!(report.pairs, 40);
    assert_eq!(report.same_person_pairs, 20);
    assert_eq!(report.distances.len(), 40);
    // Progress: starts at 0, ends at the total, never goes backwards.
    assert_eq!(calls.first(), Some(&(0, report.images)));
    assert_eq!(calls.last(), Some(&(report.images, report.images)));
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0));

    let m = &report.metrics;
    println!(
        "40 dev pairs: 10-fold accuracy {:.3}, AUC {:.3}, EER {:.3}, same {:.3} vs different \
         {:.3}, fallbacks {}, {:.1} faces/s",
        report.cross_validation.mean_accuracy,
        m.auc,
        m.eer,
        m.mean_same_distance,
        m.mean_different_distance,
        report.fallbacks,
        report.faces_per_second
    );
    assert!(
        m.mean_same_distance < m.mean_different_distance,
        "same-person pairs should be closer on average: {m:?}"
    );
    assert!(
        report.cross_validation.mean_accuracy >= 0.85,
        "accuracy should be far above chance (0.5): {:?}",
        report.cross_validation
    );
    assert!(m.auc >= 0.9, "{m:?}");
    assert!(report.faces_per_second > 0.0);
}
