//! `faceverify default-head`: trains the default model (a siamese head for everyone) on LFW
//! pairs of photos outside the evaluation pairs, calibrates it on the evaluation pairs and
//! writes it as numbers (`models/default_head.json`; `cargo xtask default-model` runs this).
//!
//! cargo run -p faceverify-cli --no-default-features -- default-head --lfw ../shared/data/lfw \
//!     --pairs ../shared/data/lfw-pairs-dev.txt --out models/default_head.json

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::prelude::Device;
use faceverify::eval::{LfwImage, LfwPair, PairsFile, distinct_images};
use faceverify::pipeline::FacePipeline;
use faceverify::train::default_head::{
    DefaultHead, EmbeddedPair, HeadEvaluation, HeadTraining, auc, calibrate, fit_head, score_pairs,
    training_pairs,
};
use faceverify::vision::align::CropMode;

use crate::flags::{flag_values, number};

const USAGE: &str = "usage: faceverify default-head --lfw DIR --pairs FILE --out FILE \
[--per-class N] [--epochs N] [--target-far X]";

/// The pair false-accept rate the default model's detection threshold is chosen for.
const TARGET_FAR: f64 = 1e-3;

struct Args {
    lfw: PathBuf,
    pairs: PathBuf,
    out: PathBuf,
    per_class: usize,
    training: HeadTraining,
    target_far: f64,
}

fn parse_args(raw: &[String]) -> Result<Args, String> {
    let (mut lfw, mut pairs, mut out) = (None, None, None);
    let mut per_class = 1500;
    let mut training = HeadTraining::default();
    let mut target_far = TARGET_FAR;
    for (flag, value) in flag_values(raw, USAGE)? {
        match flag {
            "--lfw" => lfw = Some(PathBuf::from(value)),
            "--pairs" => pairs = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            "--per-class" => per_class = number(flag, value)?,
            "--epochs" => training.epochs = number(flag, value)?,
            "--target-far" => target_far = number(flag, value)?,
            other => return Err(format!("unknown flag {other}\n{USAGE}")),
        }
    }
    let need =
        |v: Option<PathBuf>, name: &str| v.ok_or_else(|| format!("{name} is required\n{USAGE}"));
    Ok(Args {
        lfw: need(lfw, "--lfw")?,
        pairs: need(pairs, "--pairs")?,
        out: need(out, "--out")?,
        per_class,
        training,
        target_far,
    })
}

/// Every person of the LFW folder with the numbers of their photos, sorted.
fn lfw_people(lfw: &Path) -> Result<BTreeMap<String, Vec<u32>>, String> {
    let mut people = BTreeMap::new();
    let entries = std::fs::read_dir(lfw).map_err(|e| format!("{}: {e}", lfw.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(entry.path()) else {
            continue;
        };
        let mut numbers: Vec<u32> = files
            .flatten()
            .filter_map(|f| {
                let file = f.file_name().to_string_lossy().into_owned();
                let number = file
                    .strip_prefix(&format!("{name}_"))?
                    .strip_suffix(".jpg")?;
                number.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        people.insert(name, numbers);
    }
    Ok(people)
}

/// The descriptor of each image whose face the detector finds (as the page crops it).
fn embed(
    lfw: &Path,
    images: &[LfwImage],
    pipeline: &FacePipeline,
) -> Result<HashMap<LfwImage, Vec<f32>>, String> {
    let mut embeddings = HashMap::new();
    for (i, image) in images.iter().enumerate() {
        let path = lfw.join(image.relative_path());
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let analysis = pollster::block_on(pipeline.analyse_encoded(&bytes, CropMode::Detect))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(embedding) = analysis.embedding {
            embeddings.insert(image.clone(), embedding);
        }
        if (i + 1) % 500 == 0 || i + 1 == images.len() {
            println!("embedded {} of {} photos", i + 1, images.len());
        }
    }
    Ok(embeddings)
}

/// The pairs whose two faces were both found, as embeddings.
fn embedded(pairs: &[LfwPair], embeddings: &HashMap<LfwImage, Vec<f32>>) -> Vec<EmbeddedPair> {
    pairs
        .iter()
        .filter_map(|p| {
            let first = embeddings.get(&p.first)?.clone();
            let second = embeddings.get(&p.second)?.clone();
            Some((first, second, p.is_same_person()))
        })
        .collect()
}

pub fn run(raw: &[String]) -> Result<(), String> {
    let args = parse_args(raw)?;
    let dev = PairsFile::read(&args.pairs).map_err(|e| e.to_string())?;
    let people = lfw_people(&args.lfw)?;
    let train_pairs = training_pairs(&people, &dev.pairs, args.per_class, args.training.seed);
    let mut images = distinct_images(&train_pairs);
    images.extend(distinct_images(&dev.pairs));
    images.sort();
    images.dedup();
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let read = |name: &str| std::fs::read(models.join(name)).map_err(|e| format!("{name}: {e}"));
    let device = Device::flex();
    let pipeline = FacePipeline::from_bytes(
        &read("blazeface.f16.bin")?,
        &read("face_resnet.q8.bin")?,
        &device,
    )
    .map_err(|e| e.to_string())?;
    let embeddings = embed(&args.lfw, &images, &pipeline)?;
    let train = embedded(&train_pairs, &embeddings);
    let held_out = embedded(&dev.pairs, &embeddings);
    let autodiff = device.clone().autodiff();
    let head = pollster::block_on(fit_head(&train, &args.training, &autodiff))
        .map_err(|e| e.to_string())?;
    let scores =
        pollster::block_on(score_pairs(&head, &held_out, &autodiff)).map_err(|e| e.to_string())?;
    let same: Vec<bool> = held_out.iter().map(|(_, _, s)| *s).collect();
    let (policy, far, frr) = calibrate(&scores, &same, args.target_far);
    let (weights, bias) =
        pollster::block_on(DefaultHead::weights_of(&head)).map_err(|e| e.to_string())?;
    let model = DefaultHead {
        source: format!(
            "cargo xtask default-model: faceverify default-head on LFW A-L ({} training pairs of \
             photos outside {}), seed {}, {} epochs",
            train.len(),
            args.pairs
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            args.training.seed,
            args.training.epochs
        ),
        weights,
        bias,
        policy,
        target_false_accept_rate: args.target_far,
        training_pairs: train.len(),
        evaluation: HeadEvaluation {
            pairs_file: args
                .pairs
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            same_pairs: same.iter().filter(|s| **s).count(),
            different_pairs: same.iter().filter(|s| !**s).count(),
            false_accept_rate: far,
            false_reject_rate: frr,
            auc: auc(&scores, &same),
        },
    };
    std::fs::write(&args.out, model.to_json() + "\n")
        .map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!(
        "wrote {}: {} training pairs; on {} held-out pairs detection threshold {:.4} gives FAR {:.4} \
         and FRR {:.4} (AUC {:.4})",
        args.out.display(),
        train.len(),
        held_out.len(),
        policy.detection.value(),
        far,
        frr,
        model.evaluation.auc
    );
    Ok(())
}
